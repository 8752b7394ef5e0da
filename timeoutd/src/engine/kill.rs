//! Ending a session: which processes end with it (the rule in
//! [`Engine::split`]), the warning ladder for well-behaved programs (SIGHUP
//! and SIGCONT, the grace period, SIGTERM), then one final step that forks
//! cannot outrun: `cgroup.kill` on the login's cgroup, or, where no writable
//! cgroup v2 exists, stop-then-kill over its audit session or subtree. Only a
//! final check that finds nothing left (the cgroup empty, or a last scan
//! empty) logs `session_terminated survivors=0`; what is left is counted by
//! uid in `session_kill_stalled`.
//!
//! Sessions opened inside the login (su, sudo: registered with a subtree
//! scope) end with it, with their own events. See README "Nested sessions
//! and root processes" for who is spared.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::core::clock::Timestamp;
use crate::core::duration::Human;
use crate::core::event::{EventName, Severity};
use crate::core::policy::KillScope;
use crate::core::session::{EndReason, KillStep, Phase, ProcRef, Scope, Session, SessionId};
use crate::engine::wake::After;
use crate::engine::{session_event, Engine, ProcFacts, System};

/// After SIGTERM, how long before the final kill.
const TERM_WAIT: Duration = Duration::from_secs(1);
/// Between kill rounds (stop-then-kill, leader scope), and the longest pause
/// between looks at a killed cgroup.
const KILL_WAIT: Duration = Duration::from_millis(250);
/// The first look at a killed cgroup; the pause doubles up to [`KILL_WAIT`].
const CGROUP_FIRST_LOOK: Duration = Duration::from_millis(10);
/// Fast rounds; after them `session_kill_stalled` is logged and the rounds
/// go on every [`KILL_RETRY_SLOW`] until nothing is left.
const MAX_KILL_ROUNDS: u32 = 20;
const KILL_RETRY_SLOW: Duration = Duration::from_secs(5);
/// Scans of one stop-then-kill round before it kills what it has stopped.
const MAX_STOP_SCANS: u32 = 200;

/// How the final step kills.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Final {
    /// `cgroup.kill` on this cgroup, then wait for it to be empty.
    Cgroup(String),
    /// SIGSTOP until a scan finds nothing running, then SIGKILL.
    StopThenKill,
    /// `kill_scope = "leader"`: SIGKILL rounds on sshd's own processes.
    LeaderOnly,
}

