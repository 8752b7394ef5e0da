//! Durable state in `[daemon] state_dir`: the session table (snapshot and
//! journal) and the session-id counter.

pub(crate) mod ids;
pub(crate) mod state;
