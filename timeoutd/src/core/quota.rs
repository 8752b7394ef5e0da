//! Daily quotas (`daily = "2h"`): how long a user was logged in today.
//!
//! Parallel sessions count once: the time used is the union of the
//! intervals in which the user had at least one session, not their sum. The
//! day is the local day, starting at midnight or at `[daemon] day_starts`;
//! a union interval that spans the start of a day is split there. Pure: the
//! zone and the clock come in as values.

use std::collections::HashMap;
use std::time::Duration;

use jiff::civil::Time;
use jiff::tz::TimeZone;

use crate::core::clock::Timestamp;

/// Where local days begin.
#[derive(Debug, Clone)]
pub struct DayClock {
    tz: TimeZone,
    starts: Time,
}

impl DayClock {
    /// Days in `tz` that start at `hour:minute` local time.
    pub fn new(tz: TimeZone, hour: i8, minute: i8) -> Self {
        let starts = Time::new(hour, minute, 0, 0).unwrap_or(Time::midnight());
        Self { tz, starts }
    }

    /// The start of the day `t` falls in, and the start of the next one.
    pub fn day_of(&self, t: Timestamp) -> (Timestamp, Timestamp) {
        let Ok(ts) = jiff::Timestamp::from_millisecond(t.0) else {
            return (t, t + Duration::from_secs(86_400));
        };
        let local = self.tz.to_datetime(ts);
        let mut date = local.date();
        if local.time() < self.starts {
            date = date.yesterday().unwrap_or(date);
        }
        let start = self.instant(date, t);
        let next = date
            .tomorrow()
            .map(|d| self.instant(d, t + Duration::from_secs(86_400)))
            .unwrap_or(start + Duration::from_secs(86_400));
        (start, next)
    }

    fn instant(&self, date: jiff::civil::Date, fallback: Timestamp) -> Timestamp {
        self.tz
            .to_ambiguous_timestamp(date.to_datetime(self.starts))
            .compatible()
            .map(|ts| Timestamp(ts.as_millisecond()))
            .unwrap_or(fallback)
    }
}

/// One user's use of the current day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayUse {
    /// Start of the day this is about.
    pub day: Timestamp,
    /// Union time of intervals that ended this day, in milliseconds.
    pub closed_ms: i64,
    /// Live sessions of the user now.
    pub open: u32,
    /// Since when at least one session is open (within this day).
    pub since: Option<Timestamp>,
}

/// The union of every user's login intervals, per local day.
#[derive(Debug, Clone, Default)]
pub struct QuotaLedger {
    users: HashMap<u32, DayUse>,
}

impl QuotaLedger {
    /// A session of `uid` opened at `now`.
    pub fn open(&mut self, uid: u32, now: Timestamp, days: &DayClock) {
        let u = self.current(uid, now, days);
        if u.open == 0 {
            u.since = Some(now);
        }
        u.open = u.open.saturating_add(1);
    }

    /// A session of `uid` ended at `now`.
    pub fn close(&mut self, uid: u32, now: Timestamp, days: &DayClock) {
        let u = self.current(uid, now, days);
        u.open = u.open.saturating_sub(1);
        if u.open == 0 {
            if let Some(since) = u.since.take() {
                u.closed_ms += now.0.saturating_sub(since.0).max(0);
            }
        }
    }

    /// Time `uid` has used today, up to `now`.
    pub fn used(&mut self, uid: u32, now: Timestamp, days: &DayClock) -> Duration {
        let u = self.current(uid, now, days);
        let open_ms = u.since.map_or(0, |s| now.0.saturating_sub(s.0).max(0));
        Duration::from_millis(u64::try_from(u.closed_ms + open_ms).unwrap_or(0))
    }

    /// When `quota` runs out if the user's sessions go on: `None` while the
    /// user has no live session (nothing is being used); `now` or earlier
    /// when it has run out already.
    pub fn runs_out_at(
        &mut self,
        uid: u32,
        now: Timestamp,
        days: &DayClock,
        quota: Duration,
    ) -> Option<Timestamp> {
        let used = self.used(uid, now, days);
        self.users.get(&uid)?.since?;
        let left = quota.saturating_sub(used);
        let (_, next_day) = days.day_of(now);
        let at = now + left;
        // If the day ends first, the quota is whole again then.
        Some(if at < next_day { at } else { next_day + quota })
    }

    /// What is stored across restarts.
    pub fn snapshot(&self) -> impl Iterator<Item = (u32, DayUse)> + '_ {
        self.users.iter().map(|(k, v)| (*k, *v))
    }

    /// Restores a stored day; live sessions are counted again as they are
    /// restored, so `open` and `since` start empty.
    pub fn restore(&mut self, uid: u32, day: Timestamp, closed_ms: i64) {
        self.users.insert(
            uid,
            DayUse {
                day,
                closed_ms: closed_ms.max(0),
                open: 0,
                since: None,
            },
        );
    }

    /// The user's entry for the day `now` falls in, rolled over if a new
    /// day began: an open interval is split at the day's start.
    fn current(&mut self, uid: u32, now: Timestamp, days: &DayClock) -> &mut DayUse {
        let (today, _) = days.day_of(now);
        let u = self.users.entry(uid).or_insert(DayUse {
            day: today,
            closed_ms: 0,
            open: 0,
            since: None,
        });
        if u.day < today {
            u.day = today;
            u.closed_ms = 0;
            u.since = u.since.map(|s| s.max(today));
        }
        u
    }
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
