//! The two timeoutd events the report reads, checked field by field:
//! `session_summary v=1` (one per ended session) and `session_expired
//! dry_run=1` (a would-be expiry). Anything else from timeoutd is ignored;
//! a summary or dry-run expiry that lacks a field or has a bad number is
//! malformed.

use crate::report::read::fields;

/// Most recorded gaps in one summary.
pub const MAX_GAPS: usize = 16;

/// How a session ended (`end=`), in the order docs/report.md lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    Logout,
    LeaderGone,
    LostWhileDown,
    Idle,
    Max,
    CertExpired,
    Deadline,
    Window,
    Quota,
    Revoked,
    AccountInvalid,
    Killed,
}

impl End {
    pub const ALL: [End; 12] = [
        End::Logout,
        End::LeaderGone,
        End::LostWhileDown,
        End::Idle,
        End::Max,
        End::CertExpired,
        End::Deadline,
        End::Window,
        End::Quota,
        End::Revoked,
        End::AccountInvalid,
        End::Killed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            End::Logout => "logout",
            End::LeaderGone => "leader_gone",
            End::LostWhileDown => "lost_while_down",
            End::Idle => "idle",
            End::Max => "max",
            End::CertExpired => "cert_expired",
            End::Deadline => "deadline",
            End::Window => "window",
            End::Quota => "quota",
            End::Revoked => "revoked",
            End::AccountInvalid => "account_invalid",
            End::Killed => "killed",
        }
    }

    fn parse(s: &str) -> Option<End> {
        End::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Whether the current policy ended the session (a limit, a deadline,
    /// a window, a quota or the certificate), as opposed to the user, the
    /// system or an admin.
    pub fn by_policy(self) -> bool {
        matches!(
            self,
            End::Idle | End::Max | End::CertExpired | End::Deadline | End::Window | End::Quota
        )
    }

    /// Index into [`End::ALL`].
    pub fn index(self) -> usize {
        End::ALL.iter().position(|e| *e == self).unwrap_or(0)
    }
}

/// Who a session was: the fields groups are made of.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Who {
    pub id: u64,
    pub user: String,
    pub service: String,
    pub tty: String,
    pub rhost: String,
    pub rule: String,
}

/// One `session_summary v=1` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub who: Who,
    pub duration: u64,
    pub active: u64,
    pub idle_max: u64,
    /// (offset from login, length), sorted by offset.
    pub gaps: Vec<(u64, u64)>,
    pub warnings: u64,
    pub tamper: u64,
    pub end: End,
    pub dry_run_expiries: u64,
    pub limit_idle: Option<u64>,
    pub limit_max: Option<u64>,
}

/// What one timeoutd line means to the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Summary(Box<Summary>),
    /// `session_expired ... dry_run=1`.
    DryRunExpiry(Who),
    /// Any other timeoutd event.
    Other,
    Malformed,
}

/// Classifies the message of one timeoutd line.
pub fn classify(message: &str) -> Event {
    let name = message
        .strip_prefix("event=")
        .map(|r| r.split(' ').next().unwrap_or(""));
    match name {
        Some("session_summary") | Some("session_expired") => {}
        _ => return Event::Other,
    }
    let Ok(f) = fields::split(message) else {
        return Event::Malformed;
    };
    let get = |k: &str| f.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str());
    let parsed = if name == Some("session_summary") {
        summary(&get).map(|s| Event::Summary(Box::new(s)))
    } else if get("dry_run") == Some("1") {
        who(&get).map(Event::DryRunExpiry)
    } else {
        Some(Event::Other)
    };
    parsed.unwrap_or(Event::Malformed)
}

fn num(v: Option<&str>) -> Option<u64> {
    let v = v?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn limit(v: Option<&str>) -> Option<Option<u64>> {
    match v? {
        "off" => Some(None),
        s => num(Some(s)).filter(|n| *n > 0).map(Some),
    }
}

fn who<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Option<Who> {
    Some(Who {
        id: num(get("id"))?,
        user: get("user")?.to_owned(),
        service: get("service")?.to_owned(),
        tty: get("tty").unwrap_or("").to_owned(),
        rhost: get("rhost")?.to_owned(),
        rule: get("rule")?.to_owned(),
    })
}

fn summary<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Option<Summary> {
    if get("v")? != "1" {
        return None;
    }
    num(get("uid"))?;
    get("tty")?;
    let s = Summary {
        who: who(get)?,
        duration: num(get("duration"))?,
        active: num(get("active"))?,
        idle_max: num(get("idle_max"))?,
        gaps: gaps(get("gaps")?)?,
        warnings: num(get("warnings"))?,
        tamper: num(get("tamper"))?,
        end: End::parse(get("end")?)?,
        dry_run_expiries: num(get("dry_run_expiries"))?,
        limit_idle: limit(get("limit_idle"))?,
        limit_max: limit(get("limit_max"))?,
    };
    Some(s)
}

/// `OFF:LEN,OFF:LEN,...`, at most [`MAX_GAPS`], re-sorted by offset.
pub fn gaps(v: &str) -> Option<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    if v.is_empty() {
        return Some(out);
    }
    for pair in v.split(',') {
        if out.len() == MAX_GAPS {
            return None;
        }
        let (off, len) = pair.split_once(':')?;
        out.push((num(Some(off))?, num(Some(len))?));
    }
    out.sort_unstable();
    Some(out)
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
