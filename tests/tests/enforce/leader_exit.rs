//! Issue 16, a login whose leader dies without logging out (its sshd killed,
//! so PAM's close_session never runs) is closed the moment nothing of it is
//! left, end to end with the real sshd: the daemon watches each live
//! session's leader through a pidfd, and the processes left after it (a
//! nohup) likewise. Without the watch such a session was looked at only on
//! its timers: with the 15-minute idle limit here, 10 minutes later. And a
//! revoked login without cgroups whose leader dies at SIGHUP still has the
//! processes it left ended.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use e2e::login::EVENT;
use e2e::{Env, Login};

#[path = "../support/mod.rs"]
mod support;

/// From the kill of the last process to `session_close`: the daemon acts on
/// the pidfd in its next loop turn; the rest is scheduling on a loaded CI
/// machine with other tests running. Its timers are minutes away.
const PROMPT: Duration = Duration::from_secs(5);

fn env() -> Env {
    Env::builder().idle("15m").max("off").warn(&[]).start()
}

/// A login whose terminal and connection the daemon has found, so that no
/// discovery wake is due any more.
fn settled(env: &Env) -> Login<'_> {
    let login = Login::start(env);
    login.event("session_tty", &[], EVENT);
    login.event("session_connection", &[], EVENT);
    login
}

fn leader_pid(login: &Login) -> i32 {
    login.open.get("pid").unwrap().parse().unwrap()
}

/// SIGKILL to a process this test started (the test's own sshd's session
/// process, or a process of its test user's login).
fn kill(pid: i32) {
    // SAFETY: kill(2) with a pid and a signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "kill {pid}");
}

fn closes_promptly(login: &Login, killed_at: Instant) {
    let close = login.event("session_close", &[("reason", "leader_gone")], EVENT);
    let after = close.at.duration_since(killed_at);
    assert!(
        after < PROMPT,
        "session_close {after:?} after the last process was killed: {}",
        close.raw
    );
}

/// Kills the leader, then every process of the login but `keep`, and
/// waits until only `keep` is left. Killing sshd's session process alone
/// leaves its unprivileged child and the shell running, and the session open.
fn kill_all_but(login: &Login, keep: Option<u32>) {
    let sid = login.audit_session();
    kill(leader_pid(login));
    let others = |procs: Vec<e2e::audit::Proc>| -> Vec<u32> {
        procs
            .into_iter()
            .map(|p| p.pid)
            .filter(|p| Some(*p) != keep)
            .collect()
    };
    for pid in others(e2e::audit::live_in_session(sid)) {
        kill(i32::try_from(pid).unwrap());
    }
    let gone = st_testkit::wait::poll_until(EVENT, Duration::from_millis(20), || {
        others(e2e::audit::live_in_session(sid))
            .is_empty()
            .then_some(())
    });
    if gone.is_none() {
        login.fail("the login's processes did not exit at SIGKILL");
    }
}

#[test]
fn l1_a_login_whose_processes_all_die_without_a_logout_is_closed_at_once() {
    let env = env();
    let login = settled(&env);
    kill_all_but(&login, None);
    closes_promptly(&login, Instant::now());
}

#[test]
fn l2_a_nohup_left_after_the_others_keeps_the_session_until_it_exits() {
    let env = env();
    let login = settled(&env);
    let sid = login.audit_session();
    login.run("nohup sleep 1000 >/dev/null 2>&1 &");
    let sleep = login.wait_proc(sid, "nohup'd sleep", |p| p.argv == ["sleep", "1000"]);
    kill_all_but(&login, Some(sleep.pid));
    // The session stays open while the sleep lives, with nothing signalled.
    // (Its end, if it came, would come within PROMPT of the others' exit.)
    std::thread::sleep(PROMPT);
    let lines = env.syslog.lines();
    let of_login = |name: &str| {
        lines
            .iter()
            .any(|l| l.get("event") == Some(name) && l.get("id") == Some(login.id.as_str()))
    };
    assert!(!of_login("session_close"), "closed with the sleep alive");
    assert!(!of_login("session_signal"), "the sleep was signalled");
    let killed_at = Instant::now();
    kill(i32::try_from(sleep.pid).unwrap());
    closes_promptly(&login, killed_at);
}

/// Revoked where the daemon has no cgroups (the subtree path): the leader,
/// sshd's session process, dies at the first SIGHUP, and a process that
/// ignores SIGHUP and SIGTERM lives on after it, no longer its descendant.
/// The later steps must still find it and end it: `session_terminated
/// survivors=0` only once it is gone, through the final SIGKILL.
#[test]
fn l3_a_revoked_login_without_cgroups_ends_the_children_its_leader_left() {
    let mut env = Env::builder()
        .idle("15m")
        .max("off")
        .warn(&[])
        .daemon(false)
        .start();
    // Between the SIGHUP and the SIGTERM: sshd's monitor passes the SIGHUP
    // on and closes its PAM session before it exits, which takes ms; 3 s
    // bounds that on a loaded CI machine.
    let grace = Duration::from_secs(3);
    env.start_daemon_without_cgroups("15m", "3s");
    let login = settled(&env);
    let sid = login.audit_session();
    login.run("sh -c 'trap \"\" HUP TERM; exec sleep 1000' </dev/null >/dev/null 2>&1 &");
    let sleep = login.wait_proc(sid, "a sleep deaf to HUP and TERM", |p| {
        p.argv == ["sleep", "1000"]
    });
    let _kill_on_failure = KillOnDrop(st_testkit::procs::stat(sleep.pid).expect("the sleep"));
    let leader =
        st_testkit::procs::stat(u32::try_from(leader_pid(&login)).unwrap()).expect("the leader");
    let out = e2e::util::run_ok(
        std::process::Command::new(support::timeoutctl())
            .arg("--socket")
            .arg(&env.socket)
            .args(["revoke", "--user", env.user.name(), "--reason", "l3"]),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 live session(s) ended"), "{said}");
    // Two grace periods (SIGTERM, then the final step) before the end.
    let done = login.event(
        "session_terminated",
        &[("reason", "revoked")],
        EVENT + 2 * grace,
    );
    assert_eq!(done.get("survivors"), Some("0"), "{}", done.raw);
    let leader_lives = st_testkit::procs::stat(leader.pid)
        .is_some_and(|s| s.start_time == leader.start_time && s.state != 'Z');
    assert!(
        !leader_lives,
        "the leader {} lives: it was to die at SIGHUP",
        leader.pid
    );
    login.assert_session_empty(sid);
    // After the first step only the sleep is left: each later step names
    // it alone.
    let steps = login.signal_steps();
    eprintln!("l3: steps {steps:?}, {}", done.raw);
    let names: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        ["SIGHUP,SIGCONT", "SIGTERM", "SIGSTOP,SIGKILL"],
        "the sleep {}: {steps:?}",
        sleep.pid
    );
    assert!(
        steps[1..].iter().all(|s| s.1 == 1),
        "the sleep {} alone after the first step: {steps:?}",
        sleep.pid
    );
}

/// SIGKILLs a process the test caused, if it is still that process, when
/// the test ends (also when it fails): one that ignores HUP and TERM and no
/// longer descends from the test's sshd, whose cleanup would not find it.
struct KillOnDrop(st_testkit::procs::ProcInfo);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        st_testkit::procs::signal_checked(&self.0, libc::SIGKILL);
    }
}
