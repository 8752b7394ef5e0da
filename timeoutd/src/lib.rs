//! timeoutd: enforces idle and absolute limits on login sessions.

pub mod config;
pub mod core;
pub mod daemon;
pub(crate) mod engine;
pub mod host;
