//! The pure core: what a policy says, what a look at a terminal means, which
//! deadline is next, and how records and events are written. Nothing here
//! reads the clock or touches the system; time comes in as a value.
//!
//! Only what other crates use is public: `clock::Timestamp`, `duration` and
//! `escape` (timeoutctl), and `event` (the daemon's `main`).
#![forbid(unsafe_code)]

pub(crate) mod civil;
pub mod clock;
pub(crate) mod deadlines_store;
pub mod duration;
pub mod escape;
pub mod event;
pub(crate) mod policy;
pub(crate) mod quota;
pub(crate) mod ratelimit;
pub(crate) mod record;
pub(crate) mod revalidate;
pub(crate) mod revocations;
pub(crate) mod session;
