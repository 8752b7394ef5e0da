//! The spawner process and the session leaders it forks.
//!
//! The spawner is this binary run as `st-bench __spawner`, started once per
//! run while the harness is still small: its stdin is a socket on which the
//! harness asks for leaders, its stdout the write end of the report pipe.
//! Being single-threaded and tiny, it can fork thousands of leaders cheaply
//! and the children may run ordinary Rust code.
//!
//! A leader is what a login's session leader looks like to the daemon: a
//! process in its own session (setsid) holding a pty slave as controlling
//! terminal. It reads its terminal (so the kernel moves the device's atime on
//! input), and reports on the report pipe, with a CLOCK_REALTIME stamp, when
//! it is ready and when a signal arrives. SIGHUP and SIGTERM end it, as they
//! end a login shell.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use crate::sys;
use crate::util::now_ns;
use st_testkit::pam::Pam;

/// Size of one report record on the pipe (atomic: below PIPE_BUF).
pub const RECORD_SIZE: usize = 24;

/// Record kinds.
pub const READY: u32 = 1;
/// `a` = signal number, `b` = sender pid (0: the kernel, e.g. a tty hangup).
pub const SIGNAL: u32 = 2;
/// `a` = return code of pam_open_session.
pub const PAM: u32 = 3;
/// `a` = the step that failed, `b` = errno.
pub const FAILED: u32 = 4;

/// One line on the report pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub idx: u32,
    pub kind: u32,
    pub a: u32,
    pub b: u32,
    pub t_ns: i64,
}

impl Record {
    pub fn encode(&self) -> [u8; RECORD_SIZE] {
        let mut out = [0u8; RECORD_SIZE];
        out[0..4].copy_from_slice(&self.idx.to_le_bytes());
        out[4..8].copy_from_slice(&self.kind.to_le_bytes());
        out[8..12].copy_from_slice(&self.a.to_le_bytes());
        out[12..16].copy_from_slice(&self.b.to_le_bytes());
        out[16..24].copy_from_slice(&self.t_ns.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8; RECORD_SIZE]) -> Record {
        let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[16..24]);
        Record {
            idx: u(0),
            kind: u(4),
            a: u(8),
            b: u(12),
            t_ns: i64::from_le_bytes(t),
        }
    }
}

/// What the harness asks the spawner for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRequest {
    pub idx: u32,
    /// N of /dev/pts/N, already unlocked by the harness, which holds the master.
    pub pts: u32,
    /// The leader drops to these ids once its terminal is set up (0: stays root).
    pub uid: u32,
    pub gid: u32,
    /// Open the session through libpam first: (service, user).
    pub pam: Option<(String, String)>,
    /// Processes the leader forks once ready (the kill phase: a login's
    /// other processes), each ignoring SIGHUP and SIGTERM until killed.
    pub children: u32,
    /// Connect to the harness at 127.0.0.1:PORT first, as an SSH login's
    /// `[priv]` monitor holds its client's connection (see [`session_process`]).
    pub connect: Option<u16>,
}

impl SpawnRequest {
    pub fn to_line(&self) -> String {
        let (service, user) = match &self.pam {
            Some((s, u)) => (s.as_str(), u.as_str()),
            None => ("-", "-"),
        };
        let connect = self.connect.map_or("-".to_owned(), |p| p.to_string());
        format!(
            "{} {} {} {} {service} {user} {} {connect}\n",
            self.idx, self.pts, self.uid, self.gid, self.children
        )
    }

    pub fn parse(line: &str) -> Option<SpawnRequest> {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() != 8 {
            return None;
        }
        let pam = (f[4] != "-").then(|| (f[4].to_owned(), f[5].to_owned()));
        let connect = match f[7] {
            "-" => None,
            p => Some(p.parse().ok()?),
        };
        Some(SpawnRequest {
            idx: f[0].parse().ok()?,
            pts: f[1].parse().ok()?,
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            pam,
            children: f[6].parse().ok()?,
            connect,
        })
    }
}

