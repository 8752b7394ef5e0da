//! A session ends the moment its last process is gone (issue 16), driven
//! through the fake system with its injected clock: the host names a
//! session whose watched processes all exited (or whose cgroup is empty),
//! the engine proves its scope empty and logs `session_terminated` without
//! the steps left; a scope not proven empty goes on down the ladder.

use std::time::Duration;

use session_timeout_proto::SessionKey;

use crate::core::session::SessionId;
use crate::engine::testkit::*;
use crate::engine::Engine;

/// Runs the timers in 100 ms steps until the session has been sent SIGHUP
/// (no exits are looked at yet).
fn until_hangup(e: &mut Engine<Fake>) {
    for _ in 0..1000 {
        if e.sys.signals.iter().any(|(s, _)| *s == libc::SIGHUP) {
            return;
        }
        e.sys.now = e.sys.now + Duration::from_millis(100);
        e.run_due();
    }
    panic!("no SIGHUP in {:?}", names(e));
}

/// One turn of the event loop `ms` later: timers, then exits.
fn turn(e: &mut Engine<Fake>, ms: u64) {
    e.sys.now = e.sys.now + Duration::from_millis(ms);
    e.run_due();
    e.on_exits(e.sys.now);
}

fn sent(e: &Engine<Fake>, sig: i32) -> bool {
    e.sys.signals.iter().any(|(s, _)| *s == sig)
}

