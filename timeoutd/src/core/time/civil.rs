//! Civil time for windows and quotas: the zone, where quota days start, the
//! users' quota ledger, and a test-only offset of the civil clock. Pure: the
//! zone is loaded by the caller; every instant comes in and goes out as a
//! real [`Timestamp`], the offset is applied only inside.
//!
//! The offset (`timeoutd --civil-clock-offset SECS`) shifts the wall clock
//! that windows and quota days are read on, never the instants deadlines are
//! kept in, so an end-to-end test can stand a few seconds before a window's
//! close without waiting for the right minute or touching the system clock.

use std::cell::RefCell;
use std::time::Duration;

use jiff::tz::TimeZone;

use crate::core::policy::window::{WindowState, Windows};
use crate::core::policy::Limits;
use crate::core::state::quota::{DayClock, QuotaLedger};
use crate::core::time::clock::Timestamp;

/// Why a login is refused by the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Outside every window of the rule's `hours`.
    Window,
    /// The daily quota is used up.
    Quota,
}

impl Closed {
    /// The value of `reason=` in `login_refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Window => "window",
            Self::Quota => "quota",
        }
    }
}

/// A refusal: why, the message for the user, and when logins are possible
/// again (`None`: not within a week).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockRefusal {
    pub reason: Closed,
    pub message: String,
    pub until: Option<Timestamp>,
}

/// The zone, the day clock, the ledger and the offset.
#[derive(Debug, Clone)]
pub struct Civil {
    days: DayClock,
    offset_ms: i64,
    ledger: QuotaLedger,
    /// The quota day whose start last swept the ledger of users not seen
    /// since an older day (once a day, not at every logout).
    swept: Timestamp,
    /// Open windows already computed: (the rule's windows, computed at, closes
    /// at), valid for any instant in between. Every session of a rule shares
    /// one close, so a wake reuses it instead of converting nine days of
    /// wall-clock times again.
    open_windows: RefCell<Vec<(Windows, Timestamp, Timestamp)>>,
}

/// Distinct `hours` lists kept in the cache; more are computed each time.
const OPEN_WINDOWS_KEPT: usize = 64;

impl Default for Civil {
    fn default() -> Self {
        Self::new(TimeZone::UTC, (0, 0), 0)
    }
}

impl Civil {
    /// Civil time in `tz`, quota days from `day_starts`, the wall clock
    /// shifted by `offset_secs` (0 but in tests).
    pub fn new(tz: TimeZone, day_starts: (i8, i8), offset_secs: i64) -> Self {
        Self {
            days: DayClock::new(tz, day_starts.0, day_starts.1),
            offset_ms: offset_secs.saturating_mul(1000),
            ledger: QuotaLedger::default(),
            swept: Timestamp(i64::MIN),
            open_windows: RefCell::new(Vec::new()),
        }
    }

    /// Replaces the ledger (read from the state directory at start).
    pub fn set_ledger(&mut self, ledger: QuotaLedger) {
        self.ledger = ledger;
    }

    fn civil(&self, t: Timestamp) -> Timestamp {
        Timestamp(t.0.saturating_add(self.offset_ms))
    }

    fn real(&self, c: Timestamp) -> Timestamp {
        Timestamp(c.0.saturating_sub(self.offset_ms))
    }

    fn tz(&self) -> &TimeZone {
        self.days.tz()
    }

    /// Whether `hours` is open at `now`, in real instants.
    pub fn window_state(&self, hours: &Windows, now: Timestamp) -> WindowState {
        match hours.state_at(self.civil(now), self.tz()) {
            WindowState::Open { closes_at } => WindowState::Open {
                closes_at: self.real(closes_at),
            },
            WindowState::Closed { opens_at } => WindowState::Closed {
                opens_at: opens_at.map(|o| self.real(o)),
            },
        }
    }

