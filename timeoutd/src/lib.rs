//! timeoutd: enforces idle and absolute limits on login sessions.
//!
//! Functional core: `policy`, `config`, `duration`, `template`, `session`,
//! `deadline`, `engine` and `enforce` decide everything, driven by an injected
//! clock and probes. Imperative shell: `procfs`, `pty`, `signals`, `syslog`,
//! `server` and `host` touch the system.

pub mod admin;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod deadline;
pub mod duration;
pub mod enforce;
pub mod engine;
pub mod escape;
pub mod event;
pub mod explain;
pub mod host;
pub mod ids;
pub mod login_probe;
pub mod matching;
pub mod nss;
pub mod policy;
pub mod posture;
pub mod procfs;
pub mod pty;
pub mod record;
pub mod recovery;
pub mod revocations;
pub mod server;
pub mod session;
pub mod signals;
pub mod state;
pub mod syslog;
pub mod template;

#[cfg(test)]
mod admin_tests;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod testkit;
