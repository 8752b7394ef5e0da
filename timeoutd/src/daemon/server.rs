//! The Unix socket, served by one poll(2) loop in the daemon's only thread.
//!
//! Every connection is non-blocking with its own buffers and deadline, so a
//! client that stalls mid-frame, or a thousand idle ones, cost an fd each and
//! never hold up a registration. Callers are identified by SO_PEERCRED; what
//! each may ask is decided by the caller of [`Server::poll`].

use std::collections::HashMap;
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use session_timeout_proto::{encode_frame, take_frame, ErrorCode, Request, Response, MAX_FRAME};

use crate::core::event::{Event, EventName, Severity};
use crate::engine::Peer;

/// A connection with no complete request for this long is dropped.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections open at once, in all.
pub const MAX_CONNECTIONS: usize = 4096;
/// Connections open at once per non-root uid, so one user cannot crowd out logins.
pub const MAX_PER_USER: usize = 16;

/// What one poll produced.
pub enum Incoming {
    Request { conn: u64, req: Request, peer: Peer },
    Signal(i32),
}

struct Conn {
    stream: UnixStream,
    peer: Peer,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    deadline: Instant,
    close_after_write: bool,
    /// A request was handed out and its reply is not queued yet. One request
    /// per connection is in flight at a time, and none is taken while a reply
    /// is unsent: a client that never reads cannot grow our buffers.
    awaiting_reply: bool,
}

impl Conn {
    /// Whether a request can be taken now: nothing in flight, nothing unsent,
    /// and a whole frame (or a bad length prefix) waiting.
    fn ready(&self) -> bool {
        !self.awaiting_reply && self.outbuf.is_empty() && frame_waiting(&self.inbuf)
    }

    fn done(&self) -> bool {
        self.close_after_write
            && self.outbuf.is_empty()
            && !self.awaiting_reply
            && !frame_waiting(&self.inbuf)
    }
}

/// A complete frame, or a length prefix that is already known to be bad.
fn frame_waiting(buf: &[u8]) -> bool {
    match buf.first_chunk::<4>() {
        None => false,
        Some(head) => {
            let len = u32::from_be_bytes(*head) as usize;
            len == 0 || len > MAX_FRAME || buf.len() >= 4 + len
        }
    }
}

pub struct Server {
    listener: UnixListener,
    signals: OwnedFd,
    conns: HashMap<u64, Conn>,
    next_token: u64,
    last_limit_log: Option<Instant>,
    /// Events about clients (malformed requests, limits) for the caller to log.
    pub notices: Vec<Event>,
}

/// Creates the socket: parent directory 0755, socket 0666 (every request is
/// authorised by SO_PEERCRED: admin verbs need root or the admin group, and
/// `status` answers only about the caller), a stale socket from a crash
/// replaced, a live one (another daemon) refused.
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
    let listener = UnixListener::bind(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o666))?;
    listener.set_nonblocking(true)?;
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

