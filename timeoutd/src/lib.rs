//! timeoutd: enforces idle and absolute limits on login sessions.
//!
//! - `core`: pure logic (policy, matching, deadlines, records, events); no
//!   I/O, no clock reads.
//! - `config`: loading and validating the policy file, `--check-config` and
//!   `--explain`.
//! - `engine`: the session table and its timers, acting only through the
//!   `System` port; simulated in tests against a fake.
//! - `host`: the real `System` (/proc, ptys, signals, NSS, durable state,
//!   syslog, posture).
//! - `daemon`: start-up, the event loop, daemonizing, and the socket server
//!   (a pure connection state machine and its syscalls).
//!
//! Public to other crates: `config` (timeoutctl, the fuzz targets), `core`
//! (timeoutctl), `daemon` and `host::identity::nss` and `host::posture` (the `timeoutd` binary).

pub mod config;
pub mod core;
pub mod daemon;
pub(crate) mod engine;
pub mod host;
