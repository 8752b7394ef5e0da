//! Issue 16, a login whose leader dies without logging out (its sshd killed,
//! so PAM's close_session never runs) is closed the moment nothing of it is
//! left, end to end with the real sshd: the daemon watches each live
//! session's leader through a pidfd, and the processes left after it (a
//! nohup) likewise. Without the watch such a session was looked at only on
//! its timers: with the 15-minute idle limit here, 10 minutes later.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use e2e::login::EVENT;
use e2e::{Env, Login};

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
