//! `st-bench`: the benchmark harness of issue 7. Runs the real timeoutd and
//! the real pam_session_timeout.so on this host and measures login overhead,
//! a login storm, enforcement precision, revocation, and steady-state cost at
//! scale. See docs/BENCHMARKS.md.

mod harness;
mod load;
mod phases;
mod results;
mod sys;
mod util;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::harness::ctx::Ctx;
use crate::harness::host::{first_existing, Host};
use crate::harness::opts::{Opts, PHASES, USAGE};
use crate::load::fleet::Fleet;
use crate::results::report::Report;
use st_testkit::syslog::{SinkOptions, SyslogSink};

const PAM_PERMIT: [&str; 4] = [
    "/lib/x86_64-linux-gnu/security/pam_permit.so",
    "/usr/lib/x86_64-linux-gnu/security/pam_permit.so",
    "/lib/security/pam_permit.so",
    "/usr/lib64/security/pam_permit.so",
];
const PAM_WRAPPER: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so",
    "/usr/lib64/libpam_wrapper.so",
    "/usr/lib/libpam_wrapper.so",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("__spawner") => return ExitCode::from(load::leader::spawner_main() as u8),
        Some("__pam-loop") => return phases::overhead::pam_loop_main(&args[1..]),
        Some("__floor-server") => return phases::overhead::floor_server_main(&args[1..]),
        Some(phases::report::MAXRSS_MODE) => return phases::report::maxrss_main(&args[1..]),
        _ => {}
    }
    let opts = match Opts::parse(&args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("st-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Descriptors inherited from whoever started us would be inherited by
    // the daemons too (Command closes only close-on-exec ones) and counted
    // in their fd figures.
    sys::close_all_except(&[]);
    if !sys::is_root() {
        eprintln!("st-bench: must run as root (it creates a user, raises kernel.pty.max and runs timeoutd)");
        return ExitCode::from(2);
    }
    if let Err(e) = harness::host::on_interrupt(harness::host::restore) {
        eprintln!("st-bench: {e}");
        return ExitCode::from(1);
    }
    let outcome = std::panic::catch_unwind(|| run(opts));
    harness::host::restore();
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("st-bench: {e}");
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(101),
    }
}

/// Copies a binary under test into the run's directory.
fn take_copy(from: &Path, dir: &Path) -> Result<PathBuf, String> {
    let to = dir.join(from.file_name().ok_or("bad path")?);
    std::fs::copy(from, &to).map_err(|e| {
        format!(
            "{}: {e} (build first: cargo build --release --workspace)",
            from.display()
        )
    })?;
    Ok(to)
}

fn run(opts: Opts) -> Result<ExitCode, String> {
    let (mut ctx, first) = prepare(opts)?;
    let repeat = ctx.opts.repeat.max(1);
    let mut reports = Vec::with_capacity(repeat);
    let mut next = Some(first);
    for k in 1..=repeat {
        // Every run of the same build: the first one's description, its own date.
        let mut report = next.take().unwrap_or_else(|| {
            let mut r = Report {
                meta: reports
                    .first()
                    .map_or_else(Vec::new, |f: &Report| f.meta.clone()),
                ..Report::default()
            };
            r.meta
                .retain(|(k, _)| !k.starts_with("load average") && k != "duration" && k != "run");
            for (key, v) in r.meta.iter_mut() {
                if key == "date" {
                    *v = command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
                }
            }
            r.meta("load average at start", loadavg());
            r
        });
        report.meta("run", format!("{k} of {repeat}"));
        let t_run = std::time::Instant::now();
        for phase in PHASES {
            // The peers are no target: once, in the last run.
            if !ctx.opts.runs(phase) || (phase == "peers" && k != repeat) {
                continue;
            }
            run_one(phase, &mut ctx, &mut report);
        }
        report.meta("load average at end", loadavg());
        report.meta(
            "duration",
            format!("{:.1} min", t_run.elapsed().as_secs_f64() / 60.0),
        );
        reports.push(report);
    }
    finish(ctx, reports)
}

