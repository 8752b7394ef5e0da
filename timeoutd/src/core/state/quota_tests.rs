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
    q.open("kiosk", utc("2026-12-04T10:00:00Z"), &days);
    q.open("kiosk", utc("2026-12-04T10:30:00Z"), &days);
    q.close("kiosk", utc("2026-12-04T11:00:00Z"), &days);
    assert_eq!(
        q.used("kiosk", utc("2026-12-04T11:15:00Z"), &days),
        mins(75)
    );
    q.close("kiosk", utc("2026-12-04T11:30:00Z"), &days);
    q.open("kiosk", utc("2026-12-04T12:00:00Z"), &days);
    q.close("kiosk", utc("2026-12-04T12:10:00Z"), &days);
    assert_eq!(
        q.used("kiosk", utc("2026-12-04T13:00:00Z"), &days),
        mins(100)
    );
    // Another user is counted apart.
    assert_eq!(
        q.used("other", utc("2026-12-04T13:00:00Z"), &days),
        Duration::ZERO
    );
}

#[test]
fn when_the_quota_runs_out() {
    let days = DayClock::new(TimeZone::UTC, 0, 0);
    let mut q = QuotaLedger::default();
    let t = utc("2026-12-04T10:00:00Z");
    assert_eq!(
        q.runs_out_at("kiosk", t, &days, mins(30)),
        None,
        "no session, nothing used"
    );
    q.open("kiosk", t, &days);
    q.open("kiosk", t + mins(5), &days);
    assert_eq!(
        q.runs_out_at("kiosk", t + mins(10), &days, mins(30)),
        Some(t + mins(30))
    );
    // Already over: the instant it ran out.
    assert_eq!(
        q.runs_out_at("kiosk", t + mins(40), &days, mins(30)),
        Some(t + mins(30))
    );
}

#[test]
fn the_day_resets_at_midnight_or_at_day_starts() {
    let mut q = QuotaLedger::default();
    let midnight = DayClock::new(TimeZone::UTC, 0, 0);
    q.open("kiosk", utc("2026-12-04T23:00:00Z"), &midnight);
    // An interval across midnight is split there.
    assert_eq!(
        q.used("kiosk", utc("2026-12-05T00:30:00Z"), &midnight),
        mins(30)
    );
    q.close("kiosk", utc("2026-12-05T01:00:00Z"), &midnight);
    assert_eq!(
        q.used("kiosk", utc("2026-12-05T02:00:00Z"), &midnight),
        mins(60)
    );

    let four = DayClock::new(TimeZone::UTC, 4, 0);
    let mut q = QuotaLedger::default();
    q.open("kiosk", utc("2026-12-05T01:00:00Z"), &four);
    q.close("kiosk", utc("2026-12-05T02:00:00Z"), &four);
    // Still the day that began at 04:00 yesterday.
    assert_eq!(
        q.used("kiosk", utc("2026-12-05T03:59:00Z"), &four),
        mins(60)
    );
    assert_eq!(
        q.used("kiosk", utc("2026-12-05T04:00:00Z"), &four),
        Duration::ZERO
    );
    // A quota that would run out after the reset is whole again then.
    q.open("kiosk", utc("2026-12-05T03:50:00Z"), &four);
    assert_eq!(
        q.runs_out_at("kiosk", utc("2026-12-05T03:55:00Z"), &four, mins(120)),
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
    q.open("kiosk", utc("2026-12-04T09:00:00Z"), &days);
    q.close("kiosk", utc("2026-12-04T09:40:00Z"), &days);
    q.open("kiosk", utc("2026-12-04T10:00:00Z"), &days);
    q.open("other", utc("2026-12-04T10:05:00Z"), &days);
    // The daemon dies at 10:10 and is back at 10:20: kiosk's session is
    // still live, other's ended while the daemon was down.
    let stored = q.to_text();
    let mut q = QuotaLedger::from_text(&stored).unwrap();
    q.open("kiosk", utc("2026-12-04T10:20:00Z"), &days); // restored session
    q.settle(utc("2026-12-04T10:20:00Z"), &days);
    // 40 min before, and 10:00 to 10:30 with the session that went on.
    assert_eq!(
        q.used("kiosk", utc("2026-12-04T10:30:00Z"), &days),
        mins(70)
    );
    // other's interval closes at the restart: the downtime counts.
    assert_eq!(
        q.used("other", utc("2026-12-04T10:30:00Z"), &days),
        mins(15)
    );
    assert_eq!(
        q.runs_out_at("other", utc("2026-12-04T10:30:00Z"), &days, mins(60)),
        None,
        "no live session, the clock stands"
    );
    // A stored day that is over counts nothing today.
    let q = QuotaLedger::from_text(&format!(
        "{TEXT_HEADER}\nkiosk\t{}\t3600000\t-\n",
        utc("2026-12-03T00:00:00Z").0
    ))
    .unwrap();
    assert_eq!(
        q.used("kiosk", utc("2026-12-04T10:20:00Z"), &days),
        Duration::ZERO
    );
    for bad in ["kiosk\t1", "kiosk\tx\t1\t-", "kiosk\t1\t2\tsoon"] {
        assert!(QuotaLedger::from_text(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_quota_that_ran_out_keeps_its_instant() {
    let days = DayClock::new(TimeZone::UTC, 0, 0);
    let mut q = QuotaLedger::default();
    let t = utc("2026-12-04T10:00:00Z");
    q.open("kiosk", t, &days);
    // Two looks after it ran out name the same deadline: logged once.
    assert_eq!(
        q.runs_out_at("kiosk", t + mins(31), &days, mins(30)),
        Some(t + mins(30))
    );
    assert_eq!(
        q.runs_out_at("kiosk", t + mins(45), &days, mins(30)),
        Some(t + mins(30))
    );
    assert_eq!(q.left("kiosk", t + mins(10), &days, mins(30)), mins(20));
}

#[test]
fn the_reset_gives_a_live_session_a_whole_quota_in_berlin() {
    // 2026-03-29 has 23 hours in Berlin: the reset is at the civil midnight.
    let days = DayClock::new(TimeZone::get("Europe/Berlin").unwrap(), 0, 0);
    let mut q = QuotaLedger::default();
    q.open("kiosk", utc("2026-03-29T21:50:00Z"), &days);
    // 20 minutes of a 30-minute quota would end after the day's end (22:00Z).
    assert_eq!(
        q.runs_out_at("kiosk", utc("2026-03-29T21:55:00Z"), &days, mins(30)),
        Some(utc("2026-03-29T22:30:00Z"))
    );
    assert_eq!(
        q.used("kiosk", utc("2026-03-29T22:10:00Z"), &days),
        mins(10)
    );
}
