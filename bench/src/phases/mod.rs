//! The measurements, one module per figure of issue 7 (and `kill`, issue 13's; `revalidate`, 14's; `report`, 15's).

pub mod kill;
pub mod overhead;
pub mod peers;
pub mod precision;
pub mod report;
pub mod revalidate;
pub mod revoke;
pub mod scale;
pub mod storm;
pub mod witness;

/// A target line a phase must produce: (phase, key, label, unit, limit).
type Expected = (&'static str, &'static str, &'static str, &'static str, f64);

/// The targets of issue 16's table (and the earlier ones), by the phase that measures them. A phase
/// that fails before it reports one still gets its line, as an error with
/// the phase's cause (never a blank).
pub const EXPECTED: [Expected; 21] = [
    (
        "revoke",
        "revoke.cgroup.last_sighup_ms",
        "revocation of a user's live sessions with a cgroup each: request → last SIGHUP received",
        "ms",
        100.0,
    ),
    (
        "revoke",
        "revoke.last_sighup_ms",
        "revocation of a user's live sessions without cgroups: request → last SIGHUP received",
        "ms",
        100.0,
    ),
    (
        "scale",
        "scale.cpu_us_per_warning",
        "daemon CPU per session warned, all warnings due in the same second",
        "µs",
        30.0,
    ),
    (
        "scale",
        "scale.cpu_pct_core",
        "CPU at 10000 sessions idle, worst 120 s average, warning burst inside it",
        "% of a core",
        0.5,
    ),
    (
        "revoke",
        "revoke.cgroup.terminated_p99_ms",
        "last process of a revoked session with a cgroup gone → session_terminated logged, p99",
        "ms",
        50.0,
    ),
    (
        "revoke",
        "revoke.terminated_p99_ms",
        "last process of a revoked session without a cgroup gone → session_terminated logged, p99",
        "ms",
        50.0,
    ),
    (
        "scale",
        "scale.list_p99_ms",
        "timeoutctl list at 10000 sessions, p99 of 20 calls (10 during a login burst)",
        "ms",
        100.0,
    ),
    (
        "overhead",
        "login.up.daemon_cpu_per_login_ms",
        "daemon CPU per login (register + unregister), mean",
        "ms",
        0.1,
    ),
    (
        "overhead",
        "login.up.added_open_p50_floor_ratio",
        "added open_session latency p50, ratio to the bare Unix-socket exchange",
        "×",
        3.0,
    ),
    (
        "overhead",
        "login.up.added_open_p99_ms",
        "added open_session latency p99, daemon up",
        "ms",
        1.0,
    ),
    (
        "scale",
        "scale.rss_per_session_kib",
        "RSS per session above baseline, 10000 sessions",
        "KiB",
        2.0,
    ),
    // The earlier issues' targets, so that none of them is a blank either.
    (
        "overhead",
        "login.down.added_open_p99_ms",
        "added open_session latency p99, daemon down",
        "ms",
        0.5,
    ),
    (
        "storm",
        "storm.failures",
        "login storm: failed registrations",
        "",
        0.0,
    ),
    (
        "absolute",
        "absolute.lateness_p99_ms",
        "absolute-deadline lateness p99",
        "ms",
        200.0,
    ),
    (
        "idle",
        "idle.beyond_kernel_p99_ms",
        "idle-deadline lateness beyond the kernel's 8 s step p99",
        "ms",
        1000.0,
    ),
    (
        "witness",
        "witness.vs_last_input_p99_ms",
        "idle lateness after the last keystroke, connection as witness, p99",
        "ms",
        1000.0,
    ),
    (
        "revalidate",
        "revalidate.stall_ms",
        "re-validation: worst status reply while checks run",
        "ms",
        5.0,
    ),
    (
        "report",
        "report.wall_s",
        "timeoutctl report over 1000000 lines: wall time, slowest of 3",
        "s",
        5.0,
    ),
    (
        "report",
        "report.peak_rss_mib",
        "timeoutctl report over 1000000 lines: peak RSS, largest of 3",
        "MiB",
        100.0,
    ),
    (
        "scale",
        "scale.quiet_cpu_pct_core",
        "CPU at 10000 sessions idle, while nothing is due",
        "% of a core",
        0.5,
    ),
    (
        "scale",
        "scale.rss_total_mib",
        "RSS total, 10000 sessions",
        "MiB",
        30.0,
    ),
];

/// Adds an error line for every target of `phase` it did not report.
pub fn expect_targets(phase: &str, r: &mut crate::results::report::Report, cause: &str) {
    for (p, key, label, unit, limit) in EXPECTED {
        if p == phase && !r.has(key) {
            r.target(key, label, None, unit, limit, cause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::report::Report;

    #[test]
    fn a_failed_phase_still_has_its_target_lines_as_errors() {
        let mut r = Report::default();
        r.target("revoke.last_sighup_ms", "x", Some(90.0), "ms", 100.0, "");
        expect_targets("revoke", &mut r, "not measured: revoke failed: boom");
        let keys: Vec<&str> = r.figures.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "revoke.last_sighup_ms",
                "revoke.cgroup.last_sighup_ms",
                "revoke.cgroup.terminated_p99_ms",
                "revoke.terminated_p99_ms"
            ]
        );
        assert!(r.figures[1..].iter().all(|f| f.verdict() == "ERROR"));
        assert!(r.markdown().contains("revoke failed: boom"));
        // Every issue-16 row has a phase that runs.
        for (phase, ..) in EXPECTED {
            assert!(crate::harness::opts::PHASES.contains(&phase), "{phase}");
        }
    }
}
