//! One tracked login session and how its activity is credited. Pure.

use std::fmt;
use std::time::Duration;

use crate::core::clock::Timestamp;
use crate::core::deadline::{Reason, WarnMemory};
use crate::core::policy::{Limits, LoginFacts, NottyMode, Policy, TtyClass};
use crate::core::record::SessionRecord;

/// The daemon's id for a session, unique across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A process identified by pid and start time (field 22 of /proc/PID/stat),
/// so that a reused pid is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcRef {
    pub pid: u32,
    pub start_time: u64,
}

/// Which processes belong to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every process carrying this audit session id (set by pam_loginuid).
    AuditSession(u32),
    /// The subtree of the leader: the service did not set a new audit session (su, sudo).
    Subtree,
}

impl fmt::Display for Scope {
    /// `audit:ID` or `subtree`, as events show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::AuditSession(id) => write!(f, "audit:{id}"),
            Scope::Subtree => f.write_str("subtree"),
        }
    }
}

/// Who logged in, as the PAM module reported it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Login {
    pub user: String,
    pub uid: u32,
    pub service: String,
    /// PAM_TTY ("ssh" for sshd, which opens the session before the pty exists).
    pub pam_tty: String,
    pub rhost: String,
    pub ruser: String,
    /// Primary and supplementary groups, resolved through NSS at session open.
    pub groups: Vec<String>,
}

/// The three timestamps of a terminal device, in wall-clock milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtyTimes {
    /// Last read that returned data: user input (8-second steps).
    pub atime: Timestamp,
    /// Last write: output.
    pub mtime: Timestamp,
    /// Last metadata change: chmod, chown, or `touch`. tty I/O never moves it.
    pub ctime: Timestamp,
    /// Owner of the device node.
    pub owner: u32,
}

/// What one look at a tty told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The kernel recorded input; credit it at this time.
    Input(Timestamp),
    /// No input since the last metadata change.
    Nothing,
    /// The timestamps were set by hand (ctime moved, or atime is in the future).
    Tampered,
}

/// The kernel stores a new atime only when it enters a new 8-second window,
/// so input may have gone on until the end of the window that atime opened.
pub const KERNEL_TTY_STEP_SECS: i64 = 8;

/// Tolerance for clock granularity before an atime counts as "in the future".
const FUTURE_SLACK: Duration = Duration::from_secs(2);

/// A terminal measured for a session, with what we saw of it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtyWatch {
    /// Device name relative to /dev, e.g. "pts/3".
    pub name: String,
    last_ctime: Option<Timestamp>,
    /// (atime, mtime) as they were when hand-set timestamps were seen: those
    /// values are never credited; only a later move by the kernel is.
    tainted: Option<(Timestamp, Timestamp)>,
    /// Until then, ctime changes are sshd still setting the new pty up
    /// (chown, chmod), not tampering.
    settle_until: Timestamp,
}

/// How long after a terminal is found its metadata may still change legitimately.
pub const TTY_SETTLE: Duration = Duration::from_secs(10);

impl TtyWatch {
    /// A terminal first seen at `found_at`.
    pub fn new(name: String, found_at: Timestamp) -> Self {
        Self {
            name,
            last_ctime: None,
            tainted: None,
            settle_until: found_at + TTY_SETTLE,
        }
    }

