//! `timeoutctl report` over a large log (issue 15): 1,000,000 lines of the
//! realistic mix written by timeoutctl's own corpus generator (the
//! `report_corpus` example, run as built, so the mix lives in one place),
//! then the release `timeoutctl report FILE --what-if idle=10m,max=8h --by
//! host --svg FILE`, timed from spawn to reaping, its peak RSS from wait4's
//! rusage (ru_maxrss: the child's own high-water mark, not a sampled value).
//!
//! timeoutctl is started by a fresh helper process ([`maxrss_main`]), not by
//! st-bench itself: a child started with posix_spawn shares its parent's
//! memory until it execs, and at execve the kernel folds that memory's peak
//! into the child's ru_maxrss (`setmax_mm_hiwater_rss` in fs/exec.c). Started
//! by st-bench, timeoutctl reported st-bench's own peak, set by the phases
//! before it (66 to 115 MiB), instead of its own (about 8 MiB).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::harness::ctx::Ctx;
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json};
use crate::sys;

/// Lines of the corpus.
pub const LINES: u64 = 1_000_000;
/// Runs of the report over the same file.
const RUNS: usize = 3;
/// The targets of issue 15.
const WALL_TARGET_S: f64 = 5.0;
const RSS_TARGET_MIB: f64 = 100.0;

/// One run's wall time, peak RSS and outputs.
struct Run {
    secs: f64,
    maxrss_kib: u64,
    stdout_bytes: u64,
    svg_bytes: u64,
}

pub fn run(ctx: &mut Ctx, r: &mut Report) -> Result<(), String> {
    let dir = ctx.host.dir("report");
    let (ctl, gen) = binaries(&ctx.bin_dir)?;
    let corpus = dir.join("auth.log");
    let t = Instant::now();
    let st = Command::new(&gen)
        .arg(&corpus)
        .arg(LINES.to_string())
        .arg("traditional")
        .status()
        .map_err(|e| format!("{}: {e}", gen.display()))?;
    if !st.success() {
        return Err(format!("{} {}: {st}", gen.display(), corpus.display()));
    }
    let gen_secs = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&corpus).map_or(0, |m| m.len());
    let mut runs = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        runs.push(report_once(&ctl, &corpus, &dir, i)?);
    }
    record(r, &runs, size, gen_secs);
    Ok(())
}

/// timeoutctl and the corpus generator, next to timeoutd.
fn binaries(bin_dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let ctl = bin_dir.join("timeoutctl");
    let gen = bin_dir.join("examples").join("report_corpus");
    for (p, build) in [
        (&ctl, "cargo build --release --workspace"),
        (
            &gen,
            "cargo build --release -p timeoutctl --example report_corpus",
        ),
    ] {
        if !p.is_file() {
            return Err(format!("{} not found (build it: {build})", p.display()));
        }
    }
    Ok((ctl, gen))
}

/// One `timeoutctl report`, through the helper.
fn report_once(ctl: &Path, corpus: &Path, dir: &Path, i: usize) -> Result<Run, String> {
    let svg = dir.join(format!("report-{i}.svg"));
    let out_path = dir.join(format!("report-{i}.txt"));
    let measured = dir.join(format!("report-{i}.rusage"));
    let out = File::create(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
    let me = std::env::current_exe().map_err(|e| format!("st-bench's own path: {e}"))?;
    let helper = Command::new(me)
        .arg(MAXRSS_MODE)
        .arg(&measured)
        .arg(ctl)
        .arg("report")
        .arg(corpus)
        .args(["--what-if", "idle=10m,max=8h", "--by", "host", "--svg"])
        .arg(&svg)
        .stdin(Stdio::null())
        .stdout(out)
        .status()
        .map_err(|e| format!("st-bench {MAXRSS_MODE}: {e}"))?;
    let line = std::fs::read_to_string(&measured).unwrap_or_default();
    let Some((status, maxrss_kib, secs)) = parse_measured(&line) else {
        return Err(format!("st-bench {MAXRSS_MODE} ({helper}) wrote {line:?}"));
    };
    if status != 0 {
        return Err(format!(
            "timeoutctl report exited with wait status {status:#x}"
        ));
    }
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let run = Run {
        secs,
        maxrss_kib,
        stdout_bytes: len(&out_path),
        svg_bytes: len(&svg),
    };
    // --by host: the corpus's hosts are web1..web20.
    let table = std::fs::read_to_string(&out_path).unwrap_or_default();
    if !table.contains("web1") || run.svg_bytes == 0 {
        return Err("timeoutctl report wrote no per-host table or no SVG".into());
    }
    Ok(run)
}

/// The helper's hidden first argument.
pub const MAXRSS_MODE: &str = "__maxrss";

/// `st-bench __maxrss RESULT CMD ARGS...`: runs CMD with this process's
/// stdio, reaps it with wait4 and writes `STATUS MAXRSS_KIB SECONDS` (spawn
/// to reaping) to RESULT. Run as a fresh process, whose few MiB are below
/// what it measures (see the module doc).
pub fn maxrss_main(args: &[String]) -> ExitCode {
    let [result, cmd, rest @ ..] = args else {
        eprintln!("usage: st-bench {MAXRSS_MODE} RESULT CMD [ARGS...]");
        return ExitCode::from(2);
    };
    let t = Instant::now();
    let measured = Command::new(cmd)
        .args(rest)
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))
        .and_then(|c| sys::wait_rusage(c.id()).map_err(|e| format!("wait4: {e}")));
    let secs = t.elapsed().as_secs_f64();
    match measured {
        Ok((status, kib)) => match std::fs::write(result, format!("{status} {kib} {secs}\n")) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("st-bench {MAXRSS_MODE}: {result}: {e}");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("st-bench {MAXRSS_MODE}: {e}");
            ExitCode::from(1)
        }
    }
}

