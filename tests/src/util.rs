//! Small helpers shared by the harness modules: running helper commands,
//! showing terminal output; and, from the test kit, randomness, bounded
//! waits and waits on children through pidfds.

use std::process::{Command, Output};

pub use st_testkit::random_hex;
pub use st_testkit::wait::{file_tail, poll_until, terminate_child, wait_child_timeout};

/// Runs a helper command to completion and returns its output; panics with a
/// clear message if it cannot be started at all.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()))
}

/// Runs a helper command and panics with its stderr unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    if !out.status.success() {
        panic!(
            "{:?} {:?} failed ({}): {}{}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Shows control characters so terminal output is readable in a panic message.
pub fn printable(bytes: &[u8]) -> String {
    let mut s = String::new();
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '\n' => s.push('\n'),
            '\r' => s.push_str("\\r"),
            '\t' => s.push('\t'),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                s.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => s.push(c),
        }
    }
    s
}