    /// Credits the kernel's input timestamp (and output, with `count_output`)
    /// unless the timestamps were set by hand:
    /// - `touch` moves ctime; tty I/O never does. A look that finds ctime
    ///   moved credits nothing, and the timestamps it found stay uncredited
    ///   until the kernel moves them again.
    /// - a timestamp in the future is refused the same way.
    ///
    /// A credited timestamp counts at the end of its 8-second window, since
    /// the kernel only records the first read of each window. That includes
    /// a fresh pty's creation time: reads in its first window move nothing.
    /// In the first [`TTY_SETTLE`] after the terminal is found, ctime changes
    /// are sshd's own set-up and are not held against the session.
    pub fn observe(&mut self, t: TtyTimes, now: Timestamp, count_output: bool) -> Observation {
        let settling = now < self.settle_until;
        let ctime_moved = !settling && self.last_ctime.is_some_and(|c| c != t.ctime);
        self.last_ctime = Some(t.ctime);
        let newest = if count_output {
            t.atime.max(t.mtime)
        } else {
            t.atime
        };
        if ctime_moved || newest > now + FUTURE_SLACK {
            self.tainted = Some((t.atime, t.mtime));
            return Observation::Tampered;
        }
        let (taint_a, taint_m) = match self.tainted {
            Some((a, m)) => (Some(a), Some(m)),
            None => (None, None),
        };
        let mut credited = None;
        if Some(t.atime) != taint_a {
            credited = Some(window_end(t.atime));
        }
        if count_output && Some(t.mtime) != taint_m {
            credited = credited.max(Some(window_end(t.mtime)));
        }
        credited.map_or(Observation::Nothing, Observation::Input)
    }
}

/// The end of the 8-second window a kernel tty timestamp opened.
fn window_end(stamp: Timestamp) -> Timestamp {
    let start = stamp.secs() - stamp.secs().rem_euclid(KERNEL_TTY_STEP_SECS);
    Timestamp::from_secs(start + KERNEL_TTY_STEP_SECS)
}

/// The signal step a terminating session is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillStep {
    /// Nothing sent yet: a refused login is given a moment to be turned
    /// away by the PAM stack itself before its processes are signalled.
    Pending,
    /// SIGHUP and SIGCONT sent; waiting `grace`.
    HangUp,
    /// SIGTERM sent.
    Terminate,
    /// SIGKILL sent this many times.
    Kill(u32),
}

/// Why a session is being ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Expired(Reason),
    /// `timeoutctl kill` by this uid.
    Killed {
        by_uid: u32,
    },
    /// `timeoutctl revoke` by this uid.
    Revoked {
        by_uid: u32,
    },
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired(r) => r.as_str(),
            Self::Killed { .. } => "killed",
            Self::Revoked { .. } => "revoked",
        }
    }
}

/// The first pause before looking again for a terminal that has not appeared
/// yet (sshd opens the session before the pty exists); it doubles after each look.
pub const DISCOVERY_FIRST: Duration = Duration::from_millis(200);

/// How many warnings and tamper observations a session remembers for `show`.
pub const HISTORY_LIMIT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Active,
    Terminating { reason: EndReason, step: KillStep },
}

/// Everything the daemon tracks about one session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub login: Login,
    pub leader: ProcRef,
    pub scope: Scope,
    pub registered_at: Timestamp,
    pub rule: String,
    pub limits: Limits,
    pub ttys: Vec<TtyWatch>,
    /// Latest credited input (registration time until there is any).
    pub last_activity: Timestamp,
    pub warned: WarnMemory,
    /// No deadline is enforced before this (see `deadline::reprieve`).
    pub not_before: Option<Timestamp>,
    pub phase: Phase,
    /// The kind of terminal; provisional until `tty_settled`.
    pub tty_class: TtyClass,
    pub tty_settled: bool,
    /// Sum of the session's process I/O at the last look (sessions without a terminal).
    pub io_seen: Vec<(ProcRef, u64)>,
    pub last_tamper_log: Option<Timestamp>,
    /// Warnings written: (limit, when, the deadline announced), newest last.
    pub warnings_sent: Vec<(Reason, Timestamp, Timestamp)>,
    /// Looks that found hand-set timestamps: (tty, when), newest last.
    pub tampers_seen: Vec<(String, Timestamp)>,
    /// Time between looks for a terminal that has not appeared yet.
    pub discovery_backoff: Duration,
    /// Taken over from a login opened while the daemon was down.
    pub adopted: bool,
}

