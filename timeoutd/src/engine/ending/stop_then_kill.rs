//! The final step without a cgroup, for every session due at once:
//! stop-then-kill rounds on shared passes over /proc, and the proof that a
//! scope is empty (see [`Engine::stop_then_kill_rounds`]).

use crate::core::session::{KillStep, Phase, ProcRef, Session, SessionId};
use crate::core::time::clock::Timestamp;
use crate::engine::ending::kill::{note_spared, Due, Final, Split, KILL_WAIT};
use crate::engine::wake::After;
use crate::engine::{Engine, System};

/// Scans of one stop-then-kill round before it kills what it has stopped.
const MAX_STOP_SCANS: u32 = 200;
/// Scans of one round's proof that nothing is left (a pid handed out and
/// not yet readable makes a scan prove nothing; a busy host needs a few).
const MAX_PROOF_SCANS: u32 = 16;

impl<S: System> Engine<S> {
    /// Whether a due wake-up is a stop-then-kill round, which
    /// [`Engine::stop_then_kill_rounds`] runs with the others due with it.
    pub(in crate::engine) fn is_stop_then_kill_round(s: &Session) -> bool {
        matches!(
            s.phase,
            Phase::Terminating {
                step: KillStep::Terminate | KillStep::Kill(_),
                ..
            }
        ) && Self::final_of(s) == Final::StopThenKill
    }

    /// One stop-then-kill round for every session in `due`, on shared scans
    /// of /proc (one scan per step for all of them, not one per session).
    /// First the proof that nothing is left: two scans in a row find no
    /// target, and between them they read every pid handed out (see
    /// `System::last_two_scans_complete`); those sessions are terminated.
    /// The others: SIGSTOP to every target not yet stopped, scanning again
    /// until two complete scans in a row find every target stopped (none can
    /// fork any more, and none ran unseen), then SIGKILL to all; their next
    /// round proves them empty. Returns what becomes of each, in order.
    pub(in crate::engine) fn stop_then_kill_rounds(
        &mut self,
        due: &mut [Due<'_>],
        now: Timestamp,
    ) -> Vec<(After, Option<Timestamp>)> {
        let left = self.prove_empty(due);
        let mut stopped_before = false;
        let mut splits: Vec<Split> = Vec::new();
        for _ in 0..MAX_STOP_SCANS {
            self.sys.rescan();
            splits = left
                .iter()
                .map(|&i| self.split(due[i].s, due[i].reason))
                .collect();
            let running: Vec<ProcRef> = splits
                .iter()
                .flat_map(|sp| sp.targets.iter().map(|p| p.proc))
                .filter(|p| !self.sys.stopped(*p))
                .collect();
            if running.is_empty() {
                if stopped_before && self.sys.last_two_scans_complete() {
                    break;
                }
                stopped_before = true;
                continue;
            }
            stopped_before = false;
            self.sys.signal(&running, &[libc::SIGSTOP]);
        }
        let mut out: Vec<Option<(After, Option<Timestamp>)>> =
            (0..due.len()).map(|_| None).collect();
        for (&i, split) in left.iter().zip(&splits) {
            let d = &mut due[i];
            note_spared(d.s, &split.spared);
            let procs: Vec<ProcRef> = split.targets.iter().map(|p| p.proc).collect();
            let killed = self.sys.signal(&procs, &[libc::SIGKILL]);
            if d.n == 0 {
                self.log_signal(d.s, &[libc::SIGSTOP, libc::SIGKILL], killed, None);
            }
            out[i] = Some(self.next_round(d.s, d.reason, d.n, now, KILL_WAIT));
        }
        self.sys.rescan();
        due.iter_mut()
            .zip(out)
            .map(|(d, o)| o.unwrap_or_else(|| self.terminated(d.s, d.reason, now)))
            .collect()
    }

    /// The stop-then-kill rounds due now, together (see
    /// [`Engine::stop_then_kill_rounds`]); each session's changes are
    /// persisted as a wake-up's are.
    pub(in crate::engine) fn run_kill_rounds(&mut self, ids: &[SessionId], now: Timestamp) {
        let mut taken: Vec<(SessionId, Session)> = ids
            .iter()
            .filter_map(|id| Some((*id, self.session(*id)?.clone())))
            .collect();
        let mut due: Vec<Due<'_>> = taken
            .iter_mut()
            .filter_map(|(_, s)| match s.phase {
                Phase::Terminating { reason, step } => {
                    let n = match step {
                        KillStep::Kill(n) => n,
                        _ => 0,
                    };
                    Some(Due { s, reason, n })
                }
                Phase::Active => None,
            })
            .collect();
        let results = self.stop_then_kill_rounds(&mut due, now);
        drop(due);
        for ((id, s), (after, next)) in taken.into_iter().zip(results) {
            self.put_back(id, s, after, next);
        }
    }

    /// The indexes in `due` of sessions not proven empty (see
    /// [`Engine::stop_then_kill_rounds`]); a scan that finds a target
    /// decides that session at once.
    pub(in crate::engine) fn prove_empty(&mut self, due: &mut [Due<'_>]) -> Vec<usize> {
        let mut empty_before = vec![false; due.len()];
        let mut decided: Vec<Option<bool>> = vec![None; due.len()];
        for _ in 0..MAX_PROOF_SCANS {
            if decided.iter().all(Option::is_some) {
                break;
            }
            self.sys.rescan();
            let mut found = Vec::new();
            for (i, d) in due.iter_mut().enumerate() {
                if decided[i].is_some() {
                    continue;
                }
                let split = self.split(d.s, d.reason);
                note_spared(d.s, &split.spared);
                found.push((i, !split.targets.is_empty()));
            }
            let complete = self.sys.last_two_scans_complete();
            for (i, any) in found {
                if any {
                    decided[i] = Some(false);
                } else if empty_before[i] && complete {
                    decided[i] = Some(true);
                } else {
                    empty_before[i] = true;
                }
            }
        }
        (0..due.len())
            .filter(|&i| decided[i] != Some(true))
            .collect()
    }
}
