//! A process whose main thread has ended (`pthread_exit`, or the raw exit
//! syscall) shows state `Z` in /proc while its other threads run on: it
//! must not pass for a zombie, or the kill's census skips it and reports
//! `survivors=0` with it alive. End to end with the real sshd, the process
//! ignoring SIGHUP and SIGTERM so that only the final step can end it:
//! through the login's cgroup, and through stop-then-kill without one.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use e2e::audit::Proc;
use e2e::{Env, Login};

const IDLE: Duration = Duration::from_secs(5);

/// Ignores SIGHUP and SIGTERM, starts a thread that loops, and ends its
/// main thread with the raw exit syscall (perl's own exit would end every
/// thread). The syscall's number is this architecture's.
fn main_thread_exits() -> String {
    format!(
        "$SIG{{HUP}}=q(IGNORE); $SIG{{TERM}}=q(IGNORE); use threads; \
         threads->create(sub {{ while (1) {{ sleep 1 }} }})->detach; sleep 1; syscall({}, 0);",
        libc::SYS_exit
    )
}

fn env_builder() -> e2e::EnvBuilder {
    Env::builder().idle("5s").max("off").warn(&[]).grace("1s")
}

/// The login runs the process, waits until its main thread has gone, and
/// idles out; the process must be gone at `session_terminated survivors=0`.
fn ends_with_its_login(env: &Env) -> e2e::LogLine {
    let login = Login::start(env);
    let sid = login.audit_session();
    let typed = login.run(&format!(
        "perl -e '{}' </dev/null >/dev/null 2>&1 &",
        main_thread_exits()
    ));
    let threaded = login.wait_proc(sid, "a process living in a thread", |p| {
        p.state == 'Z' && p.threads > 1
    });
    login.expect_idle_end(typed, IDLE);
    let done = login.expect_terminated_clean();
    if Proc::read(threaded.pid).is_some_and(|p| p.start_time == threaded.start_time && p.live()) {
        login.fail(&format!(
            "pid {} (main thread ended, {} threads) outlived session_terminated: {}",
            threaded.pid, threaded.threads, done.raw
        ));
    }
    login.assert_session_empty(sid);
    done
}

#[test]
fn z1_it_ends_with_its_login_through_the_cgroup() {
    let env = env_builder().start();
    let done = ends_with_its_login(&env);
    let open = env
        .syslog
        .find(
            "session_open",
            &[("id", done.get("id").unwrap_or_default())],
        )
        .expect("its session_open");
    assert!(
        open.get("cgroup")
            .unwrap_or_default()
            .starts_with("/timeoutd-"),
        "not through a cgroup: {}",
        open.raw
    );
}

#[test]
fn z2_it_ends_with_its_login_through_stop_then_kill() {
    let mut env = env_builder().daemon(false).start();
    env.start_daemon_without_cgroups("5s", "1s");
    let done = ends_with_its_login(&env);
    let id = done.get("id").unwrap_or_default();
    let open = env
        .syslog
        .find("session_open", &[("id", id)])
        .expect("its session_open");
    assert_eq!(open.get("cgroup"), Some("-"), "{}", open.raw);
    assert!(
        env.syslog
            .session_lines(id)
            .iter()
            .any(|l| l.get("signal") == Some("SIGSTOP,SIGKILL")),
        "not ended by stop-then-kill"
    );
}
