//! A fake syslog: a unix datagram socket the daemon sends its lines to.

use std::net::Shutdown;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One datagram, parsed.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub at: Instant,
    pub raw: String,
    /// The `<PRI>` number, if the line had one.
    pub pri: Option<u32>,
    /// `key=value` pairs of the message, in order, values unquoted.
    pub fields: Vec<(String, String)>,
}

impl LogLine {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn event(&self) -> Option<&str> {
        self.get("event")
    }

    /// True if the line is `event=<event>` and every `key=value` filter matches.
    pub fn matches(&self, event: &str, filters: &[(&str, &str)]) -> bool {
        self.event() == Some(event) && filters.iter().all(|(k, v)| self.get(k) == Some(*v))
    }
}

/// Parses `<86>Nov 29 12:00:00 timeoutd[1234]: key=value key="quoted \" value"`.
pub fn parse_line(raw: &str, at: Instant) -> LogLine {
    let mut pri = None;
    let mut rest = raw;
    if let Some(r) = raw.strip_prefix('<') {
        if let Some(end) = r.find('>') {
            pri = r[..end].parse().ok();
            rest = &r[end + 1..];
        }
    }
    // The message starts after the tag's ": ".
    let msg = rest.find(": ").map(|i| &rest[i + 2..]).unwrap_or(rest);
    LogLine {
        at,
        raw: raw.to_string(),
        pri,
        fields: parse_fields(msg),
    }
}

/// Splits `k=v k="v w" k=` into pairs; quoted values take `\"`, `\\`, `\n`,
/// `\t`, `\r`, `\a`, `\e`, `\xHH` and `\u{H..}` escapes.
pub fn parse_fields(msg: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b: Vec<char> = msg.chars().collect();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == ' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != '=' && b[i] != ' ' {
            i += 1;
        }
        let key: String = b[ks..i].iter().collect();
        if i >= b.len() || b[i] != '=' {
            continue; // a bare word: not a field
        }
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                    match b[i] {
                        'n' => val.push('\n'),
                        't' => val.push('\t'),
                        'r' => val.push('\r'),
                        'a' => val.push('\x07'),
                        'e' => val.push('\x1b'),
                        'x' if i + 2 < b.len() => {
                            let hex: String = b[i + 1..i + 3].iter().collect();
                            match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                                Some(c) => {
                                    val.push(c);
                                    i += 2;
                                }
                                None => val.push_str("\\x"),
                            }
                        }
                        'u' if b.get(i + 1) == Some(&'{') => {
                            let close = b[i..].iter().position(|&c| c == '}').map(|p| p + i);
                            let c = close.and_then(|e| {
                                let hex: String = b[i + 2..e].iter().collect();
                                u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                            });
                            match (c, close) {
                                (Some(c), Some(e)) => {
                                    val.push(c);
                                    i = e;
                                }
                                _ => val.push_str("\\u"),
                            }
                        }
                        c => val.push(c),
                    }
                } else {
                    val.push(b[i]);
                }
                i += 1;
            }
            i += 1; // closing quote
        } else {
            while i < b.len() && b[i] != ' ' {
                val.push(b[i]);
                i += 1;
            }
        }
        out.push((key, val));
    }
    out
}

#[derive(Default)]
struct Shared {
    lines: Mutex<Vec<LogLine>>,
    cond: Condvar,
}

/// The socket and its reader thread. Dropping it stops the thread.
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
    pub fn bind(path: &Path) -> SyslogSink {
        let socket = UnixDatagram::bind(path)
            .unwrap_or_else(|e| panic!("binding syslog socket {}: {e}", path.display()));
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let rx = socket.try_clone().expect("cloning syslog socket");
        let (sh, st) = (shared.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                match rx.recv(&mut buf) {
                    Ok(n) => {
                        if n == 0 && st.load(Ordering::SeqCst) {
                            return;
                        }
                        let at = Instant::now();
                        let text = String::from_utf8_lossy(&buf[..n]);
                        let text = text.trim_end_matches(['\n', '\0']);
                        sh.lines.lock().unwrap().push(parse_line(text, at));
                        sh.cond.notify_all();
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        });
        SyslogSink {
            path: path.to_path_buf(),
            socket,
            shared,
            stop,
            reader: Some(reader),
        }
    }

    /// Everything received so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.shared.lines.lock().unwrap().clone()
    }

    /// All lines, raw, one per line (for failure messages).
    pub fn dump(&self) -> String {
        self.lines()
            .iter()
            .map(|l| format!("{}\n", l.raw))
            .collect()
    }

    /// Waits until some line (received at any time) satisfies `pred`.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&LogLine) -> bool) -> Option<LogLine> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.shared.lines.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self
                .shared
                .cond
                .wait_timeout(lines, deadline - now)
                .unwrap()
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

    /// Like [`wait_event`](Self::wait_event) but panics with every line seen.
    pub fn expect_event(
        &self,
        event: &str,
        filters: &[(&str, &str)],
        timeout: Duration,
    ) -> LogLine {
        self.wait_event(event, filters, timeout).unwrap_or_else(|| {
            panic!(
                "no syslog line event={event} {filters:?} within {timeout:?}; lines so far:\n{}",
                self.dump()
            )
        })
    }

    /// The first line matching, if any has arrived.
    pub fn find(&self, event: &str, filters: &[(&str, &str)]) -> Option<LogLine> {
        self.lines().into_iter().find(|l| l.matches(event, filters))
    }

    /// The lines of session `id`, in arrival order.
    pub fn session_lines(&self, id: &str) -> Vec<LogLine> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("id") == Some(id))
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
        self.lines()
            .into_iter()
            .filter(|l| !matches!(l.pri, Some(80..=87)))
            .collect()
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

    #[test]
    fn parses_rfc3164_line_with_quotes() {
        let l = parse_line(
            "<86>Nov 29 12:00:00 timeoutd[1234]: event=session_open id=7 user=alice msg=\"a \\\"b\\\" c\\x07\" rule=",
            Instant::now(),
        );
        assert_eq!(l.pri, Some(86));
        assert_eq!(l.event(), Some("session_open"));
        assert_eq!(l.get("id"), Some("7"));
        assert_eq!(l.get("msg"), Some("a \"b\" c\x07"));
        assert_eq!(l.get("rule"), Some(""));
        assert!(l.matches("session_open", &[("user", "alice")]));
        assert!(!l.matches("session_open", &[("user", "bob")]));
    }

    #[test]
    fn parses_unicode_escapes_and_padded_day() {
        let l = parse_line(
            "<85>Nov  1 02:03:04 timeoutd[9]: event=x user=\"Jos\u{e9}\u{9b}\" empty=\"\" tty=pts/3",
            Instant::now(),
        );
        assert_eq!(l.pri, Some(85));
        assert_eq!(l.get("user"), Some("Jos\u{e9}\u{9b}"));
        assert_eq!(l.get("empty"), Some(""));
        assert_eq!(l.get("tty"), Some("pts/3"));
    }
}
