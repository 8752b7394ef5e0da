//! JSON for scripts: view types derived with serde, written by serde_json.
//!
//! The field names, their order and types are an interface (scripts and the
//! end-to-end tests read them): a time of 0 ("none") is `null`, and so is an
//! audit session of 4294967295 (tracked by process subtree). The writer also
//! escapes DEL, backspace and form feed as `\u00XX`, as the output always did.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};
use session_timeout_proto::{RevocationInfo, SessionInfo, TamperSeen, Target, WarningSent};

/// A Unix time, or `null` for 0 (none).
fn opt_time(t: i64) -> Option<i64> {
    (t != 0).then_some(t)
}

#[derive(Serialize)]
struct WarningView<'a> {
    reason: &'a str,
    at: i64,
    deadline: i64,
}

#[derive(Serialize)]
struct TamperView<'a> {
    tty: &'a str,
    at: i64,
}

/// One session as `list --json`, `show --json` and `status --json` write it.
#[derive(Serialize)]
struct SessionView<'a> {
    id: u64,
    user: &'a str,
    uid: u32,
    service: &'a str,
    tty: &'a str,
    rhost: &'a str,
    rule: &'a str,
    state: &'a str,
    started: i64,
    last_activity: i64,
    idle_seconds: i64,
    idle_deadline: Option<i64>,
    idle_remaining: Option<i64>,
    max_deadline: Option<i64>,
    max_remaining: Option<i64>,
    leader_pid: u32,
    audit_session: Option<u32>,
    pids: &'a [u32],
    warnings: Vec<WarningView<'a>>,
    tampers: Vec<TamperView<'a>>,
    /// The rule is `enforce = "dry-run"`: deadlines are logged, not enforced.
    dry_run: bool,
    /// The rule's daily quota in seconds, and what is left of it today; only
    /// present when the rule has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    daily_quota: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota_remaining: Option<i64>,
}

impl<'a> SessionView<'a> {
    fn new(s: &'a SessionInfo) -> Self {
        let remaining = |d: i64| opt_time(d).map(|d| (d - s.now).max(0));
        Self {
            id: s.id,
            user: &s.user,
            uid: s.uid,
            service: &s.service,
            tty: &s.tty,
            rhost: &s.rhost,
            rule: &s.rule,
            state: &s.state,
            started: s.started,
            last_activity: s.last_activity,
            idle_seconds: (s.now - s.last_activity).max(0),
            idle_deadline: opt_time(s.idle_deadline),
            idle_remaining: remaining(s.idle_deadline),
            max_deadline: opt_time(s.max_deadline),
            max_remaining: remaining(s.max_deadline),
            leader_pid: s.leader_pid,
            audit_session: (s.audit_session != u32::MAX).then_some(s.audit_session),
            pids: &s.pids,
            warnings: s.warnings.iter().map(warning).collect(),
            tampers: s.tampers.iter().map(tamper).collect(),
            dry_run: s.dry_run,
            daily_quota: (s.daily_quota > 0).then_some(s.daily_quota),
            quota_remaining: (s.daily_quota > 0).then(|| (s.daily_quota - s.quota_used).max(0)),
        }
    }
}

fn warning(w: &WarningSent) -> WarningView<'_> {
    WarningView {
        reason: &w.reason,
        at: w.at,
        deadline: w.deadline,
    }
}

fn tamper(t: &TamperSeen) -> TamperView<'_> {
    TamperView {
        tty: &t.tty,
        at: t.at,
    }
}

/// One revocation: its target as `"user": NAME` or `"group": NAME` first.
#[derive(Serialize)]
struct RevocationView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    since: i64,
    until: Option<i64>,
    by_uid: u32,
    reason: &'a str,
}

impl<'a> RevocationView<'a> {
    fn new(r: &'a RevocationInfo) -> Self {
        let (user, group) = match &r.target {
            Target::User(n) => (Some(n.as_str()), None),
            Target::Group(n) => (None, Some(n.as_str())),
        };
        Self {
            user,
            group,
            since: r.since,
            until: opt_time(r.until),
            by_uid: r.by_uid,
            reason: &r.reason,
        }
    }
}

/// serde_json's compact output, with DEL, backspace and form feed written as
/// `\u00XX` like every other control character.
struct Compact;

impl Formatter for Compact {
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        match escape {
            CharEscape::Backspace => writer.write_all(b"\\u0008"),
            CharEscape::FormFeed => writer.write_all(b"\\u000c"),
            other => CompactFormatter.write_char_escape(writer, other),
        }
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut parts = fragment.split('\u{7f}');
        if let Some(first) = parts.next() {
            writer.write_all(first.as_bytes())?;
        }
        for part in parts {
            writer.write_all(b"\\u007f")?;
            writer.write_all(part.as_bytes())?;
        }
        Ok(())
    }
}

pub(crate) fn to_json(value: &impl Serialize) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Compact);
    // Serializing these views into memory cannot fail: every key is a
    // string and every value a number, string, null or array of those.
    if value.serialize(&mut ser).is_err() {
        return "null".into();
    }
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_default()
}

/// One session as a JSON object, without a newline.
pub fn session(s: &SessionInfo) -> String {
    to_json(&SessionView::new(s))
}

/// Sessions as a JSON array and a newline.
pub fn sessions(list: &[SessionInfo]) -> String {
    let views: Vec<SessionView> = list.iter().map(SessionView::new).collect();
    format!("{}\n", to_json(&views))
}

/// Revocations as a JSON array and a newline.
pub fn revocations(list: &[RevocationInfo]) -> String {
    let views: Vec<RevocationView> = list.iter().map(RevocationView::new).collect();
    format!("{}\n", to_json(&views))
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
