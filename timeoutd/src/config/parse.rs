//! Loading and validating `/etc/session-timeout.toml`: the file's raw shape,
//! the whole-file pass and the `[daemon]` table.
//!
//! Parsing is strict (unknown keys are errors, so typos are caught) and every
//! error names the file, the line, the column and the cause.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::revalidate::{revalidate_section, RawRevalidate};
use crate::config::sections::{forbid_criteria, limits_section, rule_section};
use crate::config::types::{Config, ConfigError, ConfigErrors, DaemonConfig};
use crate::core::policy::{Limits, Policy};

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
    revalidate: Option<Spanned<String>>,
    revalidate_service: Option<Spanned<String>>,
    revalidate_timeout: Option<Spanned<String>>,
    revalidate_unavailable: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    day_starts: Option<Spanned<String>>,
}

pub(super) type Strings = Option<Spanned<Vec<Spanned<String>>>>;

/// `[defaults]` and each `[[rule]]` share one shape; criteria and `name` are
/// only allowed in rules.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTable {
    pub(super) name: Option<Spanned<String>>,
    pub(super) users: Strings,
    pub(super) groups: Strings,
    pub(super) services: Strings,
    pub(super) rhosts: Strings,
    pub(super) tty: Option<Spanned<String>>,
    pub(super) auth: Strings,
    pub(super) certificate: Option<Spanned<bool>>,
    pub(super) end_at_cert_expiry: Option<Spanned<bool>>,
    pub(super) idle: Option<Spanned<String>>,
    pub(super) max: Option<Spanned<String>>,
    pub(super) warn: Strings,
    pub(super) grace: Option<Spanned<String>>,
    pub(super) count_output: Option<Spanned<bool>>,
    pub(super) notty: Option<Spanned<String>>,
    pub(super) kill_scope: Option<Spanned<String>>,
    pub(super) message: Option<Spanned<String>>,
    pub(super) enforce: Option<Spanned<String>>,
    pub(super) dry_run_warn: Option<Spanned<bool>>,
    pub(super) hours: Strings,
    pub(super) daily: Option<Spanned<String>>,
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

pub(super) struct Errors<'a> {
    file: &'a Path,
    text: &'a str,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    pub(super) fn at(&mut self, span: Range<usize>, message: String) {
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
        timezone: raw.timezone.as_ref().and_then(|z| {
            let name = z.get_ref();
            match jiff::tz::TimeZone::get(name) {
                Ok(_) => Some(name.clone()),
                Err(e) => {
                    errs.at(
                        z.span(),
                        format!("timezone: {name:?} is not in the tz database: {e}"),
                    );
                    None
                }
            }
        }),
        day_starts: raw.day_starts.as_ref().map_or(d.day_starts, |v| {
            crate::core::policy::window::hh_mm(v.get_ref())
                .filter(|m| *m < 1440)
                .map(|m| ((m / 60) as i8, (m % 60) as i8))
                .unwrap_or_else(|| {
                    errs.at(
                        v.span(),
                        format!(
                            "day_starts: {:?} is not a time HH:MM from 00:00 to 23:59",
                            v.get_ref()
                        ),
                    );
                    d.day_starts
                })
        }),
        revalidate: revalidate_section(
            &RawRevalidate {
                interval: &raw.revalidate,
                service: &raw.revalidate_service,
                timeout: &raw.revalidate_timeout,
                unavailable: &raw.revalidate_unavailable,
            },
            errs,
        ),
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
