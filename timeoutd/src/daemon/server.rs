//! The Unix socket's syscalls: bind, accept, SO_PEERCRED, read, write and
//! the poll(2) registration, in the daemon's only thread.
//!
//! Every connection is non-blocking with its own buffers and deadline, so a
//! client that stalls mid-frame, or a thousand idle ones, cost an fd each and
//! never hold up a registration. What each connection may do next is decided
//! by its state machine in [`super::conn`]; what each caller may ask is
//! decided by the caller of [`Server::poll`].

use std::collections::HashMap;
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use session_timeout_proto::{Request, Response};

use crate::core::audit::event::Event;
use crate::core::audit::ratelimit::WindowLimiter;
use crate::core::time::clock::Clock;
use crate::daemon::conn::{self, Conn, Frame, LimitLog, NEW_PER_USER_PER_SEC};
use crate::engine::Peer;
use crate::host::clock::SystemClock;

/// Bytes taken from a client per read.
const READ_BUF: usize = 16 * 1024;

/// What one poll produced.
pub(crate) enum Incoming {
    Request { conn: u64, req: Request, peer: Peer },
    Signal(i32),
}

/// An accepted connection: its socket and its state.
struct Client {
    stream: UnixStream,
    conn: Conn,
}

pub(crate) struct Server {
    listener: UnixListener,
    signals: OwnedFd,
    clients: HashMap<u64, Client>,
    /// Where reads land, kept between reads (zeroing 16 KiB per read cost
    /// as many instructions as the rest of a login's reads).
    read_buf: Box<[u8]>,
    next_token: u64,
    limit_log: LimitLog,
    /// New connections per non-root uid in the current second.
    new_per_uid: WindowLimiter<u32>,
    /// Events about clients (malformed requests, limits) for the caller to log.
    pub(crate) notices: Vec<Event>,
    /// The fds of `poll_with`'s `extra` that its last poll found readable.
    pub(crate) readable_extra: Vec<RawFd>,
}

