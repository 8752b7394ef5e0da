//! Issue 5, `timeoutctl`: revoke, unrevoke and TTL, persistence across a
//! daemon restart, a user's own `status`, refused admin verbs, `kill`,
//! `list --json`, and the login banner. Real sshd, real PAM, real daemon
//! (see `support`).

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ctl_support;
#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ctl_support::{
    assert_untouched, calm, clock_secs, listing, now_secs, num_of, parse_json, status, str_of,
};
use serde_json::Value as Json;
use support::{secs, toml_list, World, EVENT, HANDS_OFF};

/// `revoke --user` ends both live sessions of that user at once, and not the
/// session of another user.
#[test]
fn k1_revoke_user_cuts_both_sessions_and_spares_another_user() {
    let w = World::builder().users(2).policy_for(calm).start();
    let user = w.name(0).to_string();
    let s1 = w.login(0);
    let s2 = w.login(0);
    let other = w.login(1);
    let asked = Instant::now();
    let out = w.ctl_ok(&["revoke", "--user", &user, "--reason", "incident-42"]);
    let answered = Instant::now();
    assert!(
        out.contains(&format!("user:{user}")) && out.contains("2 live session(s) ended"),
        "{out}"
    );
    let added = w.expect_event("revoke_added", &[("target", &format!("user:{user}"))]);
    assert_eq!(
        (added.get("by_uid"), added.get("reason"), added.get("until")),
        (Some("0"), Some("incident-42"), Some("0")),
        "{}",
        added.raw
    );
    for s in [&s1, &s2] {
        let exit = w.expect_exit(&s.ssh, EVENT);
        let (took, answer) = (secs(exit.at - asked), secs(answered - asked));
        eprintln!(
            "k1: session {} ended {took} after the revoke ({answer} to answer)",
            s.id
        );
        // Signals go out within ms; sshd and ssh then need a moment to wind down.
        assert!(
            exit.at - asked < Duration::from_secs(3),
            "session {} ended {} after the revoke\n{}",
            s.id,
            secs(exit.at - asked),
            w.report(&[&s.ssh])
        );
        let revoked = w.expect_event("session_revoked", &[("id", &s.id)]);
        assert_eq!(
            (revoked.get("by_uid"), revoked.get("reason")),
            (Some("0"), Some("incident-42")),
            "{}",
            revoked.raw
        );
        w.expect_event(
            "session_terminated",
            &[("id", &s.id), ("reason", "revoked")],
        );
    }
    assert!(
        other.ssh.exit().is_none(),
        "the other user's session ended\n{}",
        w.report(&[&other.ssh])
    );
    w.expect_ready(&other.ssh);
    assert_untouched(
        &w,
        &other.id,
        &["session_revoked", "session_terminated", "session_signal"],
    );
}

/// The account phase refuses a revoked user with a message the client sees;
/// `unrevoke` lets the user in again, and so does the end of a 5 s TTL.
#[test]
fn k2_revoked_login_is_refused_until_unrevoke_or_ttl() {
    let w = World::builder().account_line().policy_for(calm).start();
    let user = w.name(0).to_string();
    let target = format!("user:{user}");
    let refused = |when: &str, told: &str| {
        let since = Instant::now();
        w.expect_login_refused(0, when, told);
        let filters = [("user", user.as_str()), ("target", target.as_str())];
        w.expect_event_since(since, "login_refused", &filters);
    };
    w.expect_login_works(0, "before any revocation");

    w.ctl_ok(&["revoke", "--user", &user]);
    refused(
        "revoked",
        &format!(
            "Logins for {user} are suspended by the administrator until an administrator lifts it."
        ),
    );
    // The refusal came from the account phase (sshd names it)...
    let log = w.sshd.log_text();
    assert!(
        log.contains(&format!(
            "Access denied for user {user} by PAM account configuration"
        )),
        "{}",
        w.report(&[])
    );
    let list = parse_json(&w.ctl_ok(&["revocations", "--json"]), &w);
    let entries = list.as_array().expect("an array");
    assert!(
        entries.len() == 1
            && str_of(&entries[0], "user") == Some(user.as_str())
            && entries[0].get("until") == Some(&Json::Null),
        "{list:?}"
    );

    w.ctl_ok(&["unrevoke", "--user", &user]);
    w.expect_event(
        "revoke_removed",
        &[("target", &target), ("reason", "unrevoke"), ("by_uid", "0")],
    );
    w.expect_login_works(0, "after unrevoke");

    let since = Instant::now();
    let out = w.ctl_ok(&["revoke", "--user", &user, "--ttl", "5s"]);
    assert!(out.contains("UTC (5s)"), "{out}");
    let added = w.expect_event_since(since, "revoke_added", &[("target", &target)]);
    let until: i64 = added.get("until").and_then(|u| u.parse().ok()).unwrap_or(0);
    assert!((until - now_secs() - 5).abs() <= 2, "{}", added.raw);
    refused(
        "revoked for 5 s",
        &format!("Logins for {user} are suspended by the administrator until "),
    );
    let expired = w
        .env
        .syslog
        .wait_event(
            "revoke_removed",
            &[("target", &target), ("reason", "expired")],
            Duration::from_secs(5 + 5),
        )
        .unwrap_or_else(|| panic!("the TTL did not expire\n{}", w.report(&[])));
    let after = expired.at - added.at;
    eprintln!("k2: the 5 s revocation expired after {}", secs(after));
    assert!(
        after >= Duration::from_millis(4500) && after <= Duration::from_secs(5 + 2),
        "expired {} after it was added\n{}",
        secs(after),
        w.report(&[])
    );
    w.expect_login_works(0, "after the TTL");
    let list = parse_json(&w.ctl_ok(&["revocations", "--json"]), &w);
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list:?}");
}

