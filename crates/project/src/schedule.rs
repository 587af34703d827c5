//! The `schedule` trigger: when a flow fires, and what happens to fires that were missed
//! or that would overlap a run still going.
//!
//! A schedule's fire times are a pure function of its definition, so any process
//! computes the same ones: a cron pattern in a time zone (daylight saving time handled
//! the way cron users expect: a time skipped by a jump forward fires once, right after
//! the jump; a time repeated by a jump back fires once), or an interval counted from the
//! Unix epoch (`every: 15m` fires at :00, :15, :30 and :45 of every hour, in UTC).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use switchboard_core::Timestamp;

/// The shortest interval of `every`.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The default bound of `catch_up: all`.
pub const DEFAULT_MAX_CATCH_UP: u32 = 100;

/// A fire later than this after its time is a catch-up fire, not an on-time one.
pub const ON_TIME: Duration = Duration::from_secs(60);

/// A compiled `schedule` trigger.
#[derive(Debug, Clone)]
pub struct ScheduleTrigger {
    /// When it fires.
    pub timing: Timing,
    /// What happens to fires missed while no process ran.
    pub catch_up: CatchUp,
    /// The most missed fires `catch_up: all` runs (the latest ones).
    pub max_catch_up: u32,
    /// What happens when a fire comes while an earlier run has not ended.
    pub overlap: Overlap,
}

/// When a schedule fires.
#[derive(Clone)]
pub enum Timing {
    /// At the times a cron pattern matches, in a time zone.
    Cron {
        /// The pattern, as written.
        pattern: String,
        /// The pattern, parsed; shared by every schedule with the same pattern.
        cron: Arc<Cron>,
        /// The time zone its fields are read in.
        timezone: Tz,
    },
    /// At every whole multiple of an interval since the Unix epoch.
    Every(Duration),
}

/// What happens to fires missed while no process ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// They are dropped; the schedule goes on from now.
    None,
    /// The latest of them fires once.
    Latest,
    /// Each fires, in order, up to `max_catch_up` (the latest ones).
    All,
}

/// What happens to a fire while an earlier run of the flow has not ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// The fire is skipped (and recorded as skipped).
    Skip,
    /// The fire's run waits for the earlier ones to end.
    Queue,
    /// The runs overlap.
    Allow,
}

impl CatchUp {
    /// Every policy, as written in YAML.
    pub const NAMES: [(&'static str, Self); 3] = [
        ("none", Self::None),
        ("latest", Self::Latest),
        ("all", Self::All),
    ];

    /// The policy as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Latest => "latest",
            Self::All => "all",
        }
    }
}

impl Overlap {
    /// Every policy, as written in YAML.
    pub const NAMES: [(&'static str, Self); 3] = [
        ("skip", Self::Skip),
        ("queue", Self::Queue),
        ("allow", Self::Allow),
    ];

    /// The policy as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Queue => "queue",
            Self::Allow => "allow",
        }
    }
}

/// A cron pattern or time zone that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimingError {
    /// The pattern does not parse.
    #[error("`{pattern}` is not a cron pattern: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why, as croner says it.
        reason: String,
    },
    /// The pattern parses but never matches (`0 0 30 2 *`).
    #[error("`{0}` never fires")]
    Never(String),
    /// The time zone is not in the IANA database.
    #[error("`{0}` is not a time zone of the IANA database, such as `UTC` or `Europe/Berlin`")]
    TimeZone(String),
    /// The interval is shorter than [`MIN_INTERVAL`].
    #[error("`every` must be at least 1s")]
    TooShort,
}

impl Timing {
    /// A cron pattern (5 or 6 fields, `L`, `W`, `#`, `@daily` …) read in `timezone`.
    pub fn cron(pattern: &str, timezone: &str) -> Result<Self, TimingError> {
        let cron = parsed(pattern)?;
        let timezone: Tz = timezone
            .parse()
            .map_err(|_| TimingError::TimeZone(timezone.to_owned()))?;
        let timing = Self::Cron {
            pattern: pattern.to_owned(),
            cron,
            timezone,
        };
        if timing.next_after(Timestamp(0)).is_none() {
            return Err(TimingError::Never(pattern.to_owned()));
        }
        Ok(timing)
    }

