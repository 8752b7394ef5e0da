//! The kill scope (issue 13), driven through the fake system with its
//! injected clock: `cgroup.kill` and the proof before `session_terminated`,
//! stop-then-kill where no cgroup exists, survivors counted by uid, root
//! processes spared, and sessions registered inside a login ending with it.

use crate::core::time::clock::Timestamp;
use crate::engine::testkit::*;

/// A process that nothing kills (uninterruptible sleep, say).
fn unkillable(e: &mut crate::engine::Engine<Fake>, pid: u32) {
    for sig in [libc::SIGHUP, libc::SIGTERM, libc::SIGKILL] {
        e.sys.immune.push((pid, sig));
    }
}

fn at(e: &crate::engine::Engine<Fake>, name: &str) -> usize {
    e.sys
        .events
        .iter()
        .position(|ev| ev.name() == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", names(e)))
}

#[test]
fn the_cgroup_is_killed_after_the_warning_ladder_and_proved_empty() {
    let mut e = engine(limits(Some(15), None, &[]));
    e.sys.cgroups = true;
    e.sys.immune = vec![(502, libc::SIGHUP), (502, libc::SIGTERM)];
    let id = registered_id(e.register(registration(), ROOT));
    let cg = format!("/t/s-{id}");
    assert_eq!(
        e.session(id).and_then(|s| s.cgroup.clone()),
        Some(cg.clone())
    );
    assert_eq!(find(&e, "session_open").get("cgroup"), Some(cg.as_str()));
    run_until(&mut e, 1040);
    // HUP+CONT, TERM to the survivor, then cgroup.kill for what is left.
    assert_eq!(e.sys.signals[0].0, libc::SIGHUP);
    assert_eq!(e.sys.signals[2], (libc::SIGTERM, vec![502]));
    assert_eq!(e.sys.cgroup_kills, 1);
    let kill = e
        .sys
        .events
        .iter()
        .find(|ev| ev.get("method") == Some("cgroup.kill"))
        .expect("a session_signal for the cgroup.kill");
    assert_eq!(kill.get("signal"), Some("SIGKILL"));
    let done = find(&e, "session_terminated");
    assert_eq!(done.get("survivors"), Some("0"));
    // The root process 900 (not in a session inside the login) was moved out.
    assert_eq!(done.get("root_spared"), Some("1"));
    assert_eq!(e.sys.moved_out, [900]);
    assert_eq!(e.sys.released, [cg]);
    assert!(e.is_empty());
}

#[test]
fn survivors_are_counted_by_uid_and_terminated_waits_for_the_proof() {
    let mut e = engine(limits(Some(15), None, &[]));
    e.sys.cgroups = true;
    // 900 is root but inside a session registered within the login: it ends too.
    e.sys.nested = vec![900];
    for pid in [501, 900, 901] {
        unkillable(&mut e, pid);
    }
    e.register(registration(), ROOT);
    run_until(&mut e, 1030);
    let stalled = find(&e, "session_kill_stalled");
    assert_eq!(stalled.get("survivors"), Some("3"));
    assert_eq!(stalled.get("survivors_by_uid"), Some("0:1,1001:1,2000:1"));
    assert!(!names(&e).contains(&"session_terminated"));
    assert!(e.sys.moved_out.is_empty(), "nothing was spared");
    // They leave uninterruptible sleep: the next round proves the cgroup empty.
    e.sys.immune.clear();
    run_until(&mut e, 1040);
    assert!(at(&e, "session_kill_stalled") < at(&e, "session_terminated"));
    assert_eq!(find(&e, "session_terminated").get("root_spared"), Some("0"));
}

#[test]
fn without_a_cgroup_everything_is_stopped_before_it_is_killed() {
    let mut e = engine(limits(Some(15), None, &[]));
    unkillable(&mut e, 502);
    e.sys.immune.retain(|(_, s)| *s != libc::SIGKILL);
    e.register(registration(), ROOT);
    run_until(&mut e, 1040);
    let sigs: Vec<i32> = e.sys.signals.iter().map(|(s, _)| *s).collect();
    let stop = sigs
        .iter()
        .position(|s| *s == libc::SIGSTOP)
        .expect("SIGSTOP");
    let kill = sigs
        .iter()
        .position(|s| *s == libc::SIGKILL)
        .expect("SIGKILL");
    assert!(stop < kill, "{sigs:?}");
    assert_eq!(e.sys.signals[stop].1, [502]);
    assert!(e.sys.signals.iter().all(|(_, p)| !p.contains(&900)));
    let ev = e
        .sys
        .events
        .iter()
        .find(|ev| ev.get("signal") == Some("SIGSTOP,SIGKILL"))
        .expect("stop-then-kill logged");
    assert_eq!(ev.get("pids"), Some("1"));
    let done = find(&e, "session_terminated");
    assert_eq!(done.get("survivors"), Some("0"));
    assert_eq!(done.get("root_spared"), Some("1"));
}

#[test]
fn stop_then_kill_stalls_with_survivors_by_uid() {
    let mut e = engine(limits(Some(15), None, &[]));
    unkillable(&mut e, 502);
    unkillable(&mut e, 901);
    e.register(registration(), ROOT);
    run_until(&mut e, 1030);
    let stalled = find(&e, "session_kill_stalled");
    assert_eq!(stalled.get("survivors_by_uid"), Some("1001:1,2000:1"));
    assert!(!names(&e).contains(&"session_terminated"));
    e.sys.immune.clear();
    run_until(&mut e, 1040);
    assert_eq!(find(&e, "session_terminated").get("survivors"), Some("0"));
}

#[test]
fn a_session_registered_inside_a_login_ends_with_it_with_its_own_events() {
    let mut e = engine(limits(Some(15), None, &[]));
    let outer = registered_id(e.register(registration(), ROOT));
    // `su - bob` inside the login: same audit session as its parent.
    let su = crate::core::session::ProcRef {
        pid: 600,
        start_time: 600,
    };
    e.sys.also_alive.push(su);
    e.sys.parent_sessionid = Some(42);
    let mut p = proc(600, 0);
    p.proc = su;
    e.sys.procs.push(p);
    let mut reg = registration();
    (reg.pid, reg.start_time, reg.user, reg.uid) = (600, 600, "bob".into(), 2000);
    let inner = registered_id(e.register(reg, ROOT));
    assert_ne!(inner, outer);
    // The inner one's own limit is far; the login's ends at 1015.
    e.sys.now = Timestamp::from_secs(1001);
    run_until(&mut e, 1040);
    let with = find(&e, "session_ended_with_login");
    assert_eq!(with.get("id"), Some(inner.to_string().as_str()));
    assert_eq!(with.get("login"), Some(outer.to_string().as_str()));
    let ended: Vec<(Option<&str>, Option<&str>)> = e
        .sys
        .events
        .iter()
        .filter(|ev| ev.name() == "session_terminated")
        .map(|ev| (ev.get("id"), ev.get("reason")))
        .collect();
    let (o, i) = (outer.to_string(), inner.to_string());
    assert!(
        ended.contains(&(Some(o.as_str()), Some("idle"))),
        "{ended:?}"
    );
    assert!(
        ended.contains(&(Some(i.as_str()), Some("login_ended"))),
        "{ended:?}"
    );
    // The su process (root, inside the registered session) was not spared.
    assert!(e.sys.signals.iter().any(|(_, pids)| pids.contains(&600)));
    assert!(e.is_empty());
}

#[test]
fn survivors_by_uid_sorts_and_counts() {
    use crate::engine::ending::kill::survivors_by_uid;
    let procs = [proc(1, 1000), proc(2, 0), proc(3, 1000), proc(4, 1000)];
    assert_eq!(survivors_by_uid(&procs), "0:1,1000:3");
    assert_eq!(survivors_by_uid(&[]), "");
}
