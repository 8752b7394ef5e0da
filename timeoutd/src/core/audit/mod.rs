//! What the daemon says: every event name and line, the escaping of
//! user-controlled text, and the rate limit on lines callers cause.

pub mod escape;
pub mod event;
pub(crate) mod ratelimit;
