//! Re-validation of live sessions through the PAM account stack (issue 14,
//! part 1): a real sshd, real logins, and a PAM service of the test's own
//! (`/etc/pam.d/<prefix>-reval`, removed on drop, even when the test fails)
//! whose account stack is pam_unix, or a module that hangs.
//!
//! - r1: `chage -E 0` on one of two users ends that user's sessions within
//!   10 s (`reason=account_invalid`); the other's lives; `chage -E -1` lets
//!   them in again.
//! - r2: a stack that hangs past `revalidate_timeout`: sessions are kept and
//!   `revalidate_unavailable` is logged; r3: with `revalidate_unavailable =
//!   "end"` they end.
//! - r4: `timeoutctl revalidate --user A` after `chage -E 0 A` ends A's
//!   sessions at once, without waiting for the interval; non-admins are refused.
//! - r5: a check hung in pam_exec ends, with its helper, when the daemon is
//!   killed.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::pam::PamService;
use e2e::util::poll_until;
use support::{secs, World, HANDS_OFF};

/// `chage -E DAYS user`, retried while another process holds the account
/// files' lock.
fn chage(user: &str, days: &str) {
    let done = poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let out = Command::new("chage")
            .args(["-E", days, user])
            .output()
            .expect("running chage");
        out.status.success().then_some(())
    });
    assert!(done.is_some(), "chage -E {days} {user} kept failing");
}

/// Puts the expiry back even if the test fails before it does.
struct Expired(String);

impl Expired {
    fn now(user: &str) -> Expired {
        chage(user, "0");
        Expired(user.to_owned())
    }
}

impl Drop for Expired {
    fn drop(&mut self) {
        chage(&self.0, "-1");
    }
}

/// A world of `users` users whose daemon has these extra `[daemon]` keys and
/// leaves sessions alone otherwise.
fn world(users: usize, keys: &str) -> World {
    World::builder()
        .users(users)
        .daemon_keys(keys)
        .policy(HANDS_OFF)
        .start()
}

/// A name for the test's PAM service, swept like every prefixed name.
fn service_name() -> String {
    format!("{}-reval", e2e::new_prefix())
}

fn keys(service: &str, extra: &str) -> String {
    format!("revalidate_service = \"{service}\"\n{extra}")
}

/// `/etc/pam.d/NAME` holding `stack`; removed on drop, even when the test fails.
fn write_stack(name: &str, stack: &str) -> PamService {
    PamService::write_text(
        name,
        &format!("# Written by the session-timeout e2e tests (re-validation); removed when the test ends.\n{stack}"),
    )
}

/// A script, removed on drop (also when the test fails).
struct Script(PathBuf);

