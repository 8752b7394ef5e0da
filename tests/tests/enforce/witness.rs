//! Issue 12, "The client's own packets as the ground truth of activity", end
//! to end: a real sshd with our PAM module, the real daemon and real `ssh`
//! clients. Input faked inside the login (TIOCSTI, `touch`, background I/O)
//! gains nothing; client data that reaches a channel (typing, a command's
//! stdin, a tunnel) keeps the session; keepalives do not.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use e2e::login::{secs, END_SLACK, EVENT};
use e2e::{Env, Login, SshOpts, SshSession};

/// The idle limit of most tests.
const IDLE: Duration = Duration::from_secs(10);
/// A session without a terminal is looked at every fifth of its idle limit
/// (2 s here): its last channel data may be credited that much late.
const NOTTY_LOOK: Duration = Duration::from_secs(2);

fn idle_env(idle: &str) -> e2e::EnvBuilder {
    Env::builder()
        .idle(idle)
        .max("off")
        .warn(&["5s"])
        .grace("2s")
}

/// `dev.tty.legacy_tiocsti` set to 1 for the test, and put back as it was
/// when dropped (a failed test included).
struct TiocstiOn {
    before: String,
}

const TIOCSTI_SYSCTL: &str = "/proc/sys/dev/tty/legacy_tiocsti";

impl TiocstiOn {
    fn new() -> Option<TiocstiOn> {
        let before = std::fs::read_to_string(TIOCSTI_SYSCTL).ok()?;
        let before = before.trim().to_string();
        if before != "1" {
            std::fs::write(TIOCSTI_SYSCTL, "1").ok()?;
        }
        Some(TiocstiOn { before })
    }
}

impl Drop for TiocstiOn {
    fn drop(&mut self) {
        if self.before != "1" {
            let _ = std::fs::write(TIOCSTI_SYSCTL, &self.before);
        }
    }
}

/// How many lines a file has (0 if unreadable).
fn lines_in(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn w01_tiocsti_loop_gains_nothing_and_is_reported() {
    let Some(_tiocsti) = TiocstiOn::new() else {
        panic!("{TIOCSTI_SYSCTL} cannot be read or set");
    };
    let env = idle_env("10s").start();
    let login = Login::start(&env);
    let count = std::path::PathBuf::from(format!("/tmp/st-witness-{}.sti", login.id));
    let _ = std::fs::remove_file(&count);
    // A background job pushes a space into its own terminal every 4 s and
    // notes each accepted injection.
    let typed = login.run(&format!(
        "perl -e 'open(my $f, \">>\", \"{}\") or die; $f->autoflush(1); \
         while (1) {{ sleep 4; my $c = \" \"; ioctl(STDIN, 0x5412, $c) and print $f \"ok\\n\" }}' &",
        count.display()
    ));
    login.expect_idle_end(typed, IDLE);
    let injected = lines_in(&count);
    let _ = std::fs::remove_file(&count);
    assert!(
        injected >= 2,
        "the kernel accepted {injected} injections: the test proved nothing"
    );
    login.event("tamper_suspected", &[("reason", "no_client_input")], EVENT);
    login.expect_terminated_clean();
}

#[test]
fn w02_touch_and_a_future_atime_gain_nothing() {
    let env = idle_env("10s").start();
    let login = Login::start(&env);
    let typed = login.run(
        "( while :; do touch -a $(tty); sleep 2; done & sleep 5; touch -a -d 2030-01-01 $(tty) ) &",
    );
    login.expect_idle_end(typed, IDLE);
    login.event("tamper_suspected", &[], EVENT);
    login.expect_terminated_clean();
}

#[test]
fn w03_typing_every_3s_keeps_a_pty_session() {
    let env = idle_env("10s").start();
    let login = Login::start(&env);
    let last = login.type_every_3s("k", IDLE + Duration::from_secs(8), &[]);
    login.expect_idle_end(last, IDLE);
}

/// 15 s idle limit, no keepalives either way: the last keystroke's packet
/// is the witness, so the session ends 15 to 17 s after it: never before
/// the limit, and late only by the daemon's wake-up, the first kill step
/// (SIGHUP) and ssh noticing its connection close (2 s bound; the kernel's
/// 8-second atime window no longer adds to it).
#[test]
fn w04_idle_end_is_exact_to_the_second() {
    let env = idle_env("15s").start();
    let login = Login::start(&env);
    let last = login.run("true");
    let exit = login.wait_exit(last, Duration::from_secs(17));
    let after = exit.at.saturating_duration_since(last);
    eprintln!("ended {} after the last keystroke", secs(after));
    if after < Duration::from_secs(15) || after > Duration::from_secs(17) {
        login.fail(&format!("ended {} after the last keystroke", secs(after)));
    }
    login.event("session_expired", &[("reason", "idle")], EVENT);
}

fn notty(env: &Env, command: &[&str], options: &[String]) -> SshSession {
    env.ssh_with(&SshOpts {
        tty: false,
        options: options.to_vec(),
        command: command.iter().map(|s| s.to_string()).collect(),
        ..SshOpts::default()
    })
}

/// Ended for idleness not before `credited` + IDLE, and by that plus the
/// notty look interval and the kill slack.
fn expect_notty_idle_end(login: &Login, credited: Instant) {
    let exit = login.wait_exit(credited, IDLE + NOTTY_LOOK + END_SLACK);
    let after = exit.at.saturating_duration_since(credited);
    eprintln!("notty session ended {} after its last input", secs(after));
    if after < IDLE {
        login.fail(&format!("ended {} after its last input", secs(after)));
    }
    login.event("session_expired", &[("reason", "idle")], EVENT);
}

fn background_io_without_input_is_idle(options: &[String]) {
    let env = idle_env("10s").start();
    let ssh = notty(&env, &["bash"], options);
    let login = Login::without_shell(&env, ssh);
    let conn = login.event("session_connection", &[], EVENT);
    assert_eq!(conn.get("activity_source"), Some("client"), "{}", conn.raw);
    let sent = login
        .ssh
        .send("while :; do cat /etc/passwd >/dev/null; sleep 3; done &\n")
        .unwrap();
    expect_notty_idle_end(&login, sent);
    login.expect_terminated_clean();
}

#[test]
fn w05a_notty_background_io_is_not_activity() {
    background_io_without_input_is_idle(&[]);
}

#[test]
fn w05b_client_keepalives_are_not_activity() {
    background_io_without_input_is_idle(&["ServerAliveInterval=2".into()]);
}

/// A TCP service on the server side that answers each connection once.
fn pong_server() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut b = [0u8; 4];
            if c.read_exact(&mut b).is_err() || &b == b"quit" {
                return;
            }
            let _ = c.write_all(b"pong");
        }
    });
    (port, h)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request through the tunnel; whether it was answered.
