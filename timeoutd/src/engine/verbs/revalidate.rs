//! Re-validation, the engine's part: which users have live sessions and are
//! due a check through the PAM account stack, one check at a time per user,
//! and what each answer does to their sessions. Running the checks (child
//! processes) is the daemon's job; it asks here what to run and reports back.
//!
//! Root is never checked: its account is local, and a directory outage with
//! `revalidate_unavailable = "end"` must not end every administrator's shell.

use std::collections::{HashMap, HashSet};

use crate::config::revalidate::{RevalidateConfig, Unavailable};
use crate::core::audit::event::{Event, EventName, Severity};
use crate::core::revalidate::{code_name, verdict, CheckOutcome, Schedule, Verdict};
use crate::core::session::{EndReason, SessionId};
use crate::core::time::clock::Timestamp;
use crate::engine::{session_event, Engine, System};

/// Why re-validation ends a user's sessions.
#[derive(Debug, Clone, Copy)]
enum AccountEnd {
    /// The account stack refused the account (expired, disabled, unknown).
    Invalid,
    /// No answer, with `revalidate_unavailable = "end"`.
    Unavailable,
}

impl AccountEnd {
    /// The `reason=` of `session_revoked`.
    fn revoked_reason(self) -> &'static str {
        match self {
            Self::Invalid => "account_invalid",
            Self::Unavailable => "account_unavailable",
        }
    }

    /// How the session ends (`session_terminated reason=`, summary `end=`).
    fn end_reason(self) -> EndReason {
        match self {
            Self::Invalid => EndReason::AccountInvalid,
            Self::Unavailable => EndReason::Revoked { by_uid: 0 },
        }
    }
}

/// One check to run: the account phase for this user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    pub uid: u32,
    pub user: String,
}

/// A user with live sessions: the name to check, and how many sessions.
#[derive(Debug, Clone)]
struct LiveUser {
    name: String,
    sessions: usize,
}

/// The engine's re-validation state.
#[derive(Debug, Default)]
pub(crate) struct Revalidation {
    /// `None` while re-validation is off.
    schedule: Option<Schedule>,
    unavailable: Unavailable,
    service: String,
    live: HashMap<u32, LiveUser>,
    /// Users whose check is running: a user is checked once at a time.
    in_flight: HashSet<u32>,
}

/// An outcome as events and replies name it.
fn outcome_name(o: CheckOutcome) -> &'static str {
    match o {
        CheckOutcome::Returned(c) => code_name(c),
        CheckOutcome::TimedOut => "timeout",
        CheckOutcome::Failed => "failed",
    }
}

impl Revalidation {
    /// A session of `uid` (logged in as `user`) is now in the table.
    pub(crate) fn session_added(&mut self, uid: u32, user: &str, now: Timestamp) {
        if uid == 0 {
            return;
        }
        let u = self.live.entry(uid).or_insert_with(|| LiveUser {
            name: user.to_owned(),
            sessions: 0,
        });
        u.sessions += 1;
        if let Some(s) = &mut self.schedule {
            s.watch(uid, now);
        }
    }

    /// A session of `uid` left the table; its last one stops the checks.
    pub(crate) fn session_removed(&mut self, uid: u32) {
        let Some(u) = self.live.get_mut(&uid) else {
            return;
        };
        u.sessions = u.sessions.saturating_sub(1);
        if u.sessions == 0 {
            self.live.remove(&uid);
            if let Some(s) = &mut self.schedule {
                s.forget(uid);
            }
        }
    }

    /// Whether `uid` is due checks (has live sessions and is not root).
    #[cfg(test)]
    pub(crate) fn watched(&self, uid: u32) -> bool {
        self.schedule
            .as_ref()
            .is_some_and(|s| s.users().any(|u| u == uid))
    }
}

impl<S: System> Engine<S> {
    /// Applies `[daemon] revalidate*`; a new interval re-spreads every user.
    pub(crate) fn configure_revalidation(&mut self, cfg: &RevalidateConfig) {
        let now = self.sys.now();
        let r = &mut self.reval;
        r.unavailable = cfg.unavailable;
        r.service.clone_from(&cfg.service);
        let current = r.schedule.as_ref().map(Schedule::interval);
        if current == cfg.interval {
            return;
        }
        r.schedule = cfg.interval.map(|i| {
            let mut s = Schedule::new(i);
            for uid in r.live.keys() {
                s.watch(*uid, now);
            }
            s
        });
    }

    /// When the next scheduled check is due, if re-validation is on.
    pub(crate) fn next_check_due(&self) -> Option<Timestamp> {
        self.reval.schedule.as_ref().and_then(Schedule::next_due)
    }

