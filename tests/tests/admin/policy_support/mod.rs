//! Helpers for `policy.rs` only: its rules and the idle-window check, the
//! CLI runner, the config files the CLI tests check (`cases`), and the
//! named steps of p1 (`p1`).

pub mod cases;
pub mod p1;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    self, run_bounded, secs, toml_list, Login, World, ATIME_GRANULARITY, HANDS_OFF,
};

pub const GRACE: Duration = Duration::from_secs(2);

/// One rule for the test's users: 60 s idle, a warning 5 s before.
pub fn long_rule(n: &[String]) -> String {
    format!(
        "{HANDS_OFF}[[rule]]\nname = \"tests\"\nusers = {}\nidle = \"60s\"\nwarn = [\"5s\"]\n",
        toml_list(n)
    )
}

/// The idle window of one session: closed no earlier than `limit` after the
/// last input was written, and no later than `limit` + the kernel's atime
/// granularity + grace after its answer was seen.
pub fn assert_idle_window(w: &World, l: &Login, last: e2e::Ready, exit: Instant, limit: u64) {
    let limit = Duration::from_secs(limit);
    let (since_input, since_seen) = (exit - last.written, exit - last.seen);
    let upper = limit + ATIME_GRANULARITY + GRACE;
    let who = format!("session {} of {}", l.id, l.open.get("user").unwrap_or("?"));
    eprintln!(
        "{who}: closed {} after its last input (limit {limit:?})",
        secs(since_input)
    );
    assert!(
        since_input >= limit && since_seen <= upper,
        "{who} closed {} after its last input was written and {} after it was seen, \
         outside [{limit:?}, {upper:?}]\n{}",
        secs(since_input),
        secs(since_seen),
        w.report(&[&l.ssh])
    );
}

/// A scratch dir `/tmp/stt...` (removed on drop, swept after a crash).
pub fn scratch() -> e2e::env::TempDir {
    e2e::env::TempDir::create(&e2e::new_prefix())
}

/// Runs `timeoutd` on `config` with `args`, bounded.
pub fn timeoutd(args: &[&str], config: &Path) -> support::Run {
    let bin = e2e::binaries().timeoutd;
    let mut cmd = Command::new(bin);
    if args.first() == Some(&"--check-config") {
        cmd.args(args).arg(config);
    } else {
        cmd.arg("--config").arg(config).args(args);
    }
    run_bounded(&mut cmd, Duration::from_secs(10))
}