    /// Every `interval`, counted from the Unix epoch.
    pub fn every(interval: Duration) -> Result<Self, TimingError> {
        if interval < MIN_INTERVAL {
            return Err(TimingError::TooShort);
        }
        Ok(Self::Every(interval))
    }

    /// The first fire time strictly after `after`; `None` when there is none (a pattern
    /// that matches no date within croner's search limit).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Self::Every(interval) => {
                let step = interval_millis(*interval);
                let next = after.millis().div_euclid(step).checked_add(1)?;
                next.checked_mul(step).map(Timestamp)
            }
            Self::Cron { cron, timezone, .. } => {
                let local = Utc
                    .timestamp_millis_opt(after.millis())
                    .single()?
                    .with_timezone(timezone);
                let next: DateTime<Tz> = cron.find_next_occurrence(&local, false).ok()?;
                Some(Timestamp(next.timestamp_millis()))
            }
        }
    }

    /// The fire times from `from` (included) to `until` (included), at most the last
    /// `keep` of them, with how many there were in all.
    pub fn fires_between(&self, from: Timestamp, until: Timestamp, keep: usize) -> Fires {
        let mut fires = Fires::default();
        if from > until || keep == 0 {
            return fires;
        }
        if let Self::Every(interval) = self {
            // Counted, not walked: a long outage of a short interval costs nothing.
            let step = interval_millis(*interval);
            let first =
                from.millis().div_euclid(step) + i64::from(from.millis().rem_euclid(step) != 0);
            let last = until.millis().div_euclid(step);
            if last < first {
                return fires;
            }
            fires.total = u64::try_from(last - first + 1).unwrap_or(u64::MAX);
            let kept = i64::try_from(keep)
                .unwrap_or(i64::MAX)
                .min(last - first + 1);
            fires.times = (last - kept + 1..=last)
                .map(|k| Timestamp(k * step))
                .collect();
            return fires;
        }
        let mut at = match self.next_after(Timestamp(from.millis() - 1)) {
            Some(at) => at,
            None => return fires,
        };
        let mut times = std::collections::VecDeque::with_capacity(keep.min(1024));
        while at <= until {
            fires.total += 1;
            if times.len() == keep {
                times.pop_front();
            }
            times.push_back(at);
            match self.next_after(at) {
                Some(next) => at = next,
                None => break,
            }
        }
        fires.times = times.into();
        fires
    }

    /// The timing as written, to tell a changed schedule from the one stored:
    /// `cron 0 2 * * * Europe/Berlin` or `every 15m`.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

/// `pattern` parsed, shared: a parsed pattern holds a few kilobytes (croner keeps a
/// bitfield of every year it can reach), and many schedules share a few patterns, so each
/// pattern is parsed once per process.
fn parsed(pattern: &str) -> Result<Arc<Cron>, TimingError> {
    static PARSED: OnceLock<Mutex<HashMap<String, Arc<Cron>>>> = OnceLock::new();
    let parsed = PARSED.get_or_init(Mutex::default);
    if let Some(cron) = parsed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(pattern)
    {
        return Ok(Arc::clone(cron));
    }
    let cron: Cron = pattern.parse().map_err(|error: croner::errors::CronError| {
        let cause = error.to_string();
        let cause = cause.trim_end_matches('.');
        TimingError::Pattern {
            pattern: pattern.to_owned(),
            reason: match faulty_field(pattern) {
                Some((name, field)) => format!("its {name} field `{field}` is wrong ({cause})"),
                None => format!(
                    "{cause}; write 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or a nickname such as @daily"
                ),
            },
        }
    })?;
    let cron = Arc::new(cron);
    parsed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(pattern.to_owned(), Arc::clone(&cron));
    Ok(cron)
}

/// The first field of a 5- or 6-field pattern that fails on its own (every other
/// field `*`), with its name.
fn faulty_field(pattern: &str) -> Option<(&'static str, &str)> {
    const FIVE: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
    const SIX: [&str; 6] = [
        "seconds",
        "minute",
        "hour",
        "day-of-month",
        "month",
        "day-of-week",
    ];
    let fields: Vec<&str> = pattern.split_whitespace().collect();
    let names: &[&'static str] = match fields.len() {
        5 => &FIVE,
        6 => &SIX,
        _ => return None,
    };
    (0..fields.len()).find_map(|index| {
        let probe: Vec<&str> = (0..fields.len())
            .map(|other| if other == index { fields[index] } else { "*" })
            .collect();
        probe
            .join(" ")
            .parse::<Cron>()
            .is_err()
            .then(|| (names[index], fields[index]))
    })
}