impl Session {
    /// A session as it starts to be watched: its durable part (new at
    /// registration, read back after a restart, or built for an adopted
    /// login), matched against `policy`, with nothing yet learnt at `now`.
    pub fn new(record: SessionRecord, policy: &Policy, now: Timestamp) -> Session {
        let mut s = Session {
            id: record.id,
            login: record.login,
            leader: record.leader,
            scope: record.scope,
            registered_at: record.registered_at,
            rule: String::new(),
            limits: Limits::builtin(),
            ttys: record
                .ttys
                .into_iter()
                .map(|name| TtyWatch::new(name, now))
                .collect(),
            last_activity: record.last_activity,
            warned: WarnMemory::default(),
            not_before: None,
            phase: Phase::Active,
            tty_class: record.tty_class,
            tty_settled: record.tty_settled,
            io_seen: Vec::new(),
            last_tamper_log: None,
            warnings_sent: Vec::new(),
            tampers_seen: Vec::new(),
            discovery_backoff: DISCOVERY_FIRST,
            adopted: record.adopted,
        };
        let decision = policy.decide(&s.facts());
        s.rule = decision.rule;
        s.limits = decision.limits;
        s
    }

    /// The durable form of the session.
    pub fn record(&self) -> SessionRecord {
        SessionRecord {
            id: self.id,
            login: self.login.clone(),
            leader: self.leader,
            scope: self.scope,
            registered_at: self.registered_at,
            last_activity: self.last_activity,
            tty_class: self.tty_class,
            tty_settled: self.tty_settled,
            ttys: self.ttys.iter().map(|t| t.name.clone()).collect(),
            adopted: self.adopted,
        }
    }

    /// The ttys as one log value: "pts/1,pts/3", or the PAM tty until one is found.
    pub fn tty_label(&self) -> String {
        if self.ttys.is_empty() {
            self.login.pam_tty.clone()
        } else {
            self.ttys
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        }
    }

    /// Appends to a bounded history list.
    pub fn remember<T>(list: &mut Vec<T>, item: T) {
        if list.len() >= HISTORY_LIMIT {
            list.remove(0);
        }
        list.push(item);
    }

