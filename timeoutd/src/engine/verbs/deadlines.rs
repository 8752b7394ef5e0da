//! Absolute deadlines that are not a rule's limits: the end of the login's
//! OpenSSH certificate (`end_at_cert_expiry`), pam_systemd's runtime limit,
//! and an administrator's `timeoutctl deadline` for a user or group. This
//! file answers the deadline verbs and tells the wake-up logic, the banner
//! and the warnings what those deadlines are.

use std::time::Duration;

use session_timeout_proto::{DeadlineInfo, ErrorCode, Request, Response, Target};

use crate::core::audit::escape;
use crate::core::audit::event::{Event, EventName, Severity};
use crate::core::session::deadline::{Absolute, Deadline, Reason};
use crate::core::session::identity::{shown, CertUse};
use crate::core::session::{Session, SessionId};
use crate::core::state::deadlines_store::AdminDeadline;
use crate::core::state::revocations::target_label;
use crate::core::time::clock::Timestamp;
use crate::core::time::duration::Human;
use crate::engine::{session_event, Engine, Peer, System};

/// The limit a deadline's warning names: the rule's limit, or for an
/// absolute deadline the time from login to it.
pub(in crate::engine) fn limit_for(s: &Session, d: Deadline) -> Duration {
    match d.reason {
        Reason::Idle => s.limits.idle.unwrap_or_default(),
        Reason::Max => s.limits.max.unwrap_or_default(),
        Reason::Quota => s.limits.daily.unwrap_or_default(),
        Reason::Cert | Reason::Deadline | Reason::RuntimeMax | Reason::Window => {
            d.at.since(s.registered_at)
        }
    }
}

/// A text the CA chose, for one line of a terminal: every control character
/// escaped, the bell, tab and newline too.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\n' | '\t' | '\u{7}') {
            escape::push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    escape::for_terminal(&out)
}

impl<S: System> Engine<S> {
    /// The absolute deadlines in force for `s`.
    pub(in crate::engine) fn absolute_of(&self, s: &Session) -> Absolute {
        Absolute {
            cert: s
                .limits
                .end_at_cert_expiry
                .then(|| s.login.auth.cert_end())
                .flatten(),
            deadline: self.admin_deadlines.for_session(
                &s.login.user,
                &s.login.groups,
                s.registered_at,
            ),
            runtime_max: s.login.auth.runtime_max_at,
            window: self.civil.window_deadline(&s.limits, self.sys.now()),
            quota: self
                .civil
                .quota_deadline(&s.login.user, &s.limits, self.sys.now()),
        }
    }

    /// The banner's sentences about absolute deadlines ("" if none). The key
    /// id is the CA's text: cut and escaped for the terminal.
    pub(in crate::engine) fn absolute_banner(&self, id: SessionId) -> String {
        let Some(s) = self.sessions.get(&id) else {
            return String::new();
        };
        let abs = self.absolute_of(s);
        let mut out = Vec::new();
        if let (Some(at), CertUse::Read(c)) = (abs.cert, &s.login.auth.cert) {
            out.push(format!(
                "Your certificate {} expires at {at} UTC and this session closes then.",
                one_line(&shown(&c.key_id))
            ));
        }
        if let Some(at) = abs.deadline {
            out.push(format!(
                "An administrator's deadline closes this session at {at} UTC."
            ));
        }
        if let Some(at) = abs.runtime_max {
            out.push(format!(
                "Your runtime limit closes this session at {at} UTC."
            ));
        }
        if !s.limits.dry_run() {
            if let Some(at) = abs.window {
                out.push(format!(
                    "Your login hours end at {}; this session closes then.",
                    self.civil.local(at)
                ));
            }
            if let Some(at) = abs.quota {
                out.push(format!(
                    "Your daily quota runs out at {} if you stay logged in.",
                    self.civil.local(at)
                ));
            }
        }
        out.join(" ")
    }

