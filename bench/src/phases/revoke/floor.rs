//! The floor of a revocation on this host: the same number of leaders,
//! opened and registered the same way, signalled by the harness itself while
//! their daemon is stopped (SIGSTOP): SIGHUP and SIGCONT through a pidfd
//! each, in one loop, as the daemon's first pass sends them. What is left
//! is the leaders' own work (each wakes, stamps, exits) and the kernel's,
//! which no revoker can go under on this machine; the daemon's figure
//! above it is the daemon's part.

use std::fmt::Write as _;
use std::os::fd::OwnedFd;

use crate::harness::ctx::Ctx;
use crate::harness::daemon::Daemon;
use crate::load::fleet::Leader;
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::summary_json;
use crate::sys;
use crate::util::{host_busy_ms, now_ns};

use super::{arrivals, harness_cpu_ms, RevokePath};

/// A daemon stopped with SIGSTOP until this is dropped.
struct Paused(u32);

impl Paused {
    fn new(d: &Daemon) -> Result<Paused, String> {
        sys::kill_child(d.pid, libc::SIGSTOP).map_err(|e| format!("SIGSTOP to the daemon: {e}"))?;
        Ok(Paused(d.pid))
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = sys::kill_child(self.0, libc::SIGCONT);
    }
}

/// The floor, with `d` and its `leaders` (see the module doc).
pub(super) fn measure(
    ctx: &Ctx,
    r: &mut Report,
    d: &Daemon,
    leaders: &[Leader],
    path: RevokePath,
) -> Result<(), String> {
    let pidfds: Vec<OwnedFd> = leaders
        .iter()
        .map(|l| sys::pidfd_open(l.pid))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("pidfd_open of a leader: {e}"))?;
    let paused = Paused::new(d)?;
    let busy_before = host_busy_ms();
    let harness_before = harness_cpu_ms(ctx);
    let t0 = now_ns();
    let mut sent = 0usize;
    for fd in &pidfds {
        sent += usize::from(sys::pidfd_signal(fd, libc::SIGHUP).is_ok());
        // A leader may be gone already: as for the daemon, that is no error.
        let _ = sys::pidfd_signal(fd, libc::SIGCONT);
    }
    let loop_ms = (now_ns() - t0) as f64 / 1e6;
    let got = arrivals(ctx, d, leaders, t0);
    drop(paused);
    let n = leaders.len();
    let busy = got.busy_after.zip(busy_before).map(|(a, b)| a - b);
    let harness = got.harness_after.zip(harness_before).map(|(a, b)| a - b);
    let what = path.what();
    let complete = sent == n && got.hup.len() == n;
    r.figure(
        &path.key("floor_last_sighup_ms"),
        &format!(
            "revocation floor {what}: the harness signals the {n} leaders itself (daemon stopped): \
             first signal → last SIGHUP received"
        ),
        complete.then_some(got.hup_sum.map(|s| s.max)).flatten(),
        "ms",
    );
    r.figure(
        &path.key("floor_host_busy_ms"),
        &format!("revocation floor {what}: the host's busy CPU until every leader was gone"),
        busy,
        "ms",
    );
    let mut md = format!(
        "The same {n} leaders, opened the same way, signalled by st-bench itself (SIGHUP and \
         SIGCONT through a pidfd each, in one loop) while their daemon was stopped (SIGSTOP). \
         Times from the first signal.\n\n"
    );
    let _ = writeln!(
        md,
        "- the loop sent SIGHUP to {sent} of {n} in {loop_ms:.1} ms"
    );
    let short = |s: Option<crate::results::stats::Summary>| s.map_or("—".into(), |s| s.short(1));
    let _ = writeln!(
        md,
        "- SIGHUP received: {} of {n}; ms after the first signal: {}",
        got.hup.len(),
        short(got.hup_sum)
    );
    let _ = writeln!(
        md,
        "- processes gone: {} of {n}; ms after the first signal: {}",
        got.gone.len(),
        short(got.gone_sum)
    );
    let fmt = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.0}"));
    let _ = writeln!(
        md,
        "- the whole host until every leader was gone (seen within 20 ms): {} ms of busy CPU; \
         of it the harness's {} ms, and the rest the leaders' exits and the kernel's work for them",
        fmt(busy),
        fmt(harness),
    );
    r.section(&format!("Revocation floor {what}"), md);
    r.detail(
        &path.key("floor").replace('.', "_"),
        J::obj([
            ("sessions", J::from(n)),
            ("signalled", J::from(sent)),
            ("signal_loop_ms", J::num(loop_ms)),
            ("sighup_after_first_signal_ms", summary_json(got.hup_sum)),
            ("gone_after_first_signal_ms", summary_json(got.gone_sum)),
            ("host_busy_cpu_ms_until_gone", busy.map_or(J::Null, J::num)),
            ("harness_cpu_ms_until_gone", harness.map_or(J::Null, J::num)),
        ]),
    );
    Ok(())
}