/// Fire times in a span, the latest kept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fires {
    /// The kept fire times, in order.
    pub times: Vec<Timestamp>,
    /// How many fire times the span held in all.
    pub total: u64,
}

fn interval_millis(interval: Duration) -> i64 {
    i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

impl fmt::Display for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cron {
                pattern, timezone, ..
            } => write!(f, "cron {pattern} {timezone}"),
            Self::Every(interval) => {
                write!(f, "every {}", switchboard_core::HumanDuration(*interval))
            }
        }
    }
}

impl fmt::Debug for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn berlin(pattern: &str) -> Timing {
        Timing::cron(pattern, "Europe/Berlin").unwrap()
    }

    fn fires(timing: &Timing, from: &str, until: &str) -> Vec<String> {
        timing
            .fires_between(at(from), at(until), 1000)
            .times
            .into_iter()
            .map(Timestamp::to_rfc3339)
            .collect()
    }

    #[test]
    fn a_daily_pattern_fires_at_its_local_time() {
        let timing = berlin("0 2 * * *");
        // 02:00 in Berlin is 01:00 UTC in winter (CET, UTC+1).
        assert_eq!(
            timing.next_after(at("2026-11-23T12:00:00Z")),
            Some(at("2026-11-24T01:00:00Z"))
        );
        // … and 00:00 UTC in summer (CEST, UTC+2).
        assert_eq!(
            timing.next_after(at("2026-07-01T12:00:00Z")),
            Some(at("2026-07-02T00:00:00Z"))
        );
    }

    #[test]
    fn a_time_skipped_by_spring_forward_fires_once_right_after_the_jump() {
        // On 2026-03-29 Berlin's clocks go from 02:00 CET straight to 03:00 CEST.
        let timing = berlin("30 2 * * *");
        assert_eq!(
            fires(&timing, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"),
            [
                "2026-03-28T01:30:00.000Z", // 02:30 CET
                "2026-03-29T01:00:00.000Z", // 03:00 CEST, the first instant after the gap
                "2026-03-30T00:30:00.000Z", // 02:30 CEST
            ]
        );
    }

    #[test]
    fn a_time_repeated_by_fall_back_fires_once() {
        // On 2026-10-25 Berlin's clocks go from 03:00 CEST back to 02:00 CET: 02:30 happens
        // twice (00:30 and 01:30 UTC).
        let timing = berlin("30 2 * * *");
        assert_eq!(
            fires(&timing, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z"),
            ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"]
        );
    }

    #[test]
    fn hourly_patterns_fire_every_real_hour_across_both_transitions() {
        let timing = berlin("0 * * * *");
        // 01:00 CET, 03:00 CEST (02:00 does not exist), 04:00 and 05:00 CEST.
        let spring = fires(&timing, "2026-03-28T23:30:00Z", "2026-03-29T03:30:00Z");
        assert_eq!(
            spring,
            [
                "2026-03-29T00:00:00.000Z",
                "2026-03-29T01:00:00.000Z",
                "2026-03-29T02:00:00.000Z",
                "2026-03-29T03:00:00.000Z"
            ]
        );
        let autumn = fires(&timing, "2026-10-24T23:30:00Z", "2026-10-25T03:30:00Z");
        // 02:00 CEST, 02:00 CET (the repeated hour is a real hour), 03:00 and 04:00 CET.
        assert_eq!(
            autumn,
            [
                "2026-10-25T00:00:00.000Z",
                "2026-10-25T01:00:00.000Z",
                "2026-10-25T02:00:00.000Z",
                "2026-10-25T03:00:00.000Z"
            ]
        );
    }

    #[test]
    fn extended_patterns_are_understood() {
        // The last day of the month, at noon UTC.
        let last = Timing::cron("0 12 L * *", "UTC").unwrap();
        assert_eq!(
            last.next_after(at("2026-02-10T00:00:00Z")),
            Some(at("2026-02-28T12:00:00Z"))
        );
        // The second Monday of the month.
        let second_monday = Timing::cron("0 9 * * 1#2", "UTC").unwrap();
        assert_eq!(
            second_monday.next_after(at("2026-11-01T00:00:00Z")),
            Some(at("2026-11-09T09:00:00Z"))
        );
        // The nearest weekday to the 15th (Sunday 2026-11-15 → Monday the 16th).
        let weekday = Timing::cron("0 9 15W * *", "UTC").unwrap();
        assert_eq!(
            weekday.next_after(at("2026-11-01T00:00:00Z")),
            Some(at("2026-11-16T09:00:00Z"))
        );
        // Nicknames, and six fields with seconds.
        let daily = Timing::cron("@daily", "UTC").unwrap();
        assert_eq!(
            daily.next_after(at("2026-11-23T10:00:00Z")),
            Some(at("2026-11-24T00:00:00Z"))
        );
        let seconds = Timing::cron("*/10 * * * * *", "UTC").unwrap();
        assert_eq!(
            seconds.next_after(at("2026-11-23T10:00:00Z")),
            Some(at("2026-11-23T10:00:10Z"))
        );
    }

    #[test]
    fn schedules_with_the_same_pattern_share_it_parsed() {
        let (Timing::Cron { cron: first, .. }, Timing::Cron { cron: second, .. }) = (
            Timing::cron("7 3 * * *", "UTC").unwrap(),
            Timing::cron("7 3 * * *", "Europe/Berlin").unwrap(),
        ) else {
            panic!("not cron timings")
        };
        assert!(Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn bad_patterns_and_zones_say_what_is_wrong() {
        assert!(matches!(
            Timing::cron("0 25 * * *", "UTC"),
            Err(TimingError::Pattern { .. })
        ));
        assert_eq!(
            Timing::cron("0 0 * * *", "Mars/Olympus").unwrap_err(),
            TimingError::TimeZone("Mars/Olympus".into())
        );
        assert_eq!(
            Timing::cron("0 0 30 2 *", "UTC").unwrap_err(),
            TimingError::Never("0 0 30 2 *".into())
        );
        assert_eq!(
            Timing::every(Duration::from_millis(500)).unwrap_err(),
            TimingError::TooShort
        );
    }

    #[test]
    fn intervals_are_counted_from_the_epoch() {
        let timing = Timing::every(Duration::from_secs(15 * 60)).unwrap();
        assert_eq!(
            timing.next_after(at("2026-11-23T10:07:13Z")),
            Some(at("2026-11-23T10:15:00Z"))
        );
        assert_eq!(
            timing.next_after(at("2026-11-23T10:15:00Z")),
            Some(at("2026-11-23T10:30:00Z"))
        );
        assert_eq!(
            fires(&timing, "2026-11-23T10:15:00Z", "2026-11-23T11:00:00Z"),
            [
                "2026-11-23T10:15:00.000Z",
                "2026-11-23T10:30:00.000Z",
                "2026-11-23T10:45:00.000Z",
                "2026-11-23T11:00:00.000Z"
            ]
        );
    }

    #[test]
    fn a_long_span_keeps_the_latest_fires_and_counts_them_all() {
        let every = Timing::every(Duration::from_secs(1)).unwrap();
        let span = every.fires_between(at("2026-11-01T00:00:00Z"), at("2026-11-23T00:00:00Z"), 3);
        assert_eq!(span.total, 22 * 24 * 3600 + 1);
        assert_eq!(
            span.times,
            [
                at("2026-11-22T23:59:58Z"),
                at("2026-11-22T23:59:59Z"),
                at("2026-11-23T00:00:00Z")
            ]
        );
        let hourly = Timing::cron("0 * * * *", "UTC").unwrap();
        let span = hourly.fires_between(at("2026-11-22T00:00:00Z"), at("2026-11-23T00:00:00Z"), 2);
        assert_eq!(span.total, 25);
        assert_eq!(
            span.times,
            [at("2026-11-22T23:00:00Z"), at("2026-11-23T00:00:00Z")]
        );
    }
}
