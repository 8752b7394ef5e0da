//! Administrators' deadlines (`timeoutctl deadline`): every session of a
//! user or group that opened before the deadline ends at it. Pure, with a
//! line format for the state directory, like the revocations.
//!
//! A deadline is kept for [`RETAIN`] after it passes, so that a session
//! restored after a restart still finds the deadline it was under (it then
//! ends after the shortest warning); it is listed only until it passes.

use std::time::Duration;

use session_timeout_proto::Target;

use crate::core::state::lines::{records, target_fields};
use crate::core::state::record::{esc, unesc};
use crate::core::time::clock::Timestamp;

/// How long a passed deadline is kept for sessions restored after a restart.
pub const RETAIN: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminDeadline {
    pub target: Target,
    pub since: Timestamp,
    pub at: Timestamp,
    pub reason: String,
    pub by_uid: u32,
}

impl AdminDeadline {
    /// Whether it falls on a session of `user` with these groups that
    /// registered at `registered_at`: live sessions, and logins made before it.
    pub fn applies(&self, user: &str, groups: &[String], registered_at: Timestamp) -> bool {
        let covered = match &self.target {
            Target::User(u) => u == user,
            Target::Group(g) => groups.iter().any(|x| x == g),
        };
        covered && registered_at < self.at
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminDeadlines {
    list: Vec<AdminDeadline>,
}

impl AdminDeadlines {
    /// Those that have not passed at `now`.
    pub fn active(&self, now: Timestamp) -> impl Iterator<Item = &AdminDeadline> {
        self.list.iter().filter(move |d| d.at > now)
    }

    /// Adds or replaces the deadline of the same target.
    pub fn set(&mut self, d: AdminDeadline) {
        self.list.retain(|x| x.target != d.target);
        self.list.push(d);
    }

    pub fn clear(&mut self, target: &Target) -> Option<AdminDeadline> {
        let i = self.list.iter().position(|x| &x.target == target)?;
        Some(self.list.remove(i))
    }

    /// Forgets deadlines passed more than [`RETAIN`] ago; whether any went.
    pub fn prune(&mut self, now: Timestamp) -> bool {
        let before = self.list.len();
        self.list.retain(|d| d.at + RETAIN > now);
        self.list.len() != before
    }

    /// The earliest deadline that falls on this session, if any.
    pub fn for_session(
        &self,
        user: &str,
        groups: &[String],
        registered_at: Timestamp,
    ) -> Option<Timestamp> {
        self.list
            .iter()
            .filter(|d| d.applies(user, groups, registered_at))
            .map(|d| d.at)
            .min()
    }

    /// One line each: `user|group <TAB> name <TAB> since_ms <TAB> at_ms <TAB> uid <TAB> reason`.
    pub fn to_text(&self) -> String {
        let mut out = String::from("# timeoutd deadlines v1\n");
        for d in &self.list {
            let (kind, name) = target_fields(&d.target);
            out.push_str(&format!(
                "{kind}\t{name}\t{}\t{}\t{}\t{}\n",
                d.since.0,
                d.at.0,
                d.by_uid,
                esc(&d.reason)
            ));
        }
        out
    }

    /// Parses [`AdminDeadlines::to_text`]; a bad line is reported, never a panic.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for line in records(text, "deadline") {
            let [kind, name, since, at, by_uid, reason] = line.fields()?;
            out.set(AdminDeadline {
                target: line.target(kind, name)?,
                since: line.time(since)?,
                at: line.time(at)?,
                by_uid: line.number(by_uid)?,
                reason: unesc(reason),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    fn dl(target: Target, at: i64) -> AdminDeadline {
        AdminDeadline {
            target,
            since: t(100),
            at: t(at),
            reason: "jit\tgrant\nends \\ now".into(),
            by_uid: 0,
        }
    }

    #[test]
    fn a_deadline_falls_on_sessions_opened_before_it() {
        let mut s = AdminDeadlines::default();
        s.set(dl(Target::User("bob".into()), 500));
        s.set(dl(Target::Group("ops".into()), 400));
        assert_eq!(s.for_session("bob", &[], t(50)), Some(t(500)));
        assert_eq!(s.for_session("bob", &["ops".into()], t(50)), Some(t(400)));
        assert_eq!(s.for_session("eve", &["ops".into()], t(399)), Some(t(400)));
        assert_eq!(
            s.for_session("eve", &["ops".into()], t(400)),
            None,
            "a login after it"
        );
        assert_eq!(s.for_session("alice", &["staff".into()], t(50)), None);
    }

    #[test]
    fn set_replaces_clear_removes_and_passed_ones_are_kept_a_while() {
        let mut s = AdminDeadlines::default();
        s.set(dl(Target::User("bob".into()), 500));
        s.set(dl(Target::User("bob".into()), 600));
        assert_eq!(s.active(t(0)).count(), 1);
        assert_eq!(s.for_session("bob", &[], t(0)), Some(t(600)));
        assert_eq!(s.active(t(600)).count(), 0, "listed only until it passes");
        assert!(!s.prune(t(600) + RETAIN - Duration::from_secs(1)));
        assert_eq!(s.for_session("bob", &[], t(0)), Some(t(600)), "still found");
        assert!(s.prune(t(600) + RETAIN));
        assert_eq!(s.for_session("bob", &[], t(0)), None);
        s.set(dl(Target::Group("ops".into()), 500));
        assert!(s.clear(&Target::Group("ops".into())).is_some());
        assert!(s.clear(&Target::Group("ops".into())).is_none());
    }

    #[test]
    fn text_round_trips_and_garbage_is_an_error() {
        let mut s = AdminDeadlines::default();
        s.set(dl(Target::User("bob".into()), 500));
        s.set(dl(Target::Group("a\tb".into()), 700));
        assert_eq!(AdminDeadlines::from_text(&s.to_text()).unwrap(), s);
        assert!(AdminDeadlines::from_text("user\tbob\n").is_err());
        assert!(AdminDeadlines::from_text("robot\tx\t1\t2\t0\tr\n").is_err());
        assert!(AdminDeadlines::from_text("user\tx\t1\tsoon\t0\tr\n").is_err());
        assert_eq!(
            AdminDeadlines::from_text("").unwrap(),
            AdminDeadlines::default()
        );
    }
}
