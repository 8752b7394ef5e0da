//! `timeoutctl deadline` and `timeoutctl deadlines`: give every session of a
//! user or group, and every login of theirs until then, an absolute deadline
//! (the JIT broker's hook), clear it, and list the deadlines in force.

use clap::{ArgGroup, Args};
use serde::Serialize;
use session_timeout_proto::{DeadlineInfo, Request, Target};
use timeoutd::core::time::clock::Timestamp;
use timeoutd::core::time::duration;

use crate::cli::TargetArgs;
use crate::render::{table, target_text};
use crate::report::read::time;

/// The arguments of `timeoutctl deadline`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("when").required(true).multiple(false)))]
pub struct DeadlineArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// When: RFC 3339 with an offset, YYYY-MM-DD[THH:MM[:SS]] local time, or @UNIX-SECONDS.
    #[arg(long, value_name = "TIME", group = "when", value_parser = at_secs)]
    pub at: Option<i64>,
    /// When, from now: a duration such as 20s, 30m or 2h.
    #[arg(long = "in", value_name = "DURATION", group = "when", value_parser = in_secs)]
    pub within: Option<u64>,
    /// Remove the user's or group's deadline.
    #[arg(long, group = "when")]
    pub clear: bool,
    /// Why, for the log.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

fn at_secs(text: &str) -> Result<i64, String> {
    match text.strip_prefix('@') {
        Some(n) => n
            .parse()
            .map_err(|_| format!("{text:?}: @ must be followed by Unix seconds")),
        None => time::parse_arg(text),
    }
}

fn in_secs(text: &str) -> Result<u64, String> {
    let d = duration::parse(text)?;
    if d.is_zero() {
        return Err("a deadline 0s from now has already passed".into());
    }
    Ok(d.as_secs())
}

impl DeadlineArgs {
    /// The request; `--in` is counted from `now` (Unix seconds).
    pub fn request(&self, now: i64) -> Request {
        let target: Target = self.target.target();
        if self.clear {
            return Request::ClearDeadline { target };
        }
        let at = match (self.at, self.within) {
            (Some(at), _) => at,
            (None, w) => now.saturating_add(i64::try_from(w.unwrap_or(0)).unwrap_or(i64::MAX)),
        };
        Request::SetDeadline {
            target,
            at,
            reason: self.reason.clone().unwrap_or_default(),
        }
    }
}

fn clock(t: i64) -> String {
    Timestamp::from_secs(t).to_string()
}

/// The deadlines as a table.
pub fn deadlines_table(list: &[DeadlineInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            vec![
                target_text(&d.target),
                clock(d.at),
                d.at.to_string(),
                clock(d.since),
                d.by_uid.to_string(),
                d.reason.clone(),
            ]
        })
        .collect();
    table(
        &[
            "TARGET",
            "AT(UTC)",
            "AT(UNIX)",
            "SINCE(UTC)",
            "BY-UID",
            "REASON",
        ],
        &rows,
    )
}

#[derive(Serialize)]
struct DeadlineView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    at: i64,
    since: i64,
    by_uid: u32,
    reason: &'a str,
}

/// The deadlines as a JSON array and a newline.
pub fn deadlines_json(list: &[DeadlineInfo]) -> String {
    let views: Vec<DeadlineView> = list
        .iter()
        .map(|d| {
            let (user, group) = match &d.target {
                Target::User(u) => (Some(u.as_str()), None),
                Target::Group(g) => (None, Some(g.as_str())),
            };
            DeadlineView {
                user,
                group,
                at: d.at,
                since: d.since,
                by_uid: d.by_uid,
                reason: &d.reason,
            }
        })
        .collect();
    format!("{}\n", crate::json::to_json(&views))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Verb};

    fn deadline(line: &str) -> Result<DeadlineArgs, String> {
        let args = std::iter::once("timeoutctl").chain(line.split(' '));
        match parse(args).map_err(|e| e.to_string())?.verb {
            Some(Verb::Deadline(d)) => Ok(d),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn in_at_and_clear_make_their_requests() {
        let d = deadline("deadline --user alice --in 20s --reason grant").unwrap();
        assert_eq!(
            d.request(1000),
            Request::SetDeadline {
                target: Target::User("alice".into()),
                at: 1020,
                reason: "grant".into()
            }
        );
        let d = deadline("deadline --group ops --at 2026-01-01T00:00:00Z").unwrap();
        assert!(matches!(
            d.request(0),
            Request::SetDeadline {
                at: 1_767_225_600,
                ..
            }
        ));
        let d = deadline("deadline --user a --at @1700000000").unwrap();
        assert!(matches!(
            d.request(0),
            Request::SetDeadline {
                at: 1_700_000_000,
                ..
            }
        ));
        let d = deadline("deadline --clear --user alice").unwrap();
        assert_eq!(
            d.request(0),
            Request::ClearDeadline {
                target: Target::User("alice".into())
            }
        );
    }

    #[test]
    fn mistakes_are_refused() {
        for bad in [
            "deadline --user a",
            "deadline --user a --in 5m --at @1",
            "deadline --user a --clear --in 5m",
            "deadline --in 5m",
            "deadline --user a --in 0s",
            "deadline --user a --in 5",
            "deadline --user a --at tomorrow",
        ] {
            assert!(deadline(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_list_is_a_table_or_json() {
        let list = [DeadlineInfo {
            target: Target::Group("ops\x1b[2J".into()),
            since: 1_700_000_000,
            at: 1_700_003_600,
            reason: "jit".into(),
            by_uid: 0,
        }];
        let t = deadlines_table(&list);
        assert!(t.contains("AT(UTC)") && t.contains("23:13:20"), "{t}");
        assert!(!t.contains('\x1b'), "{t}");
        let j = deadlines_json(&list);
        assert!(j.starts_with("[{\"group\":"), "{j}");
        assert!(j.contains("\"at\":1700003600"), "{j}");
    }
}
