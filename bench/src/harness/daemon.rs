//! The benchmark's daemon: a config of our own (limits per PAM service),
//! run by the test kit's runner; what /proc says about it, as JSON.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use st_testkit::daemon::Limits;
use st_testkit::daemon::{self as kit, daemon_table};
pub use st_testkit::procs::{fd_targets, Sample};
use st_testkit::syslog::SyslogSink;

use crate::results::json::J;

/// The config file: our socket, our syslog socket, our state directory
/// (the daemon's default `adopt`), `defaults`, and one rule per (name, PAM
/// service, limits).
pub fn config_text(
    socket: &Path,
    syslog: &Path,
    state_dir: &Path,
    defaults: &Limits,
    rules: &[(&str, &str, Limits)],
    daemon_keys: &str,
) -> String {
    let mut s = format!(
        "# Written by st-bench.\n{}{daemon_keys}\n[defaults]\n{}",
        daemon_table(socket, syslog, state_dir, None),
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

/// A running daemon: the test kit's runner, ready once it logged its
/// `daemon_start` and made its socket.
pub struct Daemon {
    pub pid: u32,
    pub socket: PathBuf,
    inner: kit::Daemon,
}

impl Daemon {
    /// Starts `timeoutd --config DIR/timeoutd.toml --foreground` (stderr in
    /// DIR/stderr.log) and waits for its `daemon_start` event and its socket.
    pub fn start(
        bin: &Path,
        dir: &Path,
        sink: &SyslogSink,
        defaults: &Limits,
        rules: &[(&str, &str, Limits)],
    ) -> Result<Daemon, String> {
        Daemon::start_with(bin, dir, sink, defaults, rules, "")
    }

    /// The same with more `[daemon]` keys (TOML lines); `bin` may be a
    /// wrapper that execs timeoutd (its pid stays the daemon's).
    pub fn start_with(
        bin: &Path,
        dir: &Path,
        sink: &SyslogSink,
        defaults: &Limits,
        rules: &[(&str, &str, Limits)],
        daemon_keys: &str,
    ) -> Result<Daemon, String> {
        let state = dir.join("state");
        // A fresh state per measurement: with `--runs 2` the same directory
        // serves again, and the first run's revocation would still hold.
        if state.exists() {
            fs::remove_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
        }
        fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
        let socket = dir.join("timeoutd.sock");
        // The previous run's socket file would pass for this daemon's
        // before it listens (the runner waits for the file).
        let _ = fs::remove_file(&socket);
        let cfg = dir.join("timeoutd.toml");
        let text = config_text(&socket, &sink.path, &state, defaults, rules, daemon_keys);
        fs::write(&cfg, text).map_err(|e| format!("{}: {e}", cfg.display()))?;
        let launch = kit::Launch {
            binary: bin,
            config: &cfg,
            socket: &socket,
            output: kit::Output {
                log: dir.join("stderr.log"),
                append: false,
                stdout: false,
            },
            start_bound: Duration::from_secs(10),
            serving: None,
        };
        let inner = kit::Daemon::start(&launch, sink).map_err(|e| e.to_string())?;
        Ok(Daemon {
            pid: inner.pid(),
            socket,
            inner,
        })
    }

    pub fn sample(&self) -> Option<Sample> {
        self.inner.sample()
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub fn stop(mut self) {
        self.inner.terminate(Duration::from_secs(5));
    }
}

/// A sample as the report's JSON.
pub fn sample_json(s: Sample) -> J {
    J::obj([
        ("rss_kib", J::from(s.rss_kb)),
        ("rss_anon_kib", J::from(s.rss_anon_kb)),
        ("fds", J::from(s.fds)),
        ("cpu_ticks", J::from(s.cpu_ticks)),
        ("sched_ns", J::from(s.sched_ns)),
        ("ctxt_voluntary", J::from(s.voluntary)),
        ("ctxt_involuntary", J::from(s.involuntary)),
    ])
}
