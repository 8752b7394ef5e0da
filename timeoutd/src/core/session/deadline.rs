//! Deadline arithmetic: given a session's limits, its history and the time,
//! what is the next thing to do and when. Pure: no clock, no I/O.

use std::time::Duration;

use crate::core::policy::Limits;
use crate::core::time::clock::Timestamp;

/// Which limit a deadline belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Idle,
    Max,
    /// The OpenSSH certificate's `valid_before` (`end_at_cert_expiry`).
    Cert,
    /// An administrator's `timeoutctl deadline`.
    Deadline,
    /// pam_systemd's `systemd.runtime_max_sec`, set by an earlier PAM module.
    RuntimeMax,
    /// The rule's time-of-day window (`hours`) closes.
    Window,
    /// The user's daily quota (`daily`) runs out.
    Quota,
}

impl Reason {
    /// The value of `reason=` in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Max => "max",
            Self::Cert => "cert_expired",
            Self::Deadline => "deadline",
            Self::RuntimeMax => "runtime_max",
            Self::Window => "window",
            Self::Quota => "quota",
        }
    }

    /// Words for the user's terminal.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Idle => "idle limit",
            Self::Max => "absolute limit",
            Self::Cert => "certificate expiry",
            Self::Deadline => "administrator's deadline",
            Self::RuntimeMax => "runtime limit",
            Self::Window => "login hours",
            Self::Quota => "daily quota",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub reason: Reason,
    pub at: Timestamp,
}

/// The deadlines in force. The idle one exists only when idle time is measured.
/// No deadline falls before `not_before` (a reprieve, so that a deadline found
/// already past, after a reload or a restart, is still warned about first).
pub fn deadlines(
    limits: &Limits,
    registered_at: Timestamp,
    last_activity: Timestamp,
    idle_measured: bool,
    not_before: Option<Timestamp>,
) -> Vec<Deadline> {
    let floor = |at: Timestamp| not_before.map_or(at, |nb| at.max(nb));
    let mut out = Vec::with_capacity(2);
    if let (Some(idle), true) = (limits.idle, idle_measured) {
        out.push(Deadline {
            reason: Reason::Idle,
            at: floor(last_activity.max(registered_at) + idle),
        });
    }
    if let Some(max) = limits.max {
        out.push(Deadline {
            reason: Reason::Max,
            at: floor(registered_at + max),
        });
    }
    out
}

/// Absolute deadlines that do not come from the rule's limits: the
/// certificate's end, an administrator's deadline, a runtime limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Absolute {
    pub cert: Option<Timestamp>,
    pub deadline: Option<Timestamp>,
    pub runtime_max: Option<Timestamp>,
    /// When the rule's time-of-day window closes.
    pub window: Option<Timestamp>,
    /// When the user's daily quota runs out.
    pub quota: Option<Timestamp>,
}

/// `ds` with the absolute deadlines added, under the same `not_before` floor.
pub fn with_absolute(
    mut ds: Vec<Deadline>,
    abs: &Absolute,
    not_before: Option<Timestamp>,
) -> Vec<Deadline> {
    let floor = |at: Timestamp| not_before.map_or(at, |nb| at.max(nb));
    for (reason, at) in [
        (Reason::Cert, abs.cert),
        (Reason::Deadline, abs.deadline),
        (Reason::RuntimeMax, abs.runtime_max),
        (Reason::Window, abs.window),
        (Reason::Quota, abs.quota),
    ] {
        if let Some(at) = at {
            ds.push(Deadline {
                reason,
                at: floor(at),
            });
        }
    }
    ds
}

/// A deadline that has passed although no warning was ever written for it
/// (a shorter limit after a reload, a deadline that passed while the daemon
/// was down) gets a reprieve: the session ends after the shortest warning.
pub fn reprieve(
    deadlines: &[Deadline],
    warn: &[Duration],
    memory: &WarnMemory,
    now: Timestamp,
) -> Option<Timestamp> {
    let shortest = warn.iter().min()?;
    deadlines
        .iter()
        .any(|d| d.at <= now && !memory.any_sent(*d))
        .then(|| now + *shortest)
}

