//! The whole life of a session, driven second by second with a fake system.

use std::time::Duration;

use session_timeout_proto::{ErrorCode, Response, SessionKey};

use crate::core::policy::Policy;
use crate::core::session::Scope;
use crate::core::time::clock::Timestamp;
use crate::engine::testkit::*;
use crate::engine::Peer;

#[test]
fn idle_session_is_warned_expired_and_killed_in_order() {
    let mut e = engine(limits(Some(15), None, &[10]));
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1040);
    assert_eq!(
        names(&e),
        [
            "session_open",
            "session_tty",
            "session_warn",
            "session_expired",
            "session_signal",
            "session_terminated",
            "session_summary"
        ]
    );
    // Registered at 1000, no credited input: warn at 1005, expire at 1015.
    assert_eq!(find(&e, "session_warn").get("remaining"), Some("10s"));
    assert_eq!(find(&e, "session_expired").get("reason"), Some("idle"));
    assert_eq!(find(&e, "session_expired").get("deadline"), Some("1015"));
    assert_eq!(find(&e, "session_terminated").get("survivors"), Some("0"));
    assert!(e.session(id).is_none(), "the session is forgotten");
    let (_, text) = &e.sys.writes[0];
    assert!(
        text.contains("will be closed in 10s (idle limit of 15s)"),
        "{text}"
    );
    assert!(text.ends_with('\u{7}'));
}

#[test]
fn the_logins_processes_of_any_uid_are_signalled_and_root_ones_spared() {
    // Issue 13: every non-root process started from the login ends with it,
    // whatever its uid (901, uid 2000: `su - B -c 'nohup sleep &'`); root
    // processes outside a session registered inside it (900) are spared.
    let mut e = engine(limits(Some(15), None, &[]));
    e.sys.immune = vec![(502, libc::SIGHUP)];
    e.register(registration(), ROOT);
    run_until(&mut e, 1040);
    let (first_sig, first_pids) = &e.sys.signals[0];
    assert_eq!(*first_sig, libc::SIGHUP);
    assert_eq!(first_pids, &[500, 501, 502, 901]);
    assert_eq!(e.sys.signals[1].0, libc::SIGCONT);
    // 502 ignored SIGHUP: it gets SIGTERM after the grace period.
    assert_eq!(e.sys.signals[2], (libc::SIGTERM, vec![502]));
    assert!(e.sys.signals.iter().all(|(_, p)| !p.contains(&900)));
    let done = find(&e, "session_terminated");
    assert_eq!(done.get("survivors"), Some("0"));
    assert_eq!(done.get("root_spared"), Some("1"));
}

#[test]
fn processes_that_resist_are_reported_and_killed_until_none_is_left() {
    let mut e = engine(limits(Some(15), None, &[]));
    e.sys.immune = vec![
        (501, libc::SIGHUP),
        (501, libc::SIGTERM),
        (501, libc::SIGKILL),
    ];
    e.register(registration(), ROOT);
    run_until(&mut e, 1060);
    assert_eq!(find(&e, "session_kill_stalled").get("survivors"), Some("1"));
    assert!(
        !names(&e).contains(&"session_terminated"),
        "not while something is left"
    );
    e.sys.immune.clear(); // e.g. it left uninterruptible sleep
    run_until(&mut e, 1070);
    assert_eq!(find(&e, "session_terminated").get("survivors"), Some("0"));
}

#[test]
fn real_input_postpones_the_idle_deadline() {
    let mut e = engine(limits(Some(15), None, &[10]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1007);
    // The kernel records input at 1009 (window [1008, 1016) ends at 1016).
    e.sys.ttys.insert("pts/4".into(), times(1009, 995));
    run_until(&mut e, 1030);
    assert!(!names(&e).contains(&"session_expired"));
    run_until(&mut e, 1032);
    assert_eq!(find(&e, "session_expired").get("deadline"), Some("1031"));
}

#[test]
fn touching_the_tty_is_not_activity_and_is_reported() {
    let mut e = engine(limits(Some(15), None, &[10]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1006);
    e.sys.ttys.insert("pts/4".into(), times(1006, 1006)); // touch -a
    run_until(&mut e, 1016);
    assert_eq!(find(&e, "tamper_suspected").get("tty"), Some("pts/4"));
    assert_eq!(find(&e, "session_expired").get("deadline"), Some("1015"));
}

#[test]
fn absolute_limit_ends_a_busy_session() {
    let mut e = engine(limits(Some(15), Some(30), &[10]));
    e.register(registration(), ROOT);
    for t in (1003..1040).step_by(3) {
        e.sys.ttys.insert("pts/4".into(), times(t, 995));
        run_until(&mut e, t);
    }
    let ev = find(&e, "session_expired");
    assert_eq!(
        (ev.get("reason"), ev.get("deadline")),
        (Some("max"), Some("1030"))
    );
}

#[test]
fn logout_closes_and_forgets() {
    let mut e = engine(limits(Some(15), None, &[10]));
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1003);
    let key = SessionKey {
        pid: LEADER.pid,
        start_time: LEADER.start_time,
        session_id: id.0,
    };
    assert_eq!(
        e.unregister(key, ROOT),
        Response::Unregistered { session_id: id.0 }
    );
    run_until(&mut e, 1100);
    assert_eq!(
        names(&e),
        [
            "session_open",
            "session_tty",
            "session_close",
            "session_summary"
        ]
    );
    assert_eq!(find(&e, "session_close").get("duration"), Some("3s"));
    assert!(e.is_empty());
    assert_eq!(e.next_wake(), None);
}

#[test]
fn non_root_peers_are_refused_and_logged() {
    let mut e = engine(limits(Some(15), None, &[10]));
    let peer = Peer {
        pid: 3,
        uid: 1001,
        gid: 1001,
    };
    match e.register(registration(), peer) {
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::PermissionDenied),
        other => panic!("{other:?}"),
    }
    assert!(e.is_empty());
    assert_eq!(find(&e, "request_denied").get("peer_uid"), Some("1001"));
    let key = SessionKey {
        pid: LEADER.pid,
        start_time: LEADER.start_time,
        session_id: 0,
    };
    assert!(matches!(e.unregister(key, peer), Response::Error { .. }));
}

