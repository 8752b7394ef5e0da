//! One interactive ssh login as a test drives it: typing commands and
//! waiting for their answer, finding the processes of its audit session,
//! and checking how it ended. Built on [`Env`].

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::audit::{self, Proc};
use crate::ssh_client::{Exit, Ready, SshSession};
use crate::util::poll_until;
use crate::Env;
use crate::LogLine;

/// Bound for login plus the readiness probe (key exchange, PAM, bash start).
pub const LOGIN: Duration = Duration::from_secs(20);
/// Bound for one event that follows from something already seen.
pub const EVENT: Duration = Duration::from_secs(10);
/// The kernel moves a tty's atime only across 8-second boundaries, so the
/// daemon may credit input up to this late (see shared/DOMAIN.md).
pub const ATIME_GRANULARITY: Duration = Duration::from_secs(8);
/// SIGHUP, `grace`, SIGTERM, 1 s, SIGKILL: ssh is gone at the first step;
/// this covers the daemon's wake-up, the kill, and ssh noticing.
pub const END_SLACK: Duration = Duration::from_secs(3);

/// Resolution of a pty's atime and mtime: whole seconds.
pub const PTY_TIME_RESOLUTION: Duration = Duration::from_secs(1);

pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// A logged-in interactive session and its daemon session id.
pub struct Login<'e> {
    pub env: &'e Env,
    pub ssh: SshSession,
    pub ready: Ready,
    /// The `session_open` line of this login.
    pub open: LogLine,
    pub id: String,
    markers: Cell<u32>,
}

