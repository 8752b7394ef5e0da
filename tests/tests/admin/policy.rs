//! Issue 3, policy: first-match rules, checked before use and reloaded live.
//!
//! End to end with the real sshd (see `support`): users in different groups
//! get different idle limits, an exempt user survives, a SIGHUP reload that
//! shortens the limit reaches live sessions, a broken reload changes nothing.
//! Then the command line: `--check-config` and `--explain`.
//!
//! The long tests are named `p*` so they start first; the CLI tests (`c*`)
//! take milliseconds.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod policy_support;
#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use policy_support::cases::{CIS_STIG, ERROR_CASES};
use policy_support::{assert_idle_window, long_rule, p1, scratch, timeoutd, GRACE};
use support::{secs, toml_list, World, EVENT, HANDS_OFF};

/// Two users in different groups (one through a supplementary group, one
/// through its primary group) get 10 s and 25 s of idle time; a user matched
/// by an `idle = "off"` rule is still there after both are gone.
#[test]
fn p1_groups_get_different_idle_limits_and_exempt_user_survives() {
    // User 0 only owns the group "privileged" matches; user 1 is in it as a
    // supplementary member; user 2 is matched by its own primary group.
    let mut w = World::builder()
        .users(4)
        .supplementary(1, 0)
        .policy_for(p1::policy)
        .start();
    let e = w.login(3);
    let a = w.login(1);
    let b = w.login(2);
    p1::rules_are_as_configured(
        &w,
        &[
            (&a, "privileged", "10s"),
            (&b, "staff", "25s"),
            (&e, "automation", "off"),
        ],
    );
    // The last input of each: a probe typed at an idle prompt.
    let e_last = w.expect_ready(&e.ssh);
    let a_last = w.expect_ready(&a.ssh);
    let b_last = w.expect_ready(&b.ssh);
    p1::each_closes_by_its_own_limit(&w, (&a, a_last), (&b, b_last), &e);
    p1::exempt_session_is_still_there(&w, &e, e_last);
    p1::expired_by_their_rules(&w, &[(&a, "privileged"), (&b, "staff")]);
    p1::exempt_session_was_never_acted_on(&w, &e);
    assert!(w.daemon().running());
}

/// A reload that gives a live session a shorter idle limit (a new rule for
/// its user, 15 s instead of 60 s) warns it and ends it by the new limit.
#[test]
fn p2_reload_with_shorter_limit_warns_and_ends_live_session() {
    let mut w = World::builder().policy_for(long_rule).start();
    let l = w.login(0);
    assert_eq!(
        (l.open.get("rule"), l.open.get("idle_limit")),
        (Some("tests"), Some("1m")),
        "{}",
        l.open.raw
    );
    let last = w.expect_ready(&l.ssh);
    let after = l.ssh.output_len();
    w.write_policy(&format!(
        "{HANDS_OFF}[[rule]]\nname = \"short\"\nusers = [\"{}\"]\nidle = \"15s\"\nwarn = [\"5s\"]\n",
        w.name(0)
    ));
    let since = w.sighup();
    let loaded = w.expect_event_since(since, "config_loaded", &[]);
    assert_eq!(
        (loaded.get("file"), loaded.get("rules")),
        (w.config.to_str(), Some("1")),
        "{}",
        loaded.raw
    );
    let bound = Duration::from_secs(15 + 8 + 2 + 10);
    let warning = l
        .ssh
        .wait_output_from("will be closed in", after, bound)
        .unwrap_or_else(|| panic!("no warning on the terminal\n{}", w.report(&[&l.ssh])));
    let exit = w.expect_exit(&l.ssh, bound);
    assert!(warning.at < exit.at);
    assert_idle_window(&w, &l, last, exit.at, 15);
    let warn = w.expect_event("session_warn", &[("id", &l.id)]);
    assert_eq!(warn.get("rule"), Some("short"), "{}", warn.raw);
    let ex = w.expect_event("session_expired", &[("id", &l.id)]);
    assert_eq!(
        (ex.get("reason"), ex.get("rule")),
        (Some("idle"), Some("short")),
        "{}",
        ex.raw
    );
}

