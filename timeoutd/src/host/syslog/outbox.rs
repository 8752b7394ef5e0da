//! Delivery of syslog lines without waiting for the reader.
//!
//! - The socket is non-blocking. A line that syslogd's queue has no room
//!   for (`EAGAIN`: on Linux a unix datagram socket holds at most
//!   `net.unix.max_dgram_qlen` unread datagrams, 10 by default) waits in
//!   memory, in order, and later lines queue behind it. The event loop
//!   polls the socket for `POLLOUT` while lines wait ([`Outbox::waiting_fd`])
//!   and sends them ([`Outbox::flush`]). So a slow or stuck syslogd delays
//!   the log, never the enforcement.
//! - At most [`MAX_WAITING_BYTES`] wait. A line beyond that is dropped and
//!   counted by the caller.
//! - A socket that is missing or not connected is (re)connected once per
//!   line; a line that cannot be delivered then is dropped, as are the lines
//!   waiting, and counted.
//! - [`Outbox::drain_for`] waits a bounded time for the queue to empty, for
//!   the daemon's last lines before it exits.
//! - A socket can stay full for good: syslogd was restarted on a new socket
//!   while a process still holds the old one, which takes lines nobody reads
//!   (as many as its queue holds) and then none. So while lines have waited
//!   [`PROBE_EVERY`], each flush tries the first of them once on a fresh
//!   connection to the path, at most once per [`PROBE_EVERY`]; if that one
//!   takes it, it replaces the old. To the same syslogd the fresh one is as
//!   full as the old, and nothing changes.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The most bytes of lines that wait for syslogd (about 40,000 lines).
pub(crate) const MAX_WAITING_BYTES: usize = 8 * 1024 * 1024;

/// How long lines wait on a full socket before a fresh connection is tried,
/// and between tries.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(1);

/// What became of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// In syslogd's queue now.
    Sent,
    /// Waiting in memory behind others, or for room in syslogd's queue.
    Waiting,
    /// Lost: no socket, or no room left to wait.
    Dropped,
}

/// The socket and the lines waiting for it.
#[derive(Debug)]
pub(crate) struct Outbox {
    path: PathBuf,
    sock: Option<UnixDatagram>,
    waiting: VecDeque<Vec<u8>>,
    waiting_bytes: usize,
    limit: usize,
    probe_every: Duration,
    /// While lines wait: when a fresh connection may next be tried.
    probe_at: Option<Instant>,
}

/// How one send went.
enum Sent {
    Yes,
    Full,
    Broken,
}

impl Outbox {
    /// An outbox for the datagram socket at `path`; tries to connect now.
    pub(crate) fn new(path: &Path) -> Outbox {
        Outbox::with_limit(path, MAX_WAITING_BYTES)
    }

    pub(crate) fn with_limit(path: &Path, limit: usize) -> Outbox {
        Outbox {
            path: path.to_path_buf(),
            sock: connect(path).ok(),
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            limit,
            probe_every: PROBE_EVERY,
            probe_at: None,
        }
    }

    /// Sends `line` now, or queues it behind the lines already waiting.
    /// Returns how many lines were lost with it: the waiting ones too if the
    /// socket broke and could not be reconnected.
    pub(crate) fn push(&mut self, line: Vec<u8>) -> (Delivery, u64) {
        let lost = self.flush();
        if self.waiting.is_empty() {
            match self.send_reconnecting(&line) {
                Sent::Yes => return (Delivery::Sent, lost),
                Sent::Broken => return (Delivery::Dropped, lost),
                Sent::Full => {}
            }
        }
        (self.queue(line), lost)
    }

    /// Queues `line` behind the lines already waiting without trying to
    /// send it: [`Outbox::flush`] sends it. Dropped only past the limit.
    pub(crate) fn queue(&mut self, line: Vec<u8>) -> Delivery {
        if self.waiting_bytes + line.len() > self.limit {
            return Delivery::Dropped;
        }
        self.waiting_bytes += line.len();
        self.waiting.push_back(line);
        if self.probe_at.is_none() {
            self.probe_at = Some(Instant::now() + self.probe_every);
        }
        Delivery::Waiting
    }

    /// Sends what waits until syslogd's queue is full again. Returns the
    /// lines lost because the socket broke and could not be reconnected.
    pub(crate) fn flush(&mut self) -> u64 {
        while let Some(line) = self.waiting.pop_front() {
            match self.send_reconnecting(&line) {
                Sent::Yes => self.waiting_bytes -= line.len(),
                Sent::Full if self.sent_on_a_fresh_socket(&line) => {
                    self.waiting_bytes -= line.len();
                }
                Sent::Full => {
                    self.waiting.push_front(line);
                    return 0;
                }
                Sent::Broken => return 1 + self.discard_waiting(),
            }
        }
        self.probe_at = None;
        if self.waiting.capacity() > 1024 {
            self.waiting.shrink_to_fit();
        }
        0
    }

