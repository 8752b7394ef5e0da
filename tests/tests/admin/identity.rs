//! Issue 14, parts 2 and 3, end to end with a real sshd: a session ends when
//! its OpenSSH certificate does (`reason=cert_expired`), a certificate valid
//! forever sets no deadline, a hostile key id is escaped and capped in the
//! events and the banner, `timeoutctl deadline` ends a user's live sessions
//! and their logins until then, across a daemon restart, and a rule on
//! `auth` gives a login with a second factor (publickey, then
//! keyboard-interactive through PAM) other limits than a key-only one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::{SshOpts, SshSession};
use support::{secs, toml_list, World, EVENT, HANDS_OFF};

/// Bound for the login banner to reach the terminal after the shell is up.
const LOGIN_OUTPUT: Duration = Duration::from_secs(5);

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

/// A key id a hostile CA (or a hostile request to a JIT broker) could put
/// in a certificate: terminal escapes (clear screen, set title), bell, CR,
/// LF, DEL, a C1 CSI and tab first, then 10 KiB, then more escapes.
fn hostile_key_id() -> String {
    let mut id = String::from("evil\u{1b}[2J\u{7}\u{1b}]0;pwned\u{7}\r\n\u{7f}\u{9b}31m\t");
    id.push_str(&"A".repeat(10 * 1024));
    id.push_str("\u{1b}[0m\u{7}");
    id
}

/// Control characters other than a line's end.
fn controls(s: &str) -> Vec<char> {
    s.trim_end_matches(['\r', '\n'])
        .chars()
        .filter(|c| c.is_control())
        .collect()
}