/// Runs one phase, and turns a failure into the report's error and into an
/// error line for each of its targets it did not produce.
fn run_one(phase: &str, ctx: &mut Ctx, report: &mut Report) {
    eprintln!("st-bench: {phase} ...");
    let t = std::time::Instant::now();
    let res = run_phase(phase, ctx, report);
    eprintln!(
        "st-bench: {phase} done in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let cause = match res {
        Err(e) => {
            eprintln!("st-bench: {phase}: {e}");
            let cause = format!("not measured: {phase} failed: {e}");
            report.error(phase, e);
            cause
        }
        Ok(()) => format!("not measured: {phase} gave no figure (see Errors)"),
    };
    phases::expect_targets(phase, report, &cause);
}

/// Runs one phase by its name in `PHASES` (the one place a phase is wired in).
fn run_phase(phase: &str, ctx: &mut Ctx, report: &mut Report) -> Result<(), String> {
    match phase {
        "overhead" => phases::overhead::run(ctx, report),
        "storm" => phases::storm::run(ctx, report),
        "absolute" => phases::precision::run_absolute(ctx, report),
        "idle" => phases::precision::run_idle(ctx, report),
        "revoke" => phases::revoke::run(ctx, report),
        "revalidate" => phases::revalidate::run(ctx, report),
        "report" => phases::report::run(ctx, report),
        "kill" => phases::kill::run(ctx, report),
        "witness" => phases::witness::run(ctx, report),
        "peers" => phases::peers::run(ctx, report),
        _ => phases::scale::run(ctx, report),
    }
}

/// Sets up the host, copies the binaries under test, writes the PAM services,
/// and starts the syslog sink and the spawner.
fn prepare(opts: Opts) -> Result<(Ctx, Report), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin_dir = opts
        .bin_dir
        .clone()
        .or_else(|| exe.parent().map(Path::to_path_buf))
        .ok_or("no --bin-dir")?;
    let pam_permit = first_existing(&PAM_PERMIT).ok_or("pam_permit.so not found")?;
    let pam_wrapper = first_existing(&PAM_WRAPPER)
        .ok_or("libpam_wrapper.so not found (apt-get install libpam-wrapper)")?;
    let host = Host::setup(opts.max_sessions(), opts.keep)?;
    host.ensure_ptys(opts.max_sessions() + opts.pam_leaders)?;
    let bin = host.dir("bin");
    // Run copies: the build directory may be rebuilt while the bench runs,
    // and the harness re-runs itself as the spawner and the PAM loop.
    let exe = take_copy(&exe, &bin)?;
    let timeoutd = take_copy(&bin_dir.join("timeoutd"), &bin)?;
    let module = take_copy(&bin_dir.join("libpam_session_timeout.so"), &bin)?;
    let pam_dir = host.dir("pam.d");
    write_pam_services(&opts, &host, &pam_dir, &pam_permit, &module)?;
    let sink = SyslogSink::start(
        &host.tmp.join("syslog.sock"),
        // Bursts of thousands of lines at once (storm, scale).
        SinkOptions {
            rcvbuf: Some(32 << 20),
        },
    )
    .map_err(|e| format!("syslog socket: {e}"))?;
    let fleet = Fleet::start(&exe, &Ctx::pam_env(&pam_wrapper, &pam_dir))
        .map_err(|e| format!("starting the spawner: {e}"))?;
    let mut report = Report::default();
    meta(&mut report, &opts, &bin_dir, &timeoutd, &module);
    let ctx = Ctx {
        opts,
        bin_dir,
        host,
        exe,
        timeoutd,
        pam_wrapper,
        pam_dir,
        sink,
        fleet,
    };
    Ok((ctx, report))
}

