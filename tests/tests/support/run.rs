//! Running things to the end with a bound: commands, `timeoutctl`, and a
//! timeoutd of the test's own.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use e2e::daemon::{Daemon, Launch, Output};
use e2e::util::wait_child_timeout;
use e2e::Env;

/// `timeoutctl` next to the binaries the harness tests (`E2E_BIN_DIR` or the
/// build dir), checked to be no older than the sources it was built from.
pub fn timeoutctl() -> PathBuf {
    let dir = std::env::var_os("E2E_BIN_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(e2e::build_dir);
    let ctl = dir.join("timeoutctl");
    let built = fs::metadata(&ctl)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{} is missing ({e}): run `cargo build --workspace` first",
                ctl.display()
            )
        });
    if std::env::var_os("E2E_BIN_DIR").is_none() {
        // Its dep-info file lists the sources: "target: src1 src2 ..." (a
        // space inside a path is written "\ "; our sources have none).
        let deps = fs::read_to_string(dir.join("timeoutctl.d")).unwrap_or_default();
        for src in deps
            .lines()
            .filter_map(|l| l.split_once(": ").map(|(_, d)| d))
            .flat_map(str::split_whitespace)
        {
            if let Ok(t) = fs::metadata(src).and_then(|m| m.modified()) {
                assert!(
                    built >= t,
                    "{} is older than {src}: run `cargo build --workspace` first",
                    ctl.display()
                );
            }
        }
    }
    ctl
}

/// A finished command.
#[derive(Debug)]
pub struct Run {
    pub what: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
    pub fn describe(&self) -> String {
        format!(
            "{} -> {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to the end (bounded), with stdin closed; a command still running
/// after the bound is killed and reported with `status: None`.
pub fn run_bounded(cmd: &mut Command, bound: Duration) -> Run {
    let what = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    // The outputs of these commands are far smaller than a pipe buffer.
    let mut status = wait_child_timeout(&mut child, bound);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        status = None;
    }
    let out = child.wait_with_output().expect("collecting output");
    Run {
        what,
        status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Bound for the daemon's start-up, adoption of running logins included:
/// about one /proc scan per adopted login, with thousands of processes on
/// the host, seconds.
const START_UP: Duration = Duration::from_secs(60);

/// A timeoutd this test started, with its own config file: the test kit's
/// [`Daemon`], which terminates it on drop.
#[derive(Debug)]
pub struct Timeoutd(Daemon);

impl std::ops::Deref for Timeoutd {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.0
    }
}

impl std::ops::DerefMut for Timeoutd {
    fn deref_mut(&mut self) -> &mut Daemon {
        &mut self.0
    }
}

impl Timeoutd {
    /// Starts `timeoutd --config CONFIG --foreground` and waits until it
    /// serves requests on `socket`.
    ///
    /// `daemon_start` alone is not enough: the daemon logs it once its socket
    /// listens, but only then adopts the logins already running, and only
    /// after that answers requests. A login whose PAM registration arrives in
    /// between is adopted as "opened while timeoutd was not running" (no
    /// session_open, no rhost) and its registration merged into that. An
    /// answered `status` proves the start-up is over.
    pub fn start(binary: &Path, config: &Path, env: &Env, log: &Path, socket: &Path) -> Timeoutd {
        Self::start_with_args(binary, config, env, log, socket, &[])
    }

    /// The same, with more arguments after `--foreground`.
    pub fn start_with_args(
        binary: &Path,
        config: &Path,
        env: &Env,
        log: &Path,
        socket: &Path,
        args: &[String],
    ) -> Timeoutd {
        let launch = Launch {
            binary,
            config,
            socket,
            output: Output {
                log: log.to_path_buf(),
                append: false,
                stdout: true,
            },
            start_bound: Duration::from_secs(15),
            serving: Some(START_UP),
        };
        let d = Daemon::start_with_args(&launch, args, &env.syslog)
            .unwrap_or_else(|e| panic!("{e}\n--- syslog ---\n{}", env.syslog.dump()));
        Timeoutd(d)
    }

    /// Sends `sig` to the daemon, which must be running.
    pub fn signal(&mut self, sig: i32) {
        assert!(self.0.signal(sig), "the daemon is not running");
    }

    /// SIGTERM by pid, and waits (bounded) for the exit.
    pub fn stop(mut self) -> Option<ExitStatus> {
        self.0.stop(Duration::from_secs(10))
    }
}
