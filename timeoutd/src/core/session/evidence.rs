//! What a session leaves behind for choosing limits from evidence: its idle
//! gaps (the longest [`GAPS_KEPT`], a running maximum and a running total),
//! the warnings written, the tamper events and the would-be expiries of a
//! dry run, kept in bounded memory and across restarts; and the numbers of its
//! `session_summary` line, computed from them when it ends. Pure.
//!
//! **What a gap is.** The daemon learns of input only when it looks at a
//! session (a wake that measures its terminals or its processes' I/O). A gap
//! starts at a credited input and lasts until the last look that still found
//! no newer input; the look that finds the next input closes it. So a gap is
//! never longer than the idle time the daemon could prove, and it is shorter
//! than the real one by at most the time between two looks. The final gap runs
//! from the last credited input to the last look before the end.

use std::time::Duration;

use crate::core::session::deadline::Reason;
use crate::core::time::clock::Timestamp;

/// How many of the longest gaps a session keeps (and a summary lists).
pub const GAPS_KEPT: usize = 16;

/// Idle gaps at least this long are idle time; shorter pauses count as
/// activity (`active` is the duration minus the gaps this long).
pub const IDLE_GAP_MIN: Duration = Duration::from_secs(60);

/// One idle gap, in whole seconds: from `offset` after login, `len` long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gap {
    pub offset: u64,
    pub len: u64,
}

impl Gap {
    /// The gap from `start` lasting `len`, measured from `registered_at`.
    pub fn between(registered_at: Timestamp, start: Timestamp, len: Duration) -> Gap {
        Gap {
            offset: start.since(registered_at).as_secs(),
            len: len.as_secs(),
        }
    }
}

/// The idle deadlines of a dry run already logged as would-be expiries, so
/// each is logged once: the deadline (without any reprieve) per limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DryRunMemory {
    pub idle: Option<Timestamp>,
    pub max: Option<Timestamp>,
    /// The latest absolute deadline (certificate, `timeoutctl deadline`,
    /// runtime_max, window, quota) logged: those are fixed instants, so every one up to it
    /// was logged. Not kept across a restart, which may log one again.
    pub absolute: Option<Timestamp>,
}

impl DryRunMemory {
    /// Whether the deadline `at` of `reason` was already logged.
    pub fn logged(&self, reason: Reason, at: Timestamp) -> bool {
        match reason {
            Reason::Idle => self.idle == Some(at),
            Reason::Max => self.max == Some(at),
            Reason::Cert
            | Reason::Deadline
            | Reason::RuntimeMax
            | Reason::Window
            | Reason::Quota => self.absolute.is_some_and(|w| at <= w),
        }
    }

    pub fn record(&mut self, reason: Reason, at: Timestamp) {
        match reason {
            Reason::Idle => self.idle = Some(at),
            Reason::Max => self.max = Some(at),
            Reason::Cert
            | Reason::Deadline
            | Reason::RuntimeMax
            | Reason::Window
            | Reason::Quota => {
                self.absolute = Some(self.absolute.map_or(at, |w| w.max(at)));
            }
        }
    }
}

/// The durable part of a session's evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The longest gaps seen, at most [`GAPS_KEPT`], in no order.
    gaps: Vec<Gap>,
    /// The longest gap seen, in seconds.
    pub idle_max: u64,
    /// The sum of the gaps of at least [`IDLE_GAP_MIN`], in seconds.
    pub idle_total: u64,
    /// Warnings written (or attempted) to the session's terminals.
    pub warnings: u32,
    /// `tamper_suspected` events logged for the session.
    pub tampers: u32,
    /// Deadlines of a dry run that passed without being enforced.
    pub dry_run_expiries: u32,
    pub dry_run: DryRunMemory,
}

/// The numbers of a `session_summary` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub duration: u64,
    pub active: u64,
    pub idle_max: u64,
    /// Sorted by offset.
    pub gaps: Vec<Gap>,
}

impl Summary {
    /// `OFF:LEN,OFF:LEN,...`, empty when there are none.
    pub fn gaps_text(&self) -> String {
        self.gaps
            .iter()
            .map(|g| format!("{}:{}", g.offset, g.len))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Evidence {
    /// Evidence read back from durable state: `gaps` beyond [`GAPS_KEPT`]
    /// (a hand-edited file) keep only the longest.
    pub fn restored(mut self, gaps: Vec<Gap>) -> Evidence {
        self.gaps.clear();
        for g in gaps {
            keep_longest(&mut self.gaps, g);
        }
        self
    }

    /// The gaps kept, in no order.
    pub fn gaps(&self) -> &[Gap] {
        &self.gaps
    }

    /// Counts one closed idle gap.
    pub fn add_gap(&mut self, gap: Gap) {
        if gap.len == 0 {
            return;
        }
        self.idle_max = self.idle_max.max(gap.len);
        if gap.len >= IDLE_GAP_MIN.as_secs() {
            self.idle_total = self.idle_total.saturating_add(gap.len);
        }
        keep_longest(&mut self.gaps, gap);
    }

    /// The summary of a session `duration` long whose last gap is `last`
    /// (still open at the end).
    pub fn summary(&self, duration: Duration, last: Option<Gap>) -> Summary {
        let mut all = self.clone();
        if let Some(g) = last {
            all.add_gap(g);
        }
        let duration = duration.as_secs();
        let mut gaps = all.gaps;
        gaps.sort_unstable();
        Summary {
            duration,
            active: duration.saturating_sub(all.idle_total),
            idle_max: all.idle_max,
            gaps,
        }
    }
}

/// Adds `gap` to `kept` if it is among the [`GAPS_KEPT`] longest (on equal
/// lengths the earlier gap stays).
fn keep_longest(kept: &mut Vec<Gap>, gap: Gap) {
    if kept.len() < GAPS_KEPT {
        kept.push(gap);
        return;
    }
    let shortest = kept
        .iter()
        .enumerate()
        .min_by_key(|(_, g)| (g.len, std::cmp::Reverse(g.offset)))
        .map(|(i, g)| (i, g.len));
    if let Some((i, len)) = shortest {
        if gap.len > len {
            kept[i] = gap;
        }
    }
}

/// What the looks at a session found since its last credited input; not
/// durable (after a restart the open gap starts again at the last input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Looks {
    /// The credited input the open gap starts at.
    credited: Timestamp,
    /// The last look that found no input newer than `credited`.
    quiet_until: Timestamp,
}

impl Looks {
    pub fn new(last_activity: Timestamp) -> Looks {
        Looks {
            credited: last_activity,
            quiet_until: last_activity,
        }
    }