/// The PAM services the phases log in through: overhead's, and one per
/// scale step (each with its own daemon's socket).
fn write_pam_services(
    opts: &Opts,
    host: &Host,
    pam_dir: &Path,
    pam_permit: &Path,
    module: &Path,
) -> Result<(), String> {
    let up = host.tmp.join("overhead").join("timeoutd.sock");
    let down = host.tmp.join("overhead").join("absent.sock");
    phases::overhead::write_services(pam_dir, pam_permit, module, &up, &down)
        .map_err(|e| format!("writing PAM services: {e}"))?;
    phases::kill::write_services(pam_dir, &host.tmp, pam_permit, module)
        .map_err(|e| format!("writing PAM services: {e}"))?;
    for n in &opts.scale {
        let sock = host
            .tmp
            .join(phases::scale::daemon_name(*n))
            .join("timeoutd.sock");
        let text = format!(
            "session required {}\nsession required {} socket={} fail=closed\n",
            pam_permit.display(),
            module.display(),
            sock.display()
        );
        std::fs::write(pam_dir.join(phases::scale::service(*n)), text)
            .map_err(|e| format!("writing PAM services: {e}"))?;
    }
    Ok(())
}

/// Stops the fleet and the sink, prints the reports and writes their files;
/// the exit code says whether every figure was produced.
fn finish(ctx: Ctx, reports: Vec<Report>) -> Result<ExitCode, String> {
    let Ctx {
        fleet, sink, opts, ..
    } = ctx;
    fleet.shutdown();
    drop(sink);
    let md: String = reports
        .iter()
        .map(Report::markdown)
        .collect::<Vec<_>>()
        .join("\n");
    let json = match reports.as_slice() {
        [one] => one.json().pretty(),
        many => results::json::J::Arr(many.iter().map(Report::json).collect()).pretty(),
    };
    // A closed stdout (`| head`) must not stop the files from being written.
    let _ = write!(std::io::stdout(), "{md}\n```json\n{json}```\n");
    if let Some(p) = &opts.out {
        std::fs::write(p, &json).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &opts.markdown {
        std::fs::write(p, &md).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &opts.write_doc {
        let doc = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let command = format!(
            "st-bench {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        );
        let text = results::doc::splice(&doc, &results::doc::section(&reports, &command));
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        eprintln!("st-bench: wrote the results into {}", p.display());
    }
    // Targets never fail the run; a figure the harness could not produce does.
    let mut complete = true;
    for r in &reports {
        for f in r.missing() {
            eprintln!("st-bench: no figure for {}", f.key);
        }
        complete &= r.missing().is_empty() && r.errors.is_empty();
    }
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// The 1, 5 and 15 minute load averages: other work on the host skews tails.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn meta(r: &mut Report, opts: &Opts, bin_dir: &Path, timeoutd: &Path, module: &Path) {
    r.meta("date", command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]));
    let dir = bin_dir.display().to_string();
    let commit = command_line("git", &["-C", &dir, "rev-parse", "--short", "HEAD"]);
    let dirty = command_line("git", &["-C", &dir, "status", "--porcelain"]);
    let dirty = if dirty.is_empty() {
        String::new()
    } else {
        format!(" (+{} uncommitted paths)", dirty.lines().count())
    };
    if !commit.is_empty() {
        r.meta("commit", format!("{commit}{dirty}"));
    }
    r.meta("mode", if opts.quick { "quick" } else { "full" });
    if let Some(label) = &opts.label {
        r.meta("label", label);
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    r.meta("cpu", format!("{cores} × {cpu}"));
    r.meta("load average at start", loadavg());
    r.meta(
        "kernel",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
    );
    for (what, p) in [("timeoutd", timeoutd), ("module", module)] {
        let sum = command_line("sha256sum", &[&p.display().to_string()]);
        r.meta(
            &format!("{what} sha256"),
            sum.split_whitespace()
                .next()
                .unwrap_or("?")
                .get(..16)
                .unwrap_or("?"),
        );
    }
}