#[test]
fn h1_a_hostile_key_id_is_escaped_and_capped_in_events_and_the_banner() {
    let ca = Ca::new("h1");
    let w = cert_world(&ca);
    let hostile = hostile_key_id();
    let key = ca.issue("evil", &hostile, w.name(0), Some("+10m"));
    let ssh = login_with(&w, &key);
    let open = w.expect_event("session_open", &[("user", w.name(0))]);
    // The line itself: no raw control byte, the escapes spelled out, and
    // not 10 KiB long.
    assert_eq!(controls(&open.raw), Vec::<char>::new(), "{:?}", open.raw);
    assert!(
        open.raw
            .contains(r#"cert_id="evil\x1b[2J\x07\x1b]0;pwned\x07\r\n\x7f\u{9b}31m\tAAA"#),
        "{}",
        open.raw
    );
    assert!(
        open.raw.len() < 2048,
        "{} bytes: {}",
        open.raw.len(),
        open.raw
    );
    // Decoded again, it is the key id's first 64 characters and an ellipsis.
    let capped: String = hostile.chars().take(64).chain(['…']).collect();
    assert_eq!(open.get("cert_id"), Some(capped.as_str()), "{}", open.raw);
    assert!(
        open.get("cert_valid_before")
            .is_some_and(|v| v != "forever"),
        "{}",
        open.raw
    );
    // Every line of this session is as clean.
    let id = open.get("id").unwrap().to_string();
    for l in w
        .env
        .syslog
        .lines()
        .iter()
        .filter(|l| l.get("id") == Some(id.as_str()))
    {
        assert_eq!(controls(&l.raw), Vec::<char>::new(), "{:?}", l.raw);
    }
    // The banner names the certificate, escaped, on one line.
    let seen = ssh
        .wait_for_output("Your certificate ", LOGIN_OUTPUT)
        .unwrap_or_else(|| panic!("no certificate banner\n{}", w.report(&[&ssh])));
    let out = String::from_utf8_lossy(&ssh.output()).into_owned();
    let rest = &out[seen.end..];
    let shown = &rest[..rest.find(" expires at ").unwrap_or_else(|| {
        panic!(
            "the banner does not go on with ' expires at'\n{}",
            w.report(&[&ssh])
        )
    })];
    assert_eq!(controls(shown), Vec::<char>::new(), "{shown:?}");
    assert!(
        shown.starts_with(r"evil\x1b[2J\x07\x1b]0;pwned\x07\x0d\x0a\x7f\u{9b}31m\x09AAA"),
        "{shown:?}"
    );
    assert!(shown.ends_with("A…") && shown.len() < 200, "{shown:?}");
    assert!(ssh.exit().is_none(), "{}", w.report(&[&ssh]));
}

/// The password pam_unix asks for in the keyboard-interactive round.
const SECOND_FACTOR: &str = "st-second-factor-42";

/// Two rules on how the users authenticated: a second factor after the key
/// gets a longer limit than the key alone.
fn mfa_policy(n: &[String]) -> String {
    let users = toml_list(n);
    format!(
        "{HANDS_OFF}[[rule]]\nname = \"mfa\"\nusers = {users}\n\
         auth = [\"publickey\", \"keyboard-interactive*\"]\nidle = \"off\"\nmax = \"8h\"\nwarn = []\n\n\
         [[rule]]\nname = \"key-only\"\nusers = {users}\nidle = \"off\"\nmax = \"1h\"\nwarn = []\n"
    )
}

/// `ssh -tt` as user `i`, answering keyboard-interactive prompts with
/// `answer` through an askpass script the client runs (`BatchMode=no`
/// first: the first value of an option wins).
fn ssh_answering(w: &World, i: usize, answer: &str) -> SshSession {
    let askpass = w.env.dir().join(format!("askpass-{i}"));
    fs::write(&askpass, format!("#!/bin/sh\nprintf '%s\\n' '{answer}'\n")).unwrap();
    fs::set_permissions(&askpass, fs::Permissions::from_mode(0o700)).unwrap();
    let opts = SshOpts {
        options: vec![
            "BatchMode=no".into(),
            "PreferredAuthentications=publickey,keyboard-interactive".into(),
            "NumberOfPasswordPrompts=1".into(),
        ],
        env: vec![
            ("SSH_ASKPASS".into(), askpass.display().to_string()),
            ("SSH_ASKPASS_REQUIRE".into(), "force".into()),
            ("DISPLAY".into(), ":0".into()),
        ],
        ..SshOpts::default()
    };
    let u = w.user(i);
    SshSession::spawn_opts(w.sshd.port, u.name(), &u.key, &opts)
}

/// `timeoutd --config CONFIG --explain WORDS...`: its output.
fn explain(w: &World, words: &[&str]) -> String {
    let r = support::run_bounded(
        Command::new(&w.timeoutd)
            .arg("--config")
            .arg(&w.config)
            .arg("--explain")
            .args(words),
        Duration::from_secs(10),
    );
    assert!(r.ok(), "{}", r.describe());
    r.stdout
}

#[test]
fn m1_a_second_factor_gets_other_limits_than_a_key_alone() {
    // User 1 must pass publickey, then keyboard-interactive (pam_unix
    // through this test's PAM service, a copy of Debian's sshd stack);
    // user 0 logs in with the key alone.
    let w = World::builder()
        .users(2)
        .sshd_lines_for(|n| {
            vec![
                format!("Match User {}", n[1]),
                "    KbdInteractiveAuthentication yes".into(),
                "    AuthenticationMethods publickey,keyboard-interactive".into(),
            ]
        })
        .policy_for(mfa_policy)
        .start();
    w.user(1).set_password(SECOND_FACTOR);
    // The key alone does not let user 1 in: the second factor is real.
    w.expect_login_refused(1, "user 1 with the key alone", "Permission denied");

    let key_only = w.login(0);
    assert_eq!(
        key_only.open.get("auth"),
        Some("publickey"),
        "{}",
        key_only.open.raw
    );
    assert_eq!(
        key_only.open.get("rule"),
        Some("key-only"),
        "{}",
        key_only.open.raw
    );
    assert_eq!(
        key_only.open.get("max_limit"),
        Some("1h"),
        "{}",
        key_only.open.raw
    );

    let ssh = ssh_answering(&w, 1, SECOND_FACTOR);
    w.expect_ready(&ssh);
    let mfa = w.expect_event("session_open", &[("user", w.name(1))]);
    assert_eq!(
        mfa.get("auth"),
        Some("publickey+keyboard-interactive/pam"),
        "{}",
        mfa.raw
    );
    assert_eq!(mfa.get("rule"), Some("mfa"), "{}", mfa.raw);
    assert_eq!(mfa.get("max_limit"), Some("8h"), "{}", mfa.raw);
    assert!(
        w.sshd.log_text().contains(&format!(
            "Accepted keyboard-interactive/pam for {}",
            w.name(1)
        )),
        "{}",
        w.report(&[&ssh])
    );

    // --explain with what sshd reported gives the same answers.
    let service = format!("service={}", w.service);
    for (i, open, rule, limits) in [
        (0, &key_only.open, "key-only", "limits: idle=off max=1h"),
        (1, &mfa, "mfa", "limits: idle=off max=8h"),
    ] {
        let user = format!("user={}", w.name(i));
        let auth = format!("auth={}", open.get("auth").unwrap());
        let text = explain(&w, &[&user, &service, "tty=pty", &auth]);
        assert!(text.contains(&format!("rule \"{rule}\": MATCH")), "{text}");
        assert!(text.contains(limits), "{text}");
        if rule == "key-only" {
            assert!(
                text.contains("rule \"mfa\": no match: auth publickey has no method matching keyboard-interactive*"),
                "{text}"
            );
        }
    }
    assert!(
        key_only.ssh.exit().is_none() && ssh.exit().is_none(),
        "{}",
        w.report(&[&ssh])
    );
}
