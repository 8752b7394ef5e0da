//! The event loop: wait on the socket, the signalfd, the connections, the
//! re-validation children, the processes of ending sessions (one epoll
//! fd, `host::processes::exits`) and, while log lines wait, the syslog
//! socket's room for them, until the engine's next timer is due, answer what
//! came in, run what is due. SIGHUP and `timeoutctl reload` reload the
//! policy; SIGTERM and SIGINT stop.

use std::path::Path;
use std::time::{Duration, Instant};

use session_timeout_proto::{ErrorCode, Request, Response};

use crate::config;
use crate::core::audit::event::{Event, EventName, Severity};
use crate::core::time::clock::Clock;
use crate::daemon::checks::Checks;
use crate::daemon::server::{Incoming, Server};
use crate::engine::Engine;
use crate::host::clock::SystemClock;
use crate::host::processes::signals::signal_name;
use crate::host::syslog::Syslog;
use crate::host::Host;

/// Longest the loop sleeps with nothing due (it wakes for requests anyway).
const MAX_IDLE_SLEEP: Duration = Duration::from_secs(3600);

/// Whether the loop goes on after one incoming event.
enum Flow {
    Continue,
    Stop,
}

/// Serves until SIGTERM or SIGINT.
pub(crate) fn run(
    engine: &mut Engine<Host>,
    server: &mut Server,
    checks: &mut Checks,
    config_path: &Path,
    syslog: &Syslog,
) {
    loop {
        let wait = time_to_next_wake(engine, syslog);
        let mut wait = checks
            .time_to_next(Instant::now())
            .map_or(wait, |c| c.min(wait));
        if engine.sys.exits_pending() {
            wait = Duration::ZERO;
        }
        let mut fds = checks.poll_fds();
        fds.extend(engine.sys.exit_watch_fds());
        let incoming = server.poll_with(wait, &fds, syslog.waiting_fd());
        let turn_began = SystemClock.now();
        engine.sys.note_readable(&server.readable_extra);
        syslog.flush();
        for incoming in incoming {
            let mut ctx = Ctx {
                engine,
                server,
                checks,
                config_path,
                syslog,
            };
            if let Flow::Stop = answer(incoming, &mut ctx) {
                return;
            }
        }
        for ev in server.notices.drain(..) {
            syslog.log(&ev);
        }
        syslog.report_suppressed();
        engine.run_due();
        revalidate(engine, server, checks);
        engine.on_exits(turn_began);
    }
}

/// What handling one incoming event may touch.
struct Ctx<'a> {
    engine: &'a mut Engine<Host>,
    server: &'a mut Server,
    checks: &'a mut Checks,
    config_path: &'a Path,
    syslog: &'a Syslog,
}

/// Queues the checks that are due, starts and collects checks, acts on
/// their answers, and sends the `timeoutctl revalidate` replies that are due.
fn revalidate(engine: &mut Engine<Host>, server: &mut Server, checks: &mut Checks) {
    checks.enqueue(engine.take_due_checks());
    loop {
        let done = checks.step(Instant::now());
        if done.is_empty() {
            break;
        }
        for (check, outcome) in done {
            let line = engine.check_finished(&check, outcome);
            checks.answered(check.uid, outcome, &line);
        }
    }
    for (conn, resp) in checks.replies_due(Instant::now()) {
        server.reply(conn, &resp);
    }
}

/// How long to wait for requests before the engine's next timer is due.
fn time_to_next_wake(engine: &mut Engine<Host>, syslog: &Syslog) -> Duration {
    let next = [
        engine.next_wake(),
        syslog.next_report(),
        engine.next_check_due(),
    ]
    .into_iter()
    .flatten()
    .min();
    match next {
        Some(at) => Duration::from_millis(u64::try_from(at.0 - SystemClock.now().0).unwrap_or(0)),
        None => MAX_IDLE_SLEEP,
    }
    .min(MAX_IDLE_SLEEP)
}

/// Handles one request or signal.
fn answer(incoming: Incoming, ctx: &mut Ctx) -> Flow {
    let Ctx {
        engine,
        server,
        checks,
        config_path,
        syslog,
    } = ctx;
    match incoming {
        Incoming::Request {
            conn,
            req: Request::Revalidate { user },
            peer,
        } if engine.is_admin(peer) => {
            let user = (!user.is_empty()).then_some(user.as_str());
            match engine.request_checks(user) {
                // The reply is sent when the checks are answered.
                Ok((start, wait_for)) => checks.request(conn, start, wait_for),
                Err(message) => server.reply(
                    conn,
                    &Response::Error {
                        code: ErrorCode::NotFound,
                        message,
                    },
                ),
            }
        }
        Incoming::Request { conn, req, peer } => {
            // The request's lines go out after its reply.
            let held = syslog.hold();
            let resp = match req {
                Request::Reload if engine.is_admin(peer) => {
                    reload(engine, checks, config_path, syslog)
                }
                other => engine.handle(other, peer),
            };
            server.reply(conn, &resp);
            drop(held);
        }
        Incoming::Signal(libc::SIGHUP) => {
            reload(engine, checks, config_path, syslog);
        }
        Incoming::Signal(sig) => {
            syslog.log(
                &Event::new(EventName::DaemonStop)
                    .field("signal", signal_name(sig))
                    .field("sessions", engine.len()),
            );
            return Flow::Stop;
        }
    }
    Flow::Continue
}

/// SIGHUP or `timeoutctl reload`: a valid file replaces the policy; an
/// invalid one changes nothing.
fn reload(
    engine: &mut Engine<Host>,
    checks: &mut Checks,
    path: &Path,
    syslog: &Syslog,
) -> Response {
    match config::load(path) {
        Ok(cfg) => {
            let rules = cfg.policy.rule_count();
            engine.set_policy(cfg.policy);
            engine.admin_group = cfg.daemon.admin_group;
            engine.configure_revalidation(&cfg.daemon.revalidate);
            checks.configure(&cfg.daemon.revalidate);
            syslog.log(
                &Event::new(EventName::ConfigLoaded)
                    .field("file", path.display())
                    .field("rules", rules)
                    .field("sessions", engine.len()),
            );
            let mut message = format!(
                "{} loaded: {rules} rules, {} live sessions re-matched",
                path.display(),
                engine.len()
            );
            for w in &cfg.warnings {
                message.push_str(&format!("\n{w}"));
            }
            Response::Done { message }
        }
        Err(errs) => {
            syslog.log(
                &Event::new(EventName::ConfigRejected)
                    .with_severity(Severity::Err)
                    .field("file", path.display())
                    .field("errors", errs.to_string().replace('\n', "; "))
                    .field("action", "keeping the running policy"),
            );
            Response::Error {
                code: ErrorCode::Malformed,
                message: format!("{errs}\nthe running policy was kept"),
            }
        }
    }
}
