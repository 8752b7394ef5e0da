//! The session table and its timer queue: registration, logout, reload, and
//! waking each session exactly when its next warning or deadline can have
//! come. All effects go through the [`System`] trait, so the whole life of a
//! session can be driven in tests with a fake clock and fake /proc.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use session_timeout_proto::{ErrorCode, Registration, Response, SessionKey, AUDIT_UNSET};

use crate::core::clock::Timestamp;
use crate::core::deadline::WarnMemory;
use crate::core::duration::{self, Human};
use crate::core::event::{Event, Severity};
use crate::core::policy::{Policy, TtyClass};
use crate::core::record::{JournalEntry, SessionRecord};
use crate::core::revocations::Revocations;
use crate::core::session::{EndReason, Login, Phase, ProcRef, Scope, Session, SessionId};

mod admin;
mod recovery;
pub mod system;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
mod wake;

pub use recovery::FoundLogin;
pub use system::{Peer, ProcFacts, System, TtyProbe};

/// The terminal class PAM_TTY implies, and whether that is final.
/// sshd says "ssh" before the pty exists: assume a pty until a look settles it.
pub fn initial_tty_class(pam_tty: &str) -> (TtyClass, bool) {
    let name = pam_tty.strip_prefix("/dev/").unwrap_or(pam_tty);
    if name.starts_with("pts/") {
        (TtyClass::Pty, true)
    } else if name.starts_with("tty") || name == "console" {
        (TtyClass::Console, true)
    } else if name == "ssh" {
        (TtyClass::Pty, false)
    } else {
        (TtyClass::None, true)
    }
}

/// A refused login's processes are signalled this long after the refusal,
/// if the PAM stack did not end the login by itself (the reply was lost).
const REFUSED_LOGIN_GRACE: Duration = Duration::from_secs(2);
/// Longest pause between looks for a terminal that has not appeared yet.
const DISCOVERY_MAX_BACKOFF: Duration = Duration::from_secs(30);
const DISCOVERY_FIRST: Duration = Duration::from_millis(200);
/// Sessions are looked at at least this often, to notice a leader that died silently.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(600);

pub struct Engine<S: System> {
    pub sys: S,
    policy: Policy,
    pub(crate) admin_group: Option<String>,
    pub(crate) revocations: Revocations,
    sessions: HashMap<SessionId, Session>,
    leaders: HashMap<ProcRef, SessionId>,
    timers: BinaryHeap<Reverse<(Timestamp, SessionId)>>,
    /// The one live timer of each session; heap entries that disagree are stale.
    due: HashMap<SessionId, Timestamp>,
}

