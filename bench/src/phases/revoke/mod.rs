//! Revocation: `timeoutctl revoke user:NAME` with many live sessions; how
//! long until every leader got SIGHUP and until every process is gone.

use std::fmt::Write as _;
use std::time::Duration;

use session_timeout_proto::Response;

use crate::harness::ctx::{everyday_limits, Ctx};
use crate::harness::daemon::Daemon;
use crate::load::client;
use crate::load::fleet::{Leader, SpawnSpec};
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json, Summary};
use crate::util::{host_busy_ms, process_cpu_ms, wait_until};

mod floor;
mod terminated;

use terminated::{terminated, terminated_figures, terminated_text};

/// How the revoked sessions were opened, and so how the daemon ends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokePath {
    /// Through libpam, as a login is: pam_loginuid gives each leader an
    /// audit session and our module registers it, so the daemon moves it
    /// into a cgroup of its own (as logind's scope would be on a systemd
    /// host). The path of a real login wherever cgroup v2 is writable.
    Cgroup,
    /// Registered over the socket by root with no audit session: a subtree
    /// scope and no cgroup (stop-then-kill), as `su` inside a host without
    /// a writable cgroup v2.
    Subtree,
}

pub const PATHS: [RevokePath; 2] = [RevokePath::Cgroup, RevokePath::Subtree];

impl RevokePath {
    /// The daemon's directory under the run's temp dir.
    pub fn daemon_name(self) -> &'static str {
        match self {
            Self::Cgroup => "revoke-cgroup",
            Self::Subtree => "revoke",
        }
    }

    /// The PAM service of the cgroup path's leaders.
    pub fn service(self) -> &'static str {
        "stb-revoke-cgroup"
    }

    /// A figure's key: the subtree path keeps the keys of earlier tables.
    pub(super) fn key(self, figure: &str) -> String {
        match self {
            Self::Cgroup => format!("revoke.cgroup.{figure}"),
            Self::Subtree => format!("revoke.{figure}"),
        }
    }

    pub(super) fn what(self) -> &'static str {
        match self {
            Self::Cgroup => "with a cgroup each (opened through libpam)",
            Self::Subtree => "without cgroups (subtree scope, stop-then-kill)",
        }
    }
}

