//! The typed messages carried in frames, and their codecs.

use crate::control::{RevocationInfo, SessionInfo, Target};
use crate::deadlines::DeadlineInfo;
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
    /// Admin: every session of a user or group, and every login until then, ends at `at`.
    SetDeadline {
        target: Target,
        at: i64,
        reason: String,
    },
    ClearDeadline {
        target: Target,
    },
    Deadlines,
}

/// Machine-readable class of an error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request could not be decoded.
    Malformed = 1,
    /// The caller may not make this request.
    PermissionDenied = 2,
    /// The request names something the daemon does not know.
    NotFound = 3,
    /// The daemon could not do it right now.
    Internal = 4,
}

impl ErrorCode {
    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            1 => Self::Malformed,
            2 => Self::PermissionDenied,
            3 => Self::NotFound,
            4 => Self::Internal,
            _ => return Err(DecodeError::BadValue("error code")),
        })
    }
}

/// A reply from the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The session is under policy. `banner` may be shown to the user ("" for none).
    Registered {
        session_id: u64,
        banner: String,
    },
    /// The session was forgotten; `session_id` is 0 if it was not known.
    Unregistered {
        session_id: u64,
    },
    /// The login must not proceed (a revoked user); `message` is for the user.
    Refused {
        message: String,
    },
    /// Answer to `CheckAccess`.
    Access {
        allowed: bool,
        message: String,
    },
    Sessions(Vec<SessionInfo>),
    Revocations(Vec<RevocationInfo>),
    Deadlines(Vec<DeadlineInfo>),
    /// An admin verb succeeded.
    Done {
        message: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

mod kind {
    pub const REGISTER: u8 = 1;
    pub const UNREGISTER: u8 = 2;
    pub const CHECK_ACCESS: u8 = 3;
    pub const LIST: u8 = 10;
    pub const SHOW: u8 = 11;
    pub const KILL: u8 = 12;
    pub const REVOKE: u8 = 13;
    pub const UNREVOKE: u8 = 14;
    pub const REVOCATIONS: u8 = 15;
    pub const RELOAD: u8 = 16;
    pub const STATUS: u8 = 17;
    pub const SET_DEADLINE: u8 = 18;
    pub const CLEAR_DEADLINE: u8 = 19;
    pub const DEADLINES: u8 = 20;
    pub const REGISTERED: u8 = 101;
    pub const UNREGISTERED: u8 = 102;
    pub const REFUSED: u8 = 103;
    pub const ACCESS: u8 = 104;
    pub const SESSIONS: u8 = 110;
    pub const REVOCATION_LIST: u8 = 111;
    pub const DONE: u8 = 112;
    pub const DEADLINE_LIST: u8 = 113;
    pub const ERROR: u8 = 199;
}

fn list_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Each record is at least this many bytes, so a count larger than the body
/// could hold is refused before anything is allocated for it.
const MIN_RECORD: usize = 8;

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
            kind::SET_DEADLINE => Self::SetDeadline {
                target: Target::decode(&mut d)?,
                at: d.i64("at")?,
                reason: d.string("reason")?,
            },
            kind::CLEAR_DEADLINE => Self::ClearDeadline {
                target: Target::decode(&mut d)?,
            },
            kind::DEADLINES => Self::Deadlines,
            other => return Err(DecodeError::UnknownKind(other)),
        };
        d.finish()?;
        Ok(req)
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Registered { session_id, banner } => Encoder::new(kind::REGISTERED)
                .u64(*session_id)
                .str(banner)
                .finish(),
            Self::Unregistered { session_id } => {
                Encoder::new(kind::UNREGISTERED).u64(*session_id).finish()
            }
            Self::Refused { message } => Encoder::new(kind::REFUSED).str(message).finish(),
            Self::Access { allowed, message } => Encoder::new(kind::ACCESS)
                .u8(u8::from(*allowed))
                .str(message)
                .finish(),
            Self::Sessions(list) => {
                let mut e = Encoder::new(kind::SESSIONS);
                e.u32(list_len(list.len()));
                for s in list {
                    s.encode(&mut e);
                }
                e.finish()
            }
            Self::Revocations(list) => {
                let mut e = Encoder::new(kind::REVOCATION_LIST);
                e.u32(list_len(list.len()));
                for r in list {
                    r.encode(&mut e);
                }
                e.finish()
            }
            Self::Deadlines(list) => {
                let mut e = Encoder::new(kind::DEADLINE_LIST);
                e.u32(list_len(list.len()));
                for r in list {
                    r.encode(&mut e);
                }
                e.finish()
            }
            Self::Done { message } => Encoder::new(kind::DONE).str(message).finish(),
            Self::Error { code, message } => Encoder::new(kind::ERROR)
                .u8(*code as u8)
                .str(message)
                .finish(),
        }
    }

    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let (k, mut d) = Decoder::open(body)?;
        let resp = match k {
            kind::REGISTERED => Self::Registered {
                session_id: d.u64("session_id")?,
                banner: d.string("banner")?,
            },
            kind::UNREGISTERED => Self::Unregistered {
                session_id: d.u64("session_id")?,
            },
            kind::REFUSED => Self::Refused {
                message: d.string("message")?,
            },
            kind::ACCESS => Self::Access {
                allowed: match d.u8("allowed")? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::BadValue("allowed")),
                },
                message: d.string("message")?,
            },
            kind::SESSIONS => {
                let n = bounded_count(&mut d, body.len(), "sessions")?;
                let mut list = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    list.push(SessionInfo::decode(&mut d)?);
                }
                Self::Sessions(list)
            }
            kind::REVOCATION_LIST => {
                let n = bounded_count(&mut d, body.len(), "revocations")?;
                let mut list = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    list.push(RevocationInfo::decode(&mut d)?);
                }
                Self::Revocations(list)
            }
            kind::DEADLINE_LIST => {
                let n = bounded_count(&mut d, body.len(), "deadlines")?;
                let mut list = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    list.push(DeadlineInfo::decode(&mut d)?);
                }
                Self::Deadlines(list)
            }
            kind::DONE => Self::Done {
                message: d.string("message")?,
            },
            kind::ERROR => Self::Error {
                code: ErrorCode::from_u8(d.u8("code")?)?,
                message: d.string("message")?,
            },
            other => return Err(DecodeError::UnknownKind(other)),
        };
        d.finish()?;
        Ok(resp)
    }
}

