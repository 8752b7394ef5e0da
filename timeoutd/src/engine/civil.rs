//! Windows and quotas in the engine: a login refused by the clock, the
//! user's quota clock started and stopped with their sessions, and the
//! ledger stored durably. The deadlines themselves are absolute deadlines
//! (`verbs/deadlines.rs`), recomputed at every wake of a session.
//!
//! A user's quota runs out at one instant for all their sessions: the
//! union clock runs at the same rate whether one session is open or five,
//! so a login or logout of another session (while one remains) never moves
//! it; the first login starts it, the last logout stops it, and the day's
//! reset is part of the computed instant.

use session_timeout_proto::Registration;

use crate::core::audit::event::{Event, EventName, Severity};
use crate::core::policy::{LoginFacts, TtyClass};
use crate::core::session::deadline::Reason;
use crate::core::session::identity::Identity;
use crate::core::session::Session;
use crate::core::time::civil::{ClockRefusal, Closed};
use crate::core::time::clock::Timestamp;
use crate::engine::{Engine, System};

impl From<Closed> for Reason {
    fn from(c: Closed) -> Reason {
        match c {
            Closed::Window => Reason::Window,
            Closed::Quota => Reason::Quota,
        }
    }
}

/// What the policy is matched on at registration (the session phase).
pub(super) fn facts_of(reg: &Registration, groups: &[String]) -> LoginFacts {
    let (auth, _) = Identity::from_wire(&reg.auth);
    LoginFacts {
        user: reg.user.clone(),
        groups: groups.to_vec(),
        service: reg.service.clone(),
        rhost: reg.rhost.clone(),
        tty: crate::engine::register::initial_tty_class(&reg.tty).0,
        auth: auth.methods.clone(),
        certificate: auth.certificate(),
    }
}

/// What is known in the account phase: no terminal yet (taken as a pty,
/// as for sshd) and no authentication methods; the session phase, with
/// everything known, decides again.
pub(super) fn account_facts(
    user: String,
    groups: Vec<String>,
    service: String,
    rhost: String,
) -> LoginFacts {
    LoginFacts {
        user,
        groups,
        service,
        rhost,
        tty: TtyClass::Pty,
        auth: Vec::new(),
        certificate: false,
    }
}

impl<S: System> Engine<S> {
    /// Whether the rule for this login refuses it now (outside its hours,
    /// quota used up); logged as `login_refused reason=window|quota`.
    pub(crate) fn clock_refusal(&mut self, facts: &LoginFacts) -> Option<ClockRefusal> {
        let now = self.sys.now();
        let d = self.policy.decide(facts);
        let r = self.civil.refusal(&facts.user, &d.limits, now)?;
        let mut ev = Event::new(EventName::LoginRefused)
            .with_severity(Severity::Notice)
            .field("user", &facts.user)
            .field("service", &facts.service)
            .field("rhost", &facts.rhost)
            .field("rule", &d.rule)
            .field("reason", r.reason.as_str());
        if let Some(until) = r.until {
            ev = ev.field("until", until.secs());
        }
        if d.limits.dry_run() {
            self.sys.log(ev.field("dry_run", 1));
            return None;
        }
        self.sys.log(ev);
        Some(r)
    }

    /// A session joined the table: the user's quota clock runs.
    pub(super) fn quota_session_opened(&mut self, s: &Session, now: Timestamp) {
        self.civil.session_opened(&s.login.user, now);
        if s.limits.daily.is_some() {
            self.save_quota();
        }
    }

    /// A session left the table: with the user's last one the clock stops.
    pub(super) fn quota_session_closed(&mut self, s: &Session) {
        let now = self.sys.now();
        self.civil.session_closed(&s.login.user, now);
        if s.limits.daily.is_some() {
            self.save_quota();
        }
    }

    /// After a restart's sessions are restored: users none of whose
    /// sessions survived stop their clock now.
    pub(crate) fn settle_quotas(&mut self) {
        let now = self.sys.now();
        self.civil.settle(now);
        self.save_quota();
    }

    fn save_quota(&mut self) {
        let text = self.civil.ledger_text();
        self.sys.save_quota(&text);
    }
}
