//! Tables and text for a terminal. Every cell and message from the daemon is
//! escaped first: user names, hosts and reasons are untrusted.

use session_timeout_proto::{Response, RevocationInfo, SessionInfo, Target};
use timeoutd::core::audit::escape;
use timeoutd::core::time::clock::Timestamp;
use timeoutd::core::time::duration::Human;

/// A duration in seconds as `1h2m`, or `-` for none.
fn left(deadline: i64, now: i64) -> String {
    if deadline == 0 {
        return "-".into();
    }
    Human(std::time::Duration::from_secs(
        u64::try_from(deadline - now).unwrap_or(0),
    ))
    .to_string()
}

fn clock(t: i64) -> String {
    if t == 0 {
        "-".into()
    } else {
        Timestamp::from_secs(t).to_string()
    }
}

/// Aligns columns; every cell is escaped (user names and hosts are untrusted).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| table_cell(c)).collect())
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    // Written in place: a table of 10,000 sessions is 110,000 cells.
    let line_len: usize = width.iter().map(|w| w + 2).sum();
    let mut out = String::with_capacity(line_len * (rows.len() + 1));
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let start = out.len();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(c);
            let pad = width[i].saturating_sub(c.chars().count());
            out.extend(std::iter::repeat_n(' ', pad));
        }
        let kept = out[start..].trim_end().len();
        out.truncate(start + kept);
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for r in &rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

/// One cell: escaped, on one line, with no tab or bell.
fn table_cell(c: &str) -> String {
    let escaped = escape::for_terminal(c);
    if escaped.contains(['\n', '\t', '\u{7}']) {
        escaped.replace(['\n', '\t', '\u{7}'], " ")
    } else {
        escaped
    }
}

/// The rule, marked `(dry-run)` when its deadlines are only logged.
fn rule_cell(s: &SessionInfo) -> String {
    if s.dry_run {
        format!("{} (dry-run)", s.rule)
    } else {
        s.rule.clone()
    }
}

pub fn sessions_table(list: &[SessionInfo]) -> String {
    // The quota column only where a session has one: tables without stay as they were.
    let quotas = list.iter().any(|s| s.daily_quota > 0);
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let mut row = vec![
                s.id.to_string(),
                s.user.clone(),
                s.service.clone(),
                s.tty.clone(),
                if s.rhost.is_empty() {
                    "-".into()
                } else {
                    s.rhost.clone()
                },
                clock(s.started),
                left(s.now, s.last_activity),
                left(s.idle_deadline, s.now),
                left(s.max_deadline, s.now),
                rule_cell(s),
                s.state.clone(),
            ];
            if quotas {
                row.push(quota_cell(s));
            }
            row
        })
        .collect();
    let mut headers = vec![
        "ID",
        "USER",
        "SERVICE",
        "TTY",
        "RHOST",
        "STARTED(UTC)",
        "IDLE",
        "IDLE-LEFT",
        "MAX-LEFT",
        "RULE",
        "STATE",
    ];
    if quotas {
        headers.push("QUOTA-LEFT");
    }
    table(&headers, &rows)
}

/// Today's quota left of the session's user, `-` without a quota.
fn quota_cell(s: &SessionInfo) -> String {
    if s.daily_quota <= 0 {
        return "-".into();
    }
    let left = (s.daily_quota - s.quota_used).max(0);
    format!(
        "{} of {}",
        Human(std::time::Duration::from_secs(left as u64)),
        Human(std::time::Duration::from_secs(s.daily_quota as u64))
    )
}

