//! Small helpers: clocks, /proc reads, polling.

use std::fs;
use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// CLOCK_REALTIME in nanoseconds: the clock of the daemon's deadlines and of
/// tty timestamps.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The fields of /proc/PID/stat after the command name (field 3 is index 0).
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = text.rfind(')')?;
    Some(
        text[close + 1..]
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect(),
    )
}

/// Field 22 of /proc/PID/stat: start time in clock ticks after boot.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// 16 random hex digits from the kernel.
pub fn random_hex(digits: usize) -> String {
    let mut buf = vec![0u8; digits.div_ceil(2)];
    let ok = fs::File::open("/dev/urandom")
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

/// A tiny deterministic generator (xorshift), for reproducible schedules.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [lo, hi).
    pub fn range_f64(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }
}

/// Polls `f` every `step` until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, step: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(step);
    }
}

/// Sleeps until the realtime clock reads `t_ns` (returns at once if past).
pub fn sleep_until_ns(t_ns: i64) {
    let d = t_ns - now_ns();
    if d > 0 {
        std::thread::sleep(Duration::from_nanos(d as u64));
    }
}
