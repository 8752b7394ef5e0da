//! Counting while the lines stream past: per-group statistics in bounded
//! histograms, the outliers heap, and what proposed limits would have done.

pub(crate) mod aggregate;
pub(crate) mod hist;
pub(crate) mod outliers;
pub(crate) mod whatif;
