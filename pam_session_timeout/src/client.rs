//! A blocking, deadline-bounded request/response exchange with timeoutd.
//!
//! Loaded into sshd, so: no threads, no runtime, every fd closed on return,
//! and the whole exchange bounded by one deadline. The connect is made
//! non-blocking so a full listen backlog fails at once instead of hanging.

use std::fmt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use session_timeout_proto::{read_frame, write_frame, FrameError, Request, Response};

/// Why the exchange with the daemon failed.
#[derive(Debug)]
pub enum ClientError {
    /// The socket could not be connected (daemon down, no socket, backlog full).
    Connect(io::Error),
    /// The daemon did not answer within the deadline.
    Timeout,
    /// The connection broke, or the reply was not understood.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect to timeoutd: {e}"),
            Self::Timeout => write!(f, "timeoutd did not answer in time"),
            Self::Protocol(m) => write!(f, "bad exchange with timeoutd: {m}"),
        }
    }
}

/// Sends one request and waits for its reply, all within `timeout`.
pub fn exchange(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect_nonblocking(socket).map_err(ClientError::Connect)?;
    stream
        .set_nonblocking(false)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    set_timeouts(&stream, deadline)?;
    write_frame(&mut stream, &req.encode()).map_err(io_to_client)?;
    let mut reader = DeadlineReader {
        stream: &stream,
        deadline,
    };
    let body = read_frame(&mut reader).map_err(|e| match e {
        FrameError::Io(e) => io_to_client(e),
        other => ClientError::Protocol(other.to_string()),
    })?;
    Response::decode(&body).map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Gives every read only the time left until the deadline, so a daemon that
/// answers a byte at a time still cannot hold the login past `timeout_ms`.
struct DeadlineReader<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
}

impl io::Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self
            .deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))?;
        self.stream.set_read_timeout(Some(left))?;
        io::Read::read(&mut self.stream, buf)
    }
}

fn io_to_client(e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout,
        _ => ClientError::Protocol(e.to_string()),
    }
}

/// Gives each blocking call on `stream` the time left until `deadline`.
fn set_timeouts(stream: &UnixStream, deadline: Instant) -> Result<(), ClientError> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(ClientError::Timeout)?;
    stream
        .set_read_timeout(Some(left))
        .and_then(|()| stream.set_write_timeout(Some(left)))
        .map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Connects without ever blocking: a Unix-socket connect either completes at
/// once or fails (EAGAIN when the daemon's backlog is full).
fn connect_nonblocking(path: &Path) -> io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;

    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long or contains NUL",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: plain socket(2) call with constant arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: addr is a valid, initialised sockaddr_un and len does not exceed its size.
    let rc = unsafe {
        libc::connect(
            fd,
            (&raw const addr).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UnixStream::from(owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn temp_socket(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pst-client-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("s.sock")
    }

    fn unregister() -> Request {
        Request::Unregister(session_timeout_proto::SessionKey::default())
    }

    #[test]
    fn missing_socket_fails_fast() {
        let t = Instant::now();
        let err = exchange(
            Path::new("/nonexistent/x.sock"),
            &unregister(),
            Duration::from_secs(5),
        );
        assert!(matches!(err, Err(ClientError::Connect(_))));
        assert!(t.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn hung_daemon_times_out_within_the_bound() {
        let path = temp_socket("hung");
        let _listener = UnixListener::bind(&path).unwrap(); // accepts into the backlog, never answers
        let t = Instant::now();
        let err = exchange(&path, &unregister(), Duration::from_millis(150));
        let took = t.elapsed();
        assert!(matches!(err, Err(ClientError::Timeout)), "{err:?}");
        assert!(took >= Duration::from_millis(140), "{took:?}");
        // The bound is the point; allow scheduling slack on a loaded 2-core machine.
        assert!(took < Duration::from_millis(400), "{took:?}");
    }

    #[test]
    fn answered_request_round_trips() {
        let path = temp_socket("ok");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let req = Request::decode(&read_frame(&mut s).unwrap()).unwrap();
            assert_eq!(req, unregister());
            write_frame(&mut s, &Response::Unregistered { session_id: 5 }.encode()).unwrap();
        });
        let resp = exchange(&path, &unregister(), Duration::from_secs(2)).unwrap();
        assert_eq!(resp, Response::Unregistered { session_id: 5 });
        server.join().unwrap();
    }

    #[test]
    fn a_daemon_that_trickles_its_reply_cannot_stretch_the_bound() {
        let path = temp_socket("trickle");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = read_frame(&mut s);
            use std::io::Write;
            // One byte every 100 ms of a reply announcing 100 bytes.
            for b in [0u8, 0, 0, 100, 1, 102, 0, 0, 0] {
                if s.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let t = Instant::now();
        let err = exchange(&path, &unregister(), Duration::from_millis(250));
        assert!(matches!(err, Err(ClientError::Timeout)), "{err:?}");
        // The bound is the point; allow scheduling slack on a loaded 2-core machine.
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        server.join().unwrap();
    }

    #[test]
    fn garbage_reply_is_a_protocol_error() {
        let path = temp_socket("garbage");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = read_frame(&mut s);
            use std::io::Write;
            s.write_all(&[0, 0, 0, 3, 9, 9, 9]).unwrap();
        });
        let err = exchange(&path, &unregister(), Duration::from_secs(2));
        assert!(matches!(err, Err(ClientError::Protocol(_))), "{err:?}");
        server.join().unwrap();
    }
}
