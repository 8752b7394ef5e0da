//! Issue 13's figure: the time from a session's deadline to its
//! `session_terminated`, for many sessions of 10 processes each, through
//! the cgroup path (`cgroup.kill`) and through the fallback (stop-then-kill
//! over the audit session).
//!
//! Each leader opens its session through libpam (pam_loginuid, which gives it
//! an audit session of its own as at a real login, then our module), so the
//! daemon moves it into a cgroup of its own before it forks its 9 children.
//! The children block SIGHUP and SIGTERM: the warning ladder (SIGHUP, the
//! grace period, SIGTERM and its wait) does not end them, the final step
//! does. The fallback's daemon runs in a private mount namespace where the
//! cgroup2 mount is read-only (as e2e k07 does): the real condition, no switch.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::ctx::Ctx;
use crate::harness::daemon::{Daemon, Limits};
use crate::harness::host;
use crate::load::fleet::{Leader, SpawnSpec};
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json, Summary};

/// Processes per session: the leader and its children.
pub const PROCESSES: u32 = 10;
/// The grace period between SIGHUP and SIGTERM (the shortest the ladder has).
const GRACE: &str = "1s";
/// After the last deadline, how long the daemon has to end every session.
const WAIT_AFTER: Duration = Duration::from_secs(30);

/// The two ways a session's processes are killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillPath {
    Cgroup,
    Fallback,
}

pub const PATHS: [KillPath; 2] = [KillPath::Cgroup, KillPath::Fallback];

impl KillPath {
    fn name(self) -> &'static str {
        match self {
            Self::Cgroup => "cgroup",
            Self::Fallback => "fallback",
        }
    }

    /// The daemon's directory under the run's temp dir.
    pub fn daemon_name(self) -> String {
        format!("kill-{}", self.name())
    }

    /// The PAM service of its leaders.
    pub fn service(self) -> String {
        format!("stb-kill-{}", self.name())
    }
}

/// The PAM services: pam_loginuid (a new audit session per leader), then
/// our module on the path's daemon; and the same for the revocation's
/// cgroup path.
pub fn write_services(
    pam_dir: &Path,
    tmp: &Path,
    pam_permit: &Path,
    module: &Path,
) -> std::io::Result<()> {
    let loginuid = pam_permit.with_file_name("pam_loginuid.so");
    let revoke = crate::phases::revoke::RevokePath::Cgroup;
    let services = PATHS
        .map(|p| (p.service(), p.daemon_name()))
        .into_iter()
        .chain([(revoke.service().to_owned(), revoke.daemon_name().to_owned())]);
    for (service, daemon) in services {
        let sock = tmp.join(daemon).join("timeoutd.sock");
        let text = format!(
            "session required {}\nsession required {} socket={} fail=closed\n",
            loginuid.display(),
            module.display(),
            sock.display()
        );
        fs::write(pam_dir.join(service), text)?;
    }
    Ok(())
}

pub fn run(ctx: &mut Ctx, r: &mut Report) -> Result<(), String> {
    let mut found = Vec::new();
    for path in PATHS {
        found.push(run_path(ctx, path)?);
    }
    figures(r, &found);
    r.section("Kill scope: deadline to session_terminated", text(&found));
    r.detail(
        "kill",
        J::Arr(
            found
                .iter()
                .map(|f| {
                    J::obj([
                        ("path", J::from(f.path.name())),
                        ("sessions", J::from(f.sessions)),
                        ("processes_per_session", J::from(PROCESSES)),
                        ("limit_s", J::from(f.limit_s)),
                        ("with_cgroup", J::from(f.with_cgroup)),
                        ("terminated", J::from(f.terminated)),
                        ("not_clean", J::from(f.not_clean)),
                        ("stalled", J::from(f.stalled)),
                        ("deadline_to_terminated_ms", summary_json(f.total)),
                        ("final_step_ms", summary_json(f.final_step)),
                        ("spawn_s", J::num(f.spawn_s)),
                    ])
                })
                .collect(),
        ),
    );
    let bad: Vec<String> = found
        .iter()
        .filter(|f| f.terminated < f.sessions || f.not_clean > 0 || !f.path_ok())
        .map(|f| format!("{}: {}", f.path.name(), f.summary_line()))
        .collect();
    if !bad.is_empty() {
        r.error("kill", bad.join("; "));
    }
    Ok(())
}

