//! Login overhead: `pam_open_session` + `pam_close_session` through libpam
//! (pam_wrapper) with three stacks, and the physical floor of one exchange
//! over a Unix socket with the same payload sizes.

mod figures;
mod floor;
mod pam_loop;

use std::path::Path;
use std::time::Duration;

use session_timeout_proto::{Request, SessionKey};

use crate::harness::ctx::{everyday_limits, Ctx};
use crate::load::client::{self, MODULE_TIMEOUT};
use crate::results::report::Report;
use crate::util::start_time;
use figures::{login_detail, login_figures, login_table, Sums};
pub use floor::floor_server_main;
use floor::measure_floor;
pub use pam_loop::pam_loop_main;
use pam_loop::{run_loop, Samples};

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
    let payloads = probe_payloads(ctx, d)?;
    // The probe's own session_open must be in the sink before the loops
    // count theirs (it arrived during them once: 2201 for 2200).
    ctx.sink
        .wait_count(d.pid, "session_open", 1, Duration::from_secs(5));
    let logins = run_logins(ctx, d)?;
    let floor = measure_floor(
        ctx,
        &payloads.reg_body,
        &payloads.unreg_body,
        payloads.reg_reply_len,
        payloads.unreg_reply_len,
    )?;
    let sums = Sums::of(&logins.samples);
    login_figures(r, &sums, &logins, &floor);
    r.section(
        "Login overhead",
        login_table(&sums, &logins, &payloads, &floor),
    );
    login_detail(r, &sums, &logins, &payloads, &floor);
    if logins.registered != logins.expected {
        let (registered, expected) = (logins.registered, logins.expected);
        r.error(
            "overhead",
            format!(
                "the daemon saw {registered} registrations through the module, expected {expected}"
            ),
        );
    }
    Ok(())
}

/// The payloads the module exchanges, and the sizes of the daemon's replies.
struct Payloads {
    reg_body: Vec<u8>,
    unreg_body: Vec<u8>,
    reg_reply_len: usize,
    unreg_reply_len: usize,
}

/// Probes the payloads with a real registration of the harness itself.
fn probe_payloads(ctx: &Ctx, d: &crate::harness::daemon::Daemon) -> Result<Payloads, String> {
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
    Ok(Payloads {
        reg_body,
        unreg_body,
        reg_reply_len,
        unreg_reply_len,
    })
}

/// What the login loops measured, and what the daemon saw of them.
struct Logins {
    per_round: usize,
    samples: Vec<Samples>,
    /// Opens through the "up" stack.
    expected: usize,
    /// session_open events the daemon logged for them.
    registered: usize,
    /// The daemon's CPU per login (register + unregister), µs.
    daemon_us: f64,
}

/// Runs the three stacks' login loops, `ROUNDS` times in turn.
fn run_logins(ctx: &Ctx, d: &crate::harness::daemon::Daemon) -> Result<Logins, String> {
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
    Ok(Logins {
        per_round,
        samples,
        expected,
        registered,
        daemon_us,
    })
}
