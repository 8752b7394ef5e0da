//! Human-readable rendering of a policy, for `--check-config`.

use std::fmt::Write;

use crate::config::Config;
use crate::duration::{self, Human};
use crate::policy::Limits;

fn limits_line(l: &Limits) -> String {
    let warn: Vec<String> = l.warn.iter().map(|w| Human(*w).to_string()).collect();
    format!(
        "idle={} max={} warn=[{}] grace={}",
        duration::limit(l.idle),
        duration::limit(l.max),
        warn.join(", "),
        Human(l.grace)
    )
}

/// The effective configuration, as `--check-config` prints it.
pub fn describe(cfg: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: OK", cfg.path.display());
    let _ = writeln!(out, "socket    {}", cfg.daemon.socket.display());
    let _ = writeln!(out, "syslog    {}", cfg.daemon.syslog.display());
    let _ = writeln!(out, "state_dir {}", cfg.daemon.state_dir.display());
    let _ = writeln!(out, "defaults  {}", limits_line(&cfg.policy.defaults));
    out
}
