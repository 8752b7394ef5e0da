//! Time-of-day windows (`hours = ["Mon-Fri 07:00-19:00", "Fri 22:00-02:00"]`):
//! when logins are allowed, in wall-clock time of a zone.
//!
//! A window belongs to the day it starts on; one whose end is not after its
//! start runs past midnight. Open and close times are wall-clock: each is
//! turned into an instant in the zone for the day it falls on, so a DST
//! change moves the instant, never the wall time. A wall time that does not
//! exist (spring forward) is taken after the gap, an ambiguous one (fall
//! back) at its first occurrence. Pure: the zone comes in as a value.

use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

use crate::core::time::clock::Timestamp;

/// One window: the days it starts on and its wall-clock times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit 0 is Monday, bit 6 Sunday.
    days: u8,
    /// Minutes after midnight, 0..1440.
    start: u16,
    /// Minutes after midnight, 1..=1440; not after `start` means the next day.
    end: u16,
}

/// Why a window could not be read; the message names the fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowError {
    Shape(String),
    Day(String),
    Time(String),
    Empty(String),
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shape(s) => write!(f, "{s:?} is not DAYS HH:MM-HH:MM (e.g. \"Mon-Fri 07:00-19:00\")"),
            Self::Day(d) => write!(f, "{d:?} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun, a range like Mon-Fri, or daily)"),
            Self::Time(t) => write!(f, "{t:?} is not a time HH:MM from 00:00 to 24:00"),
            Self::Empty(s) => write!(f, "{s:?} opens and closes at the same time"),
        }
    }
}

impl std::error::Error for WindowError {}

impl fmt::Display for Window {
    /// As the config file writes it: `Mon,Tue,Wed 07:00-19:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let on = |d: usize| self.days & (1 << d) != 0;
        let mut parts = Vec::new();
        let mut d = 0;
        while d < 7 {
            if !on(d) {
                d += 1;
                continue;
            }
            let first = d;
            while d + 1 < 7 && on(d + 1) {
                d += 1;
            }
            parts.push(match d - first {
                0 => NAMES[first].to_owned(),
                _ => format!("{}-{}", NAMES[first], NAMES[d]),
            });
            d += 1;
        }
        let days = if self.days == 0x7f {
            "daily".to_owned()
        } else {
            parts.join(",")
        };
        let end = self.end % MINUTES_PER_DAY;
        write!(
            f,
            "{days} {:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            end / 60,
            end % 60
        )
    }
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MINUTES_PER_DAY: u16 = 1440;

impl Window {
    /// Reads `DAYS HH:MM-HH:MM`; DAYS is `daily`, a day, a range (`Mon-Fri`,
    /// `Fri-Mon` wraps), or a comma list of those.
    pub fn parse(spec: &str) -> Result<Window, WindowError> {
        let shape = || WindowError::Shape(spec.to_owned());
        let mut words = spec.split_whitespace();
        let (Some(days), Some(times), None) = (words.next(), words.next(), words.next()) else {
            return Err(shape());
        };
        let (from, to) = times.split_once('-').ok_or_else(shape)?;
        let (start, end) = (minutes(from)?, minutes(to)?);
        if start == MINUTES_PER_DAY {
            return Err(WindowError::Time(from.to_owned()));
        }
        if start == end {
            return Err(WindowError::Empty(spec.to_owned()));
        }
        Ok(Window {
            days: day_set(days)?,
            start,
            end: if end == 0 { MINUTES_PER_DAY } else { end },
        })
    }

    fn starts_on(&self, date: Date) -> bool {
        let bit = date.weekday().to_monday_zero_offset();
        self.days & (1 << bit) != 0
    }

    /// The instants this window opens and closes for the day `date`.
    fn interval_on(&self, date: Date, tz: &TimeZone) -> Option<(i64, i64)> {
        let open = at_minutes(date, self.start, tz)?;
        let close_day = if self.end <= self.start {
            date.tomorrow().ok()?
        } else {
            date
        };
        let close = at_minutes(close_day, self.end, tz)?;
        (close > open).then_some((open, close))
    }
}

