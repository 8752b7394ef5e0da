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

/// CPU time the whole host spent busy (user, nice, system, irq, softirq,
/// over every CPU) since boot, in ms; from /proc/stat's `cpu` line.
pub fn host_busy_ms() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks = busy_ticks(&text)?;
    Some(ticks as f64 * 1000.0 / crate::sys::clock_ticks() as f64)
}

/// The busy ticks of the `cpu ` line (fields 1, 2, 3, 6 and 7; not idle,
/// iowait, or steal: time the hypervisor gave to other guests).
fn busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    Some(f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?)
}

/// The CPU time (user + system, every thread) of process `pid` in ms,
/// from /proc/PID/stat.
pub fn process_cpu_ms(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = cpu_ticks_of_stat(&text)?;
    Some(ticks as f64 * 1000.0 / crate::sys::clock_ticks() as f64)
}

/// utime + stime: fields 14 and 15, counted after the `)` that ends comm.
fn cpu_ticks_of_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_leave_out_idle_iowait_and_steal() {
        let stat = "cpu  10 2 30 999 7 4 5 600 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        assert_eq!(busy_ticks(stat), Some(10 + 2 + 30 + 4 + 5));
        assert_eq!(busy_ticks("cpu0 1 2 3\n"), None);
        assert_eq!(busy_ticks("cpu  1 x 3 4 5 6 7\n"), None);
    }

    #[test]
    fn cpu_ticks_are_utime_and_stime_even_after_a_comm_with_a_paren() {
        let stat = "42 (a) b) S 1 42 42 0 -1 4194304 100 0 0 0 7 3 0 0 20 0 1 0 99 0 0";
        assert_eq!(cpu_ticks_of_stat(stat), Some(10));
        assert_eq!(cpu_ticks_of_stat("42 (x) S 1"), None);
    }
}
