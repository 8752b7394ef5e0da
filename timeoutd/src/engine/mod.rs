//! The engine: the session table and its timer queue, driven by requests
//! (registration, logout, admin verbs) and by time (waking each session
//! exactly when its next warning or deadline can have come). All effects go
//! through the [`System`] port, so the whole life of a session can be driven
//! in tests with a fake clock and fake /proc.
//!
//! One file per role: `register.rs` (login and logout), `wake.rs` (measuring,
//! warning, matching again), `ending/` (the kill ladder, exits, the summary
//! line), `verbs/` (the control verbs), `recovery.rs` (after a restart),
//! `timers.rs` (the queue).
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};

use crate::core::audit::event::{Event, EventName};
use crate::core::policy::Policy;
use crate::core::session::{ProcRef, Session, SessionId};
use crate::core::state::deadlines_store::AdminDeadlines;
use crate::core::state::record::JournalEntry;
use crate::core::state::revocations::Revocations;
use crate::core::time::civil::Civil;
use crate::core::time::clock::Timestamp;

mod civil;
mod dry_run;
mod ending;
mod recovery;
mod register;
pub(crate) mod system;
mod verbs;
use verbs::{deadlines, revalidate};
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
mod timers;
mod wake;
mod witness;

pub(crate) use recovery::FoundLogin;
pub(crate) use register::initial_tty_class;
pub(crate) use revalidate::Check;
pub(crate) use system::ConnSearch;
pub(crate) use system::{Peer, ProcFacts, System, TtyProbe};

use timers::Timers;

/// The daemon's decisions about every live session.
pub(crate) struct Engine<S: System> {
    pub(crate) sys: S,
    policy: Policy,
    pub(crate) admin_group: Option<String>,
    pub(crate) revocations: Revocations,
    /// Administrators' deadlines (`timeoutctl deadline`).
    pub(crate) admin_deadlines: AdminDeadlines,
    /// Boxed: a `Session` is over a kilobyte, and a table of them inline
    /// would keep that much for every empty slot too (a third or more of
    /// them after each doubling); growing it would also free a buffer large
    /// enough to raise glibc's mmap and trim thresholds for the rest of
    /// the run (later megabyte buffers then stay in the heap once freed).
    sessions: HashMap<SessionId, Box<Session>>,
    /// Each session's leader, to find the session of a logout.
    leaders: HashMap<ProcRef, SessionId>,
    timers: Timers,
    /// Users with live sessions, for re-validation through PAM.
    reval: revalidate::Revalidation,
    /// Windows and quotas: the zone, the quota days, the users' ledger.
    pub(crate) civil: Civil,
    /// Ending sessions whose processes were all seen gone, to be proved
    /// empty together at `exit_check_at` (see `exits.rs`).
    exited: Vec<SessionId>,
    exit_check_at: Option<Timestamp>,
    /// Live sessions whose leader is gone: when what was left of them was
    /// last set to be watched (see `wake.rs`).
    leaderless: HashMap<SessionId, Timestamp>,
    /// Leaders a revocation hung up in its first pass, before their
    /// sessions' own passes (see `kill.rs`).
    hung_up: HashSet<ProcRef>,
}

impl<S: System> Engine<S> {
    pub(crate) fn new(sys: S, policy: Policy) -> Self {
        Self {
            sys,
            policy,
            admin_group: None,
            revocations: Revocations::default(),
            admin_deadlines: AdminDeadlines::default(),
            sessions: HashMap::new(),
            leaders: HashMap::new(),
            timers: Timers::default(),
            reval: revalidate::Revalidation::default(),
            civil: Civil::default(),
            exited: Vec::new(),
            exit_check_at: None,
            leaderless: HashMap::new(),
            hung_up: HashSet::new(),
        }
    }

    pub(crate) fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id).map(|s| &**s)
    }

    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// When the engine next needs to run, if ever.
    pub(crate) fn next_wake(&mut self) -> Option<Timestamp> {
        let revocation = self.revocations.next_expiry();
        let timer = self.timers.next();
        [timer, revocation, self.exit_check_at]
            .into_iter()
            .flatten()
            .min()
    }

    fn schedule(&mut self, id: SessionId, at: Timestamp) {
        self.timers.schedule(id, at);
    }

    /// Drops a session from the table, its timer and durable state.
    fn forget(&mut self, id: SessionId) {
        if let Some(s) = self.sessions.remove(&id) {
            self.leaders.remove(&s.leader);
            self.reval.session_removed(s.login.uid);
            self.quota_session_closed(&s);
            self.sys.persist(JournalEntry::Gone(id));
            if let Some(cg) = &s.cgroup {
                self.sys.cgroup_release(cg);
            }
        }
        self.timers.cancel(id);
        self.leaderless.remove(&id);
        self.sys.unwatch(id);
    }

    fn insert_session(&mut self, s: Session) {
        self.leaders.insert(s.leader, s.id);
        self.sys.watch_leader(s.id, s.leader);
        let now = self.sys.now();
        self.reval.session_added(s.login.uid, &s.login.user, now);
        self.quota_session_opened(&s, now);
        self.sessions.insert(s.id, Box::new(s));
    }

    /// Rewrites durable state from the live table when the port asks for it.
    fn maybe_compact(&mut self) {
        if self.sys.wants_compaction(self.sessions.len()) {
            let mut live = self.sessions.values().map(|s| s.record());
            self.sys.compact(&mut live);
        }
    }

    fn sessions_all(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values().map(|s| &**s)
    }

    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.sessions.get_mut(&id).map(|s| &mut **s)
    }
}

/// An event carrying the keys every session event has.
fn session_event(name: EventName, s: &Session) -> Event {
    let ev = Event::new(name)
        .field("id", s.id)
        .field("user", &s.login.user)
        .field("uid", s.login.uid)
        .field("service", &s.login.service)
        .field("tty", s.tty_label())
        .field("rhost", &s.login.rhost)
        .field("pid", s.leader.pid)
        .field("rule", &s.rule);
    s.login.auth.event_fields(ev)
}
