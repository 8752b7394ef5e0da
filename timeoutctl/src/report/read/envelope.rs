//! Recognises, line by line, the log formats timeoutd's events arrive in and
//! takes the envelope off: the time, the host, the program and the message.
//!
//! - rsyslog traditional: `Dec  1 23:30:30 host timeoutd[123]: MSG`
//!   (also with a leading `<PRI>`, as forwarded over the network);
//! - rsyslog high precision / `journalctl -o short-iso`:
//!   `2026-12-01T23:30:30.123456+00:00 host timeoutd[123]: MSG`;
//! - `journalctl -o json`: one object per line (MESSAGE as a string or a
//!   byte array, SYSLOG_IDENTIFIER, _HOSTNAME, __REALTIME_TIMESTAMP in µs);
//! - RFC 5424: `<86>1 2026-12-01T23:30:30.123Z host timeoutd 123 - [sd] MSG`;
//! - a bare `event=...` line (timeoutd's own stderr): no time, host `-`.

use std::borrow::Cow;

use serde::Deserialize;

use crate::report::read::time::{self, LocalZone};

/// One line without its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Unix seconds, if the line says when.
    pub time: Option<i64>,
    pub host: Cow<'a, str>,
    pub program: Cow<'a, str>,
    pub message: Cow<'a, str>,
}

/// What stays the same from line to line: the clock for the traditional
/// format's missing year, and the local zone.
#[derive(Debug, Default)]
pub struct Context {
    pub now: i64,
    pub zone: LocalZone,
}

/// The envelope of `line`, or `None` if it is in no format known here.
pub fn open<'a>(line: &'a str, cx: &mut Context) -> Option<Envelope<'a>> {
    match line.as_bytes().first()? {
        b'{' => journal_json(line),
        b'<' => with_priority(line, cx),
        b'0'..=b'9' => {
            let (ts, rest) = line.split_once(' ')?;
            let t = time::parse_rfc3339(ts)?;
            host_and_tag(Some(t), rest)
        }
        b'e' if line.starts_with("event=") => Some(Envelope {
            time: None,
            host: Cow::Borrowed("-"),
            program: Cow::Borrowed("timeoutd"),
            message: Cow::Borrowed(line),
        }),
        _ => traditional(line, cx),
    }
}

fn traditional<'a>(line: &'a str, cx: &mut Context) -> Option<Envelope<'a>> {
    let t = time::parse_traditional(line, cx.now, &mut cx.zone)?;
    host_and_tag(Some(t), line.get(16..)?)
}

/// `host tag[pid]: message` or `host tag: message`.
fn host_and_tag(time: Option<i64>, rest: &str) -> Option<Envelope<'_>> {
    let (host, rest) = rest.trim_start_matches(' ').split_once(' ')?;
    let (tag, message) = rest.split_once(": ")?;
    let program = tag.split('[').next().unwrap_or(tag);
    Some(Envelope {
        time,
        host: Cow::Borrowed(host),
        program: Cow::Borrowed(program),
        message: Cow::Borrowed(message),
    })
}

/// `<PRI>1 ...` (RFC 5424) or `<PRI>Mmm dd ...` (RFC 3164 on the wire).
fn with_priority<'a>(line: &'a str, cx: &mut Context) -> Option<Envelope<'a>> {
    let end = line.find('>')?;
    let pri = &line[1..end];
    if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = &line[end + 1..];
    match rest.strip_prefix("1 ") {
        Some(r) => rfc5424(r),
        None => traditional(rest, cx),
    }
}

/// After `<PRI>1 `: `TIMESTAMP HOST APP PROCID MSGID SD [MSG]`.
fn rfc5424(rest: &str) -> Option<Envelope<'_>> {
    let mut parts = rest.splitn(5, ' ');
    let ts = parts.next()?;
    let host = parts.next()?;
    let app = parts.next()?;
    let _procid = parts.next()?;
    let (_msgid, sd_and_msg) = parts.next()?.split_once(' ')?;
    let time = match ts {
        "-" => None,
        t => Some(time::parse_rfc3339(t)?),
    };
    let message = skip_structured_data(sd_and_msg)?;
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    Some(Envelope {
        time,
        host: Cow::Borrowed(host),
        program: Cow::Borrowed(app),
        message: Cow::Borrowed(message),
    })
}

/// `-` or one or more `[id k="v"...]` elements (`\]`, `\"`, `\\` escaped),
/// then a space and the message (or nothing).
fn skip_structured_data(s: &str) -> Option<&str> {
    let mut rest = if let Some(r) = s.strip_prefix('-') {
        r
    } else {
        let mut r = s;
        while r.starts_with('[') {
            r = &r[element_end(r)?..];
        }
        if r.len() == s.len() {
            return None;
        }
        r
    };
    if !rest.is_empty() {
        rest = rest.strip_prefix(' ')?;
    }
    Some(rest)
}

/// The byte just after the `]` closing the element at the start of `s`.
fn element_end(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b']' if !in_quotes => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[derive(Deserialize)]
struct JournalEntry<'a> {
    #[serde(rename = "MESSAGE")]
    message: Option<serde_json::Value>,
    #[serde(rename = "SYSLOG_IDENTIFIER", borrow)]
    identifier: Option<Cow<'a, str>>,
    #[serde(rename = "_HOSTNAME", borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(rename = "__REALTIME_TIMESTAMP", borrow)]
    realtime: Option<Cow<'a, str>>,
}

/// One `journalctl -o json` object.
fn journal_json(line: &str) -> Option<Envelope<'_>> {
    let e: JournalEntry<'_> = serde_json::from_str(line).ok()?;
    let message = match e.message? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Array(bytes) => {
            let b: Option<Vec<u8>> = bytes
                .iter()
                .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect();
            String::from_utf8_lossy(&b?).into_owned()
        }
        _ => return None,
    };
    let time = e
        .realtime
        .and_then(|us| us.parse::<i64>().ok())
        .map(|us| us.div_euclid(1_000_000));
    Some(Envelope {
        time,
        host: e.host.unwrap_or(Cow::Borrowed("-")),
        program: e.identifier.unwrap_or(Cow::Borrowed("")),
        message: Cow::Owned(message),
    })
}

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
