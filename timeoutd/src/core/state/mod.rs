//! What the daemon keeps across restarts, as values and line formats: the
//! session records, the revocations, the administrators' deadlines and the
//! daily quota ledger; `lines.rs` holds the line format the last three share.

pub(crate) mod deadlines_store;
pub(crate) mod lines;
pub(crate) mod quota;
pub(crate) mod record;
pub(crate) mod revocations;