    pub fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }

    /// What the policy matches on.
    pub fn facts(&self) -> LoginFacts {
        LoginFacts {
            user: self.login.user.clone(),
            groups: self.login.groups.clone(),
            service: self.login.service.clone(),
            rhost: self.login.rhost.clone(),
            tty: self.tty_class,
        }
    }

    /// Whether idle time is measured at all: from the terminals, or from
    /// process I/O for a session that has none (unless the rule says max-only).
    pub fn idle_measured(&self) -> bool {
        if !self.ttys.is_empty() {
            return true;
        }
        self.tty_settled && self.tty_class == TtyClass::None && self.limits.notty == NottyMode::Io
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(a_ms: i64, m_ms: i64, c_ms: i64) -> TtyTimes {
        TtyTimes {
            atime: Timestamp(a_ms),
            mtime: Timestamp(m_ms),
            ctime: Timestamp(c_ms),
            owner: 0,
        }
    }

    #[test]
    fn output_counts_only_when_asked() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        let now = Timestamp::from_secs(1000);
        let t = at(950_000, 990_000, 900_500);
        assert_eq!(
            w.observe(t, now, false),
            Observation::Input(Timestamp::from_secs(952))
        );
        assert_eq!(
            w.observe(t, now, true),
            Observation::Input(Timestamp::from_secs(992))
        );
    }

    #[test]
    fn kernel_input_is_credited_at_the_end_of_its_window() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        let now = Timestamp::from_secs(1000);
        // atime 981 lies in the window [976, 984).
        assert_eq!(
            w.observe(at(981_000, 0, 900_500), now, false),
            Observation::Input(Timestamp::from_secs(984))
        );
        assert_eq!(
            w.observe(at(984_000, 0, 900_500), now, false),
            Observation::Input(Timestamp::from_secs(992))
        );
    }

    #[test]
    fn a_fresh_ptys_first_window_counts() {
        // Created at 990.2 (all three times), chowned at 990.3: reads until 992
        // (the end of the window [984, 992)) cannot move atime, yet are input.
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        let t = at(990_200, 990_200, 990_300);
        assert_eq!(
            w.observe(t, Timestamp::from_secs(991), false),
            Observation::Input(Timestamp::from_secs(992))
        );
        // Input in the same second as the chown moves atime to 990.000 < ctime: still counted.
        let mut w = TtyWatch::new("pts/2".into(), Timestamp(0));
        assert_eq!(
            w.observe(
                at(993_000, 993_000, 993_400),
                Timestamp::from_secs(994),
                false
            ),
            Observation::Input(Timestamp::from_secs(1000))
        );
    }

    #[test]
    fn touch_is_never_credited_even_on_a_later_look() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        let now = Timestamp::from_secs(1000);
        assert_eq!(
            w.observe(at(950_000, 950_000, 900_500), now, false),
            Observation::Input(Timestamp::from_secs(952))
        );
        // `touch -a` sets atime and ctime to now.
        let touched = at(995_123, 950_000, 995_123);
        assert_eq!(w.observe(touched, now, false), Observation::Tampered);
        // Looked at again with nothing new: the touched atime stays uncredited.
        assert_eq!(
            w.observe(touched, Timestamp::from_secs(1005), false),
            Observation::Nothing
        );
        // The kernel moves atime on real input later: credited again.
        assert_eq!(
            w.observe(
                at(1_008_000, 950_000, 995_123),
                Timestamp::from_secs(1010),
                false
            ),
            Observation::Input(Timestamp::from_secs(1016))
        );
    }

    #[test]
    fn set_up_changes_right_after_discovery_are_not_tampering() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp::from_secs(990));
        // First look before sshd's chown, then the chown: still settling.
        assert_eq!(
            w.observe(
                at(990_200, 990_200, 990_200),
                Timestamp::from_secs(990),
                false
            ),
            Observation::Input(Timestamp::from_secs(992))
        );
        assert_eq!(
            w.observe(
                at(990_200, 990_200, 990_700),
                Timestamp::from_secs(991),
                false
            ),
            Observation::Input(Timestamp::from_secs(992))
        );
        // After the settle time a ctime change is tampering again.
        assert_eq!(
            w.observe(
                at(1_001_000, 0, 1_001_000),
                Timestamp::from_secs(1002),
                false
            ),
            Observation::Tampered
        );
    }

    #[test]
    fn future_atime_is_refused_until_the_kernel_moves_it() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        let now = Timestamp::from_secs(1000);
        // touch -a -d 2030-01-01 before the first look (ctime = now, too).
        let future = at(1_893_456_000_000, 0, 999_500);
        assert_eq!(w.observe(future, now, false), Observation::Tampered);
        assert_eq!(
            w.observe(future, Timestamp::from_secs(1001), false),
            Observation::Tampered
        );
        // Real input: the kernel replaces the future atime with now.
        assert_eq!(
            w.observe(at(1_002_000, 0, 999_500), Timestamp::from_secs(1003), false),
            Observation::Input(Timestamp::from_secs(1008))
        );
    }

    #[test]
    fn tty_label_lists_found_ttys() {
        let record = SessionRecord {
            id: SessionId(1),
            login: Login {
                pam_tty: "ssh".into(),
                ..Login::default()
            },
            leader: ProcRef {
                pid: 1,
                start_time: 1,
            },
            scope: Scope::Subtree,
            registered_at: Timestamp(0),
            last_activity: Timestamp(0),
            tty_class: TtyClass::Pty,
            tty_settled: false,
            ttys: Vec::new(),
            adopted: false,
        };
        let mut s = Session::new(record, &Policy::new(Limits::builtin()), Timestamp(0));
        assert_eq!(s.tty_label(), "ssh");
        s.ttys = vec![
            TtyWatch::new("pts/1".into(), Timestamp(0)),
            TtyWatch::new("pts/3".into(), Timestamp(0)),
        ];
        assert_eq!(s.tty_label(), "pts/1,pts/3");
    }
}
