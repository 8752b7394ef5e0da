//! Enforcement precision: how late SIGHUP arrives after an absolute deadline,
//! and after an idle deadline (input typed through the pty master, then
//! stopped). Each leader stamps SIGHUP itself, with CLOCK_REALTIME, the
//! clock of the daemon's deadlines.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::client::{self, Registered};
use crate::ctx::Ctx;
use crate::daemon::{Daemon, Limits};
use crate::fleet::Leader;
use crate::json::J;
use crate::monitor::LeaderState;
use crate::report::Report;
use crate::stats::{summarize, summary_json, Summary};
use crate::util::{now_ns, sleep_until_ns, wait_until, Rng};

/// The kernel stores a tty's atime only when it enters a new 8-second window.
const KERNEL_STEP_S: i64 = 8;
const MS: i64 = 1_000_000;

/// Defaults that end nothing: only the rule under test applies.
fn off() -> Limits {
    Limits::new("off", "off", &[])
}

/// When the daemon registered a session, in its own clock (milliseconds,
/// truncated): not before we sent the request, and not after the
/// `session_open` event it logs right after reading its clock reached our
/// syslog socket (nor after its reply reached us).
#[derive(Debug, Clone, Copy)]
struct RegWindow {
    earliest_ms: i64,
    latest_ms: i64,
}

impl RegWindow {
    fn width_ms(self) -> f64 {
        (self.latest_ms - self.earliest_ms) as f64
    }
}

fn reg_windows(ctx: &Ctx, d: &Daemon, regs: &HashMap<u32, Registered>) -> HashMap<u32, RegWindow> {
    let opened: HashMap<u64, i64> = ctx
        .sink
        .of(d.pid, "session_open")
        .iter()
        .filter_map(|e| Some((e.num("id")? as u64, e.t_ns)))
        .collect();
    regs.iter()
        .map(|(idx, g)| {
            let seen = opened.get(&g.id).copied().unwrap_or(i64::MAX);
            let w = RegWindow {
                earliest_ms: g.t_send_ns / MS,
                latest_ms: seen.min(g.t_recv_ns) / MS,
            };
            (*idx, w)
        })
        .collect()
}

/// Waits until every leader got SIGHUP (or ended).
pub(super) fn wait_hups(
    ctx: &Ctx,
    leaders: &[Leader],
    timeout: Duration,
) -> HashMap<u32, LeaderState> {
    wait_until(timeout, Duration::from_millis(50), || {
        let m = ctx.fleet.monitor.lock();
        leaders.iter().all(|l| {
            m.get(&l.idx)
                .is_some_and(|s| s.first(libc::SIGHUP).is_some() || s.exit_ns.is_some())
        })
    });
    leaders
        .iter()
        .map(|l| (l.idx, ctx.fleet.monitor.state(l.idx)))
        .collect()
}

pub(super) struct Outcome {
    pub(super) lateness_ms: Vec<f64>,
    pub(super) missing: usize,
    pub(super) not_from_daemon: usize,
}

pub(super) fn lateness(
    d: &Daemon,
    leaders: &[Leader],
    states: &HashMap<u32, LeaderState>,
    deadline_ms: impl Fn(&Leader) -> Option<i64>,
) -> Outcome {
    let mut o = Outcome {
        lateness_ms: Vec::new(),
        missing: 0,
        not_from_daemon: 0,
    };
    for l in leaders {
        let hup = states.get(&l.idx).and_then(|s| s.first(libc::SIGHUP));
        match (hup, deadline_ms(l)) {
            (Some((t, sender)), Some(dl)) => {
                if sender != d.pid {
                    o.not_from_daemon += 1;
                }
                o.lateness_ms.push((t - dl * MS) as f64 / 1e6);
            }
            _ => o.missing += 1,
        }
    }
    o
}

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

