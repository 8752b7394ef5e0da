//! The module's side of the exchange with timeoutd: the protocol crate's
//! deadline-bounded exchange over a connection made non-blocking, so that a
//! full listen backlog fails at once instead of hanging sshd.
//!
//! Loaded into sshd, so: no threads, no runtime, every fd closed on return,
//! and the whole exchange bounded by one deadline.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use session_timeout_proto::client::{exchange_on, ClientError};
use session_timeout_proto::{Request, Response, MAX_REPLY};

/// Sends one request and waits for its reply, all within `timeout`.
pub fn exchange(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let deadline = Instant::now() + timeout;
    let stream = connect_nonblocking(socket).map_err(ClientError::Connect)?;
    exchange_on(&stream, req, deadline, MAX_REPLY)
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

    #[test]
    fn missing_socket_fails_fast() {
        let t = Instant::now();
        let req = Request::Unregister(session_timeout_proto::SessionKey::default());
        let err = exchange(
            Path::new("/nonexistent/x.sock"),
            &req,
            Duration::from_secs(5),
        );
        assert!(matches!(err, Err(ClientError::Connect(_))));
        assert!(t.elapsed() < Duration::from_millis(100));
    }
}
