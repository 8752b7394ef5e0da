//! The measurements, one module per figure of issue 7 (and `kill`, issue 13's; `revalidate`, 14's; `report`, 15's).

pub mod kill;
pub mod overhead;
pub mod precision;
pub mod report;
pub mod revalidate;
pub mod revoke;
pub mod scale;
pub mod storm;
pub mod witness;