/// Both paths, each with a daemon of its own; an error in one is reported
/// after the other has run.
pub fn run(ctx: &mut Ctx, r: &mut Report) -> Result<(), String> {
    let errors: Vec<String> = PATHS
        .into_iter()
        .filter_map(|path| run_path(ctx, r, path).err())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn run_path(ctx: &mut Ctx, r: &mut Report, path: RevokePath) -> Result<(), String> {
    let res = with_fleet(ctx, r, path, revoke)
        .and_then(|()| with_fleet(ctx, r, path, floor::measure).map_err(|e| format!("floor: {e}")));
    res.map_err(|e| format!("{}: {e}", path.daemon_name()))
}

/// What a measurement of one path does with a fresh daemon and its leaders.
type Measure = fn(&Ctx, &mut Report, &Daemon, &[Leader], RevokePath) -> Result<(), String>;

/// Starts a fresh daemon in the path's directory (whose socket the PAM
/// service names), spawns and registers the path's leaders, measures,
/// and cleans up.
fn with_fleet(ctx: &mut Ctx, r: &mut Report, path: RevokePath, m: Measure) -> Result<(), String> {
    let d = ctx.start_daemon(path.daemon_name(), &everyday_limits(), &[])?;
    let res = spawn(ctx, path).and_then(|leaders| {
        let res = registered(ctx, &d, &leaders, path).and_then(|()| m(ctx, r, &d, &leaders, path));
        ctx.fleet.kill(leaders);
        res
    });
    ctx.stop_daemon(d);
    res
}

/// The path's leaders, each in its own session: registered over the socket
/// afterwards (subtree), or by the module as they open it (cgroup).
fn spawn(ctx: &mut Ctx, path: RevokePath) -> Result<Vec<Leader>, String> {
    let n = ctx.opts.revoke_sessions;
    match path {
        RevokePath::Subtree => ctx.spawn_ready(n, &ctx.user_spec()),
        RevokePath::Cgroup => {
            let spec = SpawnSpec {
                pam: Some((path.service().into(), ctx.host.user.clone())),
                ..ctx.user_spec()
            };
            crate::phases::kill::spawn_one_by_one(ctx, n, &spec)
        }
    }
}

/// Every leader is a session of `d`, and the daemon has settled.
fn registered(ctx: &Ctx, d: &Daemon, leaders: &[Leader], path: RevokePath) -> Result<(), String> {
    match path {
        RevokePath::Subtree => register(ctx, d, leaders)?,
        RevokePath::Cgroup => with_cgroups(ctx, d, leaders.len())?,
    }
    settle(ctx, d, leaders.len());
    Ok(())
}

fn revoke(
    ctx: &Ctx,
    r: &mut Report,
    d: &Daemon,
    leaders: &[Leader],
    path: RevokePath,
) -> Result<(), String> {
    let req = request(ctx, d)?;
    let arrivals = arrivals(ctx, d, leaders, req.t_req);
    let n = leaders.len();
    let term = terminated(ctx, d, leaders, &req);
    terminated_figures(r, n, &term, path);
    let (sh, sg) = (arrivals.hup_sum, arrivals.gone_sum);
    revoke_figures(r, n, &req, &arrivals, path);
    let signalled = ctx.sink.count(d.pid, "session_signal");
    let revoked = ctx.sink.count(d.pid, "session_revoked");
    r.section(
        &format!("Revocation {}", path.what()),
        revoke_text(n, &req, &arrivals, signalled, revoked) + &terminated_text(n, &term),
    );
    let busy = host_busy(&req, &arrivals);
    r.detail(
        match path {
            RevokePath::Cgroup => "revoke_cgroup",
            RevokePath::Subtree => "revoke",
        },
        J::obj([
            ("sessions", J::from(n)),
            ("reply_ms", J::num(req.reply_ms)),
            ("reply", J::from(req.message)),
            ("sighup_after_request_ms", summary_json(sh)),
            ("gone_after_request_ms", summary_json(sg)),
            ("sighup_received", J::from(arrivals.hup.len())),
            ("gone", J::from(arrivals.gone.len())),
            ("sighup_not_from_daemon", J::from(arrivals.not_from_daemon)),
            ("daemon_cpu_ms_during_request", J::num(req.cpu_ms)),
            (
                "daemon_runqueue_wait_ms_during_request",
                J::num(req.runq_ms),
            ),
            (
                "daemon_cpu_ms_until_terminated",
                term.daemon_cpu_ms.map_or(J::Null, J::num),
            ),
            (
                "daemon_runqueue_wait_ms_until_terminated",
                term.daemon_runq_ms.map_or(J::Null, J::num),
            ),
            ("daemon_voluntary_waits_during_request", J::from(req.waits)),
            ("daemon_preemptions_during_request", J::from(req.preempted)),
            ("host_busy_cpu_ms_until_gone", busy.map_or(J::Null, J::num)),
            ("terminated_after_gone_ms", summary_json(term.sum)),
            ("terminated_logged", J::from(term.ms.len())),
        ]),
    );
    Ok(())
}

/// Registers every leader over the socket, as root.
fn register(ctx: &Ctx, d: &Daemon, leaders: &[Leader]) -> Result<(), String> {
    for l in leaders {
        client::register(
            &d.socket,
            l,
            &ctx.host.user,
            ctx.host.uid,
            "stb-revoke",
            client::PATIENT,
        )?;
    }
    Ok(())
}

/// The module registered each leader as it opened its session; every one
/// must have a cgroup, or this is not the cgroup path.
fn with_cgroups(ctx: &Ctx, d: &Daemon, n: usize) -> Result<(), String> {
    let opens = ctx.sink.of(d.pid, "session_open");
    let in_cgroups = opens
        .iter()
        .filter(|e| e.get("cgroup").is_some_and(|c| c != "-"))
        .count();
    if opens.len() == n && in_cgroups == n {
        Ok(())
    } else {
        Err(format!(
            "{} of {n} sessions registered, {in_cgroups} with a cgroup (a writable cgroup v2 is needed)",
            opens.len()
        ))
    }
}

/// Lets the daemon settle: every session has found its terminal.
fn settle(ctx: &Ctx, d: &Daemon, n: usize) {
    ctx.sink.wait_count(
        d.pid,
        "session_tty",
        n,
        Duration::from_secs(30 + n as u64 / 50),
    );
    std::thread::sleep(Duration::from_millis(500));
}

/// The revocation request, and what the daemon did while handling it.
pub(super) struct Revoked {
    message: String,
    /// The host's busy CPU time when the request was sent (ms).
    busy_before: Option<f64>,
    /// The CPU time of st-bench and its spawner then (ms).
    harness_before: Option<f64>,
    /// When the request was sent (realtime ns).
    t_req: i64,
    reply_ms: f64,
    /// The daemon's CPU time (schedstat) when the request was sent (ns).
    pub(super) sched_before_ns: u64,
    /// Its run delay (schedstat) then (ns).
    pub(super) runq_before_ns: u64,
    cpu_ms: f64,
    /// Runnable but waiting for a CPU during the request (schedstat, ms).
    runq_ms: f64,
    waits: u64,
    preempted: u64,
}

/// Revokes the user and samples the daemon around the request.
fn request(ctx: &Ctx, d: &Daemon) -> Result<Revoked, String> {
    let before = d.sample().ok_or("daemon gone")?;
    let busy_before = host_busy_ms();
    let harness_before = harness_cpu_ms(ctx);
    let reply = client::revoke_user(&d.socket, &ctx.host.user, 600)?;
    let after = d.sample().ok_or("daemon gone")?;
    let t_req = reply.t_send_ns;
    // Where the request's wall time went: on CPU, or waiting (a blocking
    // syslog send, or preempted by the leaders it woke).
    let cpu_ms = (after.sched_ns - before.sched_ns) as f64 / 1e6;
    let runq_ms = after.run_delay_ns.saturating_sub(before.run_delay_ns) as f64 / 1e6;
    let waits = after.voluntary - before.voluntary;
    let preempted = after.involuntary - before.involuntary;
    let message = match &reply.resp {
        Response::Done { message } => message.clone(),
        other => return Err(format!("revoke answered {other:?}")),
    };
    Ok(Revoked {
        message,
        busy_before,
        harness_before,
        t_req,
        reply_ms: (reply.t_recv_ns - reply.t_send_ns) as f64 / 1e6,
        sched_before_ns: before.sched_ns,
        runq_before_ns: before.run_delay_ns,
        cpu_ms,
        runq_ms,
        waits,
        preempted,
    })
}

/// When the leaders got SIGHUP and when they were gone, ms after the request.
pub(super) struct Arrivals {
    /// The host's busy CPU time once every leader was gone (ms).
    pub(super) busy_after: Option<f64>,
    pub(super) harness_after: Option<f64>,
    pub(super) hup: Vec<f64>,
    pub(super) gone: Vec<f64>,
    not_from_daemon: usize,
    pub(super) hup_sum: Option<Summary>,
    pub(super) gone_sum: Option<Summary>,
}

/// Waits (bounded) for every leader to exit, then reads what the monitor saw.
pub(super) fn arrivals(ctx: &Ctx, d: &Daemon, leaders: &[Leader], t_req: i64) -> Arrivals {
    wait_until(Duration::from_secs(60), Duration::from_millis(20), || {
        let m = ctx.fleet.monitor.lock();
        leaders
            .iter()
            .all(|l| m.get(&l.idx).is_some_and(|s| s.exit_ns.is_some()))
    });
    let busy_after = host_busy_ms();
    let harness_after = harness_cpu_ms(ctx);
    let (mut hup, mut gone) = (Vec::new(), Vec::new());
    let mut not_from_daemon = 0usize;
    for l in leaders {
        let s = ctx.fleet.monitor.state(l.idx);
        if let Some((t, sender)) = s.first(libc::SIGHUP) {
            hup.push((t - t_req) as f64 / 1e6);
            if sender != d.pid {
                not_from_daemon += 1;
            }
        }
        if let Some(t) = s.exit_ns {
            gone.push((t - t_req) as f64 / 1e6);
        }
    }
    Arrivals {
        busy_after,
        harness_after,
        hup_sum: summarize(&hup),
        gone_sum: summarize(&gone),
        hup,
        gone,
        not_from_daemon,
    }
}

fn revoke_figures(r: &mut Report, n: usize, req: &Revoked, arrivals: &Arrivals, path: RevokePath) {
    let what = path.what();
    let (hup, gone) = (&arrivals.hup, &arrivals.gone);
    let (sh, sg) = (arrivals.hup_sum, arrivals.gone_sum);
    let reply_ms = req.reply_ms;
    r.target(
        &path.key("last_sighup_ms"),
        &format!("revocation of {n} sessions {what}: request → last SIGHUP received"),
        (hup.len() == n).then_some(sh.map(|s| s.max)).flatten(),
        "ms",
        100.0,
        "",
    );
    r.figure(
        &path.key("last_gone_ms"),
        &format!("revocation of {n} sessions {what}: request → last process gone"),
        (gone.len() == n).then_some(sg.map(|s| s.max)).flatten(),
        "ms",
    );
    r.figure(
        &path.key("reply_ms"),
        &format!("revocation {what}: request → reply"),
        Some(reply_ms),
        "ms",
    );
}

/// The section's list.
fn revoke_text(
    n: usize,
    req: &Revoked,
    arrivals: &Arrivals,
    signalled: usize,
    revoked: usize,
) -> String {
    let (hup, gone, not_from_daemon) = (&arrivals.hup, &arrivals.gone, arrivals.not_from_daemon);
    let (sh, sg) = (arrivals.hup_sum, arrivals.gone_sum);
    let (reply_ms, message) = (req.reply_ms, &req.message);
    let (cpu_ms, runq_ms) = (req.cpu_ms, req.runq_ms);
    let (waits, preempted) = (req.waits, req.preempted);
    let mut md = format!(
        "{n} live sessions of one user (one leader process each, which exits on SIGHUP like a shell). \
         Times from the moment the request was sent.\n\n"
    );
    let _ = writeln!(md, "- reply after {reply_ms:.1} ms: {message:?}");
    let _ = writeln!(
        md,
        "- SIGHUP received by the leaders: {} of {n}; {}",
        hup.len(),
        sh.map_or("—".into(), |s| format!(
            "ms after the request: {}",
            s.short(1)
        ))
    );
    let _ = writeln!(
        md,
        "- processes gone: {} of {n}; {}",
        gone.len(),
        sg.map_or("—".into(), |s| format!(
            "ms after the request: {}",
            s.short(1)
        ))
    );
    let _ = writeln!(md, "- SIGHUP not sent by the daemon: {not_from_daemon}");
    let _ = writeln!(
        md,
        "- the daemon while handling the request: {cpu_ms:.1} ms on CPU, {runq_ms:.1} ms runnable \
         but waiting for a CPU, {waits} voluntary waits, \
         {preempted} preemptions; it logged {revoked} session_revoked and {signalled} session_signal events"
    );
    if let Some(busy) = host_busy(req, arrivals) {
        let harness = arrivals
            .harness_after
            .zip(req.harness_before)
            .map_or("—".into(), |(a, b)| format!("{:.0}", a - b));
        let _ = writeln!(
            md,
            "- the whole host from the request until every leader was gone (seen within 20 ms): \
             {busy:.0} ms of busy CPU on {} CPUs; of it the daemon's request {cpu_ms:.0} ms, the \
             harness's (st-bench and its spawner, 10 ms ticks) {harness} ms, and the rest the \
             leaders' exits and the kernel's work for them",
            std::thread::available_parallelism().map_or(1, usize::from),
        );
    }
    md
}

/// The CPU time of st-bench (every thread) and its spawner, in ms.
pub(super) fn harness_cpu_ms(ctx: &Ctx) -> Option<f64> {
    Some(process_cpu_ms(std::process::id())? + process_cpu_ms(ctx.fleet.spawner_pid())?)
}

/// The host's busy CPU time from the request until every leader was gone.
fn host_busy(req: &Revoked, arrivals: &Arrivals) -> Option<f64> {
    Some(arrivals.busy_after? - req.busy_before?)
}