/// Creates the socket: parent directory 0755, socket 0666 (every request is
/// authorised by SO_PEERCRED: admin verbs need root or the admin group, and
/// `status` answers only about the caller), a stale socket from a crash
/// replaced, a live one (another daemon) refused.
pub(crate) fn bind(path: &Path) -> io::Result<UnixListener> {
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
pub(crate) fn peer_cred(stream: &UnixStream) -> io::Result<Peer> {
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

impl Server {
    pub(crate) fn new(listener: UnixListener, signals: OwnedFd) -> Self {
        Self {
            listener,
            signals,
            clients: HashMap::new(),
            read_buf: vec![0u8; READ_BUF].into_boxed_slice(),
            next_token: 1,
            limit_log: LimitLog::default(),
            new_per_uid: WindowLimiter::new(Duration::from_secs(1), NEW_PER_USER_PER_SEC),
            notices: Vec::new(),
            readable_extra: Vec::new(),
        }
    }

    /// Waits up to `timeout` for anything to happen, does the I/O, and returns
    /// complete requests and signals.
    #[cfg(test)]
    pub(crate) fn poll(&mut self, timeout: Duration) -> Vec<Incoming> {
        self.poll_with(timeout, &[], None)
    }

    /// [`Server::poll`], also woken when one of `extra` becomes readable
    /// (the checks' fds and the exit watches; the caller looks at them
    /// itself, told which were readable by `readable_extra`).
    pub(crate) fn poll_with(
        &mut self,
        timeout: Duration,
        extra: &[RawFd],
        writable: Option<RawFd>,
    ) -> Vec<Incoming> {
        let timeout = conn::poll_timeout(
            self.clients.values().map(|c| &c.conn),
            timeout,
            Instant::now(),
        );
        let tokens: Vec<u64> = self.clients.keys().copied().collect();
        let mut fds = self.registration(&tokens);
        let first_extra = fds.len();
        fds.extend(extra.iter().map(|fd| pollfd(*fd, libc::POLLIN)));
        fds.extend(writable.map(|fd| pollfd(fd, libc::POLLOUT)));
        let mut out = Vec::new();
        self.readable_extra.clear();
        if wait(&mut fds, timeout) {
            self.readable_extra.extend(
                fds[first_extra..first_extra + extra.len()]
                    .iter()
                    .filter(|p| p.revents != 0)
                    .map(|p| p.fd),
            );
            if fds[1].revents != 0 {
                self.read_signals(&mut out);
            }
            for (t, fd) in tokens.iter().zip(&fds[2..]) {
                if fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    self.read_from(*t);
                }
                if fd.revents & libc::POLLOUT != 0 {
                    self.flush(*t);
                }
            }
            if fds[0].revents != 0 {
                self.accept_all();
            }
        }
        self.take_requests(&mut out);
        let now = Instant::now();
        self.clients.retain(|_, c| !c.conn.finished(now));
        out
    }

    /// Queues a reply on a connection and tries to send it at once.
    pub(crate) fn reply(&mut self, conn: u64, resp: &Response) {
        if let Some(c) = self.clients.get_mut(&conn) {
            c.conn.reply(resp, Instant::now());
        }
        self.flush(conn);
    }

    /// The pollfds: the listener, the signalfd, then one per token, asking
    /// for what each connection's state wants.
    fn registration(&self, tokens: &[u64]) -> Vec<libc::pollfd> {
        let mut fds = Vec::with_capacity(2 + tokens.len());
        fds.push(pollfd(self.listener.as_raw_fd(), libc::POLLIN));
        fds.push(pollfd(self.signals.as_raw_fd(), libc::POLLIN));
        for t in tokens {
            let c = &self.clients[t];
            let mut ev = 0;
            if c.conn.wants_input() {
                ev |= libc::POLLIN;
            }
            if c.conn.wants_output() {
                ev |= libc::POLLOUT;
            }
            fds.push(pollfd(c.stream.as_raw_fd(), ev));
        }
        fds
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
        // The refusals themselves are logged as they happen; only the table
        // of ended windows needs clearing.
        let _ = self.new_per_uid.drain(SystemClock.now());
        loop {
            let stream = match accept_nonblocking(&self.listener) {
                Ok(s) => s,
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
                .clients
                .values()
                .filter(|c| c.conn.peer().uid == peer.uid)
                .count();
            if peer.uid != 0 && !self.new_per_uid.admit(SystemClock.now(), &peer.uid) {
                let why = format!(
                    "refusing a connection from uid {}: more than {NEW_PER_USER_PER_SEC} new connections in a second",
                    peer.uid
                );
                self.notices.push(conn::refused_notice(peer.uid, &why));
                continue; // dropping the stream closes it
            }
            if let Err(refused) = conn::admit(peer.uid, self.clients.len(), same_user) {
                self.notices
                    .push(conn::refused_notice(peer.uid, &refused.to_string()));
                continue;
            }
            let token = self.next_token;
            self.next_token += 1;
            let conn = Conn::new(peer, Instant::now());
            self.clients.insert(token, Client { stream, conn });
            // A client writes its request as soon as it is connected: it is
            // usually there already, and is then taken in this turn.
            self.read_from(token);
        }
    }

    fn limit_notice(&mut self, why: &str) {
        if let Some(ev) = self.limit_log.notice(why, Instant::now()) {
            self.notices.push(ev);
        }
    }

    /// Reads what the client sent, up to one maximal frame ahead.
    fn read_from(&mut self, token: u64) {
        let Some(Client { stream, conn }) = self.clients.get_mut(&token) else {
            return;
        };
        let buf = &mut self.read_buf;
        while conn.read_room() > 0 {
            let room = conn.read_room().min(buf.len());
            match stream.read(&mut buf[..room]) {
                Ok(0) => {
                    conn.end_of_input();
                    break;
                }
                Ok(n) => {
                    conn.received(&buf[..n]);
                    // Short: nothing more is there now, and poll says
                    // when there is (one read less per request).
                    if n < room {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    conn.read_failed();
                    break;
                }
            }
        }
    }

    /// Takes one request off each connection that is ready for it; a
    /// malformed one is answered, logged and closed.
    fn take_requests(&mut self, out: &mut Vec<Incoming>) {
        let now = Instant::now();
        let mut rejected = Vec::new();
        for (token, c) in &mut self.clients {
            match c.conn.take(now) {
                Some(Frame::Request(req)) => out.push(Incoming::Request {
                    conn: *token,
                    req,
                    peer: c.conn.peer(),
                }),
                Some(Frame::Malformed(why)) => {
                    self.notices
                        .push(conn::malformed_notice(c.conn.peer(), &why));
                    rejected.push(*token);
                }
                None => {}
            }
        }
        for token in rejected {
            self.flush(token);
        }
    }

    fn flush(&mut self, token: u64) {
        let Some(Client { stream, conn }) = self.clients.get_mut(&token) else {
            return;
        };
        while conn.wants_output() {
            match stream.write(conn.unsent()) {
                Ok(0) => break,
                Ok(n) => conn.sent(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    conn.write_failed();
                    break;
                }
            }
        }
    }
}

/// accept4(2) of one connection, non-blocking and close-on-exec from the
/// start (std's `accept` needs one more call to make it non-blocking).
fn accept_nonblocking(listener: &UnixListener) -> io::Result<UnixStream> {
    loop {
        // SAFETY: accept4 on the listener's open fd; null address pointers
        // ask for no peer address, so no memory of ours is written.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: accept4 returned a new connected socket nothing else owns.
            return Ok(unsafe { UnixStream::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// poll(2) on `fds` for up to `timeout`; whether anything happened.
fn wait(fds: &mut [libc::pollfd], timeout: Duration) -> bool {
    // Round up, so a deadline less than a millisecond away is not a busy loop.
    let ms =
        libc::c_int::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX);
    // SAFETY: fds is a live, initialised array of fds.len() pollfd entries.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    n > 0
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
