//! What happens when a session wakes: measure its activity, write due
//! warnings, and walk an expired session through HUP, TERM and KILL.

use std::time::Duration;

use crate::core::clock::Timestamp;
use crate::core::deadline::{self, Deadline, Step};
use crate::core::duration::Human;
use crate::core::escape;
use crate::core::event::Severity;
use crate::core::policy::{KillScope, TtyClass};
use crate::core::record::JournalEntry;
use crate::core::session::{
    EndReason, KillStep, Observation, Phase, ProcRef, Session, SessionId, TtyWatch,
};
use crate::engine::{record_of, session_event, Engine, ProcFacts, System};

/// After SIGTERM, how long before SIGKILL.
const TERM_WAIT: Duration = Duration::from_secs(1);
/// Between SIGKILL rounds.
const KILL_WAIT: Duration = Duration::from_millis(250);
/// Fast SIGKILL rounds; after them `session_kill_stalled` is logged and the
/// rounds go on every [`KILL_RETRY_SLOW`] until nothing is left.
const MAX_KILL_ROUNDS: u32 = 20;
const KILL_RETRY_SLOW: Duration = Duration::from_secs(5);
/// How long after registration the login's terminal is looked for eagerly;
/// a login without one by then is taken to have none.
const DISCOVERY_WINDOW: Duration = Duration::from_secs(120);
/// `tamper_suspected` is logged at most this often per session.
const TAMPER_LOG_INTERVAL: Duration = Duration::from_secs(600);

enum After {
    Keep,
    Forget,
}

impl<S: System> Engine<S> {
    pub(crate) fn wake(&mut self, id: SessionId, now: Timestamp) {
        let Some(mut s) = self.session_mut(id).map(|s| s.clone()) else {
            return;
        };
        let before = record_of(&s);
        let (after, next) = match s.phase {
            Phase::Active => self.wake_active(&mut s, now),
            Phase::Terminating { reason, step } => self.continue_kill(&mut s, reason, step, now),
        };
        let changed = record_of(&s);
        if matches!(after, After::Keep) && changed != before {
            self.sys.persist(JournalEntry::Upsert(Box::new(changed)));
            self.maybe_compact();
        }
        self.apply(id, s, after, next);
    }

