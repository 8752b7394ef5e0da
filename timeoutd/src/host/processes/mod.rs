//! Processes: the shared views of /proc, the kill's census, signals through
//! pidfds, the watches on exits (ending sessions' processes, live sessions'
//! leaders), and adoption of logins.

mod adopt;
pub(crate) mod census;
mod epoll;
pub(crate) mod exits;
pub(crate) mod leaders;
pub(crate) mod signals;
mod views;

pub(crate) use views::{facts_of, proc_facts};
