//! Revocation: `timeoutctl revoke user:NAME` with many live sessions; how
//! long until every leader got SIGHUP and until every process is gone.

use std::fmt::Write as _;
use std::time::Duration;

use session_timeout_proto::Response;

use crate::harness::ctx::{everyday_limits, Ctx};
use crate::harness::daemon::Daemon;
use crate::load::client;
use crate::load::fleet::Leader;
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json};
use crate::util::wait_until;

pub fn run(ctx: &mut Ctx, r: &mut Report) -> Result<(), String> {
    let d = ctx.start_daemon("revoke", &everyday_limits(), &[])?;
    let n = ctx.opts.revoke_sessions;
    let res = ctx.spawn_ready(n, &ctx.user_spec()).and_then(|leaders| {
        let res = revoke(ctx, r, &d, &leaders);
        ctx.fleet.kill(leaders);
        res
    });
    ctx.stop_daemon(d);
    res
}

fn revoke(ctx: &Ctx, r: &mut Report, d: &Daemon, leaders: &[Leader]) -> Result<(), String> {
    for l in leaders {
        client::register(
            &d.socket,
            l,
            &ctx.host.user,
            ctx.host.uid,
            "stb-revoke",
            client::PATIENT,
        )?;
    }
    // Let the daemon settle: every session has found its terminal.
    let n = leaders.len();
    ctx.sink.wait_count(
        d.pid,
        "session_tty",
        n,
        Duration::from_secs(30 + n as u64 / 50),
    );
    std::thread::sleep(Duration::from_millis(500));

    let before = d.sample().ok_or("daemon gone")?;
    let reply = client::revoke_user(&d.socket, &ctx.host.user, 600)?;
    let after = d.sample().ok_or("daemon gone")?;
    let t_req = reply.t_send_ns;
    // Where the request's wall time went: on CPU, or waiting (a blocking
    // syslog send, or preempted by the leaders it woke).
    let cpu_ms = (after.sched_ns - before.sched_ns) as f64 / 1e6;
    let waits = after.voluntary - before.voluntary;
    let preempted = after.involuntary - before.involuntary;
    let message = match &reply.resp {
        Response::Done { message } => message.clone(),
        other => return Err(format!("revoke answered {other:?}")),
    };
    wait_until(Duration::from_secs(60), Duration::from_millis(20), || {
        let m = ctx.fleet.monitor.lock();
        leaders
            .iter()
            .all(|l| m.get(&l.idx).is_some_and(|s| s.exit_ns.is_some()))
    });
    let (mut hup, mut gone) = (Vec::new(), Vec::new());
    let mut not_from_daemon = 0usize;
    for l in leaders {
        let s = ctx.fleet.monitor.state(l.idx);
        if let Some((t, sender)) = s.first(libc::SIGHUP) {
            hup.push((t - t_req) as f64 / 1e6);
            if sender != d.pid {
                not_from_daemon += 1;
            }
        }
        if let Some(t) = s.exit_ns {
            gone.push((t - t_req) as f64 / 1e6);
        }
    }
    let (sh, sg) = (summarize(&hup), summarize(&gone));
    let reply_ms = (reply.t_recv_ns - reply.t_send_ns) as f64 / 1e6;
    r.target(
        "revoke.last_sighup_ms",
        &format!("revocation of {n} sessions: request → last SIGHUP received"),
        (hup.len() == n).then_some(sh.map(|s| s.max)).flatten(),
        "ms",
        100.0,
        "",
    );
    r.figure(
        "revoke.last_gone_ms",
        &format!("revocation of {n} sessions: request → last process gone"),
        (gone.len() == n).then_some(sg.map(|s| s.max)).flatten(),
        "ms",
    );
    r.figure(
        "revoke.reply_ms",
        "revocation: request → reply",
        Some(reply_ms),
        "ms",
    );
    let mut md = format!(
        "{n} live sessions of one user (one leader process each, which exits on SIGHUP like a shell). \
         Times from the moment the request was sent.\n\n"
    );
    let _ = writeln!(md, "- reply after {reply_ms:.1} ms: {message:?}");
    let _ = writeln!(
        md,
        "- SIGHUP received by the leaders: {} of {n}; {}",
        hup.len(),
        sh.map_or("—".into(), |s| format!(
            "ms after the request: {}",
            s.short(1)
        ))
    );
    let _ = writeln!(
        md,
        "- processes gone: {} of {n}; {}",
        gone.len(),
        sg.map_or("—".into(), |s| format!(
            "ms after the request: {}",
            s.short(1)
        ))
    );
    let _ = writeln!(md, "- SIGHUP not sent by the daemon: {not_from_daemon}");
    let signalled = ctx.sink.count(d.pid, "session_signal");
    let revoked = ctx.sink.count(d.pid, "session_revoked");
    let _ = writeln!(
        md,
        "- the daemon while handling the request: {cpu_ms:.1} ms on CPU, {waits} voluntary waits, \
         {preempted} preemptions; it logged {revoked} session_revoked and {signalled} session_signal events"
    );
    r.section("Revocation", md);
    r.detail(
        "revoke",
        J::obj([
            ("sessions", J::from(n)),
            ("reply_ms", J::num(reply_ms)),
            ("reply", J::from(message)),
            ("sighup_after_request_ms", summary_json(sh)),
            ("gone_after_request_ms", summary_json(sg)),
            ("sighup_received", J::from(hup.len())),
            ("gone", J::from(gone.len())),
            ("sighup_not_from_daemon", J::from(not_from_daemon)),
            ("daemon_cpu_ms_during_request", J::num(cpu_ms)),
            ("daemon_voluntary_waits_during_request", J::from(waits)),
            ("daemon_preemptions_during_request", J::from(preempted)),
        ]),
    );
    Ok(())
}