/// `st-bench __spawner`: forks one leader per request line and answers its
/// pid (or `-errno`). Exits when the harness closes the socket or dies.
/// It is the subreaper of the leaders' children, which outlive their leader
/// (and are reaped at once, never left as zombies of PID 1).
pub fn spawner_main() -> i32 {
    sys::die_with_parent(libc::SIGKILL);
    sys::auto_reap_children();
    sys::become_subreaper();
    let stream = sys::stdin_as_stream();
    let Ok(read_half) = stream.try_clone() else {
        return 1;
    };
    let mut writer = stream;
    for line in BufReader::new(read_half).lines() {
        let Ok(line) = line else { break };
        let answer = match SpawnRequest::parse(&line) {
            None => "-22".to_owned(),
            Some(req) => match sys::fork() {
                Ok(None) => leader_main(&req),
                Ok(Some(pid)) => pid.to_string(),
                Err(e) => format!("-{}", e.raw_os_error().unwrap_or(1)),
            },
        };
        if writeln!(writer, "{answer}").is_err() {
            break;
        }
    }
    0
}

fn report(fd: i32, rec: Record) {
    let _ = sys::write_fd(fd, &rec.encode());
}

fn fail(fd: i32, idx: u32, step: u32, e: &std::io::Error) -> ! {
    let errno = e.raw_os_error().unwrap_or(0) as u32;
    report(
        fd,
        Record {
            idx,
            kind: FAILED,
            a: step,
            b: errno,
            t_ns: now_ns(),
        },
    );
    sys::exit_now(1)
}

/// The life of one leader; never returns.
fn leader_main(req: &SpawnRequest) -> ! {
    sys::default_signal(libc::SIGCHLD);
    let out = match sys::dup(1) {
        Ok(fd) => fd,
        Err(_) => sys::exit_now(1),
    };
    let idx = req.idx;
    if let Err(e) = sys::setsid() {
        fail(out, idx, 2, &e);
    }
    let path = PathBuf::from(format!("/dev/pts/{}", req.pts));
    let tty = sys::open_tty_raw(&path).unwrap_or_else(|e| fail(out, idx, 3, &e));
    if let Err(e) = sys::set_controlling_tty(tty) {
        fail(out, idx, 4, &e);
    }
    if let Err(e) = sys::make_raw(tty) {
        fail(out, idx, 5, &e);
    }
    // Before signals are blocked for the signalfd: the session process
    // must die of SIGHUP as sshd's does.
    let sock = req.connect.map(|port| session_process(out, idx, port, tty));
    let sigfd =
        sys::signalfd_for(&[libc::SIGHUP, libc::SIGTERM]).unwrap_or_else(|e| fail(out, idx, 6, &e));
    for target in 0..3 {
        if let Err(e) = sys::dup2(tty, target) {
            fail(out, idx, 7, &e);
        }
    }
    let mut keep = vec![out, sigfd.as_raw_fd()];
    keep.extend(sock);
    sys::close_all_except(&keep);
    if let Some((service, user)) = &req.pam {
        let rc = open_pam_session(service, user, &path.to_string_lossy());
        report(
            out,
            Record {
                idx,
                kind: PAM,
                a: rc as u32,
                b: 0,
                t_ns: now_ns(),
            },
        );
    }
    if req.uid != 0 {
        if let Err(e) = sys::become_user(req.uid, req.gid) {
            fail(out, idx, 10, &e);
        }
    }
    for _ in 0..req.children {
        match sys::fork() {
            Ok(None) => linger(),
            Ok(Some(_)) => {}
            Err(e) => fail(out, idx, 11, &e),
        }
    }
    report(
        out,
        Record {
            idx,
            kind: READY,
            a: std::process::id(),
            b: 0,
            t_ns: now_ns(),
        },
    );
    // With a session process, that process reads the terminal (see
    // `session_process`).
    wait_for_the_end(out, idx, sigfd.as_raw_fd(), sock.is_none())
}

/// Connects to the harness (which then knows the connection by the leader's
/// index, sent first) and forks the login's session process, as sshd's
/// `[priv]` monitor and its `sshd: user@pts/N` child both hold the client's
/// socket: the child reads what the client sends and writes it on (here to
/// /dev/null), so the daemon sees client data reach a channel. The child
/// also reads the terminal (the shell's part, moving its atime): the leader,
/// like sshd's monitor, reads nothing. Returns the socket, which the leader
/// keeps too.
fn session_process(out: i32, idx: u32, port: u16, tty: i32) -> i32 {
    use std::os::fd::IntoRawFd;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| fail(out, idx, 11, &e));
    if let Err(e) = stream.write_all(&idx.to_le_bytes()) {
        fail(out, idx, 11, &e);
    }
    let sock = stream.into_raw_fd();
    match sys::fork() {
        Ok(Some(_)) => sock,
        Ok(None) => {
            sys::die_with_parent(libc::SIGKILL);
            let null = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map(IntoRawFd::into_raw_fd)
                .unwrap_or(-1);
            sys::close_all_except(&[sock, null, tty]);
            relay(sock, null, tty)
        }
        Err(e) => fail(out, idx, 12, &e),
    }
}

