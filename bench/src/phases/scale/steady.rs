//! The steady state of one scale step: register the plain leaders, wait
//! until every session found its terminal, sample the daemon once a second
//! over the window, and reduce the samples to a `Row`.

use std::time::{Duration, Instant};

use super::row::{Row, WarnRound};
use crate::harness::ctx::Ctx;
use crate::harness::daemon::{Daemon, Sample};
use crate::load::client;
use crate::load::fleet::Leader;
use crate::results::stats::summarize;
use crate::sys;
use crate::util::{now_ns, sleep_until_ns};

#[allow(clippy::too_many_arguments)]
pub(super) fn steady(
    ctx: &Ctx,
    d: &Daemon,
    n: usize,
    via_pam: usize,
    base: Sample,
    t_start: Instant,
    plain: &[Leader],
) -> Result<Row, String> {
    let regs = register_plain(ctx, d, plain)?;
    let settle_s = wait_settled(ctx, d, n, t_start)?;
    std::thread::sleep(Duration::from_secs(5));
    let samples = sample_window(ctx, d)?;
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let ticks = sys::clock_ticks() as f64;
    let window_s = (last.t_ns - first.t_ns) as f64 / 1e9;
    let cpu_s = (last.cpu_ticks - first.cpu_ticks) as f64 / ticks;
    let w = (ctx.opts.cpu_window as usize).clamp(1, samples.len() - 1);
    let pct_worst = worst_pct(&samples, w, ticks);
    let timeline_ms = samples
        .windows(2)
        .map(|s| (s[1].cpu_ticks - s[0].cpu_ticks) as f64 / ticks * 1e3)
        .collect();
    let events = events_between(ctx, d, first.t_ns, last.t_ns);
    let warn_times = warn_times(ctx, d, first.t_ns, last.t_ns);
    let quiet = quiet(&samples, &warn_times, ticks);
    let round = warn_round(&samples, &warn_times);
    Ok(Row {
        n,
        via_pam,
        register_per_s: regs.per_s,
        register_ms: summarize(&regs.ms),
        over_module_timeout: regs.over_module_timeout,
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
        quiet_s: quiet.s,
        quiet_pct: quiet.pct,
        quiet_wakeups: quiet.wakeups,
        round,
        events,
        base,
        end: last,
        lost: lost(ctx, d),
        timeline_ms,
        list: None,
        list_err: None,
    })
}

/// The plain leaders' registrations.
struct Registrations {
    /// Latency of each, ms.
    ms: Vec<f64>,
    over_module_timeout: usize,
    per_s: f64,
}

/// Registers the leaders that did not come through libpam, one after another.
fn register_plain(ctx: &Ctx, d: &Daemon, plain: &[Leader]) -> Result<Registrations, String> {
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
    let per_s = plain.len() as f64 / t_reg.elapsed().as_secs_f64().max(1e-9);
    Ok(Registrations {
        ms: reg_ms,
        over_module_timeout,
        per_s,
    })
}

/// Waits until all `n` sessions found their terminal; the seconds since the
/// step started, or an error if a session is missing.
fn wait_settled(ctx: &Ctx, d: &Daemon, n: usize, t_start: Instant) -> Result<f64, String> {
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
    Ok(settle_s)
}

/// One sample now and one a second for the steady window.
fn sample_window(ctx: &Ctx, d: &Daemon) -> Result<Vec<Sample>, String> {
    let window = ctx.opts.steady_secs.max(2);
    let mut samples = vec![d.sample().ok_or("daemon gone")?];
    let t0 = now_ns();
    for i in 1..=window as i64 {
        sleep_until_ns(t0 + i * 1_000_000_000);
        samples.push(d.sample().ok_or("daemon gone")?);
    }
    Ok(samples)
}

/// The highest CPU share (% of a core) over any `w` consecutive seconds.
fn worst_pct(samples: &[Sample], w: usize, ticks: f64) -> f64 {
    samples
        .windows(w + 1)
        .map(|s| {
            let (a, b) = (s[0], s[w]);
            (b.cpu_ticks - a.cpu_ticks) as f64 / ticks / ((b.t_ns - a.t_ns) as f64 / 1e9) * 100.0
        })
        .fold(0.0, f64::max)
}

/// When the daemon's `session_warn` events arrived within [from, to].
fn warn_times(ctx: &Ctx, d: &Daemon, from: i64, to: i64) -> Vec<i64> {
    ctx.sink
        .of(d.pid, "session_warn")
        .iter()
        .map(|e| e.t_ns)
        .filter(|t| (from..=to).contains(t))
        .collect()
}

/// The part of the window while nothing was due.
struct Quiet {
    s: f64,
    pct: Option<f64>,
    wakeups: Option<f64>,
}

/// Quiet: from the start of the window to a second before the first
/// warning (the whole window if none was due).
fn quiet(samples: &[Sample], warn_times: &[i64], ticks: f64) -> Quiet {
    let quiet_end = warn_times
        .iter()
        .min()
        .map_or(i64::MAX, |t| t - 1_000_000_000);
    let quiet: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.t_ns <= quiet_end)
        .collect();
    let pct = (quiet.len() >= 2).then(|| {
        let (a, b) = (quiet[0], quiet[quiet.len() - 1]);
        (b.cpu_ticks - a.cpu_ticks) as f64 / ticks / ((b.t_ns - a.t_ns) as f64 / 1e9) * 100.0
    });
    let s = (quiet.len().max(1) - 1) as f64;
    let wakeups = (quiet.len() >= 2).then(|| {
        let (a, b) = (quiet[0], quiet[quiet.len() - 1]);
        ((b.voluntary + b.involuntary) - (a.voluntary + a.involuntary)) as f64 / s.max(1.0)
    });
    Quiet { s, pct, wakeups }
}

/// The warning round: CPU between the last sample at least a second
/// before the first warning and the first sample at least a second after
/// the last one.
fn warn_round(samples: &[Sample], warn_times: &[i64]) -> Option<WarnRound> {
    let (first, last) = (&samples[0], &samples[samples.len() - 1]);
    match (warn_times.iter().min(), warn_times.iter().max()) {
        (Some(&a), Some(&b)) => {
            let start = samples
                .iter()
                .rev()
                .find(|s| s.t_ns <= a - 1_000_000_000)
                .unwrap_or(first);
            let end = samples
                .iter()
                .find(|s| s.t_ns >= b + 1_000_000_000)
                .unwrap_or(last);
            Some(WarnRound {
                warnings: warn_times.len(),
                span_s: (b - a) as f64 / 1e9,
                // schedstat (ns): at a few hundred warnings the round is a
                // tick or two of utime+stime.
                cpu_s: (end.sched_ns - start.sched_ns) as f64 / 1e9,
                first_at_s: (a - first.t_ns) as f64 / 1e9,
            })
        }
        _ => None,
    }
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