/// A reload whose idle limit (4 s) has already passed for a live session
/// gives it exactly one warning, then ends it after the shortest warning
/// offset (2 s), counted from the reload.
#[test]
fn p3_reload_with_already_passed_limit_warns_once_then_ends() {
    let mut w = World::builder().policy_for(long_rule).start();
    let l = w.login(0);
    let last = w.expect_ready(&l.ssh);
    let after = l.ssh.output_len();
    // Inherent wait: idle time must accumulate. The daemon credits input at
    // the end of its 8 s atime window, so after 14 s it counts >= 6 s of
    // idleness, past the new 4 s limit. Waiting on the exit catches an early end.
    let idle_for = Duration::from_secs(14);
    let early = l
        .ssh
        .wait_for_exit(idle_for.saturating_sub(last.seen.elapsed()));
    assert!(
        early.is_none(),
        "the session ended under the 60 s limit\n{}",
        w.report(&[&l.ssh])
    );
    w.write_policy(&format!(
        "{HANDS_OFF}[[rule]]\nname = \"tests\"\nusers = [\"{}\"]\nidle = \"4s\"\nwarn = [\"2s\"]\n",
        w.name(0)
    ));
    let reload = w.sighup();
    w.expect_event_since(reload, "config_loaded", &[]);
    let warning = l
        .ssh
        .wait_output_from("will be closed in", after, EVENT)
        .unwrap_or_else(|| panic!("no warning on the terminal\n{}", w.report(&[&l.ssh])));
    let exit = w.expect_exit(&l.ssh, EVENT);
    let after_reload = exit.at - reload;
    eprintln!(
        "p3: warned {} and closed {} after the reload",
        secs(warning.at - reload),
        secs(after_reload)
    );
    // The reprieve is counted in milliseconds from the daemon's handling of
    // the signal; 1 s covers the delivery of the signal and the terminal I/O.
    assert!(
        after_reload >= Duration::from_secs(2) - Duration::from_millis(200),
        "closed {} after the reload, before the 2 s warning had run\n{}",
        secs(after_reload),
        w.report(&[&l.ssh])
    );
    assert!(
        after_reload <= Duration::from_secs(2) + GRACE + Duration::from_secs(1),
        "closed {} after the reload\n{}",
        secs(after_reload),
        w.report(&[&l.ssh])
    );
    w.expect_event("session_terminated", &[("id", &l.id)]);
    let warns = w
        .env
        .syslog
        .session_lines(&l.id)
        .into_iter()
        .filter(|x| x.event() == Some("session_warn"))
        .count();
    assert_eq!(warns, 1, "warnings sent\n{}", w.report(&[&l.ssh]));
    let ex = w.expect_event("session_expired", &[("id", &l.id)]);
    assert_eq!(ex.get("reason"), Some("idle"), "{}", ex.raw);
}