/// What one path's run found.
struct Found {
    path: KillPath,
    sessions: usize,
    limit_s: u64,
    /// Sessions whose `session_open` names a cgroup.
    with_cgroup: usize,
    terminated: usize,
    /// `session_terminated` lines with survivors other than 0.
    not_clean: usize,
    stalled: usize,
    /// Deadline (registration + limit) to `session_terminated`.
    total: Option<Summary>,
    /// The final step's `session_signal` to `session_terminated`.
    final_step: Option<Summary>,
    spawn_s: f64,
}

impl Found {
    fn path_ok(&self) -> bool {
        match self.path {
            KillPath::Cgroup => self.with_cgroup == self.sessions,
            KillPath::Fallback => self.with_cgroup == 0,
        }
    }

    fn summary_line(&self) -> String {
        format!(
            "{} of {} terminated, {} not clean, {} stalled, {} with a cgroup",
            self.terminated, self.sessions, self.not_clean, self.stalled, self.with_cgroup
        )
    }
}

fn run_path(ctx: &mut Ctx, path: KillPath) -> Result<Found, String> {
    let n = ctx.opts.kill_sessions;
    let limit_s = ctx.opts.kill_max;
    let dir = ctx.host.dir(&path.daemon_name());
    let bin = match path {
        KillPath::Cgroup => ctx.timeoutd.clone(),
        KillPath::Fallback => without_cgroups(&dir, &ctx.timeoutd)?,
    };
    let rule = Limits {
        grace: GRACE.into(),
        ..Limits::new("off", &format!("{limit_s}s"), &[])
    };
    let off = Limits::new("off", "off", &[]);
    let service = path.service();
    let d = Daemon::start(&bin, &dir, &ctx.sink, &off, &[("kill", &service, rule)])?;
    host::track_daemon(d.pid, true);
    let spec = SpawnSpec {
        pam: Some((service, ctx.host.user.clone())),
        watch_exit: false,
        children: PROCESSES - 1,
        ..ctx.user_spec()
    };
    let t0 = Instant::now();
    let res = spawn_one_by_one(ctx, n, &spec).map(|leaders| {
        let spawn_s = t0.elapsed().as_secs_f64();
        // Every deadline is past by `limit_s` after the last registration;
        // what has not ended WAIT_AFTER later is counted as not terminated.
        let bound = Duration::from_secs(limit_s) + WAIT_AFTER;
        ctx.sink
            .wait_count(d.pid, "session_terminated", leaders.len(), bound);
        let f = measure(ctx, &d, path, leaders.len(), limit_s, spawn_s);
        ctx.fleet.kill(leaders);
        kill_logins_of(ctx.host.uid);
        f
    });
    let pid = d.pid;
    d.stop();
    host::track_daemon(pid, false);
    ctx.sink.forget(pid);
    res
}

/// SIGKILLs what the daemon did not end: the processes whose login uid is
/// the run's throwaway user (pam_loginuid set it in each leader; only this
/// run's leaders and their children carry it). The children block SIGHUP
/// and SIGTERM; the spawner, their subreaper, reaps them.
fn kill_logins_of(uid: u32) {
    let find = || -> Vec<u32> {
        let Ok(rd) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/loginuid"))
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                    == Some(uid)
            })
            .collect()
    };
    crate::util::wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        let left = find();
        for pid in &left {
            // SAFETY: kill(2) on a pid whose login uid is the run's own
            // throwaway user, found just now.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        left.is_empty()
    });
}

/// One at a time: pam_wrapper's runtime directories (see the scale phase).
pub fn spawn_one_by_one(ctx: &mut Ctx, n: usize, spec: &SpawnSpec) -> Result<Vec<Leader>, String> {
    let mut leaders = Vec::with_capacity(n);
    while leaders.len() < n {
        match ctx.spawn_ready(1, spec) {
            Ok(one) => leaders.extend(one),
            Err(e) => {
                ctx.fleet.kill(leaders);
                return Err(e);
            }
        }
    }
    Ok(leaders)
}

