//! The pure core: what a policy says, what a look at a terminal means, which
//! deadline is next, and how records and events are written. Nothing here
//! reads the clock or touches the system; time comes in as a value.
#![forbid(unsafe_code)]

pub mod clock;
pub mod deadline;
pub mod duration;
pub mod escape;
pub mod event;
pub mod matching;
pub mod policy;
pub mod ratelimit;
pub mod record;
pub mod revocations;
pub mod session;
pub mod template;
