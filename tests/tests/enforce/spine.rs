//! The spine of the product, end to end: a real sshd with our PAM module, the
//! real daemon, a real ssh client with a pty. See README.md in this directory.
//!
//! Test names start with the number of the case in the project's issue; the
//! test runner starts tests in name order, so the two ~30 s tests (t1, t2)
//! start first and overlap even with the default of 2 test threads.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{Env, Exit, FailMode, Ready, SshSession};

/// Bound for login plus the readiness probe (key exchange, PAM, bash start).
const LOGIN: Duration = Duration::from_secs(20);
/// Bound for one syslog event that follows from something already seen.
const EVENT: Duration = Duration::from_secs(10);
/// The daemon may see input up to this late: the kernel updates a tty's atime
/// only when it crosses an 8-second boundary (see shared/DOMAIN.md).
const ATIME_GRANULARITY: Duration = Duration::from_secs(8);

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// `expected` appears in `events` in this order (other events may sit between).
fn in_order(events: &[String], expected: &[&str]) -> bool {
    let mut it = events.iter();
    expected.iter().all(|e| it.any(|x| x == e))
}

/// The harness itself, without our module: a real login through our own sshd
/// and our own PAM service file, then a clean logout. If this fails, the
/// environment is broken, not the product.
#[test]
fn t0_harness_logs_in_through_own_sshd_and_pam_service() {
    let probe = format!("pam_stack_{}_used", std::process::id());
    let env = Env::builder()
        .daemon(false)
        .module(None)
        // Proves sshd ran *our* /etc/pam.d/sshd-<prefix>: pam_echo's text is
        // shown on the terminal of an interactive login.
        .pam_line(&format!("session optional pam_echo.so {probe}"))
        .start();
    let ssh = env.ssh();
    env.expect_ready(&ssh, LOGIN);
    env.expect_output(&ssh, &probe, 0, Duration::from_secs(1));
    ssh.send("exit\n").expect("typing exit");
    let exit = env.expect_exit(&ssh, EVENT);
    assert!(
        exit.status.success(),
        "ssh exited with {}\n{}",
        exit.status,
        env.report(Some(&ssh))
    );
    let log = env.sshd.as_ref().unwrap().log_text();
    assert!(
        log.contains(&format!("Accepted publickey for {}", env.user.name())),
        "sshd log lacks the key login\n{}",
        env.report(Some(&ssh))
    );
}

/// Every line the daemon sent is facility authpriv (PRI 80..=87).
fn assert_authpriv(env: &Env) {
    let bad = env.syslog.non_authpriv();
    assert!(
        bad.is_empty(),
        "syslog lines outside facility authpriv: {:?}\n{}",
        bad.iter().map(|l| &l.raw).collect::<Vec<_>>(),
        env.report(None)
    );
}

