//! Re-validation against a real directory (issue 14): slapd and sssd (ldap
//! id and access providers) started by the test, two directory users logged
//! in through the test's sshd (resolved through `sss` in nsswitch), and
//! `shadowExpire: 1` set on one of them in LDAP. sssd's access provider
//! (`ldap_access_order = expire`, `ldap_account_expire_policy = shadow`)
//! answers the daemon's account check with PAM_ACCT_EXPIRED, and that user's
//! session ends with `reason=account_invalid`; the other's lives.
//!
//! The test re-executes itself under `unshare --mount --propagation private`:
//! nsswitch.conf, /etc/pam.d, /etc/sssd and /var/lib/sss are bind-mounted
//! copies and /run an overlay in that namespace only, so sshd, the daemon and
//! its check children see the directory and the host's files stay as they
//! are. slapd and sssd are killed by pid when the test ends.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod revalidate_ldap_support;
#[path = "../support/mod.rs"]
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::pam::PamService;
use e2e::SshSession;
use revalidate_ldap_support::{private_namespace, Directory, INNER};
use support::{run_bounded, secs, World, HANDS_OFF};

/// Bound for the whole inner run: directory, daemon, sshd, two logins, expiry.
const WHOLE: Duration = Duration::from_secs(150);

/// Runs test `name` of this binary again, alone, in a private mount namespace.
fn in_private_namespace(name: &str) {
    let exe = std::env::current_exe().expect("current_exe");
    let run = run_bounded(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private"])
            .arg(exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(INNER, "1"),
        WHOLE,
    );
    eprintln!("{}\n{}", run.stdout, run.stderr);
    assert!(
        run.ok() && run.stdout.contains("1 passed"),
        "the test in the private namespace failed: {}",
        run.describe()
    );
}

/// Logs a directory user in and waits for the daemon's `session_open`.
fn login(w: &World, user: &revalidate_ldap_support::DirectoryUser) -> SshSession {
    let ssh = SshSession::spawn(w.sshd.port, &user.name, &user.key);
    w.expect_ready(&ssh);
    w.expect_event("session_open", &[("user", &user.name)]);
    ssh
}

#[test]
fn l1_an_account_expired_in_ldap_loses_its_session_and_the_other_keeps_theirs() {
    const NAME: &str = "l1_an_account_expired_in_ldap_loses_its_session_and_the_other_keeps_theirs";
    if std::env::var_os(INNER).is_none() {
        return in_private_namespace(NAME);
    }
    let whole = Instant::now();
    let prefix = e2e::new_prefix();
    let dir = std::env::temp_dir().join(&prefix);
    fs::create_dir(&dir).expect("creating the directory's dir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    private_namespace(&dir);
    // uids far above useradd's range, one pair per test process.
    let base = 2_000_000_000 + (std::process::id() % 1_000_000) * 2;
    let users = [
        (format!("{prefix}a"), base),
        (format!("{prefix}b"), base + 1),
    ];
    let directory = Directory::start(&dir, &users);
    let service = format!("{prefix}-reval");
    // /etc/pam.d is this namespace's copy.
    let _stack = PamService::write_text(&service, "account required pam_sss.so\n");
    let names: Vec<String> = users.iter().map(|(n, _)| n.clone()).collect();
    let w = World::builder()
        .allow_also(&names)
        .daemon_keys(&format!(
            "revalidate_service = \"{service}\"\nrevalidate = \"3s\"\n"
        ))
        .policy(HANDS_OFF)
        .start();
    let (a, b) = (&directory.users[0], &directory.users[1]);
    let ssh_a = login(&w, a);
    let ssh_b = login(&w, b);
    let logged_in = whole.elapsed();

    directory.expire(&a.name);
    let since = Instant::now();
    let revoked = w.expect_event_since(
        since,
        "session_revoked",
        &[("user", &a.name), ("reason", "account_invalid")],
    );
    assert_eq!(
        revoked.get("pam_result"),
        Some("PAM_ACCT_EXPIRED"),
        "{}",
        directory.logs()
    );
    let took = revoked.at.duration_since(since);
    // One interval (3 s), sssd's 1 s identity cache, the check itself.
    assert!(took <= Duration::from_secs(10), "took {}", secs(took));
    w.expect_exit(&ssh_a, Duration::from_secs(10));

    // B is still valid in the directory, and keeps the session.
    let out = w.ctl_ok(&["revalidate", "--user", &b.name]);
    assert!(
        out.contains("PAM_SUCCESS: valid"),
        "{out}\n{}",
        directory.logs()
    );
    assert!(ssh_b.exit().is_none(), "{}", w.report(&[&ssh_b]));
    eprintln!(
        "revalidate_ldap: directory up in {}, both logged in at {}, expiry to session_revoked {}, whole {}",
        secs(directory.start_up),
        secs(logged_in),
        secs(took),
        secs(whole.elapsed())
    );
}
