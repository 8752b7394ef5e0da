//! What happens when a session wakes: measure its activity (terminal
//! timestamps, or process I/O without a terminal), write due warnings, match
//! the policy again, and decide when to look next. `set_policy` re-examines
//! every session under a new policy.

use std::time::Duration;

use crate::core::audit::escape;
use crate::core::audit::event::{EventName, Severity};
use crate::core::policy::{Policy, TtyClass};
use crate::core::session::deadline::{self, Deadline, Step};
use crate::core::session::terminal::{Observation, TtyWatch};
use crate::core::session::{EndReason, Phase, ProcRef, Session, SessionId};
use crate::core::state::record::JournalEntry;
use crate::core::time::clock::Timestamp;
use crate::core::time::duration::Human;
use crate::engine::ending::summary;
use crate::engine::{dry_run, session_event, Engine, System, TtyProbe};

/// How long after registration the login's terminal is looked for eagerly;
/// a login without one by then is taken to have none.
pub(super) const DISCOVERY_WINDOW: Duration = Duration::from_secs(120);
/// Longest pause between looks for a terminal that has not appeared yet.
const DISCOVERY_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Sessions are looked at at least this often, to notice a leader that died silently.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(600);
/// A session whose leader is gone is woken by the exit of what is left of
/// it at most this often: a process that forks and exits in a loop must
/// not make the daemon scan its scope at every hop.
pub(super) const LEADERLESS_REWATCH: Duration = Duration::from_secs(1);
/// `tamper_suspected` is logged at most this often per session.
const TAMPER_LOG_INTERVAL: Duration = Duration::from_secs(600);

/// What becomes of a session after a wake-up.
pub(super) enum After {
    Keep,
    Forget,
}

impl<S: System> Engine<S> {
    /// Runs every wake-up that is due now.
    pub(crate) fn run_due(&mut self) {
        let now = self.sys.now();
        self.expire_revocations(now);
        let mut batch_started = false;
        let mut kill_rounds = Vec::new();
        while let Some(id) = self.timers.pop_due(now) {
            if !batch_started {
                self.sys.begin_batch();
                self.sys.group_persists();
                batch_started = true;
            }
            if self.session(id).is_some_and(Self::is_stop_then_kill_round) {
                kill_rounds.push(id); // together, on shared scans
                continue;
            }
            self.wake(id, now);
        }
        if !kill_rounds.is_empty() {
            self.run_kill_rounds(&kill_rounds, now);
        }
        if batch_started {
            self.sys.write_persisted();
        }
    }

