//! Ending a session: which processes are signalled (the user's, in the
//! session's scope), the HUP, TERM and KILL ladder with its waits, what is
//! said when something survives, and the closing `session_terminated`.

use std::collections::HashSet;
use std::time::Duration;

use crate::core::clock::Timestamp;
use crate::core::duration::Human;
use crate::core::event::{EventName, Severity};
use crate::core::policy::KillScope;
use crate::core::session::{EndReason, KillStep, Phase, ProcRef, Session, SessionId};
use crate::engine::wake::After;
use crate::engine::{session_event, Engine, ProcFacts, System};

/// After SIGTERM, how long before SIGKILL.
const TERM_WAIT: Duration = Duration::from_secs(1);
/// Between SIGKILL rounds.
const KILL_WAIT: Duration = Duration::from_millis(250);
/// Fast SIGKILL rounds; after them `session_kill_stalled` is logged and the
/// rounds go on every [`KILL_RETRY_SLOW`] until nothing is left.
const MAX_KILL_ROUNDS: u32 = 20;
const KILL_RETRY_SLOW: Duration = Duration::from_secs(5);

impl<S: System> Engine<S> {
    /// Ends an active session `after` a moment, without warnings: a refused
    /// login, whose PAM stack should turn it away by itself first.
    pub(crate) fn end_after(&mut self, id: SessionId, reason: EndReason, after: Duration) {
        let now = self.sys.now();
        if let Some(s) = self.sessions.get_mut(&id) {
            if s.is_active() {
                s.phase = Phase::Terminating {
                    reason,
                    step: KillStep::Pending,
                };
                self.schedule(id, now + after);
            }
        }
    }

    /// Starts ending an active session now, without warnings (kill, revoke).
    pub(crate) fn end_now(&mut self, id: SessionId, reason: EndReason) {
        let Some(mut s) = self.sessions.get_mut(&id).map(|s| s.clone()) else {
            return;
        };
        if !s.is_active() {
            return;
        }
        let now = self.sys.now();
        let (after, next) = self.begin_kill(&mut s, reason, now);
        self.apply(id, s, after, next);
    }

    /// The processes to signal: those in scope that belong to the user, and the
    /// leader itself. Other users' and root's own processes are never touched.
    ///
    /// With `kill_scope = "leader"` only the leader and its direct children of
    /// the same program (sshd's session child) are signalled: the connection
    /// ends, and processes that detached from it survive.
    fn targets(&mut self, s: &Session) -> Vec<ProcRef> {
        let uid = s.login.uid;
        let leader = s.leader;
        let procs = self.sys.scope_processes(s.leader, s.scope);
        // A root login's audit session may hold system daemons (re)started
        // from it; only the leader's own subtree is ended for root.
        let subtree = (uid == 0).then(|| descendants_within(&procs, leader.pid));
        procs
            .into_iter()
            .filter(|p: &ProcFacts| {
                if s.limits.kill_scope == KillScope::Leader {
                    return p.proc == leader || (p.ppid == leader.pid && p.same_program_as_parent);
                }
                if let Some(sub) = &subtree {
                    return sub.contains(&p.proc.pid);
                }
                p.proc == leader || p.ruid == uid || p.euid == uid
            })
            .map(|p| p.proc)
            .collect()
    }

    fn send(&mut self, s: &Session, procs: &[ProcRef], sigs: &[i32]) {
        let count = self.sys.signal(procs, sigs);
        let names: Vec<&str> = sigs
            .iter()
            .map(|s| crate::host::signals::signal_name(*s))
            .collect();
        let ev = session_event(EventName::SessionSignal, s)
            .field("signal", names.join(","))
            .field("pids", count);
        self.sys.log(ev);
    }

    pub(super) fn begin_kill(
        &mut self,
        s: &mut Session,
        reason: EndReason,
        now: Timestamp,
    ) -> (After, Option<Timestamp>) {
        let procs = self.targets(s);
        if procs.is_empty() {
            return self.terminated(s, reason, 0, now);
        }
        self.send(s, &procs, &[libc::SIGHUP, libc::SIGCONT]);
        s.phase = Phase::Terminating {
            reason,
            step: KillStep::HangUp,
        };
        (After::Keep, Some(now + s.limits.grace))
    }

    pub(super) fn continue_kill(
        &mut self,
        s: &mut Session,
        reason: EndReason,
        step: KillStep,
        now: Timestamp,
    ) -> (After, Option<Timestamp>) {
        if step == KillStep::Pending {
            return self.begin_kill(s, reason, now);
        }
        let procs = self.targets(s);
        if procs.is_empty() {
            return self.terminated(s, reason, 0, now);
        }
        let (sig, next_step, wait) = match step {
            KillStep::Pending | KillStep::HangUp => (libc::SIGTERM, KillStep::Terminate, TERM_WAIT),
            KillStep::Terminate => (libc::SIGKILL, KillStep::Kill(1), KILL_WAIT),
            KillStep::Kill(n) if n == MAX_KILL_ROUNDS => {
                // Something keeps coming back (a fork loop, a process in
                // uninterruptible sleep): say so once, and keep going slower.
                let ev = session_event(EventName::SessionKillStalled, s)
                    .with_severity(Severity::Err)
                    .field("reason", reason.as_str())
                    .field("survivors", procs.len())
                    .field("rounds", n);
                self.sys.log(ev);
                (libc::SIGKILL, KillStep::Kill(n + 1), KILL_RETRY_SLOW)
            }
            KillStep::Kill(n) if n > MAX_KILL_ROUNDS => (
                libc::SIGKILL,
                KillStep::Kill(n.saturating_add(1)),
                KILL_RETRY_SLOW,
            ),
            KillStep::Kill(n) => (libc::SIGKILL, KillStep::Kill(n + 1), KILL_WAIT),
        };
        let quiet = matches!(step, KillStep::Kill(n) if n > MAX_KILL_ROUNDS);
        if quiet {
            self.sys.signal(&procs, &[sig]);
        } else {
            self.send(s, &procs, &[sig]);
        }
        s.phase = Phase::Terminating {
            reason,
            step: next_step,
        };
        (After::Keep, Some(now + wait))
    }

    fn terminated(
        &mut self,
        s: &Session,
        reason: EndReason,
        survivors: usize,
        now: Timestamp,
    ) -> (After, Option<Timestamp>) {
        let sev = if survivors == 0 {
            Severity::Notice
        } else {
            Severity::Err
        };
        let ev = session_event(EventName::SessionTerminated, s)
            .with_severity(sev)
            .field("reason", reason.as_str())
            .field("survivors", survivors)
            .field("duration", Human(now.since(s.registered_at)));
        self.log_end(ev, s, reason.as_str(), now);
        (After::Forget, None)
    }
}

/// The pids of `root` and everything below it, following ppid links among `procs`.
fn descendants_within(procs: &[ProcFacts], root: u32) -> HashSet<u32> {
    let mut found = HashSet::from([root]);
    loop {
        let before = found.len();
        for p in procs {
            if found.contains(&p.ppid) {
                found.insert(p.proc.pid);
            }
        }
        if found.len() == before {
            return found;
        }
    }
}
