//! What the tests create on the host and must remove again: test users,
//! the cgroups of the daemons they start, and the sweep that clears what a
//! crashed run left behind.

pub mod cgroup;
pub mod sweep;
pub mod users;
