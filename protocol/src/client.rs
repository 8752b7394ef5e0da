//! The one client side of the protocol: send a request, wait for its reply,
//! all within one deadline. The PAM module, `timeoutctl`, the benchmark and
//! the tests all use it.
//!
//! The stream is non-blocking, and each read or write that would block
//! waits in poll(2) for only the time left until the deadline, so a daemon
//! that answers a byte at a time cannot stretch the bound. (A read blocked
//! in recv would also be woken for nothing when the daemon reads the
//! request: the kernel signals the sender's room to write, and only poll
//! filters that out.) The
//! caller may connect however it needs to: [`exchange`] connects with std,
//! and [`exchange_on`] takes a stream connected some other way (the module
//! connects non-blocking, so that a full listen backlog fails at once).

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::message::{Request, Response};
use crate::wire::{read_frame_limited, write_frame, FrameError};

/// Why an exchange with the daemon failed.
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

impl std::error::Error for ClientError {}

/// Connects to `socket`, sends `req` and returns the reply (at most
/// `max_reply` bytes), all within `timeout`.
pub fn exchange(
    socket: &Path,
    req: &Request,
    timeout: Duration,
    max_reply: usize,
) -> Result<Response, ClientError> {
    let deadline = Instant::now() + timeout;
    let stream = UnixStream::connect(socket).map_err(ClientError::Connect)?;
    exchange_on(&stream, req, deadline, max_reply)
}

/// Sends `req` on an already connected stream and returns the reply (at most
/// `max_reply` bytes), all before `deadline`. The stream is left non-blocking.
pub fn exchange_on(
    stream: &UnixStream,
    req: &Request,
    deadline: Instant,
    max_reply: usize,
) -> Result<Response, ClientError> {
    stream
        .set_nonblocking(true)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    let mut bounded = DeadlineStream { stream, deadline };
    write_frame(&mut bounded, &req.encode()).map_err(io_to_client)?;
    let body = read_frame_limited(&mut bounded, max_reply).map_err(|e| match e {
        FrameError::Io(e) => io_to_client(e),
        other => ClientError::Protocol(other.to_string()),
    })?;
    Response::decode(&body).map_err(|e| ClientError::Protocol(e.to_string()))
}

/// A stream whose every read and write gets only the time left.
struct DeadlineStream<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
}

impl DeadlineStream<'_> {
    fn left(&self) -> io::Result<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    }

    /// Runs `op` until it does not block, waiting for `events` in between,
    /// at most until the deadline.
    fn until_ready<T>(
        &mut self,
        events: libc::c_short,
        mut op: impl FnMut(&UnixStream) -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            match op(self.stream) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_for(self.stream, events, self.left()?)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

/// Waits up to `limit` (rounded up to a millisecond) for `events` on the
/// stream; returns early on a signal, and the caller looks again.
fn wait_for(stream: &UnixStream, events: libc::c_short, limit: Duration) -> io::Result<()> {
    let mut p = libc::pollfd {
        fd: stream.as_raw_fd(),
        events,
        revents: 0,
    };
    let ms = limit.as_micros().div_ceil(1000);
    let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
    // SAFETY: `p` is one live pollfd and the count passed is 1; poll only
    // writes its `revents`.
    let rc = unsafe { libc::poll(&raw mut p, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

impl io::Read for DeadlineStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.until_ready(libc::POLLIN, |mut s| io::Read::read(&mut s, buf))
    }
}

impl io::Write for DeadlineStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.until_ready(libc::POLLOUT, |mut s| io::Write::write(&mut s, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        io::Write::flush(&mut self.stream)
    }
}

fn io_to_client(e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout,
        _ => ClientError::Protocol(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::SessionKey;
    use crate::wire::{read_frame, MAX_REPLY};
    use std::io::Write;
    use std::os::unix::net::UnixListener;

    fn temp_socket(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("stp-client-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("s.sock")
    }

    fn unregister() -> Request {
        Request::Unregister(SessionKey::default())
    }

    #[test]
    fn missing_socket_is_a_connect_error() {
        let err = exchange(
            Path::new("/nonexistent/x.sock"),
            &unregister(),
            Duration::from_secs(5),
            MAX_REPLY,
        );
        assert!(matches!(err, Err(ClientError::Connect(_))), "{err:?}");
    }

    #[test]
    fn hung_daemon_times_out_within_the_bound() {
        let path = temp_socket("hung");
        let _listener = UnixListener::bind(&path).unwrap(); // accepts into the backlog, never answers
        let t = Instant::now();
        let err = exchange(&path, &unregister(), Duration::from_millis(150), MAX_REPLY);
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
        let resp = exchange(&path, &unregister(), Duration::from_secs(2), MAX_REPLY).unwrap();
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
            // One byte every 100 ms of a reply announcing 100 bytes.
            for b in [0u8, 0, 0, 100, 1, 102, 0, 0, 0] {
                if s.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let t = Instant::now();
        let err = exchange(&path, &unregister(), Duration::from_millis(250), MAX_REPLY);
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
    fn a_reply_over_the_limit_is_refused_before_it_is_read() {
        let path = temp_socket("big");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = read_frame(&mut s);
            s.write_all(&[0x7f, 0, 0, 0]).unwrap();
        });
        let err = exchange(&path, &unregister(), Duration::from_secs(2), 1024);
        assert!(matches!(err, Err(ClientError::Protocol(_))), "{err:?}");
        server.join().unwrap();
    }

    #[test]
    fn garbage_reply_is_a_protocol_error() {
        let path = temp_socket("garbage");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = read_frame(&mut s);
            s.write_all(&[0, 0, 0, 3, 9, 9, 9]).unwrap();
        });
        let err = exchange(&path, &unregister(), Duration::from_secs(2), MAX_REPLY);
        assert!(matches!(err, Err(ClientError::Protocol(_))), "{err:?}");
        server.join().unwrap();
    }
}
