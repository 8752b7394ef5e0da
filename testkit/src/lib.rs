//! The one test kit of the end-to-end tests (`tests/`, package `e2e`) and the
//! benchmark (`bench/`, `st-bench`): both run the real daemon against a
//! syslog socket of their own, read /proc and drive libpam in-process, and
//! they do it with this code, so that a fix lands in both.
//!
//! Modules by concern:
//! - [`events`]: parses one `timeoutd[PID]: event=NAME key=value ...` line;
//! - [`syslog`]: the datagram socket the daemon logs to, and its reader;
//! - [`daemon`]: writing the `[daemon]` table, starting `timeoutd`, waiting
//!   until it logs `daemon_start` (and, if asked, answers), stopping it;
//! - [`procs`]: /proc readers (stat, uids, descendants, resource samples);
//! - [`pam`]: libpam called in-process (`pam_start` or `pam_start_confdir`);
//! - [`wait`]: bounded polling and bounded waits on children.
//!
//! Everything returns `Result` or `Option`; the e2e crate turns failures into
//! test failures, the benchmark into error messages.

pub mod daemon;
pub mod events;
pub mod pam;
pub mod procs;
pub mod syslog;
pub mod wait;

use std::time::{SystemTime, UNIX_EPOCH};

/// CLOCK_REALTIME in nanoseconds: the clock of the daemon's deadlines and of
/// tty timestamps.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `digits` random hex digits from the kernel (from the clock and our pid if
/// /dev/urandom cannot be read).
pub fn random_hex(digits: usize) -> String {
    use std::io::Read as _;
    let mut buf = vec![0u8; digits.div_ceil(2)];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !ok {
        let seed = now_ns() as u64 ^ u64::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 8) * 8)) as u8;
        }
    }
    let mut s: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(digits);
    s
}
