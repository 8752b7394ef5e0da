//! Small helpers: a deterministic generator and a realtime sleep; and,
//! from the test kit, the realtime clock, start times, random names and
//! bounded polling.

use std::time::Duration;

pub use st_testkit::procs::start_time;
pub use st_testkit::wait::wait_until;
pub use st_testkit::{now_ns, random_hex};

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

/// Sleeps until the realtime clock reads `t_ns` (returns at once if past).
pub fn sleep_until_ns(t_ns: i64) {
    let d = t_ns - now_ns();
    if d > 0 {
        std::thread::sleep(Duration::from_nanos(d as u64));
    }
}
