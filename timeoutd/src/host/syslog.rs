//! Minimal syslog client: RFC 3164 lines over a unix datagram socket.
//!
//! - Facility authpriv (10), ident `timeoutd`:
//!   `<PRI>Mmm dd hh:mm:ss timeoutd[PID]: MESSAGE`, PRI = 10*8 + severity.
//! - The timestamp is local time (`localtime_r`), UTC if that fails.
//! - [`Syslog::new`] never fails. A socket that is missing or not connected is
//!   (re)connected on the next send.
//! - A send never blocks for long: the socket has a 25 ms send timeout. A
//!   syslogd that does not read (queue full, send timed out) costs one timeout
//!   and the line is dropped and counted. Any other error (syslogd restarted,
//!   socket gone) reconnects once and retries once, then drops and counts.
//! - Control characters in a message are escaped (`\xNN`, `\u{..}`), so a
//!   message is always a single line. Messages are cut at 8 KiB.
//! - [`Syslog::with_stderr`] mirrors every line to stderr (`--foreground`).
//! - Lines that a caller without rights can cause at will (see
//!   [`Event::caused_by`]) pass [`CALLER_LINES_PER_WINDOW`] times per uid and
//!   event per [`CALLER_WINDOW`]; the rest are counted and reported by
//!   [`Syslog::report_suppressed`] as one `log_suppressed` line each.

use std::borrow::Cow;
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::audit::event::{Event, EventName, Severity};
use crate::core::audit::ratelimit::WindowLimiter;
use crate::core::time::clock::{Clock, Timestamp};
use crate::host::clock::SystemClock;

/// The window of the per-caller limit on lines.
pub(crate) const CALLER_WINDOW: Duration = Duration::from_secs(10);
/// Lines a caller without rights may cause per event name and window.
pub(crate) const CALLER_LINES_PER_WINDOW: u32 = 5;

/// Syslog facility authpriv.
pub(crate) const FACILITY_AUTHPRIV: u8 = 10;
/// Program name in every line.
pub(crate) const IDENT: &str = "timeoutd";
/// Longest message (after escaping) sent, in bytes.
pub(crate) const MAX_MESSAGE: usize = 8 * 1024;
/// Send timeout on the socket.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_millis(25);

/// A syslog connection. Cheap to share: every method takes `&self`.
#[derive(Debug)]
pub(crate) struct Syslog {
    path: PathBuf,
    sock: Mutex<Option<UnixDatagram>>,
    /// The pid in every line. A `Syslog` is made after the daemon detaches
    /// and it never forks without exec, so this stays true.
    pid: u32,
    stderr: bool,
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
            path: path.to_path_buf(),
            sock: Mutex::new(connect(path).ok()),
            pid: std::process::id(),
            stderr: false,
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

    /// Sends one line. Never blocks longer than about one [`SEND_TIMEOUT`]
    /// (two if the socket has to be reconnected), never fails: an undeliverable
    /// line is counted in `dropped`.
    pub(crate) fn send(&self, severity: Severity, msg: &str) {
        let body = one_line(msg);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let stamp = timestamp(now);
        let line = format_line(severity, &stamp, self.pid, &body);
        if self.stderr {
            // One write(2) per line (stderr is unbuffered: `writeln!` would
            // make one per piece). Ignore errors: a closed stderr must not
            // stop the daemon.
            let copy = format!("{stamp} {severity}: {body}\n");
            let _ = io::stderr().lock().write_all(copy.as_bytes());
        }
        if !self.deliver(line.as_bytes()) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.unreported.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.report_dropped(&stamp);
    }

    /// Lines that could not be delivered since the daemon started.
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Once delivery works again, says how many lines were lost before
    /// (`log_lines_dropped count=N`), so a gap in the log is never silent.
    fn report_dropped(&self, stamp: &str) {
        let lost = self.unreported.swap(0, Ordering::Relaxed);
        if lost == 0 {
            return;
        }
        let ev = Event::new(EventName::LogLinesDropped)
            .with_severity(Severity::Warning)
            .field("count", lost)
            .field("total", self.dropped_total());
        let line = format_line(ev.severity(), stamp, self.pid, &one_line(&ev.to_string()));
        if !self.deliver(line.as_bytes()) {
            self.unreported.fetch_add(lost, Ordering::Relaxed);
        }
    }