    /// Ends an active session `after` a moment, without warnings: a refused
    /// login, whose PAM stack should turn it away by itself first.
    pub(crate) fn end_after(&mut self, id: SessionId, reason: EndReason, after: Duration) {
        let now = self.sys.now();
        if let Some(s) = self.session_mut(id) {
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
        let Some(mut s) = self.session_mut(id).map(|s| s.clone()) else {
            return;
        };
        if !s.is_active() {
            return;
        }
        let now = self.sys.now();
        let (after, next) = self.begin_kill(&mut s, reason, now);
        self.apply(id, s, after, next);
    }

    fn apply(&mut self, id: SessionId, s: Session, after: After, next: Option<Timestamp>) {
        match after {
            After::Forget => self.forget(id),
            After::Keep => {
                if let Some(slot) = self.session_mut(id) {
                    *slot = s;
                }
                if let Some(at) = next {
                    self.schedule(id, at);
                }
            }
        }
    }

    fn wake_active(&mut self, s: &mut Session, now: Timestamp) -> (After, Option<Timestamp>) {
        if !self.sys.alive(s.leader) && self.sys.scope_processes(s.leader, s.scope).is_empty() {
            let ev = session_event("session_close", s)
                .field("reason", "leader_gone")
                .field("duration", Human(now.since(s.registered_at)));
            self.sys.log(ev);
            return (After::Forget, None);
        }
        self.refresh_ttys(s, now);
        if s.ttys.is_empty() {
            if s.idle_measured() {
                self.measure_io(s, now);
            }
        } else {
            self.measure(s, now);
        }
        let ds = self.deadlines_of(s);
        if s.not_before.is_none_or(|nb| nb <= now) {
            s.not_before = deadline::reprieve(&ds, &s.limits.warn, &s.warned, now);
        }
        loop {
            let ds = self.deadlines_of(s);
            match deadline::next_step(&ds, &s.limits.warn, &s.warned, now) {
                Step::Expire(d) => {
                    let ev = session_event("session_expired", s)
                        .with_severity(Severity::Notice)
                        .field("reason", d.reason.as_str())
                        .field("deadline", d.at.secs())
                        .field("idle_for", Human(now.since(s.last_activity)))
                        .field("duration", Human(now.since(s.registered_at)));
                    self.sys.log(ev);
                    return self.begin_kill(s, EndReason::Expired(d.reason), now);
                }
                Step::Warn { deadline, offset } => {
                    self.warn(s, deadline, now);
                    s.warned.record(deadline, offset);
                    Session::remember(&mut s.warnings_sent, (deadline.reason, now, deadline.at));
                }
                Step::WaitUntil(at) => return (After::Keep, Some(self.cap_wake(s, at, now))),
                Step::Nothing => {
                    let far = now + Engine::<S>::discovery_limits().1;
                    return (After::Keep, Some(self.cap_wake(s, far, now)));
                }
            }
        }
    }

    fn deadlines_of(&self, s: &Session) -> Vec<Deadline> {
        deadline::deadlines(
            &s.limits,
            s.registered_at,
            s.last_activity,
            s.idle_measured(),
            s.not_before,
        )
    }

    /// Wakes earlier than `at` while the terminal is still being looked for,
    /// and at least every liveness interval.
    fn cap_wake(&self, s: &mut Session, at: Timestamp, now: Timestamp) -> Timestamp {
        let (max_backoff, liveness) = Engine::<S>::discovery_limits();
        let mut next = at.min(now + liveness);
        let searching =
            s.ttys.is_empty() && !s.tty_settled && now.since(s.registered_at) < DISCOVERY_WINDOW;
        if searching {
            next = next.min(now + s.discovery_backoff);
            s.discovery_backoff = (s.discovery_backoff * 2).min(max_backoff);
        }
        next
    }

    /// Adds terminals of the login that appeared since the last look, and
    /// matches the policy again once the kind of terminal is known.
    fn refresh_ttys(&mut self, s: &mut Session, now: Timestamp) {
        let probe = self
            .sys
            .find_ttys(s.leader, &s.login.pam_tty, !s.tty_settled);
        // A pty the login no longer holds (a closed ControlMaster channel) is
        // dropped: its number may already belong to someone else.
        s.ttys.retain(|t| probe.ttys.contains(&t.name));
        for name in probe.ttys {
            if s.ttys.iter().all(|t| t.name != name) {
                s.ttys.push(TtyWatch::new(name.clone(), now));
                if s.tty_class == TtyClass::None {
                    s.tty_class = TtyClass::Pty;
                }
                s.tty_settled = true;
                let ev = session_event("session_tty", s).field("found", name);
                self.sys.log(ev);
            }
        }
        let searched_long = now.since(s.registered_at) >= DISCOVERY_WINDOW;
        if s.ttys.is_empty() && !s.tty_settled && (probe.notty || searched_long) {
            s.tty_class = TtyClass::None;
            s.tty_settled = true;
        }
        let d = self.policy().decide(&s.facts());
        if d.rule != s.rule {
            let ev = session_event("session_rematched", s)
                .field("new_rule", &d.rule)
                .field("tty_class", s.tty_class.as_str());
            self.sys.log(ev);
            s.rule = d.rule;
            s.limits = d.limits;
        }
    }

    /// Idle measurement for a session without a terminal: a process that
    /// read or wrote more since the last look counts as activity now.
    /// Processes that start or exit do not: a `while sleep 60` loop is idle.
    fn measure_io(&mut self, s: &mut Session, now: Timestamp) {
        let counters = self.sys.io_counters(s.leader, s.scope);
        let moved = counters
            .iter()
            .any(|(p, bytes)| s.io_seen.iter().any(|(q, before)| q == p && bytes > before));
        if moved {
            s.last_activity = s.last_activity.max(now);
        }
        s.io_seen = counters;
    }

    /// Credits kernel-recorded input on any of the session's terminals.
    fn measure(&mut self, s: &mut Session, now: Timestamp) {
        let mut tampered = Vec::new();
        for i in 0..s.ttys.len() {
            let Some(times) = self.sys.tty_times(&s.ttys[i].name) else {
                continue;
            };
            // The clock is read after the stat: on a loaded host a keystroke
            // during a long batch must not look like an atime in the future.
            let seen_at = self.sys.now().max(now);
            match s.ttys[i].observe(times, seen_at, s.limits.count_output) {
                Observation::Input(at) => s.last_activity = s.last_activity.max(at),
                Observation::Nothing => {}
                Observation::Tampered => {
                    let name = s.ttys[i].name.clone();
                    Session::remember(&mut s.tampers_seen, (name.clone(), now));
                    let why = if times.atime > seen_at {
                        "atime in the future"
                    } else {
                        "ctime changed"
                    };
                    tampered.push(format!(
                        "{name}:{why}:atime={}:ctime={}",
                        times.atime.0, times.ctime.0
                    ));
                }
            }
        }
        if tampered.is_empty() {
            return;
        }
        let quiet = s
            .last_tamper_log
            .is_some_and(|t| now.since(t) < TAMPER_LOG_INTERVAL);
        if !quiet {
            s.last_tamper_log = Some(now);
            let ev = session_event("tamper_suspected", s)
                .with_severity(Severity::Warning)
                .field("tampered", tampered.join(","))
                .field(
                    "detail",
                    "tty timestamps were set by hand; no activity credited",
                );
            self.sys.log(ev);
        }
    }

    fn warn(&mut self, s: &Session, d: Deadline, now: Timestamp) {
        let remaining = Human(Duration::from_secs(
            d.at.since(now).as_millis().div_ceil(1000) as u64,
        ));
        let limit = match d.reason {
            deadline::Reason::Idle => s.limits.idle,
            deadline::Reason::Max => s.limits.max,
        }
        .unwrap_or_default();
        let limit_text = Human(limit).to_string();
        let tty = s.tty_label();
        let text = s.limits.message.render(|slot| match slot {
            "user" => s.login.user.clone(),
            "tty" => tty.clone(),
            "remaining" => remaining.to_string(),
            "reason" => format!("{} of {limit_text}", d.reason.describe()),
            "limit" => limit_text.clone(),
            "rule" => s.rule.clone(),
            _ => String::new(),
        });
        let text = format!("\n[session-timeout] {}\n\u{7}", escape::for_terminal(&text));
        let mut delivered = 0;
        for t in &s.ttys {
            if self.sys.write_tty(&t.name, &text) {
                delivered += 1;
            }
        }
        let ev = session_event("session_warn", s)
            .field("reason", d.reason.as_str())
            .field("remaining", remaining)
            .field("deadline", d.at.secs())
            .field("delivered", delivered);
        self.sys.log(ev);
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
        let ev = session_event("session_signal", s)
            .field("signal", names.join(","))
            .field("pids", count);
        self.sys.log(ev);
    }

    fn begin_kill(
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

    fn continue_kill(
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
                let ev = session_event("session_kill_stalled", s)
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
        let ev = session_event("session_terminated", s)
            .with_severity(sev)
            .field("reason", reason.as_str())
            .field("survivors", survivors)
            .field("duration", Human(now.since(s.registered_at)));
        self.sys.log(ev);
        (After::Forget, None)
    }
}

/// The pids of `root` and everything below it, following ppid links among `procs`.
fn descendants_within(procs: &[ProcFacts], root: u32) -> std::collections::HashSet<u32> {
    let mut found = std::collections::HashSet::from([root]);
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
