//! The report as aligned text tables for a terminal. Every cell that comes
//! from a log line (group names, users, hosts, rules) passes through
//! `escape::for_terminal` first.

use std::fmt::Write as _;
use std::time::Duration;

use timeoutd::core::audit::escape;
use timeoutd::core::time::duration::Human;

use crate::report::read::time::civil_from_secs;
use crate::report::show::view::{GroupView, OutlierView, ReportView};

/// A duration in seconds as the config writes it; `-` for none.
pub fn human(secs: Option<u64>) -> String {
    secs.map_or_else(
        || "-".to_owned(),
        |s| Human(Duration::from_secs(s)).to_string(),
    )
}

fn limit(secs: Option<u64>) -> String {
    secs.map_or_else(|| "off".to_owned(), |s| human(Some(s)))
}

/// `YYYY-MM-DD HH:MM` UTC.
pub fn utc(t: i64) -> String {
    let c = civil_from_secs(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.min
    )
}

fn cell(s: &str) -> String {
    escape::for_terminal(s).replace(['\t', '\n', '\u{7}'], " ")
}

/// Aligns `rows` under `headers`: the first `left` columns to the left,
/// the others to the right.
fn align(headers: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(&widths).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            if i > 0 {
                line.push_str("  ");
            }
            if i < left {
                line.push_str(c);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn rows(v: &ReportView) -> impl Iterator<Item = &GroupView> {
    v.groups.iter().chain(std::iter::once(&v.total))
}

fn lifetimes(v: &ReportView) -> String {
    let by = v.by.to_uppercase();
    let headers = [
        by.as_str(),
        "SESSIONS",
        "LIFE p50",
        "p90",
        "p99",
        "max",
        "LONGEST IDLE p50",
        "p90",
        "max",
    ];
    let rows: Vec<Vec<String>> = rows(v)
        .map(|g| {
            vec![
                cell(&g.key),
                g.sessions.to_string(),
                human(g.lifetime.p50),
                human(g.lifetime.p90),
                human(g.lifetime.p99),
                human(Some(g.lifetime.max)),
                human(g.longest_idle.p50),
                human(g.longest_idle.p90),
                human(Some(g.longest_idle.max)),
            ]
        })
        .collect();
    align(&headers, &rows, 1)
}

fn endings(v: &ReportView) -> String {
    let by = v.by.to_uppercase();
    let headers = [
        by.as_str(),
        "LOGOUT",
        "IDLE",
        "MAX",
        "CERT",
        "REVOKED",
        "KILLED",
        "OTHER",
        "WOULD-EXPIRE",
        "TAMPER",
    ];
    let rows: Vec<Vec<String>> = rows(v)
        .map(|g| {
            let e = &g.ended;
            let would = g.would_expire + g.would_expire_unsummarised;
            [
                e.logout,
                e.idle,
                e.max,
                e.certificate,
                e.revoked,
                e.killed,
                e.other,
            ]
            .iter()
            .chain([would, g.tamper].iter())
            .map(u64::to_string)
            .fold(vec![cell(&g.key)], |mut r, c| {
                r.push(c);
                r
            })
        })
        .collect();
    align(&headers, &rows, 1)
}

fn unmatched(v: &ReportView) -> String {
    let Some(all) = &v.unmatched_rules else {
        let why = v.config.error.as_deref().unwrap_or("unreadable");
        return format!(
            "Rules that matched no session: unknown, the config {} could not be read ({}).\n",
            cell(&v.config.path),
            cell(why)
        );
    };
    let list = |r: &[String]| {
        if r.is_empty() {
            "none".to_owned()
        } else {
            r.iter().map(|s| cell(s)).collect::<Vec<_>>().join(", ")
        }
    };
    let mut out = format!("Rules that matched no session: {}.\n", list(all));
    if v.by != "rule" {
        for g in &v.groups {
            match &g.unmatched_rules {
                Some(r) if r != all => {
                    let _ = writeln!(out, "  {} {}: {}", v.by, cell(&g.key), list(r));
                }
                _ => {}
            }
        }
    }
    out
}

fn what_if(v: &ReportView) -> String {
    let Some(w) = &v.what_if else {
        return String::new();
    };
    let by = v.by.to_uppercase();
    let headers = [by.as_str(), "SESSIONS", "CUT", "TIME CUT", "ALREADY ENDED"];
    let rows: Vec<Vec<String>> = rows(v)
        .filter_map(|g| {
            let c = g.what_if.as_ref()?;
            let bound = if c.time_cut_lower_bound > 0 {
                " (at least)"
            } else {
                ""
            };
            Some(vec![
                cell(&g.key),
                g.sessions.to_string(),
                c.cut.to_string(),
                format!("{}{bound}", human(Some(c.time_cut_secs))),
                c.already_ended.to_string(),
            ])
        })
        .collect();
    format!(
        "\nWhat if idle={} max={}: {} sessions would have been ended, {} of session time cut off, {} of them already ended by the current policy.\n{}",
        limit(w.idle),
        limit(w.max),
        w.cut,
        human(Some(w.time_cut_secs)),
        w.already_ended,
        align(&headers, &rows, 1)
    )
}

fn outliers(list: &[OutlierView]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let headers = [
        "USER",
        "HOST",
        "RHOST",
        "RULE",
        "DURATION",
        "IDLE MAX",
        "IDLE LIMIT",
        "MAX LIMIT",
        "SCORE",
        "END",
    ];
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|o| {
            let score = if o.limited {
                format!("{:.2}x {}", o.score, o.basis)
            } else {
                "no limit".to_owned()
            };
            vec![
                cell(&o.user),
                cell(&o.host),
                cell(&o.rhost),
                cell(&o.rule),
                human(Some(o.duration)),
                human(Some(o.idle_max)),
                limit(o.limit_idle),
                limit(o.limit_max),
                score,
                o.end.to_owned(),
            ]
        })
        .collect();
    format!(
        "\nOutliers (longest lived or idle relative to their rule's limits):\n{}",
        align(&headers, &rows, 4)
    )
}

/// The whole report as text.
pub fn render(v: &ReportView) -> String {
    let mut out = format!("{} sessions", v.sessions);
    if let (Some(a), Some(b)) = (v.first, v.last) {
        let _ = write!(out, " ended from {} to {} UTC", utc(a), utc(b));
    }
    let _ = writeln!(out, "; {} malformed lines skipped.", v.malformed);
    let _ = writeln!(
        out,
        "Current limits (most common in the summaries): idle {}, max {}.\n",
        limit(v.current_limits.idle),
        limit(v.current_limits.max)
    );
    out.push_str(&lifetimes(v));
    out.push('\n');
    out.push_str(&endings(v));
    out.push('\n');
    out.push_str(&unmatched(v));
    out.push_str(&what_if(v));
    out.push_str(&outliers(&v.outliers));
    out
}