/// A stack without the `account` line: the session phase refuses the revoked
/// user instead. The daemon still registers the login and ends it as revoked
/// (in case the refusal never reached the module); here sshd turns it away by
/// itself, so the session ends with nothing left to signal.
#[test]
fn k3_session_phase_refuses_revoked_user() {
    let w = World::builder().policy_for(calm).start();
    let user = w.name(0).to_string();
    w.ctl_ok(&["revoke", "--user", &user, "--reason", "stolen key"]);
    // sshd shows no message from the session phase of a non-interactive login.
    w.expect_login_refused(0, "revoked", "");
    let refusal = w.expect_event("login_refused", &[("user", &user)]);
    assert_eq!(refusal.get("reason"), Some("stolen key"), "{}", refusal.raw);
    assert!(
        w.sshd.log_text().contains("pam_open_session"),
        "sshd did not log the refused session\n{}",
        w.report(&[])
    );
    w.expect_event("session_revoked", &[("user", &user)]);
    // Accounting holds: the registered login is closed as revoked.
    let end = w.expect_event(
        "session_terminated",
        &[("user", &user), ("reason", "revoked")],
    );
    assert_eq!(end.get("survivors"), Some("0"), "{}", end.raw);
}

/// A revocation is kept in state_dir: after SIGTERM and a new start of the
/// daemon it is still listed and still refuses the user.
#[test]
fn k4_revocation_survives_daemon_restart() {
    let mut w = World::builder().account_line().policy_for(calm).start();
    let user = w.name(0).to_string();
    w.ctl_ok(&["revoke", "--user", &user, "--reason", "persist-me"]);
    let first = w.daemon().pid();
    w.stop_daemon();
    w.start_daemon();
    let restarted = Instant::now();
    assert_ne!(w.daemon().pid(), first);

    let table = w.ctl_ok(&["revocations"]);
    assert!(
        table.contains(&format!("user {user}")) && table.contains("persist-me"),
        "{table}"
    );
    let list = parse_json(&w.ctl_ok(&["revocations", "--json"]), &w);
    let entries = list.as_array().expect("an array");
    assert!(
        entries.len() == 1
            && str_of(&entries[0], "user") == Some(user.as_str())
            && str_of(&entries[0], "reason") == Some("persist-me")
            && num_of(&entries[0], "by_uid") == Some(0.0),
        "{list:?}"
    );
    let told = format!("Logins for {user} are suspended");
    w.expect_login_refused(0, "after the restart", &told);
    w.expect_event_since(restarted, "login_refused", &[("user", &user)]);
}

/// A user types `timeoutctl status --json` in their own session: it shows
/// that session only (another user is logged in too), and the time it says
/// is left predicts the actual close within 2 s. Their `list` and `kill`
/// are refused and logged with their uid.
#[test]
fn k5_user_status_shows_own_session_and_admin_verbs_are_refused() {
    let idle = 20;
    let max = 90;
    let w = World::builder()
        .users(2)
        .policy_for(move |n| {
            format!(
                "{HANDS_OFF}[[rule]]\nname = \"tests\"\nusers = {}\nidle = \"{idle}s\"\nmax = \"{max}s\"\nwarn = [\"5s\"]\n",
                toml_list(n)
            )
        })
        .start();
    let (uid, other_uid) = (w.user(0).uid(), w.user(1).uid());
    let mine = w.login(0);
    let other = w.login(1);
    status::admin_verbs_are_refused(&w, uid, &other);
    status::plain_status_shows_only_mine(&w, &mine, &other);
    let st = status::type_status_json(&w, &mine);
    status::names_the_user_only(&w, &mine, &st, uid, other_uid);
    status::has_every_field(&st);
    status::remaining_times_predict_the_close(&w, &mine, &st, idle, max);
}

