//! The command line of `timeoutctl report`: what to read, which window,
//! how to group, what to propose, and the output form.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use timeoutd::core::time::duration;

use crate::report::read::time;
use crate::report::tally::whatif::Limits;

/// What the sessions are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    User,
    /// The user's primary group, looked up through NSS when the report runs.
    Group,
    Rule,
    Service,
    Rhost,
    Host,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::User => "user",
            By::Group => "group",
            By::Rule => "rule",
            By::Service => "service",
            By::Rhost => "rhost",
            By::Host => "host",
        }
    }
}

/// `timeoutctl report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Log files (`-` is standard input; gzip is recognised). Default:
    /// /var/log/auth.log and its rotated siblings that are readable.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Only sessions that ended this recently, e.g. 7d or 12h.
    #[arg(long, value_name = "DURATION", value_parser = secs, conflicts_with_all = ["from", "to"])]
    pub since: Option<u64>,
    /// Only sessions that ended at or after T (RFC 3339, or YYYY-MM-DD[THH:MM[:SS]] local).
    #[arg(long, value_name = "T", value_parser = time::parse_arg)]
    pub from: Option<i64>,
    /// Only sessions that ended before T.
    #[arg(long, value_name = "T", value_parser = time::parse_arg)]
    pub to: Option<i64>,
    /// Group the sessions by this.
    #[arg(long, value_enum, default_value = "rule")]
    pub by: By,
    /// Proposed limits, e.g. idle=10m,max=8h (either may be "off" or left out).
    #[arg(long = "what-if", value_name = "LIMITS", value_parser = parse_what_if)]
    pub what_if: Option<Limits>,
    /// How many outliers to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub outliers: usize,
    /// Write JSON instead of tables.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Write CSV, one row per group.
    #[arg(long)]
    pub csv: bool,
    /// Also draw histograms of lifetimes and idle gaps into FILE (SVG).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

fn secs(text: &str) -> Result<u64, String> {
    duration::parse(text).map(|d| d.as_secs())
}

/// `idle=10m,max=8h`: each key at most once, at least one.
pub fn parse_what_if(text: &str) -> Result<Limits, String> {
    let mut limits = Limits::default();
    let mut seen = (false, false);
    for part in text.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: write idle=DURATION and/or max=DURATION"))?;
        let v = duration::parse_limit(value)?.map(|d| d.as_secs());
        match key.trim() {
            "idle" if !seen.0 => (limits.idle, seen.0) = (v, true),
            "max" if !seen.1 => (limits.max, seen.1) = (v, true),
            "idle" | "max" => return Err(format!("{key} given twice")),
            other => return Err(format!("{other:?}: only idle= and max= can be proposed")),
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_if_forms() {
        let l = parse_what_if("idle=10m,max=8h").unwrap();
        assert_eq!((l.idle, l.max), (Some(600), Some(28_800)));
        let l = parse_what_if("max=off").unwrap();
        assert_eq!((l.idle, l.max), (None, None));
        assert_eq!(parse_what_if("idle=90s").unwrap().idle, Some(90));
        assert!(parse_what_if("idle=10").is_err());
        assert!(parse_what_if("idle=10m,idle=5m").is_err());
        assert!(parse_what_if("grace=1m").is_err());
        assert!(parse_what_if("idle").is_err());
        assert!(parse_what_if("idle=0s").is_err());
    }
}