/// Blocks SIGHUP, SIGTERM and SIGINT and returns a signalfd that reports them.
pub fn signal_fd() -> io::Result<OwnedFd> {
    // SAFETY: sigset_t is plain old data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; these calls only write into it.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
    }
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: -1 asks for a new fd; `set` is initialised.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: signalfd returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Raises the soft open-file limit to the hard one, for many clients at once.
pub fn raise_fd_limit() {
    // SAFETY: rlimit is plain old data.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `lim` is a live out-parameter of the right type.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_cur < lim.rlim_max
    {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is initialised; raising the soft limit up to the hard one is always allowed.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

impl Server {
    pub fn new(listener: UnixListener, signals: OwnedFd) -> Self {
        Self {
            listener,
            signals,
            conns: HashMap::new(),
            next_token: 1,
            last_limit_log: None,
            notices: Vec::new(),
        }
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Waits up to `timeout` for anything to happen, does the I/O, and returns
    /// complete requests and signals.
    pub fn poll(&mut self, timeout: Duration) -> Vec<Incoming> {
        let now = Instant::now();
        let nearest = self.conns.values().map(|c| c.deadline).min();
        let mut timeout =
            nearest.map_or(timeout, |d| timeout.min(d.saturating_duration_since(now)));
        if self.conns.values().any(Conn::ready) {
            timeout = Duration::ZERO; // a request is already waiting in a buffer
        }
        let tokens: Vec<u64> = self.conns.keys().copied().collect();
        let mut fds = Vec::with_capacity(2 + tokens.len());
        fds.push(pollfd(self.listener.as_raw_fd(), libc::POLLIN));
        fds.push(pollfd(self.signals.as_raw_fd(), libc::POLLIN));
        for t in &tokens {
            let c = &self.conns[t];
            let mut ev = 0;
            if !c.close_after_write && c.inbuf.len() < 4 + MAX_FRAME {
                ev |= libc::POLLIN;
            }
            if !c.outbuf.is_empty() {
                ev |= libc::POLLOUT;
            }
            fds.push(pollfd(c.stream.as_raw_fd(), ev));
        }
        // Round up, so a deadline less than a millisecond away is not a busy loop.
        let ms = libc::c_int::try_from(timeout.as_nanos().div_ceil(1_000_000))
            .unwrap_or(libc::c_int::MAX);
        // SAFETY: fds is a live, initialised array of fds.len() pollfd entries.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        let mut out = Vec::new();
        if n > 0 {
            if fds[1].revents != 0 {
                self.read_signals(&mut out);
            }
            for (i, t) in tokens.iter().enumerate() {
                let re = fds[2 + i].revents;
                if re & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    self.read_conn(*t);
                }
                if re & libc::POLLOUT != 0 {
                    self.flush(*t);
                }
            }
            if fds[0].revents != 0 {
                self.accept_all();
            }
        }
        let ready: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.ready())
            .map(|(t, _)| *t)
            .collect();
        for t in ready {
            self.take_request(t, &mut out);
        }
        self.reap(Instant::now());
        out
    }

    /// Queues a reply on a connection and tries to send it at once.
    pub fn reply(&mut self, conn: u64, resp: &Response) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.outbuf.extend_from_slice(&encode_frame(&resp.encode()));
            c.awaiting_reply = false;
            c.deadline = Instant::now() + READ_TIMEOUT;
        }
        self.flush(conn);
    }

    fn read_signals(&mut self, out: &mut Vec<Incoming>) {
        loop {
            // SAFETY: signalfd_siginfo is plain old data.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: `info` is a live buffer of exactly `size` bytes.
            let n = unsafe { libc::read(self.signals.as_raw_fd(), (&raw mut info).cast(), size) };
            if n != size as isize {
                return;
            }
            out.push(Incoming::Signal(info.ssi_signo as i32));
        }
    }

    fn accept_all(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.limit_notice(&format!("accept failed: {e}"));
                    return;
                }
            };
            let Ok(peer) = peer_cred(&stream) else {
                continue;
            };
            let same_user = self
                .conns
                .values()
                .filter(|c| c.peer.uid == peer.uid)
                .count();
            if self.conns.len() >= MAX_CONNECTIONS || (peer.uid != 0 && same_user >= MAX_PER_USER) {
                let why = format!(
                    "refusing a connection from uid {}: {} open in all (limit {MAX_CONNECTIONS}), {same_user} from that uid (limit {MAX_PER_USER} for non-root)",
                    peer.uid,
                    self.conns.len()
                );
                self.limit_notice(&why);
                continue; // dropping the stream closes it
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let token = self.next_token;
            self.next_token += 1;
            self.conns.insert(
                token,
                Conn {
                    stream,
                    peer,
                    inbuf: Vec::new(),
                    outbuf: Vec::new(),
                    deadline: Instant::now() + READ_TIMEOUT,
                    close_after_write: false,
                    awaiting_reply: false,
                },
            );
        }
    }

    fn limit_notice(&mut self, why: &str) {
        if self
            .last_limit_log
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        self.last_limit_log = Some(Instant::now());
        self.notices.push(
            Event::new(EventName::ConnectionLimit)
                .with_severity(Severity::Warning)
                .field("detail", why),
        );
    }

    /// Reads what the client sent, up to one maximal frame ahead.
    fn read_conn(&mut self, token: u64) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        while c.inbuf.len() < 4 + MAX_FRAME {
            let room = (4 + MAX_FRAME - c.inbuf.len()).min(buf.len());
            match c.stream.read(&mut buf[..room]) {
                Ok(0) => {
                    c.close_after_write = true;
                    break;
                }
                Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    c.close_after_write = true;
                    c.outbuf.clear();
                    c.inbuf.clear();
                    break;
                }
            }
        }
    }

    /// Takes one request off a connection that is ready for it.
    fn take_request(&mut self, token: u64, out: &mut Vec<Incoming>) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        match take_frame(&mut c.inbuf, MAX_FRAME) {
            Ok(Some(body)) => match Request::decode(&body) {
                Ok(req) => {
                    c.awaiting_reply = true;
                    c.deadline = Instant::now() + READ_TIMEOUT;
                    out.push(Incoming::Request {
                        conn: token,
                        req,
                        peer: c.peer,
                    });
                }
                Err(e) => self.reject(token, &e.to_string()),
            },
            Ok(None) => {}
            Err(e) => self.reject(token, &e.to_string()),
        }
    }

    /// Answers a malformed request with an error, logs it, and closes.
    fn reject(&mut self, token: u64, why: &str) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        self.notices.push(
            Event::new(EventName::RequestMalformed)
                .with_severity(Severity::Warning)
                .field("peer_uid", c.peer.uid)
                .field("peer_pid", c.peer.pid)
                .field("error", why),
        );
        let resp = Response::Error {
            code: ErrorCode::Malformed,
            message: why.to_owned(),
        };
        c.inbuf.clear();
        c.outbuf.extend_from_slice(&encode_frame(&resp.encode()));
        c.close_after_write = true;
        self.flush(token);
    }

    fn flush(&mut self, token: u64) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        while !c.outbuf.is_empty() {
            match c.stream.write(&c.outbuf) {
                Ok(0) => break,
                Ok(n) => {
                    c.outbuf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    c.outbuf.clear();
                    c.close_after_write = true;
                    break;
                }
            }
        }
    }

    /// Drops connections that are finished, broken, or past their deadline.
    fn reap(&mut self, now: Instant) {
        self.conns
            .retain(|_, c| !c.done() && (c.deadline > now || c.awaiting_reply));
    }
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
