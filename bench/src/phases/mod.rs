//! The measurements, one module per figure of issue 7.

pub mod overhead;
pub mod precision;
pub mod revoke;
pub mod scale;
pub mod storm;
pub mod witness;
