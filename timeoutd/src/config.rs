//! Loading and validating `/etc/session-timeout.toml`.
//!
//! Parsing is strict (unknown keys are errors, so typos are caught) and every
//! error names the file, the line, the column and the cause.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::duration;
use crate::policy::{Limits, Policy};
use crate::template::Template;

pub const DEFAULT_PATH: &str = "/etc/session-timeout.toml";

/// The `[daemon]` table: where things are. Only read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    pub socket: PathBuf,
    pub syslog: PathBuf,
    pub state_dir: PathBuf,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(session_timeout_proto::DEFAULT_SOCKET),
            syslog: PathBuf::from("/dev/log"),
            state_dir: PathBuf::from("/var/lib/session-timeout"),
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub daemon: DaemonConfig,
    pub policy: Policy,
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    defaults: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    socket: Option<Spanned<String>>,
    syslog: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    idle: Option<Spanned<String>>,
    max: Option<Spanned<String>>,
    warn: Option<Spanned<Vec<Spanned<String>>>>,
    grace: Option<Spanned<String>>,
    message: Option<Spanned<String>>,
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: 0,
            column: 0,
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    parse(path, &text)
}

/// Validates config text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut errs = Errors {
        file: path,
        text,
        list: Vec::new(),
    };
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            errs.at(e.span().unwrap_or(0..0), e.message().to_owned());
            return Err(errs.finish());
        }
    };
    let daemon = daemon_section(&raw.daemon, &mut errs);
    let defaults = limits_section(&raw.defaults, &Limits::builtin(), "defaults", &mut errs);
    if errs.list.is_empty() {
        Ok(Config {
            path: path.to_owned(),
            daemon,
            policy: Policy::new(defaults),
        })
    } else {
        Err(errs.finish())
    }
}

