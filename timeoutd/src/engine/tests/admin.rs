//! The control verbs, driven through the engine with a fake system.

use session_timeout_proto::{ErrorCode, Request, Response, Target};

use crate::core::state::revocations::Revocations;
use crate::core::time::clock::Timestamp;
use crate::engine::ending::exits::ENDS_LOOK_EVERY;
use crate::engine::testkit::*;
use crate::engine::Peer;

const USER: Peer = Peer {
    pid: 9,
    uid: USER_UID,
    gid: USER_UID,
};
const OTHER: Peer = Peer {
    pid: 10,
    uid: 2000,
    gid: 2000,
};

fn sessions(r: Response) -> Vec<session_timeout_proto::SessionInfo> {
    match r {
        Response::Sessions(l) => l,
        other => panic!("expected sessions, got {other:?}"),
    }
}

fn is_denied(r: &Response) -> bool {
    matches!(
        r,
        Response::Error {
            code: ErrorCode::PermissionDenied,
            ..
        }
    )
}

#[test]
fn list_shows_limits_and_status_only_the_callers_own() {
    let mut e = engine(limits(Some(900), Some(3600), &[60]));
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1010);
    let all = sessions(e.handle(Request::List, ROOT));
    assert_eq!(all.len(), 1);
    let s = &all[0];
    assert_eq!(
        (s.id, s.user.as_str(), s.tty.as_str(), s.rule.as_str()),
        (id.0, "alice", "pts/4", "defaults")
    );
    assert_eq!(
        (s.started, s.idle_deadline, s.max_deadline),
        (1000, 1900, 4600)
    );
    assert_eq!(sessions(e.handle(Request::Status, USER)).len(), 1);
    assert!(sessions(e.handle(Request::Status, OTHER)).is_empty());
}

#[test]
fn admin_verbs_are_refused_to_users_and_logged() {
    let mut e = engine(limits(Some(900), None, &[60]));
    let id = registered_id(e.register(registration(), ROOT));
    for req in [
        Request::List,
        Request::Show { id: id.0 },
        Request::Kill {
            id: id.0,
            reason: String::new(),
        },
        Request::Revoke {
            target: Target::User("alice".into()),
            ttl_secs: 0,
            reason: String::new(),
        },
        Request::Revocations,
    ] {
        assert!(is_denied(&e.handle(req, USER)));
    }
    let denials = e
        .sys
        .events
        .iter()
        .filter(|ev| ev.name() == "request_denied")
        .count();
    assert_eq!(denials, 5);
    assert_eq!(find(&e, "request_denied").get("peer_uid"), Some("1001"));
    assert!(
        e.session(id).unwrap().is_active(),
        "nothing happened to the session"
    );
}

#[test]
fn the_admin_group_may_use_admin_verbs() {
    let mut e = engine(limits(Some(900), None, &[60]));
    e.admin_group = Some("timeout-admins".into());
    e.sys.admins.push((2000, "timeout-admins".into()));
    assert!(matches!(
        e.handle(Request::List, OTHER),
        Response::Sessions(_)
    ));
    assert!(is_denied(&e.handle(Request::List, USER)));
}

#[test]
fn kill_ends_exactly_that_session_and_logs_who() {
    let mut e = engine(limits(Some(900), None, &[60]));
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1005);
    let r = e.handle(
        Request::Kill {
            id: id.0,
            reason: "incident 42".into(),
        },
        ROOT,
    );
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    assert_eq!(find(&e, "session_killed").get("by_uid"), Some("0"));
    assert_eq!(
        find(&e, "session_killed").get("reason"),
        Some("incident 42")
    );
    assert_eq!(
        e.sys.signals[0].0,
        libc::SIGHUP,
        "signalled at once, no warning first"
    );
    assert!(!e.sys.events.iter().any(|ev| ev.name() == "session_warn"));
    run_until(&mut e, 1010);
    assert_eq!(find(&e, "session_terminated").get("reason"), Some("killed"));
    assert!(matches!(
        e.handle(
            Request::Kill {
                id: 999,
                reason: String::new()
            },
            ROOT
        ),
        Response::Error {
            code: ErrorCode::NotFound,
            ..
        }
    ));
}