impl<'e> Login<'e> {
    /// `ssh -tt` as the test user, until the shell answers and the daemon
    /// logged `session_open`.
    pub fn start(env: &'e Env) -> Login<'e> {
        Login::attach(env, env.ssh())
    }

    /// Waits for `ssh`'s shell and this user's `session_open`.
    pub fn attach(env: &'e Env, ssh: SshSession) -> Login<'e> {
        let ready = env.expect_ready(&ssh, LOGIN);
        let open = env.expect_session_open(EVENT, Some(&ssh));
        let id = open.get("id").unwrap_or_default().to_string();
        Login {
            env,
            ssh,
            ready,
            open,
            id,
            markers: Cell::new(0),
        }
    }

    /// A login without a shell to probe (`ssh -T host command`): waits only
    /// for this user's `session_open`. `ready` is the spawn instant.
    pub fn without_shell(env: &'e Env, ssh: SshSession) -> Login<'e> {
        let open = env.expect_session_open(LOGIN, Some(&ssh));
        let id = open.get("id").unwrap_or_default().to_string();
        let at = ssh.spawned_at;
        Login {
            env,
            ssh,
            ready: Ready {
                written: at,
                seen: at,
            },
            open,
            id,
            markers: Cell::new(0),
        }
    }

    /// Another client of the same daemon session (e.g. a second `ssh`
    /// multiplexed through a ControlMaster): waits for its shell, but not for
    /// a `session_open` of its own.
    pub fn same_session(&self, ssh: SshSession) -> Login<'e> {
        let ready = self.env.expect_ready(&ssh, LOGIN);
        Login {
            env: self.env,
            ssh,
            ready,
            open: self.open.clone(),
            id: self.id.clone(),
            markers: Cell::new(0),
        }
    }

    /// The audit session id the daemon chose as the kill scope
    /// (`scope=audit:N`); fails the test if it chose the subtree.
    pub fn audit_session(&self) -> u32 {
        let scope = self.open.get("scope").unwrap_or_default();
        audit::audit_scope(scope).unwrap_or_else(|| {
            self.fail(&format!(
                "session_open has scope={scope:?}, not audit:N: {}",
                self.open.raw
            ))
        })
    }

    /// Panics with `msg`, the processes of the session and the full report.
    pub fn fail(&self, msg: &str) -> ! {
        let procs = audit::audit_scope(self.open.get("scope").unwrap_or_default())
            .map(|s| audit::describe(&audit::live_in_session(s)))
            .unwrap_or_default();
        panic!(
            "{msg}\n--- live processes of the session ---\n{procs}\n{}",
            self.env.report(Some(&self.ssh))
        )
    }

    /// Types `line` and a newline; returns when it was written (the input).
    pub fn type_line(&self, line: &str) -> Instant {
        self.ssh
            .send(&format!("{line}\n"))
            .unwrap_or_else(|e| self.fail(&format!("typing {line:?}: {e}")))
    }

    /// Types `cmd` and, on the same line, a marker command, and waits until
    /// the shell has printed the marker (so `cmd` ran). Returns the instant
    /// the line was written: the session's input, as late as we know it.
    ///
    /// One line, so that the shell reads nothing from the terminal after
    /// `cmd` ran (a read would move the pty's atime again).
    pub fn run(&self, cmd: &str) -> Instant {
        let n = self.markers.get() + 1;
        self.markers.set(n);
        let from = self.ssh.output_len();
        let cmd = cmd.trim_end();
        let sep = if cmd.ends_with('&') { " " } else { "; " };
        // The typed line echoes as `mk3_$((6*7))_`; only the shell prints `mk3_42_`.
        let written = self.type_line(&format!("{cmd}{sep}echo mk{n}_$((6*7))_"));
        if self
            .ssh
            .wait_output_from(&format!("mk{n}_42_"), from, EVENT)
            .is_none()
        {
            self.fail(&format!(
                "the shell did not finish {cmd:?} within {EVENT:?}"
            ));
        }
        written
    }

    /// Waits until a live process of audit session `sid` satisfies `pred`.
    pub fn wait_proc(&self, sid: u32, what: &str, pred: impl Fn(&Proc) -> bool) -> Proc {
        poll_until(EVENT, Duration::from_millis(50), || {
            audit::live_in_session(sid).into_iter().find(|p| pred(p))
        })
        .unwrap_or_else(|| self.fail(&format!("no {what} in audit session {sid}")))
    }

    /// Waits for this session's `event` with more `key=value` filters.
    pub fn event(&self, event: &str, filters: &[(&str, &str)], timeout: Duration) -> LogLine {
        self.event_of(&self.id, event, filters, timeout)
    }

    /// Waits for `event` of daemon session `id` (e.g. one opened inside
    /// this login by su) with more `key=value` filters.
    pub fn event_of(
        &self,
        id: &str,
        event: &str,
        filters: &[(&str, &str)],
        timeout: Duration,
    ) -> LogLine {
        let mut f = vec![("id", id)];
        f.extend_from_slice(filters);
        self.env
            .syslog
            .wait_event(event, &f, timeout)
            .unwrap_or_else(|| self.fail(&format!("no event={event} {f:?} within {timeout:?}")))
    }

    /// Waits for ssh to exit within `bound` of `since`.
    pub fn wait_exit(&self, since: Instant, bound: Duration) -> Exit {
        let left = (since + bound).saturating_duration_since(Instant::now());
        self.ssh.wait_for_exit(left).unwrap_or_else(|| {
            self.fail(&format!(
                "ssh still runs {} after the last input (bound {})",
                secs(since.elapsed()),
                secs(bound)
            ))
        })
    }

    /// Types `echo {tag}N` every 3 s for `span` and checks each answer;
    /// fails if this login or any of `others` (clients of the same session)
    /// ends meanwhile. Returns the last input.
    pub fn type_every_3s(&self, tag: &str, span: Duration, others: &[&Login]) -> Instant {
        let until = Instant::now() + span;
        let mut last = self.ready.written;
        let mut n = 0;
        while Instant::now() < until {
            // A person typing every 3 s: the cadence is the point, not a wait
            // for something. The pause is a bounded wait for an exit that
            // must not come.
            let ended = self.ssh.wait_for_exit(Duration::from_secs(3)).is_some()
                || others.iter().any(|o| o.ssh.exit().is_some());
            if ended {
                self.fail(&format!("ended while typing, after {n} lines of {tag}"));
            }
            n += 1;
            last = self.run(&format!("echo {tag}{n}"));
        }
        last
    }

    /// After the last input at `last_input`, the login must be ended for
    /// idleness: not before `idle`, and by `idle` + atime granularity + slack.
    /// Returns the exit.
    pub fn expect_idle_end(&self, last_input: Instant, idle: Duration) -> Exit {
        self.expect_idle_end_between(last_input, last_input, idle)
    }

    /// Like [`expect_idle_end`](Self::expect_idle_end) when the daemon may
    /// rightly ignore input after `credited` (the pty's timestamps were
    /// tampered with): not before `credited` + `idle`, and by `last_input` +
    /// `idle` + atime granularity + slack.
    pub fn expect_idle_end_between(
        &self,
        credited: Instant,
        last_input: Instant,
        idle: Duration,
    ) -> Exit {
        let upper = idle + ATIME_GRANULARITY + END_SLACK;
        let exit = self.wait_exit(last_input, upper);
        let after = exit.at.saturating_duration_since(last_input);
        // The pty's timestamps have whole seconds (tty_update_time sets
        // tv_sec only), so input the daemon credits through them before the
        // connection's first reading can count from up to 1 s before it was
        // typed.
        if exit.at + PTY_TIME_RESOLUTION < credited + idle {
            self.fail(&format!(
                "ended {} after the input it had to credit, before the idle limit {}",
                secs(exit.at.saturating_duration_since(credited)),
                secs(idle)
            ));
        }
        let expired = self.event("session_expired", &[], EVENT);
        if expired.get("reason") != Some("idle") {
            self.fail(&format!("expired, but not for idleness: {}", expired.raw));
        }
        eprintln!(
            "session {} ended {} after the last input (idle limit {})",
            self.id,
            secs(after),
            secs(idle)
        );
        exit
    }

    /// `session_terminated` with `survivors=0` was logged for this session.
    pub fn expect_terminated_clean(&self) -> LogLine {
        let t = self.event("session_terminated", &[], EVENT);
        if t.get("survivors") != Some("0") {
            self.fail(&format!("survivors reported: {}", t.raw));
        }
        t
    }

    /// No live (non-zombie) process carries audit session `sid`.
    pub fn assert_session_empty(&self, sid: u32) {
        let left = audit::live_in_session(sid);
        if !left.is_empty() {
            self.fail(&format!(
                "processes of audit session {sid} survived:\n{}",
                audit::describe(&left)
            ));
        }
    }

    /// The `signal=` values of this session's `session_signal` lines, with
    /// their `pids=` counts, in order.
    pub fn signal_steps(&self) -> Vec<(String, u32)> {
        self.env
            .syslog
            .session_lines(&self.id)
            .iter()
            .filter(|l| l.event() == Some("session_signal"))
            .map(|l| {
                (
                    l.get("signal").unwrap_or_default().to_string(),
                    l.get("pids").and_then(|p| p.parse().ok()).unwrap_or(0),
                )
            })
            .collect()
    }
}
