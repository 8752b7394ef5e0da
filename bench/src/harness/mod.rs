//! Setting up and holding a run: the options, the host (user, ptys,
//! descriptors, restoring them), the daemon under test, and the context every
//! phase gets.

pub mod ctx;
pub mod daemon;
pub mod host;
pub mod opts;
