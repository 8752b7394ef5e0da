//! Enforcement precision: how late SIGHUP arrives after an absolute deadline,
//! and after an idle deadline (input typed through the pty master, then
//! stopped). Each leader stamps SIGHUP itself, with CLOCK_REALTIME, the
//! clock of the daemon's deadlines.

mod absolute;
mod idle;

use std::collections::HashMap;
use std::time::Duration;

use crate::harness::ctx::Ctx;
use crate::harness::daemon::{Daemon, Limits};
use crate::load::client::Registered;
use crate::load::fleet::Leader;
use crate::load::monitor::LeaderState;
use crate::results::stats::Summary;
use crate::util::wait_until;
pub use absolute::run_absolute;
pub use idle::run_idle;

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
pub(in crate::phases) fn wait_hups(
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

pub(in crate::phases) struct Outcome {
    pub(in crate::phases) lateness_ms: Vec<f64>,
    pub(in crate::phases) missing: usize,
    pub(in crate::phases) not_from_daemon: usize,
}

pub(in crate::phases) fn lateness(
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

pub(in crate::phases) fn fmt_sum(s: Option<Summary>) -> String {
    s.map_or("—".into(), |s| format!("{} ms (n = {})", s.short(1), s.n))
}
