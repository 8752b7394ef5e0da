//! The protocol between `pam_session_timeout.so`, `timeoutd` and its clients.
//!
//! Deliberately dependency-free: it is linked into a PAM module that runs
//! inside sshd, so it must stay small and must never panic on input.

pub mod client;
mod control;
mod deadlines;
pub mod identity;
mod message;
mod wire;

pub use control::{RevocationInfo, SessionInfo, TamperSeen, Target, WarningSent};
pub use deadlines::DeadlineInfo;
pub use identity::{AuthFacts, Cert, CertFields};
pub use message::{ErrorCode, Registration, Request, Response, SessionKey};
pub use wire::{
    encode_frame, read_frame, read_frame_limited, take_frame, write_frame, DecodeError, Decoder,
    Encoder, FrameError, MAX_FRAME, MAX_REPLY, VERSION,
};

/// Where the daemon listens unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/session-timeout/timeoutd.sock";

/// The value of `/proc/PID/loginuid` and `/proc/PID/sessionid` when unset.
pub const AUDIT_UNSET: u32 = u32::MAX;
