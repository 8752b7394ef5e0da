//! `timeoutctl report`: reads timeoutd's `session_summary` events from log
//! files (any of the formats in [`read::envelope`]), groups them, and shows
//! lifetimes, idle gaps, how sessions ended, outliers and what proposed
//! limits would have done. Needs no daemon. See docs/report.md.

pub mod args;
pub(crate) mod read;
mod show;
mod tally;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use timeoutd::config;

pub use args::ReportArgs;

use read::{envelope::Context, input, time};
use show::{csv, svg, table, view};
use tally::aggregate::{Options, Report};
use tally::whatif;
use view::ConfigView;

/// The rule names of the config at `path`, or why they are unknown.
fn rules(path: &Path) -> (Vec<String>, ConfigView) {
    let shown = path.display().to_string();
    match config::load(path) {
        Ok(c) => {
            let mut names: Vec<String> = c.policy.rules.into_iter().map(|r| r.name).collect();
            names.push("defaults".to_owned());
            let view = ConfigView {
                path: shown,
                readable: true,
                error: None,
            };
            (names, view)
        }
        Err(e) => {
            let first = e.0.first().map_or_else(String::new, |e| e.message.clone());
            let view = ConfigView {
                path: shown,
                readable: false,
                error: Some(first),
            };
            (Vec::new(), view)
        }
    }
}

/// Reads every input into `report`; false if one could not be read.
fn read_all(files: &[PathBuf], report: &mut Report) -> bool {
    let mut cx = Context {
        now: time::now(),
        ..Context::default()
    };
    let mut ok = true;
    for f in files {
        let read = input::open(f).and_then(|mut r| {
            input::for_each_line(&mut *r, |line, cut| report.feed(line, cut, &mut cx))
        });
        if let Err(e) = read {
            eprintln!("timeoutctl: report: {}: {e}", f.display());
            ok = false;
        }
    }
    report.finish();
    ok
}

fn svg_of(report: &Report, what_if: Option<whatif::Limits>) -> String {
    let (cur_idle, cur_max) = report.common_limits();
    let lines = |name, cur: Option<u64>, proposed: Option<u64>| {
        let mut v = Vec::new();
        v.extend(cur.map(|secs| svg::Line {
            name,
            secs,
            what_if: false,
        }));
        v.extend(proposed.map(|secs| svg::Line {
            name,
            secs,
            what_if: true,
        }));
        v
    };
    let n = report.total.sessions;
    svg::render(&[
        svg::Panel {
            title: format!("Session lifetimes ({n} sessions)"),
            hist: &report.total.lifetime,
            lines: lines("max", cur_max, what_if.and_then(|w| w.max)),
        },
        svg::Panel {
            title: format!("Longest idle gap of each session ({n} sessions)"),
            hist: &report.total.idle,
            lines: lines("idle", cur_idle, what_if.and_then(|w| w.idle)),
        },
    ])
}

/// Runs `timeoutctl report`; `config` is the global `--config`.
pub fn run(a: &ReportArgs, config: &Path) -> ExitCode {
    let files = if a.files.is_empty() {
        let found = input::default_files(Path::new(input::AUTH_LOG));
        if found.is_empty() {
            eprintln!(
                "timeoutctl: report: cannot read {}; name the log files",
                input::AUTH_LOG
            );
            return ExitCode::FAILURE;
        }
        found
    } else {
        a.files.clone()
    };
    let (names, config_view) = rules(config);
    let mut report = Report::new(Options {
        by: Some(a.by),
        what_if: a.what_if,
        outliers: a.outliers,
        from: a
            .since
            .map(|s| time::now() - i64::try_from(s).unwrap_or(0))
            .or(a.from),
        to: a.to,
        rules: names,
    });
    let read_ok = read_all(&files, &mut report);
    if let Some(path) = &a.svg {
        if let Err(e) = std::fs::write(path, svg_of(&report, a.what_if)) {
            eprintln!("timeoutctl: report: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let v = view::build(report, config_view);
    let text = if a.json {
        serde_json::to_string_pretty(&v)
            .map(|s| s + "\n")
            .unwrap_or_default()
    } else if a.csv {
        csv::render(&v)
    } else {
        table::render(&v)
    };
    if std::io::stdout().lock().write_all(text.as_bytes()).is_err() || !read_ok {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
