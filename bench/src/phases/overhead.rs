//! Login overhead: `pam_open_session` + `pam_close_session` through libpam
//! (pam_wrapper) with three stacks, and the physical floor of one exchange
//! over a Unix socket with the same payload sizes.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use session_timeout_proto::{read_frame, write_frame, Request, SessionKey, VERSION};

use crate::harness::ctx::{everyday_limits, Ctx};
use crate::load::client::{self, MODULE_TIMEOUT};
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json, Summary};
use crate::util::{start_time, wait_until};
use st_testkit::pam::{Pam, PAM_SUCCESS};

/// The three stacks: (label, PAM service).
pub const STACKS: [(&str, &str); 3] = [
    ("pam_permit only", "stb-permit"),
    ("+ module, daemon up", "stb-up"),
    ("+ module, daemon down", "stb-down"),
];
const WARMUP: usize = 50;
const ROUNDS: usize = 4;

/// Writes the service files of the three stacks.
pub fn write_services(
    dir: &Path,
    permit: &Path,
    module: &Path,
    up: &Path,
    down: &Path,
) -> std::io::Result<()> {
    let permit_line = format!("session required {}\n", permit.display());
    let module_line = |sock: &Path| {
        format!(
            "session required {} socket={} fail=open\n",
            module.display(),
            sock.display()
        )
    };
    // libpam reads "other" for the defaults of every service; deny there.
    let deny = permit.with_file_name("pam_deny.so");
    let other: String = ["auth", "account", "password", "session"]
        .iter()
        .map(|t| format!("{t} required {}\n", deny.display()))
        .collect();
    std::fs::write(dir.join("other"), other)?;
    std::fs::write(dir.join("stb-permit"), &permit_line)?;
    std::fs::write(
        dir.join("stb-up"),
        format!("{permit_line}{}", module_line(up)),
    )?;
    std::fs::write(
        dir.join("stb-down"),
        format!("{permit_line}{}", module_line(down)),
    )?;
    Ok(())
}

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

/// `st-bench __floor-server PATH REGISTER_REPLY_LEN UNREGISTER_REPLY_LEN`:
/// answers each connection's one frame with a frame of the daemon's reply size.
pub fn floor_server_main(args: &[String]) -> ExitCode {
    let [path, reg_len, unreg_len] = args else {
        return ExitCode::from(2);
    };
    let (Ok(reg_len), Ok(unreg_len)) = (reg_len.parse::<usize>(), unreg_len.parse::<usize>())
    else {
        return ExitCode::from(2);
    };
    let Ok(listener) = UnixListener::bind(path) else {
        return ExitCode::from(1);
    };
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let Ok(body) = read_frame(&mut s) else {
            continue;
        };
        let len = if body.get(1) == Some(&1) {
            reg_len
        } else {
            unreg_len
        };
        let mut reply = vec![0u8; len.max(2)];
        reply[0] = VERSION;
        let _ = write_frame(&mut s, &reply);
    }
    ExitCode::SUCCESS
}

/// Samples of one stack, milliseconds.
#[derive(Default)]
struct Samples {
    open: Vec<f64>,
    close: Vec<f64>,
    pair: Vec<f64>,
    failures: usize,
}

