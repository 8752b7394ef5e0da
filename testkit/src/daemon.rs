//! Running the real `timeoutd --config PATH --foreground`: the `[daemon]`
//! table of a config of our own, start-up, readiness, signals and stop.
//!
//! Ready means the daemon logged a `daemon_start` carrying its own pid (its
//! socket listens by then) and, when asked for, answered a `status` request:
//! it logs `daemon_start` before it adopts the logins already running, and
//! answers only after that.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use session_timeout_proto::client::exchange;
use session_timeout_proto::{Request, Response, MAX_REPLY};

use crate::procs::{self, Sample};
use crate::syslog::SyslogSink;
use crate::wait::{
    file_tail, poll_until, signal_child, terminate_child, wait_child_timeout, wait_until,
};

/// A TOML basic string literal for `s`.
pub fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The `[daemon]` table: our socket, our syslog socket, our state directory,
/// and `adopt` when given (`None` keeps the daemon's default).
pub fn daemon_table(
    socket: &Path,
    syslog: &Path,
    state_dir: &Path,
    adopt: Option<&[&str]>,
) -> String {
    let mut t = format!(
        "[daemon]\nsocket = {}\nsyslog = {}\nstate_dir = {}\n",
        toml_str(&socket.to_string_lossy()),
        toml_str(&syslog.to_string_lossy()),
        toml_str(&state_dir.to_string_lossy()),
    );
    if let Some(names) = adopt {
        let names: Vec<String> = names.iter().map(|n| toml_str(n)).collect();
        t.push_str(&format!("adopt = [{}]\n", names.join(", ")));
    }
    t
}

/// One table of limits, in the config's own words ("15m", "off").
#[derive(Debug, Clone)]
pub struct Limits {
    pub idle: String,
    pub max: String,
    pub warn: Vec<String>,
    pub grace: String,
}

impl Limits {
    /// These limits with a grace of 10 s.
    pub fn new(idle: &str, max: &str, warn: &[&str]) -> Limits {
        Limits {
            idle: idle.into(),
            max: max.into(),
            warn: warn.iter().map(|w| (*w).to_owned()).collect(),
            grace: "10s".into(),
        }
    }

    /// The table's `key = value` lines.
    pub fn toml(&self) -> String {
        let warn: Vec<String> = self.warn.iter().map(|w| toml_str(w)).collect();
        format!(
            "idle = {}\nmax = {}\nwarn = [{}]\ngrace = {}\n",
            toml_str(&self.idle),
            toml_str(&self.max),
            warn.join(", "),
            toml_str(&self.grace)
        )
    }
}

/// Creates `dir` (and parents) owned by us with mode 0700, as the daemon
/// wants its state directory.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Where the daemon's output goes.
#[derive(Debug, Clone)]
pub struct Output {
    pub log: PathBuf,
    /// Append to the log (one log across restarts) instead of truncating it.
    pub append: bool,
    /// Stdout goes to the log too (else to /dev/null); stderr always does.
    pub stdout: bool,
}

/// What to start and how long to wait for it.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub config: &'a Path,
    pub socket: &'a Path,
    pub output: Output,
    /// Bound for `daemon_start` and the socket file.
    pub start_bound: Duration,
    /// Also wait, this long at most, until it answers `status`.
    pub serving: Option<Duration>,
}

/// Why the daemon did not come up. Its output and config are in the message.
#[derive(Debug)]
pub enum StartError {
    Spawn(PathBuf, io::Error),
    Exited(ExitStatus, String),
    NoStart(Duration, String),
    NotServing(Duration, String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn(bin, e) => write!(f, "cannot start {}: {e}", bin.display()),
            Self::Exited(st, what) => write!(f, "timeoutd exited at start ({st}).\n{what}"),
            Self::NoStart(bound, what) => write!(
                f,
                "timeoutd logged no event=daemon_start (or made no socket) within {bound:?}.\n{what}"
            ),
            Self::NotServing(bound, what) => write!(
                f,
                "timeoutd did not answer a status request within {bound:?}.\n{what}"
            ),
        }
    }
}

impl std::error::Error for StartError {}

/// A running daemon, our child. Dropping it continues it (if stopped),
/// terminates it (SIGTERM, then SIGKILL) and kills what it left behind.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Just before the process was spawned: everything it does comes after.
    pub spawned_at: Instant,
    /// When its `daemon_start` arrived.
    pub started_at: Instant,
}

fn open_log(out: &Output) -> io::Result<File> {
    if out.append {
        OpenOptions::new().create(true).append(true).open(&out.log)
    } else {
        File::create(&out.log)
    }
}

