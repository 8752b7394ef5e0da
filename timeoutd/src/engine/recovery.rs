//! After a restart: sessions from durable state are put back under policy
//! (or closed as lost), and logins opened while the daemon was down are
//! adopted, so that stopping the daemon is no way around the policy.

use std::collections::HashSet;
use std::time::Duration;

use crate::core::audit::event::{EventName, Severity};
use crate::core::session::deadline;
use crate::core::session::{EndReason, Login, ProcRef, Scope, Session, SessionId};
use crate::core::state::record::{JournalEntry, SessionRecord};
use crate::core::time::clock::Timestamp;
use crate::core::time::duration::Human;
use crate::engine::{initial_tty_class, session_event, Engine, System};

/// A deadline found already past after a restart is enforced this long after
/// the warning that announces it.
pub(crate) const RESTORE_WARNING: Duration = Duration::from_secs(5);

/// A login found running that no session covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundLogin {
    /// The process that opened the login (sshd's `[priv]` monitor, `login`).
    pub leader: ProcRef,
    pub sessionid: u32,
    pub uid: u32,
    pub user: String,
    /// The leader's command name, standing in for the PAM service.
    pub service: String,
    pub started_at: Timestamp,
}

impl<S: System> Engine<S> {
    /// A session from durable state, matched against the policy in force;
    /// a deadline that passed while the daemon was down is enforced only
    /// after a warning.
    fn session_from(&self, rec: SessionRecord, now: Timestamp) -> Session {
        let mut s = Session::new(rec, &self.policy, now);
        let ds = deadline::deadlines(
            &s.limits,
            s.registered_at,
            s.last_activity,
            s.idle_measured(),
            None,
        );
        if ds.iter().any(|d| d.at <= now) {
            s.not_before = Some(now + RESTORE_WARNING);
        }
        s
    }

    /// Closes a session from durable state that cannot be alive (the host
    /// rebooted since: pids and audit ids start over, so none may be matched).
    pub(crate) fn discard(&mut self, rec: SessionRecord, why: &str) {
        let now = self.sys.now();
        let s = self.session_from(rec, now);
        let ev = session_event(EventName::SessionClose, &s)
            .field("reason", "lost_while_down")
            .field("detail", why)
            .field("duration", Human(now.since(s.registered_at)));
        self.log_end(ev, &s, "lost_while_down", now);
        self.sys.persist(JournalEntry::Gone(s.id));
    }

    /// Puts a session from durable state back under policy with its original
    /// deadlines and idle history, or closes it as lost if it ended while the
    /// daemon was down. Returns whether it is live.
    pub(crate) fn restore(&mut self, rec: SessionRecord) -> bool {
        let now = self.sys.now();
        let alive = self.sys.alive(rec.leader)
            || !self.sys.scope_processes(rec.leader, rec.scope).is_empty();
        let s = self.session_from(rec, now);
        if !alive {
            let ev = session_event(EventName::SessionClose, &s)
                .field("reason", "lost_while_down")
                .field("duration", Human(now.since(s.registered_at)));
            self.log_end(ev, &s, "lost_while_down", now);
            self.sys.persist(JournalEntry::Gone(s.id));
            return false;
        }
        let ev = session_event(EventName::SessionRestored, &s)
            .field("registered", s.registered_at.secs())
            .field("last_activity", s.last_activity.secs());
        self.sys.log(ev);
        self.insert_restored(s, now);
        true
    }

    fn insert_restored(&mut self, s: Session, now: Timestamp) {
        let id = s.id;
        let revoked = self
            .revocations
            .find(&s.login.user, &s.login.groups, now)
            .map(|r| r.by_uid);
        self.sys.persist(JournalEntry::Upsert(Box::new(s.record())));
        self.insert_session(s);
        self.schedule(id, now);
        // A revocation made before the restart still holds.
        if let Some(by_uid) = revoked {
            if let Some(s) = self.session(id) {
                let ev = session_event(EventName::SessionRevoked, s)
                    .with_severity(Severity::Notice)
                    .field("by_uid", by_uid)
                    .field("reason", "revoked before the restart");
                self.sys.log(ev);
            }
            self.end_now(id, EndReason::Revoked { by_uid });
        }
    }

    /// Audit session ids already covered by a session.
    pub(crate) fn covered_sessionids(&self) -> HashSet<u32> {
        self.sessions_all()
            .filter_map(|s| match s.scope {
                Scope::AuditSession(id) => Some(id),
                Scope::Subtree => None,
            })
            .collect()
    }

    /// Puts logins opened while the daemon was down under policy.
    pub(crate) fn adopt(&mut self, found: Vec<FoundLogin>) {
        let now = self.sys.now();
        let covered = self.covered_sessionids();
        for f in found {
            if !covered.contains(&f.sessionid) {
                self.adopt_one(f, now);
            }
        }
    }

    fn adopt_one(&mut self, f: FoundLogin, now: Timestamp) {
        let rec = self.record_of_found(&f, now);
        let s = self.session_from(rec, now);
        let ev = session_event(EventName::SessionAdopted, &s)
            .with_severity(Severity::Notice)
            .field("scope", s.scope)
            .field("started", f.started_at.secs())
            .field("detail", "login opened while timeoutd was not running");
        self.sys.log(ev);
        self.insert_restored(s, now);
    }

    /// The durable form of a found login, as if it had registered when it started.
    fn record_of_found(&mut self, f: &FoundLogin, now: Timestamp) -> SessionRecord {
        let groups = self.sys.groups_of(&f.user);
        let pam_tty = if f.service.starts_with("sshd") {
            "ssh"
        } else {
            ""
        };
        let (tty_class, tty_settled) = initial_tty_class(pam_tty);
        SessionRecord {
            id: SessionId(self.sys.allocate_id()),
            login: Login {
                user: f.user.clone(),
                uid: f.uid,
                service: f.service.clone(),
                pam_tty: pam_tty.to_owned(),
                rhost: String::new(),
                ruser: String::new(),
                groups,
                auth: Default::default(),
            },
            leader: f.leader,
            scope: Scope::AuditSession(f.sessionid),
            registered_at: f.started_at.min(now),
            last_activity: f.started_at.min(now),
            tty_class,
            tty_settled,
            ttys: Vec::new(),
            adopted: true,
            // Its processes were forked outside any cgroup of ours: the
            // audit session is its scope, ended by stop-then-kill.
            cgroup: None,
            evidence: Default::default(),
        }
    }
}