/// Issue case 1: an idle session is warned on its terminal, then closed
/// between 15 s and 15 + 8 + 2 s after its last input, and the daemon logs
/// the whole story for that session id in order.
#[test]
fn t1_idle_session_is_warned_then_closed() {
    let idle = Duration::from_secs(15);
    let grace = Duration::from_secs(2);
    let env = Env::builder()
        .idle("15s")
        .max("off")
        .warn(&["10s"])
        .grace("2s")
        .start();
    let ssh = env.ssh();
    env.expect_ready(&ssh, LOGIN);
    let open = env.expect_session_open(EVENT, Some(&ssh));
    // The last input: a second probe, typed while the shell waits at its
    // prompt, so it is read at once (the first one was typed ahead during
    // login). Nothing is typed after it.
    let ready = env.expect_ready(&ssh, EVENT);
    let id = open.get("id").unwrap().to_string();
    let after_probe = ssh.output_len();

    let upper = idle + ATIME_GRANULARITY + grace;
    // Wait a little past the upper bound so a late close is reported with its timing.
    let margin = Duration::from_secs(10);
    let warning = env.expect_output(&ssh, "will be closed in", after_probe, upper + margin);
    // The warning ends with a bell.
    env.expect_output(&ssh, "\x07", warning.end, Duration::from_secs(2));
    let left = (ready.seen + upper + margin).saturating_duration_since(Instant::now());
    let exit = env.expect_exit(&ssh, left);

    let since_input = exit.at - ready.written;
    let since_seen = exit.at - ready.seen;
    assert!(
        since_input >= idle,
        "closed {} after the last input, before the idle limit of {}\n{}",
        secs(since_input),
        secs(idle),
        env.report(Some(&ssh))
    );
    assert!(
        since_seen <= upper,
        "closed {} after the last input was echoed, later than {}\n{}",
        secs(since_seen),
        secs(upper),
        env.report(Some(&ssh))
    );
    assert!(warning.at < exit.at);
    eprintln!(
        "t1: closed {} after the last input was written, {} after it was seen; warned {} after",
        secs(since_input),
        secs(since_seen),
        secs(warning.at - ready.written)
    );

    env.expect_event("session_terminated", &[("id", &id)], EVENT, Some(&ssh));
    let expired = env.expect_event("session_expired", &[("id", &id)], EVENT, Some(&ssh));
    assert_eq!(expired.get("reason"), Some("idle"), "{}", expired.raw);
    let tty = env.expect_event("session_tty", &[("id", &id)], EVENT, Some(&ssh));
    assert!(
        tty.get("tty").is_some_and(|t| t.starts_with("pts/")),
        "{}",
        tty.raw
    );
    let events = env.syslog.session_events(&id);
    let expected = [
        "session_open",
        "session_tty",
        "session_warn",
        "session_expired",
        "session_signal",
        "session_terminated",
    ];
    assert!(
        in_order(&events, &expected),
        "events of session {id}: {events:?}, expected in order {expected:?}\n{}",
        env.report(Some(&ssh))
    );
    assert_authpriv(&env);
}

/// Issue case 2: a session that keeps typing is not closed at its idle limit
/// but at its 30 s absolute limit, within 2 s.
#[test]
fn t2_busy_session_is_closed_at_absolute_limit() {
    let max = Duration::from_secs(30);
    let env = Env::builder()
        .idle("15s")
        .max("30s")
        .warn(&["10s"])
        .grace("2s")
        .start();
    let ssh = env.ssh();
    let ready = env.expect_ready(&ssh, LOGIN);
    let open = env.expect_session_open(EVENT, Some(&ssh));
    let id = open.get("id").unwrap().to_string();

    // Type every 3 s until ssh exits. The 3 s period is the point of the test,
    // not a wait for something: with the kernel's 8 s atime granularity, input
    // every 3 s keeps the session's idle time well under 15 s.
    let give_up = ready.seen + max + Duration::from_secs(2 + 10);
    let (exit, ticks) = type_every_3s_until_exit(&env, &ssh, give_up);
    closed_at_the_absolute_limit(&env, &ssh, &exit, &ready, max, ticks);
    shell_answered_the_ticks(&env, &ssh, ticks);
    expired_as_max_never_as_idle(&env, &ssh, &id);
    assert_authpriv(&env);
}

/// t2: types `echo tickN` every 3 s until ssh exits. Each pause is a
/// bounded wait for the exit, so the exit instant is recorded exactly.
fn type_every_3s_until_exit(env: &Env, ssh: &SshSession, give_up: Instant) -> (Exit, u32) {
    let mut ticks: u32 = 0;
    let exit = loop {
        if let Some(e) = ssh.wait_for_exit(Duration::from_secs(3)) {
            break e;
        }
        if Instant::now() > give_up {
            panic!(
                "ssh still running after {ticks} ticks\n{}",
                env.report(Some(ssh))
            );
        }
        ticks += 1;
        // A write may fail if ssh exits at this very moment; the loop sees the exit.
        let _ = ssh.send(&format!("echo tick{ticks}\n"));
    };
    (exit, ticks)
}

/// t2: closed not before the absolute limit after ssh started, and within
/// 2 s of it after the shell was ready.
fn closed_at_the_absolute_limit(
    env: &Env,
    ssh: &SshSession,
    exit: &Exit,
    ready: &Ready,
    max: Duration,
    ticks: u32,
) {
    let since_spawn = exit.at - ssh.spawned_at;
    let since_ready = exit.at - ready.seen;
    eprintln!(
        "t2: closed {} after ssh was spawned, {} after the shell was ready; {ticks} ticks",
        secs(since_spawn),
        secs(since_ready)
    );
    assert!(
        since_spawn >= max,
        "closed {} after ssh started, before the absolute limit of {}\n{}",
        secs(since_spawn),
        secs(max),
        env.report(Some(ssh))
    );
    assert!(
        since_ready <= max + Duration::from_secs(2),
        "closed {} after the shell was ready, more than 2 s after the absolute limit\n{}",
        secs(since_ready),
        env.report(Some(ssh))
    );
}

