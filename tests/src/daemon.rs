//! The e2e tests' daemon: a config the test writes (`[defaults]` limits,
//! more lines, rules; never adopting another test's logins), run by the
//! test kit's runner.

use std::fs;
use std::path::Path;
use std::time::Duration;

pub use st_testkit::daemon::{daemon_table, private_dir, toml_str, Daemon, Launch, Limits, Output};

use crate::syslog::SyslogSink;

/// How long the daemon may take to emit `daemon_start`.
const START_BOUND: Duration = Duration::from_secs(15);

/// The `[defaults]` policy of the tests' daemon unless they say otherwise:
/// 15 s idle, 30 s max, a warning 10 s before, 2 s grace.
pub fn short_limits() -> Limits {
    Limits {
        grace: "2s".into(),
        ..Limits::new("15s", "30s", &["10s"])
    }
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
    let mut text = format!(
        "# Written by the session-timeout e2e tests.\n\
         # Tests run side by side: never take over another test's logins.\n\
         {}\n\
         [defaults]\n{}",
        daemon_table(socket, syslog, state_dir, Some(&[])),
        limits.toml(),
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

/// Writes the config in `dir`, starts the daemon and waits for its
/// `daemon_start` on `syslog` (the socket is listening by then). Dropping the
/// daemon stops it (SIGTERM, then SIGKILL).
pub fn start(
    binary: &Path,
    dir: &Path,
    socket: &Path,
    syslog: &SyslogSink,
    limits: &Limits,
    extra: &ConfigExtra,
) -> Daemon {
    start_logging_to(binary, dir, socket, &syslog.path, syslog, limits, extra)
}

/// Like [`start`], but the daemon's `[daemon] syslog` is `log_socket` (a real
/// syslog daemon that forwards its lines to `syslog`, where its
/// `daemon_start` is awaited).
pub fn start_logging_to(
    binary: &Path,
    dir: &Path,
    socket: &Path,
    log_socket: &Path,
    syslog: &SyslogSink,
    limits: &Limits,
    extra: &ConfigExtra,
) -> Daemon {
    let state_dir = dir.join("state");
    private_dir(&state_dir).expect("creating the state dir");
    let config = dir.join("timeoutd.toml");
    fs::write(
        &config,
        config_text_with(socket, log_socket, &state_dir, limits, extra),
    )
    .expect("writing daemon config");
    let launch = Launch {
        binary,
        config: &config,
        socket,
        output: Output {
            log: dir.join("timeoutd.log"),
            append: false,
            stdout: true,
        },
        start_bound: START_BOUND,
        serving: None,
    };
    Daemon::start(&launch, syslog)
        .unwrap_or_else(|e| panic!("{e}\n--- syslog ---\n{}", syslog.dump()))
}
