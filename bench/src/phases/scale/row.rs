//! What one scale step found (a `Row`), and its rendering as the section's
//! tables and as JSON.

use std::fmt::Write as _;

use crate::harness::daemon::Sample;
use crate::results::json::J;
use crate::results::stats::{summarize, summary_json, Summary};

/// What one scale step (N sessions) measured.
pub(super) struct Row {
    pub(super) n: usize,
    pub(super) via_pam: usize,
    pub(super) register_per_s: f64,
    pub(super) register_ms: Option<Summary>,
    /// Registrations slower than the module's 500 ms: through the module,
    /// those logins would have gone unprotected (fail=open).
    pub(super) over_module_timeout: usize,
    pub(super) settle_s: f64,
    pub(super) window_s: f64,
    pub(super) cpu_s: f64,
    pub(super) sched_s: f64,
    pub(super) pct_mean: f64,
    pub(super) pct_worst: f64,
    pub(super) worst_window_s: f64,
    pub(super) wakeups_per_s: f64,
    pub(super) base: Sample,
    pub(super) end: Sample,
    pub(super) lost: usize,
    pub(super) timeline_ms: Vec<f64>,
    /// Length of the part of the window before the first warning was due.
    pub(super) quiet_s: f64,
    pub(super) quiet_pct: Option<f64>,
    pub(super) quiet_wakeups: Option<f64>,
    pub(super) round: Option<WarnRound>,
    /// Events the daemon logged during the window, by name.
    pub(super) events: Vec<(String, usize)>,
    /// `timeoutctl list` after the window, or why it could not run.
    pub(super) list: Option<super::list::ListTimes>,
    pub(super) list_err: Option<String>,
}

/// The first idle warning written to every session (`--warn-after` seconds
/// after the sessions were registered). `cpu_s` covers the
/// round and up to two seconds around it.
#[derive(Debug, Clone, Copy)]
pub(super) struct WarnRound {
    pub(super) warnings: usize,
    pub(super) span_s: f64,
    pub(super) cpu_s: f64,
    /// When the first warning event arrived, seconds into the window.
    pub(super) first_at_s: f64,
}

impl Row {
    pub(super) fn per_session_kib(&self) -> f64 {
        (self.end.rss_kb as f64 - self.base.rss_kb as f64) / self.n as f64
    }

    pub(super) fn cpu_per_session_hour(&self) -> f64 {
        self.cpu_s / (self.n as f64 * self.window_s / 3600.0)
    }
}

pub(super) fn table(rows: &[Row]) -> String {
    let mut md = String::from(
        "Every session is a real pty held as controlling tty by a real process, registered over the \
         socket (some through libpam), policy 15m idle / 12h max with warnings at `--warn-after` \
         after login and 1m before, no \
         input. CPU from /proc/PID/stat utime+stime, wake-ups from voluntary+nonvoluntary context \
         switches, RSS from VmRSS. Registration latency p99, and in brackets how many took longer \
         than the module's 500 ms.\n\n\
         | sessions | via libpam | register/s | register p99 (> 500 ms) | all ttys found after | RSS baseline | RSS | per session | fds | lost |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {} | {:.1} s | {:.1} MiB | {:.1} MiB | {:.2} KiB | {} | {} |",
            row.n,
            row.via_pam,
            row.register_per_s,
            row.register_ms.map_or("—".into(), |s| format!(
                "{:.1} ms ({})",
                s.p99, row.over_module_timeout
            )),
            row.settle_s,
            row.base.rss_kb as f64 / 1024.0,
            row.end.rss_kb as f64 / 1024.0,
            row.per_session_kib(),
            row.end.fds,
            row.lost
        );
    }
    md.push_str(
        "\nCPU over the steady window. *Quiet*: the part of the window before the first warning \
         was due. *Warning round*: the first idle warning (`--warn-after` after login) written to every \
         session; the sessions logged in within seconds, so the round is one burst.\n\n\
         | sessions | window | quiet: length, CPU, wake-ups/s | warning round: warnings in, CPU (per warning) | CPU mean | CPU worst window | CPU s per session-hour | wake-ups/s |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let quiet = match (row.quiet_pct, row.quiet_wakeups) {
            (Some(p), Some(w)) => format!("{:.0} s, {p:.3}%, {w:.2}", row.quiet_s),
            _ => "—".into(),
        };
        let round = row.round.map_or("none in the window".into(), |w| {
            format!(
                "{} in {:.1} s, {:.2} s ({:.0} µs)",
                w.warnings,
                w.span_s,
                w.cpu_s,
                w.cpu_s * 1e6 / w.warnings.max(1) as f64
            )
        });
        let _ = writeln!(
            md,
            "| {} | {:.0} s | {quiet} | {round} | {:.3}% | {:.3}% ({:.0} s) | {:.6} | {:.2} |",
            row.n,
            row.window_s,
            row.pct_mean,
            row.pct_worst,
            row.worst_window_s,
            row.cpu_per_session_hour(),
            row.wakeups_per_s,
        );
    }
    md + &list_table(rows)
}

