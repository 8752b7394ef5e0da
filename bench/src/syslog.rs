//! A syslog socket of our own: the daemon's `[daemon] syslog` points here.
//! One thread receives every datagram, stamps it and parses
//! `<PRI>Mmm dd hh:mm:ss timeoutd[PID]: event=NAME key=value ...`.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sys;
use crate::util::{now_ns, wait_until};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// When the harness received the line.
    pub t_ns: i64,
    pub pid: u32,
    pub name: String,
    pub fields: Vec<(String, String)>,
}

impl LogEvent {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn num(&self, key: &str) -> Option<i64> {
        self.get(key)?.parse().ok()
    }
}

pub struct SyslogSink {
    pub path: PathBuf,
    events: Arc<Mutex<Vec<LogEvent>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SyslogSink {
    pub fn start(path: &Path) -> io::Result<SyslogSink> {
        let _ = std::fs::remove_file(path);
        let sock = UnixDatagram::bind(path)?;
        sys::set_rcvbuf_force(sock.as_raw_fd(), 32 << 20);
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let events: Arc<Mutex<Vec<LogEvent>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (events, stop) = (events.clone(), stop.clone());
            std::thread::Builder::new()
                .name("syslog".into())
                .spawn(move || {
                    let mut buf = vec![0u8; 16 * 1024];
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(n) = sock.recv(&mut buf) else { continue };
                        let t = now_ns();
                        if let Some(ev) = parse_line(&String::from_utf8_lossy(&buf[..n]), t) {
                            events.lock().unwrap_or_else(|e| e.into_inner()).push(ev);
                        }
                    }
                })?
        };
        Ok(SyslogSink {
            path: path.to_owned(),
            events,
            stop,
            thread: Some(thread),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Vec<LogEvent>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Events of daemon `pid` named `name`.
    pub fn of(&self, pid: u32, name: &str) -> Vec<LogEvent> {
        self.lock()
            .iter()
            .filter(|e| e.pid == pid && e.name == name)
            .cloned()
            .collect()
    }

    pub fn count(&self, pid: u32, name: &str) -> usize {
        self.lock()
            .iter()
            .filter(|e| e.pid == pid && e.name == name)
            .count()
    }

    /// Waits until daemon `pid` logged at least `n` events named `name`.
    pub fn wait_count(&self, pid: u32, name: &str, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, Duration::from_millis(20), || {
            self.count(pid, name) >= n
        })
    }

    /// Drops the events of a daemon that is gone (keeps memory flat).
    pub fn forget(&self, pid: u32) {
        self.lock().retain(|e| e.pid != pid);
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Parses one syslog line of timeoutd; `None` for anything else.
pub fn parse_line(line: &str, t_ns: i64) -> Option<LogEvent> {
    let at = line.find("timeoutd[")?;
    let rest = &line[at + "timeoutd[".len()..];
    let close = rest.find("]: ")?;
    let pid = rest[..close].parse().ok()?;
    let mut fields = split_pairs(&rest[close + 3..]);
    if fields.first().is_none_or(|(k, _)| k != "event") {
        return None;
    }
    let name = fields.remove(0).1;
    Some(LogEvent {
        t_ns,
        pid,
        name,
        fields,
    })
}

/// Splits `k=v k="quoted \" value"` pairs.
fn split_pairs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(match n {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                other => other,
                            });
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_daemon_lines() {
        let ev = parse_line(
            "<86>Nov 29 12:30:01 timeoutd[4242]: event=session_expired id=7 user=stb1 reason=max deadline=1700000000 msg=\"a \\\"b\\\" c\"",
            5,
        )
        .unwrap();
        assert_eq!(ev.pid, 4242);
        assert_eq!(ev.name, "session_expired");
        assert_eq!(ev.num("deadline"), Some(1_700_000_000));
        assert_eq!(ev.get("msg"), Some("a \"b\" c"));
        assert_eq!(ev.t_ns, 5);
        assert!(parse_line("<13>Nov 29 sshd[1]: hello", 0).is_none());
    }
}
