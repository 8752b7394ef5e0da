//! Hostile clients on the daemon's socket (issue 6, "Bad input and hostile
//! clients"). No sshd: each test starts the real daemon through the harness,
//! registers a real process it spawned (a `sleep`, as root, as the PAM module
//! would for a login), and then misbehaves on other connections.
//!
//! Every case checks that
//! - the hostile connection gets an `Error` reply (code `Malformed`) and is
//!   closed, or is dropped;
//! - a valid register sent while the hostile connection is open is answered,
//!   and promptly;
//! - afterwards the daemon is the same process, still answers, and holds no
//!   more file descriptors than before (no fd leak).
//!
//! Valid requests go through the protocol's one client exchange; the hostile
//! bytes, half frames and idle connections are written on raw sockets, since
//! sending what no client would is the point.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{procs, util, Env};
use session_timeout_proto::client::exchange;
use session_timeout_proto::{
    encode_frame, read_frame_limited, ErrorCode, FrameError, Registration, Request, Response,
    AUDIT_UNSET, MAX_FRAME, MAX_REPLY, VERSION,
};

/// A valid request must be answered within this, even with hostile clients
/// connected. The daemon answers in well under 10 ms when idle; the bound is
/// generous for a loaded 2-core CI machine running other tests at once.
const PROMPT: Duration = Duration::from_secs(1);
/// The daemon drops a connection that has not sent a whole request in 5 s
/// (timeoutd's server::READ_TIMEOUT).
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the daemon may take to serve after `daemon_start`.
const START: Duration = Duration::from_secs(20);
/// How long a reply or a close may take to reach us.
const REPLY: Duration = Duration::from_secs(5);

/// The daemon of one test, and `sleep` processes to register as its logins.
struct Fixture {
    env: Env,
    pid: u32,
    sleepers: Vec<Child>,
    /// The daemon's open fds once it has served a first registration (the
    /// journal and the syslog socket are opened lazily).
    baseline_fds: usize,
    /// Sleepers registered when `baseline_fds` was counted.
    baseline_sessions: usize,
}

fn fd_count(pid: u32) -> usize {
    procs::fd_count(pid).unwrap_or_else(|| panic!("cannot read /proc/{pid}/fd"))
}

fn connect(env: &Env) -> UnixStream {
    let s = UnixStream::connect(&env.socket)
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", env.socket.display()));
    s.set_read_timeout(Some(REPLY)).expect("read timeout");
    s.set_write_timeout(Some(REPLY)).expect("write timeout");
    s
}

/// What the daemon did with a hostile connection.
#[derive(Debug)]
enum Outcome {
    /// It answered (the reply) and then closed.
    Replied(Response),
    /// It closed without a reply.
    Dropped,
}

/// Reads what the daemon sends until it closes: at most one reply, then EOF.
fn outcome(s: &mut UnixStream) -> Result<Outcome, String> {
    let first = match read_frame_limited(s, MAX_REPLY) {
        Ok(body) => Response::decode(&body).map_err(|e| format!("undecodable reply: {e}"))?,
        Err(FrameError::Closed) => return Ok(Outcome::Dropped),
        Err(FrameError::Io(e)) if e.kind() == ErrorKind::ConnectionReset => {
            return Ok(Outcome::Dropped)
        }
        Err(e) => return Err(format!("reading the reply: {e}")),
    };
    let mut rest = [0u8; 64];
    match s.read(&mut rest) {
        Ok(0) => Ok(Outcome::Replied(first)),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(Outcome::Replied(first)),
        Ok(n) => Err(format!("{n} more bytes after the reply {first:?}")),
        Err(e) => Err(format!("the connection stayed open after {first:?}: {e}")),
    }
}

