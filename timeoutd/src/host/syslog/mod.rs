//! Minimal syslog client: RFC 3164 lines (`line`) over a unix datagram
//! socket (`outbox`).
//!
//! - A send never blocks: a line syslogd has no room for yet waits in the
//!   outbox, and the event loop sends it when the socket is writable
//!   ([`Syslog::waiting_fd`], [`Syslog::flush`]). Lines that cannot be
//!   delivered (no socket, or the outbox full) are dropped and counted, and
//!   the count is logged (`log_lines_dropped`) once a line gets through.
//! - [`Syslog::with_stderr`] mirrors every line to stderr (`--foreground`).
//! - While a [`Held`] from [`Syslog::hold`] lives (the event loop holds one
//!   while it answers a request), lines and their stderr copies wait, and
//!   are sent when it is dropped: after the reply, off the caller's path.
//!   A long request may send what waits before that with [`Syslog::flush`]
//!   (a revocation does, so early ends are not logged only after all of it).
//! - Lines that a caller without rights can cause at will (see
//!   [`Event::caused_by`]) pass [`CALLER_LINES_PER_WINDOW`] times per uid and
//!   event per [`CALLER_WINDOW`]; the rest are counted and reported by
//!   [`Syslog::report_suppressed`] as one `log_suppressed` line each.
//! - Dropping a `Syslog` waits up to [`DRAIN_AT_EXIT`] for the lines still
//!   waiting.

mod line;
mod outbox;

use std::io::{self, Write as _};
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::audit::event::{Event, EventName, Severity};
use crate::core::audit::ratelimit::WindowLimiter;
use crate::core::time::clock::{Clock, Timestamp};
use crate::host::clock::SystemClock;
use line::{format_line, one_line, timestamp};
use outbox::{Delivery, Outbox};

/// The window of the per-caller limit on lines.
pub(crate) const CALLER_WINDOW: Duration = Duration::from_secs(10);
/// Lines a caller without rights may cause per event name and window.
pub(crate) const CALLER_LINES_PER_WINDOW: u32 = 5;

/// Held stderr copies past this many bytes are written at once.
const MAX_HELD_COPIES: usize = 64 * 1024;

/// How long dropping a [`Syslog`] waits for the lines still waiting.
pub(crate) const DRAIN_AT_EXIT: Duration = Duration::from_secs(2);

/// A syslog connection. Cheap to share: every method takes `&self`.
#[derive(Debug)]
pub(crate) struct Syslog {
    outbox: Mutex<Outbox>,
    /// The pid in every line. A `Syslog` is made after the daemon detaches
    /// and it never forks without exec, so this stays true.
    pid: u32,
    stderr: bool,
    /// Whether a [`Held`] lives: lines are queued, not sent.
    held: AtomicBool,
    /// The stderr copies made while held, written in one go at the release.
    held_copies: Mutex<String>,
    dropped: AtomicU64,
    /// Dropped lines not yet reported with `log_lines_dropped`.
    unreported: AtomicU64,
    callers: Mutex<WindowLimiter<(u32, EventName)>>,
}

impl Syslog {
    /// A client for the datagram socket at `path` (normally `/dev/log`).
    /// Tries to connect now; if that fails, each send tries again.
    pub(crate) fn new(path: &Path) -> Syslog {
        Syslog {
            outbox: Mutex::new(Outbox::new(path)),
            pid: std::process::id(),
            stderr: false,
            held: AtomicBool::new(false),
            held_copies: Mutex::new(String::new()),
            dropped: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
            callers: Mutex::new(WindowLimiter::new(CALLER_WINDOW, CALLER_LINES_PER_WINDOW)),
        }
    }

    /// Also print every line on stderr (for `--foreground`).
    #[must_use]
    pub(crate) fn with_stderr(mut self, on: bool) -> Syslog {
        self.stderr = on;
        self
    }

