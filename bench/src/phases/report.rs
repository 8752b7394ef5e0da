//! `timeoutctl report` over a large log (issue 15): 1,000,000 lines of the
//! realistic mix written by timeoutctl's own corpus generator (the
//! `report_corpus` example, run as built, so the mix lives in one place),
//! then the release `timeoutctl report FILE --what-if idle=10m,max=8h --by
//! host --svg FILE`, timed from spawn to reaping, its peak RSS from wait4's
//! rusage (ru_maxrss: the child's own high-water mark, not a sampled value).

use std::fs::File;
use std::path::{Path, PathBuf};
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

/// One `timeoutctl report`, reaped with wait4 for its rusage.
fn report_once(ctl: &Path, corpus: &Path, dir: &Path, i: usize) -> Result<Run, String> {
    let svg = dir.join(format!("report-{i}.svg"));
    let out_path = dir.join(format!("report-{i}.txt"));
    let out = File::create(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
    let t = Instant::now();
    let child = Command::new(ctl)
        .arg("report")
        .arg(corpus)
        .args(["--what-if", "idle=10m,max=8h", "--by", "host", "--svg"])
        .arg(&svg)
        .stdin(Stdio::null())
        .stdout(out)
        .spawn()
        .map_err(|e| format!("{}: {e}", ctl.display()))?;
    let (status, maxrss_kib) =
        sys::wait_rusage(child.id()).map_err(|e| format!("wait4 on timeoutctl: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
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
        "ru_maxrss from wait4",
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