fn through_tunnel(port: u16, what: &[u8; 4]) -> bool {
    let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(EVENT));
    let mut b = [0u8; 4];
    c.write_all(what).is_ok() && c.read_exact(&mut b).is_ok() && &b == b"pong"
}

fn tunnel(env: &Env, target: u16) -> (Login<'_>, u16) {
    let local = free_port();
    let ssh = notty(
        env,
        &[],
        &[
            "SessionType=none".into(),
            format!("LocalForward=127.0.0.1:{local} 127.0.0.1:{target}"),
        ],
    );
    let login = Login::without_shell(env, ssh);
    (login, local)
}

#[test]
fn w06a_tunnel_traffic_keeps_an_ssh_n_login() {
    let env = idle_env("10s").start();
    let (target, server) = pong_server();
    let (login, local) = tunnel(&env, target);
    let until = Instant::now() + IDLE + NOTTY_LOOK + END_SLACK + Duration::from_secs(3);
    let mut last = Instant::now();
    let mut answered = 0;
    while Instant::now() < until {
        // A request every 3 s is the point; the pause is a bounded wait for
        // an exit that must not come.
        if login.ssh.wait_for_exit(Duration::from_secs(3)).is_some() {
            login.fail(&format!(
                "ended after {answered} requests through the tunnel"
            ));
        }
        if through_tunnel(local, b"ping") {
            answered += 1;
            last = Instant::now();
        }
    }
    assert!(answered >= 5, "only {answered} requests went through");
    expect_notty_idle_end(&login, last);
    let _ = through_tunnel(target, b"quit");
    let _ = server.join();
}

#[test]
fn w06b_an_idle_ssh_n_login_ends_at_its_limit() {
    let env = idle_env("10s").start();
    let (target, server) = pong_server();
    let (login, _local) = tunnel(&env, target);
    let exit = login.wait_exit(login.ssh.spawned_at, IDLE + NOTTY_LOOK + END_SLACK + EVENT);
    let after = exit.at.saturating_duration_since(login.ssh.spawned_at);
    eprintln!("idle ssh -N ended {} after ssh started", secs(after));
    assert!(after >= IDLE, "ended {} after ssh started", secs(after));
    login.event("session_expired", &[("reason", "idle")], EVENT);
    let _ = through_tunnel(target, b"quit");
    let _ = server.join();
}

#[test]
fn w07_an_upload_fed_every_3s_lives() {
    let env = idle_env("10s").start();
    let ssh = notty(&env, &["cat >/dev/null"], &[]);
    let login = Login::without_shell(&env, ssh);
    let until = Instant::now() + IDLE + NOTTY_LOOK + END_SLACK + Duration::from_secs(3);
    let mut last = Instant::now();
    while Instant::now() < until {
        if login.ssh.wait_for_exit(Duration::from_secs(3)).is_some() {
            login.fail("ended while fed");
        }
        last = login.ssh.send("x\n").unwrap();
    }
    expect_notty_idle_end(&login, last);
}