#[test]
fn scope_is_the_audit_session_only_when_the_service_set_a_new_one() {
    let mut e = engine(limits(Some(15), None, &[10]));
    let id = registered_id(e.register(registration(), ROOT));
    assert_eq!(
        e.session(id).map(|s| s.scope),
        Some(Scope::AuditSession(42))
    );
    let mut e = engine(limits(Some(15), None, &[10]));
    e.sys.parent_sessionid = Some(42); // su inside a login: same audit session as the parent
    let id = registered_id(e.register(registration(), ROOT));
    assert_eq!(e.session(id).map(|s| s.scope), Some(Scope::Subtree));
}

#[test]
fn no_tty_means_no_idle_limit_but_max_still_applies() {
    let mut e = engine(limits(Some(15), Some(60), &[]));
    e.sys.tty_appears_at = None;
    e.register(registration(), ROOT);
    run_until(&mut e, 1059);
    assert!(!names(&e).contains(&"session_expired"));
    run_until(&mut e, 1061);
    assert_eq!(find(&e, "session_expired").get("reason"), Some("max"));
}

#[test]
fn wakes_are_event_driven_not_a_scan() {
    let mut e = engine(limits(Some(900), Some(43_200), &[300, 60]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1010);
    // Terminal found. The first warning is due at 1000+900-300 = 1600; before
    // that the session is only looked at by the 10-minute liveness check.
    let next = e.next_wake().unwrap();
    assert!(next >= Timestamp::from_secs(1300), "{next:?}");
    run_until(&mut e, 1599);
    assert_eq!(e.next_wake(), Some(Timestamp::from_secs(1600)));
}

#[test]
fn a_leader_that_died_silently_is_closed() {
    let mut e = engine(limits(Some(15), None, &[10]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1001);
    e.sys.leader_alive = false;
    e.sys.procs.clear();
    run_until(&mut e, 1010);
    assert_eq!(find(&e, "session_close").get("reason"), Some("leader_gone"));
    assert!(e.is_empty());
}

#[test]
fn a_shorter_policy_applies_to_live_sessions() {
    let mut e = engine(limits(Some(900), None, &[60]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1010);
    e.set_policy(Policy::new(limits(Some(30), None, &[10])));
    run_until(&mut e, 1031);
    assert_eq!(find(&e, "session_expired").get("deadline"), Some("1030"));
}

#[test]
fn a_login_without_terminal_is_idle_by_its_io() {
    let mut e = engine(limits(Some(15), Some(600), &[]));
    e.sys.tty_appears_at = None;
    e.sys.notty = true;
    e.register(registration(), ROOT);
    // I/O moves until 1020, then stops: idle from about then.
    for t in (1001..=1020).step_by(2) {
        e.sys.io += 100;
        run_until(&mut e, t);
    }
    run_until(&mut e, 1100);
    let ev = find(&e, "session_expired");
    assert_eq!(ev.get("reason"), Some("idle"));
    let deadline: i64 = ev.get("deadline").unwrap().parse().unwrap();
    // Activity is credited when a look sees the counters move (looks are not
    // continuous), so the deadline is at least 15 s after the last I/O.
    assert!((1035..=1060).contains(&deadline), "{deadline}");
}

#[test]
fn max_only_exempts_a_login_without_terminal_from_idle() {
    let mut l = limits(Some(15), Some(60), &[]);
    l.notty = crate::core::policy::NottyMode::MaxOnly;
    let mut e = engine(l);
    e.sys.tty_appears_at = None;
    e.sys.notty = true;
    e.register(registration(), ROOT);
    run_until(&mut e, 1070);
    let ev = find(&e, "session_expired");
    assert_eq!(
        (ev.get("reason"), ev.get("deadline")),
        (Some("max"), Some("1060"))
    );
}

#[test]
fn the_rule_is_matched_again_once_the_terminal_kind_is_known() {
    use crate::core::policy::matching::HostPattern;
    use crate::core::policy::{Criteria, Rule, TtyClass};
    let mut p = Policy::new(limits(Some(900), None, &[]));
    p.rules.push(Rule {
        name: "batch".into(),
        criteria: Criteria {
            tty: Some(TtyClass::None),
            rhosts: Some(vec![HostPattern::parse("127.0.0.0/8").unwrap()]),
            ..Criteria::default()
        },
        limits: limits(None, Some(30), &[]).into(),
    });
    let mut e = engine(limits(Some(900), None, &[]));
    e.set_policy(p);
    e.sys.tty_appears_at = None;
    e.sys.notty = true;
    let id = registered_id(e.register(registration(), ROOT));
    assert_eq!(
        e.session(id).map(|s| s.rule.as_str()),
        Some("defaults"),
        "sshd: a pty is assumed at first"
    );
    run_until(&mut e, 1001);
    assert_eq!(e.session(id).map(|s| s.rule.as_str()), Some("batch"));
    assert_eq!(find(&e, "session_rematched").get("new_rule"), Some("batch"));
    run_until(&mut e, 1031);
    assert_eq!(find(&e, "session_expired").get("reason"), Some("max"));
}

#[test]
fn groups_from_nss_select_rules() {
    use crate::core::policy::{Criteria, Rule};
    let mut p = Policy::new(limits(Some(900), None, &[]));
    p.rules.push(Rule {
        name: "privileged".into(),
        criteria: Criteria {
            groups: Some(vec!["wheel".into()]),
            ..Criteria::default()
        },
        limits: limits(Some(600), None, &[]).into(),
    });
    let mut e = engine(limits(Some(900), None, &[]));
    e.set_policy(p);
    let id = registered_id(e.register(registration(), ROOT));
    let s = e.session(id).unwrap();
    assert_eq!(
        (s.rule.as_str(), s.limits.idle),
        ("privileged", Some(Duration::from_secs(600)))
    );
    assert_eq!(find(&e, "session_open").get("rule"), Some("privileged"));
}

#[test]
fn a_reload_whose_limit_already_passed_warns_before_ending() {
    let mut e = engine(limits(Some(900), None, &[60]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1100);
    e.set_policy(Policy::new(limits(Some(30), None, &[10])));
    run_until(&mut e, 1102);
    let warn = find(&e, "session_warn");
    assert_eq!(warn.get("remaining"), Some("10s"));
    assert!(!names(&e).contains(&"session_expired"));
    run_until(&mut e, 1112);
    assert_eq!(find(&e, "session_expired").get("reason"), Some("idle"));
}

#[test]
fn leader_scope_signals_only_the_logins_own_processes() {
    let mut l = limits(Some(15), None, &[]);
    l.kill_scope = crate::core::policy::KillScope::Leader;
    let mut e = engine(l);
    e.register(registration(), ROOT);
    run_until(&mut e, 1040);
    // 500 is the leader, 501 its sshd child; 502 (a detached job) survives.
    assert_eq!(e.sys.signals[0], (libc::SIGHUP, vec![500, 501]));
    assert!(e.sys.procs.iter().any(|p| p.proc.pid == 502));
}

#[test]
fn a_root_login_ends_only_its_own_subtree_not_daemons_started_from_it() {
    let mut e = engine(limits(Some(15), None, &[]));
    let mut daemon = proc(900, 0);
    daemon.ppid = 1; // e.g. an sshd restarted from the root login: same audit session
    e.sys.procs = vec![proc(501, 0), proc(502, 0), daemon];
    e.sys.procs.push(crate::engine::ProcFacts {
        proc: LEADER,
        ppid: 1,
        ruid: 0,
        euid: 0,
        same_program_as_parent: false,
    });
    let mut reg = registration();
    reg.uid = 0;
    reg.user = "root".into();
    e.register(reg, ROOT);
    run_until(&mut e, 1040);
    let (sig, pids) = &e.sys.signals[0];
    assert_eq!(*sig, libc::SIGHUP);
    assert!(
        pids.contains(&500) && pids.contains(&501) && pids.contains(&502),
        "{pids:?}"
    );
    assert!(!pids.contains(&900), "{pids:?}");
}

#[test]
fn an_unreadable_parent_means_subtree_scope() {
    let mut e = engine(limits(Some(15), None, &[]));
    e.sys.parent_sessionid = None;
    let id = registered_id(e.register(registration(), ROOT));
    assert_eq!(e.session(id).map(|s| s.scope), Some(Scope::Subtree));
}

#[test]
fn a_leader_gone_holds_no_terminal_while_its_processes_live_on() {
    let mut e = engine(limits(Some(15), None, &[10]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1001);
    // The leader exits; another process of the login lives on, and the
    // terminal would still be reported if it were asked for.
    e.sys.leader_alive = false;
    e.sys.writes.clear();
    run_until(&mut e, 1006);
    assert!(!e.is_empty());
    assert!(e.sys.writes.is_empty(), "{:?}", e.sys.writes);
}
