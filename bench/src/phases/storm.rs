//! Login storm: many registrations at once from concurrent clients, each
//! with the module's connect and 500 ms deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::harness::ctx::{everyday_limits, Ctx};
use crate::harness::daemon::{Daemon, Sample};
use crate::load::client;
use crate::load::fleet::Leader;
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json, Summary};

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
    let clients = ctx.opts.storm_clients;
    let fired = fire(ctx, d, leaders, clients);
    // Connections are closed by the clients; give the daemon a moment to reap them.
    std::thread::sleep(Duration::from_millis(500));
    let after = d.sample().ok_or("daemon gone")?;
    let fds_after = crate::harness::daemon::fd_targets(d.pid);
    let seen = Seen {
        new_fds: fds_after
            .iter()
            .filter(|t| !fds_before.contains(t))
            .cloned()
            .collect(),
        opened: ctx.sink.count(d.pid, "session_open"),
        before,
        after,
    };
    let sum = summarize(&fired.lat);
    let n = leaders.len();
    storm_figures(r, &fired, &seen, sum, n, clients);
    let mut sample_errors: Vec<String> = fired.failures.iter().take(5).cloned().collect();
    sample_errors.dedup();
    r.section(
        "Login storm",
        storm_text(&fired, &seen, sum, n, clients, &sample_errors),
    );
    storm_detail(r, fired, seen, sum, n, clients, sample_errors);
    Ok(())
}

/// What the concurrent clients saw: latencies (ms), errors, and the wall time.
struct Fired {
    lat: Vec<f64>,
    failures: Vec<String>,
    wall: Duration,
}

/// What the daemon showed around the storm.
struct Seen {
    before: Sample,
    after: Sample,
    /// The daemon's descriptors that were not open before.
    new_fds: Vec<String>,
    opened: usize,
}

/// Registers every leader, `clients` registrations at a time.
fn fire(ctx: &Ctx, d: &Daemon, leaders: &[Leader], clients: usize) -> Fired {
    let next = AtomicUsize::new(0);
    let lat: Mutex<Vec<f64>> = Mutex::new(Vec::with_capacity(leaders.len()));
    let failures: Mutex<Vec<String>> = Mutex::default();
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
    Fired {
        lat: lat.into_inner().unwrap_or_default(),
        failures: failures.into_inner().unwrap_or_default(),
        wall,
    }
}

fn storm_figures(
    r: &mut Report,
    fired: &Fired,
    seen: &Seen,
    sum: Option<Summary>,
    n: usize,
    clients: usize,
) {
    r.target(
        "storm.failures",
        &format!("login storm: failed registrations ({n} from {clients} clients)"),
        Some(fired.failures.len() as f64),
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
        Some(seen.after.fds as f64),
        "",
    );
    r.figure(
        "storm.fds_before",
        "login storm: daemon fds before",
        Some(seen.before.fds as f64),
        "",
    );
}

/// The section's sentence.
fn storm_text(
    fired: &Fired,
    seen: &Seen,
    sum: Option<Summary>,
    n: usize,
    clients: usize,
    sample_errors: &[String],
) -> String {
    let (before, after, opened) = (&seen.before, &seen.after, seen.opened);
    let wall = fired.wall;
    let failures = &fired.failures;
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
        if seen.new_fds.is_empty() {
            String::new()
        } else {
            format!(" (new: {})", seen.new_fds.join(", "))
        },
        if sample_errors.is_empty() {
            String::new()
        } else {
            format!(" First errors: {}", sample_errors.join("; "))
        }
    )
}

/// The phase's JSON detail.
fn storm_detail(
    r: &mut Report,
    fired: Fired,
    seen: Seen,
    sum: Option<Summary>,
    n: usize,
    clients: usize,
    sample_errors: Vec<String>,
) {
    let new_fds: Vec<J> = seen.new_fds.iter().map(|t| J::from(t.as_str())).collect();
    r.detail(
        "storm",
        J::obj([
            ("registrations", J::from(n)),
            ("clients", J::from(clients)),
            ("failures", J::from(fired.failures.len())),
            (
                "failure_samples",
                J::Arr(sample_errors.into_iter().map(J::from).collect()),
            ),
            ("latency_ms", summary_json(sum)),
            ("wall_s", J::num(fired.wall.as_secs_f64())),
            ("daemon_session_open_events", J::from(seen.opened)),
            (
                "daemon_before",
                crate::harness::daemon::sample_json(seen.before),
            ),
            (
                "daemon_after",
                crate::harness::daemon::sample_json(seen.after),
            ),
            ("daemon_fds_opened_since", J::Arr(new_fds)),
        ]),
    );
}
