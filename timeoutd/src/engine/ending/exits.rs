//! A session ends the moment its last process is gone (issue 16). Each step
//! of the kill ladder that signals (SIGHUP, SIGTERM) asks the host to watch
//! what it signalled: the pidfds it signalled through, or the login's
//! cgroup. When the host says they are all gone (`System::exits_seen`),
//! the engine proves the scope empty as the final step would (the cgroup
//! empty; or, without one, two complete passes over /proc that find no
//! process of the scope), logs `session_terminated` and skips the steps left.
//! A scope not proven empty (a process forked after the signal, a root
//! process spared in the cgroup) goes on down the ladder as before.
//!
//! The host also watches the leader of every live session
//! (`System::watch_leader`): when it exits the session is woken at once,
//! and the wake closes it (`leader_gone`) if nothing of it is left.

use std::time::Duration;

use crate::core::session::{KillStep, Phase, ProcRef, Session, SessionId};
use crate::core::state::record::JournalEntry;
use crate::core::time::clock::Timestamp;
use crate::engine::ending::kill::{Due, Final};
use crate::engine::wake::LEADERLESS_REWATCH;
use crate::engine::{Engine, System};

/// Exits without a cgroup are proved together, this long after the turn in
/// which the first of them was seen began (it may have happened any time
/// since): a revocation's thousand sessions end in a few passes over /proc,
/// not one pair per session, and a turn longer than this (the revocation
/// itself) waits no more.
const EXIT_SETTLE: Duration = Duration::from_millis(10);

/// A revocation looks for sessions that ended meanwhile after this many
/// sessions' own passes (each about 50 to 100 µs of CPU).
pub(in crate::engine) const ENDS_LOOK_EVERY: usize = 32;

impl<S: System> Engine<S> {
    /// Sends `sigs` to the session's targets (but not again to those in
    /// `sent_before`), logs `session_signal`, and has the host watch for
    /// them to be gone.
    pub(in crate::engine) fn send_watched(
        &mut self,
        s: &Session,
        procs: &[ProcRef],
        sigs: &[i32],
        sent_before: &[ProcRef],
    ) {
        let count = match Self::final_of(s) {
            Final::Cgroup(cg) => {
                let count = self.sys.signal_except(procs, sigs, sent_before);
                self.sys.watch_cgroup(s.id, &cg);
                count
            }
            Final::StopThenKill | Final::LeaderOnly => {
                self.sys.signal_watched(s.id, procs, sigs, sent_before)
            }
        };
        self.log_signal(s, sigs, count, None);
    }

    /// Acts on the sessions the host saw emptied, and proves the ones due;
    /// the event loop calls this on every turn, which began (its poll
    /// returned) at `turn_began`.
    pub(crate) fn on_exits(&mut self, turn_began: Timestamp) {
        let _woken = self.note_exits(turn_began);
        let now = self.sys.now();
        if self.exit_check_at.is_some_and(|at| at <= now) {
            self.exit_check_at = None;
            let ids = std::mem::take(&mut self.exited);
            self.end_proven(&ids, now);
        }
    }

    /// In a long request (a revocation of many sessions), every
    /// [`ENDS_LOOK_EVERY`] sessions: ends those whose cgroup emptied since
    /// the request began, and sends the lines held so far, so that an exit
    /// early in the request is not logged only after all of it. Exits
    /// without a cgroup wait for their shared proof after the request.
    /// The lines are sent only if a session ended: until then they would
    /// only wake syslogd while the leaders signalled need the CPUs. Returns
    /// the live sessions seen (whose leader exited).
    pub(in crate::engine) fn ends_meanwhile(&mut self) -> Vec<SessionId> {
        self.sys.look_for_exits();
        let before = self.sessions.len();
        let live = self.note_exits(self.sys.now());
        if self.sessions.len() < before {
            self.sys.send_held_log();
        }
        live
    }

    /// What the host saw exit: live sessions are woken (and returned), the
    /// ends of cgroup sessions proved now, the others queued for their
    /// shared proof.
    fn note_exits(&mut self, turn_began: Timestamp) -> Vec<SessionId> {
        let now = self.sys.now();
        let mut live = Vec::new();
        for id in self.sys.exits_seen() {
            // A live session's leader exited, or what was left after it:
            // look at the session now, or a second after the last such look.
            if self.session(id).is_some_and(Session::is_active) {
                live.push(id);
                let at = self
                    .leaderless
                    .get(&id)
                    .map_or(now, |&last| (last + LEADERLESS_REWATCH).max(now));
                // Never later than a warning or deadline already due.
                let at = self.timers.due_of(id).map_or(at, |due| due.min(at));
                self.schedule(id, at);
                continue;
            }
            let Some(s) = self.sessions.get(&id).filter(|s| signalled(s)) else {
                continue;
            };
            match Self::final_of(s) {
                Final::Cgroup(cg) => {
                    if !self.sys.cgroup_populated(&cg) {
                        self.end_proven(&[id], now);
                    }
                }
                Final::StopThenKill | Final::LeaderOnly => {
                    self.exited.push(id);
                    self.exit_check_at
                        .get_or_insert((turn_began + EXIT_SETTLE).max(now));
                }
            }
        }
        live
    }

    /// Terminates the sessions among `ids` proven empty now (for a cgroup:
    /// checked already), on shared passes over /proc; the others keep their
    /// step and timer.
    fn end_proven(&mut self, ids: &[SessionId], now: Timestamp) {
        let mut taken: Vec<(SessionId, Session)> = ids
            .iter()
            .filter_map(|id| Some((*id, self.session(*id).filter(|s| signalled(s))?.clone())))
            .collect();
        let cgroup = |s: &Session| matches!(Self::final_of(s), Final::Cgroup(_));
        let mut due: Vec<Due<'_>> = taken
            .iter_mut()
            .filter(|(_, s)| !cgroup(s))
            .filter_map(|(_, s)| match s.phase {
                Phase::Terminating { reason, .. } => Some(Due { s, reason, n: 0 }),
                Phase::Active => None,
            })
            .collect();
        let left: Vec<SessionId> = if due.is_empty() {
            Vec::new()
        } else {
            let left = self.prove_empty(&mut due);
            left.into_iter().map(|i| due[i].s.id).collect()
        };
        drop(due);
        for (id, s) in taken {
            let Phase::Terminating { reason, .. } = s.phase else {
                continue;
            };
            if left.contains(&id) {
                // The table still holds the session as it was before.
                if self.sessions.get(&id).is_none_or(|b| s.record_differs(b)) {
                    self.sys.persist(JournalEntry::Upsert(Box::new(s.record())));
                }
                self.apply(id, s, crate::engine::wake::After::Keep, None);
                continue;
            }
            let (after, next) = self.terminated(&s, reason, now);
            self.apply(id, s, after, next);
        }
    }
}

/// Whether the ladder has signalled the session (a refused login waiting
/// for its PAM stack has not).
fn signalled(s: &Session) -> bool {
    matches!(s.phase, Phase::Terminating { step, .. } if step != KillStep::Pending)
}