    /// A look at `now` that credited input up to `last_activity`. Returns
    /// the gap it closed, if input newer than the open gap's start was found:
    /// its start and length.
    pub fn look(
        &mut self,
        last_activity: Timestamp,
        now: Timestamp,
    ) -> Option<(Timestamp, Duration)> {
        if last_activity <= self.credited {
            self.quiet_until = self.quiet_until.max(now);
            return None;
        }
        let closed = (self.credited, self.quiet_until.since(self.credited));
        self.credited = last_activity;
        self.quiet_until = now.max(last_activity);
        Some(closed)
    }

    /// The gap still open: its start and length.
    pub fn open_gap(&self) -> (Timestamp, Duration) {
        (self.credited, self.quiet_until.since(self.credited))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    fn gap(offset: u64, len: u64) -> Gap {
        Gap { offset, len }
    }

    #[test]
    fn a_gap_lasts_until_the_last_look_that_found_nothing() {
        let mut looks = Looks::new(t(100));
        assert_eq!(looks.look(t(100), t(160)), None);
        assert_eq!(looks.look(t(100), t(220)), None);
        // Input at 250 is found at 280: the gap proven is 100..220.
        assert_eq!(
            looks.look(t(250), t(280)),
            Some((t(100), Duration::from_secs(120)))
        );
        // Typing on: each look finds newer input, nothing idle is proven.
        assert_eq!(
            looks.look(t(335), t(340)),
            Some((t(250), Duration::from_secs(30)))
        );
        assert_eq!(looks.open_gap(), (t(335), Duration::from_secs(5)));
        assert_eq!(looks.look(t(335), t(400)), None);
        assert_eq!(looks.open_gap(), (t(335), Duration::from_secs(65)));
    }

    #[test]
    fn active_idle_max_and_the_gaps_listed() {
        let mut e = Evidence::default();
        e.add_gap(gap(10, 30)); // a pause, not idle time
        e.add_gap(gap(100, 600));
        e.add_gap(gap(0, 0)); // nothing
        e.add_gap(gap(2000, 60)); // exactly the threshold: idle
        let s = e.summary(Duration::from_millis(3_600_900), Some(gap(3000, 500)));
        assert_eq!(s.duration, 3600);
        assert_eq!(s.active, 3600 - 600 - 60 - 500);
        assert_eq!(s.idle_max, 600);
        assert_eq!(s.gaps_text(), "10:30,100:600,2000:60,3000:500");
        // The summary does not change the evidence kept.
        assert_eq!(e.gaps().len(), 3);
        assert_eq!(e.summary(Duration::ZERO, None).active, 0);
        assert_eq!(
            Evidence::default()
                .summary(Duration::from_secs(5), None)
                .gaps_text(),
            ""
        );
    }

    #[test]
    fn only_the_sixteen_longest_gaps_are_kept_and_the_max_and_total_see_all() {
        let mut e = Evidence::default();
        for i in 0..100u64 {
            e.add_gap(gap(i * 1000, 100 + (i * 37) % 100));
        }
        assert_eq!(e.gaps().len(), GAPS_KEPT);
        let mut lens: Vec<u64> = (0..100u64).map(|i| 100 + (i * 37) % 100).collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        let mut kept: Vec<u64> = e.gaps().iter().map(|g| g.len).collect();
        kept.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(kept, lens[..GAPS_KEPT]);
        assert_eq!(e.idle_max, 199);
        assert_eq!(e.idle_total, lens.iter().sum::<u64>());
        let s = e.summary(Duration::from_secs(200_000), None);
        assert!(s.gaps.windows(2).all(|w| w[0].offset < w[1].offset));
        assert!(s.gaps_text().len() < 16 * 20);
        // A restored list that is too long keeps the longest.
        let restored = Evidence::default().restored((0..40).map(|i| gap(i, i)).collect());
        assert_eq!(restored.gaps().iter().map(|g| g.len).min(), Some(24));
    }

    #[test]
    fn dry_run_memory_remembers_one_deadline_per_limit() {
        let mut m = DryRunMemory::default();
        assert!(!m.logged(Reason::Idle, t(10)));
        m.record(Reason::Idle, t(10));
        assert!(m.logged(Reason::Idle, t(10)));
        assert!(
            !m.logged(Reason::Idle, t(20)),
            "a new idle deadline is armed"
        );
        assert!(!m.logged(Reason::Max, t(10)));
    }
}
