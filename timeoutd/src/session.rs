//! One tracked login session and how its activity is credited. Pure.

use std::fmt;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::deadline::{Reason, WarnMemory};
use crate::policy::{Limits, LoginFacts, NottyMode, TtyClass};

/// The daemon's id for a session, unique across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A process identified so that a reused pid is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

impl TtyWatch {
    pub fn new(name: String) -> Self {
        Self {
            name,
            last_ctime: None,
        }
    }

    /// Credits input only when the kernel moved atime after the last metadata
    /// change. `touch` moves ctime along with atime, so it is never credited.
    /// With `count_output`, output (mtime) is credited the same way.
    pub fn observe(&mut self, t: TtyTimes, now: Timestamp, count_output: bool) -> Observation {
        let ctime_moved = self.last_ctime.is_some_and(|c| c != t.ctime);
        self.last_ctime = Some(t.ctime);
        let future = t.atime.max(if count_output { t.mtime } else { t.atime }) > now + FUTURE_SLACK;
        if ctime_moved || future {
            return Observation::Tampered;
        }
        let mut credited = None;
        for stamp in [Some(t.atime), count_output.then_some(t.mtime)]
            .into_iter()
            .flatten()
        {
            if stamp > t.ctime {
                credited = credited.max(Some(window_end(stamp)));
            }
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
    pub io_seen: Option<u64>,
    pub last_tamper_log: Option<Timestamp>,
    /// Warnings written: (limit, when, the deadline announced), newest last.
    pub warnings_sent: Vec<(Reason, Timestamp, Timestamp)>,
    /// Looks that found hand-set timestamps: (tty, when), newest last.
    pub tampers_seen: Vec<(String, Timestamp)>,
    /// Time between looks for a terminal that has not appeared yet.
    pub discovery_backoff: Duration,
}

impl Session {
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

    fn times(a: i64, c: i64) -> TtyTimes {
        TtyTimes {
            atime: Timestamp::from_secs(a),
            mtime: Timestamp::from_secs(a),
            ctime: Timestamp::from_secs(c),
        }
    }

    #[test]
    fn output_counts_only_when_asked() {
        let mut w = TtyWatch::new("pts/1".into());
        let now = Timestamp::from_secs(1000);
        let t = TtyTimes {
            atime: Timestamp::from_secs(950),
            mtime: Timestamp::from_secs(990),
            ctime: Timestamp::from_secs(900),
        };
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
        let mut w = TtyWatch::new("pts/1".into());
        let now = Timestamp::from_secs(1000);
        // atime 981 lies in the window [976, 984).
        assert_eq!(
            w.observe(times(981, 900), now, false),
            Observation::Input(Timestamp::from_secs(984))
        );
        assert_eq!(
            w.observe(times(984, 900), now, false),
            Observation::Input(Timestamp::from_secs(992))
        );
    }

    #[test]
    fn touch_moves_ctime_and_is_never_credited() {
        let mut w = TtyWatch::new("pts/1".into());
        let now = Timestamp::from_secs(1000);
        assert_eq!(
            w.observe(times(950, 900), now, false),
            Observation::Input(Timestamp::from_secs(952))
        );
        // `touch -a` sets atime and ctime to now.
        assert_eq!(
            w.observe(times(995, 995), now, false),
            Observation::Tampered
        );
        // Looked at again with nothing new: atime is not after ctime, so still no credit.
        assert_eq!(w.observe(times(995, 995), now, false), Observation::Nothing);
    }

    #[test]
    fn a_touch_before_the_first_look_is_not_credited() {
        let mut w = TtyWatch::new("pts/1".into());
        assert_eq!(
            w.observe(times(990, 990), Timestamp::from_secs(1000), false),
            Observation::Nothing
        );
    }

    #[test]
    fn future_atime_is_refused() {
        let mut w = TtyWatch::new("pts/1".into());
        let now = Timestamp::from_secs(1000);
        // touch -a -d 2030-01-01
        assert_eq!(
            w.observe(times(1_893_456_000, 900), now, false),
            Observation::Tampered
        );
    }

    #[test]
    fn tty_label_lists_found_ttys() {
        let mut s = Session {
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
            rule: "defaults".into(),
            limits: Limits::builtin(),
            ttys: vec![],
            last_activity: Timestamp(0),
            warned: WarnMemory::default(),
            not_before: None,
            phase: Phase::Active,
            tty_class: TtyClass::Pty,
            tty_settled: false,
            io_seen: None,
            last_tamper_log: None,
            warnings_sent: Vec::new(),
            tampers_seen: Vec::new(),
            discovery_backoff: Duration::from_millis(200),
        };
        assert_eq!(s.tty_label(), "ssh");
        s.ttys = vec![TtyWatch::new("pts/1".into()), TtyWatch::new("pts/3".into())];
        assert_eq!(s.tty_label(), "pts/1,pts/3");
    }
}