/// The session's scope, split by the rule.
#[derive(Debug, Default)]
pub(super) struct Split {
    pub(super) targets: Vec<ProcFacts>,
    /// Root processes left alone (moved out of the cgroup first).
    pub(super) spared: Vec<ProcRef>,
}

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

    fn final_of(s: &Session) -> Final {
        if s.limits.kill_scope == KillScope::Leader {
            return Final::LeaderOnly;
        }
        match &s.cgroup {
            Some(cg) => Final::Cgroup(cg.clone()),
            None => Final::StopThenKill,
        }
    }

    /// The live processes of the session's scope; `true` for those inside a
    /// session registered within it (its cgroup below, or its subtree).
    fn candidates(&mut self, s: &Session) -> Vec<(ProcFacts, bool)> {
        if let Final::Cgroup(cg) = Self::final_of(s) {
            return self.sys.cgroup_members(&cg);
        }
        let procs = self.sys.scope_processes(s.leader, s.scope);
        let mut inner = HashSet::new();
        for o in self.sessions.values() {
            if o.id != s.id && o.scope == Scope::Subtree && procs.iter().any(|p| p.proc == o.leader)
            {
                inner.extend(descendants_within(&procs, o.leader.pid));
            }
        }
        procs
            .into_iter()
            .map(|p| {
                let nested = inner.contains(&p.proc.pid);
                (p, nested)
            })
            .collect()
    }

    /// Who ends with the session and who is spared:
    /// - `kill_scope = "leader"`: the leader and its direct children of the
    ///   same program (sshd's session child); nothing else is looked at.
    /// - a root login: its leader's subtree; the rest of its scope (daemons
    ///   restarted from it) is spared.
    /// - any other login: every process of its scope whatever its uid, except
    ///   root processes (real and effective uid 0) that are not inside a
    ///   session registered within it (`su -` opens one; Debian's `sudo`
    ///   does not): those are spared.
    /// - a session ending because its login ends: everything in it (its
    ///   login's rule already decided).
    pub(super) fn split(&mut self, s: &Session, reason: EndReason) -> Split {
        let leader = s.leader;
        let cands = self.candidates(s);
        let mut out = Split::default();
        if s.limits.kill_scope == KillScope::Leader {
            out.targets = cands
                .into_iter()
                .map(|(p, _)| p)
                .filter(|p| p.proc == leader || (p.ppid == leader.pid && p.same_program_as_parent))
                .collect();
            return out;
        }
        let facts: Vec<ProcFacts> = cands.iter().map(|(p, _)| *p).collect();
        let subtree = (s.login.uid == 0).then(|| descendants_within(&facts, leader.pid));
        for (p, nested) in cands {
            let ends = if matches!(reason, EndReason::WithLogin { .. }) {
                true
            } else if let Some(sub) = &subtree {
                sub.contains(&p.proc.pid)
            } else {
                p.proc == leader || nested || !(p.ruid == 0 && p.euid == 0)
            };
            if ends {
                out.targets.push(p);
            } else {
                out.spared.push(p.proc);
            }
        }
        out
    }

    fn send(&mut self, s: &Session, procs: &[ProcRef], sigs: &[i32]) {
        let count = self.sys.signal(procs, sigs);
        self.log_signal(s, sigs, count, None);
    }

    fn log_signal(&mut self, s: &Session, sigs: &[i32], count: usize, method: Option<&str>) {
        let names: Vec<&str> = sigs
            .iter()
            .map(|s| crate::host::signals::signal_name(*s))
            .collect();
        let ev = session_event(EventName::SessionSignal, s)
            .field("signal", names.join(","))
            .field("pids", count)
            .field_opt("method", method);
        self.sys.log(ev);
    }

    /// Sessions registered inside `outer` (su, sudo) end with it.
    fn end_inner_sessions(&mut self, outer: &Session) {
        if outer.limits.kill_scope == KillScope::Leader {
            return;
        }
        let cands = self.candidates(outer);
        let inner: Vec<SessionId> = self
            .sessions
            .values()
            .filter(|o| o.id != outer.id && o.is_active() && o.scope == Scope::Subtree)
            .filter(|o| cands.iter().any(|(p, _)| p.proc == o.leader))
            .map(|o| o.id)
            .collect();
        for id in inner {
            if let Some(o) = self.sessions.get(&id) {
                let ev = session_event(EventName::SessionEndedWithLogin, o)
                    .with_severity(Severity::Notice)
                    .field("login", outer.id)
                    .field("reason", EndReason::WithLogin { login: outer.id }.as_str());
                self.sys.log(ev);
            }
            self.end_now(id, EndReason::WithLogin { login: outer.id });
        }
    }

    pub(super) fn begin_kill(
        &mut self,
        s: &mut Session,
        reason: EndReason,
        now: Timestamp,
    ) -> (After, Option<Timestamp>) {
        self.end_inner_sessions(s);
        let split = self.split(s, reason);
        if split.targets.is_empty() {
            return self.final_round(s, reason, 0, now);
        }
        let procs: Vec<ProcRef> = split.targets.iter().map(|p| p.proc).collect();
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
        match step {
            KillStep::Pending => self.begin_kill(s, reason, now),
            KillStep::HangUp => {
                let split = self.split(s, reason);
                if split.targets.is_empty() {
                    return self.final_round(s, reason, 0, now);
                }
                let procs: Vec<ProcRef> = split.targets.iter().map(|p| p.proc).collect();
                self.send(s, &procs, &[libc::SIGTERM]);
                s.phase = Phase::Terminating {
                    reason,
                    step: KillStep::Terminate,
                };
                (After::Keep, Some(now + TERM_WAIT))
            }
            KillStep::Terminate => self.final_round(s, reason, 0, now),
            KillStep::Kill(n) => self.final_round(s, reason, n, now),
        }
    }

    /// Round `n` of the final step (0: the first). Logs `session_terminated`
    /// only once a final check proves the scope empty.
    fn final_round(
        &mut self,
        s: &mut Session,
        reason: EndReason,
        n: u32,
        now: Timestamp,
    ) -> (After, Option<Timestamp>) {
        let quiet = n > 0;
        match Self::final_of(s) {
            Final::Cgroup(cg) => {
                if n > 0 && !self.sys.cgroup_populated(&cg) {
                    return self.terminated(s, reason, now);
                }
                let split = self.split(s, reason);
                let moved = self.sys.cgroup_kill(&cg, &split.spared);
                note_spared(s, &moved);
                if !quiet {
                    let count = split.targets.len();
                    self.log_signal(s, &[libc::SIGKILL], count, Some("cgroup.kill"));
                }
                if !self.sys.cgroup_populated(&cg) {
                    return self.terminated(s, reason, now);
                }
                let wait = CGROUP_FIRST_LOOK
                    .saturating_mul(1 << n.min(8))
                    .min(KILL_WAIT);
                self.next_round(s, reason, n, now, wait)
            }
            Final::StopThenKill => {
                // The proof: two fresh scans in a row find nothing.
                self.sys.rescan();
                let mut split = self.split(s, reason);
                if split.targets.is_empty() {
                    self.sys.rescan();
                    split = self.split(s, reason);
                }
                note_spared(s, &split.spared);
                if split.targets.is_empty() {
                    return self.terminated(s, reason, now);
                }
                let count = self.stop_then_kill(s, reason);
                if !quiet {
                    self.log_signal(s, &[libc::SIGSTOP, libc::SIGKILL], count, None);
                }
                self.next_round(s, reason, n, now, KILL_WAIT)
            }
            Final::LeaderOnly => {
                let split = self.split(s, reason);
                if split.targets.is_empty() {
                    return self.terminated(s, reason, now);
                }
                let procs: Vec<ProcRef> = split.targets.iter().map(|p| p.proc).collect();
                if quiet {
                    self.sys.signal(&procs, &[libc::SIGKILL]);
                } else {
                    self.send(s, &procs, &[libc::SIGKILL]);
                }
                self.next_round(s, reason, n, now, KILL_WAIT)
            }
        }
    }

    /// SIGSTOP to every target not yet stopped, scanning again until a scan
    /// finds none running (none can fork any more), then SIGKILL to all.
    /// Returns how many were killed.
    fn stop_then_kill(&mut self, s: &mut Session, reason: EndReason) -> usize {
        for _ in 0..MAX_STOP_SCANS {
            let split = self.split(s, reason);
            let running: Vec<ProcRef> = split
                .targets
                .iter()
                .map(|p| p.proc)
                .filter(|p| !self.sys.stopped(*p))
                .collect();
            if running.is_empty() {
                break;
            }
            self.sys.signal(&running, &[libc::SIGSTOP]);
            self.sys.rescan();
        }
        let split = self.split(s, reason);
        note_spared(s, &split.spared);
        let procs: Vec<ProcRef> = split.targets.iter().map(|p| p.proc).collect();
        let killed = self.sys.signal(&procs, &[libc::SIGKILL]);
        self.sys.rescan();
        killed
    }

    /// Schedules round `n + 1`; at the last fast round, says what survives.
    fn next_round(
        &mut self,
        s: &mut Session,
        reason: EndReason,
        n: u32,
        now: Timestamp,
        wait: Duration,
    ) -> (After, Option<Timestamp>) {
        let next = n.saturating_add(1);
        if next == MAX_KILL_ROUNDS {
            // Something keeps coming back or cannot die (uninterruptible
            // sleep): say what, once, and keep going slower.
            let left = self.survivors(s, reason);
            let ev = session_event(EventName::SessionKillStalled, s)
                .with_severity(Severity::Err)
                .field("reason", reason.as_str())
                .field("survivors", left.len())
                .field("survivors_by_uid", survivors_by_uid(&left))
                .field("rounds", next);
            self.sys.log(ev);
        }
        s.phase = Phase::Terminating {
            reason,
            step: KillStep::Kill(next),
        };
        let wait = if next >= MAX_KILL_ROUNDS {
            KILL_RETRY_SLOW
        } else {
            wait
        };
        (After::Keep, Some(now + wait))
    }

    /// What is left of the scope (for a cgroup: everything in it).
    fn survivors(&mut self, s: &Session, reason: EndReason) -> Vec<ProcFacts> {
        match Self::final_of(s) {
            Final::Cgroup(cg) => self
                .sys
                .cgroup_members(&cg)
                .into_iter()
                .map(|(p, _)| p)
                .collect(),
            _ => self.split(s, reason).targets,
        }
    }

    fn terminated(
        &mut self,
        s: &Session,
        reason: EndReason,
        now: Timestamp,
    ) -> (After, Option<Timestamp>) {
        let ev = session_event(EventName::SessionTerminated, s)
            .with_severity(Severity::Notice)
            .field("reason", reason.as_str())
            .field("survivors", 0)
            .field("root_spared", s.spared.len())
            .field("duration", Human(now.since(s.registered_at)));
        self.log_end(ev, s, reason.as_str(), now);
        (After::Forget, None)
    }
}

fn note_spared(s: &mut Session, procs: &[ProcRef]) {
    for p in procs {
        if !s.spared.contains(p) {
            s.spared.push(*p);
        }
    }
}

/// `UID:N,...` by uid, lowest uid first (real uid; `0:1` is one root process).
pub(super) fn survivors_by_uid(procs: &[ProcFacts]) -> String {
    let mut by: BTreeMap<u32, usize> = BTreeMap::new();
    for p in procs {
        *by.entry(p.ruid).or_default() += 1;
    }
    by.iter()
        .map(|(uid, n)| format!("{uid}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
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
