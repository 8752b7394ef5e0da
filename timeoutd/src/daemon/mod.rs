//! The running daemon: [`start`] brings it up (policy, detaching, socket,
//! state, restored and adopted sessions) and returns a [`Daemon`] that
//! [`Daemon::serve`]s requests and timers until SIGTERM or SIGINT.
//!
//! - `startup`: the steps of start-up, each its own function;
//! - `detach`: fork, setsid, the pidfile and the readiness pipe;
//! - `process`: umask, signalfd and the open-file limit;
//! - `event_loop`: poll, answer, run what is due, reload;
//! - `checks`: the re-validation children and the replies that wait for them;
//! - `server`: the socket syscalls; `conn`: each connection's state machine.

mod checks;
mod conn;
mod detach;
mod event_loop;
mod process;
mod server;
mod startup;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::ConfigErrors;
use crate::engine::Engine;
use crate::host::syslog::Syslog;
use crate::host::Host;
use server::Server;

pub use startup::start;

/// How `timeoutd` was asked to run.
pub struct Options {
    pub config_path: PathBuf,
    pub foreground: bool,
    pub pidfile: Option<PathBuf>,
    /// Test only (`--civil-clock-offset`): seconds added to the wall clock
    /// that windows and quota days are read on; never to deadlines.
    pub civil_clock_offset: i64,
}

/// A daemon that is up: its socket is listening and its sessions restored.
pub struct Daemon {
    engine: Engine<Host>,
    server: Server,
    checks: checks::Checks,
    config_path: PathBuf,
    syslog: Arc<Syslog>,
    socket: PathBuf,
    pidfile: Option<PathBuf>,
}

impl Daemon {
    /// Serves until SIGTERM or SIGINT, then removes the socket, the pidfile
    /// and the empty cgroups it made, and sends the log lines still waiting.
    pub fn serve(mut self) {
        event_loop::run(
            &mut self.engine,
            &mut self.server,
            &mut self.checks,
            &self.config_path,
            &self.syslog,
        );
        self.engine.sys.tear_down_cgroups();
        let _ = std::fs::remove_file(&self.socket);
        if let Some(p) = &self.pidfile {
            detach::remove_pidfile(p);
        }
        self.syslog.drain();
    }
}

/// Why the daemon did not start.
#[derive(Debug)]
pub enum StartError {
    /// The config file is missing or invalid (the errors are the source).
    Config(ConfigErrors),
    /// fork, setsid or the readiness pipe failed.
    Daemonize(io::Error),
    /// The signalfd could not be set up.
    Signals(io::Error),
    /// The socket could not be bound (in use by another daemon, not a socket, ...).
    Listen { socket: PathBuf, error: io::Error },
    /// The pidfile could not be written.
    Pidfile { path: PathBuf, error: io::Error },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(_) => write!(f, "refusing to start without a valid policy"),
            Self::Daemonize(e) => write!(f, "cannot daemonize: {e}"),
            Self::Signals(e) => write!(f, "cannot set up signal handling: {e}"),
            Self::Listen { socket, error } => {
                write!(f, "cannot listen on {}: {error}", socket.display())
            }
            Self::Pidfile { path, error } => {
                write!(f, "cannot write pidfile {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(errors) => Some(errors),
            Self::Daemonize(e) | Self::Signals(e) => Some(e),
            Self::Listen { error, .. } | Self::Pidfile { error, .. } => Some(error),
        }
    }
}