impl Daemon {
    /// Starts the daemon and waits until it is ready (see the module doc);
    /// on failure it is killed and reaped.
    pub fn start(launch: &Launch, sink: &SyslogSink) -> Result<Daemon, StartError> {
        Self::start_with_args(launch, &[], sink)
    }

    /// The same, with more command-line arguments after `--foreground`
    /// (`--civil-clock-offset SECS` in the windows and quota tests).
    pub fn start_with_args(
        launch: &Launch,
        args: &[String],
        sink: &SyslogSink,
    ) -> Result<Daemon, StartError> {
        let spawn_err = |e| StartError::Spawn(launch.binary.to_path_buf(), e);
        let log = open_log(&launch.output).map_err(spawn_err)?;
        let stdout = if launch.output.stdout {
            Stdio::from(log.try_clone().map_err(spawn_err)?)
        } else {
            Stdio::null()
        };
        let spawned_at = Instant::now();
        let child = Command::new(launch.binary)
            .arg("--config")
            .arg(launch.config)
            .arg("--foreground")
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(spawn_err)?;
        let mut d = Daemon {
            child,
            socket: launch.socket.to_path_buf(),
            config: launch.config.to_path_buf(),
            log: launch.output.log.clone(),
            spawned_at,
            started_at: spawned_at,
        };
        let ready = d
            .wait_started(launch.start_bound, sink)
            .and_then(|()| launch.serving.map_or(Ok(()), |bound| d.wait_serving(bound)));
        match ready {
            Ok(()) => Ok(d),
            Err(e) => {
                let _ = d.child.kill();
                let _ = d.child.wait();
                Err(e)
            }
        }
    }

    /// Its output so far and its config, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "--- its output ---\n{}\n--- config ---\n{}",
            file_tail(&self.log, 4000),
            fs::read_to_string(&self.config).unwrap_or_default()
        )
    }

    /// Waits in short slices, so that a daemon dying at start fails at once.
    fn wait_started(&mut self, bound: Duration, sink: &SyslogSink) -> Result<(), StartError> {
        let deadline = Instant::now() + bound;
        let pid = self.pid().to_string();
        loop {
            let slice = Duration::from_millis(100);
            if let Some(l) = sink.wait_event("daemon_start", &[("pid", &pid)], slice) {
                self.started_at = l.at;
                let left = deadline.saturating_duration_since(Instant::now());
                let socket = &self.socket;
                if wait_until(left, Duration::from_millis(10), || socket.exists()) {
                    return Ok(());
                }
                return Err(StartError::NoStart(bound, self.describe()));
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(StartError::Exited(st, self.describe()));
            }
            if Instant::now() >= deadline {
                return Err(StartError::NoStart(bound, self.describe()));
            }
        }
    }

    /// Asks `status` until the daemon answers with its sessions.
    fn wait_serving(&mut self, bound: Duration) -> Result<(), StartError> {
        let socket = &self.socket;
        let answered = poll_until(bound, Duration::from_millis(20), || {
            match exchange(socket, &Request::Status, Duration::from_secs(5), MAX_REPLY) {
                Ok(Response::Sessions(_)) => Some(()),
                _ => None,
            }
        });
        match answered {
            Some(()) => Ok(()),
            None => Err(StartError::NotServing(bound, self.describe())),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Is it still running (not exited, or exited but not reaped)?
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `sig`; false if it is gone.
    pub fn signal(&mut self, sig: i32) -> bool {
        signal_child(&mut self.child, sig)
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and up to `grace` for it to exit (reaped); `None` if it
    /// is still running then.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        wait_child_timeout(&mut self.child, grace)
    }

    /// SIGTERM, up to `grace` for it to exit, then SIGKILL; reaped.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        terminate_child(&mut self.child, grace)
    }

    /// The last `max` bytes of its output.
    pub fn output(&self, max: usize) -> String {
        file_tail(&self.log, max)
    }

    /// Its resource use now.
    pub fn sample(&self) -> Option<Sample> {
        Sample::take(self.pid())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.running() {
            return;
        }
        self.signal(libc::SIGCONT);
        let kids: Vec<procs::ProcInfo> = procs::descendants(self.pid())
            .into_iter()
            .filter_map(procs::stat)
            .collect();
        if self.terminate(Duration::from_secs(5)).is_none() {
            eprintln!("cleanup: timeoutd {} did not exit", self.pid());
        }
        for k in &kids {
            procs::signal_checked(k, libc::SIGKILL);
        }
    }
}
