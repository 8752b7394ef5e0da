//! What every phase needs: options, the host, the binaries under test, the
//! syslog sink and the leader fleet.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::daemon::{Daemon, Limits};
use crate::harness::host::{self, Host};
use crate::harness::opts::Opts;
use crate::load::fleet::{Fleet, Leader, SpawnSpec};
use st_testkit::syslog::SyslogSink;

pub struct Ctx {
    pub opts: Opts,
    /// Where the binaries under test were found (`--bin-dir`).
    pub bin_dir: PathBuf,
    pub host: Host,
    /// This executable (re-run as `__spawner`, `__pam-loop`, `__floor-server`).
    pub exe: PathBuf,
    /// Copies of the binaries under test, taken at start (the build directory
    /// may be rebuilt while the bench runs).
    pub timeoutd: PathBuf,
    pub pam_wrapper: PathBuf,
    /// PAM_WRAPPER_SERVICE_DIR.
    pub pam_dir: PathBuf,
    pub sink: SyslogSink,
    pub fleet: Fleet,
}

impl Ctx {
    /// The environment that makes libpam read our service directory.
    pub fn pam_env(
        pam_wrapper: &std::path::Path,
        pam_dir: &std::path::Path,
    ) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), pam_wrapper.display().to_string()),
            ("PAM_WRAPPER".into(), "1".into()),
            (
                "PAM_WRAPPER_SERVICE_DIR".into(),
                pam_dir.display().to_string(),
            ),
        ]
    }

    pub fn start_daemon(
        &self,
        name: &str,
        defaults: &Limits,
        rules: &[(&str, &str, Limits)],
    ) -> Result<Daemon, String> {
        let d = Daemon::start(
            &self.timeoutd,
            &self.host.dir(name),
            &self.sink,
            defaults,
            rules,
        )?;
        host::track_daemon(d.pid, true);
        Ok(d)
    }

    pub fn stop_daemon(&self, d: Daemon) {
        let pid = d.pid;
        d.stop();
        host::track_daemon(pid, false);
        self.sink.forget(pid);
    }
}

/// The daemon's everyday limits (the sample config): 15m idle, 12h max.
pub fn everyday_limits() -> Limits {
    Limits::new("15m", "12h", &["5m", "1m"])
}

impl Ctx {
    /// Leaders running as the run's user, registered over the socket.
    pub fn user_spec(&self) -> SpawnSpec {
        SpawnSpec {
            uid: self.host.uid,
            gid: self.host.gid,
            pam: None,
            watch_exit: true,
            children: 0,
            connect: None,
        }
    }

    /// Spawns `n` leaders and waits until all hold their terminal.
    pub fn spawn_ready(&mut self, n: usize, spec: &SpawnSpec) -> Result<Vec<Leader>, String> {
        let leaders = self
            .fleet
            .spawn(n, spec)
            .map_err(|e| format!("spawning {n} leaders: {e}"))?;
        let timeout = Duration::from_secs(30 + n as u64 / 100);
        match self.fleet.wait_ready(&leaders, timeout) {
            Ok(()) => Ok(leaders),
            Err(e) => {
                self.fleet.kill(leaders);
                Err(e)
            }
        }
    }
}