impl Drop for Script {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// An account stack of service `name` whose pam_exec helper sleeps `secs`
/// seconds: the script and the PAM file, both removed on drop.
fn hung_stack(name: &str, secs: u32) -> (Script, PamService) {
    let hang = std::env::temp_dir().join(format!("{name}-hang.sh"));
    fs::write(&hang, format!("#!/bin/sh\nsleep {secs}\ntrue\n")).expect("writing the hang script");
    fs::set_permissions(&hang, fs::Permissions::from_mode(0o755)).expect("chmod");
    let stack = write_stack(
        name,
        &format!("account required pam_exec.so quiet {}\n", hang.display()),
    );
    (Script(hang), stack)
}

#[test]
fn r1_an_expired_account_loses_its_sessions_and_the_other_user_keeps_theirs() {
    let name = service_name();
    let _stack = write_stack(&name, "account required pam_unix.so\n");
    let w = world(2, &keys(&name, "revalidate = \"5s\"\n"));
    let a = w.login(0);
    let b = w.login(1);
    let (user_a, user_b) = (w.name(0).to_owned(), w.name(1).to_owned());
    let expired = Expired::now(&user_a);
    let since = Instant::now();
    let revoked = w.expect_event_since(
        since,
        "session_revoked",
        &[("user", &user_a), ("reason", "account_invalid")],
    );
    assert_eq!(revoked.get("pam_result"), Some("PAM_ACCT_EXPIRED"));
    assert_eq!(revoked.get("id"), Some(a.id.as_str()));
    let took = revoked.at.duration_since(since);
    assert!(took <= Duration::from_secs(10), "took {}", secs(took));
    w.expect_event(
        "revalidate_result",
        &[("user", &user_a), ("result", "invalid")],
    );
    w.expect_exit(&a.ssh, Duration::from_secs(10));
    // The ending says why, in its own words, not as a revocation.
    w.expect_event(
        "session_terminated",
        &[("id", &a.id), ("reason", "account_invalid")],
    );
    w.expect_event(
        "session_summary",
        &[("id", &a.id), ("end", "account_invalid")],
    );
    // B is checked at least once more (5 s) and keeps the session.
    std::thread::sleep(Duration::from_secs(6));
    assert!(b.ssh.exit().is_none(), "{}", w.report(&[&b.ssh]));
    let b_revoked = w
        .env
        .syslog
        .lines()
        .iter()
        .any(|l| l.matches("session_revoked", &[("user", &user_b)]));
    assert!(!b_revoked, "{}", w.report(&[&b.ssh]));
    drop(expired);
    w.expect_login_works(0, "after chage -E -1");
}

#[test]
fn r2_a_hung_directory_keeps_the_sessions_and_says_so() {
    let name = service_name();
    let (script, _stack) = hung_stack(&name, 60);
    let hang = script.0.clone();
    let w = world(
        1,
        &keys(&name, "revalidate = \"3s\"\nrevalidate_timeout = \"2s\"\n"),
    );
    let a = w.login(0);
    let user = w.name(0).to_owned();
    let first = w.expect_event(
        "revalidate_unavailable",
        &[
            ("user", &user),
            ("pam_result", "timeout"),
            ("action", "kept"),
        ],
    );
    // And again one interval later: the loop went on, one check at a time.
    w.expect_line("a second revalidate_unavailable", |l| {
        l.at > first.at && l.matches("revalidate_unavailable", &[("user", &user)])
    });
    assert!(a.ssh.exit().is_none(), "{}", w.report(&[&a.ssh]));
    // pam_exec's helper (in a session of its own) died with its check: at
    // most the one of the check now running is left.
    let helpers = || {
        e2e::audit::all()
            .iter()
            .filter(|p| p.command().contains(&*hang.to_string_lossy()))
            .count()
    };
    assert!(helpers() <= 1, "{} hang helpers alive", helpers());
    // The daemon still answers at once while checks hang.
    let t = Instant::now();
    w.ctl_ok(&["list"]);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "{}",
        secs(t.elapsed())
    );
}

#[test]
fn r3_with_unavailable_end_a_hung_directory_ends_the_sessions() {
    let name = service_name();
    let (_script, _stack) = hung_stack(&name, 60);
    let w = world(
        1,
        &keys(
            &name,
            "revalidate = \"3s\"\nrevalidate_timeout = \"2s\"\nrevalidate_unavailable = \"end\"\n",
        ),
    );
    let a = w.login(0);
    let user = w.name(0).to_owned();
    w.expect_event(
        "revalidate_unavailable",
        &[("user", &user), ("action", "ended")],
    );
    let ev = w.expect_event(
        "session_revoked",
        &[("user", &user), ("reason", "account_unavailable")],
    );
    assert_eq!(ev.get("pam_result"), Some("timeout"));
    w.expect_exit(&a.ssh, Duration::from_secs(10));
}