/// The helper's line: wait status, peak RSS (KiB), seconds.
fn parse_measured(line: &str) -> Option<(i32, u64, f64)> {
    let mut it = line.split_whitespace();
    let status = it.next()?.parse().ok()?;
    let kib = it.next()?.parse().ok()?;
    let secs = it.next()?.parse().ok()?;
    it.next().is_none().then_some((status, kib, secs))
}

fn record(r: &mut Report, runs: &[Run], size: u64, gen_secs: f64) {
    let secs: Vec<f64> = runs.iter().map(|x| x.secs).collect();
    let mib: Vec<f64> = runs.iter().map(|x| x.maxrss_kib as f64 / 1024.0).collect();
    let worst = |v: &[f64]| {
        v.iter()
            .copied()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    };
    let what = format!("`timeoutctl report` over {LINES} lines (--what-if, --by host, --svg)");
    r.target(
        "report.wall_s",
        &format!("{what}: wall time, slowest of {RUNS}"),
        worst(&secs),
        "s",
        WALL_TARGET_S,
        "spawn to reaping; the corpus was just written, so it is read from the page cache",
    );
    r.target(
        "report.peak_rss_mib",
        &format!("{what}: peak RSS, largest of {RUNS}"),
        worst(&mib),
        "MiB",
        RSS_TARGET_MIB,
        "ru_maxrss from wait4, reaped by a fresh helper process",
    );
    let mut md = format!(
        "{LINES} lines ({:.1} MiB, traditional auth.log, timeoutctl's `report_corpus` mix, written in {gen_secs:.1} s), \
         `timeoutctl report FILE --what-if idle=10m,max=8h --by host --svg FILE`, {RUNS} runs:\n\n",
        size as f64 / 1048576.0
    );
    for (i, x) in runs.iter().enumerate() {
        md.push_str(&format!(
            "- run {}: {:.2} s, peak RSS {:.1} MiB (table {} bytes, SVG {} bytes)\n",
            i + 1,
            x.secs,
            x.maxrss_kib as f64 / 1024.0,
            x.stdout_bytes,
            x.svg_bytes
        ));
    }
    r.section("Report", md);
    r.detail(
        "report",
        J::obj([
            ("lines", J::from(LINES)),
            ("bytes", J::from(size)),
            ("generate_s", J::num(gen_secs)),
            ("wall_s", summary_json(summarize(&secs))),
            ("peak_rss_mib", summary_json(summarize(&mib))),
        ]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helpers_line_is_read_back_and_anything_else_is_refused() {
        assert_eq!(parse_measured("0 8260 0.84\n"), Some((0, 8260, 0.84)));
        assert_eq!(parse_measured("256 9000 1.5"), Some((256, 9000, 1.5)));
        assert_eq!(parse_measured(""), None);
        assert_eq!(parse_measured("0 8260"), None);
        assert_eq!(parse_measured("0 8260 0.8 extra"), None);
        assert_eq!(parse_measured("0 x 0.8"), None);
    }
}