    fn deliver(&self, line: &[u8]) -> bool {
        let mut guard = self.sock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sock) = guard.as_ref() {
            match sock.send(line) {
                Ok(_) => return true,
                // syslogd is alive but not reading: waiting again would only
                // stall the daemon twice as long.
                Err(e) if is_busy(&e) => return false,
                Err(_) => {}
            }
        }
        *guard = connect(&self.path).ok();
        match guard.as_ref() {
            Some(sock) => sock.send(line).is_ok(),
            None => false,
        }
    }
}

fn is_busy(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn connect(path: &Path) -> io::Result<UnixDatagram> {
    let sock = UnixDatagram::unbound()?;
    sock.set_write_timeout(Some(SEND_TIMEOUT))?;
    sock.connect(path)?;
    Ok(sock)
}

/// Builds `<PRI>STAMP timeoutd[PID]: BODY`.
fn format_line(severity: Severity, stamp: &str, pid: u32, body: &str) -> String {
    let pri = u32::from(FACILITY_AUTHPRIV) * 8 + u32::from(severity.code());
    format!("<{pri}>{stamp} {IDENT}[{pid}]: {body}")
}

/// Escapes every control character (including newline and tab) and cuts
/// the result at [`MAX_MESSAGE`] bytes on a character boundary.
fn one_line(msg: &str) -> Cow<'_, str> {
    // Most lines have nothing to escape and fit: used as they are. A
    // control character is a C0 byte, DEL, or a C1 character (U+0080 to
    // U+009F, encoded 0xC2 0x80..0x9F): lines with none of those bytes are
    // passed without decoding them.
    let may_have_control = msg.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2);
    if msg.len() <= MAX_MESSAGE && !(may_have_control && msg.chars().any(char::is_control)) {
        return Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len().min(MAX_MESSAGE));
    let mut piece = String::with_capacity(12);
    for c in msg.chars() {
        piece.clear();
        if c.is_control() {
            crate::core::audit::escape::push_escape(&mut piece, c);
        } else {
            piece.push(c);
        }
        if out.len() + piece.len() > MAX_MESSAGE {
            break;
        }
        out.push_str(&piece);
    }
    Cow::Owned(out)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Broken-down time: month 0..=11, day 1..=31, hour, minute, second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    month: usize,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
}

/// `Mmm dd hh:mm:ss` (day space-padded) for unix time `t`, in local time.
fn timestamp(t: i64) -> String {
    let c = local_civil(t).unwrap_or_else(|| utc_civil(t));
    format_civil(c)
}

fn format_civil(c: Civil) -> String {
    let mon = MONTHS.get(c.month).copied().unwrap_or("Jan");
    format!("{mon} {:>2} {:02}:{:02}:{:02}", c.day, c.hour, c.min, c.sec)
}

/// UTC broken-down time (days-from-civil inverse, H. Hinnant's algorithm).
fn utc_civil(t: i64) -> Civil {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // 1..=12
    Civil {
        month: usize::try_from(month - 1).unwrap_or(0),
        day: u32::try_from(day).unwrap_or(1),
        hour: u32::try_from(secs / 3600).unwrap_or(0),
        min: u32::try_from(secs % 3600 / 60).unwrap_or(0),
        sec: u32::try_from(secs % 60).unwrap_or(0),
    }
}