/// SIGHUP with a broken file: `config_rejected` names file:line:col; the
/// live session is not ended by the broken file's 2 s limit but by the old
/// 15 s one; a new login still gets the old policy; `timeoutctl reload`
/// reports the same error.
#[test]
fn p4_broken_reload_changes_nothing() {
    let mut w = World::builder()
        .users(2)
        .policy_for(|n| {
            format!(
                "{HANDS_OFF}[[rule]]\nname = \"tests\"\nusers = {}\nidle = \"15s\"\nwarn = [\"5s\"]\n",
                toml_list(n)
            )
        })
        .start();
    let l = w.login(0);
    let last = w.expect_ready(&l.ssh);
    // If it were applied, the new rule would end both users' sessions in 2 s.
    let broken = format!(
        "{HANDS_OFF}[[rule]]\nname = \"broken-rule\"\nusers = {}\nidle = \"2s\"\nwarn = [\"1s\"]\n\
         rhosts = [\"10.0.0.0/33\"]\n",
        toml_list(&[w.name(0).to_string(), w.name(1).to_string()])
    );
    w.write_policy(&broken);
    // rhosts is line 12 of the policy (6 of HANDS_OFF, 6 of the rule); its
    // first string starts at column 11.
    assert_eq!(broken.lines().nth(11).map(|l| l.find('"')), Some(Some(10)));
    let at = format!(
        "{}:{}:11: malformed CIDR",
        w.config.display(),
        w.header_lines() + 12
    );
    let since = w.sighup();
    let rejected = w.expect_event_since(since, "config_rejected", &[]);
    assert!(
        rejected.get("errors").is_some_and(|e| e.contains(&at)),
        "expected {at:?} in {}",
        rejected.raw
    );
    assert_eq!(rejected.get("file"), w.config.to_str(), "{}", rejected.raw);
    assert!(
        w.env.syslog.find("config_loaded", &[]).is_none(),
        "{}",
        w.report(&[])
    );
    let r = w.ctl(&["reload"]);
    assert!(
        r.code() == Some(1)
            && r.stderr.contains("refused (Malformed)")
            && r.stderr.contains(&at)
            && r.stderr.contains("running policy was kept"),
        "{}",
        r.describe()
    );
    // New logins still get the old policy.
    let other = w.login(1);
    assert_eq!(
        (other.open.get("rule"), other.open.get("idle_limit")),
        (Some("tests"), Some("15s")),
        "{}",
        other.open.raw
    );
    let exit = w.expect_exit(&l.ssh, Duration::from_secs(15 + 8 + 2 + 10));
    assert_idle_window(&w, &l, last, exit.at, 15);
    let ex = w.expect_event("session_expired", &[("id", &l.id)]);
    assert_eq!(
        (ex.get("reason"), ex.get("rule")),
        (Some("idle"), Some("tests")),
        "{}",
        ex.raw
    );
    assert!(w.daemon().running(), "{}", w.report(&[]));
}

// ---------------------------------------------------------------- CLI ----

#[test]
fn c1_check_config_accepts_cis_stig_policy_and_prints_rules() {
    let dir = scratch();
    let path = dir.0.join("cis.toml");
    std::fs::write(&path, CIS_STIG).unwrap();
    let r = timeoutd(&["--check-config"], &path);
    assert!(r.ok(), "{}", r.describe());
    let out = &r.stdout;
    for want in [
        "OK (4 rules)",
        "rule 1 \"privileged\"\n    match  groups=[sudo, wheel] services=[sshd*]\n    limits idle=10m max=4h",
        "rule 2 \"automation\"\n    match  users=[backup, deploy-*]\n    limits idle=off max=12h",
        "rule 3 \"untrusted-networks\"\n    match  rhosts=[!10.0.0.0/8, !fd00::/8, *]\n    limits idle=15m max=1h",
        "rule 4 \"console\"\n    match  tty=console\n    limits idle=5m",
        "defaults (no rule matched)\n    limits idle=15m max=12h warn=[5m, 1m] grace=10s",
    ] {
        assert!(out.contains(want), "missing {want:?}\n{}", r.describe());
    }
    assert!(!out.contains("warning"), "{}", r.describe());
}

