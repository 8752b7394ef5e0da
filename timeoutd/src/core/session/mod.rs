//! One tracked login session: who it is, which processes are its own, what
//! has been seen of it, and the step of its ending. Pure.

pub(crate) mod connection;
pub(crate) mod deadline;
mod dry_run;
pub(crate) mod evidence;
pub(crate) mod identity;
pub(crate) mod terminal;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::core::policy::{Limits, LoginFacts, NottyMode, Policy, TtyClass};
use crate::core::session::connection::ConnWatch;
use crate::core::session::deadline::{Reason, WarnMemory};
use crate::core::session::evidence::{Evidence, Looks};
use crate::core::session::terminal::TtyWatch;
use crate::core::state::record::SessionRecord;
use crate::core::time::clock::Timestamp;

/// The daemon's id for a session, unique across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A process identified by pid and start time (field 22 of /proc/PID/stat),
/// so that a reused pid is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcRef {
    pub pid: u32,
    pub start_time: u64,
}

/// Which processes belong to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every process carrying this audit session id (set by pam_loginuid).
    AuditSession(u32),
    /// The subtree of the leader: the service did not set a new audit session (su, sudo).
    Subtree,
}

impl fmt::Display for Scope {
    /// `audit:ID` or `subtree`, as events show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::AuditSession(id) => write!(f, "audit:{id}"),
            Scope::Subtree => f.write_str("subtree"),
        }
    }
}

/// Who logged in, as the PAM module reported it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Login {
    pub user: String,
    pub uid: u32,
    pub service: String,
    /// PAM_TTY ("ssh" for sshd, which opens the session before the pty exists).
    pub pam_tty: String,
    pub rhost: String,
    pub ruser: String,
    /// Primary and supplementary groups, resolved through NSS at session open.
    pub groups: Vec<String>,
    /// How they authenticated (methods, certificate, runtime limit).
    pub auth: identity::Identity,
}

/// The signal step a terminating session is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillStep {
    /// Nothing sent yet: a refused login is given a moment to be turned
    /// away by the PAM stack itself before its processes are signalled.
    Pending,
    /// SIGHUP and SIGCONT sent; waiting `grace`.
    HangUp,
    /// SIGTERM sent.
    Terminate,
    /// SIGKILL sent this many times.
    Kill(u32),
}

/// Why a session is being ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Expired(Reason),
    /// `timeoutctl kill` by this uid.
    Killed {
        by_uid: u32,
    },
    /// `timeoutctl revoke` by this uid.
    Revoked {
        by_uid: u32,
    },
    /// Re-validation through the PAM account stack found the account
    /// invalid (expired, disabled, unknown).
    AccountInvalid,
    /// The login this session was opened inside (su, sudo) is ending.
    WithLogin {
        login: SessionId,
    },
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired(r) => r.as_str(),
            Self::Killed { .. } => "killed",
            Self::Revoked { .. } => "revoked",
            Self::AccountInvalid => "account_invalid",
            Self::WithLogin { .. } => "login_ended",
        }
    }
}

/// The first pause before looking again for a terminal that has not appeared
/// yet (sshd opens the session before the pty exists); it doubles after each look.
pub const DISCOVERY_FIRST: Duration = Duration::from_millis(200);

/// How many warnings and tamper observations a session remembers for `show`.
pub const HISTORY_LIMIT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Active,
    Terminating { reason: EndReason, step: KillStep },
}

