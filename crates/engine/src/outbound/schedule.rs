//! When a failed delivery is tried again: the endpoint's retry schedule (the waits
//! between attempts), each wait moved by up to ±20 % so that endpoints that failed
//! together do not all retry together, and never sooner than a `Retry-After` the
//! endpoint asked for.

use std::time::Duration;

use switchboard_core::HumanDuration;

/// The default waits between attempts: after the first (immediate) attempt, 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h and 10 h, so eight attempts over about a day and a half.
pub const DEFAULT_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The longest `Retry-After` honoured; a longer one falls back to the schedule.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The most waits a schedule may have.
pub const MAX_ATTEMPTS: usize = 50;

/// A schedule entry is not a duration, or the schedule is too long.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// An entry did not read as a duration.
    #[error("entry {index}: {message}")]
    Entry {
        /// Its position.
        index: usize,
        /// Why.
        message: String,
    },
    /// More waits than [`MAX_ATTEMPTS`].
    #[error("at most {MAX_ATTEMPTS} waits are allowed")]
    TooLong,
}

impl ScheduleError {
    /// The position of the entry at fault, if one is.
    pub fn index(&self) -> Option<usize> {
        match self {
            Self::Entry { index, .. } => Some(*index),
            Self::TooLong => None,
        }
    }
}

/// Reads a schedule written as durations (`["5s", "5m"]`).
pub fn parse(entries: &[String]) -> Result<Vec<Duration>, ScheduleError> {
    if entries.len() > MAX_ATTEMPTS {
        return Err(ScheduleError::TooLong);
    }
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            entry
                .parse::<HumanDuration>()
                .map(|duration| duration.0)
                .map_err(|error| ScheduleError::Entry {
                    index,
                    message: error.to_string(),
                })
        })
        .collect()
}

/// The wait after failed attempt number `attempt` (from 1), or `None` when it was the
/// last. `unit` is a random number in `[0, 1)` for the jitter; `retry_after` is what the
/// endpoint asked for.
pub fn next_wait(
    schedule: &[Duration],
    attempt: u32,
    unit: f64,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
    let base = *schedule.get(index)?;
    let jittered = base.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0));
    Some(match retry_after {
        Some(asked) if asked <= MAX_RETRY_AFTER => jittered.max(asked),
        _ => jittered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_gives_eight_attempts_with_bounded_jitter() {
        let waits: Vec<Option<Duration>> = (1..=8)
            .map(|attempt| next_wait(&DEFAULT_SCHEDULE, attempt, 0.5, None))
            .collect();
        assert_eq!(waits[0], Some(Duration::from_secs(5)));
        assert_eq!(waits[1], Some(Duration::from_secs(300)));
        assert_eq!(waits[6], Some(Duration::from_secs(36000)));
        assert_eq!(waits[7], None, "the eighth attempt is the last");
        let low = next_wait(&DEFAULT_SCHEDULE, 3, 0.0, None).unwrap();
        let high = next_wait(&DEFAULT_SCHEDULE, 3, 0.999_999, None).unwrap();
        assert_eq!(low, Duration::from_secs(30 * 60 * 8 / 10));
        assert!(high < Duration::from_secs(30 * 60 * 12 / 10) && high > Duration::from_secs(2159));
    }

    #[test]
    fn retry_after_is_honoured_when_longer_and_not_absurd() {
        let schedule = [Duration::from_secs(5)];
        let asked = Some(Duration::from_secs(120));
        assert_eq!(next_wait(&schedule, 1, 0.5, asked), asked);
        let shorter = Some(Duration::from_secs(1));
        assert_eq!(
            next_wait(&schedule, 1, 0.5, shorter),
            Some(Duration::from_secs(5))
        );
        let absurd = Some(Duration::from_secs(10 * 24 * 3600));
        assert_eq!(
            next_wait(&schedule, 1, 0.5, absurd),
            Some(Duration::from_secs(5))
        );
        assert_eq!(next_wait(&schedule, 2, 0.5, asked), None);
    }

    #[test]
    fn schedules_are_read_with_the_entry_at_fault() {
        let read = parse(&["1s".into(), "2m".into()]).unwrap();
        assert_eq!(read, [Duration::from_secs(1), Duration::from_secs(120)]);
        let error = parse(&["1s".into(), "soon".into()]).unwrap_err();
        assert_eq!(error.index(), Some(1));
    }
}