struct Errors<'a> {
    file: &'a Path,
    text: &'a str,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    fn at(&mut self, span: Range<usize>, message: String) {
        let (line, column) = line_col(self.text, span.start);
        self.list.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message,
        });
    }

    fn finish(self) -> ConfigErrors {
        ConfigErrors(self.list)
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

fn absolute_path(
    v: &Option<Spanned<String>>,
    default: PathBuf,
    key: &str,
    errs: &mut Errors,
) -> PathBuf {
    match v {
        None => default,
        Some(s) if s.get_ref().starts_with('/') => PathBuf::from(s.get_ref()),
        Some(s) => {
            errs.at(
                s.span(),
                format!("{key} must be an absolute path, got {:?}", s.get_ref()),
            );
            default
        }
    }
}

fn daemon_section(raw: &RawDaemon, errs: &mut Errors) -> DaemonConfig {
    let d = DaemonConfig::default();
    DaemonConfig {
        socket: absolute_path(&raw.socket, d.socket, "socket", errs),
        syslog: absolute_path(&raw.syslog, d.syslog, "syslog", errs),
        state_dir: absolute_path(&raw.state_dir, d.state_dir, "state_dir", errs),
    }
}

fn limit(
    v: &Option<Spanned<String>>,
    inherited: Option<Duration>,
    errs: &mut Errors,
) -> Option<Duration> {
    match v {
        None => inherited,
        Some(s) => duration::parse_limit(s.get_ref()).unwrap_or_else(|e| {
            errs.at(s.span(), format!("bad duration: {e}"));
            inherited
        }),
    }
}

/// Resolves one table of limits over the inherited ones and checks it.
fn limits_section(raw: &RawLimits, inherited: &Limits, table: &str, errs: &mut Errors) -> Limits {
    let idle = limit(&raw.idle, inherited.idle, errs);
    let max = limit(&raw.max, inherited.max, errs);
    let grace = match &raw.grace {
        None => inherited.grace,
        Some(s) => duration::parse(s.get_ref()).unwrap_or_else(|e| {
            errs.at(s.span(), format!("bad duration: {e}"));
            inherited.grace
        }),
    };
    let mut warn = inherited.warn.clone();
    if let Some(list) = &raw.warn {
        warn.clear();
        for w in list.get_ref() {
            match duration::parse(w.get_ref()) {
                Ok(d) if d.is_zero() => errs.at(
                    w.span(),
                    "a warning 0s before the deadline is no warning; remove it".into(),
                ),
                Ok(d) => {
                    for (name, lim) in [("idle", idle), ("max", max)] {
                        if let Some(lim) = lim.filter(|lim| d >= *lim) {
                            errs.at(
                                w.span(),
                                format!(
                                    "warning offset {} in [{table}] is not shorter than its {name} limit {}",
                                    duration::Human(d),
                                    duration::Human(lim)
                                ),
                            );
                        }
                    }
                    warn.push(d);
                }
                Err(e) => errs.at(w.span(), format!("bad duration: {e}")),
            }
        }
        warn.sort_unstable_by(|a, b| b.cmp(a));
        warn.dedup();
    } else {
        // Inherited offsets that do not fit under this table's limits are dropped, not errors.
        let shortest = [idle, max].into_iter().flatten().min();
        warn.retain(|w| shortest.is_none_or(|s| *w < s));
    }
    let message = match &raw.message {
        None => inherited.message.clone(),
        Some(s) => Template::parse(s.get_ref()).unwrap_or_else(|(offset, msg)| {
            // +1 for the opening quote of the TOML string.
            errs.at(s.span().start + 1 + offset..s.span().end, msg);
            inherited.message.clone()
        }),
    };
    Limits {
        idle,
        max,
        warn,
        grace,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, ConfigErrors> {
        parse(Path::new("/etc/t.toml"), text)
    }

    fn only_error(text: &str) -> ConfigError {
        let errs = check(text).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        errs.into_iter().next().unwrap()
    }

    #[test]
    fn the_issue_schema_loads() {
        let c = check(
            r#"
[daemon]
socket = "/run/st/t.sock"
syslog = "/dev/log"
state_dir = "/var/lib/session-timeout"
[defaults]
idle = "15m"
max  = "12h"
warn = ["1m", "5m"]
grace = "10s"
"#,
        )
        .unwrap();
        assert_eq!(c.daemon.socket, PathBuf::from("/run/st/t.sock"));
        let d = &c.policy.defaults;
        assert_eq!(d.idle, Some(Duration::from_secs(900)));
        assert_eq!(d.max, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(d.warn, [Duration::from_secs(300), Duration::from_secs(60)]);
        assert_eq!(d.grace, Duration::from_secs(10));
    }

    #[test]
    fn off_disables_a_limit_and_empty_file_gets_builtins() {
        let c = check("[defaults]\nidle = \"off\"\n").unwrap();
        assert_eq!(c.policy.defaults.idle, None);
        let c = check("").unwrap();
        assert_eq!(c.policy.defaults, Limits::builtin());
        assert_eq!(c.daemon, DaemonConfig::default());
    }

    #[test]
    fn unknown_key_is_located() {
        let e = only_error("[defaults]\nidle = \"15m\"\nidel = \"5m\"\n");
        assert_eq!((e.line, e.column), (3, 1));
        assert!(e.message.contains("unknown field `idel`"), "{}", e.message);
        assert!(e.to_string().starts_with("/etc/t.toml:3:1: "));
    }

    #[test]
    fn wrong_type_is_located() {
        let e = only_error("[defaults]\nidle = 15\n");
        assert_eq!((e.line, e.column), (2, 8));
        assert!(e.message.contains("string"), "{}", e.message);
    }

    #[test]
    fn bad_duration_is_located() {
        let e = only_error("[defaults]\nmax = \"12\"\n");
        assert_eq!((e.line, e.column), (2, 7));
        assert!(e.message.contains("bare number"), "{}", e.message);
    }

    #[test]
    fn warning_not_shorter_than_limit_is_an_error() {
        let e = only_error("[defaults]\nidle = \"1m\"\nmax = \"off\"\nwarn = [\"30s\", \"1m\"]\n");
        assert_eq!((e.line, e.column), (4, 16));
        assert!(
            e.message.contains("not shorter than its idle limit 1m"),
            "{}",
            e.message
        );
    }

    #[test]
    fn inherited_warnings_that_do_not_fit_are_dropped() {
        let c = check("[defaults]\nidle = \"2m\"\n").unwrap();
        assert_eq!(c.policy.defaults.warn, [Duration::from_secs(60)]);
    }

    #[test]
    fn unknown_placeholder_is_located() {
        let e = only_error("[defaults]\nmessage = \"bye {usr}\"\n");
        assert_eq!((e.line, e.column), (2, 16));
        assert!(e.message.contains("{usr}"));
    }

    #[test]
    fn relative_paths_and_syntax_errors_are_errors() {
        let e = only_error("[daemon]\nsocket = \"run/x\"\n");
        assert_eq!(e.line, 2);
        let e = only_error("[defaults\nidle = 1\n");
        assert_eq!(e.line, 1);
    }

    #[test]
    fn several_errors_are_all_reported() {
        let errs = check("[defaults]\nidle = \"x\"\nmax = \"y\"\n").unwrap_err();
        assert_eq!(errs.0.len(), 2);
        assert_eq!(errs.to_string().lines().count(), 2);
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let e = load(Path::new("/nonexistent/st.toml")).unwrap_err();
        assert!(e.to_string().contains("cannot read the config file"));
    }
}
