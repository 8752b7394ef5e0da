//! A user's group names, remembered for [`GROUPS_TTL`] for the login path.
//!
//! Every register (and `access` check) asks NSS for the user's groups:
//! `getgrouplist` and one `getgrgid_r` per group, each a pass over every
//! NSS source. A burst of logins of one user asks the same question many
//! times a second; the answer is kept for one second at most, so a group
//! change reaches new logins at most that much later (NSS caches such as
//! nscd or sssd keep answers far longer). The admin check (`in_group`) and
//! revalidation do not use it: they always ask NSS.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an answer is reused.
pub(crate) const GROUPS_TTL: Duration = Duration::from_secs(1);
/// Users remembered at once; an answer for one more user first drops the
/// expired ones, and all of them if none expired.
const MAX_USERS: usize = 256;

#[derive(Default)]
pub(crate) struct GroupsCache {
    by_user: HashMap<String, (Instant, Vec<String>)>,
}

impl GroupsCache {
    /// The groups of `user`: remembered if asked less than [`GROUPS_TTL`]
    /// before `now`, else `lookup(user)`, remembered from `now`.
    pub(crate) fn get(
        &mut self,
        user: &str,
        now: Instant,
        lookup: impl FnOnce(&str) -> Vec<String>,
    ) -> Vec<String> {
        if let Some((at, groups)) = self.by_user.get(user) {
            if now.saturating_duration_since(*at) < GROUPS_TTL {
                return groups.clone();
            }
        }
        let groups = lookup(user);
        if self.by_user.len() >= MAX_USERS && !self.by_user.contains_key(user) {
            self.by_user
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < GROUPS_TTL);
            if self.by_user.len() >= MAX_USERS {
                self.by_user.clear();
            }
        }
        self.by_user.insert(user.to_owned(), (now, groups.clone()));
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_from_memory_within_the_ttl_and_asks_again_after() {
        let mut c = GroupsCache::default();
        let t0 = Instant::now();
        let mut asked = 0;
        let mut ask = |at: Instant, answer: &str| {
            c.get("alice", at, |_| {
                asked += 1;
                vec![answer.to_owned()]
            })
        };
        assert_eq!(ask(t0, "a"), ["a"]);
        assert_eq!(ask(t0 + Duration::from_millis(999), "b"), ["a"]);
        assert_eq!(ask(t0 + GROUPS_TTL, "c"), ["c"]);
        assert_eq!(asked, 2);
    }

    #[test]
    fn users_are_kept_apart_and_bounded() {
        let mut c = GroupsCache::default();
        let t0 = Instant::now();
        assert_eq!(c.get("alice", t0, |_| vec!["a".into()]), ["a"]);
        assert_eq!(c.get("bob", t0, |_| vec!["b".into()]), ["b"]);
        for i in 0..2 * MAX_USERS {
            c.get(&format!("u{i}"), t0, |_| Vec::new());
            assert!(c.by_user.len() <= MAX_USERS);
        }
    }
}
