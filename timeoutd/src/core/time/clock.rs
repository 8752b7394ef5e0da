//! Time as the core sees it: wall-clock milliseconds, behind a trait so the
//! core can be driven second by second in tests without sleeping.
//!
//! Wall-clock (not monotonic) time is used because tty timestamps are wall
//! clock, and because deadlines must survive a daemon restart.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// Milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_secs(s: i64) -> Self {
        Self(s.saturating_mul(1000))
    }

    pub(crate) fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub(crate) fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

impl fmt::Display for Timestamp {
    /// `HH:MM:SS` UTC, for messages and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.secs().rem_euclid(86_400);
        write!(f, "{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

pub(crate) trait Clock {
    fn now(&self) -> Timestamp;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_since_is_never_negative() {
        let t = Timestamp::from_secs(100);
        assert_eq!(t + Duration::from_secs(5), Timestamp::from_secs(105));
        assert_eq!(t - Duration::from_secs(5), Timestamp::from_secs(95));
        assert_eq!(t.since(Timestamp::from_secs(90)), Duration::from_secs(10));
        assert_eq!(t.since(Timestamp::from_secs(110)), Duration::ZERO);
        assert_eq!(
            Timestamp(i64::MAX) + Duration::from_secs(1),
            Timestamp(i64::MAX)
        );
    }

    #[test]
    fn displays_time_of_day() {
        assert_eq!(Timestamp::from_secs(86_400 + 3_723).to_string(), "01:02:03");
    }
}