impl<S: System> Engine<S> {
    pub fn new(sys: S, policy: Policy) -> Self {
        Self {
            sys,
            policy,
            admin_group: None,
            revocations: Revocations::default(),
            sessions: HashMap::new(),
            leaders: HashMap::new(),
            timers: BinaryHeap::new(),
            due: HashMap::new(),
        }
    }

    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// When the engine next needs to run, if ever.
    pub fn next_wake(&mut self) -> Option<Timestamp> {
        let revocation = self.revocations.next_expiry();
        let timer = self.next_timer();
        match (timer, revocation) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn next_timer(&mut self) -> Option<Timestamp> {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if self.due.get(&id) == Some(&at) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    pub(crate) fn schedule(&mut self, id: SessionId, at: Timestamp) {
        if self.due.get(&id) == Some(&at) {
            return;
        }
        self.due.insert(id, at);
        self.timers.push(Reverse((at, id)));
        // Rescheduling leaves stale entries behind; compact when they dominate.
        if self.timers.len() > 2 * self.due.len() + 1024 {
            self.timers = self
                .due
                .iter()
                .map(|(id, at)| Reverse((*at, *id)))
                .collect();
        }
    }

    /// Runs every wake-up that is due now.
    pub fn run_due(&mut self) {
        let now = self.sys.now();
        self.expire_revocations(now);
        let mut batch_started = false;
        while let Some(at) = self.next_timer() {
            if at > now {
                break;
            }
            let Some(Reverse((_, id))) = self.timers.pop() else {
                break;
            };
            self.due.remove(&id);
            if !batch_started {
                self.sys.begin_batch();
                batch_started = true;
            }
            self.wake(id, now);
        }
    }

    /// Handles a register request.
    pub fn register(&mut self, reg: Registration, peer: Peer) -> Response {
        if peer.uid != 0 {
            self.sys.log(
                Event::new("request_denied")
                    .with_severity(Severity::Warning)
                    .field("request", "register")
                    .field("peer_uid", peer.uid)
                    .field("peer_pid", peer.pid)
                    .field("user", &reg.user)
                    .field("reason", "only root may register sessions"),
            );
            return Response::Error {
                code: ErrorCode::PermissionDenied,
                message: "only root may register sessions".into(),
            };
        }
        let groups = self.sys.groups_of(&reg.user);
        // A revoked user's login is refused in the reply, and the session is
        // also registered and ended at once: the reply may never arrive (the
        // module may have given up waiting and let the login in).
        let refused = self.refusal(&reg.user, &groups, &reg.service, &reg.rhost);
        let leader = ProcRef {
            pid: reg.pid,
            start_time: reg.start_time,
        };
        if let Some((message, _)) = &refused {
            if reg.pid == 0 || !self.sys.alive(leader) || self.leaders.contains_key(&leader) {
                return Response::Refused {
                    message: message.clone(),
                };
            }
        }
        if reg.pid == 0 || !self.sys.alive(leader) {
            return Response::Error {
                code: ErrorCode::NotFound,
                message: format!(
                    "process {} with start time {} does not exist",
                    reg.pid, reg.start_time
                ),
            };
        }
        if let Some(id) = self.leaders.get(&leader).copied() {
            return Response::Registered {
                session_id: id.0,
                banner: self.banner(id),
            };
        }
        // The audit session is the login's own only if the parent was read
        // and differs (sshd, login); su and sudo keep the caller's, and a
        // parent that cannot be read proves nothing: use the subtree then.
        let parent_sid = self.sys.parent_sessionid(leader);
        let scope = match parent_sid {
            Some(p) if reg.sessionid != AUDIT_UNSET && p != reg.sessionid => {
                Scope::AuditSession(reg.sessionid)
            }
            _ => Scope::Subtree,
        };

        let (tty_class, tty_settled) = initial_tty_class(&reg.tty);
        let login = Login {
            user: reg.user,
            uid: reg.uid,
            service: reg.service,
            pam_tty: reg.tty,
            rhost: reg.rhost,
            ruser: reg.ruser,
            groups,
        };
        let now = self.sys.now();
        let id = SessionId(self.sys.allocate_id());
        let mut session = Session {
            id,
            login,
            leader,
            scope,
            registered_at: now,
            rule: String::new(),
            limits: self.policy.defaults.clone(),
            ttys: Vec::new(),
            last_activity: now,
            warned: WarnMemory::default(),
            not_before: None,
            phase: Phase::Active,
            tty_class,
            tty_settled,
            io_seen: Vec::new(),
            last_tamper_log: None,
            warnings_sent: Vec::new(),
            tampers_seen: Vec::new(),
            discovery_backoff: DISCOVERY_FIRST,
            adopted: false,
        };
        let decision = self.policy.decide(&session.facts());
        session.rule = decision.rule;
        session.limits = decision.limits;
        let ev = session_event("session_open", &session)
            .field("scope", scope_label(scope))
            .field("tty_class", session.tty_class.as_str())
            .field("idle_limit", duration::limit(session.limits.idle))
            .field("max_limit", duration::limit(session.limits.max))
            .field("loginuid", reg.loginuid);
        self.sys.log(ev);
        self.sys
            .persist(JournalEntry::Upsert(Box::new(record_of(&session))));
        self.sessions.insert(id, session);
        self.leaders.insert(leader, id);
        self.maybe_compact();
        // The terminal does not exist yet (sshd opens the session first): look soon.
        self.schedule(id, now + DISCOVERY_FIRST);
        if let Some((message, by_uid)) = refused {
            if let Some(s) = self.sessions.get(&id) {
                let ev = session_event("session_revoked", s)
                    .with_severity(Severity::Notice)
                    .field("by_uid", by_uid)
                    .field("reason", "login of a revoked user");
                self.sys.log(ev);
            }
            self.end_after(id, EndReason::Revoked { by_uid }, REFUSED_LOGIN_GRACE);
            return Response::Refused { message };
        }
        Response::Registered {
            session_id: id.0,
            banner: self.banner(id),
        }
    }

    /// The text shown at login: the limits that apply.
    fn banner(&self, id: SessionId) -> String {
        let Some(s) = self.sessions.get(&id) else {
            return String::new();
        };
        let idle = s
            .limits
            .idle
            .map(|d| format!("Idle sessions close after {}", Human(d)));
        let max = s.limits.max.map(|d| {
            format!(
                "this session closes at {} UTC at the latest",
                s.registered_at + d
            )
        });
        match (idle, max) {
            (Some(i), Some(m)) => format!("{i}; {m}."),
            (Some(i), None) => format!("{i}."),
            (None, Some(_)) => format!(
                "This session closes at {} UTC at the latest.",
                s.registered_at + s.limits.max.unwrap_or_default()
            ),
            (None, None) => String::new(),
        }
    }

    /// Handles a logout from the PAM module.
    pub fn unregister(&mut self, key: SessionKey, peer: Peer) -> Response {
        if peer.uid != 0 {
            self.sys.log(
                Event::new("request_denied")
                    .with_severity(Severity::Warning)
                    .field("request", "unregister")
                    .field("peer_uid", peer.uid)
                    .field("peer_pid", peer.pid)
                    .field("reason", "only root may unregister sessions"),
            );
            return Response::Error {
                code: ErrorCode::PermissionDenied,
                message: "only root may unregister sessions".into(),
            };
        }
        let leader = ProcRef {
            pid: key.pid,
            start_time: key.start_time,
        };
        let Some(id) = self.leaders.get(&leader).copied() else {
            return Response::Unregistered { session_id: 0 };
        };
        self.leaders.remove(&leader);
        let now = self.sys.now();
        if let Some(s) = self.sessions.get(&id) {
            if s.is_active() {
                let ev = session_event("session_close", s)
                    .field("reason", "logout")
                    .field("duration", Human(now.since(s.registered_at)));
                self.sys.log(ev);
                self.forget(id);
            }
            // A terminating session goes on until every process is gone.
        }
        Response::Unregistered { session_id: id.0 }
    }

    pub(crate) fn forget(&mut self, id: SessionId) {
        if let Some(s) = self.sessions.remove(&id) {
            self.leaders.remove(&s.leader);
            self.sys.persist(JournalEntry::Gone(id));
        }
        self.due.remove(&id);
    }

    pub(crate) fn insert_session(&mut self, s: Session) {
        self.leaders.insert(s.leader, s.id);
        self.sessions.insert(s.id, s);
    }

    pub(crate) fn maybe_compact(&mut self) {
        if self.sys.wants_compaction(self.sessions.len()) {
            let live = self.sessions.values().map(record_of).collect();
            self.sys.compact(live);
        }
    }

    /// Installs a new policy: live sessions are matched again and re-examined now.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
        let now = self.sys.now();
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            let Some(s) = self.sessions.get_mut(&id) else {
                continue;
            };
            if !s.is_active() {
                continue;
            }
            let d = self.policy.decide(&s.facts());
            s.rule = d.rule;
            s.limits = d.limits;
            self.schedule(id, now);
        }
    }