fn run_loop(ctx: &Ctx, service: &str, iters: usize, into: &mut Samples) -> Result<(), String> {
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

/// One bare exchange: connect, send `frame`, read the reply frame, close.
fn bare_exchange(path: &Path, body: &[u8]) -> Result<(), String> {
    let mut s = UnixStream::connect(path).map_err(|e| e.to_string())?;
    write_frame(&mut s, body).map_err(|e| e.to_string())?;
    read_frame(&mut s).map_err(|e| e.to_string())?;
    Ok(())
}

pub fn run(ctx: &mut Ctx, r: &mut Report) -> Result<(), String> {
    let d = ctx.start_daemon("overhead", &everyday_limits(), &[])?;
    let res = measure(ctx, r, &d);
    ctx.stop_daemon(d);
    res
}

fn measure(
    ctx: &mut Ctx,
    r: &mut Report,
    d: &crate::harness::daemon::Daemon,
) -> Result<(), String> {
    // The payloads the module exchanges, and the daemon's replies, probed with
    // a real registration of the harness itself.
    let me = std::process::id();
    let st = start_time(me).ok_or("no start time for the harness")?;
    let reg = client::registration(&ctx.host.user, ctx.host.uid, "stb-up", "ssh", me, st);
    let reg_body = Request::Register(reg.clone()).encode();
    let reply = client::exchange(&d.socket, &Request::Register(reg), MODULE_TIMEOUT)?;
    let id = match &reply.resp {
        session_timeout_proto::Response::Registered { session_id, .. } => *session_id,
        other => return Err(format!("probe registration: {other:?}")),
    };
    let unreg_body = Request::Unregister(SessionKey {
        pid: me,
        start_time: st,
        session_id: id,
    })
    .encode();
    let reply2 = client::exchange(
        &d.socket,
        &Request::decode(&unreg_body).map_err(|e| e.to_string())?,
        MODULE_TIMEOUT,
    )?;
    let (reg_reply_len, unreg_reply_len) = (reply.resp.encode().len(), reply2.resp.encode().len());

    let per_round = ctx.opts.iterations.div_ceil(ROUNDS);
    let opens_before = ctx.sink.count(d.pid, "session_open");
    let cpu_before = d.sample().map_or(0, |s| s.sched_ns);
    let mut samples: Vec<Samples> = STACKS.iter().map(|_| Samples::default()).collect();
    for _ in 0..ROUNDS {
        for (i, (_, service)) in STACKS.iter().enumerate() {
            run_loop(ctx, service, per_round, &mut samples[i])?;
        }
    }
    // Side effects, not exit codes: every "up" open reached the daemon, no other did.
    let expected = ROUNDS * (per_round + WARMUP);
    ctx.sink.wait_count(
        d.pid,
        "session_open",
        opens_before + expected,
        Duration::from_secs(5),
    );
    let registered = ctx.sink.count(d.pid, "session_open") - opens_before;
    // The daemon's own work per login (register + unregister), whatever the
    // scheduling around it: CPU time over the loops / logins.
    let cpu_after = d.sample().map_or(0, |s| s.sched_ns);
    let daemon_us = (cpu_after.saturating_sub(cpu_before)) as f64 / 1e3 / expected.max(1) as f64;

    let floor = measure_floor(ctx, &reg_body, &unreg_body, reg_reply_len, unreg_reply_len)?;

    let sums: Vec<[Option<Summary>; 3]> = samples
        .iter()
        .map(|s| [summarize(&s.open), summarize(&s.close), summarize(&s.pair)])
        .collect();
    let p = |stack: usize, what: usize, f: fn(&Summary) -> f64| sums[stack][what].as_ref().map(f);
    let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    let p99 = |s: &Summary| s.p99;
    let p50 = |s: &Summary| s.p50;

    r.figure(
        "login.permit.open_p50_ms",
        "open_session p50, pam_permit only",
        p(0, 0, p50),
        "ms",
    );
    r.figure(
        "login.permit.open_p99_ms",
        "open_session p99, pam_permit only",
        p(0, 0, p99),
        "ms",
    );
    for (stack, tag, limit) in [(1, "up", 1.0), (2, "down", 0.5)] {
        let words = if tag == "up" {
            "daemon up"
        } else {
            "daemon down"
        };
        r.target(
            &format!("login.{tag}.added_open_p99_ms"),
            &format!("added open_session latency p99, {words}"),
            diff(p(stack, 0, p99), p(0, 0, p99)),
            "ms",
            limit,
            "",
        );
        r.figure(
            &format!("login.{tag}.added_open_p50_ms"),
            &format!("added open_session latency p50, {words}"),
            diff(p(stack, 0, p50), p(0, 0, p50)),
            "ms",
        );
        r.figure(
            &format!("login.{tag}.open_p99_ratio"),
            &format!("open_session p99 ratio to pam_permit only, {words}"),
            ratio(p(stack, 0, p99), p(0, 0, p99)),
            "×",
        );
        r.figure(
            &format!("login.{tag}.added_open_close_p99_ms"),
            &format!("added open+close latency p99, {words}"),
            diff(p(stack, 2, p99), p(0, 2, p99)),
            "ms",
        );
    }
    r.figure(
        "login.up.daemon_cpu_per_login_ms",
        "daemon CPU per login (register + unregister), mean",
        Some(daemon_us / 1e3),
        "ms",
    );
    r.figure(
        "login.floor.exchange_p50_ms",
        "floor: one Unix-socket exchange p50 (same payload)",
        floor[0].map(|s| s.p50),
        "ms",
    );
    r.figure(
        "login.floor.exchange_p99_ms",
        "floor: one Unix-socket exchange p99 (same payload)",
        floor[0].map(|s| s.p99),
        "ms",
    );
    r.figure(
        "login.floor.pair_p99_ms",
        "floor: open+close exchanges p99",
        floor[1].map(|s| s.p99),
        "ms",
    );

    let mut md = String::from(
        "Times in µs per call, through libpam under pam_wrapper, PAM_TTY=ssh. \
         Added latency = module stack − pam_permit-only stack, same percentile.\n\n\
         | stack | open p50 | open p99 | close p50 | close p99 | open+close p50 | open+close p99 | n | failed |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let f3 = |v: Option<f64>| v.map_or("—".into(), |v| format!("{:.1}", v * 1e3));
    let mut stacks_json = Vec::new();
    for (i, (label, service)) in STACKS.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f3(p(i, 0, p50)),
            f3(p(i, 0, p99)),
            f3(p(i, 1, p50)),
            f3(p(i, 1, p99)),
            f3(p(i, 2, p50)),
            f3(p(i, 2, p99)),
            samples[i].open.len(),
            samples[i].failures
        );
        stacks_json.push(J::obj([
            ("stack", J::from(*label)),
            ("service", J::from(*service)),
            ("open_ms", summary_json(sums[i][0])),
            ("close_ms", summary_json(sums[i][1])),
            ("open_close_ms", summary_json(sums[i][2])),
            ("failures", J::from(samples[i].failures)),
        ]));
    }
    let _ = writeln!(
        md,
        "| floor: bare exchange (connect, {} B request, {} B reply) | {} | {} | | | {} | {} | {} | |",
        reg_body.len() + 4,
        reg_reply_len + 4,
        f3(floor[0].map(|s| s.p50)),
        f3(floor[0].map(|s| s.p99)),
        f3(floor[1].map(|s| s.p50)),
        f3(floor[1].map(|s| s.p99)),
        floor[0].map_or(0, |s| s.n)
    );
    let _ = writeln!(
        md,
        "\nThe daemon logged {registered} session_open events for {expected} opens through the \"up\" stack, \
         and spent {daemon_us:.1} µs of CPU per login (register + unregister)."
    );
    r.section("Login overhead", md);
    r.detail(
        "login",
        J::obj([
            ("iterations_per_stack", J::from(ROUNDS * per_round)),
            ("rounds", J::from(ROUNDS)),
            ("warmup_per_round", J::from(WARMUP)),
            ("stacks", J::Arr(stacks_json)),
            ("floor_exchange_ms", summary_json(floor[0])),
            ("floor_open_close_ms", summary_json(floor[1])),
            ("request_bytes", J::from(reg_body.len() + 4)),
            ("reply_bytes", J::from(reg_reply_len + 4)),
            ("daemon_registrations_seen", J::from(registered)),
            ("daemon_registrations_expected", J::from(expected)),
            ("daemon_cpu_us_per_login", J::num(daemon_us)),
        ]),
    );
    if registered != expected {
        r.error(
            "overhead",
            format!(
                "the daemon saw {registered} registrations through the module, expected {expected}"
            ),
        );
    }
    Ok(())
}