/// t2: the shell kept answering until shortly before the end.
fn shell_answered_the_ticks(env: &Env, ssh: &SshSession, ticks: u32) {
    // "\ntickN\r" is the shell's output; the echo of the typed command is
    // "echo tickN\r".
    let answered = format!("\ntick{}\r", ticks.saturating_sub(2));
    assert!(
        ticks >= 8 && ssh.wait_for_output(&answered, Duration::ZERO).is_some(),
        "the shell did not answer the ticks ({ticks} sent, looked for {answered:?})\n{}",
        env.report(Some(ssh))
    );
}

/// t2: expired for its absolute limit, never expired nor warned as idle.
fn expired_as_max_never_as_idle(env: &Env, ssh: &SshSession, id: &str) {
    let expired = env.expect_event("session_expired", &[("id", id)], EVENT, Some(ssh));
    assert_eq!(
        expired.get("reason"),
        Some("max"),
        "{}\n{}",
        expired.raw,
        env.report(Some(ssh))
    );
    assert!(
        env.syslog
            .find("session_expired", &[("id", id), ("reason", "idle")])
            .is_none(),
        "the busy session was expired as idle\n{}",
        env.report(Some(ssh))
    );
    env.expect_event("session_terminated", &[("id", id)], EVENT, Some(ssh));
    // The user typed every 3 s: telling them their session is about to close
    // for idleness would be wrong too.
    let idle_warn = env
        .syslog
        .find("session_warn", &[("id", id), ("reason", "idle")]);
    assert!(
        idle_warn.is_none(),
        "the busy session was warned as idle: {}\n{}",
        idle_warn.map(|l| l.raw).unwrap_or_default(),
        env.report(Some(ssh))
    );
}

/// Issue case 3: `exit` is logged as session_close with its duration, and the
/// daemon forgets the session (its deadlines never fire afterwards).
#[test]
fn t3_normal_logout_is_logged_and_forgotten() {
    // Short limits, so that a session the daemon failed to forget would be
    // warned (3 s) and expired (6 s) soon after the logout.
    let env = Env::builder()
        .idle("off")
        .max("6s")
        .warn(&["3s"])
        .grace("2s")
        .start();
    let ssh = env.ssh();
    env.expect_ready(&ssh, LOGIN);
    let open = env.expect_session_open(EVENT, Some(&ssh));
    let id = open.get("id").unwrap().to_string();
    ssh.send("exit\n").expect("typing exit");
    let exit = env.expect_exit(&ssh, EVENT);
    assert!(
        exit.status.success(),
        "ssh exited with {}\n{}",
        exit.status,
        env.report(Some(&ssh))
    );
    let close = env.expect_event("session_close", &[("id", &id)], EVENT, Some(&ssh));
    assert!(
        close.get("duration").is_some(),
        "session_close without duration=: {}",
        close.raw
    );

    // Proving an absence needs a bounded wait: until well past the 6 s limit
    // (plus grace and a check period), nothing more may be logged for this id.
    let quiet_until = open.at + Duration::from_secs(6 + 2 + 3);
    let late = env
        .syslog
        .wait_line(quiet_until.saturating_duration_since(Instant::now()), |l| {
            l.get("id") == Some(id.as_str())
                && matches!(
                    l.event(),
                    Some(
                        "session_warn"
                            | "session_expired"
                            | "session_signal"
                            | "session_terminated"
                    )
                )
        });
    assert!(
        late.is_none(),
        "the daemon acted on a closed session: {late:?}\n{}",
        env.report(None)
    );
    // The close is the last thing that happened to the session; only its
    // summary (the evidence line of issue 15) follows it.
    let events = env.syslog.session_events(&id);
    let tail: Vec<&str> = events
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        ["session_close", "session_summary"],
        "events: {events:?}"
    );
    assert_authpriv(&env);
}