    /// Logs an event at its own severity, unless it is one more line that a
    /// caller without rights caused in this window (root is never limited).
    pub(crate) fn log(&self, ev: &Event) {
        if let Some(key) = ev.rate_key().filter(|(uid, _)| *uid != 0) {
            let now = SystemClock.now();
            if !self.callers().admit(now, &key) {
                return;
            }
        }
        self.send(ev.severity(), &ev.to_string());
    }

    /// Logs one `log_suppressed` line for each caller and event whose window
    /// ended with lines held back.
    pub(crate) fn report_suppressed(&self) {
        let held = self.callers().drain(SystemClock.now());
        for r in held {
            let ev = Event::new(EventName::LogSuppressed).with_severity(Severity::Warning);
            let ev = match r.key {
                Some((uid, name)) => ev.field("suppressed", name).field("uid", uid),
                None => ev.field("suppressed", "any").field("uid", "many"),
            };
            let ev = ev
                .field("count", r.count)
                .field("window", format!("{}s", CALLER_WINDOW.as_secs()));
            self.send(ev.severity(), &ev.to_string());
        }
    }

    /// When [`Syslog::report_suppressed`] next has something to say.
    pub(crate) fn next_report(&self) -> Option<Timestamp> {
        self.callers().next_report()
    }

    fn callers(&self) -> std::sync::MutexGuard<'_, WindowLimiter<(u32, EventName)>> {
        self.callers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one line, or leaves it waiting for room in syslogd's queue.
    /// Never blocks, never fails: an undeliverable line is counted in
    /// `dropped`.
    pub(crate) fn send(&self, severity: Severity, msg: &str) {
        let body = one_line(msg);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let stamp = timestamp(now);
        let line = format_line(severity, &stamp, self.pid, &body);
        let held = self.held.load(Ordering::Relaxed);
        if self.stderr {
            self.copy_to_stderr(held, &format!("{stamp} {severity}: {body}\n"));
        }
        let mut outbox = self.outbox();
        let (delivery, lost) = add(&mut outbox, line.into_bytes(), held);
        let lost = lost + u64::from(delivery == Delivery::Dropped);
        self.count_lost(lost);
        if delivery != Delivery::Dropped {
            self.report_dropped(&mut outbox, &stamp, held);
        }
    }

    /// One write(2) per line, or per held batch (stderr is unbuffered:
    /// `writeln!` would make one per piece). Errors are ignored: a closed
    /// stderr must not stop the daemon.
    fn copy_to_stderr(&self, held: bool, copy: &str) {
        if !held {
            let _ = io::stderr().lock().write_all(copy.as_bytes());
            return;
        }
        let mut copies = self.copies();
        copies.push_str(copy);
        if copies.len() > MAX_HELD_COPIES {
            write_out(&mut copies);
        }
    }

    fn copies(&self) -> std::sync::MutexGuard<'_, String> {
        self.held_copies.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds lines back until the returned [`Held`] is dropped.
    pub(crate) fn hold(&self) -> Held<'_> {
        self.held.store(true, Ordering::Relaxed);
        Held(self)
    }

    fn release(&self) {
        self.held.store(false, Ordering::Relaxed);
        write_out(&mut self.copies());
        self.flush();
    }

    /// Sends the lines that wait, as far as syslogd has room; the event loop
    /// calls this after every poll.
    pub(crate) fn flush(&self) {
        let lost = self.outbox().flush();
        self.count_lost(lost);
    }

    /// The socket to poll for `POLLOUT` while lines wait.
    pub(crate) fn waiting_fd(&self) -> Option<RawFd> {
        self.outbox().waiting_fd()
    }

    fn count_lost(&self, lost: u64) {
        if lost > 0 {
            self.dropped.fetch_add(lost, Ordering::Relaxed);
            self.unreported.fetch_add(lost, Ordering::Relaxed);
        }
    }

    /// Lines that could not be delivered since the daemon started.
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Once a line gets through again, says how many were lost before
    /// (`log_lines_dropped count=N`), so a gap in the log is never silent.
    fn report_dropped(&self, outbox: &mut Outbox, stamp: &str, held: bool) {
        let lost = self.unreported.swap(0, Ordering::Relaxed);
        if lost == 0 {
            return;
        }
        let ev = Event::new(EventName::LogLinesDropped)
            .with_severity(Severity::Warning)
            .field("count", lost)
            .field("total", self.dropped_total());
        let line = format_line(ev.severity(), stamp, self.pid, &one_line(&ev.to_string()));
        let (delivery, more) = add(outbox, line.into_bytes(), held);
        if delivery == Delivery::Dropped {
            // Said with the next line that gets through.
            self.unreported.fetch_add(lost, Ordering::Relaxed);
        }
        self.count_lost(more);
    }

    /// Waits up to [`DRAIN_AT_EXIT`] for the lines still waiting; for the
    /// daemon's last lines before it exits.
    pub(crate) fn drain(&self) {
        let lost = self.outbox().drain_for(DRAIN_AT_EXIT);
        self.count_lost(lost);
    }
}