pub fn session_detail(s: &SessionInfo) -> String {
    let mut out = String::new();
    let mut kv =
        |k: &str, v: String| out.push_str(&format!("{k:<16}{}\n", escape::for_terminal(&v)));
    kv("id", s.id.to_string());
    kv("user", format!("{} (uid {})", s.user, s.uid));
    kv("service", s.service.clone());
    kv("tty", s.tty.clone());
    kv("rhost", s.rhost.clone());
    kv("rule", s.rule.clone());
    if s.dry_run {
        kv(
            "enforce",
            "dry-run: deadlines are logged, nothing is ended".into(),
        );
    }
    kv("state", s.state.clone());
    if s.daily_quota > 0 {
        kv("quota left", quota_cell(s));
    }
    kv("started", format!("{} UTC", clock(s.started)));
    kv("idle for", left(s.now, s.last_activity));
    kv(
        "idle deadline",
        format!(
            "{} (in {})",
            clock(s.idle_deadline),
            left(s.idle_deadline, s.now)
        ),
    );
    kv(
        "max deadline",
        format!(
            "{} (in {})",
            clock(s.max_deadline),
            left(s.max_deadline, s.now)
        ),
    );
    kv("leader pid", s.leader_pid.to_string());
    kv(
        "audit session",
        if s.audit_session == u32::MAX {
            "none (process subtree)".into()
        } else {
            s.audit_session.to_string()
        },
    );
    let pids: Vec<String> = s.pids.iter().map(u32::to_string).collect();
    kv("pids", pids.join(" "));
    for w in &s.warnings {
        kv(
            "warning",
            format!(
                "{} at {} for deadline {}",
                w.reason,
                clock(w.at),
                clock(w.deadline)
            ),
        );
    }
    for t in &s.tampers {
        kv("tamper", format!("{} at {}", t.tty, clock(t.at)));
    }
    out
}

/// What a user sees from `timeoutctl status`.
pub fn status_text(list: &[SessionInfo]) -> String {
    if list.is_empty() {
        return "You have no sessions under timeout policy.\n".into();
    }
    let mut out = String::new();
    for s in list {
        if s.dry_run {
            out.push_str(&dry_run_status(s));
            continue;
        }
        let idle = if s.idle_deadline == 0 {
            "no idle limit".to_owned()
        } else {
            format!(
                "idle {}, closes after {} more idle",
                left(s.now, s.last_activity),
                left(s.idle_deadline, s.now)
            )
        };
        let max = if s.max_deadline == 0 {
            "no absolute limit".to_owned()
        } else {
            format!(
                "closes at {} UTC at the latest (in {})",
                clock(s.max_deadline),
                left(s.max_deadline, s.now)
            )
        };
        out.push_str(&escape::for_terminal(&format!(
            "session {} ({} on {}): {idle}; {max}.\n",
            s.id, s.service, s.tty
        )));
    }
    // The quota is the user's, shared by all their sessions: said once.
    if let Some(q) = list.iter().find(|s| s.daily_quota > 0) {
        out.push_str(&format!(
            "Daily quota: {} left today, all your sessions counted as one.\n",
            quota_cell(q)
        ));
    }
    out
}

/// A dry-run session in `status`: its limits are measured, not enforced.
fn dry_run_status(s: &SessionInfo) -> String {
    let idle = if s.idle_deadline == 0 {
        "no idle limit".to_owned()
    } else {
        format!(
            "idle {}, idle limit reached in {}",
            left(s.now, s.last_activity),
            left(s.idle_deadline, s.now)
        )
    };
    let max = if s.max_deadline == 0 {
        "no absolute limit".to_owned()
    } else {
        format!(
            "absolute limit at {} UTC (in {})",
            clock(s.max_deadline),
            left(s.max_deadline, s.now)
        )
    };
    escape::for_terminal(&format!(
        "session {} ({} on {}): dry run, limits are measured but nothing will be closed: {idle}; {max}.\n",
        s.id, s.service, s.tty
    ))
}

pub fn target_text(t: &Target) -> String {
    match t {
        Target::User(u) => format!("user {u}"),
        Target::Group(g) => format!("group {g}"),
    }
}

pub fn revocations_table(list: &[RevocationInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                target_text(&r.target),
                clock(r.since),
                if r.until == 0 {
                    "until unrevoke".into()
                } else {
                    clock(r.until)
                },
                r.by_uid.to_string(),
                r.reason.clone(),
            ]
        })
        .collect();
    table(
        &["TARGET", "SINCE(UTC)", "UNTIL(UTC)", "BY-UID", "REASON"],
        &rows,
    )
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;

/// The daemon's totals as `timeoutctl status` shows them to root.
pub fn daemon_state(resp: &Response) -> Option<String> {
    let Response::DaemonState {
        sessions,
        log_lines_dropped,
    } = resp
    else {
        return None;
    };
    let lost = match log_lines_dropped {
        0 => "no log line lost".to_owned(),
        n => format!("{n} log line(s) could not be delivered to syslog since it started"),
    };
    Some(format!("\nDaemon: {sessions} session(s) in all; {lost}.\n"))
}
