//! The record of an administrator's deadline (`timeoutctl deadline`): every
//! session of a user or group, and every login of theirs until then, ends at
//! that time.

use crate::control::Target;
use crate::wire::{DecodeError, Decoder, Encoder};

/// An active deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineInfo {
    pub target: Target,
    /// When it was set (Unix seconds).
    pub since: i64,
    /// When the sessions end (Unix seconds).
    pub at: i64,
    pub reason: String,
    pub by_uid: u32,
}

impl DeadlineInfo {
    pub(crate) fn encode(&self, e: &mut Encoder) {
        self.target.encode(e);
        e.i64(self.since)
            .i64(self.at)
            .str(&self.reason)
            .u32(self.by_uid);
    }

    pub(crate) fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        Ok(Self {
            target: Target::decode(d)?,
            since: d.i64("since")?,
            at: d.i64("at")?,
            reason: d.string("reason")?,
            by_uid: d.u32("by_uid")?,
        })
    }
}
