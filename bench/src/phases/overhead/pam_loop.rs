//! The login loop: `st-bench __pam-loop` opens and closes sessions through
//! one PAM handle and prints the times; the harness runs it per stack.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use super::WARMUP;
use crate::harness::ctx::Ctx;
use st_testkit::pam::{Pam, PAM_SUCCESS};

/// `st-bench __pam-loop SERVICE USER TTY ITERATIONS WARMUP`: one PAM handle,
/// then open+close sessions; prints `open_ns close_ns rc_open rc_close` per
/// measured iteration.
pub fn pam_loop_main(args: &[String]) -> ExitCode {
    let [service, user, tty, iters, warmup] = args else {
        eprintln!("__pam-loop: SERVICE USER TTY ITERATIONS WARMUP");
        return ExitCode::from(2);
    };
    let (Ok(iters), Ok(warmup)) = (iters.parse::<usize>(), warmup.parse::<usize>()) else {
        return ExitCode::from(2);
    };
    let mut pam = match Pam::start(service, user) {
        Ok(p) => p,
        Err(rc) => {
            eprintln!("__pam-loop: pam_start failed: {rc}");
            return ExitCode::from(1);
        }
    };
    if pam.set_tty(tty) != PAM_SUCCESS {
        return ExitCode::from(1);
    }
    let mut out = String::with_capacity(iters * 32);
    for i in 0..warmup + iters {
        let t0 = Instant::now();
        let rc_open = pam.open_session();
        let t1 = Instant::now();
        let rc_close = pam.close_session();
        let t2 = Instant::now();
        if i >= warmup {
            let _ = writeln!(
                out,
                "{} {} {rc_open} {rc_close}",
                (t1 - t0).as_nanos(),
                (t2 - t1).as_nanos()
            );
        }
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

/// Samples of one stack, milliseconds.
#[derive(Default)]
pub(super) struct Samples {
    pub(super) open: Vec<f64>,
    pub(super) close: Vec<f64>,
    pub(super) pair: Vec<f64>,
    pub(super) failures: usize,
}

pub(super) fn run_loop(
    ctx: &Ctx,
    service: &str,
    iters: usize,
    into: &mut Samples,
) -> Result<(), String> {
    let out = Command::new(&ctx.exe)
        .args([
            "__pam-loop",
            service,
            &ctx.host.user,
            "ssh",
            &iters.to_string(),
            &WARMUP.to_string(),
        ])
        .envs(Ctx::pam_env(&ctx.pam_wrapper, &ctx.pam_dir))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("__pam-loop: {e}"))?;
    if !out.status.success() {
        return Err(format!("__pam-loop {service} failed: {}", out.status));
    }
    for line in BufReader::new(&out.stdout[..]).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let f: Vec<i64> = line.split(' ').filter_map(|x| x.parse().ok()).collect();
        let [open, close, rc_open, rc_close] = f[..] else {
            return Err(format!("__pam-loop said {line:?}"));
        };
        if rc_open != 0 || rc_close != 0 {
            into.failures += 1;
        }
        into.open.push(open as f64 / 1e6);
        into.close.push(close as f64 / 1e6);
        into.pair.push((open + close) as f64 / 1e6);
    }
    Ok(())
}
