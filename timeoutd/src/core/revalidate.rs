//! Re-validation of live users through the PAM account stack: when each user
//! is checked next, and what a check's answer means for their sessions.
//!
//! Checks are per user, not per session. Each user gets a fixed phase in the
//! interval (from the uid), so a thousand users are spread over the whole
//! interval instead of being checked in one burst. Pure: time comes in as a
//! value; running the check is the host's job.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::core::time::clock::Timestamp;

/// The Linux-PAM return codes the account phase can give (security/_pam_types.h).
pub mod code {
    pub const SUCCESS: i32 = 0;
    pub const SYSTEM_ERR: i32 = 4;
    pub const BUF_ERR: i32 = 5;
    pub const PERM_DENIED: i32 = 6;
    pub const AUTHINFO_UNAVAIL: i32 = 9;
    pub const USER_UNKNOWN: i32 = 10;
    pub const NEW_AUTHTOK_REQD: i32 = 12;
    pub const ACCT_EXPIRED: i32 = 13;
    pub const CONV_ERR: i32 = 19;
    pub const ABORT: i32 = 26;
    pub const AUTHTOK_EXPIRED: i32 = 27;
    pub const IGNORE: i32 = 25;
}

/// The name libpam gives a return code, for events (`pam_result=`).
pub fn code_name(c: i32) -> &'static str {
    match c {
        code::SUCCESS => "PAM_SUCCESS",
        code::SYSTEM_ERR => "PAM_SYSTEM_ERR",
        code::BUF_ERR => "PAM_BUF_ERR",
        code::PERM_DENIED => "PAM_PERM_DENIED",
        code::AUTHINFO_UNAVAIL => "PAM_AUTHINFO_UNAVAIL",
        code::USER_UNKNOWN => "PAM_USER_UNKNOWN",
        code::NEW_AUTHTOK_REQD => "PAM_NEW_AUTHTOK_REQD",
        code::ACCT_EXPIRED => "PAM_ACCT_EXPIRED",
        code::CONV_ERR => "PAM_CONV_ERR",
        code::ABORT => "PAM_ABORT",
        code::AUTHTOK_EXPIRED => "PAM_AUTHTOK_EXPIRED",
        code::IGNORE => "PAM_IGNORE",
        _ => "PAM_OTHER",
    }
}

/// How one check ended, as the host saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// `pam_acct_mgmt` returned this code.
    Returned(i32),
    /// The check did not finish within `revalidate_timeout`; it was killed.
    TimedOut,
    /// The check could not be run or died without an answer.
    Failed,
}

/// What a check means for the user's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The account may still log in: nothing to do.
    Valid,
    /// The account is expired, disabled, unknown or its password expired past
    /// its grace: end every session now (`reason=account_invalid`).
    Invalid(i32),
    /// A password change is due: sessions are kept, and it is logged.
    PasswordChangeDue,
    /// The directory could not answer (unavailable, timeout, any other
    /// error): sessions are kept unless `revalidate_unavailable = "end"`.
    Unavailable(CheckOutcome),
}

/// Reads a check's outcome.
pub fn verdict(outcome: CheckOutcome) -> Verdict {
    match outcome {
        CheckOutcome::Returned(code::SUCCESS) => Verdict::Valid,
        CheckOutcome::Returned(
            c @ (code::ACCT_EXPIRED
            | code::PERM_DENIED
            | code::USER_UNKNOWN
            | code::AUTHTOK_EXPIRED),
        ) => Verdict::Invalid(c),
        CheckOutcome::Returned(code::NEW_AUTHTOK_REQD) => Verdict::PasswordChangeDue,
        other => Verdict::Unavailable(other),
    }
}

/// The users with live sessions and when each is checked next.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    interval: Duration,
    next: BTreeMap<u32, Timestamp>,
    /// (due, uid), so the earliest is found without a scan.
    queue: BTreeSet<(Timestamp, u32)>,
}

impl Schedule {
    /// Checks every user once per `interval` (which must not be zero).
    pub fn new(interval: Duration) -> Self {
        Self {
            interval: interval.max(Duration::from_secs(1)),
            next: BTreeMap::new(),
            queue: BTreeSet::new(),
        }
    }

    /// The interval in force.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// A user with a live session; already known users keep their time.
    pub fn watch(&mut self, uid: u32, now: Timestamp) {
        if self.next.contains_key(&uid) {
            return;
        }
        let at = self.next_phase(uid, now);
        self.next.insert(uid, at);
        self.queue.insert((at, uid));
    }

