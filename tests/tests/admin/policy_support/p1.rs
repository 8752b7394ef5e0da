//! The steps of p1: rules by group (supplementary and primary) and an
//! exempt user.

use std::time::Duration;

use e2e::Ready;

use super::assert_idle_window;
use crate::support::{toml_list, Login, World, HANDS_OFF};

/// User 3 is exempt by its own rule; "privileged" matches user 0's group
/// (user 1 is a supplementary member), "staff" user 2's primary group.
pub fn policy(n: &[String]) -> String {
    // The last rule catches all of this test's users: without its
    // own rule, the exempt user would get 10 s too.
    format!(
        "{HANDS_OFF}[[rule]]\nname = \"automation\"\nusers = [\"{}\"]\nidle = \"off\"\n\n\
         [[rule]]\nname = \"privileged\"\ngroups = [\"{}\"]\nservices = [\"sshd*\"]\nidle = \"10s\"\nwarn = [\"4s\"]\n\n\
         [[rule]]\nname = \"staff\"\ngroups = [\"{}\"]\nidle = \"25s\"\nwarn = [\"4s\"]\n\n\
         [[rule]]\nname = \"others\"\nusers = {}\nidle = \"10s\"\nwarn = [\"4s\"]\n",
        n[3],
        n[0],
        n[2],
        toml_list(n)
    )
}

/// Each login was registered under the expected rule and idle limit.
pub fn rules_are_as_configured(w: &World, expected: &[(&Login, &str, &str)]) {
    for &(l, rule, idle) in expected {
        assert_eq!(
            (l.open.get("rule"), l.open.get("idle_limit")),
            (Some(rule), Some(idle)),
            "{}\n{}",
            l.open.raw,
            w.report(&[])
        );
    }
}

/// The 10 s session closes first and alone, then the 25 s one; each within
/// its idle window.
pub fn each_closes_by_its_own_limit(
    w: &World,
    (a, a_last): (&Login, Ready),
    (b, b_last): (&Login, Ready),
    e: &Login,
) {
    let margin = Duration::from_secs(10);
    let a_exit = w.expect_exit(&a.ssh, Duration::from_secs(10 + 8 + 2) + margin);
    assert!(
        b.ssh.exit().is_none() && e.ssh.exit().is_none(),
        "the 10 s limit ended others too\n{}",
        w.report(&[&b.ssh, &e.ssh])
    );
    let b_exit = w.expect_exit(&b.ssh, Duration::from_secs(25 + 8 + 2) + margin);
    assert_idle_window(w, a, a_last, a_exit.at, 10);
    assert_idle_window(w, b, b_last, b_exit.at, 25);
}

/// The exempt user has now been idle longer than the others' limits, and
/// its session still answers.
pub fn exempt_session_is_still_there(w: &World, e: &Login, e_last: Ready) {
    assert!(
        e.ssh.exit().is_none(),
        "the exempt session ended\n{}",
        w.report(&[&e.ssh])
    );
    assert!(e_last.written.elapsed() > Duration::from_secs(25));
    w.expect_ready(&e.ssh);
}

/// Each ended session expired as idle, under its rule.
pub fn expired_by_their_rules(w: &World, ended: &[(&Login, &str)]) {
    for &(l, rule) in ended {
        let ex = w.expect_event("session_expired", &[("id", &l.id)]);
        assert_eq!(
            (ex.get("reason"), ex.get("rule")),
            (Some("idle"), Some(rule)),
            "{}",
            ex.raw
        );
    }
}

/// The exempt session was never warned nor expired.
pub fn exempt_session_was_never_acted_on(w: &World, e: &Login) {
    let acted: Vec<String> = w
        .env
        .syslog
        .session_lines(&e.id)
        .iter()
        .filter(|l| matches!(l.event(), Some("session_warn" | "session_expired")))
        .map(|l| l.raw.clone())
        .collect();
    assert!(
        acted.is_empty(),
        "the exempt session was acted on: {acted:?}"
    );
}
