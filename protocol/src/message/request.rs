//! Requests from a client to the daemon, and their codec.

use super::kind;
use crate::control::Target;
use crate::identity::AuthFacts;
use crate::wire::{DecodeError, Decoder, Encoder};

/// Everything the PAM module knows about a session when it opens.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registration {
    pub user: String,
    pub uid: u32,
    pub service: String,
    /// PAM_TTY as given by the application ("ssh" for sshd, "tty1", "/dev/pts/3", ...).
    pub tty: String,
    pub rhost: String,
    pub ruser: String,
    /// The process that called `pam_open_session` (sshd's `[priv]` monitor, `login`, `su`).
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat` for `pid`, so a reused pid is never mistaken for it.
    pub start_time: u64,
    /// `/proc/PID/loginuid` of the caller (4294967295 when unset).
    pub loginuid: u32,
    /// `/proc/PID/sessionid` of the caller (4294967295 when unset).
    pub sessionid: u32,
    /// How the user authenticated (sshd's `SSH_AUTH_INFO_0`, certificates,
    /// runtime_max); boxed so that a request stays small where it is queued.
    pub auth: Box<AuthFacts>,
}

/// Identifies a session at close time: the same process that opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionKey {
    pub pid: u32,
    pub start_time: u64,
    /// The id the daemon answered at registration, or 0 if unknown.
    pub session_id: u64,
}

/// A request from a client to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Register(Registration),
    Unregister(SessionKey),
    /// From `pam_sm_acct_mgmt`: may this user log in now (not revoked)?
    CheckAccess {
        user: String,
        service: String,
        rhost: String,
    },
    /// Admin: every session.
    List,
    /// Admin: one session in detail.
    Show {
        id: u64,
    },
    /// Admin: end one session now.
    Kill {
        id: u64,
        reason: String,
    },
    /// Admin: end every session of a user or group now, and refuse new ones.
    Revoke {
        target: Target,
        ttl_secs: u64,
        reason: String,
    },
    Unrevoke {
        target: Target,
    },
    Revocations,
    /// Admin: load the config file again and say whether it was accepted.
    Reload,
    /// Anyone: the caller's own sessions.
    Status,
    /// Admin: run the PAM account check now for every user with a live
    /// session, or only `user` (when not empty), and say what each answered.
    Revalidate {
        user: String,
    },
    /// Admin: every session of a user or group, and every login until then, ends at `at`.
    SetDeadline {
        target: Target,
        at: i64,
        reason: String,
    },
    /// Admin: lifts a deadline.
    ClearDeadline {
        target: Target,
    },
    /// Admin: the deadlines in force.
    Deadlines,
    /// Admin: the daemon's own state (sessions, syslog lines lost).
    DaemonStatus,
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Register(r) => {
                let mut e = Encoder::new(kind::REGISTER);
                e.str(&r.user)
                    .u32(r.uid)
                    .str(&r.service)
                    .str(&r.tty)
                    .str(&r.rhost)
                    .str(&r.ruser)
                    .u32(r.pid)
                    .u64(r.start_time)
                    .u32(r.loginuid)
                    .u32(r.sessionid);
                r.auth.encode(&mut e);
                e.finish()
            }
            Self::Unregister(k) => Encoder::new(kind::UNREGISTER)
                .u32(k.pid)
                .u64(k.start_time)
                .u64(k.session_id)
                .finish(),
            Self::CheckAccess {
                user,
                service,
                rhost,
            } => Encoder::new(kind::CHECK_ACCESS)
                .str(user)
                .str(service)
                .str(rhost)
                .finish(),
            Self::List => Encoder::new(kind::LIST).finish(),
            Self::Show { id } => Encoder::new(kind::SHOW).u64(*id).finish(),
            Self::Kill { id, reason } => Encoder::new(kind::KILL).u64(*id).str(reason).finish(),
            Self::Revoke {
                target,
                ttl_secs,
                reason,
            } => {
                let mut e = Encoder::new(kind::REVOKE);
                target.encode(&mut e);
                e.u64(*ttl_secs).str(reason).finish()
            }
            Self::Unrevoke { target } => {
                let mut e = Encoder::new(kind::UNREVOKE);
                target.encode(&mut e);
                e.finish()
            }
            Self::Revocations => Encoder::new(kind::REVOCATIONS).finish(),
            Self::Reload => Encoder::new(kind::RELOAD).finish(),
            Self::Status => Encoder::new(kind::STATUS).finish(),
            Self::Revalidate { user } => Encoder::new(kind::REVALIDATE).str(user).finish(),
            Self::SetDeadline { target, at, reason } => {
                let mut e = Encoder::new(kind::SET_DEADLINE);
                target.encode(&mut e);
                e.i64(*at).str(reason).finish()
            }
            Self::ClearDeadline { target } => {
                let mut e = Encoder::new(kind::CLEAR_DEADLINE);
                target.encode(&mut e);
                e.finish()
            }
            Self::Deadlines => Encoder::new(kind::DEADLINES).finish(),
            Self::DaemonStatus => Encoder::new(kind::DAEMON_STATUS).finish(),
        }
    }

    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let (k, mut d) = Decoder::open(body)?;
        let req = match k {
            kind::REGISTER => Self::Register(Registration {
                user: d.string("user")?,
                uid: d.u32("uid")?,
                service: d.string("service")?,
                tty: d.string("tty")?,
                rhost: d.string("rhost")?,
                ruser: d.string("ruser")?,
                pid: d.u32("pid")?,
                start_time: d.u64("start_time")?,
                loginuid: d.u32("loginuid")?,
                sessionid: d.u32("sessionid")?,
                auth: Box::new(AuthFacts::decode(&mut d)?),
            }),
            kind::UNREGISTER => Self::Unregister(SessionKey {
                pid: d.u32("pid")?,
                start_time: d.u64("start_time")?,
                session_id: d.u64("session_id")?,
            }),
            kind::CHECK_ACCESS => Self::CheckAccess {
                user: d.string("user")?,
                service: d.string("service")?,
                rhost: d.string("rhost")?,
            },
            kind::LIST => Self::List,
            kind::SHOW => Self::Show { id: d.u64("id")? },
            kind::KILL => Self::Kill {
                id: d.u64("id")?,
                reason: d.string("reason")?,
            },
            kind::REVOKE => Self::Revoke {
                target: Target::decode(&mut d)?,
                ttl_secs: d.u64("ttl_secs")?,
                reason: d.string("reason")?,
            },
            kind::UNREVOKE => Self::Unrevoke {
                target: Target::decode(&mut d)?,
            },
            kind::REVOCATIONS => Self::Revocations,
            kind::RELOAD => Self::Reload,
            kind::STATUS => Self::Status,
            kind::REVALIDATE => Self::Revalidate {
                user: d.string("user")?,
            },
            kind::SET_DEADLINE => Self::SetDeadline {
                target: Target::decode(&mut d)?,
                at: d.i64("at")?,
                reason: d.string("reason")?,
            },
            kind::CLEAR_DEADLINE => Self::ClearDeadline {
                target: Target::decode(&mut d)?,
            },
            kind::DEADLINES => Self::Deadlines,
            kind::DAEMON_STATUS => Self::DaemonStatus,
            other => return Err(DecodeError::UnknownKind(other)),
        };
        d.finish()?;
        Ok(req)
    }
}