    /// A user without live sessions any more.
    pub fn forget(&mut self, uid: u32) {
        if let Some(at) = self.next.remove(&uid) {
            self.queue.remove(&(at, uid));
        }
    }

    /// When the next check is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// The users due now, each rescheduled one interval on.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<u32> {
        let mut due = Vec::new();
        while let Some(&(at, uid)) = self.queue.first() {
            if at > now {
                break;
            }
            self.queue.remove(&(at, uid));
            let again = self.next_phase(uid, now + Duration::from_millis(1));
            self.next.insert(uid, again);
            self.queue.insert((again, uid));
            due.push(uid);
        }
        due
    }

    /// The users watched (checks on request keep every user's phase).
    #[cfg(test)]
    pub fn users(&self) -> impl Iterator<Item = u32> + '_ {
        self.next.keys().copied()
    }

    /// The first time at or after `now` that is this uid's phase of the interval.
    fn next_phase(&self, uid: u32, now: Timestamp) -> Timestamp {
        let period = i64::try_from(self.interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        // Fibonacci hashing spreads consecutive uids evenly over the period.
        let spread = u64::from(uid).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
        let phase = i64::try_from(spread % period.unsigned_abs()).unwrap_or(0);
        let base = now.0 - now.0.rem_euclid(period);
        let at = base + phase;
        Timestamp(if at < now.0 { at + period } else { at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_map_to_what_the_issue_says() {
        use CheckOutcome::*;
        assert_eq!(verdict(Returned(code::SUCCESS)), Verdict::Valid);
        for c in [
            code::ACCT_EXPIRED,
            code::PERM_DENIED,
            code::USER_UNKNOWN,
            code::AUTHTOK_EXPIRED,
        ] {
            assert_eq!(
                verdict(Returned(c)),
                Verdict::Invalid(c),
                "{}",
                code_name(c)
            );
        }
        assert_eq!(
            verdict(Returned(code::NEW_AUTHTOK_REQD)),
            Verdict::PasswordChangeDue
        );
        for o in [
            Returned(code::AUTHINFO_UNAVAIL),
            Returned(code::SYSTEM_ERR),
            Returned(77),
            TimedOut,
            Failed,
        ] {
            assert_eq!(verdict(o), Verdict::Unavailable(o));
        }
        assert_eq!(code_name(code::ACCT_EXPIRED), "PAM_ACCT_EXPIRED");
        assert_eq!(code_name(1234), "PAM_OTHER");
    }

    #[test]
    fn every_user_is_checked_once_per_interval() {
        let mut s = Schedule::new(Duration::from_secs(300));
        let t0 = Timestamp::from_secs(1_000_000);
        for uid in 1000..1100 {
            s.watch(uid, t0);
        }
        let mut checks: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
        for sec in 0..=900 {
            let now = t0 + Duration::from_secs(sec);
            for uid in s.take_due(now) {
                checks.entry(uid).or_default().push(sec as i64);
            }
        }
        assert_eq!(checks.len(), 100);
        for (uid, at) in &checks {
            assert!((3..=4).contains(&at.len()), "{uid}: {at:?}");
            for w in at.windows(2) {
                assert!((299..=301).contains(&(w[1] - w[0])), "{uid}: {at:?}");
            }
        }
    }

    #[test]
    fn checks_are_spread_over_the_interval_not_bunched() {
        let mut s = Schedule::new(Duration::from_secs(300));
        let t0 = Timestamp::from_secs(1_000_000 * 300);
        for uid in 1000..3000 {
            s.watch(uid, t0);
        }
        let mut per_minute = [0usize; 5];
        // Checks due in a second are taken at its end, so the last ones at 300.
        for sec in 0..=300 {
            let n = s.take_due(t0 + Duration::from_secs(sec)).len();
            per_minute[((sec / 60) as usize).min(4)] += n;
        }
        assert_eq!(per_minute.iter().sum::<usize>(), 2000);
        for n in per_minute {
            assert!((300..=500).contains(&n), "{per_minute:?}");
        }
    }

    #[test]
    fn forgotten_users_are_not_checked_and_watch_is_idempotent() {
        let mut s = Schedule::new(Duration::from_secs(60));
        let t0 = Timestamp::from_secs(6000);
        s.watch(5, t0);
        let first = s.next_due().unwrap();
        s.watch(5, t0 + Duration::from_secs(30));
        assert_eq!(s.next_due(), Some(first));
        s.forget(5);
        assert_eq!(s.next_due(), None);
        assert!(s.take_due(t0 + Duration::from_secs(600)).is_empty());
        assert_eq!(s.users().count(), 0);
    }
}