fn absolute(ctx: &Ctx, r: &mut Report, d: &Daemon, leaders: &[Leader]) -> Result<(), String> {
    let (max, spread) = (ctx.opts.abs_max as i64, ctx.opts.abs_spread as i64);
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
    // Cross-check with the daemon's own deadline (whole seconds).
    let by_id: HashMap<u64, i64> = ctx
        .sink
        .of(d.pid, "session_expired")
        .iter()
        .filter_map(|e| Some((e.num("id")? as u64, e.num("deadline")?)))
        .collect();
    let disagree = regs
        .iter()
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
        .count();
    let (sum, upper, unc) = (
        summarize(&o.lateness_ms),
        summarize(&bound.lateness_ms),
        summarize(&widths),
    );
    r.target(
        "absolute.lateness_p99_ms",
        &format!(
            "absolute-deadline lateness p99 ({} sessions)",
            leaders.len()
        ),
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
    let mut md = format!(
        "{} sessions, absolute limit {max} s, registrations spread evenly over {spread} s, no warnings. \
         Lateness = SIGHUP read by the leader − deadline; deadline = the daemon's registration time + limit, \
         the registration time taken as the arrival of its `session_open` event (or of its reply, if earlier).\n\n",
        leaders.len()
    );
    let _ = writeln!(md, "- lateness: {}", fmt_sum(sum));
    let _ = writeln!(
        md,
        "- upper bound, with the registration time taken as the moment the request was sent: {}",
        fmt_sum(upper)
    );
    let _ = writeln!(
        md,
        "- width of that window (time the request waited for the daemon): {}",
        fmt_sum(unc)
    );
    let _ = writeln!(
        md,
        "- SIGHUP missing: {}; not sent by the daemon: {}; `session_expired` deadline (s) outside the window: {disagree}",
        o.missing, o.not_from_daemon
    );
    r.section("Enforcement precision: absolute deadlines", md);
    r.detail(
        "absolute",
        J::obj([
            ("sessions", J::from(leaders.len())),
            ("limit_s", J::from(max)),
            ("spread_s", J::from(spread)),
            ("lateness_ms", summary_json(sum)),
            ("lateness_upper_bound_ms", summary_json(upper)),
            ("registration_window_ms", summary_json(unc)),
            ("missing_sighup", J::from(o.missing)),
            ("sighup_not_from_daemon", J::from(o.not_from_daemon)),
            ("daemon_deadline_disagreements", J::from(disagree)),
        ]),
    );
    if o.missing > 0 {
        r.error("absolute", format!("{} sessions got no SIGHUP", o.missing));
    }
    Ok(())
}

pub(super) fn fmt_sum(s: Option<Summary>) -> String {
    s.map_or("—".into(), |s| format!("{} ms (n = {})", s.short(1), s.n))
}

pub fn run_idle(ctx: &mut Ctx, r: &mut Report) -> Result<(), String> {
    let idle = ctx.opts.idle_limit;
    let rule = Limits::new(&format!("{idle}s"), "off", &[]);
    let d = ctx.start_daemon("idle", &off(), &[("idle", "stb-idle", rule)])?;
    let n = ctx.opts.precision_sessions;
    let res = ctx
        .spawn_ready(n, &ctx.user_spec())
        .and_then(|mut leaders| {
            let res = idle_run(ctx, r, &d, &mut leaders);
            ctx.fleet.kill(leaders);
            res
        });
    ctx.stop_daemon(d);
    res
}

fn idle_run(ctx: &Ctx, r: &mut Report, d: &Daemon, leaders: &mut [Leader]) -> Result<(), String> {
    let idle = ctx.opts.idle_limit as i64;
    let input_max = ctx.opts.idle_input.max(1) as f64;
    // Input must come in a later second than the ptys' creation (their ctime),
    // or the daemon rightly refuses to credit it.
    sleep_until_ns((now_ns() / 1_000_000_000 + 2) * 1_000_000_000);
    let mut regs: HashMap<u32, Registered> = HashMap::new();
    for l in leaders.iter() {
        let reg = client::register(
            &d.socket,
            l,
            &ctx.host.user,
            ctx.host.uid,
            "stb-idle",
            client::PATIENT,
        )?;
        regs.insert(l.idx, reg);
    }
    // Each session types a byte every second from t0, then stops at a moment
    // drawn uniformly in (0, input_max] s, so stops fall anywhere in the
    // kernel's 8-second windows.
    let t0 = now_ns() + 500 * MS;
    let mut rng = Rng::new(0x5eed ^ leaders.len() as u64);
    let mut writes: Vec<(i64, usize)> = Vec::new();
    for i in 0..leaders.len() {
        let stop = t0 + (rng.range_f64(0.05, input_max) * 1e9) as i64;
        let mut t = t0;
        while t < stop {
            writes.push((t, i));
            t += 1_000_000_000;
        }
        writes.push((stop, i));
    }
    writes.sort_unstable();
    let mut last_input: Vec<i64> = vec![0; leaders.len()];
    for (t, i) in writes {
        sleep_until_ns(t);
        let stamp = now_ns();
        leaders[i]
            .master
            .write_all(b"x")
            .map_err(|e| format!("typing on {}: {e}", leaders[i].tty()))?;
        last_input[i] = stamp;
    }
    std::thread::sleep(Duration::from_millis(300));
    // What the kernel recorded, as the daemon will see it.
    let mut credited_ms: HashMap<u32, i64> = HashMap::new();
    let mut step_ms = Vec::new();
    for (i, l) in leaders.iter().enumerate() {
        let md = std::fs::metadata(l.tty()).map_err(|e| format!("{}: {e}", l.tty()))?;
        let a = md.atime();
        let window_end = (a - a.rem_euclid(KERNEL_STEP_S) + KERNEL_STEP_S) * 1000;
        credited_ms.insert(l.idx, window_end);
        step_ms.push((window_end * MS - last_input[i]) as f64 / 1e6);
    }
    let states = wait_hups(
        ctx,
        leaders,
        Duration::from_secs((input_max as i64 + KERNEL_STEP_S + idle + 60) as u64),
    );
    let windows = reg_windows(ctx, d, &regs);
    let reg_ms = |l: &Leader| windows.get(&l.idx).map(|w| w.latest_ms);
    let beyond = lateness(d, leaders, &states, |l| {
        Some(credited_ms.get(&l.idx)?.max(&reg_ms(l)?) + idle * 1000)
    });
    let index: HashMap<u32, usize> = leaders
        .iter()
        .enumerate()
        .map(|(i, l)| (l.idx, i))
        .collect();
    let vs_input = lateness(d, leaders, &states, |l| {
        Some(last_input[*index.get(&l.idx)?] / MS + idle * 1000)
    });
    let (sb, si, ss) = (
        summarize(&beyond.lateness_ms),
        summarize(&vs_input.lateness_ms),
        summarize(&step_ms),
    );
    r.target(
        "idle.beyond_kernel_p99_ms",
        &format!(
            "idle-deadline lateness beyond the kernel's 8 s step p99 ({} sessions)",
            leaders.len()
        ),
        sb.map(|s| s.p99),
        "ms",
        1000.0,
        "",
    );
    r.figure(
        "idle.beyond_kernel_p50_ms",
        "idle lateness beyond the kernel step p50",
        sb.map(|s| s.p50),
        "ms",
    );
    r.figure(
        "idle.beyond_kernel_max_ms",
        "idle lateness beyond the kernel step max",
        sb.map(|s| s.max),
        "ms",
    );
    r.figure(
        "idle.vs_last_input_p50_ms",
        "idle lateness after the last keystroke p50",
        si.map(|s| s.p50),
        "ms",
    );
    r.figure(
        "idle.vs_last_input_p99_ms",
        "idle lateness after the last keystroke p99",
        si.map(|s| s.p99),
        "ms",
    );
    r.figure(
        "idle.vs_last_input_max_ms",
        "idle lateness after the last keystroke max",
        si.map(|s| s.max),
        "ms",
    );
    let mut md = format!(
        "{} sessions, idle limit {idle} s, no warnings. Each leader reads its terminal; the harness \
         types one byte per second on the pty master, then stops at a random moment within {input_max} s.\n\n",
        leaders.len()
    );
    let _ = writeln!(
        md,
        "- beyond the kernel step: SIGHUP − (end of the 8 s atime window of the last input + limit): {}",
        fmt_sum(sb)
    );
    let _ = writeln!(
        md,
        "- after the last keystroke: SIGHUP − (last input + limit): {}",
        fmt_sum(si)
    );
    let _ = writeln!(
        md,
        "- the floor, kernel step (end of atime window − last input; 0 to 8 s): {}",
        fmt_sum(ss)
    );
    let _ = writeln!(
        md,
        "- SIGHUP missing: {}; not sent by the daemon: {}",
        beyond.missing, beyond.not_from_daemon
    );
    r.section("Enforcement precision: idle deadlines", md);
    r.detail(
        "idle",
        J::obj([
            ("sessions", J::from(leaders.len())),
            ("limit_s", J::from(idle)),
            ("input_up_to_s", J::num(input_max)),
            ("beyond_kernel_step_ms", summary_json(sb)),
            ("after_last_input_ms", summary_json(si)),
            ("kernel_step_ms", summary_json(ss)),
            ("missing_sighup", J::from(beyond.missing)),
            ("sighup_not_from_daemon", J::from(beyond.not_from_daemon)),
        ]),
    );
    if beyond.missing > 0 {
        r.error("idle", format!("{} sessions got no SIGHUP", beyond.missing));
    }
    Ok(())
}