    /// The socket to poll for `POLLOUT` while lines wait.
    pub(crate) fn waiting_fd(&self) -> Option<RawFd> {
        let sock = self.sock.as_ref()?;
        (!self.waiting.is_empty()).then(|| sock.as_raw_fd())
    }

    /// Lines waiting.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Tries a fresh connection after lines waited `every`, and as often.
    #[cfg(test)]
    fn probing_every(mut self, every: Duration) -> Outbox {
        self.probe_every = every;
        self
    }

    /// Waits up to `limit` for the waiting lines to be sent. Returns the
    /// lines still waiting then (they are given up) or lost.
    pub(crate) fn drain_for(&mut self, limit: Duration) -> u64 {
        let end = Instant::now() + limit;
        let mut lost = self.flush();
        while let Some(fd) = self.waiting_fd() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            wait_writable(fd, left);
            lost += self.flush();
        }
        lost + self.discard_waiting()
    }

    fn discard_waiting(&mut self) -> u64 {
        let n = self.waiting.len() as u64;
        self.waiting.clear();
        self.waiting_bytes = 0;
        self.probe_at = None;
        n
    }

    /// When a try is due (see the module's notes): sends `line` on a fresh
    /// connection to the path, which replaces the old socket if it took it.
    fn sent_on_a_fresh_socket(&mut self, line: &[u8]) -> bool {
        let now = Instant::now();
        if self.probe_at.is_some_and(|at| now < at) {
            return false;
        }
        self.probe_at = Some(now + self.probe_every);
        let Ok(sock) = connect(&self.path) else {
            return false;
        };
        let taken = matches!(send(&sock, line), Sent::Yes);
        if taken {
            self.sock = Some(sock);
        }
        taken
    }

    /// One send; on an error other than a full queue, one reconnect and one
    /// more try.
    fn send_reconnecting(&mut self, line: &[u8]) -> Sent {
        if let Some(sock) = &self.sock {
            match send(sock, line) {
                Sent::Broken => {}
                other => return other,
            }
        }
        self.sock = connect(&self.path).ok();
        match &self.sock {
            Some(sock) => send(sock, line),
            None => Sent::Broken,
        }
    }
}

fn send(sock: &UnixDatagram, line: &[u8]) -> Sent {
    loop {
        match sock.send(line) {
            Ok(_) => return Sent::Yes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Sent::Full,
            Err(_) => return Sent::Broken,
        }
    }
}

