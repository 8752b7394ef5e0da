//! Reading: where the lines come from, the log formats' envelopes, their
//! time stamps, and the two timeoutd events the report understands.

pub(crate) mod envelope;
mod fields;
pub(crate) mod input;
pub(crate) mod summary;
pub(crate) mod time;
