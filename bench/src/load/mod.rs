//! Producing the load: session leaders on ptys (the spawner, the fleet and
//! the monitor that watches them) and the client that talks to timeoutd as
//! the PAM module does.

pub mod client;
pub mod fleet;
pub mod leader;
pub mod monitor;