/// The warnings already written, per limit: for which deadline, and the
/// shortest offset sent. Offsets at least that long count as sent too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarnMemory {
    idle: Option<(Timestamp, Duration)>,
    max: Option<(Timestamp, Duration)>,
    cert: Option<(Timestamp, Duration)>,
    deadline: Option<(Timestamp, Duration)>,
    runtime_max: Option<(Timestamp, Duration)>,
    window: Option<(Timestamp, Duration)>,
    quota: Option<(Timestamp, Duration)>,
}

impl WarnMemory {
    fn slot(&self, reason: Reason) -> Option<(Timestamp, Duration)> {
        match reason {
            Reason::Idle => self.idle,
            Reason::Max => self.max,
            Reason::Cert => self.cert,
            Reason::Deadline => self.deadline,
            Reason::RuntimeMax => self.runtime_max,
            Reason::Window => self.window,
            Reason::Quota => self.quota,
        }
    }

    pub fn record(&mut self, d: Deadline, offset: Duration) {
        let slot = match d.reason {
            Reason::Idle => &mut self.idle,
            Reason::Max => &mut self.max,
            Reason::Cert => &mut self.cert,
            Reason::Deadline => &mut self.deadline,
            Reason::RuntimeMax => &mut self.runtime_max,
            Reason::Window => &mut self.window,
            Reason::Quota => &mut self.quota,
        };
        *slot = Some((d.at, offset));
    }

    /// Whether the warning `offset` before `d` was already written.
    pub fn sent(&self, d: Deadline, offset: Duration) -> bool {
        self.slot(d.reason)
            .is_some_and(|(at, shortest)| at == d.at && offset >= shortest)
    }

    /// How many warnings were sent for the deadline now in force (0 or more).
    pub fn any_sent(&self, d: Deadline) -> bool {
        self.slot(d.reason).is_some_and(|(at, _)| at == d.at)
    }
}

/// What to do next for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A deadline has passed: end the session.
    Expire(Deadline),
    /// Write the warning `offset` before `deadline` now.
    Warn {
        deadline: Deadline,
        offset: Duration,
    },
    /// Nothing is due before this time.
    WaitUntil(Timestamp),
    /// No limit applies.
    Nothing,
}

