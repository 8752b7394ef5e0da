//! Scale: N idle sessions under the everyday policy (15m idle, 12h max), each
//! a real pty held by a real process. Daemon CPU, wake-ups and memory at
//! steady state.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::harness::ctx::{everyday_limits, Ctx};
use crate::harness::daemon::{Daemon, Sample};
use crate::load::client;
use crate::load::fleet::{Leader, SpawnSpec};
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json, Summary};
use crate::sys;
use crate::util::{now_ns, sleep_until_ns};

/// The PAM service whose stack registers with the scale daemon for `n`.
pub fn service(n: usize) -> String {
    format!("stb-scale-{n}")
}

/// Leaders opening their session through libpam at the same time.
const PAM_BATCH: usize = 1;

pub fn daemon_name(n: usize) -> String {
    format!("scale-{n}")
}

struct Row {
    n: usize,
    via_pam: usize,
    register_per_s: f64,
    register_ms: Option<Summary>,
    /// Registrations slower than the module's 500 ms: through the module,
    /// those logins would have gone unprotected (fail=open).
    over_module_timeout: usize,
    settle_s: f64,
    window_s: f64,
    cpu_s: f64,
    sched_s: f64,
    pct_mean: f64,
    pct_worst: f64,
    worst_window_s: f64,
    wakeups_per_s: f64,
    base: Sample,
    end: Sample,
    lost: usize,
    timeline_ms: Vec<f64>,
    /// Length of the part of the window before the first warning was due.
    quiet_s: f64,
    quiet_pct: Option<f64>,
    quiet_wakeups: Option<f64>,
    round: Option<WarnRound>,
    /// Events the daemon logged during the window, by name.
    events: Vec<(String, usize)>,
}

/// The first idle warning written to every session (15m idle, warning 5m
/// before: 10 minutes after the sessions were registered). `cpu_s` covers the
/// round and up to two seconds around it.
#[derive(Debug, Clone, Copy)]
struct WarnRound {
    warnings: usize,
    span_s: f64,
    cpu_s: f64,
    /// When the first warning event arrived, seconds into the window.
    first_at_s: f64,
}

impl Row {
    fn per_session_kib(&self) -> f64 {
        (self.end.rss_kb as f64 - self.base.rss_kb as f64) / self.n as f64
    }

    fn cpu_per_session_hour(&self) -> f64 {
        self.cpu_s / (self.n as f64 * self.window_s / 3600.0)
    }
}

pub fn run(ctx: &mut Ctx, r: &mut Report) -> Result<(), String> {
    let mut rows = Vec::new();
    for n in ctx.opts.scale.clone() {
        match one(ctx, n) {
            Ok(row) => rows.push(row),
            Err(e) => r.error(&format!("scale {n}"), e),
        }
    }
    let judged = rows
        .iter()
        .find(|row| row.n == 10_000)
        .or_else(|| rows.iter().max_by_key(|row| row.n));
    let at = judged.map_or(String::new(), |row| format!("{} sessions", row.n));
    let window = judged.map_or(0.0, |row| row.worst_window_s);
    r.target(
        "scale.cpu_pct_core",
        &format!(
            "CPU at {at} idle (15m/12h, no input), worst {window:.0} s average, first warning round included"
        ),
        judged.map(|row| row.pct_worst),
        "% of a core",
        0.5,
        "",
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
    for row in &rows {
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
    r.section("Scale: idle sessions at steady state", table(&rows));
    r.detail("scale", J::Arr(rows.iter().map(row_json).collect()));
    Ok(())
}

fn table(rows: &[Row]) -> String {
    let mut md = String::from(
        "Every session is a real pty held as controlling tty by a real process, registered over the \
         socket (some through libpam), policy 15m idle / 12h max with warnings 5m and 1m before, no \
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
         was due. *Warning round*: the first idle warning (10 minutes after login) written to every \
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
    md
}

fn row_json(row: &Row) -> J {
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
            "cpu_ms_per_second",
            J::Arr(row.timeline_ms.iter().map(|v| J::num(*v)).collect()),
        ),
    ])
}

fn one(ctx: &mut Ctx, n: usize) -> Result<Row, String> {
    let d = ctx.start_daemon(&daemon_name(n), &everyday_limits(), &[])?;
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
    let res = if bad_pam > 0 {
        Err(format!(
            "{bad_pam} of {via_pam} pam_open_session calls failed (return codes {pam_rcs:?})"
        ))
    } else {
        steady(ctx, d, n, via_pam, base, t_start, &plain)
    };
    leaders.extend(plain);
    ctx.fleet.kill(leaders);
    res
}

