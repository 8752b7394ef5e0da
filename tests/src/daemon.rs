//! Running `timeoutd --config PATH --foreground` with a config the test writes.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs;
use crate::syslog::SyslogSink;
use crate::util::{file_tail, terminate_child};

/// How long the daemon may take to emit `daemon_start`.
const START_BOUND: Duration = Duration::from_secs(15);

/// The `[defaults]` policy of the daemon.
#[derive(Debug, Clone)]
pub struct Limits {
    pub idle: String,
    pub max: String,
    pub warn: Vec<String>,
    pub grace: String,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle: "15s".into(),
            max: "30s".into(),
            warn: vec!["10s".into()],
            grace: "2s".into(),
        }
    }
}

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

/// Config text beyond [`Limits`]: more `key = value` lines for `[defaults]`
/// (e.g. `notty = "max-only"`, `kill_scope = "leader"`), and whole
/// `[[rule]]` tables, written verbatim after it.
#[derive(Debug, Clone, Default)]
pub struct ConfigExtra {
    pub defaults: Vec<String>,
    pub rules: Vec<String>,
}

/// The config file text.
pub fn config_text(socket: &Path, syslog: &Path, state_dir: &Path, limits: &Limits) -> String {
    config_text_with(socket, syslog, state_dir, limits, &ConfigExtra::default())
}

/// The config file text, with `extra` appended to `[defaults]` and after it.
pub fn config_text_with(
    socket: &Path,
    syslog: &Path,
    state_dir: &Path,
    limits: &Limits,
    extra: &ConfigExtra,
) -> String {
    let warn: Vec<String> = limits.warn.iter().map(|w| toml_str(w)).collect();
    let mut text = format!(
        "# Written by the session-timeout e2e tests.\n\
         [daemon]\n\
         socket = {}\n\
         syslog = {}\n\
         state_dir = {}\n\
         # Tests run side by side: never take over another test's logins.\n\
         adopt = []\n\
         \n\
         [defaults]\n\
         idle = {}\n\
         max = {}\n\
         warn = [{}]\n\
         grace = {}\n",
        toml_str(&socket.to_string_lossy()),
        toml_str(&syslog.to_string_lossy()),
        toml_str(&state_dir.to_string_lossy()),
        toml_str(&limits.idle),
        toml_str(&limits.max),
        warn.join(", "),
        toml_str(&limits.grace),
    );
    for line in &extra.defaults {
        text.push_str(line);
        text.push('\n');
    }
    for rule in &extra.rules {
        text.push('\n');
        text.push_str(rule.trim_end());
        text.push('\n');
    }
    text
}

/// A running daemon. Dropping it stops it (SIGTERM, then SIGKILL).
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// When `daemon_start` arrived.
    pub started_at: Instant,
}

impl Daemon {
    /// Writes the config in `dir`, starts the daemon and waits for `daemon_start`
    /// on `syslog` (its readiness signal: the socket is listening by then).
    pub fn start(
        binary: &Path,
        dir: &Path,
        socket: &Path,
        syslog: &SyslogSink,
        limits: &Limits,
    ) -> Daemon {
        Daemon::start_with(binary, dir, socket, syslog, limits, &ConfigExtra::default())
    }

    /// [`start`](Self::start) with more config (see [`ConfigExtra`]).
    pub fn start_with(
        binary: &Path,
        dir: &Path,
        socket: &Path,
        syslog: &SyslogSink,
        limits: &Limits,
        extra: &ConfigExtra,
    ) -> Daemon {
        let state_dir = dir.join("state");
        fs::create_dir_all(&state_dir).expect("creating state dir");
        // The daemon wants its state dir owned by root and private.
        fs::set_permissions(&state_dir, fs::Permissions::from_mode(0o700))
            .expect("chmod state dir");
        let config = dir.join("timeoutd.toml");
        fs::write(
            &config,
            config_text_with(socket, &syslog.path, &state_dir, limits, extra),
        )
        .expect("writing daemon config");
        let log = dir.join("timeoutd.log");
        let log_file = File::create(&log).expect("creating daemon log");
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .arg("--foreground")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut d = Daemon {
            child,
            socket: socket.to_path_buf(),
            config,
            log,
            started_at: Instant::now(),
        };
        // The sink belongs to this test alone, so any daemon_start is this daemon's.
        // Wait in short slices so a daemon that dies at start fails at once.
        let deadline = Instant::now() + START_BOUND;
        loop {
            if let Some(l) = syslog.wait_event("daemon_start", &[], Duration::from_millis(100)) {
                d.started_at = l.at;
                return d;
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!(
                    "timeoutd exited at start ({st}).\n--- its output ---\n{}\n--- config ---\n{}\n--- syslog ---\n{}",
                    file_tail(&d.log, 4000),
                    fs::read_to_string(&d.config).unwrap_or_default(),
                    syslog.dump()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "timeoutd logged no event=daemon_start within {START_BOUND:?}.\n--- its output ---\n{}\n--- syslog ---\n{}",
                    file_tail(&d.log, 4000),
                    syslog.dump()
                );
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's stdout/stderr so far.
    pub fn output(&self) -> String {
        file_tail(&self.log, 8000)
    }

    /// Is it still running?
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let kids: Vec<procs::ProcInfo> = procs::descendants(self.pid())
            .into_iter()
            .filter_map(procs::stat)
            .collect();
        if terminate_child(&mut self.child, Duration::from_secs(5)).is_none() {
            eprintln!("e2e cleanup: timeoutd {} did not exit", self.pid());
        }
        for k in &kids {
            procs::signal_checked(k, libc::SIGKILL);
        }
    }
}
