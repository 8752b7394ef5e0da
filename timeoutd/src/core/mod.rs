//! The pure core: what a policy says, what a look at a terminal means, which
//! deadline is next, and how records and events are written. Nothing here
//! reads the clock or touches the system; time comes in as a value.
//!
//! Only what other crates use is public: `time::clock::Timestamp`,
//! `time::duration` and `audit::escape` (timeoutctl), and `audit::event` (the
//! daemon's `main`).
#![forbid(unsafe_code)]

pub mod audit;
pub(crate) mod policy;
pub(crate) mod revalidate;
pub(crate) mod session;
pub(crate) mod state;
pub mod time;
