//! The finished report as plain data: what `--json` writes (field by field
//! as docs/report.md documents it), and what the table, the CSV and the SVG
//! are drawn from.

use serde::Serialize;

use crate::report::read::summary::End;
use crate::report::tally::aggregate::{GroupStats, Report};
use crate::report::tally::outliers::Outlier;
use crate::report::tally::whatif::Limits;

#[derive(Debug, Serialize)]
pub struct ConfigView {
    pub path: String,
    pub readable: bool,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Lifetime {
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p99: Option<u64>,
    pub max: u64,
}

#[derive(Debug, Serialize)]
pub struct LongestIdle {
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub max: u64,
}

/// How many sessions ended each way, in the categories of the table.
#[derive(Debug, Serialize)]
pub struct Ended {
    /// `logout` and `leader_gone`.
    pub logout: u64,
    pub idle: u64,
    pub max: u64,
    /// `cert_expired`.
    pub certificate: u64,
    pub revoked: u64,
    pub killed: u64,
    /// `lost_while_down`, `deadline`, `window`, `quota`, `account_invalid`.
    pub other: u64,
    /// Every `end=` value with its own count.
    pub by_reason: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct WhatIfCounts {
    pub cut: u64,
    pub time_cut_secs: u64,
    pub already_ended: u64,
    pub time_cut_lower_bound: u64,
}

#[derive(Debug, Serialize)]
pub struct GroupView {
    pub key: String,
    pub sessions: u64,
    pub lifetime: Lifetime,
    pub longest_idle: LongestIdle,
    pub ended: Ended,
    pub would_expire: u64,
    pub would_expire_unsummarised: u64,
    pub tamper: u64,
    pub warnings: u64,
    /// `None` when the config was unreadable.
    pub unmatched_rules: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what_if: Option<WhatIfCounts>,
}

#[derive(Debug, Serialize)]
pub struct OutlierView {
    pub user: String,
    pub host: String,
    pub rhost: String,
    pub rule: String,
    pub service: String,
    pub tty: String,
    pub id: u64,
    pub duration: u64,
    pub idle_max: u64,
    pub limit_idle: Option<u64>,
    pub limit_max: Option<u64>,
    pub end: &'static str,
    /// Relative to the limit when `limited`, else seconds.
    pub score: f64,
    pub limited: bool,
    pub basis: &'static str,
}

#[derive(Debug, Serialize)]
pub struct WhatIfView {
    pub idle: Option<u64>,
    pub max: Option<u64>,
    pub cut: u64,
    pub time_cut_secs: u64,
    pub already_ended: u64,
    pub time_cut_lower_bound: u64,
    pub groups: Vec<WhatIfGroup>,
}

#[derive(Debug, Serialize)]
pub struct WhatIfGroup {
    pub key: String,
    #[serde(flatten)]
    pub counts: WhatIfCounts,
}

#[derive(Debug, Serialize)]
pub struct CurrentLimits {
    pub idle: Option<u64>,
    pub max: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ReportView {
    pub sessions: u64,
    pub malformed: u64,
    pub by: &'static str,
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub config: ConfigView,
    pub unmatched_rules: Option<Vec<String>>,
    pub current_limits: CurrentLimits,
    pub total: GroupView,
    pub groups: Vec<GroupView>,
    pub outliers: Vec<OutlierView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what_if: Option<WhatIfView>,
}

fn ended(g: &GroupStats) -> Ended {
    Ended {
        logout: g.ended_by(&[End::Logout, End::LeaderGone]),
        idle: g.ended_by(&[End::Idle]),
        max: g.ended_by(&[End::Max]),
        certificate: g.ended_by(&[End::CertExpired]),
        revoked: g.ended_by(&[End::Revoked]),
        killed: g.ended_by(&[End::Killed]),
        other: g.ended_by(&[
            End::LostWhileDown,
            End::Deadline,
            End::Window,
            End::Quota,
            End::AccountInvalid,
        ]),
        by_reason: End::ALL
            .iter()
            .map(|e| (e.as_str(), g.ended[e.index()]))
            .collect(),
    }
}

fn counts(g: &GroupStats) -> WhatIfCounts {
    WhatIfCounts {
        cut: g.what_if.cut,
        time_cut_secs: g.what_if.time_cut_secs,
        already_ended: g.what_if.already_ended,
        time_cut_lower_bound: g.what_if.lower_bound,
    }
}

fn group(key: &str, g: &GroupStats, rules: Option<&[String]>, what_if: bool) -> GroupView {
    GroupView {
        key: key.to_owned(),
        sessions: g.sessions,
        lifetime: Lifetime {
            p50: g.lifetime.percentile(50.0),
            p90: g.lifetime.percentile(90.0),
            p99: g.lifetime.percentile(99.0),
            max: g.lifetime.max(),
        },
        longest_idle: LongestIdle {
            p50: g.idle.percentile(50.0),
            p90: g.idle.percentile(90.0),
            max: g.idle.max(),
        },
        ended: ended(g),
        would_expire: g.would_expire,
        would_expire_unsummarised: g.would_expire_unsummarised,
        tamper: g.tamper,
        warnings: g.warnings,
        unmatched_rules: rules.map(|r| g.unmatched(r).into_iter().map(str::to_owned).collect()),
        what_if: what_if.then(|| counts(g)),
    }
}

fn outlier(o: Outlier) -> OutlierView {
    OutlierView {
        user: o.who.user,
        host: o.host,
        rhost: o.who.rhost,
        rule: o.who.rule,
        service: o.who.service,
        tty: o.who.tty,
        id: o.who.id,
        duration: o.duration,
        idle_max: o.idle_max,
        limit_idle: o.limit_idle,
        limit_max: o.limit_max,
        end: o.end.as_str(),
        score: (o.score * 1000.0).round() / 1000.0,
        limited: o.limited,
        basis: o.basis,
    }
}

fn what_if_view(limits: Limits, total: &GroupView, groups: &[GroupView]) -> Option<WhatIfView> {
    let t = total.what_if.as_ref()?;
    Some(WhatIfView {
        idle: limits.idle,
        max: limits.max,
        cut: t.cut,
        time_cut_secs: t.time_cut_secs,
        already_ended: t.already_ended,
        time_cut_lower_bound: t.time_cut_lower_bound,
        groups: groups
            .iter()
            .filter_map(|g| {
                let c = g.what_if.as_ref()?;
                Some(WhatIfGroup {
                    key: g.key.clone(),
                    counts: *c,
                })
            })
            .collect(),
    })
}

/// The view of a finished report. `config` is the config file's path and,
/// if it could not be read, why.
pub fn build(mut r: Report, config: ConfigView) -> ReportView {
    let rules = config.readable.then_some(r.opts.rules.as_slice());
    let what_if = r.opts.what_if;
    let groups: Vec<GroupView> = r
        .sorted_groups()
        .into_iter()
        .map(|(k, g)| group(k, g, rules, what_if.is_some()))
        .collect();
    let total = group("(total)", &r.total, rules, what_if.is_some());
    let (idle, max) = r.common_limits();
    let outliers = std::mem::take(&mut r.outliers).into_sorted();
    ReportView {
        sessions: r.sessions,
        malformed: r.malformed,
        by: r.opts.by.map_or("rule", |b| b.as_str()),
        first: r.span.map(|s| s.0),
        last: r.span.map(|s| s.1),
        unmatched_rules: total.unmatched_rules.clone(),
        config,
        current_limits: CurrentLimits { idle, max },
        what_if: what_if.and_then(|l| what_if_view(l, &total, &groups)),
        total,
        groups,
        outliers: outliers.into_iter().map(outlier).collect(),
    }
}
