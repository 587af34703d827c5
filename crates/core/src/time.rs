//! Time stamps: stored as Unix milliseconds, shown as RFC 3339 UTC (`2026-11-23T09:15:00.123Z`).

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Serialize, Serializer};

/// A moment in time, with millisecond precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This time plus a duration (saturating).
    pub fn after(self, duration: std::time::Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// The time from `earlier` to this, zero when `earlier` is later.
    pub fn duration_since(self, earlier: Self) -> std::time::Duration {
        let millis = u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0);
        std::time::Duration::from_millis(millis)
    }

    /// The RFC 3339 form in UTC.
    pub fn to_rfc3339(self) -> String {
        match Utc.timestamp_millis_opt(self.0).single() {
            Some(at) => at.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => String::from("invalid-time"),
        }
    }

    /// Reads an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), as in `Retry-After`.
    pub fn parse_http_date(text: &str) -> Option<Self> {
        DateTime::parse_from_rfc2822(text)
            .ok()
            .map(|at| Self(at.timestamp_millis()))
    }

    /// Reads an RFC 3339 time stamp.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| Self(at.timestamp_millis()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_utc_with_millis() {
        assert_eq!(
            Timestamp(1_795_425_300_123).to_rfc3339(),
            "2026-11-23T09:15:00.123Z"
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-23T09:15:00.123Z"),
            Some(Timestamp(1_795_425_300_123))
        );
    }
}