/// `kill ID` ends that session and not the user's other one.
#[test]
fn k6_kill_ends_exactly_that_session() {
    let w = World::builder().policy_for(calm).start();
    let s1 = w.login(0);
    let s2 = w.login(0);
    let out = w.ctl_ok(&["kill", &s1.id, "--reason", "test kill"]);
    assert!(
        out.contains(&format!("session {} is being ended", s1.id)),
        "{out}"
    );
    let killed = w.expect_event("session_killed", &[("id", &s1.id)]);
    assert_eq!(
        (killed.get("by_uid"), killed.get("reason")),
        (Some("0"), Some("test kill")),
        "{}",
        killed.raw
    );
    w.expect_exit(&s1.ssh, EVENT);
    w.expect_event(
        "session_terminated",
        &[("id", &s1.id), ("reason", "killed")],
    );
    assert!(s2.ssh.exit().is_none(), "{}", w.report(&[&s2.ssh]));
    w.expect_ready(&s2.ssh);
    assert_untouched(
        &w,
        &s2.id,
        &["session_killed", "session_signal", "session_terminated"],
    );
    let r = w.ctl(&["kill", "999999"]);
    assert!(
        r.code() == Some(1) && r.stderr.contains("refused (NotFound)"),
        "{}",
        r.describe()
    );
}

/// `list --json` parses and lists exactly the sessions that are logged in,
/// with the ids, users, ttys and pids the daemon logged; the table agrees.
/// (The daemon also lists the other logins on the host that it adopted at
/// its start, e.g. other tests' sessions: only this test's users count.)
#[test]
fn k7_list_json_matches_the_logins() {
    let w = World::builder().users(2).policy_for(calm).start();
    let logins = [w.login(0), w.login(0), w.login(1)];
    // Until the daemon finds a login's pty (a moment after the shell runs),
    // it lists PAM's tty ("ssh"); wait for it to be found.
    let ttys: Vec<e2e::LogLine> = logins
        .iter()
        .map(|l| w.expect_event("session_tty", &[("id", &l.id)]))
        .collect();
    let listed = listing::list_json_of_our_users(&w);
    listing::lists_exactly_the_logins(&listed, &logins);
    listing::rows_match_the_logins(&w, &listed, &logins, &ttys);
    listing::table_has_a_row_per_login(&w, &logins);
    listing::show_lists_the_processes(&w, &logins[0]);
}

/// The banner names the idle limit and the clock time of the absolute limit.
#[test]
fn k8_banner_is_shown_at_an_interactive_login() {
    let w = World::builder().policy_for(calm).start();
    let l = w.login(0);
    let seen = l
        .ssh
        .wait_output_from(
            "Idle sessions close after 10m; this session closes at ",
            0,
            Duration::ZERO,
        )
        .unwrap_or_else(|| panic!("no banner\n{}", w.report(&[&l.ssh])));
    let out = l.ssh.output();
    let rest = String::from_utf8_lossy(&out[seen.end..]).into_owned();
    let (clock, tail) = rest.split_at(rest.len().min(8));
    assert!(tail.starts_with(" UTC at the latest."), "{rest:?}");
    // When the session opened, in seconds of the UTC day, plus one hour.
    let opened = SystemTime::now() - l.open.at.elapsed();
    let opened = opened.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let expected = (opened + 3600).rem_euclid(86_400);
    let shown = clock_secs(clock).unwrap_or_else(|| panic!("bad clock {clock:?}"));
    let diff = (shown - expected).rem_euclid(86_400);
    assert!(
        diff <= 2 || diff >= 86_400 - 2,
        "banner says {clock}, expected about {expected}s of the day"
    );
}

/// With the module's `quiet` argument the session is registered but no
/// banner is shown.
#[test]
fn k9_banner_is_absent_with_quiet() {
    let w = World::builder().quiet().policy_for(calm).start();
    let l = w.login(0);
    assert!(w.pam.contents().contains(" quiet"));
    let out = String::from_utf8_lossy(&l.ssh.output()).into_owned();
    assert!(
        !out.contains("Idle sessions close after") && !out.contains("at the latest"),
        "{}",
        w.report(&[&l.ssh])
    );
}