/// Queues `line` while held; else sends it, or queues it if it must wait.
fn add(outbox: &mut Outbox, line: Vec<u8>, held: bool) -> (Delivery, u64) {
    if held {
        (outbox.queue(line), 0)
    } else {
        outbox.push(line)
    }
}

/// Writes the held stderr copies in one write(2) and forgets them.
fn write_out(copies: &mut String) {
    if !copies.is_empty() {
        let _ = io::stderr().lock().write_all(copies.as_bytes());
        copies.clear();
    }
}

/// Lines wait while this lives; dropping it sends them (see [`Syslog::hold`]).
#[must_use = "lines are sent when the Held is dropped"]
pub(crate) struct Held<'a>(&'a Syslog);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        self.drain();
    }
}

/// A directory for a test's sockets, removed when dropped.
#[cfg(test)]
struct TempDir(std::path::PathBuf);

#[cfg(test)]
impl TempDir {
    fn new() -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "timeoutd-syslog-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::audit::event::EventName;
    use line::MAX_MESSAGE;
    use std::os::unix::net::UnixDatagram;

    impl Syslog {
        /// How many lines could not be delivered to the socket so far.
        fn dropped(&self) -> u64 {
            self.dropped_total()
        }
    }

    fn server(path: &Path) -> UnixDatagram {
        let s = UnixDatagram::bind(path).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s
    }

    fn recv(s: &UnixDatagram) -> String {
        let mut buf = vec![0u8; 65536];
        let n = s.recv(&mut buf).expect("recv");
        String::from_utf8(buf[..n].to_vec()).expect("utf8")
    }

    #[test]
    fn held_lines_are_sent_in_order_when_the_hold_ends() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let srv = server(&path);
        srv.set_nonblocking(true).expect("nonblocking");
        let log = Syslog::new(&path);
        let held = log.hold();
        log.send(Severity::Info, "first");
        log.send(Severity::Info, "second");
        assert!(srv.recv(&mut [0u8; 64]).is_err(), "nothing sent while held");
        assert!(
            log.waiting_fd().is_some(),
            "the loop polls for room meanwhile"
        );
        drop(held);
        srv.set_nonblocking(false).expect("blocking");
        assert!(recv(&srv).ends_with(": first"));
        assert!(recv(&srv).ends_with(": second"));
        log.send(Severity::Info, "third");
        assert!(recv(&srv).ends_with(": third"), "sent at once again");
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn sends_to_socket() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let srv = server(&path);
        let log = Syslog::new(&path);
        log.send(Severity::Notice, "hello world");
        let got = recv(&srv);
        let pid = std::process::id();
        assert!(got.starts_with("<85>"), "{got}");
        assert!(
            got.ends_with(&format!(" timeoutd[{pid}]: hello world")),
            "{got}"
        );
        log.log(
            &Event::new(EventName::SessionKilled)
                .field("user", "a b")
                .with_severity(Severity::Warning),
        );
        let got = recv(&srv);
        assert!(got.starts_with("<84>"), "{got}");
        assert!(
            got.ends_with(": event=session_killed user=\"a b\""),
            "{got}"
        );
        let big = "x".repeat(20_000);
        log.send(Severity::Info, &big);
        let got = recv(&srv);
        assert!(got.len() <= MAX_MESSAGE + 64, "{}", got.len());
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn connects_late_and_reconnects_after_restart() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let log = Syslog::new(&path).with_stderr(false);
        log.send(Severity::Info, "nobody listens");
        assert_eq!(log.dropped(), 1);

