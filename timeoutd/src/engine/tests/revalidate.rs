//! Re-validation through PAM: who is watched when, what each answer does,
//! and one check at a time per user (the checks themselves are faked: the
//! test hands the engine each outcome).

use std::time::Duration;

use session_timeout_proto::{Request, SessionKey};

use crate::config::revalidate::{RevalidateConfig, Unavailable};
use crate::core::revalidate::{code, CheckOutcome};
use crate::core::session::{ProcRef, SessionId};
use crate::core::state::record::SessionRecord;
use crate::core::time::clock::Timestamp;
use crate::engine::recovery::FoundLogin;
use crate::engine::testkit::*;
use crate::engine::Check;

type Engine = crate::engine::Engine<Fake>;

fn every(secs: u64, unavailable: Unavailable) -> RevalidateConfig {
    RevalidateConfig {
        interval: Some(Duration::from_secs(secs)),
        unavailable,
        ..RevalidateConfig::default()
    }
}

/// An engine with no limits (sessions live until ended), re-validating
/// every minute, and alice logged in.
fn with_alice() -> (Engine, SessionId) {
    let mut e = engine(limits(None, None, &[]));
    e.configure_revalidation(&every(60, Unavailable::Keep));
    let id = registered_id(e.register(registration(), ROOT));
    (e, id)
}

/// Another session like alice's, for `user`/`uid`, with its own leader.
fn another(e: &Engine, of: SessionId, n: u64, user: &str, uid: u32) -> SessionRecord {
    let mut rec = e.session(of).unwrap().record();
    rec.id = SessionId(100 + n);
    rec.login.user = user.into();
    rec.login.uid = uid;
    rec.leader = ProcRef {
        pid: 600 + n as u32,
        start_time: 1,
    };
    rec
}

fn alice() -> Check {
    Check {
        uid: USER_UID,
        user: "alice".into(),
    }
}

fn logout(e: &mut Engine, rec: &SessionRecord) {
    let key = SessionKey {
        pid: rec.leader.pid,
        start_time: rec.leader.start_time,
        session_id: rec.id.0,
    };
    e.handle(Request::Unregister(key), ROOT);
}

#[test]
fn users_are_watched_from_their_first_session_to_their_last() {
    let mut e = engine(limits(None, None, &[]));
    let id = registered_id(e.register(registration(), ROOT));
    assert!(!e.reval.watched(USER_UID), "off by default");
    e.configure_revalidation(&every(60, Unavailable::Keep));
    assert!(
        e.reval.watched(USER_UID),
        "switched on: live users are watched"
    );
    let bob = another(&e, id, 1, "bob", 1002);
    let root = another(&e, id, 2, "root", 0);
    let second = another(&e, id, 3, "alice", USER_UID);
    assert!(e.restore(bob.clone()) && e.restore(root) && e.restore(second.clone()));
    e.adopt(vec![FoundLogin {
        leader: ProcRef {
            pid: 700,
            start_time: 1,
        },
        sessionid: 99,
        uid: 1003,
        user: "carol".into(),
        service: "sshd".into(),
        started_at: Timestamp::from_secs(900),
    }]);
    assert!(e.reval.watched(1002), "restored");
    assert!(e.reval.watched(1003), "adopted");
    assert!(!e.reval.watched(0), "root is never re-validated");
    let first = e.session(id).unwrap().record();
    logout(&mut e, &first);
    assert!(e.reval.watched(USER_UID), "alice still has a session");
    logout(&mut e, &second);
    assert!(!e.reval.watched(USER_UID), "her last session ended");
    logout(&mut e, &bob);
    assert!(!e.reval.watched(1002));
    e.configure_revalidation(&RevalidateConfig::default());
    assert_eq!(e.next_check_due(), None);
    assert!(!e.reval.watched(1003));
    e.configure_revalidation(&every(30, Unavailable::Keep));
    assert!(e.reval.watched(1003), "on again: carol is watched again");
}

#[test]
fn checks_come_once_per_interval_and_one_at_a_time_per_user() {
    let (mut e, _) = with_alice();
    let due = e.next_check_due().unwrap();
    assert!(due.since(e.sys.now) <= Duration::from_secs(60));
    e.sys.now = due;
    assert_eq!(e.take_due_checks(), vec![alice()]);
    assert!(
        e.take_due_checks().is_empty(),
        "rescheduled one interval on"
    );
    // The check hangs past the next slot: no second check of alice.
    e.sys.now = due + Duration::from_secs(61);
    assert!(e.take_due_checks().is_empty(), "her check is still running");
    // An on-demand request waits for the running check instead of starting one.
    let (start, wait) = e.request_checks(Some("alice")).unwrap();
    assert!(start.is_empty());
    assert_eq!(wait, vec![USER_UID]);
    let line = e.check_finished(&alice(), CheckOutcome::Returned(code::SUCCESS));
    assert!(line.contains("PAM_SUCCESS: valid"), "{line}");
    e.sys.now = due + Duration::from_secs(121);
    assert_eq!(e.take_due_checks(), vec![alice()]);
    e.check_finished(&alice(), CheckOutcome::Returned(code::SUCCESS));
    let (start, _) = e.request_checks(None).unwrap();
    assert_eq!(start, vec![alice()], "on demand, not due: started now");
    assert!(names(&e)
        .iter()
        .all(|n| !n.starts_with("revalidate") && *n != "session_revoked"));
}