#[test]
fn r4_timeoutctl_revalidate_ends_an_expired_users_sessions_at_once() {
    let name = service_name();
    let _stack = write_stack(&name, "account required pam_unix.so\n");
    // Re-validation itself is off: only the command checks.
    let w = world(2, &keys(&name, ""));
    let a = w.login(0);
    let b = w.login(1);
    let (user_a, user_b) = (w.name(0).to_owned(), w.name(1).to_owned());
    let refused = w.ctl_as(1, &["revalidate", "--user", &user_a]);
    assert!(!refused.ok(), "{}", refused.describe());
    let all = w.ctl_ok(&["revalidate"]);
    assert!(
        all.contains(&format!("{user_a} (uid")) && all.contains("PAM_SUCCESS: valid"),
        "{all}"
    );
    assert!(all.contains(&format!("{user_b} (uid")), "{all}");
    let _expired = Expired::now(&user_a);
    let t = Instant::now();
    let out = w.ctl_ok(&["revalidate", "--user", &user_a]);
    assert!(
        out.contains("PAM_ACCT_EXPIRED: account invalid, 1 session(s) ended"),
        "{out}"
    );
    assert!(!out.contains(&user_b), "only A was checked: {out}");
    w.expect_exit(&a.ssh, Duration::from_secs(5));
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "{}",
        secs(t.elapsed())
    );
    w.expect_event(
        "session_revoked",
        &[("user", &user_a), ("reason", "account_invalid")],
    );
    assert!(b.ssh.exit().is_none(), "{}", w.report(&[&b.ssh]));
    let none = w.ctl(&["revalidate", "--user", "no-such-user-st"]);
    assert!(
        !none.ok() && none.stderr.contains("no live session"),
        "{}",
        none.describe()
    );
}

/// The live processes of the checks of service `name` (the daemon's own
/// binary in its child mode), and of the sessions its pam_exec helpers
/// `hang` lead (the helper and the sleep it runs).
fn checks_and_helpers(name: &str, hang: &Path) -> (Vec<u32>, Vec<u32>) {
    let live: Vec<e2e::audit::Proc> = e2e::audit::all()
        .into_iter()
        .filter(|p| p.state != 'Z')
        .collect();
    let checks = live
        .iter()
        .filter(|p| {
            p.argv.iter().any(|a| a == "--pam-account-check") && p.argv.contains(&name.to_owned())
        })
        .map(|p| p.pid)
        .collect();
    let leaders: Vec<u32> = live
        .iter()
        .filter(|p| p.command().contains(&*hang.to_string_lossy()))
        .map(|p| p.sid)
        .collect();
    let helpers = live
        .iter()
        .filter(|p| leaders.contains(&p.sid))
        .map(|p| p.pid)
        .collect();
    (checks, helpers)
}

/// The unit stops the daemon with `KillMode=process`, so nothing but the
/// check itself ends a check hung in a module when the daemon is killed:
/// the check and pam_exec's helper (in a session of its own, with its
/// sleep) end as soon as the daemon is gone, not when the module gives up
/// (the timeout, 1 minute here, the longest allowed).
#[test]
fn r5_a_hung_check_and_its_helper_end_when_the_daemon_is_killed() {
    let name = service_name();
    let (script, _stack) = hung_stack(&name, 600);
    let hang = script.0.clone();
    let mut w = world(
        1,
        &keys(&name, "revalidate = \"2s\"\nrevalidate_timeout = \"1m\"\n"),
    );
    let _a = w.login(0);
    let running = poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
        let (checks, helpers) = checks_and_helpers(&name, &hang);
        (!checks.is_empty() && helpers.len() >= 2).then_some((checks, helpers))
    });
    let (checks, helpers) = running.unwrap_or_else(|| {
        panic!(
            "no hung check with its helper and sleep: {:?}\n{}",
            checks_and_helpers(&name, &hang),
            w.report(&[])
        )
    });
    w.daemon().kill();
    // Bounded: the check's watch wakes at the daemon's exit; the rest is
    // scheduling on a loaded CI machine.
    let gone = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        let (c, h) = checks_and_helpers(&name, &hang);
        (c.is_empty() && h.is_empty()).then_some(())
    });
    let left = checks_and_helpers(&name, &hang);
    // What a failure leaves is this test's: its checks and helpers, by pid.
    for pid in left.0.iter().chain(&left.1) {
        // SAFETY: kill(2) with a pid and a signal number.
        unsafe { libc::kill(i32::try_from(*pid).unwrap(), libc::SIGKILL) };
    }
    assert!(
        gone.is_some(),
        "checks {checks:?} with helpers {helpers:?} killed with the daemon; left: {left:?}"
    );
}