#[allow(clippy::too_many_arguments)]
fn steady(
    ctx: &Ctx,
    d: &Daemon,
    n: usize,
    via_pam: usize,
    base: Sample,
    t_start: Instant,
    plain: &[Leader],
) -> Result<Row, String> {
    let t_reg = Instant::now();
    let mut reg_ms = Vec::with_capacity(plain.len());
    for l in plain {
        let g = client::register(
            &d.socket,
            l,
            &ctx.host.user,
            ctx.host.uid,
            "stb-scale",
            client::PATIENT,
        )?;
        reg_ms.push((g.t_recv_ns - g.t_send_ns) as f64 / 1e6);
    }
    let module_ms = client::MODULE_TIMEOUT.as_secs_f64() * 1e3;
    let over_module_timeout = reg_ms.iter().filter(|v| **v > module_ms).count();
    let register_per_s = plain.len() as f64 / t_reg.elapsed().as_secs_f64().max(1e-9);
    let found = ctx.sink.wait_count(
        d.pid,
        "session_tty",
        n,
        Duration::from_secs(120 + n as u64 / 50),
    );
    let settle_s = t_start.elapsed().as_secs_f64();
    let opened = ctx.sink.count(d.pid, "session_open");
    if !found || opened != n {
        return Err(format!(
            "{opened} of {n} sessions registered, {} found their terminal",
            ctx.sink.count(d.pid, "session_tty")
        ));
    }
    std::thread::sleep(Duration::from_secs(5));
    let window = ctx.opts.steady_secs.max(2);
    let mut samples = vec![d.sample().ok_or("daemon gone")?];
    let t0 = now_ns();
    for i in 1..=window as i64 {
        sleep_until_ns(t0 + i * 1_000_000_000);
        samples.push(d.sample().ok_or("daemon gone")?);
    }
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let ticks = sys::clock_ticks() as f64;
    let window_s = (last.t_ns - first.t_ns) as f64 / 1e9;
    let cpu_s = (last.cpu_ticks - first.cpu_ticks) as f64 / ticks;
    let w = (ctx.opts.cpu_window as usize).clamp(1, samples.len() - 1);
    let pct_worst = samples
        .windows(w + 1)
        .map(|s| {
            let (a, b) = (s[0], s[w]);
            (b.cpu_ticks - a.cpu_ticks) as f64 / ticks / ((b.t_ns - a.t_ns) as f64 / 1e9) * 100.0
        })
        .fold(0.0, f64::max);
    let timeline_ms = samples
        .windows(2)
        .map(|s| (s[1].cpu_ticks - s[0].cpu_ticks) as f64 / ticks * 1e3)
        .collect();
    let events = events_between(ctx, d, first.t_ns, last.t_ns);
    let warn_times: Vec<i64> = ctx
        .sink
        .of(d.pid, "session_warn")
        .iter()
        .map(|e| e.t_ns)
        .filter(|t| (first.t_ns..=last.t_ns).contains(t))
        .collect();
    // Quiet: from the start of the window to a second before the first
    // warning (the whole window if none was due).
    let quiet_end = warn_times
        .iter()
        .min()
        .map_or(i64::MAX, |t| t - 1_000_000_000);
    let quiet: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.t_ns <= quiet_end)
        .collect();
    let quiet_pct = (quiet.len() >= 2).then(|| {
        let (a, b) = (quiet[0], quiet[quiet.len() - 1]);
        (b.cpu_ticks - a.cpu_ticks) as f64 / ticks / ((b.t_ns - a.t_ns) as f64 / 1e9) * 100.0
    });
    let quiet_s = (quiet.len().max(1) - 1) as f64;
    let quiet_wakeups = (quiet.len() >= 2).then(|| {
        let (a, b) = (quiet[0], quiet[quiet.len() - 1]);
        ((b.voluntary + b.involuntary) - (a.voluntary + a.involuntary)) as f64 / quiet_s.max(1.0)
    });
    // The warning round: CPU between the last sample at least a second
    // before the first warning and the first sample at least a second after
    // the last one.
    let round = match (warn_times.iter().min(), warn_times.iter().max()) {
        (Some(&a), Some(&b)) => {
            let start = samples
                .iter()
                .rev()
                .find(|s| s.t_ns <= a - 1_000_000_000)
                .unwrap_or(&first);
            let end = samples
                .iter()
                .find(|s| s.t_ns >= b + 1_000_000_000)
                .unwrap_or(&last);
            Some(WarnRound {
                warnings: warn_times.len(),
                span_s: (b - a) as f64 / 1e9,
                cpu_s: (end.cpu_ticks - start.cpu_ticks) as f64 / ticks,
                first_at_s: (a - first.t_ns) as f64 / 1e9,
            })
        }
        _ => None,
    };
    Ok(Row {
        n,
        via_pam,
        register_per_s,
        register_ms: summarize(&reg_ms),
        over_module_timeout,
        settle_s,
        window_s,
        cpu_s,
        sched_s: (last.sched_ns - first.sched_ns) as f64 / 1e9,
        pct_mean: cpu_s / window_s * 100.0,
        pct_worst,
        worst_window_s: w as f64,
        wakeups_per_s: ((last.voluntary + last.involuntary) - (first.voluntary + first.involuntary))
            as f64
            / window_s,
        quiet_s,
        quiet_pct,
        quiet_wakeups,
        round,
        events,
        base,
        end: last,
        lost: lost(ctx, d),
        timeline_ms,
    })
}

/// How many events of each name the daemon logged in [from, to].
fn events_between(ctx: &Ctx, d: &Daemon, from: i64, to: i64) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for e in ctx.sink.lock().iter() {
        if let (Some(name), true) = (e.event(), e.pid == Some(d.pid)) {
            if (from..=to).contains(&e.t_ns) {
                *counts.entry(name.to_owned()).or_default() += 1;
            }
        }
    }
    counts.into_iter().collect()
}

/// Sessions the daemon ended or forgot (there should be none).
fn lost(ctx: &Ctx, d: &Daemon) -> usize {
    ["session_close", "session_expired", "session_terminated"]
        .iter()
        .map(|e| ctx.sink.count(d.pid, e))
        .sum()
}