/// Everything the daemon tracks about one session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub login: Login,
    pub leader: ProcRef,
    pub scope: Scope,
    pub registered_at: Timestamp,
    pub rule: String,
    pub limits: Arc<Limits>,
    pub ttys: Vec<TtyWatch>,
    /// Latest credited input (registration time until there is any).
    pub last_activity: Timestamp,
    pub warned: WarnMemory,
    /// No deadline is enforced before this (see `deadline::reprieve`).
    pub not_before: Option<Timestamp>,
    pub phase: Phase,
    /// The kind of terminal; provisional until `tty_settled`.
    pub tty_class: TtyClass,
    pub tty_settled: bool,
    /// Sum of the session's process I/O at the last look (sessions without a terminal).
    pub io_seen: Vec<(ProcRef, u64)>,
    pub last_tamper_log: Option<Timestamp>,
    /// Warnings written: (limit, when, the deadline announced), newest last.
    pub warnings_sent: Vec<(Reason, Timestamp, Timestamp)>,
    /// Looks that found hand-set timestamps: (tty, when), newest last.
    pub tampers_seen: Vec<(String, Timestamp)>,
    /// Time between looks for a terminal that has not appeared yet.
    pub discovery_backoff: Duration,
    /// Taken over from a login opened while the daemon was down.
    pub adopted: bool,
    /// The login's cgroup (inside the cgroup2 hierarchy): its kill scope.
    pub cgroup: Option<String>,
    /// Root processes moved out of the kill scope or left alone while
    /// ending it (see `engine::ending::kill`), counted once each.
    pub spared: Vec<ProcRef>,
    /// Idle gaps, warnings, tampers and dry-run expiries, for the summary.
    pub evidence: Evidence,
    /// What the looks since the last credited input found.
    pub looks: Looks,
    /// The login's SSH connection, the witness of its activity (issue 12).
    /// Boxed: 184 bytes that most sessions (console, su, no ssh) never use.
    pub conn: Option<Box<ConnWatch>>,
    /// The look for the connection is over (found, none, or given up).
    pub conn_settled: bool,
    /// A fall back to today's rules was logged (`session_connection activity_source=`).
    pub conn_fallback_logged: bool,
}

impl Session {
    /// A session as it starts to be watched: its durable part (new at
    /// registration, read back after a restart, or built for an adopted
    /// login), matched against `policy`, with nothing yet learnt at `now`.
    pub fn new(record: SessionRecord, policy: &Policy, now: Timestamp) -> Session {
        let mut s = Session {
            id: record.id,
            login: record.login,
            leader: record.leader,
            scope: record.scope,
            registered_at: record.registered_at,
            rule: String::new(),
            // Until the decision below: the defaults, shared.
            limits: Arc::clone(&policy.defaults),
            ttys: record
                .ttys
                .into_iter()
                .map(|name| TtyWatch::new(name, now))
                .collect(),
            last_activity: record.last_activity,
            warned: WarnMemory::default(),
            not_before: None,
            phase: Phase::Active,
            tty_class: record.tty_class,
            tty_settled: record.tty_settled,
            io_seen: Vec::new(),
            last_tamper_log: None,
            warnings_sent: Vec::new(),
            tampers_seen: Vec::new(),
            discovery_backoff: DISCOVERY_FIRST,
            adopted: record.adopted,
            cgroup: record.cgroup,
            spared: Vec::new(),
            evidence: record.evidence,
            looks: Looks::new(record.last_activity),
            conn: None,
            conn_settled: false,
            conn_fallback_logged: false,
        };
        let decision = policy.decide(&s.facts());
        s.rule = decision.rule;
        s.limits = decision.limits;
        s
    }

    /// The durable form of the session.
    pub fn record(&self) -> SessionRecord {
        SessionRecord {
            id: self.id,
            login: self.login.clone(),
            leader: self.leader,
            scope: self.scope,
            registered_at: self.registered_at,
            last_activity: self.last_activity,
            tty_class: self.tty_class,
            tty_settled: self.tty_settled,
            ttys: self.ttys.iter().map(|t| t.name.clone()).collect(),
            adopted: self.adopted,
            cgroup: self.cgroup.clone(),
            evidence: self.evidence.clone(),
        }
    }

    /// Whether [`Session::record`] of `self` would differ from `before`'s,
    /// found without building either record (a wake compares every time).
    pub fn record_differs(&self, before: &Session) -> bool {
        let differs = self.id != before.id
            || self.last_activity != before.last_activity
            || self.evidence != before.evidence
            || self.tty_settled != before.tty_settled
            || self.tty_class != before.tty_class
            || self.ttys.len() != before.ttys.len()
            || self
                .ttys
                .iter()
                .zip(&before.ttys)
                .any(|(a, b)| a.name != b.name)
            || self.leader != before.leader
            || self.scope != before.scope
            || self.registered_at != before.registered_at
            || self.adopted != before.adopted
            || self.cgroup != before.cgroup
            || self.login != before.login;
        debug_assert_eq!(
            differs,
            self.record() != before.record(),
            "record_differs disagrees with the records of session {}",
            self.id
        );
        differs
    }