    /// The window deadline of a live session under `limits`: when the open
    /// window closes, or, outside every window, when the last one closed (a
    /// fixed instant, so a deadline that passed stays the same deadline).
    pub fn window_deadline(&self, limits: &Limits, now: Timestamp) -> Option<Timestamp> {
        let hours = limits.hours.as_ref()?;
        let cached = self
            .open_windows
            .borrow()
            .iter()
            .find(|(w, from, close)| w == hours && *from <= now && now < *close)
            .map(|(_, _, close)| *close);
        if cached.is_some() {
            return cached;
        }
        Some(match self.window_state(hours, now) {
            WindowState::Open { closes_at } => {
                let mut cache = self.open_windows.borrow_mut();
                cache.retain(|(w, _, _)| w != hours);
                if cache.len() >= OPEN_WINDOWS_KEPT {
                    cache.clear();
                }
                cache.push((hours.clone(), now, closes_at));
                closes_at
            }
            WindowState::Closed { .. } => hours
                .last_close(self.civil(now), self.tz())
                .map_or(now, |c| self.real(c)),
        })
    }

    /// When `user`'s quota under `limits` runs out, while they have a session.
    pub fn quota_deadline(&self, user: &str, limits: &Limits, now: Timestamp) -> Option<Timestamp> {
        let quota = limits.daily?;
        let at = self
            .ledger
            .runs_out_at(user, self.civil(now), &self.days, quota)?;
        Some(self.real(at))
    }

    /// What is left of `user`'s quota today under `limits`.
    pub fn quota_left(&self, user: &str, limits: &Limits, now: Timestamp) -> Option<Duration> {
        let quota = limits.daily?;
        Some(self.ledger.left(user, self.civil(now), &self.days, quota))
    }

    /// When the current quota day ends (the next reset).
    pub fn next_reset(&self, now: Timestamp) -> Timestamp {
        self.real(self.days.day_of(self.civil(now)).1)
    }

    /// Whether a login of `user` under `limits` is refused at `now`.
    pub fn refusal(&self, user: &str, limits: &Limits, now: Timestamp) -> Option<ClockRefusal> {
        if let Some(hours) = &limits.hours {
            if let WindowState::Closed { opens_at } = self.window_state(hours, now) {
                let when = opens_at.map_or("not within a week".to_owned(), |o| {
                    format!("again at {}", self.local(o))
                });
                return Some(ClockRefusal {
                    reason: Closed::Window,
                    message: format!(
                        "Logins for {user} are outside the allowed hours now; they open {when}."
                    ),
                    until: opens_at,
                });
            }
        }
        let daily = limits.daily?;
        if !self.quota_left(user, limits, now)?.is_zero() {
            return None;
        }
        let reset = self.next_reset(now);
        Some(ClockRefusal {
            reason: Closed::Quota,
            message: format!(
                "The daily quota of {} for {user} is used up; it resets at {}.",
                crate::core::time::duration::Human(daily),
                self.local(reset)
            ),
            until: Some(reset),
        })
    }

    /// A session of `user` began at `now`.
    pub fn session_opened(&mut self, user: &str, now: Timestamp) {
        let c = self.civil(now);
        self.ledger.open(user, c, &self.days);
    }

    /// A session of `user` ended at `now`.
    pub fn session_closed(&mut self, user: &str, now: Timestamp) {
        let c = self.civil(now);
        self.ledger.close(user, c, &self.days);
        let (today, _) = self.days.day_of(c);
        if today > self.swept {
            self.swept = today;
            self.ledger.forget_past(c, &self.days);
        }
    }

    /// After restoring the sessions of a restart: closes the intervals of
    /// users none of whose sessions survived.
    pub fn settle(&mut self, now: Timestamp) {
        let c = self.civil(now);
        self.ledger.settle(c, &self.days);
        self.ledger.forget_past(c, &self.days);
    }

    /// The ledger as stored in the state directory.
    pub fn ledger_text(&self) -> String {
        self.ledger.to_text()
    }

    /// `t` as local wall-clock time, e.g. `Mon 2026-12-07 07:00:00 CET`.
    pub fn local(&self, t: Timestamp) -> String {
        let Ok(ts) = jiff::Timestamp::from_millisecond(self.civil(t).0) else {
            return format!("{t} UTC");
        };
        ts.to_zoned_datetime(self.tz().clone())
            .strftime("%a %Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }
}

#[cfg(test)]
#[path = "civil_tests.rs"]
mod tests;
