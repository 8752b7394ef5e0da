//! The control verbs behind `timeoutctl`: who may ask, and what each does.
//! Admin verbs need uid 0 or the `[daemon] admin_group`; `status` answers
//! anyone, about their own sessions only.

use std::collections::{HashSet, VecDeque};

use session_timeout_proto::{
    ErrorCode, Request, Response, RevocationInfo, SessionInfo, TamperSeen, Target, WarningSent,
};

use crate::core::audit::event::{Event, EventName, Severity};
use crate::core::session::{EndReason, Phase, Session, SessionId};
use crate::core::state::revocations::{target_label, Revocation};
use crate::core::time::clock::Timestamp;
use crate::core::time::duration::Human;
use crate::engine::ending::exits::ENDS_LOOK_EVERY;
use crate::engine::{session_event, Engine, Peer, System};

fn denied(message: &str) -> Response {
    Response::Error {
        code: ErrorCode::PermissionDenied,
        message: message.to_owned(),
    }
}

fn not_found(message: String) -> Response {
    Response::Error {
        code: ErrorCode::NotFound,
        message,
    }
}

fn verb(req: &Request) -> &'static str {
    match req {
        Request::Register(_) => "register",
        Request::Unregister(_) => "unregister",
        Request::CheckAccess { .. } => "check_access",
        Request::List => "list",
        Request::Show { .. } => "show",
        Request::Kill { .. } => "kill",
        Request::Revoke { .. } => "revoke",
        Request::Unrevoke { .. } => "unrevoke",
        Request::Revocations => "revocations",
        Request::Reload => "reload",
        Request::Status => "status",
        Request::Revalidate { .. } => "revalidate",
        Request::SetDeadline { .. } => "deadline",
        Request::ClearDeadline { .. } => "deadline_clear",
        Request::Deadlines => "deadlines",
        Request::DaemonStatus => "daemon_status",
    }
}

impl<S: System> Engine<S> {
    /// Whether `peer` may use admin verbs.
    pub(crate) fn is_admin(&mut self, peer: Peer) -> bool {
        if peer.uid == 0 {
            return true;
        }
        match self.admin_group.clone() {
            Some(g) => self.sys.in_group(peer.uid, &g),
            None => false,
        }
    }

    /// Refuses and logs a request the caller may not make.
    pub(crate) fn deny(&mut self, req: &Request, peer: Peer, why: &str) -> Response {
        self.sys.log(
            Event::new(EventName::RequestDenied)
                .with_severity(Severity::Warning)
                .caused_by(peer.uid)
                .field("request", verb(req))
                .field("peer_uid", peer.uid)
                .field("peer_pid", peer.pid)
                .field("reason", why),
        );
        denied(why)
    }

