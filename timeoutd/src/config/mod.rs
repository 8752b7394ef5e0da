//! The policy file: loading and validating it (`parse`), and the two
//! commands that show what it does (`--check-config`, `--explain`).

pub mod explain;
mod parse;
pub mod revalidate;
mod sections;
mod types;

pub use parse::{load, parse};
pub use types::{Config, ConfigError, ConfigErrors, DaemonConfig, DEFAULT_PATH};