/// The list calls, one line per step.
fn list_table(rows: &[Row]) -> String {
    let mut md = String::from(
        "\n`timeoutctl list` (the release CLI, wall time of the process) after the window: \
         10 calls in a row, then 10 while a burst of logins registers from 32 clients.\n\n\
         | sessions | quiet p50 / p99 / max | in the burst p50 / p99 / max | calls inside the burst | burst | lines printed (fewest) |\n\
         |---|---|---|---|---|---|\n",
    );
    for row in rows {
        let Some(l) = &row.list else {
            let _ = writeln!(
                md,
                "| {} | not measured: {} | | | | |",
                row.n,
                row.list_err.as_deref().unwrap_or("?")
            );
            continue;
        };
        let short = |v: &[f64]| summarize(v).map_or("—".into(), |s| s.short(1));
        let _ = writeln!(
            md,
            "| {} | {} ms | {} ms | {} of {} | {} logins in {:.1} s, {} failed | {} |",
            row.n,
            short(&l.quiet_ms),
            short(&l.burst_ms),
            l.inside_burst,
            l.burst_ms.len(),
            l.burst_logins,
            l.burst_s,
            l.burst_failed,
            l.min_lines
        );
    }
    md
}

pub(super) fn row_json(row: &Row) -> J {
    J::obj([
        ("sessions", J::from(row.n)),
        ("via_libpam", J::from(row.via_pam)),
        ("register_per_s", J::num(row.register_per_s)),
        ("register_latency_ms", summary_json(row.register_ms)),
        (
            "registrations_over_module_timeout",
            J::from(row.over_module_timeout),
        ),
        ("all_ttys_found_after_s", J::num(row.settle_s)),
        ("window_s", J::num(row.window_s)),
        ("cpu_s_utime_stime", J::num(row.cpu_s)),
        ("cpu_s_schedstat", J::num(row.sched_s)),
        ("cpu_s_per_session_hour", J::num(row.cpu_per_session_hour())),
        ("cpu_pct_mean", J::num(row.pct_mean)),
        ("cpu_pct_worst_window", J::num(row.pct_worst)),
        ("worst_window_s", J::num(row.worst_window_s)),
        ("wakeups_per_s", J::num(row.wakeups_per_s)),
        ("rss_per_session_kib", J::num(row.per_session_kib())),
        ("baseline", crate::harness::daemon::sample_json(row.base)),
        ("end", crate::harness::daemon::sample_json(row.end)),
        ("sessions_lost", J::from(row.lost)),
        ("quiet_s", J::num(row.quiet_s)),
        ("quiet_cpu_pct", J::opt(row.quiet_pct)),
        ("quiet_wakeups_per_s", J::opt(row.quiet_wakeups)),
        (
            "warning_round",
            row.round.map_or(J::Null, |r| {
                J::obj([
                    ("warnings", J::from(r.warnings)),
                    ("span_s", J::num(r.span_s)),
                    ("first_at_s", J::num(r.first_at_s)),
                    ("cpu_s", J::num(r.cpu_s)),
                    (
                        "cpu_us_per_warning",
                        J::num(r.cpu_s * 1e6 / r.warnings.max(1) as f64),
                    ),
                ])
            }),
        ),
        (
            "events_in_window",
            J::Obj(
                row.events
                    .iter()
                    .map(|(k, v)| (k.clone(), J::from(*v)))
                    .collect(),
            ),
        ),
        (
            "list_ms",
            row.list.as_ref().map_or(J::Null, |l| {
                J::obj([
                    ("quiet", summary_json(summarize(&l.quiet_ms))),
                    ("during_burst", summary_json(summarize(&l.burst_ms))),
                    ("calls_inside_burst", J::from(l.inside_burst)),
                    ("burst_logins", J::from(l.burst_logins)),
                    ("burst_failed", J::from(l.burst_failed)),
                    ("burst_s", J::num(l.burst_s)),
                ])
            }),
        ),
        (
            "cpu_ms_per_second",
            J::Arr(row.timeline_ms.iter().map(|v| J::num(*v)).collect()),
        ),
    ])
}