    /// Answers every request except `Reload` (the daemon reads the file) and
    /// `Revalidate` (the daemon runs the checks), once the caller is an admin.
    pub(crate) fn handle(&mut self, req: Request, peer: Peer) -> Response {
        match req {
            Request::Register(r) => self.register(r, peer),
            Request::Unregister(k) => self.unregister(k, peer),
            Request::Status => self.status(peer),
            other if matches!(other, Request::CheckAccess { .. }) && peer.uid != 0 => {
                self.deny(&other, peer, "only root may check access")
            }
            Request::CheckAccess {
                user,
                service,
                rhost,
            } => {
                let groups = self.sys.groups_of(&user);
                let refused = self
                    .refusal(&user, &groups, &service, &rhost)
                    .map(|(message, _)| message)
                    .or_else(|| {
                        let facts =
                            crate::engine::civil::account_facts(user, groups, service, rhost);
                        self.clock_refusal(&facts).map(|r| r.message)
                    });
                match refused {
                    Some(message) => Response::Access {
                        allowed: false,
                        message,
                    },
                    None => Response::Access {
                        allowed: true,
                        message: String::new(),
                    },
                }
            }
            other if !self.is_admin(peer) => {
                self.deny(&other, peer, "admin verbs need root or the admin group")
            }
            Request::List => {
                // The references are sorted, not the entries built from them.
                let mut all: Vec<&Session> = self.sessions_all().collect();
                all.sort_unstable_by_key(|s| s.id);
                Response::Sessions(all.into_iter().map(|s| self.info(s)).collect())
            }
            Request::Show { id } => match self.session(SessionId(id)).cloned() {
                Some(s) => {
                    self.sys.begin_batch();
                    Response::Sessions(vec![self.detailed_info(&s)])
                }
                None => not_found(format!("no session {id}")),
            },
            Request::Kill { id, reason } => self.kill(SessionId(id), &reason, peer),
            Request::Revoke {
                target,
                ttl_secs,
                reason,
            } => self.revoke(target, ttl_secs, reason, peer),
            Request::Unrevoke { target } => self.unrevoke(&target, peer),
            Request::Revocations => {
                let list = self
                    .revocations
                    .all()
                    .iter()
                    .map(|r| RevocationInfo {
                        target: r.target.clone(),
                        since: r.since.secs(),
                        until: r.until.map_or(0, Timestamp::secs),
                        reason: r.reason.clone(),
                        by_uid: r.by_uid,
                    })
                    .collect();
                Response::Revocations(list)
            }
            r @ (Request::SetDeadline { .. }
            | Request::ClearDeadline { .. }
            | Request::Deadlines) => self.deadline_verb(r, peer),
            Request::DaemonStatus => Response::DaemonState {
                sessions: u32::try_from(self.len()).unwrap_or(u32::MAX),
                log_lines_dropped: self.sys.log_lines_dropped(),
            },
            Request::Reload | Request::Revalidate { .. } => Response::Error {
                code: ErrorCode::Internal,
                message: "reload and revalidate are handled by the daemon loop".into(),
            },
        }
    }

    /// The caller's own sessions, for any user.
    fn status(&mut self, peer: Peer) -> Response {
        let now = self.sys.now();
        let mine: Vec<SessionId> = self
            .sessions_all()
            .filter(|s| s.login.uid == peer.uid)
            .map(|s| s.id)
            .collect();
        for id in mine {
            self.look_now(id, now);
        }
        let mut list: Vec<SessionInfo> = self
            .sessions_all()
            .filter(|s| s.login.uid == peer.uid)
            .map(|s| self.info(s))
            .collect();
        list.sort_by_key(|i| i.id);
        Response::Sessions(list)
    }

    fn info(&self, s: &Session) -> SessionInfo {
        let ds = crate::core::session::deadline::deadlines(
            &s.limits,
            s.registered_at,
            s.last_activity,
            s.idle_measured(),
            s.not_before,
        );
        let at = |r: crate::core::session::deadline::Reason| {
            ds.iter().find(|d| d.reason == r).map_or(0, |d| d.at.secs())
        };
        SessionInfo {
            id: s.id.0,
            user: s.login.user.clone(),
            uid: s.login.uid,
            service: s.login.service.clone(),
            tty: s.tty_label(),
            rhost: s.login.rhost.clone(),
            rule: s.rule.clone(),
            state: match s.phase {
                Phase::Active => "active".into(),
                Phase::Terminating { .. } => "terminating".into(),
            },
            started: s.registered_at.secs(),
            last_activity: s.last_activity.secs(),
            idle_deadline: at(crate::core::session::deadline::Reason::Idle),
            max_deadline: at(crate::core::session::deadline::Reason::Max),
            now: self.sys.now().secs(),
            leader_pid: s.leader.pid,
            audit_session: match s.scope {
                crate::core::session::Scope::AuditSession(id) => id,
                crate::core::session::Scope::Subtree => u32::MAX,
            },
            pids: Vec::new(),
            warnings: s
                .warnings_sent
                .iter()
                .map(|(r, at, d)| WarningSent {
                    reason: r.as_str().into(),
                    at: at.secs(),
                    deadline: d.secs(),
                })
                .collect(),
            tampers: s
                .tampers_seen
                .iter()
                .map(|(tty, at)| TamperSeen {
                    tty: tty.clone(),
                    at: at.secs(),
                })
                .collect(),
            dry_run: s.limits.dry_run(),
            daily_quota: s.limits.daily.map_or(0, |d| d.as_secs() as i64),
            quota_used: s.limits.daily.map_or(0, |d| {
                let left = self
                    .civil
                    .quota_left(&s.login.user, &s.limits, self.sys.now())
                    .unwrap_or_default();
                d.saturating_sub(left).as_secs() as i64
            }),
        }
    }

