//! The Unix socket: creating it safely, checking callers with SO_PEERCRED,
//! and passing decoded requests to the event loop.
//!
//! Each connection gets a short-lived thread with a read timeout, so a client
//! that stalls mid-frame cannot hold up anyone else. The event loop is the
//! only owner of the session table; connection threads talk to it by channel.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_timeout_proto::{read_frame, write_frame, ErrorCode, FrameError, Request, Response};

use crate::engine::Peer;
use crate::event::{Event, Severity};
use crate::syslog::Syslog;

/// What connection threads and the signal thread send to the event loop.
pub enum Command {
    Request {
        req: Request,
        peer: Peer,
        reply: SyncSender<Response>,
    },
    Signal(i32),
}

/// A client that sends part of a frame and stalls is dropped after this.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection waits for the event loop to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are refused with a log line.
pub const MAX_CONNECTIONS: usize = 256;

/// Creates the socket: parent directory 0755, socket 0600, a stale socket
/// from a crash replaced, a live one (another daemon) refused.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        }
    }
    match fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    ErrorKind::AddrInUse,
                    format!("{} is in use: another timeoutd is running", path.display()),
                ));
            }
            fs::remove_file(path)?; // stale, from a crash
        }
        Ok(_) => {
            return Err(io::Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                ),
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // SAFETY: umask(2) cannot fail; the socket is created with no access for
    // group and others, so nobody can connect before the chmod below.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old) };
    let listener = bound?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The credentials of the process at the other end, from the kernel.
pub fn peer_cred(stream: &UnixStream) -> io::Result<Peer> {
    // SAFETY: ucred is plain old data; all-zero is a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are live locals of the sizes getsockopt expects
    // for SO_PEERCRED; the fd is owned by `stream` for the whole call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Peer {
        pid: u32::try_from(cred.pid).unwrap_or(0),
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// Accepts connections forever on a thread of its own.
pub fn spawn_acceptor(
    listener: UnixListener,
    tx: Sender<Command>,
    syslog: Arc<Syslog>,
) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("accept".into())
        .spawn(move || {
            let mut last_limit_log: Option<Instant> = None;
            for conn in listener.incoming() {
                let stream = match conn {
                    Ok(s) => s,
                    Err(e) => {
                        syslog.log(
                            &Event::new("accept_failed")
                                .with_severity(Severity::Err)
                                .field("error", e),
                        );
                        std::thread::sleep(Duration::from_millis(50)); // EMFILE and friends: do not spin
                        continue;
                    }
                };
                if active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
                    if last_limit_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        last_limit_log = Some(Instant::now());
                        syslog.log(
                            &Event::new("connection_limit")
                                .with_severity(Severity::Warning)
                                .field("limit", MAX_CONNECTIONS)
                                .field("action", "refusing new connections until others finish"),
                        );
                    }
                    continue; // dropping the stream closes it
                }
                active.fetch_add(1, Ordering::AcqRel);
                let (tx, active2, syslog2) = (tx.clone(), Arc::clone(&active), Arc::clone(&syslog));
                let spawned = std::thread::Builder::new()
                    .name("conn".into())
                    .spawn(move || {
                        serve(stream, &tx, &syslog2);
                        active2.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })
        .map(|_| ())
}

/// Serves one connection: frames in, replies out, until the client closes.
fn serve(mut stream: UnixStream, tx: &Sender<Command>, syslog: &Syslog) {
    let peer = match peer_cred(&stream) {
        Ok(p) => p,
        Err(_) => return,
    };
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    loop {
        let body = match read_frame(&mut stream) {
            Ok(b) => b,
            Err(FrameError::Closed) => return,
            Err(FrameError::Io(_)) => return, // stalled or broken client: drop it
            Err(FrameError::Decode(e)) => {
                reject(&mut stream, syslog, peer, &e.to_string());
                return;
            }
        };
        let req = match Request::decode(&body) {
            Ok(r) => r,
            Err(e) => {
                reject(&mut stream, syslog, peer, &e.to_string());
                return;
            }
        };
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        if tx
            .send(Command::Request {
                req,
                peer,
                reply: reply_tx,
            })
            .is_err()
        {
            return; // shutting down
        }
        let resp = reply_rx
            .recv_timeout(REPLY_TIMEOUT)
            .unwrap_or(Response::Error {
                code: ErrorCode::Internal,
                message: "the daemon is busy; try again".into(),
            });
        if write_frame(&mut stream, &resp.encode()).is_err() {
            return;
        }
    }
}

/// Answers a malformed request with an error and logs it; the caller closes.
fn reject(stream: &mut UnixStream, syslog: &Syslog, peer: Peer, why: &str) {
    syslog.log(
        &Event::new("request_malformed")
            .with_severity(Severity::Warning)
            .field("peer_uid", peer.uid)
            .field("peer_pid", peer.pid)
            .field("error", why),
    );
    let resp = Response::Error {
        code: ErrorCode::Malformed,
        message: why.to_owned(),
    };
    let _ = write_frame(stream, &resp.encode());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("st-server-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d.join("sub").join("t.sock")
    }

    #[test]
    fn socket_is_0600_in_a_0755_dir_and_stale_sockets_are_replaced() {
        let path = temp("modes");
        let l = bind(&path).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o755);
        // A live listener is not replaced.
        assert_eq!(bind(&path).unwrap_err().kind(), ErrorKind::AddrInUse);
        drop(l); // the file stays behind, as after a crash
        assert!(path.exists());
        bind(&path).unwrap();
    }

    #[test]
    fn a_regular_file_is_never_replaced() {
        let path = temp("file");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "keep me").unwrap();
        assert_eq!(bind(&path).unwrap_err().kind(), ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&path).unwrap(), "keep me");
    }

    #[test]
    fn peer_cred_reports_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let p = peer_cred(&a).unwrap();
        assert_eq!(p.pid, std::process::id());
        // SAFETY: getuid(2) cannot fail.
        assert_eq!(p.uid, unsafe { libc::getuid() });
    }
}