/// Issue case 4: with fail=open, a login succeeds while the daemon is down.
#[test]
fn t4_daemon_down_fail_open_lets_login_in() {
    let env = Env::builder()
        .daemon(false)
        .module(Some(FailMode::Open))
        .start();
    assert!(!env.socket.exists());
    let ssh = env.ssh();
    env.expect_ready(&ssh, LOGIN);
    ssh.send("exit\n").expect("typing exit");
    let exit = env.expect_exit(&ssh, EVENT);
    assert!(
        exit.status.success(),
        "ssh exited with {}\n{}",
        exit.status,
        env.report(Some(&ssh))
    );
}

/// Issue case 5: with fail=closed, a login fails while the daemon is down.
#[test]
fn t5_daemon_down_fail_closed_refuses_login() {
    let env = Env::builder()
        .daemon(false)
        .module(Some(FailMode::Closed))
        .start();
    assert!(!env.socket.exists());
    let ssh = env.ssh();
    // Type the probe at once: if a shell ever ran, it would answer.
    ssh.send(e2e::ssh_client::READY_PROBE)
        .expect("typing the probe");
    let exit = env.expect_exit(&ssh, LOGIN);
    let report = env.report(Some(&ssh));
    assert!(
        !exit.status.success(),
        "ssh exited 0: the login went through\n{report}"
    );
    assert!(
        ssh.wait_for_output(e2e::ssh_client::READY_MARKER, Duration::ZERO)
            .is_none(),
        "a shell ran\n{report}"
    );
    let log = env.sshd.as_ref().unwrap().log_text();
    // The key was accepted, so the refusal came from the session stack...
    assert!(
        log.contains(&format!("Accepted publickey for {}", env.user.name())),
        "authentication itself failed, so this proves nothing about the session module\n{report}"
    );
    // ...it was pam_open_session that failed (sshd then refuses the shell)...
    assert!(
        log.contains("PAM: pam_open_session(): "),
        "sshd did not log a failed pam_open_session\n{report}"
    );
    // ...and not because PAM could not load the module (that fails closed too).
    assert!(
        !log.contains("Module is unknown"),
        "PAM could not load the module\n{report}"
    );
}

/// Issue case 6: a non-root peer cannot register, even through a socket an
/// admin made world-writable; the refusal is logged with its uid.
#[test]
fn t6_unprivileged_registration_is_denied() {
    let mut env = Env::builder().sshd(false).start();
    // Simulated admin mistake, so that the SO_PEERCRED check itself is tested.
    std::fs::set_permissions(&env.socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod socket");
    let uid = env.user.uid();
    // Run as the test user: a copy it can reach, wherever the build is.
    let register_as = env.runnable_by_users(Path::new(env!("CARGO_BIN_EXE_register-as")));
    let mut child = Command::new(&register_as)
        .arg(&env.socket)
        .arg(env.user.name())
        .arg(uid.to_string())
        .uid(uid)
        .gid(env.user.gid())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting register-as");
    let status = e2e::util::wait_child_timeout(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = child.wait_with_output().expect("register-as output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let what = format!(
        "register-as: {status:?}\nstdout: {stdout}\nstderr: {stderr}\n{}",
        env.report(None)
    );
    assert!(
        stdout.starts_with("response=error"),
        "the daemon did not refuse\n{what}"
    );
    assert!(
        stdout.contains("code=PermissionDenied"),
        "refused with another code\n{what}"
    );

    let uid_s = uid.to_string();
    let denied = env.expect_event("request_denied", &[("peer_uid", &uid_s)], EVENT, None);
    // The decision is logged as it is made; a registration would have been
    // logged by then too. A short bounded wait covers a reordering.
    let opened = env
        .syslog
        .wait_event("session_open", &[], Duration::from_secs(1));
    assert!(
        opened.is_none(),
        "a session was registered: {opened:?}\n{}",
        env.report(None)
    );
    assert!(
        env.daemon.as_mut().unwrap().running(),
        "the daemon died\n{}",
        env.report(None)
    );
    assert!(matches!(denied.pri, Some(80..=87)), "{}", denied.raw);
    assert_authpriv(&env);
}
