//! Revocations: users and groups whose sessions are cut and whose new logins
//! are refused until a TTL passes or an admin lifts them. Pure, with a line
//! format for the state directory.

use session_timeout_proto::Target;

use crate::core::state::lines::{optional_time_field, records, target_fields};
use crate::core::state::record::{esc, unesc};
use crate::core::time::clock::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub target: Target,
    pub since: Timestamp,
    /// `None`: until `unrevoke`.
    pub until: Option<Timestamp>,
    pub reason: String,
    pub by_uid: u32,
}

impl Revocation {
    /// Whether a login of `user` with these groups falls under it.
    pub fn covers(&self, user: &str, groups: &[String]) -> bool {
        match &self.target {
            Target::User(u) => u == user,
            Target::Group(g) => groups.iter().any(|x| x == g),
        }
    }
}

pub fn target_label(t: &Target) -> String {
    match t {
        Target::User(u) => format!("user:{u}"),
        Target::Group(g) => format!("group:{g}"),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    list: Vec<Revocation>,
}

impl Revocations {
    pub fn all(&self) -> &[Revocation] {
        &self.list
    }

    /// Adds or replaces the revocation of the same target.
    pub fn add(&mut self, r: Revocation) {
        self.list.retain(|x| x.target != r.target);
        self.list.push(r);
    }

    pub fn remove(&mut self, target: &Target) -> Option<Revocation> {
        let i = self.list.iter().position(|x| &x.target == target)?;
        Some(self.list.remove(i))
    }

    /// Removes and returns those whose TTL has passed.
    pub fn expire(&mut self, now: Timestamp) -> Vec<Revocation> {
        let (gone, kept): (Vec<_>, Vec<_>) = self
            .list
            .drain(..)
            .partition(|r| r.until.is_some_and(|u| u <= now));
        self.list = kept;
        gone
    }

    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.list.iter().filter_map(|r| r.until).min()
    }

    /// The revocation in force for this login, if any.
    pub fn find(&self, user: &str, groups: &[String], now: Timestamp) -> Option<&Revocation> {
        self.list
            .iter()
            .filter(|r| r.until.is_none_or(|u| u > now))
            .find(|r| r.covers(user, groups))
    }

    /// One line each: `user|group <TAB> name <TAB> since_ms <TAB> until_ms|- <TAB> uid <TAB> reason`.
    /// Names and reasons have tabs, newlines and backslashes escaped.
    pub fn to_text(&self) -> String {
        let mut out = String::from("# timeoutd revocations v1\n");
        for r in &self.list {
            let (kind, name) = target_fields(&r.target);
            out.push_str(&format!(
                "{kind}\t{name}\t{}\t{}\t{}\t{}\n",
                r.since.0,
                optional_time_field(r.until),
                r.by_uid,
                esc(&r.reason)
            ));
        }
        out
    }

    /// Parses [`Revocations::to_text`]; a bad line is reported, never a panic.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for line in records(text, "revocation") {
            let [kind, name, since, until, by_uid, reason] = line.fields()?;
            out.add(Revocation {
                target: line.target(kind, name)?,
                since: line.time(since)?,
                until: line.optional_time(until)?,
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

    fn rev(target: Target, until: Option<i64>) -> Revocation {
        Revocation {
            target,
            since: Timestamp::from_secs(100),
            until: until.map(Timestamp::from_secs),
            reason: "incident\t42\nnext \\ line".into(),
            by_uid: 0,
        }
    }

    #[test]
    fn users_and_groups_are_matched_until_expiry() {
        let mut r = Revocations::default();
        r.add(rev(Target::User("bob".into()), Some(200)));
        r.add(rev(Target::Group("contractors".into()), None));
        let now = Timestamp::from_secs(150);
        assert!(r.find("bob", &[], now).is_some());
        assert!(r.find("eve", &["contractors".into()], now).is_some());
        assert!(r.find("alice", &["staff".into()], now).is_none());
        assert!(r.find("bob", &[], Timestamp::from_secs(200)).is_none());
        assert_eq!(r.next_expiry(), Some(Timestamp::from_secs(200)));
        let gone = r.expire(Timestamp::from_secs(200));
        assert_eq!(gone.len(), 1);
        assert_eq!(r.all().len(), 1);
    }

    #[test]
    fn adding_again_replaces_and_remove_lifts() {
        let mut r = Revocations::default();
        r.add(rev(Target::User("bob".into()), Some(200)));
        r.add(rev(Target::User("bob".into()), None));
        assert_eq!(r.all().len(), 1);
        assert_eq!(r.all()[0].until, None);
        assert!(r.remove(&Target::User("bob".into())).is_some());
        assert!(r.remove(&Target::User("bob".into())).is_none());
    }

    #[test]
    fn text_round_trips_and_garbage_is_an_error() {
        let mut r = Revocations::default();
        r.add(rev(Target::User("bob".into()), Some(200)));
        r.add(rev(Target::Group("a\tb".into()), None));
        assert_eq!(Revocations::from_text(&r.to_text()).unwrap(), r);
        assert!(Revocations::from_text("user\tbob\n").is_err());
        assert!(Revocations::from_text("robot\tx\t1\t-\t0\tr\n").is_err());
        assert!(Revocations::from_text("user\tx\tNaN\t-\t0\tr\n").is_err());
        assert_eq!(Revocations::from_text("").unwrap(), Revocations::default());
    }
}
