//! The timer queue: each session has at most one live wake-up time. A
//! min-heap orders them; rescheduling leaves the old heap entry behind, and a
//! heap entry counts only while the `due` map agrees with it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::core::session::SessionId;
use crate::core::time::clock::Timestamp;

/// Stale heap entries tolerated beyond twice the live ones before the heap
/// is rebuilt from the live timers.
const COMPACT_SLACK: usize = 1024;

/// One wake-up time per session, earliest first.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Timestamp, SessionId)>>,
    /// The one live timer of each session; heap entries that disagree are stale.
    due: HashMap<SessionId, Timestamp>,
}

impl Timers {
    /// Sets the session's wake-up to `at`, replacing any earlier one.
    pub(crate) fn schedule(&mut self, id: SessionId, at: Timestamp) {
        if self.due.get(&id) == Some(&at) {
            return;
        }
        self.due.insert(id, at);
        self.heap.push(Reverse((at, id)));
        // Rescheduling leaves stale entries behind; compact when they dominate.
        if self.heap.len() > 2 * self.due.len() + COMPACT_SLACK {
            self.heap = self
                .due
                .iter()
                .map(|(id, at)| Reverse((*at, *id)))
                .collect();
        }
    }

    /// Drops the session's wake-up, if it has one.
    /// When `id` is due, if it has a timer.
    pub(crate) fn due_of(&self, id: SessionId) -> Option<Timestamp> {
        self.due.get(&id).copied()
    }

    pub(crate) fn cancel(&mut self, id: SessionId) {
        self.due.remove(&id);
    }

    /// The earliest live wake-up, dropping stale entries on the way.
    pub(crate) fn next(&mut self) -> Option<Timestamp> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if self.due.get(&id) == Some(&at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes the earliest live wake-up if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<SessionId> {
        let at = self.next()?;
        if at > now {
            return None;
        }
        let Reverse((_, id)) = self.heap.pop()?;
        self.due.remove(&id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    #[test]
    fn pops_in_time_order_and_only_when_due() {
        let mut q = Timers::default();
        q.schedule(SessionId(1), t(30));
        q.schedule(SessionId(2), t(10));
        q.schedule(SessionId(3), t(20));
        assert_eq!(q.next(), Some(t(10)));
        assert_eq!(q.pop_due(t(5)), None);
        assert_eq!(q.pop_due(t(25)), Some(SessionId(2)));
        assert_eq!(q.pop_due(t(25)), Some(SessionId(3)));
        assert_eq!(q.pop_due(t(25)), None);
        assert_eq!(q.next(), Some(t(30)));
    }

    #[test]
    fn rescheduling_makes_the_old_entry_stale() {
        let mut q = Timers::default();
        q.schedule(SessionId(1), t(10));
        q.schedule(SessionId(1), t(50));
        q.schedule(SessionId(2), t(20));
        // The entry at 10 is stale: session 1 now wakes at 50.
        assert_eq!(q.next(), Some(t(20)));
        assert_eq!(q.pop_due(t(100)), Some(SessionId(2)));
        assert_eq!(q.pop_due(t(100)), Some(SessionId(1)));
        assert_eq!(q.pop_due(t(100)), None);
        // Moving a timer earlier works too.
        q.schedule(SessionId(3), t(90));
        q.schedule(SessionId(3), t(60));
        assert_eq!(q.pop_due(t(70)), Some(SessionId(3)));
        assert_eq!(q.next(), None);
    }

    #[test]
    fn a_cancelled_timer_never_fires() {
        let mut q = Timers::default();
        q.schedule(SessionId(1), t(10));
        q.schedule(SessionId(2), t(20));
        q.cancel(SessionId(1));
        assert_eq!(q.next(), Some(t(20)));
        assert_eq!(q.pop_due(t(100)), Some(SessionId(2)));
        assert_eq!(q.next(), None);
    }

    #[test]
    fn stale_entries_are_compacted_away() {
        let mut q = Timers::default();
        for i in 0..10_000 {
            q.schedule(SessionId(1), t(i));
        }
        assert!(q.heap.len() <= 2 + COMPACT_SLACK, "{}", q.heap.len());
        assert_eq!(q.pop_due(t(20_000)), Some(SessionId(1)));
        assert_eq!(q.next(), None);
    }
}