/// Bare exchanges with a trivial server in another process: one exchange,
/// and the open+close pair.
fn measure_floor(
    ctx: &Ctx,
    reg_body: &[u8],
    unreg_body: &[u8],
    reg_reply_len: usize,
    unreg_reply_len: usize,
) -> Result<[Option<Summary>; 2], String> {
    let path = ctx.host.dir("floor").join("floor.sock");
    let mut server = Command::new(&ctx.exe)
        .arg("__floor-server")
        .arg(&path)
        .arg(reg_reply_len.to_string())
        .arg(unreg_reply_len.to_string())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("floor server: {e}"))?;
    let res = (|| {
        if !wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
            path.exists()
        }) {
            return Err("floor server did not listen".to_owned());
        }
        for _ in 0..WARMUP {
            bare_exchange(&path, reg_body)?;
        }
        let (mut one, mut pair) = (Vec::new(), Vec::new());
        for _ in 0..ctx.opts.iterations {
            let t0 = Instant::now();
            bare_exchange(&path, reg_body)?;
            let t1 = Instant::now();
            bare_exchange(&path, unreg_body)?;
            let t2 = Instant::now();
            one.push((t1 - t0).as_secs_f64() * 1e3);
            pair.push((t2 - t0).as_secs_f64() * 1e3);
        }
        Ok([summarize(&one), summarize(&pair)])
    })();
    let _ = server.kill();
    let _ = server.wait();
    res
}
