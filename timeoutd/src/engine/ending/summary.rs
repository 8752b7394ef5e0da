//! The evidence a session leaves: what each look found (the idle gaps it
//! closes), and the one `session_summary` line logged when the session ends,
//! whichever way it ends. The line's format is a stable interface (README,
//! "Events"; `timeoutctl report` reads it).

use crate::core::audit::event::{Event, EventName};
use crate::core::session::evidence::Gap;
use crate::core::session::Session;
use crate::core::time::clock::Timestamp;
use crate::engine::{Engine, System};

/// The version of the `session_summary` format (`v=`).
const SUMMARY_VERSION: u32 = 1;

/// After a look at `now` that measured the session's input: the gap it
/// closed, if it found newer input, joins the evidence.
pub(in crate::engine) fn note_look(s: &mut Session, now: Timestamp) {
    if let Some((start, len)) = s.looks.look(s.last_activity, now) {
        s.evidence
            .add_gap(Gap::between(s.registered_at, start, len));
    }
}

/// Whole seconds of a limit (at least 1: a limit is never zero), or `off`.
fn limit_secs(limit: Option<std::time::Duration>) -> String {
    limit.map_or_else(|| "off".to_owned(), |d| d.as_secs().max(1).to_string())
}

/// The `session_summary` line of a session that ends `now` (`end` is the
/// `reason=` of its `session_close`, or of its `session_terminated`).
pub(in crate::engine) fn summary_event(s: &Session, end: &str, now: Timestamp) -> Event {
    let (start, len) = s.looks.open_gap();
    let last = (!len.is_zero()).then(|| Gap::between(s.registered_at, start, len));
    let sum = s.evidence.summary(now.since(s.registered_at), last);
    Event::new(EventName::SessionSummary)
        .field("v", SUMMARY_VERSION)
        .field("id", s.id)
        .field("user", &s.login.user)
        .field("uid", s.login.uid)
        .field("service", &s.login.service)
        .field("tty", s.tty_label())
        .field("rhost", &s.login.rhost)
        .field("rule", &s.rule)
        .field("duration", sum.duration)
        .field("active", sum.active)
        .field("idle_max", sum.idle_max)
        .field("gaps", sum.gaps_text())
        .field("warnings", s.evidence.warnings)
        .field("tamper", s.evidence.tampers)
        .field("end", end)
        .field("dry_run_expiries", s.evidence.dry_run_expiries)
        .field("limit_idle", limit_secs(s.limits.idle))
        .field("limit_max", limit_secs(s.limits.max))
}

impl<S: System> Engine<S> {
    /// Logs the event that ends a session (`session_close` or
    /// `session_terminated`), then its summary: every ending goes through
    /// here, so each session has exactly one summary.
    pub(in crate::engine) fn log_end(
        &mut self,
        ending: Event,
        s: &Session,
        end: &str,
        now: Timestamp,
    ) {
        self.sys.log(ending);
        self.sys.log(summary_event(s, end, now));
    }
}
