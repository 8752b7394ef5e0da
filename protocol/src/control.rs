//! Records carried by the admin and status verbs.

use crate::wire::{DecodeError, Decoder, Encoder};

/// Whom a revocation applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    User(String),
    Group(String),
}

impl Target {
    pub(crate) fn encode(&self, e: &mut Encoder) {
        match self {
            Self::User(n) => e.u8(1).str(n),
            Self::Group(n) => e.u8(2).str(n),
        };
    }

    pub(crate) fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        match d.u8("target kind")? {
            1 => Ok(Self::User(d.string("target")?)),
            2 => Ok(Self::Group(d.string("target")?)),
            _ => Err(DecodeError::BadValue("target kind")),
        }
    }
}

/// A warning written to a session's terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningSent {
    /// "idle" or "max".
    pub reason: String,
    /// When it was written (Unix seconds).
    pub at: i64,
    /// The deadline it announced (Unix seconds).
    pub deadline: i64,
}

/// A look at a terminal whose timestamps had been set by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TamperSeen {
    pub tty: String,
    pub at: i64,
}

/// One session as `timeoutctl list`, `show` and `status` see it. Times are
/// Unix seconds; 0 means "none".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionInfo {
    pub id: u64,
    pub user: String,
    pub uid: u32,
    pub service: String,
    /// "pts/1,pts/3", or PAM_TTY until a terminal is found.
    pub tty: String,
    pub rhost: String,
    pub rule: String,
    /// "active" or "terminating".
    pub state: String,
    pub started: i64,
    pub last_activity: i64,
    pub idle_deadline: i64,
    pub max_deadline: i64,
    /// The daemon's clock when the record was made.
    pub now: i64,
    pub leader_pid: u32,
    /// Audit session id (4294967295 when the session is tracked by process subtree).
    pub audit_session: u32,
    /// Filled by `show` only.
    pub pids: Vec<u32>,
    pub warnings: Vec<WarningSent>,
    pub tampers: Vec<TamperSeen>,
    /// The session's rule is `enforce = "dry-run"`: its deadlines are only logged.
    pub dry_run: bool,
    /// The rule's daily quota in seconds (`daily`); 0: none.
    pub daily_quota: i64,
    /// Seconds of it the user has used today (all their sessions, as one).
    pub quota_used: i64,
}

fn count(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

impl SessionInfo {
    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.u64(self.id)
            .str(&self.user)
            .u32(self.uid)
            .str(&self.service)
            .str(&self.tty)
            .str(&self.rhost)
            .str(&self.rule)
            .str(&self.state)
            .i64(self.started)
            .i64(self.last_activity)
            .i64(self.idle_deadline)
            .i64(self.max_deadline)
            .i64(self.now)
            .u32(self.leader_pid)
            .u32(self.audit_session);
        e.u16(count(self.pids.len()));
        for p in self.pids.iter().take(usize::from(u16::MAX)) {
            e.u32(*p);
        }
        e.u16(count(self.warnings.len()));
        for w in self.warnings.iter().take(usize::from(u16::MAX)) {
            e.str(&w.reason).i64(w.at).i64(w.deadline);
        }
        e.u16(count(self.tampers.len()));
        for t in self.tampers.iter().take(usize::from(u16::MAX)) {
            e.str(&t.tty).i64(t.at);
        }
        e.u8(u8::from(self.dry_run));
        e.i64(self.daily_quota).i64(self.quota_used);
    }

    pub(crate) fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        let mut s = Self {
            id: d.u64("id")?,
            user: d.string("user")?,
            uid: d.u32("uid")?,
            service: d.string("service")?,
            tty: d.string("tty")?,
            rhost: d.string("rhost")?,
            rule: d.string("rule")?,
            state: d.string("state")?,
            started: d.i64("started")?,
            last_activity: d.i64("last_activity")?,
            idle_deadline: d.i64("idle_deadline")?,
            max_deadline: d.i64("max_deadline")?,
            now: d.i64("now")?,
            leader_pid: d.u32("leader_pid")?,
            audit_session: d.u32("audit_session")?,
            ..Self::default()
        };
        for _ in 0..d.u16("pids")? {
            s.pids.push(d.u32("pid")?);
        }
        for _ in 0..d.u16("warnings")? {
            s.warnings.push(WarningSent {
                reason: d.string("warning reason")?,
                at: d.i64("warning at")?,
                deadline: d.i64("warning deadline")?,
            });
        }
        for _ in 0..d.u16("tampers")? {
            s.tampers.push(TamperSeen {
                tty: d.string("tamper tty")?,
                at: d.i64("tamper at")?,
            });
        }
        s.dry_run = match d.u8("dry_run")? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError::BadValue("dry_run")),
        };
        s.daily_quota = d.i64("daily_quota")?;
        s.quota_used = d.i64("quota_used")?;
        Ok(s)
    }
}

/// An active revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationInfo {
    pub target: Target,
    pub since: i64,
    /// 0: until `unrevoke`.
    pub until: i64,
    pub reason: String,
    pub by_uid: u32,
}

impl RevocationInfo {
    pub(crate) fn encode(&self, e: &mut Encoder) {
        self.target.encode(e);
        e.i64(self.since)
            .i64(self.until)
            .str(&self.reason)
            .u32(self.by_uid);
    }

    pub(crate) fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        Ok(Self {
            target: Target::decode(d)?,
            since: d.i64("since")?,
            until: d.i64("until")?,
            reason: d.string("reason")?,
            by_uid: d.u32("by_uid")?,
        })
    }
}
