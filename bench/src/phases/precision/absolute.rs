//! Absolute deadlines: registrations spread evenly over a few seconds, each
//! session ended `abs_max` seconds after its registration; how late SIGHUP
//! arrives.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::{fmt_sum, lateness, off, reg_windows, wait_hups, RegWindow, MS};
use crate::harness::ctx::Ctx;
use crate::harness::daemon::{Daemon, Limits};
use crate::load::client::{self, Registered};
use crate::load::fleet::Leader;
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json, Summary};
use crate::util::{now_ns, sleep_until_ns};

pub fn run_absolute(ctx: &mut Ctx, r: &mut Report) -> Result<(), String> {
    let max = ctx.opts.abs_max;
    let rule = Limits::new("off", &format!("{max}s"), &[]);
    let d = ctx.start_daemon("absolute", &off(), &[("abs", "stb-abs", rule)])?;
    let n = ctx.opts.precision_sessions;
    let res = ctx.spawn_ready(n, &ctx.user_spec()).and_then(|leaders| {
        let res = absolute(ctx, r, &d, &leaders);
        ctx.fleet.kill(leaders);
        res
    });
    ctx.stop_daemon(d);
    res
}

/// What the phase found.
struct Found {
    sessions: usize,
    max: i64,
    spread: i64,
    /// Lateness from the latest possible registration time.
    sum: Option<Summary>,
    /// Lateness from the earliest: an upper bound.
    upper: Option<Summary>,
    /// Widths of the registration windows.
    unc: Option<Summary>,
    missing: usize,
    not_from_daemon: usize,
    /// `session_expired` deadlines outside the registration window.
    disagree: usize,
}

fn absolute(ctx: &Ctx, r: &mut Report, d: &Daemon, leaders: &[Leader]) -> Result<(), String> {
    let (max, spread) = (ctx.opts.abs_max as i64, ctx.opts.abs_spread as i64);
    let regs = register_spread(ctx, d, leaders, spread)?;
    let states = wait_hups(
        ctx,
        leaders,
        Duration::from_secs((max + spread + 60) as u64),
    );
    let windows = reg_windows(ctx, d, &regs);
    // Headline: the deadline from the latest possible registration time (can
    // understate lateness by our syslog socket's receive delay); the bound
    // from the earliest (can only overstate it).
    let o = lateness(d, leaders, &states, |l| {
        windows.get(&l.idx).map(|w| w.latest_ms + max * 1000)
    });
    let bound = lateness(d, leaders, &states, |l| {
        windows.get(&l.idx).map(|w| w.earliest_ms + max * 1000)
    });
    let widths: Vec<f64> = windows.values().map(|w| w.width_ms()).collect();
    let disagree = disagreements(ctx, d, &regs, &windows, max);
    let found = Found {
        sessions: leaders.len(),
        max,
        spread,
        sum: summarize(&o.lateness_ms),
        upper: summarize(&bound.lateness_ms),
        unc: summarize(&widths),
        missing: o.missing,
        not_from_daemon: o.not_from_daemon,
        disagree,
    };
    absolute_figures(r, &found);
    r.section(
        "Enforcement precision: absolute deadlines",
        absolute_text(&found),
    );
    absolute_detail(r, &found);
    if found.missing > 0 {
        r.error(
            "absolute",
            format!("{} sessions got no SIGHUP", found.missing),
        );
    }
    Ok(())
}

/// Registers the leaders spread evenly over `spread` seconds.
fn register_spread(
    ctx: &Ctx,
    d: &Daemon,
    leaders: &[Leader],
    spread: i64,
) -> Result<HashMap<u32, Registered>, String> {
    let n = leaders.len() as i64;
    let t0 = now_ns() + 200 * MS;
    let mut regs: HashMap<u32, Registered> = HashMap::new();
    for (i, l) in leaders.iter().enumerate() {
        sleep_until_ns(t0 + spread * 1_000 * MS * i as i64 / n.max(1));
        let reg = client::register(
            &d.socket,
            l,
            &ctx.host.user,
            ctx.host.uid,
            "stb-abs",
            client::PATIENT,
        )?;
        regs.insert(l.idx, reg);
    }
    Ok(regs)
}

/// Cross-check with the daemon's own deadline (whole seconds): how many
/// sessions' `session_expired` deadline lies outside their window (or is missing).
fn disagreements(
    ctx: &Ctx,
    d: &Daemon,
    regs: &HashMap<u32, Registered>,
    windows: &HashMap<u32, RegWindow>,
    max: i64,
) -> usize {
    let by_id: HashMap<u64, i64> = ctx
        .sink
        .of(d.pid, "session_expired")
        .iter()
        .filter_map(|e| Some((e.num("id")? as u64, e.num("deadline")?)))
        .collect();
    regs.iter()
        .filter(|(idx, g)| {
            let Some(w) = windows.get(idx) else {
                return true;
            };
            by_id.get(&g.id).is_none_or(|dl| {
                let lo = (w.earliest_ms + max * 1000).div_euclid(1000);
                let hi = (w.latest_ms + max * 1000).div_euclid(1000);
                *dl < lo || *dl > hi
            })
        })
        .count()
}

fn absolute_figures(r: &mut Report, f: &Found) {
    let sum = f.sum;
    r.target(
        "absolute.lateness_p99_ms",
        &format!("absolute-deadline lateness p99 ({} sessions)", f.sessions),
        sum.map(|s| s.p99),
        "ms",
        200.0,
        "",
    );
    r.figure(
        "absolute.lateness_p50_ms",
        "absolute-deadline lateness p50",
        sum.map(|s| s.p50),
        "ms",
    );
    r.figure(
        "absolute.lateness_max_ms",
        "absolute-deadline lateness max",
        sum.map(|s| s.max),
        "ms",
    );
}

/// The section's text.
fn absolute_text(f: &Found) -> String {
    let (max, spread, disagree) = (f.max, f.spread, f.disagree);
    let mut md = format!(
        "{} sessions, absolute limit {max} s, registrations spread evenly over {spread} s, no warnings. \
         Lateness = SIGHUP read by the leader − deadline; deadline = the daemon's registration time + limit, \
         the registration time taken as the arrival of its `session_open` event (or of its reply, if earlier).\n\n",
        f.sessions
    );
    let _ = writeln!(md, "- lateness: {}", fmt_sum(f.sum));
    let _ = writeln!(
        md,
        "- upper bound, with the registration time taken as the moment the request was sent: {}",
        fmt_sum(f.upper)
    );
    let _ = writeln!(
        md,
        "- width of that window (time the request waited for the daemon): {}",
        fmt_sum(f.unc)
    );
    let _ = writeln!(
        md,
        "- SIGHUP missing: {}; not sent by the daemon: {}; `session_expired` deadline (s) outside the window: {disagree}",
        f.missing, f.not_from_daemon
    );
    md
}

fn absolute_detail(r: &mut Report, f: &Found) {
    r.detail(
        "absolute",
        J::obj([
            ("sessions", J::from(f.sessions)),
            ("limit_s", J::from(f.max)),
            ("spread_s", J::from(f.spread)),
            ("lateness_ms", summary_json(f.sum)),
            ("lateness_upper_bound_ms", summary_json(f.upper)),
            ("registration_window_ms", summary_json(f.unc)),
            ("missing_sighup", J::from(f.missing)),
            ("sighup_not_from_daemon", J::from(f.not_from_daemon)),
            ("daemon_deadline_disagreements", J::from(f.disagree)),
        ]),
    );
}
