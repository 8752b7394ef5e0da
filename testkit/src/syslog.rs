//! A syslog of our own: a unix datagram socket the daemon's `[daemon] syslog`
//! points at. One thread receives every datagram, stamps it on both clocks
//! and parses it ([`crate::events`]); callers wait on what arrived.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::events::{parse_line, LogLine};
use crate::now_ns;

/// How the sink's socket is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct SinkOptions {
    /// Grow the receive buffer to this many bytes, past `rmem_max`
    /// (SO_RCVBUFFORCE, needs CAP_NET_ADMIN; best effort): for bursts of
    /// thousands of lines, as the benchmark makes.
    pub rcvbuf: Option<usize>,
}

#[derive(Default)]
struct Shared {
    lines: Mutex<Vec<LogLine>>,
    cond: Condvar,
}

/// The socket and its reader thread. Dropping it stops the thread and
/// removes the socket file.
pub struct SyslogSink {
    pub path: PathBuf,
    socket: UnixDatagram,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SyslogSink({})", self.path.display())
    }
}

impl SyslogSink {
    /// Binds `path` (a stale socket file there is removed first) and starts
    /// the reader.
    pub fn start(path: &Path, opts: SinkOptions) -> io::Result<SyslogSink> {
        if std::fs::symlink_metadata(path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        {
            std::fs::remove_file(path)?;
        }
        let socket = UnixDatagram::bind(path)?;
        if let Some(bytes) = opts.rcvbuf {
            set_rcvbuf_force(&socket, bytes);
        }
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let rx = socket.try_clone()?;
        let (sh, st) = (shared.clone(), stop.clone());
        let reader = std::thread::Builder::new()
            .name("syslog".into())
            .spawn(move || receive(&rx, &sh, &st))?;
        Ok(SyslogSink {
            path: path.to_path_buf(),
            socket,
            shared,
            stop,
            reader: Some(reader),
        })
    }

    /// The lines received so far, locked (the reader waits meanwhile).
    pub fn lock(&self) -> MutexGuard<'_, Vec<LogLine>> {
        self.shared.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything received so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lock().clone()
    }

    /// All lines, raw, one per line (for failure messages).
    pub fn dump(&self) -> String {
        self.lock().iter().map(|l| format!("{}\n", l.raw)).collect()
    }

    /// Waits until some line (received at any time) satisfies `pred`.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&LogLine) -> bool) -> Option<LogLine> {
        self.wait_for(timeout, |lines| lines.iter().find(|l| pred(l)).cloned())
    }

    /// Waits until `look` finds something in the lines received so far.
    fn wait_for<T>(&self, timeout: Duration, look: impl Fn(&[LogLine]) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lock();
        loop {
            if let Some(found) = look(&lines) {
                return Some(found);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self
                .shared
                .cond
                .wait_timeout(lines, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for an `event=<event>` line matching all `key=value` filters.
    pub fn wait_event(
        &self,
        event: &str,
        filters: &[(&str, &str)],
        timeout: Duration,
    ) -> Option<LogLine> {
        self.wait_line(timeout, |l| l.matches(event, filters))
    }

    /// The first line matching, if any has arrived.
    pub fn find(&self, event: &str, filters: &[(&str, &str)]) -> Option<LogLine> {
        self.lock()
            .iter()
            .find(|l| l.matches(event, filters))
            .cloned()
    }

    /// The lines of session `id`, in arrival order.
    pub fn session_lines(&self, id: &str) -> Vec<LogLine> {
        self.lock()
            .iter()
            .filter(|l| l.get("id") == Some(id))
            .cloned()
            .collect()
    }

    /// The event names of session `id`, in arrival order.
    pub fn session_events(&self, id: &str) -> Vec<String> {
        self.session_lines(id)
            .iter()
            .filter_map(|l| l.event().map(str::to_string))
            .collect()
    }

    /// Lines whose PRI is not facility authpriv (10), i.e. outside 80..=87.
    pub fn non_authpriv(&self) -> Vec<LogLine> {
        self.lock()
            .iter()
            .filter(|l| !matches!(l.pri, Some(80..=87)))
            .cloned()
            .collect()
    }

    /// The `event` lines of daemon `pid`.
    pub fn of(&self, pid: u32, event: &str) -> Vec<LogLine> {
        self.lock()
            .iter()
            .filter(|l| l.is(pid, event))
            .cloned()
            .collect()
    }

    /// How many `event` lines daemon `pid` logged.
    pub fn count(&self, pid: u32, event: &str) -> usize {
        self.lock().iter().filter(|l| l.is(pid, event)).count()
    }

    /// Waits until daemon `pid` logged at least `n` `event` lines.
    pub fn wait_count(&self, pid: u32, event: &str, n: usize, timeout: Duration) -> bool {
        self.wait_for(timeout, |lines| {
            (lines.iter().filter(|l| l.is(pid, event)).count() >= n).then_some(())
        })
        .is_some()
    }

    /// Drops the lines of a daemon that is gone (keeps memory flat).
    pub fn forget(&self, pid: u32) {
        self.lock().retain(|l| l.pid != Some(pid));
    }
}

/// The reader thread: until `stop`, parses and keeps every datagram.
fn receive(rx: &UnixDatagram, shared: &Shared, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    loop {
        match rx.recv(&mut buf) {
            Ok(n) => {
                if n == 0 && stop.load(Ordering::SeqCst) {
                    return;
                }
                let (at, t_ns) = (Instant::now(), now_ns());
                let text = String::from_utf8_lossy(&buf[..n]);
                let text = text.trim_end_matches(['\n', '\0']);
                shared
                    .lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(parse_line(text, at, t_ns));
                shared.cond.notify_all();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// SO_RCVBUFFORCE (best effort).
fn set_rcvbuf_force(socket: &UnixDatagram, bytes: usize) {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `v` is a live int of the size passed; the descriptor is open.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // shutdown(2) wakes the blocked recv with a 0-byte read.
        let _ = self.socket.shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
