//! Scale: N idle sessions under the everyday policy (15m idle, 12h max), each
//! a real pty held by a real process. Daemon CPU, wake-ups and memory at
//! steady state.

mod list;
mod row;
mod steady;

use std::time::{Duration, Instant};

use crate::harness::ctx::Ctx;
use crate::harness::daemon::Daemon;
use crate::harness::daemon::Limits;
use crate::load::fleet::SpawnSpec;
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::summarize;
use list::ListTimes;
use row::{row_json, table, Row};
use steady::steady;

/// The PAM service whose stack registers with the scale daemon for `n`.
pub fn service(n: usize) -> String {
    format!("stb-scale-{n}")
}

/// Leaders opening their session through libpam at the same time.
const PAM_BATCH: usize = 1;

/// The everyday limits (15m idle, 12h max) with the first warning moved
/// so that it falls `warn_after` seconds after the last activity (login):
/// the everyday 5m warning would fall 10 minutes after login, and the
/// window would have to last 11 minutes to contain it.
pub fn scale_limits(warn_after: u64) -> Limits {
    let first = format!("{}s", 900u64.saturating_sub(warn_after).max(61));
    Limits::new("15m", "12h", &[&first, "1m"])
}

pub fn daemon_name(n: usize) -> String {
    format!("scale-{n}")
}

pub fn run(ctx: &mut Ctx, r: &mut Report) -> Result<(), String> {
    let mut rows = Vec::new();
    for n in ctx.opts.scale.clone() {
        match one(ctx, n) {
            Ok(row) => rows.push(row),
            Err(e) => r.error(&format!("scale {n}"), e),
        }
    }
    scale_targets(r, &rows);
    for row in &rows {
        row_figures(r, row);
    }
    r.section("Scale: idle sessions at steady state", table(&rows));
    r.detail("scale", J::Arr(rows.iter().map(row_json).collect()));
    Ok(())
}

/// The targets, judged at 10,000 sessions (or the largest step run).
fn scale_targets(r: &mut Report, rows: &[Row]) {
    let judged = rows
        .iter()
        .find(|row| row.n == 10_000)
        .or_else(|| rows.iter().max_by_key(|row| row.n));
    let at = judged.map_or(String::new(), |row| format!("{} sessions", row.n));
    let window = judged.map_or(0.0, |row| row.worst_window_s);
    r.target(
        "scale.cpu_pct_core",
        &format!(
            "CPU at {at} idle (15m/12h, no input), worst {window:.0} s average, warning burst inside it"
        ),
        judged.map(|row| row.pct_worst),
        "% of a core",
        0.5,
        &judged.map_or(String::new(), |row| match row.round {
            Some(w) => format!(
                "{} warnings in the window, first at {:.0} s, {:.2} s CPU",
                w.warnings, w.first_at_s, w.cpu_s
            ),
            None => "no warning round in the window".into(),
        }),
    );
    // Judged only on a round of (nearly) every session: a few stragglers in
    // the window are no burst.
    let n = judged.map_or(0, |row| row.n);
    let round = judged.and_then(|row| row.round);
    let whole = round.filter(|w| w.warnings * 10 >= n * 9);
    r.target(
        "scale.cpu_us_per_warning",
        &format!("daemon CPU per session warned, {at}, warnings due in the same second"),
        whole.map(|w| w.cpu_s * 1e6 / w.warnings.max(1) as f64),
        "µs",
        30.0,
        &match (round, whole) {
            (_, Some(w)) => format!("{} warnings over {:.1} s", w.warnings, w.span_s),
            (Some(w), None) => format!(
                "not measured: only {} of {n} warnings fell in the window (--warn-after)",
                w.warnings
            ),
            (None, _) => "not measured: no warning round in the window (--warn-after)".into(),
        },
    );
    let list = judged.and_then(|row| row.list.as_ref());
    r.target(
        "scale.list_p99_ms",
        &format!("timeoutctl list at {at}, p99 of 20 calls, 10 during a login burst"),
        list.and_then(ListTimes::all).map(|s| s.p99),
        "ms",
        100.0,
        &match (list, judged.and_then(|row| row.list_err.as_ref())) {
            (Some(l), _) => format!(
                "{} calls inside a burst of {} logins in {:.1} s, {} failed; burst p99 {}",
                l.inside_burst,
                l.burst_logins,
                l.burst_s,
                l.burst_failed,
                summarize(&l.burst_ms).map_or("—".into(), |s| format!("{:.1} ms", s.p99))
            ),
            (None, Some(e)) => format!("not measured: {e}"),
            (None, None) => "not measured: no scale step".into(),
        },
    );
    r.target(
        "scale.quiet_cpu_pct_core",
        &format!("CPU at {at} idle, while nothing is due (before the first warning)"),
        judged.and_then(|row| row.quiet_pct),
        "% of a core",
        0.5,
        "",
    );
    r.target(
        "scale.rss_per_session_kib",
        &format!("RSS per session above baseline, {at}"),
        judged.map(Row::per_session_kib),
        "KiB",
        2.0,
        "",
    );
    r.target(
        "scale.rss_total_mib",
        &format!("RSS total, {at}"),
        judged.map(|row| row.end.rss_kb as f64 / 1024.0),
        "MiB",
        30.0,
        "",
    );
}

