//! The typed messages carried in frames, and their codecs: requests in
//! `request`, replies in `response`, and here what both share (the kind
//! bytes and the bounds on list counts).

mod request;
mod response;
#[cfg(test)]
mod tests;

pub use request::{Registration, Request, SessionKey};
pub use response::{ErrorCode, Response};

use crate::wire::{DecodeError, Decoder};

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
    pub const REVALIDATE: u8 = 21;
    pub const DAEMON_STATUS: u8 = 22;
    pub const REGISTERED: u8 = 101;
    pub const UNREGISTERED: u8 = 102;
    pub const REFUSED: u8 = 103;
    pub const ACCESS: u8 = 104;
    pub const SESSIONS: u8 = 110;
    pub const REVOCATION_LIST: u8 = 111;
    pub const DONE: u8 = 112;
    pub const DEADLINE_LIST: u8 = 113;
    pub const DAEMON_STATE: u8 = 114;
    pub const ERROR: u8 = 199;
}

fn list_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Each record is at least this many bytes, so a count larger than the body
/// could hold is refused before anything is allocated for it.
const MIN_RECORD: usize = 8;

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