    /// Installs a new policy: live sessions are matched again and re-examined now.
    pub(crate) fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
        let now = self.sys.now();
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            let Some(s) = self.sessions.get_mut(&id) else {
                continue;
            };
            if !s.is_active() {
                continue;
            }
            s.apply_decision(self.policy.decide(&s.facts()));
            self.schedule(id, now);
        }
    }

    fn wake(&mut self, id: SessionId, now: Timestamp) {
        let Some(mut s) = self.session_mut(id).map(|s| s.clone()) else {
            return;
        };
        let (after, next) = match s.phase {
            Phase::Active => self.wake_active(&mut s, now),
            Phase::Terminating { reason, step } => self.continue_kill(&mut s, reason, step, now),
        };
        self.put_back(id, s, after, next);
    }

    /// Puts a session taken out for a wake or a round back: journals it if
    /// it stays and its record changed (the table still holds it as it was
    /// before), then applies the outcome.
    pub(super) fn put_back(
        &mut self,
        id: SessionId,
        s: Session,
        after: After,
        next: Option<Timestamp>,
    ) {
        let changed = self.sessions.get(&id).is_none_or(|b| s.record_differs(b));
        let persist = matches!(after, After::Keep) && changed;
        if persist {
            self.sys.persist(JournalEntry::Upsert(Box::new(s.record())));
        }
        self.apply(id, s, after, next);
        // After the table holds the change: a snapshot replaces the journal.
        if persist {
            self.maybe_compact();
        }
    }

    pub(super) fn apply(
        &mut self,
        id: SessionId,
        s: Session,
        after: After,
        next: Option<Timestamp>,
    ) {
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

    /// Looks at a session's terminals now, for an answer about it (`status`)
    /// that includes input typed since the last look. Its timer is left as
    /// it is: the next wake measures again and re-arms.
    pub(super) fn look_now(&mut self, id: SessionId, now: Timestamp) {
        let Some(mut s) = self.session(id).cloned() else {
            return;
        };
        if !matches!(s.phase, Phase::Active) {
            return;
        }
        self.measure_activity(&mut s, now);
        if let Some(slot) = self.session_mut(id) {
            *slot = s;
        }
    }

    fn wake_active(&mut self, s: &mut Session, now: Timestamp) -> (After, Option<Timestamp>) {
        let leader_alive = self.sys.alive(s.leader);
        if !leader_alive {
            let left: Vec<ProcRef> = self
                .sys
                .scope_processes(s.leader, s.scope)
                .iter()
                .map(|p| p.proc)
                .collect();
            if left.is_empty() {
                let ev = session_event(EventName::SessionClose, s)
                    .field("reason", "leader_gone")
                    .field("duration", Human(now.since(s.registered_at)));
                self.log_end(ev, s, "leader_gone", now);
                return (After::Forget, None);
            }
            // Nothing is signalled: the last of them to exit wakes the session.
            self.sys.signal_watched(s.id, &left, &[], &[]);
            self.leaderless.insert(s.id, now);
        }
        self.refresh_conn(s, now);
        self.refresh_ttys(s, now, leader_alive);
        self.rematch(s);
        let suspects = self.measure_activity(s, now);
        if s.idle_measured() {
            summary::note_look(s, now);
        }
        let ds = self.deadlines_of(s);
        if s.not_before.is_none_or(|nb| nb <= now) {
            s.not_before = deadline::reprieve(&ds, &s.limits.warn, &s.warned, now);
        }
        loop {
            let ds = self.deadlines_of(s);
            match deadline::next_step(&ds, &s.limits.warn, &s.warned, now) {
                Step::Expire(d) => {
                    if d.reason == deadline::Reason::Idle && !suspects.is_empty() {
                        self.log_tamper(s, now, &suspects, true);
                    }
                    let ev = session_event(EventName::SessionExpired, s)
                        .with_severity(Severity::Notice)
                        .field("reason", d.reason.as_str())
                        .field("deadline", d.at.secs())
                        .field("idle_for", Human(now.since(s.last_activity)))
                        .field("duration", Human(now.since(s.registered_at)));
                    if s.limits.dry_run() {
                        self.would_expire(s, d, ev);
                        continue;
                    }
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
                    let far = now + LIVENESS_INTERVAL;
                    return (After::Keep, Some(self.cap_wake(s, far, now)));
                }
            }
        }
    }

    fn deadlines_of(&self, s: &Session) -> Vec<Deadline> {
        let ds = deadline::with_absolute(s.pending_deadlines(), &self.absolute_of(s), s.not_before);
        if !s.limits.dry_run() {
            return ds;
        }
        // Under a dry run an absolute deadline that passed is logged once.
        ds.into_iter()
            .filter(|d| !s.evidence.dry_run.logged(d.reason, d.at))
            .collect()
    }

    /// Wakes earlier than `at` while the terminal is still being looked for,
    /// and at least every liveness interval.
    fn cap_wake(&self, s: &mut Session, at: Timestamp, now: Timestamp) -> Timestamp {
        let mut next = at.min(now + LIVENESS_INTERVAL);
        if let Some(look) = s.dry_run_look() {
            next = next.min(now + look);
        }
        let searching = ((s.ttys.is_empty() && !s.tty_settled) || !s.conn_settled)
            && now.since(s.registered_at) < DISCOVERY_WINDOW;
        if searching {
            next = next.min(now + s.discovery_backoff);
            s.discovery_backoff = (s.discovery_backoff * 2).min(DISCOVERY_MAX_BACKOFF);
        }
        if let Some(every) = crate::engine::witness::channel_look_interval(s) {
            next = next.min(now + every);
        }
        next
    }

    /// Adds terminals of the login that appeared since the last look, and
    /// settles the kind of terminal once it is known. A leader gone holds
    /// none (the session lives on in its other processes).
    fn refresh_ttys(&mut self, s: &mut Session, now: Timestamp, leader_alive: bool) {
        let probe = if leader_alive {
            self.sys
                .find_ttys(s.leader, &s.login.pam_tty, !s.tty_settled)
        } else {
            TtyProbe::default()
        };
        // A pty the login no longer holds (a closed ControlMaster channel) is
        // dropped: its number may already belong to someone else.
        s.ttys.retain(|t| probe.ttys.contains(&t.name));
        for name in probe.ttys {
            if s.ttys.iter().all(|t| t.name != name) {
                s.ttys.push(TtyWatch::new(name.clone(), now));
                self.credit_pty_creation(s, &name, now);
                if s.tty_class == TtyClass::None {
                    s.tty_class = TtyClass::Pty;
                }
                s.tty_settled = true;
                let mut ev = session_event(EventName::SessionTty, s).field("found", name);
                if let Some(c) = &s.conn {
                    ev = ev.field("conn", c.conn.ports());
                }
                self.sys.log(ev);
            }
        }
        let searched_long = now.since(s.registered_at) >= DISCOVERY_WINDOW;
        if s.ttys.is_empty() && !s.tty_settled && (probe.notty || searched_long) {
            s.tty_class = TtyClass::None;
            s.tty_settled = true;
        }
    }

    /// Matches the policy again (the kind of terminal may be known now).
    fn rematch(&mut self, s: &mut Session) {
        let d = self.policy.decide(&s.facts());
        if d.rule != s.rule {
            let ev = session_event(EventName::SessionRematched, s)
                .field("new_rule", &d.rule)
                .field("tty_class", s.tty_class.as_str());
            self.sys.log(ev);
            s.apply_decision(d);
        }
    }

    /// Idle measurement for a session without a terminal: a process that
    /// read or wrote more since the last look counts as activity now.
    /// Processes that start or exit do not: a `while sleep 60` loop is idle.
    pub(super) fn measure_io(&mut self, s: &mut Session, now: Timestamp) {
        let counters = self.sys.io_counters(s.leader, s.scope);
        let moved = counters
            .iter()
            .any(|(p, bytes)| s.io_seen.iter().any(|(q, before)| q == p && bytes > before));
        if moved {
            s.last_activity = s.last_activity.max(now);
        }
        s.io_seen = counters;
    }

    /// Credits kernel-recorded input on any of the session's terminals;
    /// `client_last` is the last client data that reached a channel, when
    /// the login's connection could be read.
    pub(super) fn measure(
        &mut self,
        s: &mut Session,
        now: Timestamp,
        client_last: Option<Timestamp>,
    ) {
        let mut tampered = Vec::new();
        let mut unwitnessed = false;
        for i in 0..s.ttys.len() {
            let Some(times) = self.sys.tty_times(&s.ttys[i].name) else {
                continue;
            };
            // The clock is read after the stat: on a loaded host a keystroke
            // during a long batch must not look like an atime in the future.
            let seen_at = self.sys.now().max(now);
            let name = s.ttys[i].name.clone();
            match s.ttys[i].observe(times, seen_at, s.limits.count_output, client_last) {
                Observation::Input(at) => s.last_activity = s.last_activity.max(at),
                Observation::Nothing => {}
                Observation::Unwitnessed(at) => {
                    s.last_activity = s.last_activity.max(at);
                    Session::remember(&mut s.tampers_seen, (name.clone(), now));
                    unwitnessed = true;
                    tampered.push(format!("{name}:no client data:atime={}", times.atime.0));
                }
                Observation::Tampered => {
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
        if !tampered.is_empty() {
            self.log_tamper(s, now, &tampered, unwitnessed);
        }
    }

    /// `tamper_suspected`, at most once per session per [`TAMPER_LOG_INTERVAL`].
    pub(super) fn log_tamper(
        &mut self,
        s: &mut Session,
        now: Timestamp,
        found: &[String],
        unwitnessed: bool,
    ) {
        let quiet = s
            .last_tamper_log
            .is_some_and(|t| now.since(t) < TAMPER_LOG_INTERVAL);
        if quiet {
            return;
        }
        s.last_tamper_log = Some(now);
        s.evidence.tampers = s.evidence.tampers.saturating_add(1);
        let (reason, detail) = if unwitnessed {
            (
                "no_client_input",
                "the terminal read input the client never sent; none credited",
            )
        } else {
            (
                "timestamps_set",
                "tty timestamps were set by hand; no activity credited",
            )
        };
        let ev = session_event(EventName::TamperSuspected, s)
            .with_severity(Severity::Warning)
            .field("reason", reason)
            .field("tampered", found.join(","))
            .field("detail", detail);
        self.sys.log(ev);
    }

    fn warn(&mut self, s: &mut Session, d: Deadline, now: Timestamp) {
        let remaining = Human(Duration::from_secs(
            d.at.since(now).as_millis().div_ceil(1000) as u64,
        ));
        let limit = super::deadlines::limit_for(s, d);
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
        let written = s.warnings_written();
        for t in s.ttys.iter().filter(|_| written) {
            if self.sys.write_tty(&t.name, &text) {
                delivered += 1;
            }
        }
        if written {
            s.evidence.warnings = s.evidence.warnings.saturating_add(1);
        }
        let ev = session_event(EventName::SessionWarn, s)
            .field("reason", d.reason.as_str())
            .field("remaining", remaining)
            .field("deadline", d.at.secs())
            .field("delivered", delivered);
        self.sys.log(dry_run::mark(ev, s));
    }
}