#[test]
fn revoke_cuts_live_sessions_refuses_new_ones_and_expires() {
    let mut e = engine(limits(Some(900), None, &[60]));
    e.register(registration(), ROOT);
    let r = e.handle(
        Request::Revoke {
            target: Target::User("alice".into()),
            ttl_secs: 60,
            reason: "compromised".into(),
        },
        ROOT,
    );
    assert!(
        matches!(&r, Response::Done { message } if message.contains("1 live session")),
        "{r:?}"
    );
    assert_eq!(find(&e, "revoke_added").get("by_uid"), Some("0"));
    assert_eq!(
        find(&e, "session_revoked").get("reason"),
        Some("compromised")
    );
    assert_eq!(e.sys.signals[0].0, libc::SIGHUP);
    // The list is saved for restarts.
    let saved = Revocations::from_text(e.sys.saved_revocations.as_deref().unwrap()).unwrap();
    assert_eq!(saved.all().len(), 1);
    // A new login is refused, in both the account and the session phase.
    let mut reg = registration();
    reg.pid = LEADER.pid;
    assert!(matches!(e.register(reg, ROOT), Response::Refused { .. }));
    let access = e.handle(
        Request::CheckAccess {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: "127.0.0.1".into(),
        },
        ROOT,
    );
    assert!(matches!(access, Response::Access { allowed: false, .. }));
    assert_eq!(find(&e, "login_refused").get("user"), Some("alice"));
    // After the TTL the revocation lapses by itself.
    run_until(&mut e, 1061);
    assert_eq!(find(&e, "revoke_removed").get("reason"), Some("expired"));
    let access = e.handle(
        Request::CheckAccess {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: String::new(),
        },
        ROOT,
    );
    assert!(matches!(access, Response::Access { allowed: true, .. }));
}

#[test]
fn group_revocations_and_unrevoke() {
    let mut e = engine(limits(Some(900), None, &[60]));
    let t = Target::Group("wheel".into()); // the fake puts alice in wheel
    e.handle(
        Request::Revoke {
            target: t.clone(),
            ttl_secs: 0,
            reason: String::new(),
        },
        ROOT,
    );
    assert!(matches!(
        e.register(registration(), ROOT),
        Response::Refused { .. }
    ));
    match e.handle(Request::Revocations, ROOT) {
        Response::Revocations(l) => assert_eq!((l.len(), l[0].until), (1, 0)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        e.handle(Request::Unrevoke { target: t.clone() }, ROOT),
        Response::Done { .. }
    ));
    assert_eq!(find(&e, "revoke_removed").get("reason"), Some("unrevoke"));
    assert!(matches!(
        e.register(registration(), ROOT),
        Response::Registered { .. }
    ));
    assert!(matches!(
        e.handle(Request::Unrevoke { target: t }, ROOT),
        Response::Error {
            code: ErrorCode::NotFound,
            ..
        }
    ));
}

#[test]
fn check_access_is_for_root_only() {
    let mut e = engine(limits(Some(900), None, &[60]));
    let r = e.handle(
        Request::CheckAccess {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: String::new(),
        },
        USER,
    );
    assert!(is_denied(&r));
}

#[test]
fn show_lists_pids_warnings_and_tampering() {
    let mut e = engine(limits(Some(30), None, &[10]));
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1012);
    e.sys.ttys.insert("pts/4".into(), times(1012, 1012)); // touch, after sshd's set-up time
    run_until(&mut e, 1021);
    let s = sessions(e.handle(Request::Show { id: id.0 }, ROOT)).remove(0);
    assert_eq!(s.pids, [500, 501, 502, 900, 901]);
    assert_eq!(s.audit_session, 42);
    assert_eq!(s.warnings.len(), 1);
    assert_eq!(s.warnings[0].reason, "idle");
    assert_eq!(s.tampers.len(), 1);
    assert_eq!(s.tampers[0].tty, "pts/4");
}

#[test]
fn a_revoked_login_is_registered_and_ended_even_if_the_refusal_is_never_read() {
    let mut e = engine(limits(Some(900), None, &[60]));
    e.handle(
        Request::Revoke {
            target: Target::User("alice".into()),
            ttl_secs: 0,
            reason: String::new(),
        },
        ROOT,
    );
    assert!(matches!(
        e.register(registration(), ROOT),
        Response::Refused { .. }
    ));
    // The module may have timed out and let the login in: it is ended anyway.
    assert_eq!(find(&e, "session_open").get("user"), Some("alice"));
    assert_eq!(find(&e, "session_revoked").get("user"), Some("alice"));
    assert!(
        e.sys.signals.is_empty(),
        "the PAM stack gets a moment to refuse it itself"
    );
    run_until(&mut e, 1003);
    assert_eq!(e.sys.signals[0].0, libc::SIGHUP);
    run_until(&mut e, 1010);
    assert_eq!(
        find(&e, "session_terminated").get("reason"),
        Some("revoked")
    );
}

