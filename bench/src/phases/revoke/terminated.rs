//! Issue 16: how long after a revoked session's last process is gone its
//! `session_terminated` reaches the sink, and what the daemon spent until then.

use std::time::Duration;

use crate::harness::ctx::Ctx;
use crate::harness::daemon::Daemon;
use crate::load::fleet::Leader;
use crate::load::monitor::LeaderState;
use crate::results::report::Report;
use crate::results::stats::{summarize, Summary};
use crate::util::now_ns;

use super::{RevokePath, Revoked};

/// Issue 16: from the moment a session's last process was gone (the leader,
/// which has no children, seen exiting through its pidfd by the harness) to
/// the arrival of the daemon's `session_terminated` for it at the sink.
pub(super) struct Terminated {
    /// One per leader seen exiting; a session whose event did not come
    /// within the wait counts as the time waited (a lower bound).
    pub(super) ms: Vec<f64>,
    censored: usize,
    /// Leaders whose exit the harness did not see (no figure for them).
    unknown: usize,
    pub(super) sum: Option<Summary>,
    /// How long the harness waited for the events.
    waited_s: f64,
    /// The daemon's CPU from the request until the last event came (ms):
    /// the request and the ends it proved after it.
    pub(super) daemon_cpu_ms: Option<f64>,
    /// Its time runnable but waiting for a CPU meanwhile (ms).
    pub(super) daemon_runq_ms: Option<f64>,
}

/// Waits (bounded: the grace ladder of a daemon that does not watch its
/// pidfds, 10 s + SIGTERM's step, with room) for one `session_terminated`
/// per leader and pairs them by `pid=`.
pub(super) fn terminated(ctx: &Ctx, d: &Daemon, leaders: &[Leader], req: &Revoked) -> Terminated {
    let t = std::time::Instant::now();
    ctx.sink.wait_count(
        d.pid,
        "session_terminated",
        leaders.len(),
        Duration::from_secs(40),
    );
    let after = d.sample();
    let since = |now: u64, then: u64| now.saturating_sub(then) as f64 / 1e6;
    let daemon_cpu_ms = after.map(|a| since(a.sched_ns, req.sched_before_ns));
    let daemon_runq_ms = after.map(|a| since(a.run_delay_ns, req.runq_before_ns));
    let logged: std::collections::HashMap<i64, i64> = ctx
        .sink
        .of(d.pid, "session_terminated")
        .iter()
        .filter_map(|e| Some((e.num("pid")?, e.t_ns)))
        .collect();
    let waited_s = t.elapsed().as_secs_f64();
    let (mut ms, mut censored, mut unknown) = (Vec::new(), 0, 0);
    for l in leaders {
        let Some(gone) = gone_at(&ctx.fleet.monitor.state(l.idx)) else {
            unknown += 1;
            continue;
        };
        match logged.get(&i64::from(l.pid)) {
            Some(at) => ms.push((at - gone) as f64 / 1e6),
            // Not logged by the end of the wait: at least that late.
            None => {
                censored += 1;
                ms.push((now_ns() - gone) as f64 / 1e6);
            }
        }
    }
    Terminated {
        sum: summarize(&ms),
        ms,
        censored,
        unknown,
        waited_s,
        daemon_cpu_ms,
        daemon_runq_ms,
    }
}

/// When a leader that exits at SIGHUP was gone, at the latest: the moment it
/// read the signal, just before its exit(2). The harness's pidfd stamp
/// comes later, by as much as its monitor thread waited for a CPU among a
/// thousand exiting leaders (measured: in some runs all 1,000 stamped at one
/// instant, 34 to 48 ms after the median leader read its SIGHUP), which
/// shortened the figure; this bound lengthens it by the exit itself.
/// `None` if the harness never saw it exit.
fn gone_at(s: &LeaderState) -> Option<i64> {
    let seen = s.exit_ns?;
    Some(s.first(libc::SIGHUP).map_or(seen, |(t, _)| t.min(seen)))
}

pub(super) fn terminated_figures(r: &mut Report, n: usize, term: &Terminated, path: RevokePath) {
    let what = path.what();
    let value = (term.unknown == 0)
        .then_some(term.sum.map(|s| s.p99))
        .flatten();
    let note = if term.unknown > 0 {
        format!(
            "not measured: the exit of {} of {n} leaders was not seen",
            term.unknown
        )
    } else if term.censored > 0 {
        format!(
            "{} of {n} not logged within {:.0} s, counted as that wait: a lower bound",
            term.censored, term.waited_s
        )
    } else {
        format!("{n} sessions whose one process exits at SIGHUP")
    };
    r.target(
        &path.key("terminated_p99_ms"),
        &format!("last process of a revoked session {what} gone → session_terminated logged, p99"),
        value,
        "ms",
        50.0,
        &note,
    );
    r.figure(
        &path.key("terminated_max_ms"),
        &format!("{what}: last process gone → session_terminated logged, max (a lower bound if any was not logged)"),
        (term.unknown == 0)
            .then_some(term.sum.map(|s| s.max))
            .flatten(),
        "ms",
    );
    r.figure(
        &path.key("daemon_cpu_until_terminated_ms"),
        &format!(
            "revocation {what}: daemon CPU from the request until the last session_terminated"
        ),
        term.daemon_cpu_ms,
        "ms",
    );
}

fn ms(v: Option<f64>) -> String {
    v.map_or("—".into(), |ms| format!("{ms:.1} ms"))
}

pub(super) fn terminated_text(n: usize, term: &Terminated) -> String {
    format!(
        "- session_terminated logged for {} of {n} within {:.0} s; ms after the session's last process was gone \
         (the others counted as the wait): {}\n\
         - the daemon from the request until the last of them: {} on CPU, {} runnable but \
         waiting for a CPU\n",
        term.ms.len() - term.censored,
        term.waited_s,
        term.sum.map_or("—".into(), |s| s.short(1)),
        ms(term.daemon_cpu_ms),
        ms(term.daemon_runq_ms),
    )
}