fn connect(path: &Path) -> io::Result<UnixDatagram> {
    let sock = UnixDatagram::unbound()?;
    sock.connect(path)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Waits until `fd` is writable or `limit` has passed.
fn wait_writable(fd: RawFd, limit: Duration) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    let ms = libc::c_int::try_from(limit.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `p` is one live pollfd and the count passed is 1; poll only
    // writes its `revents`.
    unsafe { libc::poll(&raw mut p, 1, ms) };
}

#[cfg(test)]
mod tests {
    use super::super::TempDir;
    use super::*;

    fn read_all(srv: &UnixDatagram) -> Vec<String> {
        srv.set_nonblocking(true).expect("nonblocking");
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        while let Ok(n) = srv.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    }

    /// Pushes numbered lines until one has to wait; returns how many.
    fn fill(out: &mut Outbox) -> usize {
        let mut n = 0;
        while out.push(format!("line {n}").into_bytes()).0 == Delivery::Sent {
            n += 1;
            assert!(n < 100_000, "the socket's queue never filled");
        }
        n + 1
    }

    #[test]
    fn a_full_queue_keeps_the_lines_in_order_until_syslogd_reads() {
        in_order_until_syslogd_reads(Outbox::new);
    }

    #[test]
    fn fresh_connections_to_the_same_full_syslogd_change_nothing() {
        in_order_until_syslogd_reads(|p| Outbox::new(p).probing_every(Duration::ZERO));
    }

    #[test]
    fn a_socket_left_full_by_a_restarted_syslogd_gives_way_to_the_new_one() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let old = UnixDatagram::bind(&path).expect("bind");
        let mut out = Outbox::new(&path).probing_every(Duration::ZERO);
        // syslogd restarts on a new socket; a process still holds the old
        // one, and nobody reads it.
        std::fs::remove_file(&path).expect("rm");
        let new = UnixDatagram::bind(&path).expect("bind again");
        let waits = fill(&mut out) - 1;
        assert_eq!(out.flush(), 0);
        assert_eq!(out.waiting(), 0, "the waiting line went to the new socket");
        assert_eq!(out.push(b"after".to_vec()), (Delivery::Sent, 0));
        assert_eq!(read_all(&new), [format!("line {waits}"), "after".into()]);
        assert_eq!(read_all(&old).len(), waits, "the lines the old one took");
    }

    #[test]
    fn without_a_fresh_socket_the_lines_wait_and_the_try_waits_its_interval() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let old = UnixDatagram::bind(&path).expect("bind");
        let mut out = Outbox::new(&path).probing_every(Duration::from_secs(3600));
        std::fs::remove_file(&path).expect("rm");
        let new = UnixDatagram::bind(&path).expect("bind again");
        fill(&mut out);
        // The lines have waited less than the interval: no fresh connection.
        assert_eq!(out.flush(), 0);
        assert_eq!(out.waiting(), 1);
        assert!(read_all(&new).is_empty());
        drop(old);
    }

    fn in_order_until_syslogd_reads(outbox: impl Fn(&Path) -> Outbox) {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let srv = UnixDatagram::bind(&path).expect("bind");
        let mut out = outbox(&path);
        let mut n = fill(&mut out);
        for _ in 0..5 {
            assert_eq!(
                out.push(format!("line {n}").into_bytes()),
                (Delivery::Waiting, 0)
            );
            n += 1;
        }
        assert_eq!(out.waiting(), 6);
        assert!(out.waiting_fd().is_some(), "polled while lines wait");
        let mut got = Vec::new();
        while out.waiting() > 0 {
            got.extend(read_all(&srv));
            assert_eq!(out.flush(), 0);
        }
        got.extend(read_all(&srv));
        let want: Vec<String> = (0..n).map(|i| format!("line {i}")).collect();
        assert_eq!(got, want);
        assert!(out.waiting_fd().is_none());
    }

    #[test]
    fn past_the_limit_a_line_is_dropped_and_the_waiting_ones_kept() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let srv = UnixDatagram::bind(&path).expect("bind");
        let mut out = Outbox::with_limit(&path, 20);
        let sent = fill(&mut out) - 1;
        assert_eq!(out.push(vec![b'x'; 10]), (Delivery::Waiting, 0));
        assert_eq!(out.push(vec![b'y'; 10]), (Delivery::Dropped, 0));
        let got = read_all(&srv);
        assert_eq!(got.len(), sent);
        out.flush();
        let got = read_all(&srv);
        assert_eq!(got.len(), 2, "the line that filled the queue, then x");
        assert_eq!(got[1], "x".repeat(10));
    }

    #[test]
    fn a_queued_line_waits_for_the_flush_behind_none() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let srv = UnixDatagram::bind(&path).expect("bind");
        let mut out = Outbox::new(&path);
        assert_eq!(out.queue(b"one".to_vec()), Delivery::Waiting);
        assert_eq!(out.queue(b"two".to_vec()), Delivery::Waiting);
        assert!(read_all(&srv).is_empty(), "nothing sent before the flush");
        assert!(out.waiting_fd().is_some());
        assert_eq!(out.flush(), 0);
        assert_eq!(read_all(&srv), vec!["one", "two"]);
        assert!(out.waiting_fd().is_none());
    }

    #[test]
    fn lines_waiting_when_syslogd_goes_away_are_counted_lost() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let srv = UnixDatagram::bind(&path).expect("bind");
        let mut out = Outbox::new(&path);
        fill(&mut out);
        out.push(b"two".to_vec());
        // Shut down as well: a child forked by another test could hold the
        // socket open until its exec (see the syslog module's tests).
        srv.shutdown(std::net::Shutdown::Read).expect("shutdown");
        drop(srv);
        std::fs::remove_file(&path).expect("rm");
        assert_eq!(out.flush(), 2);
        assert_eq!(out.push(b"three".to_vec()), (Delivery::Dropped, 0));
        assert_eq!(out.waiting(), 0);

        let srv = UnixDatagram::bind(&path).expect("bind again");
        assert_eq!(out.push(b"four".to_vec()), (Delivery::Sent, 0));
        assert_eq!(read_all(&srv), ["four"]);
    }

    #[test]
    fn drain_waits_for_a_reader_and_gives_up_at_its_limit() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let srv = UnixDatagram::bind(&path).expect("bind");
        let mut out = Outbox::new(&path);
        let n = fill(&mut out);
        out.push(b"last".to_vec());
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut got = Vec::new();
            while got.last().map(String::as_str) != Some("last") {
                let n = srv.recv(&mut buf).expect("recv");
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            (got.len(), srv)
        });
        assert_eq!(out.drain_for(Duration::from_secs(30)), 0);
        let (count, srv) = reader.join().expect("reader");
        assert_eq!(count, n + 1);

        // Nobody reads: the drain ends at its limit and counts the rest.
        fill(&mut out);
        out.push(b"unread".to_vec());
        let t = Instant::now();
        assert_eq!(out.drain_for(Duration::from_millis(50)), 2);
        // Bounded loosely: it must give up, not take its 50 ms exactly.
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        drop(srv);
    }
}