/// One step's figures.
fn row_figures(r: &mut Report, row: &Row) {
    let n = row.n;
    r.figure(
        &format!("scale.{n}.cpu_s_per_session_hour"),
        &format!("CPU seconds per session-hour, {n} sessions"),
        Some(row.cpu_per_session_hour()),
        "s",
    );
    r.figure(
        &format!("scale.{n}.cpu_pct_mean"),
        &format!("CPU mean over {:.0} s, {n} sessions", row.window_s),
        Some(row.pct_mean),
        "% of a core",
    );
    r.figure(
        &format!("scale.{n}.wakeups_per_s"),
        &format!("daemon wake-ups per second, {n} sessions"),
        Some(row.wakeups_per_s),
        "/s",
    );
    r.figure(
        &format!("scale.{n}.quiet_wakeups_per_s"),
        &format!("daemon wake-ups per second while nothing is due, {n} sessions"),
        row.quiet_wakeups,
        "/s",
    );
    // Only a window longer than 10 minutes contains the first warnings.
    if let Some(w) = row.round {
        r.figure(
            &format!("scale.{n}.cpu_us_per_warning"),
            &format!("daemon CPU per idle warning written, {n} sessions at once"),
            Some(w.cpu_s * 1e6 / w.warnings.max(1) as f64),
            "µs",
        );
    }
    r.figure(
        &format!("scale.{n}.rss_baseline_mib"),
        &format!("RSS baseline (no session), {n} run"),
        Some(row.base.rss_kb as f64 / 1024.0),
        "MiB",
    );
}

fn one(ctx: &mut Ctx, n: usize) -> Result<Row, String> {
    let d = ctx.start_daemon(&daemon_name(n), &scale_limits(ctx.opts.warn_after), &[])?;
    let res = measure(ctx, &d, n);
    ctx.stop_daemon(d);
    res
}

fn measure(ctx: &mut Ctx, d: &Daemon, n: usize) -> Result<Row, String> {
    std::thread::sleep(Duration::from_secs(1));
    let base = d.sample().ok_or("daemon gone")?;
    let via_pam = ctx.opts.pam_leaders.min(n);
    let plain_spec = SpawnSpec {
        watch_exit: false,
        ..ctx.user_spec()
    };
    let pam_spec = SpawnSpec {
        pam: Some((service(n), ctx.host.user.clone())),
        ..plain_spec.clone()
    };
    let t_start = Instant::now();
    // One at a time: pam_wrapper gives each process a runtime directory
    // named by one of 62 characters, picked without locking; two leaders
    // starting at once may pick the same one, and the first to remove it
    // makes the other exit(1) inside pam_start.
    let mut leaders = Vec::with_capacity(n);
    while leaders.len() < via_pam {
        let k = (via_pam - leaders.len()).min(PAM_BATCH);
        match ctx.spawn_ready(k, &pam_spec) {
            Ok(batch) => leaders.extend(batch),
            Err(e) => {
                ctx.fleet.kill(leaders);
                return Err(e);
            }
        }
    }
    let pam_rcs: Vec<i32> = leaders
        .iter()
        .map(|l| ctx.fleet.monitor.state(l.idx).pam_rc.unwrap_or(-1))
        .filter(|rc| *rc != 0)
        .collect();
    let bad_pam = pam_rcs.len();
    let plain = match ctx.spawn_ready(n - via_pam, &plain_spec) {
        Ok(p) => p,
        Err(e) => {
            ctx.fleet.kill(leaders);
            return Err(e);
        }
    };
    let mut res = if bad_pam > 0 {
        Err(format!(
            "{bad_pam} of {via_pam} pam_open_session calls failed (return codes {pam_rcs:?})"
        ))
    } else {
        steady(ctx, d, n, via_pam, base, t_start, &plain)
    };
    leaders.extend(plain);
    if let Ok(row) = &mut res {
        match list::measure(ctx, d, ctx.opts.storm, &mut leaders) {
            Ok(l) => row.list = Some(l),
            Err(e) => row.list_err = Some(e),
        }
    }
    ctx.fleet.kill(leaders);
    res
}
