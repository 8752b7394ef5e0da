//! The report as CSV (RFC 4180), one row per group, durations in seconds.
//! Cells from log lines have control characters escaped as in the table.

use timeoutd::core::audit::escape;

use crate::report::show::view::{GroupView, ReportView};

/// Quotes a cell if it holds a comma, a quote or a line break.
fn cell(s: &str) -> String {
    let s = escape::for_terminal(s);
    if s.contains([',', '"', '\n', '\r', '\t']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(String::new, |n| n.to_string())
}

fn row(by: &str, g: &GroupView) -> Vec<String> {
    let e = &g.ended;
    let mut r = vec![cell(by), cell(&g.key), g.sessions.to_string()];
    r.extend([g.lifetime.p50, g.lifetime.p90, g.lifetime.p99].map(opt));
    r.push(g.lifetime.max.to_string());
    r.extend([g.longest_idle.p50, g.longest_idle.p90].map(opt));
    r.push(g.longest_idle.max.to_string());
    r.extend(
        [
            e.logout,
            e.idle,
            e.max,
            e.certificate,
            e.revoked,
            e.killed,
            e.other,
            g.would_expire + g.would_expire_unsummarised,
            g.tamper,
            g.warnings,
        ]
        .map(|n| n.to_string()),
    );
    if let Some(w) = &g.what_if {
        r.extend([w.cut, w.time_cut_secs, w.already_ended].map(|n| n.to_string()));
    }
    r.push(cell(
        &g.unmatched_rules
            .as_ref()
            .map_or_else(String::new, |u| u.join(";")),
    ));
    r
}

/// The header and one line per group.
pub fn render(v: &ReportView) -> String {
    let mut header = vec![
        "by",
        "group",
        "sessions",
        "lifetime_p50",
        "lifetime_p90",
        "lifetime_p99",
        "lifetime_max",
        "idle_p50",
        "idle_p90",
        "idle_max",
        "ended_logout",
        "ended_idle",
        "ended_max",
        "ended_certificate",
        "ended_revoked",
        "ended_killed",
        "ended_other",
        "would_expire",
        "tamper",
        "warnings",
    ];
    if v.what_if.is_some() {
        header.extend([
            "what_if_cut",
            "what_if_time_cut_secs",
            "what_if_already_ended",
        ]);
    }
    header.push("unmatched_rules");
    let mut out = header.join(",");
    out.push_str("\r\n");
    for g in &v.groups {
        out.push_str(&row(v.by, g).join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_escaped() {
        assert_eq!(cell("alice"), "alice");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("\u{1b}[2J"), "\\x1b[2J");
        assert_eq!(cell("a\nb"), "\"a\nb\"");
    }
}
