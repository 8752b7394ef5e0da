//! Restarts: restoring sessions from durable state, and adopting logins.

use std::time::Duration;

use crate::core::session::SessionId;
use crate::core::state::record::JournalEntry;
use crate::core::time::clock::Timestamp;
use crate::engine::recovery::FoundLogin;
use crate::engine::testkit::*;

/// A session registered at 1000, with its durable record, and a new engine
/// (the restarted daemon) at `restart_at`.
fn restarted(
    l: crate::core::policy::Limits,
    restart_at: i64,
) -> (crate::core::state::record::SessionRecord, Engine) {
    let mut first = engine(l.clone());
    let id = registered_id(first.register(registration(), ROOT));
    run_until(&mut first, 1003);
    let rec = first.session(id).unwrap().record();
    let mut second = engine(l);
    second.sys.now = Timestamp::from_secs(restart_at);
    (rec, second)
}

type Engine = crate::engine::Engine<Fake>;

#[test]
fn registrations_and_removals_are_journaled() {
    let mut e = engine(limits(Some(15), None, &[10]));
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1040);
    assert!(matches!(e.sys.journal.first(), Some(JournalEntry::Upsert(r)) if r.id == id));
    assert!(e
        .sys
        .journal
        .iter()
        .any(|j| matches!(j, JournalEntry::Upsert(r) if r.ttys == ["pts/4"])));
    assert_eq!(e.sys.journal.last(), Some(&JournalEntry::Gone(id)));
}

#[test]
fn a_restored_session_keeps_its_original_deadline() {
    let (rec, mut e) = restarted(limits(Some(30), None, &[10]), 1010);
    let id = rec.id;
    assert!(e.restore(rec));
    assert_eq!(
        find(&e, "session_restored").get("id"),
        Some(id.0.to_string().as_str())
    );
    run_until(&mut e, 1040);
    // The fake tty's atime 990 lies in [984, 992): credited at 992, before the
    // registration at 1000, so the idle deadline is 1000 + 30 = 1030, as before the restart.
    assert_eq!(find(&e, "session_expired").get("deadline"), Some("1030"));
    assert!(e.session(id).is_none());
}

#[test]
fn a_session_that_ended_while_down_is_closed_as_lost() {
    let (rec, mut e) = restarted(limits(Some(30), None, &[10]), 1010);
    e.sys.leader_alive = false;
    e.sys.procs.clear();
    let id = rec.id;
    assert!(!e.restore(rec));
    assert_eq!(
        find(&e, "session_close").get("reason"),
        Some("lost_while_down")
    );
    assert_eq!(e.sys.journal.last(), Some(&JournalEntry::Gone(id)));
    assert!(e.is_empty());
}

#[test]
fn a_deadline_passed_while_down_is_enforced_after_a_short_warning() {
    let (rec, mut e) = restarted(limits(Some(30), None, &[10]), 1100);
    e.restore(rec);
    run_until(&mut e, 1101);
    let warn = find(&e, "session_warn");
    assert_eq!(warn.get("remaining"), Some("5s"));
    assert!(!names(&e).contains(&"session_expired"));
    run_until(&mut e, 1104);
    assert!(
        !names(&e).contains(&"session_expired"),
        "not before the warning has run out"
    );
    run_until(&mut e, 1106);
    // The log names the original deadline, which passed while the daemon was down.
    assert_eq!(find(&e, "session_expired").get("deadline"), Some("1030"));
}

#[test]
fn a_login_opened_while_down_is_adopted_and_enforced() {
    let mut e = engine(limits(Some(20), None, &[10]));
    e.sys.now = Timestamp::from_secs(1005);
    e.adopt(vec![FoundLogin {
        leader: LEADER,
        sessionid: 42,
        uid: USER_UID,
        user: "alice".into(),
        service: "sshd".into(),
        started_at: Timestamp::from_secs(1000),
    }]);
    let ev = find(&e, "session_adopted");
    assert_eq!(
        (ev.get("user"), ev.get("rule")),
        (Some("alice"), Some("defaults"))
    );
    run_until(&mut e, 1030);
    assert_eq!(find(&e, "session_expired").get("reason"), Some("idle"));
    assert_eq!(find(&e, "session_terminated").get("survivors"), Some("0"));
}

#[test]
fn a_login_already_covered_is_not_adopted_twice() {
    let mut e = engine(limits(Some(20), None, &[10]));
    e.register(registration(), ROOT);
    e.adopt(vec![FoundLogin {
        leader: LEADER,
        sessionid: 42,
        uid: USER_UID,
        user: "alice".into(),
        service: "sshd".into(),
        started_at: Timestamp::from_secs(1000),
    }]);
    assert!(!names(&e).contains(&"session_adopted"));
    assert_eq!(e.len(), 1);
    let _ = (SessionId(0), Duration::ZERO);
}

#[test]
fn a_restored_session_of_a_revoked_user_is_ended() {
    let (rec, mut e) = restarted(limits(Some(300), None, &[10]), 1010);
    e.revocations
        .add(crate::core::state::revocations::Revocation {
            target: session_timeout_proto::Target::User("alice".into()),
            since: Timestamp::from_secs(1005),
            until: None,
            reason: "incident".into(),
            by_uid: 0,
        });
    e.restore(rec);
    assert_eq!(find(&e, "session_revoked").get("by_uid"), Some("0"));
    assert_eq!(e.sys.signals[0].0, libc::SIGHUP);
}

#[test]
fn a_snapshot_taken_at_a_wake_holds_what_the_wake_changed() {
    let mut e = engine(limits(Some(600), None, &[]));
    e.sys.compact_always = true;
    let id = registered_id(e.register(registration(), ROOT));
    // The first wake finds the terminal: a change, persisted, and then the
    // table is compacted into a snapshot.
    run_until(&mut e, 1003);
    let live = e.session(id).unwrap().record();
    assert_eq!(live.ttys, ["pts/4"]);
    assert_eq!(
        e.sys.snapshot,
        [live],
        "the snapshot is the table after the wake"
    );
}
