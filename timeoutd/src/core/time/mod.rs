//! Time as values: the `Timestamp` and the `Clock` trait, durations as
//! written in the config, and civil time (zones, login hours, quota days).

pub(crate) mod civil;
pub mod clock;
pub mod duration;