    fn detailed_info(&mut self, s: &Session) -> SessionInfo {
        let mut info = self.info(s);
        info.pids = self
            .sys
            .scope_processes(s.leader, s.scope)
            .iter()
            .map(|p| p.proc.pid)
            .collect();
        info.pids.sort_unstable();
        info
    }

    fn kill(&mut self, id: SessionId, reason: &str, peer: Peer) -> Response {
        let Some(s) = self.session(id) else {
            return not_found(format!("no session {id}"));
        };
        if !s.is_active() {
            return Response::Done {
                message: format!("session {id} is already ending"),
            };
        }
        let ev = session_event(EventName::SessionKilled, s)
            .with_severity(Severity::Notice)
            .field("by_uid", peer.uid)
            .field("reason", reason);
        self.sys.log(ev);
        self.sys.begin_batch();
        self.end_now(id, EndReason::Killed { by_uid: peer.uid });
        Response::Done {
            message: format!("session {id} is being ended"),
        }
    }

    fn revoke(&mut self, target: Target, ttl_secs: u64, reason: String, peer: Peer) -> Response {
        // Members of the admin group must not lock out root or each other.
        let protected = match &target {
            Target::User(u) => u == "root",
            Target::Group(g) => g == "root" || self.admin_group.as_deref() == Some(g.as_str()),
        };
        if protected && peer.uid != 0 {
            let req = Request::Revoke {
                target,
                ttl_secs,
                reason,
            };
            return self.deny(&req, peer, "only root may revoke root or the admin group");
        }
        let now = self.sys.now();
        let until = (ttl_secs > 0).then(|| now + std::time::Duration::from_secs(ttl_secs));
        let rev = Revocation {
            target: target.clone(),
            since: now,
            until,
            reason: reason.clone(),
            by_uid: peer.uid,
        };
        self.sys.log(
            Event::new(EventName::RevokeAdded)
                .with_severity(Severity::Notice)
                .field("target", target_label(&target))
                .field("by_uid", peer.uid)
                .field("reason", &reason)
                .field("until", until.map_or(0, Timestamp::secs)),
        );
        let victims: Vec<SessionId> = self
            .sessions_all()
            .filter(|s| s.is_active() && rev.covers(&s.login.user, &s.login.groups))
            .map(|s| s.id)
            .collect();
        self.revocations.add(rev);
        self.save_revocations();
        self.sys.begin_batch();
        self.sys.hold_log();
        self.hang_up_leaders(&victims);
        self.revoke_each(&victims, peer.uid, &reason);
        self.hung_up.clear(); // each pass took its own; none may outlive the request
        self.sys.release_log();
        let ttl = match until {
            Some(u) => format!("until {u} UTC ({})", Human(u.since(now))),
            None => "until unrevoke".to_owned(),
        };
        Response::Done {
            message: format!(
                "revoked {} {ttl}: {} live session(s) ended",
                target_label(&target),
                victims.len()
            ),
        }
    }

