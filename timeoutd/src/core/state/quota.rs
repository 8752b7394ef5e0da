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

use crate::core::state::lines::{optional_time_field, records};
use crate::core::state::record::{esc, unesc};
use crate::core::time::clock::Timestamp;

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

    /// The zone days are counted in.
    pub fn tz(&self) -> &TimeZone {
        &self.tz
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
    /// Since when at least one session is open (within this day). Restored
    /// from the state file with `open` 0 until the live sessions are counted
    /// again, then [`QuotaLedger::settle`] closes what no session kept open.
    pub since: Option<Timestamp>,
}

impl DayUse {
    /// This entry as of the day starting at `today`: an older day counts
    /// nothing, and an interval still open is split at the day's start.
    fn as_of(mut self, today: Timestamp) -> Self {
        if self.day < today {
            self.day = today;
            self.closed_ms = 0;
            self.since = self.since.map(|s| s.max(today));
        }
        self
    }

    fn used_ms(&self, now: Timestamp) -> i64 {
        let open_ms = self.since.map_or(0, |s| now.0.saturating_sub(s.0).max(0));
        self.closed_ms.saturating_add(open_ms)
    }
}

/// The union of every user's login intervals, per local day, by user name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaLedger {
    users: HashMap<String, DayUse>,
}

const TEXT_HEADER: &str = "# timeoutd quota v1";

impl QuotaLedger {
    /// A session of `user` opened at `now`.
    pub fn open(&mut self, user: &str, now: Timestamp, days: &DayClock) {
        let u = self.current(user, now, days);
        if u.open == 0 && u.since.is_none() {
            u.since = Some(now);
        }
        u.open = u.open.saturating_add(1);
    }

    /// A session of `user` ended at `now`; the clock stops with the last one.
    pub fn close(&mut self, user: &str, now: Timestamp, days: &DayClock) {
        let u = self.current(user, now, days);
        u.open = u.open.saturating_sub(1);
        if u.open == 0 {
            Self::stop(u, now);
        }
    }

    fn stop(u: &mut DayUse, now: Timestamp) {
        if let Some(since) = u.since.take() {
            u.closed_ms = u
                .closed_ms
                .saturating_add(now.0.saturating_sub(since.0).max(0));
        }
    }

    /// After a restart, once the live sessions are counted again: an
    /// interval restored open with no session left is closed at `now` (its
    /// sessions ended while the daemon was down, at an unknown time; the
    /// whole time counts, so a restart never gives a user more than the quota).
    pub fn settle(&mut self, now: Timestamp, days: &DayClock) {
        let (today, _) = days.day_of(now);
        for u in self.users.values_mut() {
            *u = u.as_of(today);
            if u.open == 0 {
                Self::stop(u, now);
            }
        }
    }

    /// Time `user` has used today, up to `now`.
    pub fn used(&self, user: &str, now: Timestamp, days: &DayClock) -> Duration {
        let (today, _) = days.day_of(now);
        let ms = self
            .users
            .get(user)
            .map_or(0, |u| u.as_of(today).used_ms(now));
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// What is left of `quota` today.
    pub fn left(&self, user: &str, now: Timestamp, days: &DayClock, quota: Duration) -> Duration {
        quota.saturating_sub(self.used(user, now, days))
    }

    /// When `quota` runs out if the user's sessions go on: `None` while the
    /// user has no live session (nothing is being used). Once run out, the
    /// instant it did (fixed while the sessions go on), so a deadline that
    /// passed stays the same deadline.
    pub fn runs_out_at(
        &self,
        user: &str,
        now: Timestamp,
        days: &DayClock,
        quota: Duration,
    ) -> Option<Timestamp> {
        let (today, next_day) = days.day_of(now);
        let u = self.users.get(user)?.as_of(today);
        u.since?;
        let quota_ms = i64::try_from(quota.as_millis()).unwrap_or(i64::MAX);
        let at = Timestamp(
            now.0
                .saturating_add(quota_ms.saturating_sub(u.used_ms(now))),
        );
        // If the day ends first, the quota is whole again then.
        Some(if at < next_day { at } else { next_day + quota })
    }

    /// The durable form, one line per user with time used on a day.
    pub fn to_text(&self) -> String {
        let mut lines: Vec<String> = self
            .users
            .iter()
            .filter(|(_, u)| u.closed_ms > 0 || u.since.is_some())
            .map(|(name, u)| {
                let since = optional_time_field(u.since);
                format!("{}\t{}\t{}\t{since}", esc(name), u.day.0, u.closed_ms)
            })
            .collect();
        lines.sort();
        let mut out = format!("{TEXT_HEADER}\n");
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
        out
    }

    /// Parses [`QuotaLedger::to_text`]; a bad line is reported, never a panic.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for line in records(text, "quota entry") {
            let [name, day, closed, since] = line.fields()?;
            out.users.insert(
                unesc(name),
                DayUse {
                    day: line.time(day)?,
                    closed_ms: line.number::<i64>(closed)?.max(0),
                    open: 0,
                    since: line.optional_time(since)?,
                },
            );
        }
        Ok(out)
    }

    /// Drops the days that are over and had no session still open, so the
    /// ledger holds only users seen today.
    pub fn forget_past(&mut self, now: Timestamp, days: &DayClock) {
        let (today, _) = days.day_of(now);
        self.users.retain(|_, u| u.day >= today || u.open > 0);
    }

    /// The user's entry for the day `now` falls in, rolled over if a new
    /// day began: an open interval is split at the day's start.
    fn current(&mut self, user: &str, now: Timestamp, days: &DayClock) -> &mut DayUse {
        let (today, _) = days.day_of(now);
        let u = self.users.entry(user.to_owned()).or_insert(DayUse {
            day: today,
            closed_ms: 0,
            open: 0,
            since: None,
        });
        *u = u.as_of(today);
        u
    }
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
