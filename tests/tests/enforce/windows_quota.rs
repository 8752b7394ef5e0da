//! Issue 17, time-of-day windows and daily quotas, end to end with the real
//! sshd (see `support`): a window that closes during a login ends it with a
//! warning first; a login outside the window is refused in the account
//! phase with the time it opens again; a 30 s quota shared by two parallel
//! sessions ends both at 30 s of union time; a third login is refused, also
//! after a restart (the ledger persists), until the reset.
//!
//! Windows are minute-granular, so the tests place the daemon's wall clock
//! with the test-only `timeoutd --civil-clock-offset SECS` (it shifts only
//! the civil clock windows and quota days are read on; deadlines are real
//! instants, and the system clock is never touched). The zone is UTC, so the
//! offsets are plain arithmetic.
//!
//! Inherent timings: the window closes 35 s after the daemon's clock is
//! placed, of which the world's start-up and the login take some seconds
//! (bounded below: the login must have at least 15 s of window left, or the
//! test fails saying so); the quota is 30 s of real union time.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{World, EVENT, HANDS_OFF};

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The offset that makes the daemon's civil clock (UTC) read `hh:mm:ss` of
/// today at the real instant `at`.
fn offset_to(at: i64, hh: i64, mm: i64, ss: i64) -> i64 {
    let day = at - at.rem_euclid(86_400);
    day + hh * 3600 + mm * 60 + ss - at
}

/// A syslog line within `bound` (the window's or quota's own time plus
/// [`EVENT`]), or the world's report.
fn wait(w: &World, bound: Duration, pred: impl Fn(&e2e::LogLine) -> bool) -> e2e::LogLine {
    w.env
        .syslog
        .wait_line(bound, pred)
        .unwrap_or_else(|| panic!("no such line within {bound:?}\n{}", w.report(&[])))
}

fn offset_args(offset: i64) -> Vec<String> {
    vec!["--civil-clock-offset".into(), offset.to_string()]
}

fn window_rule(user: &str) -> String {
    format!(
        "{HANDS_OFF}[[rule]]\nname = \"office\"\nusers = [\"{user}\"]\nhours = [\"daily 06:00-12:00\"]\nwarn = [\"10s\"]\n"
    )
}

/// (1) The window closes at civil 12:00:00, 35 s after the clock is placed:
/// the session is warned 10 s before, and ended at the close, by it.
#[test]
fn w1_a_window_that_closes_during_the_login_warns_then_ends_it() {
    let placed = unix_now();
    let offset = offset_to(placed, 11, 59, 25);
    let close = placed + 35;
    let mut w = World::builder()
        .daemon_keys("timezone = \"UTC\"\n")
        .daemon_args(&offset_args(offset))
        .policy_for(|n| window_rule(&n[0]))
        .start();
    let l = w.login(0);
    let left = close - l.open.t_ns / 1_000_000_000;
    assert!(
        left >= 15,
        "the world took too long to start: only {left} s of window left at login"
    );
    let warn = wait(&w, Duration::from_secs(40), |x| {
        x.matches("session_warn", &[("id", &l.id), ("reason", "window")])
    });
    assert_eq!(
        warn.get("deadline"),
        Some(close.to_string().as_str()),
        "{}",
        warn.raw
    );
    let exp = wait(&w, Duration::from_secs(40), |x| {
        x.matches("session_expired", &[("id", &l.id)])
    });
    assert_eq!(exp.get("reason"), Some("window"), "{}", exp.raw);
    assert_eq!(exp.get("deadline"), Some(close.to_string().as_str()));
    // Never before the close (deadlines are whole seconds in the log).
    assert!(
        exp.t_ns >= close * 1_000_000_000 - 1_000_000_000,
        "{}",
        exp.raw
    );
    assert!(warn.at < exp.at);
    w.expect_exit(&l.ssh, EVENT);
    assert!(
        String::from_utf8_lossy(&l.ssh.output()).contains("login hours"),
        "the warning did not reach the terminal\n{}",
        w.report(&[&l.ssh])
    );
    assert!(w.daemon().running());
}

/// (2) At civil 13:00 the window is closed: the account phase refuses the
/// login, the client sees when it opens again, and `login_refused
/// reason=window` is logged.
#[test]
fn w2_a_login_outside_the_window_is_refused_with_the_opening_time() {
    let offset = offset_to(unix_now(), 13, 0, 0);
    let w = World::builder()
        .daemon_keys("timezone = \"UTC\"\n")
        .daemon_args(&offset_args(offset))
        .account_line()
        .policy_for(|n| window_rule(&n[0]))
        .start();
    w.expect_login_refused(0, "outside the window", "outside the allowed hours");
    let r = w.ssh_command(0, "true");
    assert!(r.stderr.contains("06:00:00 UTC"), "{}", r.describe());
    let ev = w.expect_event(
        "login_refused",
        &[("user", w.name(0)), ("reason", "window")],
    );
    assert_eq!(ev.get("rule"), Some("office"), "{}", ev.raw);
}

