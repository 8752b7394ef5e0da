//! Deadlines of a dry-run rule: logged as would-be expiries (`session_expired
//! ... dry_run=1`) while nothing is signalled, and the `dry_run=1` mark on the
//! events that in dry-run report what would have happened.

use crate::core::audit::event::Event;
use crate::core::session::deadline::Deadline;
use crate::core::session::Session;
use crate::engine::{Engine, System};

/// Adds `dry_run=1` to an event of a session under a dry-run rule.
pub(super) fn mark(ev: Event, s: &Session) -> Event {
    if s.limits.dry_run() {
        ev.field("dry_run", 1)
    } else {
        ev
    }
}

impl<S: System> Engine<S> {
    /// A deadline of a dry run passed: `expired` (the `session_expired`
    /// event) is logged with `dry_run=1`, the deadline is remembered so it
    /// is logged once, and the session goes on.
    pub(super) fn would_expire(&mut self, s: &mut Session, d: Deadline, expired: Event) {
        self.sys.log(mark(expired, s));
        s.dry_run_expired(d);
    }
}
