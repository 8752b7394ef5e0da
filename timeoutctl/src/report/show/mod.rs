//! Showing the finished report: as plain data (`--json`), an aligned table,
//! CSV, and the SVG histograms.

pub(crate) mod csv;
pub(crate) mod svg;
pub(crate) mod table;
pub(crate) mod view;