/// Minutes after midnight of `HH:MM` (00:00 to 24:00), if it is one.
pub fn hh_mm(text: &str) -> Option<u16> {
    minutes(text).ok()
}

fn minutes(hhmm: &str) -> Result<u16, WindowError> {
    let bad = || WindowError::Time(hhmm.to_owned());
    let (h, m) = hhmm.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn day_index(name: &str) -> Result<u8, WindowError> {
    let lower = name.to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|d| *d == lower)
        .map(|i| i as u8)
        .ok_or_else(|| WindowError::Day(name.to_owned()))
}

fn day_set(days: &str) -> Result<u8, WindowError> {
    if days.eq_ignore_ascii_case("daily") {
        return Ok(0x7f);
    }
    let mut set = 0u8;
    for part in days.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a)?, day_index(b)?);
                let mut d = a;
                loop {
                    set |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => set |= 1 << day_index(part)?,
        }
    }
    Ok(set)
}

/// The instant of `minutes` after midnight on `date` in `tz`; 1440 is the
/// next day's midnight.
fn at_minutes(date: Date, minutes: u16, tz: &TimeZone) -> Option<i64> {
    let (date, minutes) = if minutes >= MINUTES_PER_DAY {
        (date.tomorrow().ok()?, minutes - MINUTES_PER_DAY)
    } else {
        (date, minutes)
    };
    let dt: DateTime = date.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0);
    let ts = tz.to_ambiguous_timestamp(dt).compatible().ok()?;
    Some(ts.as_millisecond())
}

/// Whether logins are allowed at an instant, and until or from when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// Inside a window that closes at this instant (windows that touch or
    /// overlap count as one).
    Open { closes_at: Timestamp },
    /// Outside every window; the next opens then (`None`: never within a week).
    Closed { opens_at: Option<Timestamp> },
}

/// The windows of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Windows(pub Vec<Window>);

impl Windows {
    /// Whether `now` is inside a window in `tz`, and when that changes.
    pub fn state_at(&self, now: Timestamp, tz: &TimeZone) -> WindowState {
        let mut spans = self.intervals_around(now, tz);
        spans.sort_unstable();
        let t = now.0;
        let mut i = 0;
        while i < spans.len() {
            let (open, mut close) = spans[i];
            let mut j = i + 1;
            while j < spans.len() && spans[j].0 <= close {
                close = close.max(spans[j].1);
                j += 1;
            }
            if open <= t && t < close {
                return WindowState::Open {
                    closes_at: Timestamp(close),
                };
            }
            if open > t {
                return WindowState::Closed {
                    opens_at: Some(Timestamp(open)),
                };
            }
            i = j;
        }
        WindowState::Closed { opens_at: None }
    }

    /// When the last window that closed at or before `now` closed, looking
    /// back to yesterday (`None`: none did).
    pub fn last_close(&self, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let mut spans = self.intervals_around(now, tz);
        spans.sort_unstable();
        let mut last = None;
        let mut i = 0;
        while i < spans.len() {
            let (_, mut close) = spans[i];
            let mut j = i + 1;
            while j < spans.len() && spans[j].0 <= close {
                close = close.max(spans[j].1);
                j += 1;
            }
            if close <= now.0 {
                last = Some(Timestamp(close));
            }
            i = j;
        }
        last
    }

    /// Every window's interval for the days from yesterday to a week ahead.
    fn intervals_around(&self, now: Timestamp, tz: &TimeZone) -> Vec<(i64, i64)> {
        let Ok(ts) = jiff::Timestamp::from_millisecond(now.0) else {
            return Vec::new();
        };
        let today = tz.to_datetime(ts).date();
        let Ok(mut day) = today.yesterday() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for _ in 0..9 {
            for w in self.0.iter().filter(|w| w.starts_on(day)) {
                out.extend(w.interval_on(day, tz));
            }
            let Ok(next) = day.tomorrow() else { break };
            day = next;
        }
        out
    }
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