#[test]
fn the_daemons_state_is_for_admins_only() {
    let mut e = engine(limits(Some(900), None, &[60]));
    registered_id(e.register(registration(), ROOT));
    assert_eq!(
        e.handle(Request::DaemonStatus, ROOT),
        Response::DaemonState {
            sessions: 1,
            log_lines_dropped: 0
        }
    );
    assert!(is_denied(&e.handle(Request::DaemonStatus, USER)));
}

#[test]
fn status_counts_input_typed_since_the_last_look() {
    let mut e = engine(limits(Some(900), None, &[60]));
    registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1020);
    let before = sessions(e.handle(Request::Status, USER))[0].idle_deadline;
    // The user types `timeoutctl status` at 1100; no wake looked since.
    e.sys.now = Timestamp::from_secs(1101);
    e.sys.ttys.insert("pts/4".into(), times(1100, 995));
    let after = sessions(e.handle(Request::Status, USER))[0].idle_deadline;
    // Credited at the end of the kernel's window [1096, 1104).
    assert_eq!((before, after), (1000 + 900, 1104 + 900));
}

fn revoke_alice(e: &mut crate::engine::Engine<Fake>) {
    e.handle(
        Request::Revoke {
            target: Target::User("alice".into()),
            ttl_secs: 60,
            reason: String::new(),
        },
        ROOT,
    );
}

#[test]
fn revoke_hangs_up_the_leaders_first_and_signals_each_process_once() {
    let mut e = engine(limits(Some(900), None, &[60]));
    let id = registered_id(e.register(registration(), ROOT));
    revoke_alice(&mut e);
    // The first pass: the leader alone, before the session's scope is read.
    assert_eq!(e.sys.signals[0], (libc::SIGHUP, vec![LEADER.pid]));
    assert_eq!(e.sys.signals[1], (libc::SIGCONT, vec![LEADER.pid]));
    // The session's own pass: the rest of its targets (root's 900 spared),
    // not the leader again, which is watched with them.
    assert_eq!(e.sys.signals[2], (libc::SIGHUP, vec![501, 502, 901]));
    let hups = e.sys.signals.iter().filter(|(s, _)| *s == libc::SIGHUP);
    assert_eq!(
        hups.filter(|(_, p)| p.contains(&LEADER.pid)).count(),
        1,
        "{:?}",
        e.sys.signals
    );
    assert!(e.sys.watched[&id].contains(&LEADER), "{:?}", e.sys.watched);
    assert_eq!(find(&e, "session_signal").get("pids"), Some("4"));
    assert!(e.hung_up.is_empty());
    // The scopes were read as they were before the leader's SIGHUP.
    assert_eq!(e.sys.viewed_after_signals, Some(0));
}

#[test]
fn revoke_leaves_a_root_login_to_its_own_pass() {
    let mut e = engine(limits(Some(900), None, &[60]));
    let mut reg = registration();
    (reg.user, reg.uid, reg.loginuid) = ("root".into(), 0, 0);
    e.register(reg, ROOT);
    e.handle(
        Request::Revoke {
            target: Target::User("root".into()),
            ttl_secs: 60,
            reason: String::new(),
        },
        ROOT,
    );
    // One SIGHUP for the leader and what its rule ends, together.
    let (sig, pids) = &e.sys.signals[0];
    assert_eq!(*sig, libc::SIGHUP);
    assert!(pids.contains(&LEADER.pid) && pids.len() > 1, "{pids:?}");
}

#[test]
fn revoke_hangs_up_a_cgroup_sessions_leader_first_while_the_cgroup_holds_it() {
    let mut e = engine(limits(Some(900), None, &[60]));
    e.sys.cgroups = true;
    let id = registered_id(e.register(registration(), ROOT));
    revoke_alice(&mut e);
    assert_eq!(e.sys.signals[0], (libc::SIGHUP, vec![LEADER.pid]));
    assert_eq!(e.sys.signals[1], (libc::SIGCONT, vec![LEADER.pid]));
    // The cgroup's other members in the session's own pass, the leader not
    // again (root's 900 spared, as ever).
    assert_eq!(e.sys.signals[2], (libc::SIGHUP, vec![501, 502, 901]));
    assert!(e.sys.watched_cgroups.contains(&id));
    assert_eq!(find(&e, "session_signal").get("pids"), Some("4"));
    // No view of /proc: a cgroup session's scope is its cgroup.
    assert_eq!(e.sys.viewed_after_signals, None);
}

