//! What a validated config file says, and what is wrong with an invalid one.
//! These types are shared by the daemon, `timeoutctl` (which only needs
//! `[daemon] socket`) and the fuzz targets.

use std::fmt;
use std::path::PathBuf;

use crate::config::revalidate::RevalidateConfig;
use crate::core::policy::Policy;

pub const DEFAULT_PATH: &str = "/etc/session-timeout.toml";

/// The `[daemon]` table: where things are. Only read at start, except
/// `revalidate*`, which a reload applies too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    pub socket: PathBuf,
    pub syslog: PathBuf,
    pub state_dir: PathBuf,
    /// Members may use the admin verbs of `timeoutctl` besides root.
    pub admin_group: Option<String>,
    /// Process names (globs) of login programs whose sessions, found running
    /// without a registration at start, are adopted. Empty: adopt nothing.
    pub adopt: Vec<String>,
    /// Re-validation of live users through the PAM account stack.
    pub revalidate: RevalidateConfig,
    /// The zone of `hours` and of quota days; `None`: the host's local time.
    pub timezone: Option<String>,
    /// Local time at which quota days start (hour, minute).
    pub day_starts: (i8, i8),
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(session_timeout_proto::DEFAULT_SOCKET),
            syslog: PathBuf::from("/dev/log"),
            state_dir: PathBuf::from("/var/lib/session-timeout"),
            admin_group: None,
            adopt: vec!["sshd".to_owned(), "login".to_owned()],
            revalidate: RevalidateConfig::default(),
            timezone: None,
            day_starts: (0, 0),
        }
    }
}

impl DaemonConfig {
    /// The zone of windows and quota days, read from the system's tz
    /// database (`/usr/share/zoneinfo`); the host's own zone (TZ,
    /// /etc/localtime) unless `timezone` names one; UTC if neither reads.
    pub fn zone(&self) -> jiff::tz::TimeZone {
        match &self.timezone {
            Some(name) => jiff::tz::TimeZone::get(name).unwrap_or(jiff::tz::TimeZone::UTC),
            None => jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC),
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub daemon: DaemonConfig,
    pub policy: Policy,
    /// Problems that do not stop the file from loading (shadowed rules).
    pub warnings: Vec<ConfigError>,
}

/// One problem in a config file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// All the problems found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl std::error::Error for ConfigErrors {}