/// Local broken-down time through `localtime_r(3)`.
fn local_civil(t: i64) -> Option<Civil> {
    let tt: libc::time_t = t;
    let mut tm = MaybeUninit::<libc::tm>::uninit();
    // SAFETY: `tt` is a valid time_t and `tm` points to writable storage for
    // one `struct tm`; localtime_r writes only into it and returns either that
    // pointer (fully initialised) or NULL on failure.
    let tm = unsafe {
        if libc::localtime_r(&tt, tm.as_mut_ptr()).is_null() {
            return None;
        }
        tm.assume_init()
    };
    Some(Civil {
        month: usize::try_from(tm.tm_mon).ok().filter(|m| *m < 12)?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: u32::try_from(tm.tm_hour).ok()?,
        min: u32::try_from(tm.tm_min).ok()?,
        sec: u32::try_from(tm.tm_sec).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::audit::event::EventName;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    impl Syslog {
        /// How many lines could not be delivered to the socket so far.
        fn dropped(&self) -> u64 {
            self.dropped_total()
        }
    }

    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "timeoutd-syslog-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).expect("temp dir");
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
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
    fn timestamp_format() {
        // 2024-03-05 07:08:09 UTC
        let c = utc_civil(1_709_622_489);
        assert_eq!(format_civil(c), "Mar  5 07:08:09");
        // 2000-12-31 23:59:59 UTC
        assert_eq!(format_civil(utc_civil(978_307_199)), "Dec 31 23:59:59");
        assert_eq!(format_civil(utc_civil(0)), "Jan  1 00:00:00");
        // 2024-02-29 (leap day)
        assert_eq!(format_civil(utc_civil(1_709_208_000)), "Feb 29 12:00:00");
        // Before the epoch does not panic.
        assert_eq!(format_civil(utc_civil(-1)), "Dec 31 23:59:59");
        assert_eq!(timestamp(1_709_622_489).len(), 15);
    }

    #[test]
    fn local_time_matches_utc_offset_shape() {
        let s = timestamp(1_709_622_489);
        let b = s.as_bytes();
        assert_eq!(b[3], b' ');
        assert_eq!(b[9], b':');
        assert_eq!(b[12], b':');
    }

    #[test]
    fn line_format_and_priority() {
        let l = format_line(Severity::Info, "Mar  5 07:08:09", 42, "hi");
        assert_eq!(l, "<86>Mar  5 07:08:09 timeoutd[42]: hi");
        let l = format_line(Severity::Err, "Mar  5 07:08:09", 42, "x");
        assert!(l.starts_with("<83>"));
        assert!(format_line(Severity::Warning, "", 1, "").starts_with("<84>"));
        assert!(format_line(Severity::Notice, "", 1, "").starts_with("<85>"));
    }

    #[test]
    fn one_line_escapes_and_truncates() {
        assert_eq!(one_line("a\nb\tc\u{1b}\u{9b}"), "a\\x0ab\\x09c\\x1b\\u{9b}");
        let long = "é".repeat(10_000);
        let cut = one_line(&long);
        assert!(cut.len() <= MAX_MESSAGE);
        assert!(cut.len() > MAX_MESSAGE - 4);
        assert!(cut.chars().all(|c| c == 'é'));
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

        // syslogd restarts: the old socket file is replaced.
        drop(srv);
        std::fs::remove_file(&path).expect("rm");
        let srv = server(&path);
        log.send(Severity::Info, "second");
        assert!(recv(&srv).ends_with(": second"));
        assert_eq!(log.dropped(), 1);
    }

    #[test]
    fn stuck_syslogd_does_not_block() {
        let dir = TempDir::new();
        let path = dir.0.join("log");
        let _srv = server(&path); // never reads
        let log = Syslog::new(&path);
        let mut sent = 0;
        while log.dropped() == 0 && sent < 100_000 {
            log.send(Severity::Info, "filler line");
            sent += 1;
        }
        assert!(log.dropped() > 0, "queue never filled");
        let t = Instant::now();
        log.send(Severity::Info, "one more");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(log.dropped(), 2);
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
        let lines = reader.join().unwrap();
        assert_eq!(log.dropped(), 0);
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
        assert!(
            log.next_report().is_some(),
            "the held-back lines will be reported"
        );
    }
}