#[test]
fn c2_check_config_locates_each_error() {
    let dir = scratch();
    let mut failures = Vec::new();
    let mut count = 0;
    for case in ERROR_CASES.split("=== ").skip(1) {
        let (head, text) = case.split_once('\n').expect("a header line");
        let mut words = head.splitn(3, ' ');
        let (name, at, cause) = (
            words.next().unwrap(),
            words.next().unwrap(),
            words.next().unwrap(),
        );
        let path = dir.0.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let r = timeoutd(&["--check-config"], &path);
        let want = format!("{}:{at}: ", path.display());
        let located = r
            .stderr
            .lines()
            .any(|l| l.starts_with(&want) && l.contains(cause));
        if r.ok() || r.status.is_none() || !located || !r.stdout.is_empty() {
            failures.push(format!("{name}: wanted {want}...{cause}\n{}", r.describe()));
        }
        count += 1;
    }
    assert_eq!(count, 16);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn c3_check_config_warns_about_shadowed_rule() {
    let dir = scratch();
    let path = dir.0.join("shadow.toml");
    std::fs::write(
        &path,
        "[defaults]\nidle = \"15m\"\n\n[[rule]]\nname = \"ops\"\ngroups = [\"ops\"]\nidle = \"10m\"\n\n\
         [[rule]]\nname = \"ops-ssh\"\ngroups = [\"ops\"]\nservices = [\"sshd\"]\nidle = \"5m\"\n",
    )
    .unwrap();
    let r = timeoutd(&["--check-config"], &path);
    assert!(r.ok(), "{}", r.describe());
    let want = format!(
        "{}:9:1: warning: rule \"ops-ssh\" can never match: rule \"ops\"",
        path.display()
    );
    assert!(
        r.stdout
            .lines()
            .chain(r.stderr.lines())
            .any(|l| l.starts_with(&want)),
        "wanted {want:?}\n{}",
        r.describe()
    );
}

#[test]
fn c4_explain_names_the_match_and_why_earlier_rules_failed() {
    let dir = scratch();
    let path = dir.0.join("cis.toml");
    std::fs::write(&path, CIS_STIG).unwrap();
    let explain = |words: &[&str]| {
        let mut args = vec!["--explain"];
        args.extend_from_slice(words);
        let r = timeoutd(&args, &path);
        assert!(r.ok(), "{}", r.describe());
        r.stdout
    };
    let alice = explain(&[
        "user=alice",
        "groups=staff,wheel",
        "service=sshd",
        "rhost=10.1.2.3",
        "tty=pty",
    ]);
    assert!(alice.contains("rule \"privileged\": MATCH"), "{alice}");
    assert!(alice.contains("limits: idle=10m max=4h"), "{alice}");

    let deploy = explain(&[
        "user=deploy-web",
        "groups=deploy",
        "service=sshd",
        "rhost=10.1.2.3",
        "tty=pty",
    ]);
    assert!(
        deploy.contains("rule \"privileged\": no match: user deploy-web (groups [deploy]) is in none of groups [sudo, wheel]"),
        "{deploy}"
    );
    assert!(deploy.contains("rule \"automation\": MATCH"), "{deploy}");
    assert!(deploy.contains("limits: idle=off max=12h"), "{deploy}");

    // Outside 10/8 and fd00::/8: untrusted, v4 and v6.
    for rhost in ["192.0.2.7", "2001:db8::5"] {
        let bob = explain(&[
            "user=bob",
            "groups=users",
            "service=sshd",
            &format!("rhost={rhost}"),
            "tty=pty",
        ]);
        assert!(bob.contains("rule \"untrusted-networks\": MATCH"), "{bob}");
        assert!(bob.contains("limits: idle=15m max=1h"), "{bob}");
    }
    // Inside an excluded range: no rule, with a reason for each.
    for rhost in ["10.2.3.4", "fd12::1"] {
        let bob = explain(&[
            "user=bob",
            "groups=users",
            "service=sshd",
            &format!("rhost={rhost}"),
            "tty=pty",
        ]);
        let reasons = bob.lines().filter(|l| l.contains(": no match: ")).count();
        assert_eq!(reasons, 4, "{bob}");
        assert!(
            bob.contains(&format!(
                "rule \"untrusted-networks\": no match: rhost {rhost} is not selected"
            )),
            "{bob}"
        );
        assert!(bob.contains("no rule matched: [defaults] applies"), "{bob}");
        assert!(bob.contains("limits: idle=15m max=12h"), "{bob}");
    }
    // A local console login has no rhost: it matches no rhosts list.
    let console = explain(&["user=bob", "groups=users", "service=login", "tty=console"]);
    assert!(
        console.contains("rule \"untrusted-networks\": no match: rhost (none, a local login)"),
        "{console}"
    );
    assert!(console.contains("rule \"console\": MATCH"), "{console}");
    assert!(console.contains("limits: idle=5m"), "{console}");
}
