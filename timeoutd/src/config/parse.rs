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

use crate::core::duration;
use crate::core::matching::HostPattern;
use crate::core::policy::{Criteria, KillScope, Limits, NottyMode, Policy, Rule, TtyClass};
use crate::core::template::Template;

pub const DEFAULT_PATH: &str = "/etc/session-timeout.toml";

/// The `[daemon]` table: where things are. Only read at start.
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
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(session_timeout_proto::DEFAULT_SOCKET),
            syslog: PathBuf::from("/dev/log"),
            state_dir: PathBuf::from("/var/lib/session-timeout"),
            admin_group: None,
            adopt: vec!["sshd".to_owned(), "login".to_owned()],
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    defaults: RawTable,
    #[serde(default)]
    rule: Vec<Spanned<RawTable>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    socket: Option<Spanned<String>>,
    syslog: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    admin_group: Option<Spanned<String>>,
    adopt: Option<Vec<Spanned<String>>>,
}

type Strings = Option<Spanned<Vec<Spanned<String>>>>;

/// `[defaults]` and each `[[rule]]` share one shape; criteria and `name` are
/// only allowed in rules.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: Option<Spanned<String>>,
    users: Strings,
    groups: Strings,
    services: Strings,
    rhosts: Strings,
    tty: Option<Spanned<String>>,
    idle: Option<Spanned<String>>,
    max: Option<Spanned<String>>,
    warn: Strings,
    grace: Option<Spanned<String>>,
    count_output: Option<Spanned<bool>>,
    notty: Option<Spanned<String>>,
    kill_scope: Option<Spanned<String>>,
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
    forbid_criteria(&raw.defaults, &mut errs);
    let defaults = limits_section(&raw.defaults, &Limits::builtin(), "[defaults]", &mut errs);
    let mut policy = Policy::new(defaults);
    for table in &raw.rule {
        if let Some(rule) = rule_section(table, &policy, &mut errs) {
            policy.rules.push(rule);
        }
    }
    if errs.list.is_empty() {
        let warnings = policy
            .shadowed()
            .into_iter()
            .map(|(later, earlier)| {
                let span = raw.rule[later].span();
                let (line, column) = line_col(text, span.start);
                ConfigError {
                    file: path.to_owned(),
                    line,
                    column,
                    message: format!(
                        "warning: rule {:?} can never match: rule {:?} before it matches every login it would",
                        policy.rules[later].name, policy.rules[earlier].name
                    ),
                }
            })
            .collect();
        Ok(Config {
            path: path.to_owned(),
            daemon,
            policy,
            warnings,
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
        admin_group: raw.admin_group.as_ref().map(|g| g.get_ref().clone()),
        adopt: match &raw.adopt {
            None => d.adopt,
            Some(list) => list
                .iter()
                .filter_map(|g| {
                    let ok = !g.get_ref().is_empty()
                        && g.get_ref()
                            .chars()
                            .all(|c| c.is_ascii_graphic() && c != '/');
                    if !ok {
                        errs.at(
                            g.span(),
                            format!("adopt: {:?} is not a process-name glob", g.get_ref()),
                        );
                    }
                    ok.then(|| g.get_ref().clone())
                })
                .collect(),
        },
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

fn choice<T>(
    v: &Option<Spanned<String>>,
    inherited: T,
    key: &str,
    options: &[(&str, T)],
    errs: &mut Errors,
) -> T
where
    T: Copy,
{
    let Some(s) = v else {
        return inherited;
    };
    match options.iter().find(|(name, _)| *name == s.get_ref()) {
        Some((_, value)) => *value,
        None => {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
            errs.at(
                s.span(),
                format!(
                    "{key} must be one of {}, got {:?}",
                    names.join(", "),
                    s.get_ref()
                ),
            );
            inherited
        }
    }
}

/// Resolves one table of limits over the inherited ones and checks it.
fn limits_section(raw: &RawTable, inherited: &Limits, table: &str, errs: &mut Errors) -> Limits {
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
                                    "warning offset {} in {table} is not shorter than its {name} limit {}",
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
        count_output: raw
            .count_output
            .as_ref()
            .map_or(inherited.count_output, |b| *b.get_ref()),
        notty: choice(
            &raw.notty,
            inherited.notty,
            "notty",
            &[("io", NottyMode::Io), ("max-only", NottyMode::MaxOnly)],
            errs,
        ),
        kill_scope: choice(
            &raw.kill_scope,
            inherited.kill_scope,
            "kill_scope",
            &[
                ("session", KillScope::Session),
                ("leader", KillScope::Leader),
            ],
            errs,
        ),
        message,
    }
}

/// `[defaults]` holds limits only.
fn forbid_criteria(raw: &RawTable, errs: &mut Errors) {
    let spans = [
        ("name", raw.name.as_ref().map(Spanned::span)),
        ("users", raw.users.as_ref().map(Spanned::span)),
        ("groups", raw.groups.as_ref().map(Spanned::span)),
        ("services", raw.services.as_ref().map(Spanned::span)),
        ("rhosts", raw.rhosts.as_ref().map(Spanned::span)),
        ("tty", raw.tty.as_ref().map(Spanned::span)),
    ];
    for (key, span) in spans {
        if let Some(span) = span {
            errs.at(
                span,
                format!("{key} is a rule criterion; [defaults] only holds limits (put it in a [[rule]])"),
            );
        }
    }
}

fn names(v: &Strings, key: &str, errs: &mut Errors) -> Option<Vec<String>> {
    let list = v.as_ref()?;
    if list.get_ref().is_empty() {
        errs.at(
            list.span(),
            format!("{key} is empty, so the rule could never match; remove the key to match any"),
        );
    }
    for s in list.get_ref() {
        if s.get_ref().is_empty() {
            errs.at(s.span(), format!("empty name in {key}"));
        }
    }
    Some(list.get_ref().iter().map(|s| s.get_ref().clone()).collect())
}

fn rule_section(table: &Spanned<RawTable>, policy: &Policy, errs: &mut Errors) -> Option<Rule> {
    let raw = table.get_ref();
    let Some(name) = &raw.name else {
        errs.at(table.span(), "every [[rule]] needs a name = \"...\"".into());
        return None;
    };
    let name_ok = !name.get_ref().is_empty()
        && name.get_ref() != "defaults"
        && name
            .get_ref()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        errs.at(
            name.span(),
            format!(
                "rule name {:?} must be letters, digits, '-', '_' or '.', and not \"defaults\"",
                name.get_ref()
            ),
        );
    }
    if policy.rules.iter().any(|r| &r.name == name.get_ref()) {
        errs.at(
            name.span(),
            format!("duplicate rule name {:?}", name.get_ref()),
        );
    }
    let rhosts = raw.rhosts.as_ref().map(|list| {
        if list.get_ref().is_empty() {
            errs.at(
                list.span(),
                "rhosts is empty, so the rule could never match".into(),
            );
        }
        list.get_ref()
            .iter()
            .filter_map(|p| {
                HostPattern::parse(p.get_ref())
                    .map_err(|e| errs.at(p.span(), e))
                    .ok()
            })
            .collect()
    });
    let tty = raw.tty.as_ref().and_then(|t| {
        let class = TtyClass::parse(t.get_ref());
        if class.is_none() {
            errs.at(
                t.span(),
                format!(
                    "tty must be \"pty\", \"console\" or \"none\", got {:?}",
                    t.get_ref()
                ),
            );
        }
        class
    });
    let criteria = Criteria {
        users: names(&raw.users, "users", errs),
        groups: names(&raw.groups, "groups", errs),
        services: names(&raw.services, "services", errs),
        rhosts,
        tty,
    };
    let table_name = format!("rule {:?}", name.get_ref());
    let limits = limits_section(raw, &policy.defaults, &table_name, errs);
    Some(Rule {
        name: name.get_ref().clone(),
        criteria,
        limits,
    })
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
