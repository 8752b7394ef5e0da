//! The daemon's log lines, parsed: `<PRI>Mmm dd hh:mm:ss timeoutd[PID]:
//! event=NAME key=value key="quoted \" value"`.

use std::time::Instant;

/// One datagram, parsed.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// When the harness received it (monotonic: for bounds between lines).
    pub at: Instant,
    /// The same moment on CLOCK_REALTIME, ns (the clock of the daemon's deadlines).
    pub t_ns: i64,
    pub raw: String,
    /// The `<PRI>` number, if the line had one.
    pub pri: Option<u32>,
    /// The PID of the `timeoutd[PID]:` tag, if the line had one.
    pub pid: Option<u32>,
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

    /// A field as a number.
    pub fn num(&self, key: &str) -> Option<i64> {
        self.get(key)?.parse().ok()
    }

    pub fn event(&self) -> Option<&str> {
        self.get("event")
    }

    /// True if the line is `event=<event>` and every `key=value` filter matches.
    pub fn matches(&self, event: &str, filters: &[(&str, &str)]) -> bool {
        self.event() == Some(event) && filters.iter().all(|(k, v)| self.get(k) == Some(*v))
    }

    /// True if daemon `pid` logged it as `event=<event>`.
    pub fn is(&self, pid: u32, event: &str) -> bool {
        self.pid == Some(pid) && self.event() == Some(event)
    }
}

/// Parses one line received at `at` (`t_ns` on the realtime clock).
pub fn parse_line(raw: &str, at: Instant, t_ns: i64) -> LogLine {
    let mut pri = None;
    let mut rest = raw;
    if let Some(r) = raw.strip_prefix('<') {
        if let Some(end) = r.find('>') {
            pri = r[..end].parse().ok();
            rest = &r[end + 1..];
        }
    }
    // The message starts after the tag's ": ".
    let (tag, msg) = match rest.find(": ") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => ("", rest),
    };
    LogLine {
        at,
        t_ns,
        raw: raw.to_string(),
        pri,
        pid: tag_pid(tag),
        fields: parse_fields(msg),
    }
}

/// The N of a tag ending in `[N]`.
fn tag_pid(tag: &str) -> Option<u32> {
    let open = tag.rfind('[')?;
    tag[open + 1..].strip_suffix(']')?.parse().ok()
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
            i = quoted(&b, i + 1, &mut val);
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

/// Reads a quoted value from `b[i..]` (just after the opening quote) into
/// `val`; returns the index after the closing quote.
fn quoted(b: &[char], mut i: usize, val: &mut String) -> usize {
    while i < b.len() && b[i] != '"' {
        if b[i] == '\\' && i + 1 < b.len() {
            i += 1;
            i = escape(b, i, val);
        } else {
            val.push(b[i]);
        }
        i += 1;
    }
    i + 1 // closing quote
}

/// Decodes the escape whose letter is at `b[i]`; returns the index of its
/// last character.
fn escape(b: &[char], mut i: usize, val: &mut String) -> usize {
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
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> LogLine {
        parse_line(raw, Instant::now(), 5)
    }

    #[test]
    fn parses_rfc3164_line_with_quotes() {
        let l = parse(
            "<86>Nov 29 12:00:00 timeoutd[1234]: event=session_open id=7 user=alice msg=\"a \\\"b\\\" c\\x07\" rule=",
        );
        assert_eq!(l.pri, Some(86));
        assert_eq!(l.pid, Some(1234));
        assert_eq!(l.event(), Some("session_open"));
        assert_eq!(l.get("id"), Some("7"));
        assert_eq!(l.get("msg"), Some("a \"b\" c\x07"));
        assert_eq!(l.get("rule"), Some(""));
        assert!(l.matches("session_open", &[("user", "alice")]));
        assert!(!l.matches("session_open", &[("user", "bob")]));
        assert!(l.is(1234, "session_open"));
    }

    #[test]
    fn parses_unicode_escapes_and_padded_day() {
        let l = parse(
            "<85>Nov  1 02:03:04 timeoutd[9]: event=x user=\"Jos\u{e9}\u{9b}\" empty=\"\" tty=pts/3",
        );
        assert_eq!(l.pri, Some(85));
        assert_eq!(l.get("user"), Some("Jos\u{e9}\u{9b}"));
        assert_eq!(l.get("empty"), Some(""));
        assert_eq!(l.get("tty"), Some("pts/3"));
    }

    #[test]
    fn parses_daemon_numbers_and_skips_other_programs() {
        let ev = parse(
            "<86>Nov 29 12:30:01 timeoutd[4242]: event=session_expired id=7 user=stb1 reason=max deadline=1700000000 msg=\"a \\\"b\\\" c\"",
        );
        assert!(ev.is(4242, "session_expired"));
        assert_eq!(ev.num("deadline"), Some(1_700_000_000));
        assert_eq!(ev.get("msg"), Some("a \"b\" c"));
        assert_eq!(ev.t_ns, 5);
        let other = parse("<13>Nov 29 sshd[1]: hello");
        assert_eq!(other.event(), None);
        assert!(!other.is(1, "hello"));
    }
}
