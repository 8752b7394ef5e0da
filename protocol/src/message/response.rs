//! Replies from the daemon, and their codec.

use super::{bounded_count, kind, list_len};
use crate::control::{RevocationInfo, SessionInfo};
use crate::deadlines::DeadlineInfo;
use crate::wire::{DecodeError, Decoder, Encoder};

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
    /// The daemon's own state, for administrators.
    DaemonState {
        /// Live sessions in all.
        sessions: u32,
        /// Lines that could not be delivered to syslog since the daemon started.
        log_lines_dropped: u64,
    },
    /// An admin verb succeeded.
    Done {
        message: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
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
            Self::DaemonState {
                sessions,
                log_lines_dropped,
            } => Encoder::new(kind::DAEMON_STATE)
                .u32(*sessions)
                .u64(*log_lines_dropped)
                .finish(),
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
            kind::DAEMON_STATE => Self::DaemonState {
                sessions: d.u32("sessions")?,
                log_lines_dropped: d.u64("log_lines_dropped")?,
            },
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