    /// The scheduled checks due now; a user whose check is still running
    /// is skipped this round (it keeps its next slot).
    pub(crate) fn take_due_checks(&mut self) -> Vec<Check> {
        let now = self.sys.now();
        let r = &mut self.reval;
        let Some(s) = &mut r.schedule else {
            return Vec::new();
        };
        let due = s.take_due(now);
        due.into_iter()
            .filter_map(|uid| Self::start_check(r, uid))
            .collect()
    }

    /// `timeoutctl revalidate [--user NAME]`: the checks to start now, and
    /// every uid whose answer the reply waits for (running ones included).
    pub(crate) fn request_checks(
        &mut self,
        user: Option<&str>,
    ) -> Result<(Vec<Check>, Vec<u32>), String> {
        let r = &mut self.reval;
        let mut uids: Vec<u32> = r
            .live
            .iter()
            .filter(|(_, u)| user.is_none_or(|name| u.name == name))
            .map(|(uid, _)| *uid)
            .collect();
        uids.sort_unstable();
        if uids.is_empty() {
            return Err(match user {
                Some(name) => format!("{name} has no live session to re-validate"),
                None => "no live sessions to re-validate".to_owned(),
            });
        }
        let start = uids
            .iter()
            .filter_map(|uid| Self::start_check(r, *uid))
            .collect();
        Ok((start, uids))
    }

    fn start_check(r: &mut Revalidation, uid: u32) -> Option<Check> {
        let u = r.live.get(&uid)?;
        r.in_flight.insert(uid).then(|| Check {
            uid,
            user: u.name.clone(),
        })
    }

    /// A check ended: acts on its verdict and says what happened, in a line
    /// for `timeoutctl revalidate`.
    pub(crate) fn check_finished(&mut self, check: &Check, outcome: CheckOutcome) -> String {
        self.reval.in_flight.remove(&check.uid);
        let result = outcome_name(outcome);
        let head = format!("{} (uid {}): {result}", check.user, check.uid);
        match verdict(outcome) {
            Verdict::Valid => format!("{head}: valid, sessions kept"),
            Verdict::Invalid(_) => {
                let n = self.end_user(check.uid, AccountEnd::Invalid, result);
                self.log_result(check, result, "invalid", n);
                format!("{head}: account invalid, {n} session(s) ended")
            }
            Verdict::PasswordChangeDue => {
                self.log_result(check, result, "password_change_due", 0);
                format!("{head}: password change due, sessions kept")
            }
            Verdict::Unavailable(_) => self.unavailable(check, result, &head),
        }
    }

    fn unavailable(&mut self, check: &Check, result: &str, head: &str) -> String {
        let end = self.reval.unavailable == Unavailable::End;
        let ended = if end {
            self.end_user(check.uid, AccountEnd::Unavailable, result)
        } else {
            0
        };
        let ev = Event::new(EventName::RevalidateUnavailable)
            .with_severity(Severity::Warning)
            .field("user", &check.user)
            .field("uid", check.uid)
            .field("service", &self.reval.service)
            .field("pam_result", result)
            .field("action", if end { "ended" } else { "kept" })
            .field("sessions_ended", ended);
        self.sys.log(ev);
        if end {
            format!("{head}: directory unavailable, {ended} session(s) ended (revalidate_unavailable = \"end\")")
        } else {
            format!("{head}: directory unavailable, sessions kept")
        }
    }

    fn log_result(&mut self, check: &Check, result: &str, verdict: &str, ended: usize) {
        let ev = Event::new(EventName::RevalidateResult)
            .with_severity(Severity::Notice)
            .field("user", &check.user)
            .field("uid", check.uid)
            .field("service", &self.reval.service)
            .field("pam_result", result)
            .field("result", verdict)
            .field("sessions_ended", ended);
        self.sys.log(ev);
    }

    /// Ends every active session of `uid` at once, as a revocation does.
    fn end_user(&mut self, uid: u32, why: AccountEnd, result: &str) -> usize {
        let mut victims: Vec<SessionId> = self
            .sessions_all()
            .filter(|s| s.is_active() && s.login.uid == uid)
            .map(|s| s.id)
            .collect();
        victims.sort_unstable();
        if victims.is_empty() {
            return 0;
        }
        self.sys.begin_batch();
        for id in &victims {
            if let Some(s) = self.session(*id) {
                let ev = session_event(EventName::SessionRevoked, s)
                    .with_severity(Severity::Notice)
                    .field("by_uid", 0)
                    .field("reason", why.revoked_reason())
                    .field("pam_result", result);
                self.sys.log(ev);
            }
            self.end_now(*id, why.end_reason());
        }
        victims.len()
    }
}