#[test]
fn an_invalid_account_ends_every_session_of_that_user_and_no_other() {
    let (mut e, id) = with_alice();
    let second = another(&e, id, 1, "alice", USER_UID);
    let bob = another(&e, id, 2, "bob", 1002);
    assert!(e.restore(second.clone()) && e.restore(bob.clone()));
    let (start, _) = e.request_checks(Some("alice")).unwrap();
    assert_eq!(start, vec![alice()]);
    let line = e.check_finished(&alice(), CheckOutcome::Returned(code::ACCT_EXPIRED));
    assert!(line.contains("2 session(s) ended"), "{line}");
    let revoked: Vec<_> = e
        .sys
        .events
        .iter()
        .filter(|ev| ev.name() == "session_revoked")
        .collect();
    assert_eq!(revoked.len(), 2);
    for ev in revoked {
        assert_eq!(ev.get("user"), Some("alice"));
        assert_eq!(ev.get("reason"), Some("account_invalid"));
        assert_eq!(ev.get("pam_result"), Some("PAM_ACCT_EXPIRED"));
    }
    let r = find(&e, "revalidate_result");
    assert_eq!(r.get("result"), Some("invalid"));
    assert_eq!(r.get("sessions_ended"), Some("2"));
    for id in [id, second.id] {
        // Ending (signalled) or already over (nothing was left to signal).
        assert!(e.session(id).is_none_or(|s| !s.is_active()), "{id}");
    }
    assert!(e.session(bob.id).unwrap().is_active(), "bob is untouched");
}

#[test]
fn a_session_ended_for_an_invalid_account_terminates_and_sums_up_as_account_invalid() {
    let (mut e, id) = with_alice();
    e.check_finished(&alice(), CheckOutcome::Returned(code::ACCT_EXPIRED));
    run_until(&mut e, 1100);
    assert!(e.session(id).is_none(), "{:?}", names(&e));
    let ended = find(&e, "session_terminated");
    assert_eq!(ended.get("id"), Some(id.to_string().as_str()), "{ended}");
    assert_eq!(ended.get("reason"), Some("account_invalid"), "{ended}");
    let summary = find(&e, "session_summary");
    assert_eq!(summary.get("end"), Some("account_invalid"), "{summary}");
}

#[test]
fn a_password_change_due_or_an_unavailable_directory_keeps_the_sessions() {
    let (mut e, id) = with_alice();
    let line = e.check_finished(&alice(), CheckOutcome::Returned(code::NEW_AUTHTOK_REQD));
    assert!(line.contains("password change due"), "{line}");
    assert_eq!(
        find(&e, "revalidate_result").get("result"),
        Some("password_change_due")
    );
    for o in [
        CheckOutcome::TimedOut,
        CheckOutcome::Failed,
        CheckOutcome::Returned(code::AUTHINFO_UNAVAIL),
    ] {
        let line = e.check_finished(&alice(), o);
        assert!(line.contains("sessions kept"), "{line}");
    }
    let unavailable: Vec<_> = e
        .sys
        .events
        .iter()
        .filter(|ev| ev.name() == "revalidate_unavailable")
        .map(|ev| (ev.get("pam_result"), ev.get("action")))
        .collect();
    assert_eq!(
        unavailable,
        [
            (Some("timeout"), Some("kept")),
            (Some("failed"), Some("kept")),
            (Some("PAM_AUTHINFO_UNAVAIL"), Some("kept"))
        ]
    );
    assert!(e.session(id).unwrap().is_active());
    assert!(!names(&e).contains(&"session_revoked"));
}

#[test]
fn with_unavailable_end_an_unanswered_check_ends_the_sessions() {
    let (mut e, id) = with_alice();
    e.configure_revalidation(&every(60, Unavailable::End));
    let line = e.check_finished(&alice(), CheckOutcome::TimedOut);
    assert!(line.contains("1 session(s) ended"), "{line}");
    assert_eq!(
        find(&e, "revalidate_unavailable").get("action"),
        Some("ended")
    );
    let ev = find(&e, "session_revoked");
    assert_eq!(ev.get("reason"), Some("account_unavailable"));
    assert_eq!(ev.get("pam_result"), Some("timeout"));
    assert!(!e.session(id).unwrap().is_active());
    run_until(&mut e, 1100);
    assert_eq!(
        find(&e, "session_terminated").get("reason"),
        Some("revoked")
    );
    assert_eq!(find(&e, "session_summary").get("end"), Some("revoked"));
}

#[test]
fn asking_for_a_user_without_sessions_is_an_error() {
    let (mut e, _) = with_alice();
    assert!(e.request_checks(Some("mallory")).is_err());
    let mut empty = engine(limits(None, None, &[]));
    assert!(empty.request_checks(None).is_err());
}
