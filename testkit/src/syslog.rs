//! A syslog of our own: a unix datagram socket the daemon's `[daemon] syslog`
//! points at. One thread receives every datagram, stamps it on both clocks
//! with the moment it was sent (the kernel's stamp) and parses it ([`crate::events`]); callers wait on what arrived.

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
        set_timestamps(&socket)?;
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
    fn wait_for<T>(
        &self,
        timeout: Duration,
        mut look: impl FnMut(&[LogLine]) -> Option<T>,
    ) -> Option<T> {
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

    /// Waits until daemon `pid` logged at least `n` `event` lines. Each
    /// wake counts only the lines that came since the last (the reader
    /// waits for the lock meanwhile: a scan of every line on every line
    /// slowed the delivery it waited for).
    pub fn wait_count(&self, pid: u32, event: &str, n: usize, timeout: Duration) -> bool {
        let (mut scanned, mut count) = (0, 0);
        self.wait_for(timeout, |lines| {
            if lines.len() < scanned {
                // Lines were forgotten meanwhile: count afresh.
                (scanned, count) = (0, 0);
            }
            count += lines[scanned..].iter().filter(|l| l.is(pid, event)).count();
            scanned = lines.len();
            (count >= n).then_some(())
        })
        .is_some()
    }

    /// Drops the lines of a daemon that is gone (keeps memory flat).
    pub fn forget(&self, pid: u32) {
        self.lock().retain(|l| l.pid != Some(pid));
    }
}

/// The most datagrams the reader takes from the socket per lock.
const BATCH: usize = 256;

/// The reader thread: until `stop`, parses and keeps every datagram. It
/// takes what is queued in one go (each with the kernel's stamp of its send) and
/// then locks and wakes the waiters once: a lock and a wake per line let a
/// waiter's scans throttle a burst of thousands of lines.
fn receive(rx: &UnixDatagram, shared: &Shared, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        match recv_stamped(rx, &mut buf, 0) {
            Ok((0, _)) if stop.load(Ordering::SeqCst) => return,
            Ok((n, sent)) => batch.push(stamped(&buf[..n], sent)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        // A 0-byte read ends the batch (after the shutdown that stops the
        // reader every read is 0, so the blocking recv sees the stop).
        while batch.len() < BATCH {
            match recv_stamped(rx, &mut buf, libc::MSG_DONTWAIT) {
                Ok((n, sent)) if n > 0 => batch.push(stamped(&buf[..n], sent)),
                _ => break,
            }
        }
        shared
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&mut batch);
        shared.cond.notify_all();
    }
}

/// One datagram and the wall-clock time (ns) the kernel stamped on it when
/// it was sent (SO_TIMESTAMPNS; a unix datagram is stamped in the sender's
/// sendmsg), if it was. That stamp is when the line was logged, whatever
/// the reader thread waited for a CPU before it read it.
fn recv_stamped(rx: &UnixDatagram, buf: &mut [u8], flags: i32) -> io::Result<(usize, Option<i64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s: aligned for the cmsghdr the kernel writes.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid (no name, no iovecs, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` points at `iov` (over the live, writable `buf`) and at
    // `control`, both live for the call; the descriptor is open while `rx`
    // is borrowed.
    let n = unsafe { libc::recvmsg(rx.as_raw_fd(), &raw mut msg, flags) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    Ok((n, sent_stamp(&msg)))
}

/// The SCM_TIMESTAMPNS of a received message, in ns since the epoch.
fn sent_stamp(msg: &libc::msghdr) -> Option<i64> {
    // The data of an SCM_TIMESTAMPNS is one timespec, read unaligned, as
    // CMSG_DATA need not be aligned for it.
    // SAFETY: recvmsg(2) filled `msg`; its control pointer and length
    // describe the buffer it wrote, and CMSG_FIRSTHDR/NXTHDR stay within it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                return Some(ts.tv_sec * 1_000_000_000 + ts.tv_nsec);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// Both clocks of a line: the kernel's send stamp where there is one (the
/// monotonic instant is moved back by as much as it precedes now).
fn stamped(raw: &[u8], sent_ns: Option<i64>) -> LogLine {
    let (now, now_wall) = (Instant::now(), now_ns());
    let (at, t_ns) = match sent_ns {
        Some(sent) if sent <= now_wall => {
            let back = Duration::from_nanos(u64::try_from(now_wall - sent).unwrap_or(0));
            (now.checked_sub(back).unwrap_or(now), sent)
        }
        _ => (now, now_wall),
    };
    let text = String::from_utf8_lossy(raw);
    parse_line(text.trim_end_matches(['\n', '\0']), at, t_ns)
}

/// SO_TIMESTAMPNS: the kernel stamps each datagram as it is sent.
fn set_timestamps(socket: &UnixDatagram) -> io::Result<()> {
    set_int_option(socket, libc::SO_TIMESTAMPNS, 1)
}

/// SO_RCVBUFFORCE (best effort).
fn set_rcvbuf_force(socket: &UnixDatagram, bytes: usize) {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let _ = set_int_option(socket, libc::SO_RCVBUFFORCE, v);
}

/// setsockopt(2) of an int option at SOL_SOCKET.
fn set_int_option(socket: &UnixDatagram, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: `v` is a live int of the size passed; the descriptor is open.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn send(to: &Path, pid: u32, event: &str) {
        let line = format!("<86>Dec  3 05:33:12 timeoutd[{pid}]: event={event} user=x");
        UnixDatagram::unbound()
            .and_then(|s| s.send_to(line.as_bytes(), to))
            .expect("send");
    }

    #[test]
    fn a_line_is_stamped_when_it_was_sent_not_when_it_was_read() {
        let dir = std::env::temp_dir().join(format!("st-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).expect("bind");
        set_timestamps(&rx).expect("SO_TIMESTAMPNS");
        let before = now_ns();
        send(&path, 7, "session_terminated");
        let after = now_ns();
        let mut buf = [0u8; 512];
        let (n, sent) = recv_stamped(&rx, &mut buf, 0).expect("recv");
        let line = stamped(&buf[..n], sent);
        let _ = std::fs::remove_dir_all(&dir);
        let sent = sent.expect("a kernel stamp");
        assert!(
            (before..=after).contains(&sent),
            "stamp {sent} outside the send [{before}, {after}]"
        );
        assert_eq!(line.t_ns, sent);
        assert_eq!(line.pid, Some(7));
    }

    #[test]
    fn wait_count_counts_lines_that_come_while_it_waits_and_after_a_forget() {
        let dir = std::env::temp_dir().join(format!("st-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let sink = SyslogSink::start(&path, SinkOptions::default()).unwrap();
        send(&path, 7, "session_open");
        send(&path, 8, "session_open");
        let p = path.clone();
        let later = std::thread::spawn(move || {
            for _ in 0..3 {
                send(&p, 7, "session_open");
            }
        });
        assert!(sink.wait_count(7, "session_open", 4, Duration::from_secs(10)));
        later.join().unwrap();
        assert!(!sink.wait_count(7, "session_open", 5, Duration::from_millis(50)));
        sink.forget(8);
        send(&path, 7, "session_closed");
        assert!(sink.wait_count(7, "session_open", 4, Duration::from_secs(10)));
        assert!(!sink.wait_count(8, "session_open", 1, Duration::from_millis(50)));
        drop(sink);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