    pub(crate) fn sessions_all(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    pub(crate) fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.sessions.get_mut(&id)
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    pub(crate) fn discovery_limits() -> (Duration, Duration) {
        (DISCOVERY_MAX_BACKOFF, LIVENESS_INTERVAL)
    }
}

fn scope_label(scope: Scope) -> String {
    match scope {
        Scope::AuditSession(id) => format!("audit:{id}"),
        Scope::Subtree => "subtree".to_owned(),
    }
}

/// The durable form of a session.
pub(crate) fn record_of(s: &Session) -> SessionRecord {
    SessionRecord {
        id: s.id,
        login: s.login.clone(),
        leader: s.leader,
        scope: s.scope,
        registered_at: s.registered_at,
        last_activity: s.last_activity,
        tty_class: s.tty_class,
        tty_settled: s.tty_settled,
        ttys: s.ttys.iter().map(|t| t.name.clone()).collect(),
        adopted: s.adopted,
    }
}

/// An event carrying the keys every session event has.
pub(crate) fn session_event(name: &'static str, s: &Session) -> Event {
    Event::new(name)
        .field("id", s.id)
        .field("user", &s.login.user)
        .field("uid", s.login.uid)
        .field("service", &s.login.service)
        .field("tty", s.tty_label())
        .field("rhost", &s.login.rhost)
        .field("pid", s.leader.pid)
        .field("rule", &s.rule)
}