        let srv = server(&path);
        log.send(Severity::Info, "first");
        assert!(recv(&srv).ends_with(": first"));
        // The lost line is accounted for as soon as delivery works again.
        let report = recv(&srv);
        assert!(
            report.ends_with(": event=log_lines_dropped count=1 total=1"),
            "{report}"
        );
        assert!(report.starts_with("<84>"), "warning severity: {report}");

        // syslogd restarts: its socket stops taking lines and the file is
        // replaced. Shut down, not only dropped: a child another test forks
        // holds a copy of every fd until its exec (as `copy` does here), and
        // would keep the old socket taking lines that nobody reads.
        let copy = srv.try_clone().expect("dup");
        srv.shutdown(std::net::Shutdown::Read).expect("shutdown");
        drop(srv);
        std::fs::remove_file(&path).expect("rm");
        let srv = server(&path);
        log.send(Severity::Info, "second");
        assert!(recv(&srv).ends_with(": second"));
        assert_eq!(log.dropped(), 1);
        drop(copy);
    }

    #[test]
    fn lines_a_stuck_syslogd_has_no_room_for_wait_and_arrive_in_order() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let srv = server(&path); // does not read yet
        let log = Syslog::new(&path);
        for i in 0..1000 {
            log.send(Severity::Info, &format!("line {i}"));
        }
        assert!(log.waiting_fd().is_some(), "lines wait for room");
        assert_eq!(log.dropped(), 0);
        let mut got = Vec::new();
        while got.len() < 1000 {
            log.flush();
            got.push(recv(&srv));
        }
        for (i, l) in got.iter().enumerate() {
            assert!(l.ends_with(&format!(": line {i}")), "{i}: {l}");
        }
        assert!(log.waiting_fd().is_none());
    }

    #[test]
    fn dropping_the_client_sends_what_waits() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let srv = server(&path);
        let log = Syslog::new(&path);
        for i in 0..100 {
            log.send(Severity::Info, &format!("line {i}"));
        }
        assert!(log.waiting_fd().is_some());
        let reader = std::thread::spawn(move || (0..100).map(|_| recv(&srv)).collect::<Vec<_>>());
        drop(log);
        let got = reader.join().expect("reader");
        assert!(got[99].ends_with(": line 99"), "{:?}", got.last());
    }

    #[test]
    fn lines_a_caller_without_rights_causes_are_limited_per_uid_and_session_events_never() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let srv = server(&path);
        srv.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        // Read while the lines are sent: the socket's queue is short.
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = srv.recv(&mut buf) {
                lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            lines
        });
        let log = Syslog::new(&path);
        let junk = |uid| {
            Event::new(EventName::RequestMalformed)
                .caused_by(uid)
                .field("peer_uid", uid)
        };
        for _ in 0..50 {
            log.log(&junk(1000));
            log.log(&junk(0));
            log.log(&Event::new(EventName::SessionExpired).field("user", "alice"));
        }
        log.log(&junk(1001));
        assert!(
            log.next_report().is_some(),
            "the held-back lines will be reported"
        );
        assert_eq!(log.dropped(), 0);
        drop(log); // sends what waits
        let lines = reader.join().unwrap();
        let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(count("peer_uid=1000"), CALLER_LINES_PER_WINDOW as usize);
        assert_eq!(
            count("peer_uid=1001"),
            1,
            "another uid has its own allowance"
        );
        assert_eq!(count("peer_uid=0"), 50, "root is never limited");
        assert_eq!(
            count("event=session_expired"),
            50,
            "session events are never limited"
        );
    }
}
