//! Re-validation at scale (issue 14): 2,000 users with 5 live sessions each
//! (10,000), checked through a fast local PAM stack (pam_unix) by a daemon
//! in a private mount namespace (see `accounts`). Measures the CPU of a check
//! (daemon + its children, from /proc), checks per second, and the longest
//! stall of the event loop while checks run: a probe sends `status` every
//! 10 ms and keeps its worst reply latency.
//!
//! Two windows: one whole interval of the schedule (`revalidate = "60s"`:
//! every user has one slot per interval, so 2,000 checks), then
//! `timeoutctl revalidate` for everyone at once (the loop's top speed, 4
//! checks at a time; the reply counts what was answered).

mod accounts;
mod probe;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use session_timeout_proto::{Request, Response};

use crate::harness::ctx::{everyday_limits, Ctx};
use crate::harness::daemon::Daemon;
use crate::harness::host;
use crate::load::client;
use crate::load::fleet::{Leader, SpawnSpec};
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json};

pub const USERS: usize = 2000;
pub const PER_USER: usize = 5;
const INTERVAL_S: u64 = 60;
/// The stall target of issue 14, ms.
const STALL_TARGET_MS: f64 = 5.0;
/// The probe's window before any session exists.
const BASELINE: Duration = Duration::from_secs(20);

pub fn run(ctx: &mut Ctx, r: &mut Report) -> Result<(), String> {
    let dir = ctx.host.dir("revalidate-accounts");
    let wrapper = accounts::prepare(&dir, USERS, &ctx.timeoutd)?;
    let keys = format!(
        "revalidate = \"{INTERVAL_S}s\"\nrevalidate_service = \"{}\"\nrevalidate_timeout = \"60s\"\n",
        accounts::SERVICE
    );
    let d = Daemon::start_with(
        &wrapper,
        &ctx.host.dir("revalidate"),
        &ctx.sink,
        &everyday_limits(),
        &[],
        &keys,
    )?;
    host::track_daemon(d.pid, true);
    if !accounts::in_place(d.pid) {
        ctx.stop_daemon(d);
        return Err("the daemon does not see the run's users in its /etc/passwd".into());
    }
    // The same probe against the same daemon with no session and no check:
    // what the host's load alone does to its replies.
    let baseline = window(&d, || {
        std::thread::sleep(BASELINE);
        Ok(0)
    });
    let res = baseline
        .and_then(|b| spawn_all(ctx).map(|l| (b, l)))
        .and_then(|(baseline, leaders)| {
            let res = register(ctx, &d, &leaders).and_then(|()| measure(ctx, r, &d, &baseline));
            ctx.fleet.kill(leaders);
            res
        });
    ctx.stop_daemon(d);
    res
}

/// 5 leaders per user, each running as that user's uid.
fn spawn_all(ctx: &mut Ctx) -> Result<Vec<Leader>, String> {
    let mut all = Vec::with_capacity(USERS * PER_USER);
    for i in 0..USERS {
        let (_, uid) = accounts::user(i);
        let spec = SpawnSpec {
            uid,
            gid: accounts::UID_BASE,
            pam: None,
            watch_exit: false,
            children: 0,
            connect: None,
        };
        match ctx.fleet.spawn(PER_USER, &spec) {
            Ok(l) => all.extend(l),
            Err(e) => {
                ctx.fleet.kill(all);
                return Err(format!("spawning leaders: {e}"));
            }
        }
    }
    if let Err(e) = ctx.fleet.wait_ready(&all, Duration::from_secs(120)) {
        ctx.fleet.kill(all);
        return Err(e);
    }
    Ok(all)
}

fn register(ctx: &Ctx, d: &Daemon, leaders: &[Leader]) -> Result<(), String> {
    for (k, l) in leaders.iter().enumerate() {
        let (name, uid) = accounts::user(k / PER_USER);
        client::register(&d.socket, l, &name, uid, "stb-reval-login", client::PATIENT)?;
    }
    let n = leaders.len();
    if !ctx
        .sink
        .wait_count(d.pid, "session_tty", n, Duration::from_secs(120))
    {
        return Err(format!(
            "{} of {n} sessions found their terminal",
            ctx.sink.count(d.pid, "session_tty")
        ));
    }
    Ok(())
}

/// utime + stime of the daemon and of its waited-for children, in ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // Fields 14..=17 of stat(5); `rest` starts at field 3.
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|v| v.parse().ok())
        .collect();
    (f.len() == 4).then(|| f.iter().sum())
}

/// Time the daemon (one thread) waited runnable for a CPU, ns: field 2 of
/// /proc/PID/schedstat. A stall it spent here is the host's, not the loop's.
fn runqueue_wait_ns(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    s.split_whitespace().nth(1)?.parse().ok()
}

fn ticks_ms(t: u64) -> f64 {
    // SAFETY: sysconf takes a constant and reads no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    t as f64 * 1000.0 / hz
}

/// One window: its checks, wall time, CPU and the probe's latencies.
struct Window {
    checks: usize,
    secs: f64,
    cpu_ms: f64,
    /// The daemon's wait for a CPU in the window (schedstat).
    wait_ms: f64,
    probe_ms: Vec<f64>,
    probe_failed: usize,
}

impl Window {
    fn json(&self) -> J {
        J::obj([
            ("checks", J::from(self.checks)),
            ("seconds", J::num(self.secs)),
            ("cpu_ms", J::num(self.cpu_ms)),
            (
                "cpu_ms_per_check",
                J::num(self.cpu_ms / self.checks.max(1) as f64),
            ),
            (
                "checks_per_s",
                J::num(self.checks as f64 / self.secs.max(1e-9)),
            ),
            ("runqueue_wait_ms", J::num(self.wait_ms)),
            ("status_latency_ms", summary_json(summarize(&self.probe_ms))),
            ("status_over_target", J::from(self.over_target())),
            ("status_failed", J::from(self.probe_failed)),
        ])
    }