/// Decides the next step. `warn` offsets may be in any order.
///
/// When several warnings of one deadline are due at once (a late wake-up), only
/// the most urgent is written: one warning, not a burst.
pub fn next_step(
    deadlines: &[Deadline],
    warn: &[Duration],
    memory: &WarnMemory,
    now: Timestamp,
) -> Step {
    if let Some(d) = deadlines
        .iter()
        .filter(|d| d.at <= now)
        .min_by_key(|d| d.at)
    {
        return Step::Expire(*d);
    }
    let mut due: Option<(Deadline, Duration)> = None;
    let mut wake: Option<Timestamp> = None;
    for d in deadlines {
        for &w in warn.iter().filter(|w| !memory.sent(*d, **w)) {
            let at = d.at - w;
            if at <= now {
                let better = match due {
                    None => true,
                    Some((prev, prev_w)) => (d.at, w) < (prev.at, prev_w),
                };
                if better {
                    due = Some((*d, w));
                }
            } else {
                wake = Some(wake.map_or(at, |t| t.min(at)));
            }
        }
        wake = Some(wake.map_or(d.at, |t| t.min(d.at)));
    }
    match (due, wake) {
        (Some((deadline, offset)), _) => Step::Warn { deadline, offset },
        (None, Some(t)) => Step::WaitUntil(t),
        (None, None) => Step::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    fn limits(idle: Option<u64>, max: Option<u64>, warn: &[u64]) -> Limits {
        Limits {
            idle: idle.map(secs),
            max: max.map(secs),
            warn: warn.iter().copied().map(secs).collect(),
            ..Limits::builtin()
        }
    }

    /// Drives a session second by second and records what happened when.
    fn simulate(l: &Limits, inputs: &[i64], idle_measured: bool, until: i64) -> Vec<(i64, String)> {
        let mut memory = WarnMemory::default();
        let mut last = t(0);
        let mut log = Vec::new();
        for now_s in 0..=until {
            if inputs.contains(&now_s) {
                last = t(now_s);
            }
            let now = t(now_s);
            loop {
                let ds = deadlines(l, t(0), last, idle_measured, None);
                match next_step(&ds, &l.warn, &memory, now) {
                    Step::Expire(d) => {
                        log.push((now_s, format!("expire {}", d.reason.as_str())));
                        return log;
                    }
                    Step::Warn { deadline, offset } => {
                        memory.record(deadline, offset);
                        log.push((
                            now_s,
                            format!("warn {} {}", deadline.reason.as_str(), offset.as_secs()),
                        ));
                    }
                    Step::WaitUntil(at) => {
                        assert!(at > now, "wait target must be in the future");
                        break;
                    }
                    Step::Nothing => break,
                }
            }
        }
        log
    }

    #[test]
    fn idle_session_is_warned_then_expired_to_the_second() {
        let l = limits(Some(15), None, &[10]);
        let log = simulate(&l, &[], true, 100);
        assert_eq!(
            log,
            [(5, "warn idle 10".into()), (15, "expire idle".into())]
        );
    }

    #[test]
    fn input_moves_the_idle_deadline_and_rearms_warnings() {
        let l = limits(Some(15), None, &[10]);
        let log = simulate(&l, &[7], true, 100);
        assert_eq!(
            log,
            [
                (5, "warn idle 10".into()),
                (12, "warn idle 10".into()),
                (22, "expire idle".into())
            ]
        );
    }

    #[test]
    fn active_session_ends_at_its_absolute_limit() {
        let l = limits(Some(15), Some(30), &[10]);
        let inputs: Vec<i64> = (0..100).step_by(3).collect();
        let log = simulate(&l, &inputs, true, 100);
        assert_eq!(log, [(20, "warn max 10".into()), (30, "expire max".into())]);
    }

    #[test]
    fn several_offsets_fire_in_order() {
        let l = limits(None, Some(600), &[300, 60]);
        let log = simulate(&l, &[], true, 1000);
        assert_eq!(
            log,
            [
                (300, "warn max 300".into()),
                (540, "warn max 60".into()),
                (600, "expire max".into())
            ]
        );
    }

    #[test]
    fn idle_is_ignored_when_not_measured() {
        let l = limits(Some(15), None, &[10]);
        assert!(simulate(&l, &[], false, 100).is_empty());
        assert_eq!(
            next_step(
                &deadlines(&l, t(0), t(0), false, None),
                &l.warn,
                &WarnMemory::default(),
                t(50)
            ),
            Step::Nothing
        );
    }

    #[test]
    fn a_late_wake_sends_one_warning_not_a_burst() {
        let l = limits(None, Some(600), &[300, 60]);
        let ds = deadlines(&l, t(0), t(0), true, None);
        let mut m = WarnMemory::default();
        let step = next_step(&ds, &l.warn, &m, t(550));
        assert_eq!(
            step,
            Step::Warn {
                deadline: ds[0],
                offset: secs(60)
            }
        );
        m.record(ds[0], secs(60));
        assert_eq!(next_step(&ds, &l.warn, &m, t(550)), Step::WaitUntil(t(600)));
    }

    #[test]
    fn a_deadline_found_already_past_is_warned_before_it_is_enforced() {
        let l = limits(Some(60), None, &[30, 10]);
        let m = WarnMemory::default();
        let now = t(500);
        let ds = deadlines(&l, t(0), t(0), true, None);
        let floor = reprieve(&ds, &l.warn, &m, now);
        assert_eq!(floor, Some(t(510)));
        let ds = deadlines(&l, t(0), t(0), true, floor);
        assert_eq!(
            next_step(&ds, &l.warn, &m, now),
            Step::Warn {
                deadline: ds[0],
                offset: secs(10)
            }
        );
        // Without warnings configured there is nothing to wait for.
        assert_eq!(reprieve(&ds, &[], &m, now), None);
    }

    #[test]
    fn absolute_deadlines_are_warned_and_the_earliest_ends_the_session() {
        let l = limits(Some(600), Some(3600), &[30, 10]);
        let abs = Absolute {
            cert: Some(t(100)),
            deadline: Some(t(80)),
            runtime_max: Some(t(200)),
            ..Absolute::default()
        };
        let mut m = WarnMemory::default();
        let mut log = Vec::new();
        for now_s in 0..=300 {
            let ds = with_absolute(deadlines(&l, t(0), t(now_s), true, None), &abs, None);
            match next_step(&ds, &l.warn, &m, t(now_s)) {
                Step::Expire(d) => {
                    log.push((now_s, format!("expire {}", d.reason.as_str())));
                    break;
                }
                Step::Warn { deadline, offset } => {
                    m.record(deadline, offset);
                    log.push((
                        now_s,
                        format!("warn {} {}", deadline.reason.as_str(), offset.as_secs()),
                    ));
                }
                _ => {}
            }
        }
        assert_eq!(
            log,
            [
                (50, "warn deadline 30".into()),
                // Both due at 70: the more urgent first, the other on the next look.
                (70, "warn deadline 10".into()),
                (71, "warn cert_expired 30".into()),
                (80, "expire deadline".into()),
            ]
        );
    }

    #[test]
    fn a_certificate_deadline_alone_is_enforced_without_other_limits() {
        let l = limits(None, None, &[10]);
        let abs = Absolute {
            cert: Some(t(40)),
            ..Absolute::default()
        };
        let ds = with_absolute(deadlines(&l, t(0), t(0), true, None), &abs, None);
        let m = WarnMemory::default();
        assert_eq!(next_step(&ds, &l.warn, &m, t(5)), Step::WaitUntil(t(30)));
        assert!(matches!(
            next_step(&ds, &l.warn, &m, t(40)),
            Step::Expire(Deadline {
                reason: Reason::Cert,
                ..
            })
        ));
        assert_eq!(Reason::Cert.as_str(), "cert_expired");
        assert_eq!(Reason::RuntimeMax.as_str(), "runtime_max");
        assert_eq!(Reason::Deadline.as_str(), "deadline");
    }

    #[test]
    fn an_absolute_deadline_found_already_past_gets_a_reprieve() {
        let l = limits(None, None, &[10]);
        let abs = Absolute {
            deadline: Some(t(50)),
            ..Absolute::default()
        };
        let m = WarnMemory::default();
        let ds = with_absolute(Vec::new(), &abs, None);
        let floor = reprieve(&ds, &l.warn, &m, t(100));
        assert_eq!(floor, Some(t(110)));
        let ds = with_absolute(Vec::new(), &abs, floor);
        assert!(matches!(
            next_step(&ds, &l.warn, &m, t(100)),
            Step::Warn { offset, .. } if offset == secs(10)
        ));
    }

    #[test]
    fn earliest_deadline_wins() {
        let l = limits(Some(20), Some(30), &[]);
        let ds = deadlines(&l, t(0), t(0), true, None);
        assert_eq!(
            next_step(&ds, &[], &WarnMemory::default(), t(40)),
            Step::Expire(ds[0])
        );
        assert_eq!(
            next_step(&ds, &[], &WarnMemory::default(), t(10)),
            Step::WaitUntil(t(20))
        );
    }
}
