//! Issue 14, parts 2 and 3, end to end with a real sshd: a session ends when
//! its OpenSSH certificate does (`reason=cert_expired`), a certificate valid
//! forever sets no deadline, and `timeoutctl deadline` ends a user's live
//! sessions and their logins until then, across a daemon restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::SshSession;
use support::{secs, toml_list, World, EVENT, HANDS_OFF};

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("running a tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA in a directory of its own (sshd must read its public key before
/// the world exists), removed on drop.
struct Ca(PathBuf);

impl Ca {
    fn new(tag: &str) -> Ca {
        let dir = std::env::temp_dir().join(format!("st-ca-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("creating the CA dir");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join("ca")));
        Ca(dir)
    }

    fn sshd_line(&self) -> String {
        format!("TrustedUserCAKeys {}", self.0.join("ca.pub").display())
    }

    /// A new key (not in authorized_keys) and its certificate for `principal`.
    fn issue(&self, name: &str, key_id: &str, principal: &str, validity: Option<&str>) -> PathBuf {
        let key = self.0.join(name);
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key));
        let mut sign = Command::new("ssh-keygen");
        sign.arg("-s")
            .arg(self.0.join("ca"))
            .args(["-I", key_id, "-n", principal]);
        if let Some(v) = validity {
            sign.args(["-V", v]);
        }
        run(sign.arg(key.with_extension("pub")));
        key
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cert_world(ca: &Ca) -> World {
    World::builder()
        .sshd_lines(&[ca.sshd_line()])
        .policy_for(|n| {
            format!(
                "{HANDS_OFF}[[rule]]\nname = \"jit\"\nusers = {}\nidle = \"off\"\nmax = \"off\"\nwarn = [\"10s\"]\n",
                toml_list(n)
            )
        })
        .start()
}

fn login_with(w: &World, key: &Path) -> SshSession {
    let ssh = SshSession::spawn(w.sshd.port, w.name(0), key);
    w.expect_ready(&ssh);
    ssh
}

#[test]
fn c1_a_session_ends_when_its_certificate_does() {
    let ca = Ca::new("c1");
    let w = cert_world(&ca);
    let key = ca.issue("jit", "jit-e2e@vault", w.name(0), Some("+40s"));
    let ssh = login_with(&w, &key);
    let open = w.expect_event(
        "session_open",
        &[("user", w.name(0)), ("cert_id", "jit-e2e@vault")],
    );
    let before: i64 = open
        .get("cert_valid_before")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no cert_valid_before in {}", open.raw));
    assert_eq!(open.get("auth"), Some("publickey"), "{}", open.raw);
    assert!(open.get("cert_serial").is_some(), "{}", open.raw);
    let left = before - now_secs();
    assert!(
        (20..=41).contains(&left),
        "valid_before is {left}s away\n{}",
        open.raw
    );
    let id = open.get("id").unwrap().to_string();
    let warn = w
        .env
        .syslog
        .wait_line(Duration::from_secs(45), |l| {
            l.matches("session_warn", &[("id", &id), ("reason", "cert_expired")])
        })
        .unwrap_or_else(|| panic!("no certificate warning\n{}", w.report(&[&ssh])));
    assert!(
        now_secs() < before,
        "warned after valid_before\n{}",
        warn.raw
    );
    let exit = ssh
        .wait_for_exit(Duration::from_secs(45))
        .unwrap_or_else(|| {
            panic!(
                "the session outlived its certificate\n{}",
                w.report(&[&ssh])
            )
        });
    let _ = exit;
    let ended = now_secs();
    let expired = w.expect_event(
        "session_expired",
        &[("id", &id), ("reason", "cert_expired")],
    );
    assert_eq!(
        expired.get("deadline"),
        Some(before.to_string().as_str()),
        "{}",
        expired.raw
    );
    assert!(
        (ended - before).abs() <= 2,
        "ended {}s from valid_before\n{}",
        ended - before,
        w.report(&[&ssh])
    );
}

#[test]
fn c2_a_certificate_valid_forever_sets_no_deadline() {
    let ca = Ca::new("c2");
    let w = cert_world(&ca);
    let key = ca.issue("forever", "forever-e2e", w.name(0), None);
    let ssh = login_with(&w, &key);
    let open = w.expect_event(
        "session_open",
        &[("user", w.name(0)), ("cert_id", "forever-e2e")],
    );
    assert_eq!(
        open.get("cert_valid_before"),
        Some("forever"),
        "{}",
        open.raw
    );
    let id = open.get("id").unwrap().to_string();
    std::thread::sleep(Duration::from_secs(3));
    let acted = w.env.syslog.lines().into_iter().find(|l| {
        l.get("id") == Some(id.as_str())
            && l.event()
                .is_some_and(|e| ["session_warn", "session_expired"].contains(&e))
    });
    assert!(acted.is_none(), "{acted:?}");
    assert!(ssh.exit().is_none(), "{}", w.report(&[&ssh]));
}

#[test]
fn d1_a_deadline_ends_live_sessions_and_logins_until_then_across_a_restart() {
    let mut w = World::builder()
        .policy_for(|n| {
            format!(
                "{HANDS_OFF}[[rule]]\nname = \"tests\"\nusers = {}\nidle = \"10m\"\nmax = \"1h\"\nwarn = [\"10s\"]\n",
                toml_list(n)
            )
        })
        .start();
    let user = w.name(0).to_string();
    let first = w.login(0);
    let answer = w.ctl_ok(&[
        "deadline",
        "--user",
        &user,
        "--in",
        "25s",
        "--reason",
        "jit-grant",
    ]);
    assert!(answer.contains("1 live session"), "{answer}");
    let set = w.expect_event("deadline_set", &[("target", &format!("user:{user}"))]);
    let at: i64 = set
        .get("at")
        .and_then(|v| v.parse().ok())
        .expect("deadline_set at=");
    let listed = w.ctl_ok(&["deadlines", "--json"]);
    assert!(listed.contains(&format!("\"at\":{at}")), "{listed}");
    w.stop_daemon();
    w.start_daemon();
    let second = w.login(0);
    for s in [&first, &second] {
        let exit = s
            .ssh
            .wait_for_exit(Duration::from_secs(40))
            .unwrap_or_else(|| {
                panic!(
                    "session {} outlived the deadline\n{}",
                    s.id,
                    w.report(&[&s.ssh])
                )
            });
        let _ = exit;
        let late = now_secs() - at;
        assert!(
            (-1..=3).contains(&late),
            "session {} ended {late}s after the deadline",
            s.id
        );
        let expired = w.expect_event("session_expired", &[("id", &s.id), ("reason", "deadline")]);
        assert_eq!(
            expired.get("deadline"),
            Some(at.to_string().as_str()),
            "{}",
            expired.raw
        );
    }
    eprintln!(
        "d1: both sessions ended at the deadline ({})",
        secs(Duration::from_secs(25))
    );
    // A new deadline can be cleared; a login then keeps its rule's limits.
    w.ctl_ok(&["deadline", "--user", &user, "--in", "1h"]);
    w.ctl_ok(&["deadline", "--clear", "--user", &user]);
    w.expect_event("deadline_cleared", &[("target", &format!("user:{user}"))]);
    assert!(w.ctl_ok(&["deadlines", "--json"]).trim() == "[]");
    let _ = EVENT;
}