    /// `cert_unreadable`: the login gets no certificate deadline.
    pub(in crate::engine) fn log_cert_unreadable(&mut self, id: SessionId, why: &str) {
        if let Some(s) = self.sessions.get(&id) {
            let ev = session_event(EventName::CertUnreadable, s)
                .with_severity(Severity::Warning)
                .field("error", why)
                .field("action", "no certificate deadline");
            self.sys.log(ev);
        }
    }

    /// Admin: the deadline verbs.
    pub(in crate::engine) fn deadline_verb(&mut self, req: Request, peer: Peer) -> Response {
        match req {
            Request::SetDeadline { target, at, reason } => {
                self.set_deadline(target, at, reason, peer)
            }
            Request::ClearDeadline { target } => self.clear_deadline(&target, peer),
            _ => {
                let now = self.sys.now();
                let list = self
                    .admin_deadlines
                    .active(now)
                    .map(|d| DeadlineInfo {
                        target: d.target.clone(),
                        since: d.since.secs(),
                        at: d.at.secs(),
                        reason: d.reason.clone(),
                        by_uid: d.by_uid,
                    })
                    .collect();
                Response::Deadlines(list)
            }
        }
    }

    fn set_deadline(&mut self, target: Target, at: i64, reason: String, peer: Peer) -> Response {
        if self.protected(&target) && peer.uid != 0 {
            let req = Request::SetDeadline { target, at, reason };
            return self.deny(
                &req,
                peer,
                "only root may set a deadline for root or the admin group",
            );
        }
        let now = self.sys.now();
        let at = Timestamp::from_secs(at);
        if at <= now {
            return Response::Error {
                code: ErrorCode::Malformed,
                message: format!("the deadline {at} UTC has already passed"),
            };
        }
        let d = AdminDeadline {
            target: target.clone(),
            since: now,
            at,
            reason: reason.clone(),
            by_uid: peer.uid,
        };
        let hit = self.sessions_under(&d);
        self.admin_deadlines.prune(now);
        self.admin_deadlines.set(d);
        self.save_deadlines();
        self.sys.log(
            Event::new(EventName::DeadlineSet)
                .with_severity(Severity::Notice)
                .field("target", target_label(&target))
                .field("at", at.secs())
                .field("by_uid", peer.uid)
                .field("reason", &reason)
                .field("sessions", hit.len()),
        );
        for id in &hit {
            self.schedule(*id, now);
        }
        Response::Done {
            message: format!(
                "deadline for {} at {at} UTC (in {}): {} live session(s), and logins until then",
                target_label(&target),
                Human(at.since(now)),
                hit.len()
            ),
        }
    }

    fn clear_deadline(&mut self, target: &Target, peer: Peer) -> Response {
        let Some(d) = self.admin_deadlines.clear(target) else {
            return Response::Error {
                code: ErrorCode::NotFound,
                message: format!("{} has no deadline", target_label(target)),
            };
        };
        self.save_deadlines();
        self.sys.log(
            Event::new(EventName::DeadlineCleared)
                .with_severity(Severity::Notice)
                .field("target", target_label(&d.target))
                .field("at", d.at.secs())
                .field("by_uid", peer.uid),
        );
        let now = self.sys.now();
        for id in self.sessions_under(&d) {
            self.schedule(id, now);
        }
        Response::Done {
            message: format!("cleared the deadline of {}", target_label(target)),
        }
    }

    /// Root, the group root and the admin group may only be given a
    /// deadline by root, so admins cannot cut off root or each other.
    fn protected(&self, target: &Target) -> bool {
        match target {
            Target::User(u) => u == "root",
            Target::Group(g) => g == "root" || self.admin_group.as_deref() == Some(g.as_str()),
        }
    }

    fn sessions_under(&self, d: &AdminDeadline) -> Vec<SessionId> {
        self.sessions_all()
            .filter(|s| s.is_active() && d.applies(&s.login.user, &s.login.groups, s.registered_at))
            .map(|s| s.id)
            .collect()
    }

    fn save_deadlines(&mut self) {
        let text = self.admin_deadlines.to_text();
        self.sys.save_deadlines(&text);
    }
}
