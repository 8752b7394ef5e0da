//! The policy file: loading and validating it (`parse`), and the two
//! commands that show what it does (`--check-config`, `--explain`).

pub mod explain;
mod parse;

pub use parse::*;
