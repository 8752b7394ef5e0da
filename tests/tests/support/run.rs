//! Running things to the end with a bound: commands, `timeoutctl`, and a
//! timeoutd of the test's own.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use e2e::util::{file_tail, poll_until, terminate_child, wait_child_timeout};
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

/// Bound for the daemon's start-up, adoption of running logins included.
const START_UP: Duration = Duration::from_secs(60);

/// A timeoutd this test started, with its own config file.
#[derive(Debug)]
pub struct Timeoutd {
    child: Child,
    pub log: PathBuf,
    pub started_at: Instant,
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
        let since = Instant::now();
        let out = File::create(log).expect("creating daemon log");
        let child = Command::new(binary)
            .arg("--config")
            .arg(config)
            .arg("--foreground")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut d = Timeoutd {
            child,
            log: log.to_path_buf(),
            started_at: since,
        };
        let deadline = since + Duration::from_secs(15);
        // Short slices so that a daemon dying at start fails the test at once.
        loop {
            let l = env.syslog.wait_line(Duration::from_millis(100), |l| {
                l.at >= since && l.event() == Some("daemon_start")
            });
            if let Some(l) = l {
                d.started_at = l.at;
                // Start-up takes about one /proc scan per adopted login: with
                // thousands of processes on the host, seconds. timeoutctl
                // gives up after 10 s; ask again, within a bound.
                let ctl = timeoutctl();
                let mut last = None;
                let answered = poll_until(START_UP, Duration::from_millis(100), || {
                    let mut status = Command::new(&ctl);
                    status.arg("--socket").arg(socket).arg("status");
                    let r = run_bounded(&mut status, Duration::from_secs(15));
                    let ok = r.ok();
                    last = Some(r);
                    ok.then_some(())
                });
                if answered.is_none() {
                    let r = last.map(|r| r.describe()).unwrap_or_default();
                    panic!(
                        "the daemon did not answer within {START_UP:?}: {r}\n{}",
                        file_tail(log, 4000)
                    );
                }
                return d;
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!(
                    "timeoutd exited at start ({st}):\n{}\n--- config ---\n{}",
                    file_tail(log, 4000),
                    fs::read_to_string(config).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no daemon_start within 15 s:\n{}\n--- syslog ---\n{}",
                file_tail(log, 4000),
                env.syslog.dump()
            );
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `sig` to the daemon (our unreaped child, so the pid is ours).
    pub fn signal(&mut self, sig: i32) {
        assert!(self.running(), "the daemon is not running");
        // SAFETY: try_wait said the child is not reaped, so its pid is ours.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    /// SIGTERM by pid, and waits (bounded) for the exit.
    pub fn stop(mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        wait_child_timeout(&mut self.child, Duration::from_secs(10))
    }
}

impl Drop for Timeoutd {
    fn drop(&mut self) {
        if terminate_child(&mut self.child, Duration::from_secs(5)).is_none() {
            eprintln!("e2e cleanup: timeoutd {} did not exit", self.child.id());
        }
    }
}
