//! Ending a session: which processes end with it (the rule in
//! [`Engine::split`]), the warning ladder for well-behaved programs (SIGHUP
//! and SIGCONT, the grace period, SIGTERM), then one final step that forks
//! cannot outrun: `cgroup.kill` on the login's cgroup, or, where no writable
//! cgroup v2 exists, stop-then-kill over its audit session or subtree. Only a
//! final check that finds nothing left (the cgroup empty, or two scans in a
//! row empty that read every pid handed out meanwhile) logs
//! `session_terminated survivors=0`; what is left is counted by
//! uid in `session_kill_stalled`.
//!
//! Sessions opened inside the login (su, sudo: registered with a subtree
//! scope) end with it, with their own events. See README "Nested sessions
//! and root processes" for who is spared.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::core::audit::event::{EventName, Severity};
use crate::core::policy::KillScope;
use crate::core::session::{EndReason, KillStep, Phase, ProcRef, Scope, Session, SessionId};
use crate::core::time::clock::Timestamp;
use crate::core::time::duration::Human;
use crate::engine::wake::After;
use crate::engine::{session_event, Engine, ProcFacts, System};

/// After SIGTERM, how long before the final kill.
const TERM_WAIT: Duration = Duration::from_secs(1);
/// Between kill rounds (stop-then-kill, leader scope), and the longest pause
/// between looks at a killed cgroup.
pub(in crate::engine) const KILL_WAIT: Duration = Duration::from_millis(250);
/// The first look at a killed cgroup; the pause doubles up to [`KILL_WAIT`].
const CGROUP_FIRST_LOOK: Duration = Duration::from_millis(10);
/// Fast rounds; after them `session_kill_stalled` is logged and the rounds
/// go on every [`KILL_RETRY_SLOW`] until nothing is left.
const MAX_KILL_ROUNDS: u32 = 20;
const KILL_RETRY_SLOW: Duration = Duration::from_secs(5);

/// How the final step kills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::engine) enum Final {
    /// `cgroup.kill` on this cgroup, then wait for it to be empty.
    Cgroup(String),
    /// SIGSTOP until a scan finds nothing running, then SIGKILL.
    StopThenKill,
    /// `kill_scope = "leader"`: SIGKILL rounds on sshd's own processes.
    LeaderOnly,
}

/// A session whose stop-then-kill round is due.
pub(in crate::engine) struct Due<'a> {
    pub(in crate::engine) s: &'a mut Session,
    pub(in crate::engine) reason: EndReason,
    pub(in crate::engine) n: u32,
}

