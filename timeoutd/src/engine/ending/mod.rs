//! How a session ends: the kill ladder and its final step (`kill.rs`; without
//! a cgroup, `stop_then_kill.rs`), the
//! exits the host watches for, which end a session the moment its last
//! process is gone (`exits.rs`), and the one `session_summary` line every
//! ending leaves (`summary.rs`).

pub(in crate::engine) mod exits;
pub(in crate::engine) mod kill;
pub(in crate::engine) mod stop_then_kill;
pub(in crate::engine) mod summary;