/// The session process: what arrives on `sock` is written to `sink`; the
/// terminal is read and its input dropped. Exits when the connection closes.
fn relay(sock: i32, sink: i32, tty: i32) -> ! {
    let mut fds = [sock, tty].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let mut buf = [0u8; 512];
    loop {
        if sys::poll(&mut fds, -1).is_err() {
            continue;
        }
        if fds[0].revents != 0 {
            match sys::read_fd(sock, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = sys::write_fd(sink, buf.get(..n).unwrap_or(&[]));
                }
                _ => sys::exit_now(0),
            }
        }
        if fds[1].revents != 0 && !matches!(sys::read_fd(tty, &mut buf), Ok(n) if n > 0) {
            fds[1].fd = -1;
        }
    }
}

/// A child of a leader: SIGHUP and SIGTERM stay blocked (the leader's mask,
/// for its signalfd), so only the kill scope's final step ends it.
fn linger() -> ! {
    sys::close_all_except(&[]);
    loop {
        sys::pause();
    }
}

/// Opens the login's session as sshd's monitor does; the PAM handle is ended
/// without closing the session, which stays registered.
///
/// pam_wrapper gives each process a directory `/tmp/pam.X` (62 exist at
/// most) and removes it at exit, which a leader never reaches (`_exit`):
/// once the handle is ended nothing is read from it, so remove it here.
fn open_pam_session(service: &str, user: &str, tty: &str) -> i32 {
    let rc = match Pam::start(service, user) {
        Ok(mut pam) => {
            let rc = pam.set_tty(tty);
            if rc != 0 {
                rc
            } else {
                pam.open_session()
            }
        }
        Err(rc) => rc,
    };
    if let Ok(dir) = std::env::var("PAM_WRAPPER_RUNTIME_DIR") {
        if dir.starts_with("/tmp/pam.") {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    rc
}

/// Reads the terminal and waits for a signal; stamps the signal and exits on
/// SIGHUP or SIGTERM.
fn wait_for_the_end(out: i32, idx: u32, sigfd: i32, read_tty: bool) -> ! {
    let mut fds = [
        libc::pollfd {
            fd: if read_tty { 0 } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sigfd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let mut buf = [0u8; 512];
    loop {
        if sys::poll(&mut fds, -1).is_err() {
            continue;
        }
        if fds[1].revents & libc::POLLIN != 0 {
            if let Ok((signo, sender)) = sys::read_signal(sigfd) {
                let t_ns = now_ns();
                report(
                    out,
                    Record {
                        idx,
                        kind: SIGNAL,
                        a: signo,
                        b: sender,
                        t_ns,
                    },
                );
                if signo == libc::SIGHUP as u32 || signo == libc::SIGTERM as u32 {
                    sys::exit_now(0);
                }
            }
        }
        if fds[0].revents != 0 {
            match sys::read_fd(0, &mut buf) {
                Ok(n) if n > 0 => {}
                // Hung up (the master was closed): stop watching the terminal.
                _ => fds[0].fd = -1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r = Record {
            idx: 7,
            kind: SIGNAL,
            a: 1,
            b: 4242,
            t_ns: 1_700_000_000_123_456_789,
        };
        assert_eq!(Record::decode(&r.encode()), r);
    }

    #[test]
    fn requests_round_trip() {
        for pam in [None, Some(("stb-scale".to_owned(), "stb0a1b".to_owned()))] {
            let r = SpawnRequest {
                idx: 3,
                pts: 12,
                uid: 999,
                gid: 998,
                pam,
                children: 9,
                connect: Some(4242),
            };
            assert_eq!(SpawnRequest::parse(r.to_line().trim_end()), Some(r));
        }
        assert_eq!(SpawnRequest::parse("1 2 3"), None);
    }
}