fn measure(
    ctx: &Ctx,
    d: &Daemon,
    path: KillPath,
    sessions: usize,
    limit_s: u64,
    spawn_s: f64,
) -> Found {
    let by_id = |event: &str| -> HashMap<String, st_testkit::events::LogLine> {
        ctx.sink
            .of(d.pid, event)
            .into_iter()
            .filter_map(|l| Some((l.get("id")?.to_owned(), l)))
            .collect()
    };
    let opens = by_id("session_open");
    let done = by_id("session_terminated");
    let mut last_signal: HashMap<String, i64> = HashMap::new();
    for l in ctx.sink.of(d.pid, "session_signal") {
        if let Some(id) = l.get("id") {
            let t = last_signal.entry(id.to_owned()).or_insert(l.t_ns);
            *t = (*t).max(l.t_ns);
        }
    }
    let limit_ns = i64::try_from(limit_s).unwrap_or(0) * 1_000_000_000;
    let mut total = Vec::new();
    let mut final_step = Vec::new();
    for (id, end) in &done {
        if let Some(open) = opens.get(id) {
            total.push((end.t_ns - open.t_ns - limit_ns) as f64 / 1e6);
        }
        if let Some(sig) = last_signal.get(id) {
            final_step.push((end.t_ns - sig) as f64 / 1e6);
        }
    }
    Found {
        path,
        sessions,
        limit_s,
        with_cgroup: opens
            .values()
            .filter(|l| l.get("cgroup").is_some_and(|c| c != "-"))
            .count(),
        terminated: done.len(),
        not_clean: done
            .values()
            .filter(|l| l.get("survivors") != Some("0"))
            .count(),
        stalled: ctx.sink.count(d.pid, "session_kill_stalled"),
        total: summarize(&total),
        final_step: summarize(&final_step),
        spawn_s,
    }
}

/// A wrapper that runs the daemon (same pid, through exec) in a private
/// mount namespace where the cgroup2 mount is read-only.
fn without_cgroups(dir: &Path, timeoutd: &Path) -> Result<PathBuf, String> {
    let mount = cgroup2_mount().ok_or("no cgroup2 mount in /proc/self/mountinfo")?;
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("timeoutd-without-cgroups");
    let script = format!(
        "#!/bin/sh\nexec unshare --mount --propagation private -- /bin/sh -c 'mount -o remount,bind,ro \"$0\" && exec \"$@\"' {} {} \"$@\"\n",
        mount.display(),
        timeoutd.display()
    );
    fs::write(&path, script)
        .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn cgroup2_mount() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mount = left.split(' ').nth(4)?;
        (right.split(' ').next()? == "cgroup2").then(|| PathBuf::from(mount))
    })
}

fn figures(r: &mut Report, found: &[Found]) {
    for f in found {
        let p = f.path.name();
        for (key, label, v) in [
            ("p50", "p50", f.total.map(|s| s.p50)),
            ("p99", "p99", f.total.map(|s| s.p99)),
            ("max", "max", f.total.map(|s| s.max)),
        ] {
            r.figure(
                &format!("kill.{p}.deadline_to_terminated_{key}_ms"),
                &format!(
                    "deadline to session_terminated {label}, {p} ({} sessions × {PROCESSES})",
                    f.sessions
                ),
                v,
                "ms",
            );
        }
        r.figure(
            &format!("kill.{p}.final_step_p99_ms"),
            &format!("final kill step to session_terminated p99, {p}"),
            f.final_step.map(|s| s.p99),
            "ms",
        );
    }
}

fn text(found: &[Found]) -> String {
    let mut md = format!(
        "Each session: a leader opened through libpam (pam_loginuid, our module) and {} children that \
         block SIGHUP and SIGTERM; absolute limit, grace {GRACE}, no warnings. The ladder (SIGHUP, grace, \
         SIGTERM, 1 s) comes before the final step, so about 2 s of the total is the ladder by design. \
         Deadline = arrival of the session's `session_open` + the limit (the daemon registers just before; \
         this can understate the total by our syslog socket's delay). Final step = the session's last \
         `session_signal` (cgroup.kill, or the stop-then-kill's SIGKILL) to `session_terminated`.\n\n",
        PROCESSES - 1
    );
    for f in found {
        let _ = writeln!(
            md,
            "- {} ({} sessions, limit {} s, spawned in {:.1} s): deadline to terminated {}; final step {}; {}",
            f.path.name(),
            f.sessions,
            f.limit_s,
            f.spawn_s,
            f.total.map_or("—".into(), |s| format!("{} ms", s.short(1))),
            f.final_step
                .map_or("—".into(), |s| format!("{} ms", s.short(1))),
            f.summary_line()
        );
    }
    md
}
