//! Unit tests of `quota`: unions of overlapping sessions, the reset at the
//! day's start, and a restart in the middle of a day.

use super::*;

fn utc(s: &str) -> Timestamp {
    Timestamp(s.parse::<jiff::Timestamp>().unwrap().as_millisecond())
}

fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

#[test]
fn parallel_sessions_count_once() {
    let days = DayClock::new(TimeZone::UTC, 0, 0);
    let mut q = QuotaLedger::default();
    // A: 10:00-11:00, B: 10:30-11:30, C: 12:00-12:10 → union 1h40m.
    q.open(1, utc("2026-12-04T10:00:00Z"), &days);
    q.open(1, utc("2026-12-04T10:30:00Z"), &days);
    q.close(1, utc("2026-12-04T11:00:00Z"), &days);
    assert_eq!(q.used(1, utc("2026-12-04T11:15:00Z"), &days), mins(75));
    q.close(1, utc("2026-12-04T11:30:00Z"), &days);
    q.open(1, utc("2026-12-04T12:00:00Z"), &days);
    q.close(1, utc("2026-12-04T12:10:00Z"), &days);
    assert_eq!(q.used(1, utc("2026-12-04T13:00:00Z"), &days), mins(100));
    // Another user is counted apart.
    assert_eq!(
        q.used(2, utc("2026-12-04T13:00:00Z"), &days),
        Duration::ZERO
    );
}

#[test]
fn when_the_quota_runs_out() {
    let days = DayClock::new(TimeZone::UTC, 0, 0);
    let mut q = QuotaLedger::default();
    let t = utc("2026-12-04T10:00:00Z");
    assert_eq!(
        q.runs_out_at(1, t, &days, mins(30)),
        None,
        "no session, nothing used"
    );
    q.open(1, t, &days);
    q.open(1, t + mins(5), &days);
    assert_eq!(
        q.runs_out_at(1, t + mins(10), &days, mins(30)),
        Some(t + mins(30))
    );
    // Already over: runs out now.
    assert_eq!(
        q.runs_out_at(1, t + mins(40), &days, mins(30)),
        Some(t + mins(40))
    );
}

#[test]
fn the_day_resets_at_midnight_or_at_day_starts() {
    let mut q = QuotaLedger::default();
    let midnight = DayClock::new(TimeZone::UTC, 0, 0);
    q.open(1, utc("2026-12-04T23:00:00Z"), &midnight);
    // An interval across midnight is split there.
    assert_eq!(q.used(1, utc("2026-12-05T00:30:00Z"), &midnight), mins(30));
    q.close(1, utc("2026-12-05T01:00:00Z"), &midnight);
    assert_eq!(q.used(1, utc("2026-12-05T02:00:00Z"), &midnight), mins(60));

    let four = DayClock::new(TimeZone::UTC, 4, 0);
    let mut q = QuotaLedger::default();
    q.open(1, utc("2026-12-05T01:00:00Z"), &four);
    q.close(1, utc("2026-12-05T02:00:00Z"), &four);
    // Still the day that began at 04:00 yesterday.
    assert_eq!(q.used(1, utc("2026-12-05T03:59:00Z"), &four), mins(60));
    assert_eq!(
        q.used(1, utc("2026-12-05T04:00:00Z"), &four),
        Duration::ZERO
    );
    // A quota that would run out after the reset is whole again then.
    q.open(1, utc("2026-12-05T03:50:00Z"), &four);
    assert_eq!(
        q.runs_out_at(1, utc("2026-12-05T03:55:00Z"), &four, mins(120)),
        Some(utc("2026-12-05T04:00:00Z") + mins(120))
    );
}

#[test]
fn local_days_follow_the_zone_through_dst() {
    let berlin = DayClock::new(TimeZone::get("Europe/Berlin").unwrap(), 0, 0);
    // 2026-03-29 is 23 hours long in Berlin.
    let (start, next) = berlin.day_of(utc("2026-03-29T12:00:00Z"));
    assert_eq!(start, utc("2026-03-28T23:00:00Z"));
    assert_eq!(next, utc("2026-03-29T22:00:00Z"));
}

#[test]
fn a_restart_in_the_middle_of_a_day_keeps_what_was_used() {
    let days = DayClock::new(TimeZone::UTC, 0, 0);
    let mut q = QuotaLedger::default();
    q.open(1, utc("2026-12-04T09:00:00Z"), &days);
    q.close(1, utc("2026-12-04T09:40:00Z"), &days);
    q.open(1, utc("2026-12-04T10:00:00Z"), &days);
    // The daemon stops at 10:10 (the ledger stores closed time up to the
    // last close) and is back at 10:20 with the session still live.
    let stored: Vec<_> = q.snapshot().collect();
    let mut q = QuotaLedger::default();
    for (uid, u) in stored {
        q.restore(uid, u.day, u.closed_ms);
    }
    q.open(1, utc("2026-12-04T10:00:00Z"), &days); // restored session, opened at 10:00
    assert_eq!(q.used(1, utc("2026-12-04T10:20:00Z"), &days), mins(60));
    // A stored day that is over counts nothing today.
    let mut q = QuotaLedger::default();
    q.restore(1, utc("2026-12-03T00:00:00Z"), 3_600_000);
    assert_eq!(
        q.used(1, utc("2026-12-04T10:20:00Z"), &days),
        Duration::ZERO
    );
}
