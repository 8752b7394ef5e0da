//! Durable state in `[daemon] state_dir`: the session table (snapshot and
//! journal), the session-id counter and the daily quota ledger.

pub(crate) mod ids;
pub(crate) mod quota;
pub(crate) mod state;
