//! Where a login's input shows: its terminal (finding it, its timestamps,
//! writing warnings) and its SSH connection's counters.

pub(crate) mod connection;
pub(crate) mod login_probe;
pub(crate) mod pty;
