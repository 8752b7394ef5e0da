//! Idle deadlines: input typed through the pty master, then stopped at a
//! random moment; how late SIGHUP arrives beyond the kernel's atime step and
//! after the last keystroke.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use super::{fmt_sum, lateness, off, reg_windows, wait_hups, KERNEL_STEP_S, MS};
use crate::harness::ctx::Ctx;
use crate::harness::daemon::{Daemon, Limits};
use crate::load::client::{self, Registered};
use crate::load::fleet::Leader;
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json, Summary};
use crate::util::{now_ns, sleep_until_ns, Rng};

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

/// What the phase found.
struct Found {
    sessions: usize,
    idle: i64,
    input_max: f64,
    /// Lateness beyond the end of the kernel's atime window of the last input.
    sb: Option<Summary>,
    /// Lateness after the last keystroke.
    si: Option<Summary>,
    /// The kernel step itself: end of the atime window − last input.
    ss: Option<Summary>,
    missing: usize,
    not_from_daemon: usize,
}

fn idle_run(ctx: &Ctx, r: &mut Report, d: &Daemon, leaders: &mut [Leader]) -> Result<(), String> {
    let idle = ctx.opts.idle_limit as i64;
    let input_max = ctx.opts.idle_input.max(1) as f64;
    // Input must come in a later second than the ptys' creation (their ctime),
    // or the daemon rightly refuses to credit it.
    sleep_until_ns((now_ns() / 1_000_000_000 + 2) * 1_000_000_000);
    let regs = register_all(ctx, d, leaders)?;
    let last_input = type_then_stop(leaders, input_max)?;
    std::thread::sleep(Duration::from_millis(300));
    let (credited_ms, step_ms) = kernel_credit(leaders, &last_input)?;
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
    let found = Found {
        sessions: leaders.len(),
        idle,
        input_max,
        sb: summarize(&beyond.lateness_ms),
        si: summarize(&vs_input.lateness_ms),
        ss: summarize(&step_ms),
        missing: beyond.missing,
        not_from_daemon: beyond.not_from_daemon,
    };
    idle_figures(r, &found);
    r.section("Enforcement precision: idle deadlines", idle_text(&found));
    idle_detail(r, &found);
    if found.missing > 0 {
        r.error("idle", format!("{} sessions got no SIGHUP", found.missing));
    }
    Ok(())
}

fn register_all(
    ctx: &Ctx,
    d: &Daemon,
    leaders: &[Leader],
) -> Result<HashMap<u32, Registered>, String> {
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
    Ok(regs)
}

/// Each session types a byte every second from t0, then stops at a moment
/// drawn uniformly in (0, input_max] s, so stops fall anywhere in the
/// kernel's 8-second windows. Returns when each leader last got input.
fn type_then_stop(leaders: &mut [Leader], input_max: f64) -> Result<Vec<i64>, String> {
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
    Ok(last_input)
}

/// What the kernel recorded, as the daemon will see it: per leader the end
/// of the atime window of its last input (ms), and that step in ms.
fn kernel_credit(
    leaders: &[Leader],
    last_input: &[i64],
) -> Result<(HashMap<u32, i64>, Vec<f64>), String> {
    let mut credited_ms: HashMap<u32, i64> = HashMap::new();
    let mut step_ms = Vec::new();
    for (i, l) in leaders.iter().enumerate() {
        let md = std::fs::metadata(l.tty()).map_err(|e| format!("{}: {e}", l.tty()))?;
        let a = md.atime();
        let window_end = (a - a.rem_euclid(KERNEL_STEP_S) + KERNEL_STEP_S) * 1000;
        credited_ms.insert(l.idx, window_end);
        step_ms.push((window_end * MS - last_input[i]) as f64 / 1e6);
    }
    Ok((credited_ms, step_ms))
}

fn idle_figures(r: &mut Report, f: &Found) {
    let (sb, si) = (f.sb, f.si);
    r.target(
        "idle.beyond_kernel_p99_ms",
        &format!(
            "idle-deadline lateness beyond the kernel's 8 s step p99 ({} sessions)",
            f.sessions
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
}

/// The section's text.
fn idle_text(f: &Found) -> String {
    let (idle, input_max) = (f.idle, f.input_max);
    let mut md = format!(
        "{} sessions, idle limit {idle} s, no warnings. Each leader reads its terminal; the harness \
         types one byte per second on the pty master, then stops at a random moment within {input_max} s.\n\n",
        f.sessions
    );
    let _ = writeln!(
        md,
        "- beyond the kernel step: SIGHUP − (end of the 8 s atime window of the last input + limit): {}",
        fmt_sum(f.sb)
    );
    let _ = writeln!(
        md,
        "- after the last keystroke: SIGHUP − (last input + limit): {}",
        fmt_sum(f.si)
    );
    let _ = writeln!(
        md,
        "- the floor, kernel step (end of atime window − last input; 0 to 8 s): {}",
        fmt_sum(f.ss)
    );
    let _ = writeln!(
        md,
        "- SIGHUP missing: {}; not sent by the daemon: {}",
        f.missing, f.not_from_daemon
    );
    md
}

fn idle_detail(r: &mut Report, f: &Found) {
    r.detail(
        "idle",
        J::obj([
            ("sessions", J::from(f.sessions)),
            ("limit_s", J::from(f.idle)),
            ("input_up_to_s", J::num(f.input_max)),
            ("beyond_kernel_step_ms", summary_json(f.sb)),
            ("after_last_input_ms", summary_json(f.si)),
            ("kernel_step_ms", summary_json(f.ss)),
            ("missing_sighup", J::from(f.missing)),
            ("sighup_not_from_daemon", J::from(f.not_from_daemon)),
        ]),
    );
}