    /// The ttys as one log value: "pts/1,pts/3", or the PAM tty until one is found.
    pub fn tty_label(&self) -> String {
        if self.ttys.is_empty() {
            self.login.pam_tty.clone()
        } else {
            self.ttys
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        }
    }

    /// Appends to a bounded history list, growing it by one entry at a
    /// time (most sessions keep one or two; a first `push` would make room
    /// for four, in each of 10,000 sessions).
    pub fn remember<T>(list: &mut Vec<T>, item: T) {
        if list.len() >= HISTORY_LIMIT {
            list.remove(0);
        }
        list.reserve_exact(1);
        list.push(item);
    }

    pub fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }

    /// What the policy matches on.
    pub fn facts(&self) -> LoginFacts {
        LoginFacts {
            user: self.login.user.clone(),
            groups: self.login.groups.clone(),
            service: self.login.service.clone(),
            rhost: self.login.rhost.clone(),
            tty: self.tty_class,
            auth: self.login.auth.methods.clone(),
            certificate: self.login.auth.certificate(),
        }
    }

    /// Whether idle time is measured at all: from the terminals, or for a
    /// session that has none (unless the rule says max-only) from its
    /// connection (from the start: `ssh -N` never says `@notty`) or from
    /// process I/O once it is known to have none.
    pub fn idle_measured(&self) -> bool {
        if !self.ttys.is_empty() {
            return true;
        }
        let notty_known = self.tty_settled && self.tty_class == TtyClass::None;
        (notty_known || self.conn.is_some()) && self.limits.notty == NottyMode::Io
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SessionRecord {
        SessionRecord {
            id: SessionId(1),
            login: Login {
                pam_tty: "ssh".into(),
                ..Login::default()
            },
            leader: ProcRef {
                pid: 1,
                start_time: 1,
            },
            scope: Scope::Subtree,
            registered_at: Timestamp(0),
            last_activity: Timestamp(0),
            tty_class: TtyClass::Pty,
            tty_settled: false,
            ttys: Vec::new(),
            adopted: false,
            cgroup: None,
            evidence: Evidence::default(),
        }
    }

    fn session() -> Session {
        Session::new(record(), &Policy::new(Limits::builtin()), Timestamp(0))
    }

    #[test]
    fn tty_label_lists_found_ttys() {
        let mut s = session();
        assert_eq!(s.tty_label(), "ssh");
        s.ttys = vec![
            TtyWatch::new("pts/1".into(), Timestamp(0)),
            TtyWatch::new("pts/3".into(), Timestamp(0)),
        ];
        assert_eq!(s.tty_label(), "pts/1,pts/3");
    }

    #[test]
    fn a_change_to_any_durable_field_is_a_difference_and_others_are_not() {
        let before = session();
        let changes: [fn(&mut Session); 8] = [
            |s| s.last_activity = Timestamp(5),
            |s| s.evidence.warnings += 1,
            |s| s.tty_settled = true,
            |s| s.ttys.push(TtyWatch::new("pts/2".into(), Timestamp(0))),
            |s| s.cgroup = Some("/x".into()),
            |s| s.adopted = true,
            |s| s.login.groups.push("ops".into()),
            |s| s.scope = Scope::AuditSession(3),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut s = before.clone();
            change(&mut s);
            assert!(s.record_differs(&before), "change {i}");
        }
        let mut s = before.clone();
        s.discovery_backoff *= 2;
        s.rule = "another".into();
        assert!(!s.record_differs(&before));
        let mut renamed = before.clone();
        renamed.ttys = vec![TtyWatch::new("pts/1".into(), Timestamp(0))];
        let mut other = before.clone();
        other.ttys = vec![TtyWatch::new("pts/4".into(), Timestamp(0))];
        assert!(other.record_differs(&renamed));
    }

    #[test]
    fn history_grows_one_entry_at_a_time_and_keeps_the_newest() {
        let mut one = Vec::new();
        Session::remember(&mut one, 7u64);
        assert_eq!((one.len(), one.capacity()), (1, 1));
        let mut l = Vec::new();
        for i in 0..HISTORY_LIMIT + 3 {
            Session::remember(&mut l, i);
        }
        assert_eq!(l.len(), HISTORY_LIMIT);
        assert_eq!((l[0], l[HISTORY_LIMIT - 1]), (3, HISTORY_LIMIT + 2));
    }
}