fn signal_lines(e: &Engine<Fake>) -> Vec<String> {
    e.sys
        .events
        .iter()
        .filter(|ev| ev.name() == "session_signal")
        .map(|ev| ev.get("signal").unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_cgroup_emptied_at_sighup_ends_at_once_without_sigterm_or_kill() {
    let mut e = engine(limits(Some(15), None, &[]));
    e.sys.cgroups = true;
    e.sys.procs.retain(|p| p.proc.pid != 900); // no root process to spare
    let id = registered_id(e.register(registration(), ROOT));
    until_hangup(&mut e);
    assert_eq!(e.sys.watched_cgroups, [id]);
    // Every process died of SIGHUP: the next turn ends the session.
    assert!(e.sys.procs.is_empty());
    turn(&mut e, 1);
    let done = find(&e, "session_terminated");
    assert_eq!(done.get("survivors"), Some("0"));
    assert_eq!(signal_lines(&e), ["SIGHUP,SIGCONT"]);
    assert_eq!(e.sys.cgroup_kills, 0);
    assert_eq!(e.sys.released, [format!("/t/s-{id}")]);
    assert!(e.is_empty());
    assert!(e.sys.watched_cgroups.is_empty(), "the watch is dropped");
    // Nothing is left to happen later.
    turn(&mut e, 60_000);
    assert_eq!(signal_lines(&e), ["SIGHUP,SIGCONT"]);
}

#[test]
fn without_a_cgroup_the_exits_are_proved_together_then_terminated() {
    let mut e = engine(limits(Some(15), None, &[]));
    let id = registered_id(e.register(registration(), ROOT));
    until_hangup(&mut e);
    assert!(e.sys.watched.contains_key(&id));
    // All the targets died of SIGHUP; root's 900 is spared, not watched.
    let left: Vec<u32> = e.sys.procs.iter().map(|p| p.proc.pid).collect();
    assert_eq!(left, [900]);
    turn(&mut e, 1);
    assert!(
        !names(&e).contains(&"session_terminated"),
        "proved a moment later"
    );
    turn(&mut e, 10);
    let done = find(&e, "session_terminated");
    assert_eq!(done.get("survivors"), Some("0"));
    assert_eq!(done.get("root_spared"), Some("1"));
    assert_eq!(signal_lines(&e), ["SIGHUP,SIGCONT"]);
    assert!(!sent(&e, libc::SIGTERM) && !sent(&e, libc::SIGSTOP) && !sent(&e, libc::SIGKILL));
    assert!(e.is_empty());
}

#[test]
fn after_a_turn_longer_than_the_settle_the_exits_are_proved_in_that_turn() {
    let mut e = engine(limits(Some(15), None, &[]));
    let id = registered_id(e.register(registration(), ROOT));
    until_hangup(&mut e);
    assert!(e.sys.watched.contains_key(&id));
    // A turn that began 3 ms ago waits for the rest of the settle.
    let began = e.sys.now;
    e.sys.now = began + Duration::from_millis(3);
    e.on_exits(began);
    assert!(!names(&e).contains(&"session_terminated"));
    e.sys.now = began + Duration::from_millis(9);
    e.on_exits(e.sys.now);
    assert!(!names(&e).contains(&"session_terminated"), "due at 10 ms");
    e.sys.now = began + Duration::from_millis(10);
    e.on_exits(e.sys.now);
    assert_eq!(find(&e, "session_terminated").get("survivors"), Some("0"));

    // A turn of 30 ms (a revocation) proves what it saw before it ends.
    let mut e = engine(limits(Some(15), None, &[]));
    registered_id(e.register(registration(), ROOT));
    until_hangup(&mut e);
    let began = e.sys.now;
    e.sys.now = began + Duration::from_millis(30);
    e.on_exits(began);
    assert_eq!(find(&e, "session_terminated").get("survivors"), Some("0"));
    assert!(e.is_empty());
}

#[test]
fn a_process_that_ignores_sighup_keeps_the_ladder_and_its_exit_at_sigterm_ends_it() {
    let mut e = engine(limits(Some(15), None, &[]));
    e.sys.immune.push((502, libc::SIGHUP));
    e.register(registration(), ROOT);
    until_hangup(&mut e);
    turn(&mut e, 50);
    assert!(!names(&e).contains(&"session_terminated"));
    // The grace period passes: SIGTERM, which 502 does not ignore.
    for _ in 0..30 {
        turn(&mut e, 100);
        if sent(&e, libc::SIGTERM) {
            break;
        }
    }
    assert!(sent(&e, libc::SIGTERM));
    turn(&mut e, 1);
    turn(&mut e, 10);
    assert_eq!(find(&e, "session_terminated").get("survivors"), Some("0"));
    assert_eq!(signal_lines(&e), ["SIGHUP,SIGCONT", "SIGTERM"]);
    assert!(!sent(&e, libc::SIGKILL), "the final step was skipped");
}

#[test]
fn a_process_forked_after_sighup_is_found_by_the_proof_and_the_ladder_goes_on() {
    let mut e = engine(limits(Some(15), None, &[]));
    let id = registered_id(e.register(registration(), ROOT));
    until_hangup(&mut e);
    // A trap handler of the dying shell started a process of the user.
    e.sys.procs.push(proc(777, USER_UID));
    turn(&mut e, 1);
    turn(&mut e, 10);
    assert!(!names(&e).contains(&"session_terminated"));
    assert!(e.session(id).is_some());
    for _ in 0..30 {
        turn(&mut e, 100);
    }
    assert!(sent(&e, libc::SIGTERM), "{:?}", signal_lines(&e));
    assert_eq!(find(&e, "session_terminated").get("survivors"), Some("0"));
}

#[test]
fn a_root_process_spared_in_the_cgroup_waits_for_the_final_step() {
    let mut e = engine(limits(Some(15), None, &[]));
    e.sys.cgroups = true;
    e.register(registration(), ROOT);
    until_hangup(&mut e);
    turn(&mut e, 1);
    assert!(
        !names(&e).contains(&"session_terminated"),
        "900 is still in the cgroup"
    );
    for _ in 0..40 {
        turn(&mut e, 100);
    }
    let done = find(&e, "session_terminated");
    assert_eq!(done.get("root_spared"), Some("1"));
    assert_eq!(e.sys.moved_out, [900]);
}

#[test]
fn exits_of_a_session_not_signalled_yet_are_ignored() {
    let mut e = engine(limits(Some(15), None, &[]));
    let id = registered_id(e.register(registration(), ROOT));
    e.end_after(
        id,
        crate::core::session::EndReason::Revoked { by_uid: 0 },
        Duration::from_secs(2),
    );
    e.sys.watched.insert(SessionId(id.0), Vec::new());
    turn(&mut e, 1);
    turn(&mut e, 10);
    assert!(!names(&e).contains(&"session_terminated"));
    assert!(e.session(id).is_some());
}

#[test]
fn a_live_sessions_leader_exit_closes_it_at_once_and_so_does_the_exit_of_a_nohup_survivor() {
    let mut e = engine(limits(Some(15 * 60), None, &[]));
    let id = registered_id(e.register(registration(), ROOT));
    assert_eq!(e.sys.watched_leaders, [(id, LEADER)]);
    // Settled: the next timer is minutes away.
    turn(&mut e, 5_000);
    let next = e.next_wake().unwrap();
    assert!(next.since(e.sys.now) >= Duration::from_secs(60));
    // The leader dies, one process of the login lives on (nohup).
    e.sys.leader_alive = false;
    e.sys.procs.retain(|p| p.proc.pid == 501);
    turn(&mut e, 1);
    turn(&mut e, 1);
    assert!(!names(&e).contains(&"session_close"), "{:?}", names(&e));
    assert!(e.session(id).is_some());
    assert!(e.sys.watched_leaders.is_empty(), "named once");
    // What is left is watched, and nothing was sent to it.
    assert!(e.sys.watched.contains_key(&id));
    assert!(e.sys.signals.is_empty(), "{:?}", e.sys.signals);
    // Seconds later its last process exits: the session is closed on the
    // next turns, not at its timer.
    turn(&mut e, 5_000);
    e.sys.procs.clear();
    turn(&mut e, 1);
    turn(&mut e, 1);
    assert_eq!(find(&e, "session_close").get("reason"), Some("leader_gone"));
    assert!(e.session(id).is_none());
    assert!(e.sys.watched.is_empty(), "the watch is dropped");

    // A second login whose leader exits with nothing left is closed on the
    // next turn, not at its timer.
    let mut e = engine(limits(Some(15 * 60), None, &[]));
    let id = registered_id(e.register(registration(), ROOT));
    turn(&mut e, 5_000);
    assert!(e.next_wake().unwrap().since(e.sys.now) >= Duration::from_secs(60));
    e.sys.leader_alive = false;
    e.sys.procs.clear();
    turn(&mut e, 1);
    turn(&mut e, 1);
    assert_eq!(find(&e, "session_close").get("reason"), Some("leader_gone"));
    assert!(e.session(id).is_none());
    assert!(e.sys.watched_leaders.is_empty());
}

#[test]
fn a_logout_ends_the_leader_watch() {
    let mut e = engine(limits(Some(15), None, &[]));
    let id = registered_id(e.register(registration(), ROOT));
    assert_eq!(e.sys.watched_leaders, [(id, LEADER)]);
    e.unregister(
        SessionKey {
            pid: LEADER.pid,
            start_time: LEADER.start_time,
            session_id: 0,
        },
        ROOT,
    );
    assert!(e.session(id).is_none());
    assert!(e.sys.watched_leaders.is_empty());
}

#[test]
fn a_process_hopping_after_its_leader_is_looked_at_once_a_second_at_most() {
    let mut e = engine(limits(Some(15 * 60), None, &[]));
    let id = registered_id(e.register(registration(), ROOT));
    turn(&mut e, 5_000);
    e.sys.leader_alive = false;
    e.sys.procs.retain(|p| p.proc.pid == 501);
    turn(&mut e, 1);
    turn(&mut e, 1);
    assert_eq!(e.sys.watch_calls, 1);
    // Every 50 ms the watched process forks a new one and exits, for 2 s.
    for hop in 0..40 {
        e.sys.procs = vec![proc(600 + hop, USER_UID)];
        turn(&mut e, 50);
    }
    let calls = e.sys.watch_calls;
    assert!((2..=4).contains(&calls), "{calls} looks in 2 s of hops");
    assert!(e.session(id).is_some_and(|s| s.is_active()));
    // The hopping stops with nothing left: closed within the second.
    e.sys.procs.clear();
    for _ in 0..11 {
        turn(&mut e, 100);
    }
    assert_eq!(find(&e, "session_close").get("reason"), Some("leader_gone"));
}