fn bounded_count(
    d: &mut Decoder,
    body_len: usize,
    field: &'static str,
) -> Result<usize, DecodeError> {
    let n = d.u32(field)? as usize;
    if n > body_len / MIN_RECORD {
        return Err(DecodeError::BadValue(field));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{RevocationInfo, SessionInfo, Target};

    fn sample() -> Registration {
        Registration {
            user: "alice".into(),
            uid: 1000,
            service: "sshd".into(),
            tty: "ssh".into(),
            rhost: "127.0.0.1".into(),
            ruser: String::new(),
            pid: 4242,
            start_time: 987_654,
            loginuid: 1000,
            sessionid: 17,
            auth: Box::new(crate::AuthFacts {
                methods: vec!["publickey".into()],
                cert: crate::Cert::Unreadable("bad base64".into()),
                runtime_max_at: 5,
            }),
        }
    }

    #[test]
    fn requests_round_trip() {
        for req in [
            Request::Register(sample()),
            Request::Unregister(SessionKey {
                pid: 1,
                start_time: 2,
                session_id: 3,
            }),
        ] {
            assert_eq!(Request::decode(&req.encode()).unwrap(), req);
        }
    }

    #[test]
    fn responses_round_trip() {
        for resp in [
            Response::Registered {
                session_id: 9,
                banner: "Idle sessions close after 15m.".into(),
            },
            Response::Unregistered { session_id: 0 },
            Response::Error {
                code: ErrorCode::PermissionDenied,
                message: "only root may register".into(),
            },
        ] {
            assert_eq!(Response::decode(&resp.encode()).unwrap(), resp);
        }
    }

    fn info() -> SessionInfo {
        SessionInfo {
            id: 7,
            user: "bob".into(),
            uid: 1002,
            service: "sshd".into(),
            tty: "pts/1,pts/3".into(),
            rhost: "::1".into(),
            rule: "privileged".into(),
            state: "active".into(),
            started: 1_700_000_000,
            last_activity: 1_700_000_100,
            idle_deadline: 1_700_000_700,
            max_deadline: 0,
            now: 1_700_000_200,
            leader_pid: 4242,
            audit_session: 9,
            pids: vec![4242, 4250],
            warnings: vec![crate::WarningSent {
                reason: "idle".into(),
                at: 1_700_000_400,
                deadline: 1_700_000_700,
            }],
            tampers: vec![crate::TamperSeen {
                tty: "pts/1".into(),
                at: 1_700_000_150,
            }],
        }
    }

    #[test]
    fn control_verbs_round_trip() {
        for req in [
            Request::CheckAccess {
                user: "bob".into(),
                service: "sshd".into(),
                rhost: "10.0.0.1".into(),
            },
            Request::List,
            Request::Show { id: 3 },
            Request::Kill {
                id: 3,
                reason: "incident 42".into(),
            },
            Request::Revoke {
                target: Target::Group("contractors".into()),
                ttl_secs: 3600,
                reason: "offboarding".into(),
            },
            Request::Unrevoke {
                target: Target::User("bob".into()),
            },
            Request::Revocations,
            Request::Reload,
            Request::Status,
            Request::SetDeadline {
                target: Target::User("bob".into()),
                at: 1_700_000_000,
                reason: "jit grant ends".into(),
            },
            Request::ClearDeadline {
                target: Target::Group("ops".into()),
            },
            Request::Deadlines,
        ] {
            assert_eq!(Request::decode(&req.encode()).unwrap(), req);
        }
        for resp in [
            Response::Refused {
                message: "revoked".into(),
            },
            Response::Access {
                allowed: false,
                message: "revoked until 12:00".into(),
            },
            Response::Sessions(vec![info(), SessionInfo::default()]),
            Response::Revocations(vec![RevocationInfo {
                target: Target::User("bob".into()),
                since: 1,
                until: 0,
                reason: "r".into(),
                by_uid: 0,
            }]),
            Response::Deadlines(vec![DeadlineInfo {
                target: Target::User("bob".into()),
                since: 1,
                at: 2,
                reason: "r".into(),
                by_uid: 0,
            }]),
            Response::Done {
                message: "ok".into(),
            },
        ] {
            assert_eq!(Response::decode(&resp.encode()).unwrap(), resp);
        }
    }

    #[test]
    fn a_huge_list_count_is_refused_before_allocating() {
        let mut body = Response::Sessions(vec![]).encode();
        let n = body.len();
        body[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            Response::decode(&body),
            Err(DecodeError::BadValue("sessions"))
        );
    }

    #[test]
    fn every_truncation_of_a_session_list_is_an_error() {
        let body = Response::Sessions(vec![info()]).encode();
        for cut in 0..body.len() {
            assert!(Response::decode(&body[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn every_truncation_of_a_register_is_an_error() {
        let body = Request::Register(sample()).encode();
        for cut in 0..body.len() {
            assert!(Request::decode(&body[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn unknown_kind_and_code_are_errors() {
        assert_eq!(
            Request::decode(&[crate::VERSION, 77]),
            Err(DecodeError::UnknownKind(77))
        );
        assert_eq!(
            Response::decode(&[crate::VERSION, kind::ERROR, 250, 0, 0]),
            Err(DecodeError::BadValue("error code"))
        );
    }
}
