//! What a run produces: distributions, the report with its targets, and the
//! JSON writer it is rendered with.

pub mod doc;
pub mod json;
pub mod report;
pub mod stats;
