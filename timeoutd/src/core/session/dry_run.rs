//! A session under a dry-run rule: which of its deadlines are still to be
//! logged as would-be expiries, and what a change of rule between dry-run and
//! on means for its history. Pure.

use std::time::Duration;

use crate::core::policy::Decision;
use crate::core::session::deadline::{self, Deadline, WarnMemory};
use crate::core::session::Session;

impl Session {
    /// The deadlines in force (after any reprieve), less, in dry-run, those
    /// already logged as would-be expiries: an idle deadline comes back when
    /// input moves it, the absolute one never does.
    pub fn pending_deadlines(&self) -> Vec<Deadline> {
        let measured = self.idle_measured();
        let floored = deadline::deadlines(
            &self.limits,
            self.registered_at,
            self.last_activity,
            measured,
            self.not_before,
        );
        if !self.limits.dry_run() {
            return floored;
        }
        let raw = self.raw_deadlines();
        floored
            .into_iter()
            .filter(|d| {
                !raw.iter()
                    .any(|r| r.reason == d.reason && self.evidence.dry_run.logged(r.reason, r.at))
            })
            .collect()
    }

    /// The deadlines from the session's own history, without any reprieve.
    pub fn raw_deadlines(&self) -> Vec<Deadline> {
        deadline::deadlines(
            &self.limits,
            self.registered_at,
            self.last_activity,
            self.idle_measured(),
            None,
        )
    }

    /// Notes that the deadline `d` of a dry run passed and was logged.
    pub fn dry_run_expired(&mut self, d: Deadline) {
        let raw = self
            .raw_deadlines()
            .into_iter()
            .find(|r| r.reason == d.reason)
            .map_or(d.at, |r| r.at);
        self.evidence.dry_run.record(d.reason, raw);
        self.evidence.dry_run_expiries = self.evidence.dry_run_expiries.saturating_add(1);
    }

    /// Takes the rule and limits of a new match. A session that leaves
    /// dry-run for enforcement forgets the warnings of its dry run, so that a
    /// deadline already past is announced by one warning before it is enforced.
    pub fn apply_decision(&mut self, d: Decision) {
        if self.limits.dry_run() && !d.limits.dry_run() {
            self.warned = WarnMemory::default();
        }
        self.rule = d.rule;
        self.limits = d.limits;
    }
}

/// A dry-run session is looked at at least this often (or every idle limit,
/// if shorter), so that its idle gaps are measured to about a minute and the
/// input that re-arms a logged idle deadline is seen soon. Enforced sessions
/// are looked at only when something can be due.
pub const DRY_RUN_LOOK: Duration = Duration::from_secs(60);

impl Session {
    /// The longest pause between looks at a dry-run session that measures idle time.
    pub fn dry_run_look(&self) -> Option<Duration> {
        if !self.limits.dry_run() || !self.idle_measured() {
            return None;
        }
        Some(
            self.limits
                .idle
                .map_or(DRY_RUN_LOOK, |i| i.min(DRY_RUN_LOOK)),
        )
    }

    /// Whether warnings are written to the terminals (always when enforced;
    /// in dry-run only with `dry_run_warn`).
    pub fn warnings_written(&self) -> bool {
        !self.limits.dry_run() || self.limits.dry_run_warn
    }
}
