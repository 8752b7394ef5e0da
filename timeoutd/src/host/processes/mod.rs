//! Processes: the shared views of /proc, the kill's census, signals through
//! pidfds, the watch on ending sessions' exits, and adoption of logins.

mod adopt;
pub(crate) mod census;
pub(crate) mod exits;
pub(crate) mod signals;
mod views;

pub(crate) use views::{facts_of, proc_facts};