    /// Probe replies slower than the stall target.
    fn over_target(&self) -> usize {
        self.probe_ms
            .iter()
            .filter(|v| **v > STALL_TARGET_MS)
            .count()
    }

    fn line(&self, what: &str) -> String {
        let s = summarize(&self.probe_ms);
        let checks = if self.checks == 0 {
            format!(
                "no check in {:.1} s, daemon CPU {:.0} ms",
                self.secs, self.cpu_ms
            )
        } else {
            format!(
                "{} checks in {:.1} s ({:.1}/s), {:.2} ms CPU per check (daemon + children)",
                self.checks,
                self.secs,
                self.checks as f64 / self.secs.max(1e-9),
                self.cpu_ms / self.checks as f64
            )
        };
        format!(
            "- {what}: {checks}; status replies {} ms, {} of {} over {STALL_TARGET_MS} ms \
             ({} failed); the daemon waited {:.0} ms for a CPU\n",
            s.map_or("—".into(), |s| s.short(2)),
            self.over_target(),
            self.probe_ms.len(),
            self.probe_failed,
            self.wait_ms
        )
    }
}

/// Runs `during` while the probe runs, sampling the daemon's CPU around it.
fn window(d: &Daemon, during: impl FnOnce() -> Result<usize, String>) -> Result<Window, String> {
    let p = probe::Probe::start(d.socket.clone());
    let before = cpu_ticks(d.pid).ok_or("daemon gone")?;
    let wait_before = runqueue_wait_ns(d.pid).unwrap_or(0);
    let t = Instant::now();
    let checks = during();
    let secs = t.elapsed().as_secs_f64();
    let after = cpu_ticks(d.pid).ok_or("daemon gone")?;
    let wait_after = runqueue_wait_ns(d.pid).unwrap_or(0);
    let (probe_ms, probe_failed) = p.stop();
    Ok(Window {
        checks: checks?,
        secs,
        cpu_ms: ticks_ms(after - before),
        wait_ms: wait_after.saturating_sub(wait_before) as f64 / 1e6,
        probe_ms,
        probe_failed,
    })
}

/// `timeoutctl revalidate` for every user; how many checks it answered.
fn revalidate_all(d: &Daemon) -> Result<usize, String> {
    let req = Request::Revalidate {
        user: String::new(),
    };
    let reply = client::exchange(&d.socket, &req, Duration::from_secs(120))?;
    match reply.resp {
        Response::Done { message } => Ok(USERS - not_answered(&message)),
        other => Err(format!("revalidate answered {other:?}")),
    }
}

/// "N check(s) not answered yet" in a revalidate reply, else 0.
fn not_answered(message: &str) -> usize {
    message
        .lines()
        .find_map(|l| l.split_once(" check(s) not answered yet").map(|(n, _)| n))
        .and_then(|n| n.trim().rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn measure(ctx: &Ctx, r: &mut Report, d: &Daemon, baseline: &Window) -> Result<(), String> {
    let scheduled = window(d, || {
        // One whole interval: each user has exactly one slot in it.
        std::thread::sleep(Duration::from_secs(INTERVAL_S));
        Ok(USERS)
    })?;
    let burst = window(d, || revalidate_all(d))?;
    let invalid = ctx.sink.count(d.pid, "session_revoked");
    if !accounts::in_place(d.pid) {
        return Err("the run's /etc copy left the daemon's namespace during the run".into());
    }
    let worst = |w: &Window| {
        w.probe_ms
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    r.target(
        "revalidate.stall_ms",
        &format!(
            "re-validation of {USERS} users / {} sessions: worst status reply while checks run",
            USERS * PER_USER
        ),
        match (worst(&scheduled), worst(&burst)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        },
        "ms",
        STALL_TARGET_MS,
        "a probe sends status every 10 ms; its latency includes its own scheduling",
    );
    r.figure(
        "revalidate.baseline_stall_ms",
        "re-validation: worst status reply before any session or check (the host's share)",
        worst(baseline),
        "ms",
    );
    r.figure(
        "revalidate.cpu_ms_per_check",
        "re-validation: CPU per scheduled check (daemon + children)",
        Some(scheduled.cpu_ms / scheduled.checks.max(1) as f64),
        "ms",
    );
    r.figure(
        "revalidate.checks_per_s",
        "re-validation: checks per second, all users at once (4 at a time)",
        Some(burst.checks as f64 / burst.secs.max(1e-9)),
        "/s",
    );
    let mut md = format!(
        "{USERS} users in a copy of /etc bind-mounted in the daemon's private mount namespace, {PER_USER} live sessions each \
         ({} in all), `revalidate = \"{INTERVAL_S}s\"` through `account required pam_unix.so`.\n\n",
        USERS * PER_USER
    );
    md.push_str(&baseline.line("baseline, no session and no check"));
    md.push_str(&scheduled.line("one interval of scheduled checks"));
    md.push_str(&burst.line("`timeoutctl revalidate` for every user"));
    let _ = writeln!(
        md,
        "- sessions ended (must be 0: every account is valid): {invalid}"
    );
    r.section("Re-validation", md);
    r.detail(
        "revalidate",
        J::obj([
            ("users", J::from(USERS)),
            ("sessions", J::from(USERS * PER_USER)),
            ("baseline", baseline.json()),
            ("scheduled", scheduled.json()),
            ("all_at_once", burst.json()),
            ("sessions_revoked", J::from(invalid)),
        ]),
    );
    Ok(())
}