    /// Each victim's own pass, after the first. Every [`ENDS_LOOK_EVERY`]
    /// passes the sessions that ended meanwhile are proved and logged, and
    /// the victims whose leader was seen gone have their pass next: the
    /// sooner it is done, the sooner their end is proved too.
    fn revoke_each(&mut self, victims: &[SessionId], by_uid: u32, reason: &str) {
        let mut queue: VecDeque<SessionId> = victims.iter().copied().collect();
        let mut passes = 0usize;
        while !queue.is_empty() {
            if passes > 0 && passes.is_multiple_of(ENDS_LOOK_EVERY) {
                let gone: HashSet<SessionId> = self.ends_meanwhile().into_iter().collect();
                gone_first(&mut queue, &gone);
            }
            let Some(id) = queue.pop_front() else { break };
            passes += 1;
            if let Some(s) = self.session(id) {
                let ev = session_event(EventName::SessionRevoked, s)
                    .with_severity(Severity::Notice)
                    .field("by_uid", by_uid)
                    .field("reason", reason);
                self.sys.log(ev);
            }
            self.end_now(id, EndReason::Revoked { by_uid });
        }
    }

    fn unrevoke(&mut self, target: &Target, peer: Peer) -> Response {
        match self.revocations.remove(target) {
            Some(r) => {
                self.save_revocations();
                self.sys.log(
                    Event::new(EventName::RevokeRemoved)
                        .with_severity(Severity::Notice)
                        .field("target", target_label(&r.target))
                        .field("by_uid", peer.uid)
                        .field("reason", "unrevoke"),
                );
                Response::Done {
                    message: format!("lifted the revocation of {}", target_label(target)),
                }
            }
            None => not_found(format!("{} is not revoked", target_label(target))),
        }
    }

    pub(crate) fn save_revocations(&mut self) {
        let text = self.revocations.to_text();
        self.sys.save_revocations(&text);
    }

    pub(crate) fn expire_revocations(&mut self, now: Timestamp) {
        let gone = self.revocations.expire(now);
        if gone.is_empty() {
            return;
        }
        for r in &gone {
            self.sys.log(
                Event::new(EventName::RevokeRemoved)
                    .with_severity(Severity::Notice)
                    .field("target", target_label(&r.target))
                    .field("by_uid", r.by_uid)
                    .field("reason", "expired"),
            );
        }
        self.save_revocations();
    }

    /// The message for a login that must be refused, and who revoked it,
    /// after logging it.
    pub(crate) fn refusal(
        &mut self,
        user: &str,
        groups: &[String],
        service: &str,
        rhost: &str,
    ) -> Option<(String, u32)> {
        let now = self.sys.now();
        let r = self.revocations.find(user, groups, now)?.clone();
        self.sys.log(
            Event::new(EventName::LoginRefused)
                .with_severity(Severity::Notice)
                .field("user", user)
                .field("service", service)
                .field("rhost", rhost)
                .field("target", target_label(&r.target))
                .field("by_uid", r.by_uid)
                .field("reason", &r.reason),
        );
        let until = r.until.map_or_else(
            || "until an administrator lifts it".to_owned(),
            |u| format!("until {u} UTC"),
        );
        Some((
            format!("Logins for {user} are suspended by the administrator {until}."),
            r.by_uid,
        ))
    }
}

/// Moves the queued sessions in `gone` to the front, each part in its order.
fn gone_first(queue: &mut VecDeque<SessionId>, gone: &HashSet<SessionId>) {
    if gone.is_empty() {
        return;
    }
    let (first, rest): (VecDeque<_>, VecDeque<_>) = queue.drain(..).partition(|v| gone.contains(v));
    *queue = first;
    queue.extend(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sessions_seen_gone_move_to_the_front_and_no_other_joins_the_queue() {
        let ids = |v: &[u64]| v.iter().map(|i| SessionId(*i)).collect::<VecDeque<_>>();
        let mut queue = ids(&[1, 2, 3, 4, 5]);
        // 9 was passed already (or is no victim): it must not come back.
        let gone: HashSet<SessionId> = [SessionId(4), SessionId(2), SessionId(9)].into();
        gone_first(&mut queue, &gone);
        assert_eq!(queue, ids(&[2, 4, 1, 3, 5]));
    }
}