/// The session's scope, split by the rule.
#[derive(Debug, Default)]
pub(in crate::engine) struct Split {
    pub(in crate::engine) targets: Vec<ProcFacts>,
    /// Root processes left alone (moved out of the cgroup first).
    pub(in crate::engine) spared: Vec<ProcRef>,
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
        let Some(mut s) = self.session(id).cloned() else {
            return;
        };
        if !s.is_active() {
            return;
        }
        let now = self.sys.now();
        let (after, next) = self.begin_kill(&mut s, reason, now);
        self.apply(id, s, after, next);
    }

    /// A revocation's first pass: SIGHUP and SIGCONT to the leader of each
    /// of `ids` at once, before each session's own pass reads its scope and
    /// signals the rest of it (about 50 µs a session; so the thousandth
    /// login is not hung up 50 ms after the first). The leader is a target
    /// of every rule (see [`Engine::split`]); the session's pass watches it
    /// with the rest and does not signal it again. Without a cgroup, the
    /// batch's view of /proc is taken first, so a subtree is still found
    /// from a leader that died at its SIGHUP, with the parent links it had.
    /// With a cgroup, a leader is hung up here only if it is still in the
    /// cgroup (root may have moved it out, and the cgroup's members are the
    /// targets). Root logins are left to their own pass: their rule follows
    /// the leader's live descendants, which its death reparents.
    pub(in crate::engine) fn hang_up_leaders(&mut self, ids: &[SessionId]) {
        let mut leaders = Vec::new();
        let mut in_cgroups = Vec::new();
        for s in ids.iter().filter_map(|id| self.session(*id)) {
            if !s.is_active() || s.login.uid == 0 {
                continue;
            }
            match Self::final_of(s) {
                Final::Cgroup(cg) => in_cgroups.push((cg, s.leader)),
                _ => leaders.push(s.leader),
            }
        }
        if !leaders.is_empty() {
            self.sys.view_processes();
        }
        for (cg, leader) in in_cgroups {
            if self.sys.cgroup_holds(&cg, leader) {
                leaders.push(leader);
            }
        }
        if leaders.is_empty() {
            return;
        }
        self.sys.signal(&leaders, &[libc::SIGHUP, libc::SIGCONT]);
        self.hung_up.extend(leaders);
    }

    pub(in crate::engine) fn final_of(s: &Session) -> Final {
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
        for p in &procs {
            if self
                .inner_session(s, p.proc)
                .is_some_and(|o| o.scope == Scope::Subtree)
            {
                inner.extend(descendants_within(&procs, p.proc.pid));
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

    /// The registered session other than `outer` whose leader is `p`.
    fn inner_session(&self, outer: &Session, p: ProcRef) -> Option<&Session> {
        let id = self.leaders.get(&p).filter(|id| **id != outer.id)?;
        self.session(*id)
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
    pub(in crate::engine) fn split(&mut self, s: &Session, reason: EndReason) -> Split {
        let cands = self.candidates(s);
        Self::split_from(s, reason, cands)
    }

    /// [`Engine::split`] of candidates already read.
    fn split_from(s: &Session, reason: EndReason, cands: Vec<(ProcFacts, bool)>) -> Split {
        let leader = s.leader;
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

    pub(in crate::engine) fn log_signal(
        &mut self,
        s: &Session,
        sigs: &[i32],
        count: usize,
        method: Option<&str>,
    ) {
        let names: Vec<&str> = sigs
            .iter()
            .map(|s| crate::host::processes::signals::signal_name(*s))
            .collect();
        let ev = session_event(EventName::SessionSignal, s)
            .field("signal", names.join(","))
            .field("pids", count)
            .field_opt("method", method);
        self.sys.log(ev);
    }

    /// Sessions registered inside `outer` (su, sudo) end with it; `cands`
    /// are the candidates of `outer`. Returns whether any did.
    fn end_inner_sessions(&mut self, outer: &Session, cands: &[(ProcFacts, bool)]) -> bool {
        if outer.limits.kill_scope == KillScope::Leader {
            return false;
        }
        let inner: Vec<SessionId> = cands
            .iter()
            .filter_map(|(p, _)| self.inner_session(outer, p.proc))
            .filter(|o| o.is_active() && o.scope == Scope::Subtree)
            .map(|o| o.id)
            .collect();
        for &id in &inner {
            if let Some(o) = self.sessions.get(&id) {
                let ev = session_event(EventName::SessionEndedWithLogin, o)
                    .with_severity(Severity::Notice)
                    .field("login", outer.id)
                    .field("reason", EndReason::WithLogin { login: outer.id }.as_str());
                self.sys.log(ev);
            }
            self.end_now(id, EndReason::WithLogin { login: outer.id });
        }
        !inner.is_empty()
    }

    pub(in crate::engine) fn begin_kill(
        &mut self,
        s: &mut Session,
        reason: EndReason,
        now: Timestamp,
    ) -> (After, Option<Timestamp>) {
        let hung_up = self.hung_up.take(&s.leader);
        let cands = self.candidates(s);
        let split = if self.end_inner_sessions(s, &cands) {
            self.split(s, reason) // what ending them left
        } else {
            Self::split_from(s, reason, cands)
        };
        if split.targets.is_empty() && hung_up.is_none() {
            return self.final_round(s, reason, 0, now);
        }
        let mut procs: Vec<ProcRef> = split.targets.iter().map(|p| p.proc).collect();
        // A leader hung up already is watched with the rest, even if gone.
        let sent_before: Vec<ProcRef> = hung_up.into_iter().collect();
        for l in &sent_before {
            if !procs.contains(l) {
                procs.push(*l);
            }
        }
        self.send_watched(s, &procs, &[libc::SIGHUP, libc::SIGCONT], &sent_before);
        s.phase = Phase::Terminating {
            reason,
            step: KillStep::HangUp,
        };
        (After::Keep, Some(now + s.limits.grace))
    }

    pub(in crate::engine) fn continue_kill(
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
                self.send_watched(s, &procs, &[libc::SIGTERM], &[]);
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
                let mut one = [Due { s, reason, n }];
                self.stop_then_kill_rounds(&mut one, now)
                    .pop()
                    .unwrap_or((After::Keep, Some(now + KILL_WAIT)))
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

    /// Schedules round `n + 1`; at the last fast round, says what survives.
    pub(in crate::engine) fn next_round(
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

    pub(in crate::engine) fn terminated(
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

pub(in crate::engine) fn note_spared(s: &mut Session, procs: &[ProcRef]) {
    for p in procs {
        if !s.spared.contains(p) {
            s.spared.push(*p);
        }
    }
}

/// `UID:N,...` by uid, lowest uid first (real uid; `0:1` is one root process).
pub(in crate::engine) fn survivors_by_uid(procs: &[ProcFacts]) -> String {
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
