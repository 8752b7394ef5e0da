//! `timeoutctl list` at scale (issue 16): the real CLI, run as root against
//! the step's daemon, 10 calls while nothing else happens and 10 while a
//! burst of logins registers from concurrent clients.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::ctx::Ctx;
use crate::harness::daemon::Daemon;
use crate::load::client;
use crate::load::fleet::{Leader, SpawnSpec};
use crate::results::stats::{summarize, Summary};

/// Calls in each half.
const CALLS: usize = 10;
/// The burst's logins are spread over at least this long, so that the
/// calls fall inside it (an unpaced burst of 1,000 is over in 0.15 s).
const BURST_SPAN: Duration = Duration::from_secs(2);
const BURST_CLIENTS: usize = 32;

/// What the 20 calls measured.
#[derive(Debug, Clone, Default)]
pub(super) struct ListTimes {
    /// Wall time of each call (fork + exec + exchange + printing), ms.
    pub(super) quiet_ms: Vec<f64>,
    pub(super) burst_ms: Vec<f64>,
    /// Calls started while the burst was still registering.
    pub(super) inside_burst: usize,
    pub(super) burst_logins: usize,
    pub(super) burst_failed: usize,
    pub(super) burst_s: f64,
    /// The fewest session lines one call printed.
    pub(super) min_lines: usize,
}

impl ListTimes {
    pub(super) fn all(&self) -> Option<Summary> {
        let all: Vec<f64> = self
            .quiet_ms
            .iter()
            .chain(&self.burst_ms)
            .copied()
            .collect();
        summarize(&all)
    }
}

/// Runs the calls; the burst's leaders are returned to be killed with the
/// step's.
pub(super) fn measure(
    ctx: &mut Ctx,
    d: &Daemon,
    burst: usize,
    leaders: &mut Vec<Leader>,
) -> Result<ListTimes, String> {
    let ctl = ctx.bin_dir.join("timeoutctl");
    if !ctl.exists() {
        return Err(format!(
            "{} missing (cargo build --release -p timeoutctl)",
            ctl.display()
        ));
    }
    let mut t = ListTimes {
        min_lines: usize::MAX,
        ..ListTimes::default()
    };
    for _ in 0..CALLS {
        let (ms, lines) = call(&ctl, &d.socket)?;
        t.quiet_ms.push(ms);
        t.min_lines = t.min_lines.min(lines);
        std::thread::sleep(Duration::from_millis(50));
    }
    let spec = SpawnSpec {
        watch_exit: false,
        ..ctx.user_spec()
    };
    let extra = ctx.spawn_ready(burst, &spec)?;
    let res = during_burst(ctx, d, &ctl, &extra, &mut t);
    leaders.extend(extra);
    res.map(|()| t)
}

/// Registers `extra` from concurrent clients, paced over `BURST_SPAN`,
/// while calling `timeoutctl list` back to back.
fn during_burst(
    ctx: &Ctx,
    d: &Daemon,
    ctl: &Path,
    extra: &[Leader],
    t: &mut ListTimes,
) -> Result<(), String> {
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let running = AtomicBool::new(true);
    let gap = BURST_SPAN.as_secs_f64() / extra.len().max(1) as f64;
    let t0 = Instant::now();
    let mut calls: Result<(), String> = Ok(());
    std::thread::scope(|s| {
        let clients: Vec<_> = (0..BURST_CLIENTS)
            .map(|_| {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(l) = extra.get(i) else { break };
                    let due = t0 + Duration::from_secs_f64(gap * i as f64);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    let r = client::register(
                        &d.socket,
                        l,
                        &ctx.host.user,
                        ctx.host.uid,
                        "stb-list-burst",
                        client::MODULE_TIMEOUT,
                    );
                    if r.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        s.spawn(|| {
            for c in clients {
                let _ = c.join();
            }
            running.store(false, Ordering::Release);
        });
        while t.burst_ms.len() < CALLS {
            let inside = running.load(Ordering::Acquire);
            match call(ctl, &d.socket) {
                Ok((ms, lines)) => {
                    t.burst_ms.push(ms);
                    t.min_lines = t.min_lines.min(lines);
                    t.inside_burst += usize::from(inside);
                }
                Err(e) => {
                    calls = Err(e);
                    break;
                }
            }
        }
    });
    t.burst_s = t0.elapsed().as_secs_f64();
    t.burst_logins = extra.len();
    t.burst_failed = failed.into_inner();
    calls
}

/// One `timeoutctl --socket S list`: its wall time (ms) and how many lines
/// it printed.
fn call(ctl: &Path, socket: &Path) -> Result<(f64, usize), String> {
    let t = Instant::now();
    let out = Command::new(ctl)
        .arg("--socket")
        .arg(socket)
        .arg("list")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{}: {e}", ctl.display()))?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        return Err(format!(
            "timeoutctl list: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok((ms, out.stdout.iter().filter(|b| **b == b'\n').count()))
}
