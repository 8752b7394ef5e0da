//! The typed messages carried in frames, and their codecs.

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
    Error {
        code: ErrorCode,
        message: String,
    },
}

mod kind {
    pub const REGISTER: u8 = 1;
    pub const UNREGISTER: u8 = 2;
    pub const REGISTERED: u8 = 101;
    pub const UNREGISTERED: u8 = 102;
    pub const ERROR: u8 = 199;
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Register(r) => Encoder::new(kind::REGISTER)
                .str(&r.user)
                .u32(r.uid)
                .str(&r.service)
                .str(&r.tty)
                .str(&r.rhost)
                .str(&r.ruser)
                .u32(r.pid)
                .u64(r.start_time)
                .u32(r.loginuid)
                .u32(r.sessionid)
                .finish(),
            Self::Unregister(k) => Encoder::new(kind::UNREGISTER)
                .u32(k.pid)
                .u64(k.start_time)
                .u64(k.session_id)
                .finish(),
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
            }),
            kind::UNREGISTER => Self::Unregister(SessionKey {
                pid: d.u32("pid")?,
                start_time: d.u64("start_time")?,
                session_id: d.u64("session_id")?,
            }),
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

#[cfg(test)]
mod tests {
    use super::*;

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