/// (3) Two parallel sessions of one user with a 30 s quota: both end at 30 s
/// of union time from the first login (a sum would end them about 15 s
/// in), each warned first; `status` shows the user what is left, `list` the
/// admin. (4) A third login is refused, after a restart
/// too, until the reset, which the test brings with the civil clock offset.
#[test]
fn q1_a_shared_quota_ends_both_sessions_and_refuses_until_the_reset() {
    // Days start 12 h from now, far from either end of the test.
    let hour = (unix_now().rem_euclid(86_400) / 3600 + 12) % 24;
    let mut w = World::builder()
        .daemon_keys(&format!(
            "timezone = \"UTC\"\nday_starts = \"{hour:02}:00\"\n"
        ))
        .account_line()
        .policy_for(|n| {
            format!(
                "{HANDS_OFF}[[rule]]\nname = \"kiosk\"\nusers = [\"{}\"]\ndaily = \"30s\"\nwarn = [\"10s\"]\n",
                n[0]
            )
        })
        .start();
    let before_a = unix_now();
    let a = w.login(0);
    let b = w.login(0);
    let after_a = a.open.t_ns / 1_000_000_000 + 1;
    // The user sees today's quota once; admins see it per session.
    let status = w.ctl_as(0, &["status"]);
    assert!(
        status.ok() && status.stdout.matches("Daily quota: ").count() == 1,
        "{}",
        status.describe()
    );
    assert!(
        status.stdout.contains("of 30s left today"),
        "{}",
        status.stdout
    );
    let list = w.ctl_ok(&["list"]);
    assert!(list.contains("QUOTA-LEFT"), "{list}");
    let bound = Duration::from_secs(45);
    let mut deadlines = Vec::new();
    for l in [&a, &b] {
        wait(&w, bound, |x| {
            x.matches("session_warn", &[("id", &l.id), ("reason", "quota")])
        });
        let exp = wait(&w, bound, |x| {
            x.matches("session_expired", &[("id", &l.id)])
        });
        assert_eq!(exp.get("reason"), Some("quota"), "{}", exp.raw);
        deadlines.push(exp.get("deadline").unwrap().parse::<i64>().unwrap());
    }
    assert_eq!(deadlines[0], deadlines[1], "one instant for the union");
    assert!(
        (before_a + 30..=after_a + 30).contains(&deadlines[0]),
        "quota ran out at {} for a first login between {before_a} and {after_a}",
        deadlines[0]
    );
    w.expect_exit(&a.ssh, EVENT);
    w.expect_exit(&b.ssh, EVENT);
    w.expect_login_refused(0, "with the quota used up", "is used up");
    let ev = w.expect_event("login_refused", &[("user", w.name(0)), ("reason", "quota")]);
    assert!(ev.get("until").is_some(), "{}", ev.raw);
    // The ledger is in state_dir: a restarted daemon still refuses.
    w.stop_daemon();
    w.start_daemon();
    w.expect_login_refused(0, "after a restart", "resets at");
    // A day later on the civil clock the quota is whole again.
    w.stop_daemon();
    w.set_daemon_args(&offset_args(86_400));
    w.start_daemon();
    w.expect_login_works(0, "after the reset");
}

/// (2, the session phase) Without the `account` line the session phase
/// refuses the login outside the window: sshd turns it away (it shows no
/// message from the session phase of a non-interactive login; the module
/// logs the daemon's message through pam_syslog, to the host's syslog), and
/// `login_refused reason=window` is logged.
#[test]
fn w3_the_session_phase_refuses_outside_the_window_too() {
    let offset = offset_to(unix_now(), 13, 0, 0);
    let w = World::builder()
        .daemon_keys("timezone = \"UTC\"\n")
        .daemon_args(&offset_args(offset))
        .policy_for(|n| window_rule(&n[0]))
        .start();
    w.expect_login_refused(0, "outside the window, session phase", "");
    let ev = w.expect_event(
        "login_refused",
        &[("user", w.name(0)), ("reason", "window")],
    );
    assert!(ev.get("until").is_some(), "{}", ev.raw);
    assert!(
        w.sshd.log_text().contains("pam_open_session"),
        "sshd did not log the refused session\n{}",
        w.report(&[])
    );
    // The registered login is ended as refused by its window, in case the
    // refusal never reached the module.
    let end = w.expect_event(
        "session_terminated",
        &[("user", w.name(0)), ("reason", "window")],
    );
    assert_eq!(end.get("survivors"), Some("0"), "{}", end.raw);
}
