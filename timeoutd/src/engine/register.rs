//! Login and logout: the PAM module's register and unregister requests, and
//! the banner a new session is greeted with. A login of a revoked user is
//! refused in the reply and also ended here, in case the reply is lost.

use std::time::Duration;

use session_timeout_proto::{ErrorCode, Registration, Response, SessionKey, AUDIT_UNSET};

use crate::core::audit::event::{Event, EventName, Severity};
use crate::core::policy::TtyClass;
use crate::core::session::identity::Identity;
use crate::core::session::{EndReason, Login, ProcRef, Scope, Session, SessionId, DISCOVERY_FIRST};
use crate::core::state::record::{JournalEntry, SessionRecord};
use crate::core::time::duration::{self, Human};
use crate::engine::{session_event, Engine, Peer, System};

/// A refused login's processes are signalled this long after the refusal,
/// if the PAM stack did not end the login by itself (the reply was lost).
const REFUSED_LOGIN_GRACE: Duration = Duration::from_secs(2);

/// The terminal class PAM_TTY implies, and whether that is final.
/// sshd says "ssh" before the pty exists: assume a pty until a look settles it.
pub(crate) fn initial_tty_class(pam_tty: &str) -> (TtyClass, bool) {
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

/// Why a login was refused: the message for the user, and how the session
/// ends if the reply is lost (revoked by an admin, or outside its hours or quota).
struct Refusal {
    message: String,
    end: EndReason,
}

impl<S: System> Engine<S> {
    /// Handles a register request.
    pub(crate) fn register(&mut self, reg: Registration, peer: Peer) -> Response {
        if peer.uid != 0 {
            return self.deny_lifecycle("register", peer, Some(&reg.user));
        }
        let groups = self.sys.groups_of(&reg.user);
        // A revoked user's login is refused in the reply, and the session is
        // also registered and ended at once: the reply may never arrive (the
        // module may have given up waiting and let the login in).
        let refused = match self.refusal(&reg.user, &groups, &reg.service, &reg.rhost) {
            Some((message, by_uid)) => Some(Refusal {
                message,
                end: EndReason::Revoked { by_uid },
            }),
            None => self
                .clock_refusal(&crate::engine::civil::facts_of(&reg, &groups))
                .map(|r| Refusal {
                    message: r.message,
                    end: EndReason::Expired(r.reason.into()),
                }),
        };
        let leader = ProcRef {
            pid: reg.pid,
            start_time: reg.start_time,
        };
        let alive = reg.pid != 0 && self.sys.alive(leader);
        if let Some(r) = &refused {
            if !alive || self.leaders.contains_key(&leader) {
                return Response::Refused {
                    message: r.message.clone(),
                };
            }
        }
        if !alive {
            return Response::Error {
                code: ErrorCode::NotFound,
                message: format!(
                    "process {} with start time {} does not exist",
                    reg.pid, reg.start_time
                ),
            };
        }
        if let Some(id) = self.leaders.get(&leader).copied() {
            return self.registered(id);
        }
        let id = self.open_session(reg, leader, groups);
        match refused {
            Some(r) => self.end_refused(id, r),
            None => self.registered(id),
        }
    }

    /// Refuses a register or unregister request from someone other than root.
    fn deny_lifecycle(&mut self, request: &str, peer: Peer, user: Option<&str>) -> Response {
        let message = format!("only root may {request} sessions");
        self.sys.log(
            Event::new(EventName::RequestDenied)
                .with_severity(Severity::Warning)
                .field("request", request)
                .field("peer_uid", peer.uid)
                .field("peer_pid", peer.pid)
                .field_opt("user", user)
                .field("reason", &message),
        );
        Response::Error {
            code: ErrorCode::PermissionDenied,
            message,
        }
    }

    /// The audit session is the login's own only if the parent was read and
    /// differs (sshd, login); su and sudo keep the caller's, and a parent
    /// that cannot be read proves nothing: use the subtree then.
    fn scope_of(&mut self, leader: ProcRef, sessionid: u32) -> Scope {
        match self.sys.parent_sessionid(leader) {
            Some(p) if sessionid != AUDIT_UNSET && p != sessionid => Scope::AuditSession(sessionid),
            _ => Scope::Subtree,
        }
    }

    /// Starts watching a new login: logs it, stores it durably, and looks for
    /// its terminal soon.
    fn open_session(
        &mut self,
        reg: Registration,
        leader: ProcRef,
        groups: Vec<String>,
    ) -> SessionId {
        let scope = self.scope_of(leader, reg.sessionid);
        let (auth, cert_unreadable) = Identity::from_wire(&reg.auth);
        let (tty_class, tty_settled) = initial_tty_class(&reg.tty);
        let now = self.sys.now();
        let id = SessionId(self.sys.allocate_id());
        // The kill scope, before the user's shell exists (sshd's monitor
        // registers before it forks the session's child).
        let cgroup = self.sys.cgroup_attach(leader, id, scope == Scope::Subtree);
        let record = SessionRecord {
            id,
            login: Login {
                user: reg.user,
                uid: reg.uid,
                service: reg.service,
                pam_tty: reg.tty,
                rhost: reg.rhost,
                ruser: reg.ruser,
                groups,
                auth,
            },
            leader,
            scope,
            registered_at: now,
            last_activity: now,
            tty_class,
            tty_settled,
            ttys: Vec::new(),
            adopted: false,
            cgroup,
            evidence: Default::default(),
        };
        let session = Session::new(record, &self.policy, now);
        let ev = session_event(EventName::SessionOpen, &session)
            .field("scope", scope)
            .field("cgroup", session.cgroup.as_deref().unwrap_or("-"))
            .field("tty_class", session.tty_class.as_str())
            .field("idle_limit", duration::limit(session.limits.idle))
            .field("max_limit", duration::limit(session.limits.max))
            .field("loginuid", reg.loginuid);
        self.sys.log(ev);
        self.sys
            .persist(JournalEntry::Upsert(Box::new(session.record())));
        self.insert_session(session);
        if let Some(why) = cert_unreadable {
            self.log_cert_unreadable(id, &why);
        }
        self.maybe_compact();
        // The terminal does not exist yet (sshd opens the session first): look soon.
        self.schedule(id, now + DISCOVERY_FIRST);
        id
    }

    /// Ends a just-registered refused login, after a moment.
    fn end_refused(&mut self, id: SessionId, r: Refusal) -> Response {
        if let (Some(s), EndReason::Revoked { by_uid }) = (self.sessions.get(&id), r.end) {
            let ev = session_event(EventName::SessionRevoked, s)
                .with_severity(Severity::Notice)
                .field("by_uid", by_uid)
                .field("reason", "login of a revoked user");
            self.sys.log(ev);
        }
        self.end_after(id, r.end, REFUSED_LOGIN_GRACE);
        Response::Refused { message: r.message }
    }

    fn registered(&self, id: SessionId) -> Response {
        let banner = [self.banner(id), self.absolute_banner(id)]
            .into_iter()
            .filter(|b| !b.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Response::Registered {
            session_id: id.0,
            banner,
        }
    }

    /// The text shown at login: the limits that will be enforced.
    fn banner(&self, id: SessionId) -> String {
        let Some(s) = self.sessions.get(&id) else {
            return String::new();
        };
        // A dry run announces nothing: its limits will not be enforced.
        if s.limits.dry_run() {
            return String::new();
        }
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
    pub(crate) fn unregister(&mut self, key: SessionKey, peer: Peer) -> Response {
        if peer.uid != 0 {
            return self.deny_lifecycle("unregister", peer, None);
        }
        let leader = ProcRef {
            pid: key.pid,
            start_time: key.start_time,
        };
        let Some(id) = self.leaders.remove(&leader) else {
            return Response::Unregistered { session_id: 0 };
        };
        let now = self.sys.now();
        if let Some(s) = self.sessions.get(&id) {
            if s.is_active() {
                let ev = session_event(EventName::SessionClose, s)
                    .field("reason", "logout")
                    .field("duration", Human(now.since(s.registered_at)));
                let s = s.clone();
                self.log_end(ev, &s, "logout", now);
                self.forget(id);
            }
            // A terminating session goes on until every process is gone.
        }
        Response::Unregistered { session_id: id.0 }
    }
}