#[test]
fn revoke_leaves_a_cgroup_session_to_its_own_pass_if_its_leader_was_moved_out() {
    let mut e = engine(limits(Some(900), None, &[60]));
    e.sys.cgroups = true;
    e.register(registration(), ROOT);
    e.sys.moved_out.push(LEADER.pid);
    revoke_alice(&mut e);
    // One SIGHUP, for the cgroup's members; the leader is no longer one.
    let (sig, pids) = &e.sys.signals[0];
    assert_eq!(*sig, libc::SIGHUP);
    assert!(!pids.contains(&LEADER.pid) && !pids.is_empty(), "{pids:?}");
}

/// `n` sessions of alice, each a leader with no other process, which dies
/// at SIGHUP (its pidfd watch stays alive in the fake: only its cgroup, or
/// the signalled pids, say it is gone).
fn lone_leaders(e: &mut crate::engine::Engine<Fake>, n: usize) {
    e.sys.procs.clear();
    for pid in (3000..).take(n) {
        let p = proc(pid, USER_UID);
        e.sys.procs.push(p);
        e.sys.also_alive.push(p.proc);
        let mut reg = registration();
        (reg.pid, reg.start_time) = (pid, p.proc.start_time);
        registered_id(e.register(reg, ROOT));
    }
}

#[test]
fn a_long_revocation_ends_the_sessions_it_emptied_and_sends_their_lines_while_it_runs() {
    let mut e = engine(limits(Some(900), None, &[60]));
    e.sys.cgroups = true;
    let n = ENDS_LOOK_EVERY * 2 + 1;
    lone_leaders(&mut e, n);
    revoke_alice(&mut e);
    // Each leader dies at the first pass's SIGHUP, and with it its cgroup.
    let logged = names(&e);
    let last_revoked = logged.iter().rposition(|n| *n == "session_revoked");
    let first_end = logged.iter().position(|n| *n == "session_terminated");
    let (Some(last_revoked), Some(first_end)) = (last_revoked, first_end) else {
        panic!("{logged:?}");
    };
    assert!(
        first_end < last_revoked,
        "ended before the request was done: {logged:?}"
    );
    assert!(
        e.sys
            .held_sent_at
            .iter()
            .any(|&at| at > first_end && at < last_revoked),
        "and its line sent then: {:?}",
        e.sys.held_sent_at
    );
    // The rest end when the event loop looks after the request.
    let now = e.sys.now;
    e.on_exits(now);
    let ends = names(&e)
        .iter()
        .filter(|n| **n == "session_terminated")
        .count();
    assert_eq!(ends, n, "{:?}", names(&e));
}

#[test]
fn a_long_revocation_without_cgroups_sends_its_lines_after_it_is_done() {
    let mut e = engine(limits(Some(900), None, &[60]));
    lone_leaders(&mut e, ENDS_LOOK_EVERY * 2 + 1);
    revoke_alice(&mut e);
    // Ends without a cgroup are proved after the request: nothing ended
    // meanwhile, so no line went out before the signals were all sent.
    assert!(e.sys.held_sent_at.is_empty(), "{:?}", e.sys.held_sent_at);
    assert!(!names(&e).contains(&"session_terminated"));
}

#[test]
fn revoke_watches_a_cgroup_session_whose_leader_outlived_its_hangup() {
    let mut e = engine(limits(Some(900), None, &[60]));
    e.sys.cgroups = true;
    let id = registered_id(e.register(registration(), ROOT));
    e.sys.procs.retain(|p| p.proc == LEADER);
    e.sys.immune.push((LEADER.pid, libc::SIGHUP));
    revoke_alice(&mut e);
    assert!(e.sys.watched_cgroups.contains(&id));
    assert!(!e
        .sys
        .events
        .iter()
        .any(|ev| ev.name() == "session_terminated"));
    assert!(e.session(id).is_some_and(|s| !s.is_active()));
}