impl Fixture {
    fn start() -> Fixture {
        // Long limits: nothing in these tests should end a registered sleeper.
        let env = Env::builder()
            .sshd(false)
            .idle("10m")
            .max("20m")
            .warn(&["1m"])
            .start();
        let pid = env.daemon.as_ref().expect("daemon").pid();
        let mut f = Fixture {
            env,
            pid,
            sleepers: Vec::new(),
            baseline_fds: 0,
            baseline_sessions: 0,
        };
        f.wait_serving();
        let (resp, _) = f.register();
        assert!(
            matches!(resp, Response::Registered { .. }),
            "warm-up register: {resp:?}\n{}",
            f.env.report(None)
        );
        // The fewest fds over 200 ms: the daemon opens /proc files and
        // pidfds for a moment now and then.
        f.baseline_fds = (0..10)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(20));
                fd_count(pid)
            })
            .min()
            .unwrap_or(0);
        f.baseline_sessions = f.sleepers.len();
        f
    }

    /// The fds the daemon may hold now without a leak: the baseline, and
    /// one pidfd for the leader of each session registered since (the
    /// daemon pins every live session's leader).
    fn allowed_fds(&self) -> usize {
        self.baseline_fds + self.sleepers.len() - self.baseline_sessions
    }

    /// Ready means: it answers `status` (on a loaded machine the daemon can
    /// take seconds to start serving).
    fn wait_serving(&self) {
        let served = util::poll_until(START, Duration::from_millis(20), || {
            exchange(&self.env.socket, &Request::Status, REPLY, MAX_REPLY).ok()
        });
        assert!(
            matches!(served, Some(Response::Sessions(_))),
            "the daemon did not answer status within {START:?}: {served:?}\n{}",
            self.env.report(None)
        );
    }

    /// Registers a fresh `sleep` as a login of the test user, on its own
    /// connection; returns the reply and how long it took.
    fn register(&mut self) -> (Response, Duration) {
        let child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning sleep");
        let info = procs::stat(child.id()).expect("stat of our sleep");
        self.sleepers.push(child);
        let req = Request::Register(Registration {
            user: self.env.user.name().to_string(),
            uid: self.env.user.uid(),
            service: "e2e-hostile".into(),
            tty: String::new(),
            rhost: String::new(),
            ruser: String::new(),
            pid: info.pid,
            start_time: info.start_time,
            loginuid: AUDIT_UNSET,
            sessionid: AUDIT_UNSET,
            auth: Default::default(),
        });
        let t = Instant::now();
        let resp = exchange(&self.env.socket, &req, REPLY, MAX_REPLY)
            .unwrap_or_else(|e| panic!("no reply to register: {e}\n{}", self.env.report(None)));
        (resp, t.elapsed())
    }

    /// A valid register is answered within [`PROMPT`].
    fn expect_prompt_register(&mut self, while_what: &str) -> Duration {
        let (resp, took) = self.register();
        assert!(
            matches!(resp, Response::Registered { .. }),
            "register while {while_what}: {resp:?}\n{}",
            self.env.report(None)
        );
        assert!(
            took <= PROMPT,
            "register while {while_what} took {took:?} (bound {PROMPT:?})\n{}",
            self.env.report(None)
        );
        took
    }

    /// The hostile connection got a Malformed error and was closed.
    fn expect_malformed(&self, s: &mut UnixStream, what: &str) -> String {
        match outcome(s) {
            Ok(Outcome::Replied(Response::Error {
                code: ErrorCode::Malformed,
                message,
            })) => message,
            other => panic!(
                "{what}: expected a Malformed error and a close, got {other:?}\n{}",
                self.env.report(None)
            ),
        }
    }

    /// Same daemon, still answering, and back to its fd count (bounded wait:
    /// the daemon closes a connection on its next loop turn).
    fn expect_unharmed(&mut self, what: &str) {
        let d = self.env.daemon.as_mut().expect("daemon");
        assert!(
            d.running() && d.pid() == self.pid,
            "{what}: the daemon died\n{}",
            self.env.report(None)
        );
        let pid = self.pid;
        let allowed = self.allowed_fds();
        let settled = util::poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
            (fd_count(pid) <= allowed).then_some(())
        });
        assert!(
            settled.is_some(),
            "{what}: the daemon holds {} fds, {allowed} allowed ({} before, and a pidfd per session since: a leak)\n{:?}\n{}",
            fd_count(pid),
            self.baseline_fds,
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| d
                    .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .collect::<Vec<_>>())
                .unwrap_or_default(),
            self.env.report(None)
        );
        self.expect_prompt_register(&format!("after {what}"));
        let start = self
            .env
            .syslog
            .find("daemon_start", &[])
            .expect("daemon_start");
        assert_eq!(
            start.get("pid"),
            Some(pid.to_string().as_str()),
            "{what}: more than one daemon_start\n{}",
            self.env.report(None)
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for c in &mut self.sleepers {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends `bytes` on a fresh connection, then a valid register on another
/// one before reading the hostile connection's fate.
fn hostile_then_register(f: &mut Fixture, bytes: &[u8], what: &str) -> UnixStream {
    let mut s = connect(&f.env);
    s.write_all(bytes).expect("sending hostile bytes");
    f.expect_prompt_register(&format!("{what} is connected"));
    s
}

#[test]
fn garbage_bytes_get_an_error_reply_and_a_close() {
    let mut f = Fixture::start();
    // Text where a frame is expected: "GET " is a length of 1.2 GB.
    let mut http = hostile_then_register(&mut f, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP");
    let msg = f.expect_malformed(&mut http, "an HTTP request");
    assert!(msg.contains("length"), "{msg}");
    // A plausible length with a body of noise (version byte 0xde).
    let noise: Vec<u8> = (0u32..200).map(|i| (i * 7919 % 251) as u8 ^ 0xde).collect();
    let mut g = hostile_then_register(&mut f, &encode_frame(&noise), "noise");
    let msg = f.expect_malformed(&mut g, "a frame of noise");
    assert!(msg.contains("version"), "{msg}");
    // A well-framed body of the current version and an unknown kind, and one with trailing bytes.
    let mut k = hostile_then_register(&mut f, &encode_frame(&[VERSION, 250, 1, 2, 3]), "kind");
    f.expect_malformed(&mut k, "an unknown kind");
    let mut body = Request::Status.encode();
    body.push(0);
    let mut t = hostile_then_register(&mut f, &encode_frame(&body), "trailing");
    f.expect_malformed(&mut t, "trailing bytes");
    let ev = f
        .env
        .expect_event("request_malformed", &[("peer_uid", "0")], REPLY, None);
    assert!(ev.get("error").is_some(), "{}", ev.raw);
    f.expect_unharmed("garbage");
}

#[test]
fn oversized_length_prefix_is_refused_without_waiting_for_the_body() {
    let mut f = Fixture::start();
    for len in [MAX_FRAME as u32 + 1, u32::MAX] {
        let t = Instant::now();
        // Only the header: the daemon must not wait for 4 GB that never come.
        let mut s = hostile_then_register(&mut f, &len.to_be_bytes(), "an oversized header");
        let msg = f.expect_malformed(&mut s, &format!("length prefix {len}"));
        assert!(msg.contains(&len.to_string()), "{msg}");
        assert!(
            t.elapsed() < READ_TIMEOUT,
            "the refusal of length {len} waited for the read timeout ({:?})",
            t.elapsed()
        );
    }
    f.expect_unharmed("oversized length prefixes");
}

#[test]
fn wrong_version_gets_an_error_reply() {
    let mut f = Fixture::start();
    let mut body = Request::Status.encode();
    let newer = VERSION.wrapping_add(1);
    body[0] = newer;
    let mut s = hostile_then_register(&mut f, &encode_frame(&body), "a newer client");
    let msg = f.expect_malformed(&mut s, "a newer version");
    assert!(
        msg.contains(&format!("version {newer}")) && msg.contains("not supported"),
        "{msg}"
    );
    f.env.expect_event("request_malformed", &[], REPLY, None);
    f.expect_unharmed("a wrong version");
}

#[test]
fn truncated_frame_then_close_is_dropped() {
    let mut f = Fixture::start();
    let frame = encode_frame(&Request::Status.encode());
    for cut in [1, 3, frame.len() - 1] {
        let s = hostile_then_register(&mut f, &frame[..cut], "a half frame");
        drop(s); // close mid-frame
    }
    // Nothing to answer, nothing to log as malformed: the client just left.
    f.expect_unharmed("truncated frames");
    assert!(
        f.env.syslog.find("request_malformed", &[]).is_none(),
        "a client that left mid-frame was logged as malformed\n{}",
        f.env.report(None)
    );
}

/// Half a frame, then silence: the daemon drops the connection after its
/// read timeout (5 s), and serves others meanwhile. This test waits that 5 s
/// by nature.
#[test]
fn truncated_frame_then_stall_is_dropped_after_the_read_timeout() {
    let mut f = Fixture::start();
    let frame = encode_frame(&Request::Status.encode());
    let mut s = connect(&f.env);
    s.set_read_timeout(Some(READ_TIMEOUT + Duration::from_secs(5)))
        .expect("read timeout");
    let t = Instant::now();
    s.write_all(&frame[..frame.len() / 2])
        .expect("sending half a frame");
    let took = f.expect_prompt_register("a stalled client is connected");
    eprintln!("register with a stalled client connected: {took:?}");
    let what = outcome(&mut s);
    let after = t.elapsed();
    assert!(
        matches!(what, Ok(Outcome::Dropped)),
        "stalled client: {what:?}\n{}",
        f.env.report(None)
    );
    // Not before the 5 s timeout, and not much after it (poll wakes for it).
    assert!(
        after >= READ_TIMEOUT - Duration::from_millis(100)
            && after <= READ_TIMEOUT + Duration::from_secs(2),
        "the stalled client was dropped after {after:?}, expected about {READ_TIMEOUT:?}"
    );
    eprintln!("stalled client dropped after {after:?}");
    f.expect_unharmed("a stalled client");
}

/// Raises this process's soft open-file limit to `want` (or the hard limit).
fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live out-parameter of the right type.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur < want {
        lim.rlim_cur = want.min(lim.rlim_max);
        // SAFETY: `lim` is initialised; the soft limit stays within the hard one.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
    lim.rlim_cur
}

/// 1,000 connections that send nothing (as root: the per-uid cap of 16 is
/// for other users; the total cap is 4096). The daemon accepts them all and
/// still answers a register promptly while they are open; when they are
/// gone, its fd count is back where it was.
#[test]
fn thousand_idle_connections_do_not_block_a_register() {
    const IDLE: usize = 1000;
    let limit = raise_nofile(IDLE as u64 + 1024);
    assert!(
        limit >= IDLE as u64 + 256,
        "RLIMIT_NOFILE is {limit}: too low for {IDLE} connections"
    );
    let mut f = Fixture::start();
    let t = Instant::now();
    let idle: Vec<UnixStream> = (0..IDLE).map(|_| connect(&f.env)).collect();
    let opened = t.elapsed();
    // The daemon has accepted them (they are not just queued in the backlog).
    let pid = f.pid;
    let want = f.baseline_fds + IDLE;
    let accepted = util::poll_until(READ_TIMEOUT / 2, Duration::from_millis(20), || {
        (fd_count(pid) >= want).then_some(())
    });
    assert!(
        accepted.is_some(),
        "the daemon holds {} fds, expected at least {want} with {IDLE} clients\n{}",
        fd_count(pid),
        f.env.report(None)
    );
    // Inside the 5 s before the daemon times the idle ones out.
    assert!(
        t.elapsed() < READ_TIMEOUT - Duration::from_secs(1),
        "opening {IDLE} connections took {:?}",
        t.elapsed()
    );
    let took = f.expect_prompt_register(&format!("{IDLE} idle connections are open"));
    eprintln!("{IDLE} idle connections opened in {opened:?}; a register took {took:?}");
    assert!(
        t.elapsed() < READ_TIMEOUT,
        "the register was not made while all {IDLE} were open"
    );
    assert!(
        f.env.syslog.find("connection_limit", &[]).is_none(),
        "the connection cap was hit by root's connections\n{}",
        f.env.report(None)
    );
    drop(idle);
    f.expect_unharmed("1,000 idle connections");
}

/// A non-root user may hold 16 connections at once; the 17th and later are
/// closed at once and `connection_limit` is logged. Root (the PAM module) is
/// still served while that user holds its 16.
#[test]
fn per_user_connection_cap_is_enforced_and_logged() {
    const TRIES: usize = 24;
    let mut f = Fixture::start();
    // perl-base (always on Debian) holds the connections as the test user:
    // connects TRIES times, prints how many connects succeeded and, for each,
    // whether the daemon closed it (a read of 0 bytes within 2 s), then waits
    // for its stdin to close.
    let script = r#"
        use IO::Socket::UNIX; use IO::Select;
        my @s; for (1..$ARGV[1]) { my $c = IO::Socket::UNIX->new(Peer => $ARGV[0]) or last; push @s, $c; }
        my $closed = 0; my $sel = IO::Select->new(@s);
        my $until = time + 2;
        while (time < $until) { for my $c ($sel->can_read(0.2)) { my $b; if (!sysread($c, $b, 1)) { $closed++; $sel->remove($c); } } }
        print scalar(@s), " ", $closed, "\n"; STDOUT->flush; <STDIN>;
    "#;
    let mut child = Command::new("perl")
        .arg("-e")
        .arg(script)
        .arg(&f.env.socket)
        .arg(TRIES.to_string())
        .uid(f.env.user.uid())
        .gid(f.env.user.gid())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting perl");
    let mut line = String::new();
    let mut out = child.stdout.take().expect("stdout");
    let mut buf = [0u8; 64];
    while !line.ends_with('\n') {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => line.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    let uid = f.env.user.uid().to_string();
    let limit = f.env.expect_event("connection_limit", &[], REPLY, None);
    // While the user holds its 16, root is served.
    f.expect_prompt_register("a user holds its 16 connections");
    drop(child.stdin.take());
    let _ = util::wait_child_timeout(&mut child, REPLY);
    let _ = child.kill();
    let _ = child.wait();
    let counts: Vec<usize> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(
        counts,
        [TRIES, TRIES - 16],
        "perl's (connected, closed by the daemon) = {line:?}; expected {TRIES} connects, {} closed\n{}",
        TRIES - 16,
        f.env.report(None)
    );
    assert!(
        limit
            .get("detail")
            .is_some_and(|d| d.contains(&format!("uid {uid}"))),
        "{}",
        limit.raw
    );
    f.expect_unharmed("a user at the connection cap");
}
