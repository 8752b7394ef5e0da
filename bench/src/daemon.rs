//! Running the real timeoutd: a config of our own, start, readiness, stop,
//! and what /proc says about it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::json::J;
use crate::sys;
use crate::syslog::SyslogSink;
use crate::util::{now_ns, stat_fields, wait_until};

/// One table of limits, in the config's own words ("15m", "off").
#[derive(Debug, Clone)]
pub struct Limits {
    pub idle: String,
    pub max: String,
    pub warn: Vec<String>,
    pub grace: String,
}

impl Limits {
    pub fn new(idle: &str, max: &str, warn: &[&str]) -> Limits {
        Limits {
            idle: idle.into(),
            max: max.into(),
            warn: warn.iter().map(|w| (*w).to_owned()).collect(),
            grace: "10s".into(),
        }
    }

    fn toml(&self) -> String {
        let warn: Vec<String> = self.warn.iter().map(|w| format!("{w:?}")).collect();
        format!(
            "idle = {:?}\nmax = {:?}\nwarn = [{}]\ngrace = {:?}\n",
            self.idle,
            self.max,
            warn.join(", "),
            self.grace
        )
    }
}

/// The config file: our socket, our syslog socket, our state directory,
/// `defaults`, and one rule per (name, PAM service, limits).
pub fn config_text(
    socket: &Path,
    syslog: &Path,
    state_dir: &Path,
    defaults: &Limits,
    rules: &[(&str, &str, Limits)],
) -> String {
    let mut s = format!(
        "# Written by st-bench.\n[daemon]\nsocket = {:?}\nsyslog = {:?}\nstate_dir = {:?}\n\n[defaults]\n{}",
        socket.display().to_string(),
        syslog.display().to_string(),
        state_dir.display().to_string(),
        defaults.toml()
    );
    for (name, service, limits) in rules {
        s.push_str(&format!(
            "\n[[rule]]\nname = {name:?}\nservices = [{service:?}]\n{}",
            limits.toml()
        ));
    }
    s
}

pub struct Daemon {
    pub pid: u32,
    pub socket: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `timeoutd --config DIR/timeoutd.toml --foreground` and waits for
    /// its `daemon_start` event and its socket.
    pub fn start(
        bin: &Path,
        dir: &Path,
        sink: &SyslogSink,
        defaults: &Limits,
        rules: &[(&str, &str, Limits)],
    ) -> Result<Daemon, String> {
        let state = dir.join("state");
        fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
        let socket = dir.join("timeoutd.sock");
        let cfg = dir.join("timeoutd.toml");
        let text = config_text(&socket, &sink.path, &state, defaults, rules);
        fs::write(&cfg, text).map_err(|e| format!("{}: {e}", cfg.display()))?;
        let stderr = fs::File::create(dir.join("stderr.log")).map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(&cfg)
            .arg("--foreground")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut d = Daemon {
            pid: child.id(),
            socket,
            child,
        };
        let up = sink.wait_count(d.pid, "daemon_start", 1, Duration::from_secs(10))
            && wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
                d.socket.exists()
            });
        if !up {
            let log = fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            let _ = d.child.kill();
            let _ = d.child.wait();
            return Err(format!("timeoutd did not come up; its stderr:\n{log}"));
        }
        Ok(d)
    }

    pub fn sample(&self) -> Option<Sample> {
        Sample::take(self.pid)
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub fn stop(mut self) {
        let _ = sys::kill_child(self.pid, libc::SIGTERM);
        let ended = wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !ended {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the daemon's descriptors point to (`/proc/PID/fd/*`).
pub fn fd_targets(pid: u32) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| fs::read_link(e.path()).ok())
                .map(|t| t.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// One look at the daemon in /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub t_ns: i64,
    /// utime + stime, clock ticks.
    pub cpu_ticks: u64,
    /// Time on CPU from /proc/PID/schedstat, nanoseconds.
    pub sched_ns: u64,
    pub voluntary: u64,
    pub involuntary: u64,
    pub rss_kb: u64,
    pub rss_anon_kb: u64,
    pub fds: usize,
}

impl Sample {
    pub fn take(pid: u32) -> Option<Sample> {
        let t_ns = now_ns();
        let f = stat_fields(pid)?;
        let utime: u64 = f.get(11)?.parse().ok()?;
        let stime: u64 = f.get(12)?.parse().ok()?;
        let sched_ns = fs::read_to_string(format!("/proc/{pid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let fds = fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0);
        Some(Sample {
            t_ns,
            cpu_ticks: utime + stime,
            sched_ns,
            voluntary: field("voluntary_ctxt_switches:"),
            involuntary: field("nonvoluntary_ctxt_switches:"),
            rss_kb: field("VmRSS:"),
            rss_anon_kb: field("RssAnon:"),
            fds,
        })
    }

    pub fn to_json(self) -> J {
        J::obj([
            ("rss_kib", J::from(self.rss_kb)),
            ("rss_anon_kib", J::from(self.rss_anon_kb)),
            ("fds", J::from(self.fds)),
            ("cpu_ticks", J::from(self.cpu_ticks)),
            ("sched_ns", J::from(self.sched_ns)),
            ("ctxt_voluntary", J::from(self.voluntary)),
            ("ctxt_involuntary", J::from(self.involuntary)),
        ])
    }
}
