//! Login storm: many registrations at once from concurrent clients, each
//! with the module's connect and 500 ms deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::harness::ctx::{everyday_limits, Ctx};
use crate::harness::daemon::Daemon;
use crate::load::client;
use crate::load::fleet::Leader;
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json};

pub fn run(ctx: &mut Ctx, r: &mut Report) -> Result<(), String> {
    let d = ctx.start_daemon("storm", &everyday_limits(), &[])?;
    let res = ctx
        .spawn_ready(ctx.opts.storm, &ctx.user_spec())
        .and_then(|leaders| {
            let res = storm(ctx, r, &d, &leaders);
            ctx.fleet.kill(leaders);
            res
        });
    ctx.stop_daemon(d);
    res
}

fn storm(ctx: &Ctx, r: &mut Report, d: &Daemon, leaders: &[Leader]) -> Result<(), String> {
    std::thread::sleep(Duration::from_millis(300));
    let before = d.sample().ok_or("daemon gone")?;
    let fds_before = crate::harness::daemon::fd_targets(d.pid);
    let next = AtomicUsize::new(0);
    let lat: Mutex<Vec<f64>> = Mutex::new(Vec::with_capacity(leaders.len()));
    let failures: Mutex<Vec<String>> = Mutex::default();
    let clients = ctx.opts.storm_clients;
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(l) = leaders.get(i) else { break };
                match client::register(
                    &d.socket,
                    l,
                    &ctx.host.user,
                    ctx.host.uid,
                    "stb-storm",
                    client::MODULE_TIMEOUT,
                ) {
                    Ok(reg) => lat
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((reg.t_recv_ns - reg.t_send_ns) as f64 / 1e6),
                    Err(e) => failures.lock().unwrap_or_else(|e| e.into_inner()).push(e),
                }
            });
        }
    });
    let wall = t0.elapsed();
    let lat = lat.into_inner().unwrap_or_default();
    let failures = failures.into_inner().unwrap_or_default();
    // Connections are closed by the clients; give the daemon a moment to reap them.
    std::thread::sleep(Duration::from_millis(500));
    let after = d.sample().ok_or("daemon gone")?;
    let fds_after = crate::harness::daemon::fd_targets(d.pid);
    let new_fds: Vec<J> = fds_after
        .iter()
        .filter(|t| !fds_before.contains(t))
        .map(|t| J::from(t.as_str()))
        .collect();
    let opened = ctx.sink.count(d.pid, "session_open");
    let sum = summarize(&lat);
    let n = leaders.len();

    r.target(
        "storm.failures",
        &format!("login storm: failed registrations ({n} from {clients} clients)"),
        Some(failures.len() as f64),
        "",
        0.0,
        "",
    );
    r.figure(
        "storm.p50_ms",
        "login storm: registration latency p50",
        sum.map(|s| s.p50),
        "ms",
    );
    r.figure(
        "storm.p99_ms",
        "login storm: registration latency p99",
        sum.map(|s| s.p99),
        "ms",
    );
    r.figure(
        "storm.fds_after",
        "login storm: daemon fds afterwards",
        Some(after.fds as f64),
        "",
    );
    r.figure(
        "storm.fds_before",
        "login storm: daemon fds before",
        Some(before.fds as f64),
        "",
    );

    let mut sample_errors: Vec<String> = failures.iter().take(5).cloned().collect();
    sample_errors.dedup();
    r.section(
        "Login storm",
        format!(
            "{n} registrations from {clients} concurrent clients (module-style connect, 500 ms deadline) \
             in {:.2} s ({:.0}/s): {} failed; latency {}; the daemon logged {opened} session_open; \
             daemon fds {} before, {} after{}.{}\n",
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            failures.len(),
            sum.map_or("—".into(), |s| format!("{} ms", s.short(3))),
            before.fds,
            after.fds,
            if new_fds.is_empty() {
                String::new()
            } else {
                let names: Vec<String> = fds_after
                    .iter()
                    .filter(|t| !fds_before.contains(t))
                    .cloned()
                    .collect();
                format!(" (new: {})", names.join(", "))
            },
            if sample_errors.is_empty() {
                String::new()
            } else {
                format!(" First errors: {}", sample_errors.join("; "))
            }
        ),
    );
    r.detail(
        "storm",
        J::obj([
            ("registrations", J::from(n)),
            ("clients", J::from(clients)),
            ("failures", J::from(failures.len())),
            (
                "failure_samples",
                J::Arr(sample_errors.into_iter().map(J::from).collect()),
            ),
            ("latency_ms", summary_json(sum)),
            ("wall_s", J::num(wall.as_secs_f64())),
            ("daemon_session_open_events", J::from(opened)),
            ("daemon_before", crate::harness::daemon::sample_json(before)),
            ("daemon_after", crate::harness::daemon::sample_json(after)),
            ("daemon_fds_opened_since", J::Arr(new_fds)),
        ]),
    );
    Ok(())
}
