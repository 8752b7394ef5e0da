//! Unit tests of `civil`: refusals and deadlines in real instants, the
//! test-only offset, and sessions across both DST transitions.

use super::*;
use crate::core::policy::window::Window;

fn utc(s: &str) -> Timestamp {
    Timestamp(s.parse::<jiff::Timestamp>().unwrap().as_millisecond())
}

fn limits(hours: &[&str], daily: Option<u64>) -> Limits {
    Limits {
        hours: (!hours.is_empty())
            .then(|| Windows(hours.iter().map(|h| Window::parse(h).unwrap()).collect())),
        daily: daily.map(Duration::from_secs),
        ..Limits::builtin()
    }
}

#[test]
fn outside_the_window_a_login_is_refused_with_the_next_opening() {
    let c = Civil::new(TimeZone::get("Europe/Berlin").unwrap(), (0, 0), 0);
    let l = limits(&["Mon-Fri 07:00-19:00"], None);
    // Friday 2026-12-04 19:30 CET.
    let r = c.refusal("ann", &l, utc("2026-12-04T18:30:00Z")).unwrap();
    assert_eq!(r.reason, Closed::Window);
    assert_eq!(r.until, Some(utc("2026-12-07T06:00:00Z")));
    assert!(
        r.message.contains("again at Mon 2026-12-07 07:00:00 CET"),
        "{}",
        r.message
    );
    assert_eq!(c.refusal("ann", &l, utc("2026-12-04T12:00:00Z")), None);
    assert_eq!(
        c.window_deadline(&l, utc("2026-12-04T12:00:00Z")),
        Some(utc("2026-12-04T18:00:00Z"))
    );
    // Outside the window a live session's deadline is the close that passed.
    assert_eq!(
        c.window_deadline(&l, utc("2026-12-04T18:30:00Z")),
        Some(utc("2026-12-04T18:00:00Z"))
    );
}

#[test]
fn the_offset_shifts_the_wall_clock_not_the_instants() {
    // The civil clock runs 3600 s ahead: at 17:30Z it reads 18:30Z.
    let c = Civil::new(TimeZone::UTC, (0, 0), 3600);
    let l = limits(&["daily 09:00-18:00"], None);
    assert!(c.refusal("ann", &l, utc("2026-12-04T17:30:00Z")).is_some());
    // At 16:30Z it reads 17:30: open, and the close at civil 18:00 is 17:00Z.
    assert_eq!(
        c.window_deadline(&l, utc("2026-12-04T16:30:00Z")),
        Some(utc("2026-12-04T17:00:00Z"))
    );
}

/// Runs a session from `login` to the first window deadline the way the
/// engine does (deadline recomputed at every look), looking every `step`
/// seconds, and returns the instants at which it would be ended.
fn ends(c: &Civil, l: &Limits, login: Timestamp, until: Timestamp, step: i64) -> Vec<Timestamp> {
    let mut out = Vec::new();
    let mut t = login;
    let mut alive = true;
    while t <= until {
        if alive {
            if let Some(d) = c.window_deadline(l, t) {
                if d <= t {
                    out.push(d);
                    alive = false;
                }
            }
        }
        t = Timestamp(t.0 + step * 1000);
    }
    out
}

#[test]
fn a_session_across_dst_is_ended_once_and_on_time() {
    for (zone, night, close) in [
        // Berlin falls back at 03:00 CEST on 2026-10-25: 02:00-03:00 twice.
        (
            "Europe/Berlin",
            "2026-10-24T20:00:00Z",
            "2026-10-25T05:00:00Z",
        ),
        // Berlin springs forward on 2026-03-29: 06:00 CEST is 04:00Z.
        (
            "Europe/Berlin",
            "2026-03-28T20:00:00Z",
            "2026-03-29T04:00:00Z",
        ),
        // New York springs forward 2026-03-08: 06:00 EDT is 10:00Z.
        (
            "America/New_York",
            "2026-03-08T01:00:00Z",
            "2026-03-08T10:00:00Z",
        ),
        // New York falls back 2026-11-01: 06:00 EST is 11:00Z.
        (
            "America/New_York",
            "2026-11-01T01:00:00Z",
            "2026-11-01T11:00:00Z",
        ),
    ] {
        let c = Civil::new(TimeZone::get(zone).unwrap(), (0, 0), 0);
        let l = limits(&["Sat 20:00-06:00"], None);
        let found = ends(
            &c,
            &l,
            utc(night),
            utc(night) + Duration::from_secs(86_400),
            60,
        );
        assert_eq!(found, [utc(close)], "{zone} from {night}");
    }
}

#[test]
fn quota_deadline_and_refusal_until_the_reset() {
    let mut c = Civil::new(TimeZone::UTC, (4, 0), 0);
    let l = limits(&[], Some(1800));
    let t = utc("2026-12-04T10:00:00Z");
    assert_eq!(c.quota_deadline("kiosk", &l, t), None);
    c.session_opened("kiosk", t);
    c.session_opened("kiosk", t + Duration::from_secs(600));
    c.session_closed("kiosk", t + Duration::from_secs(900));
    assert_eq!(
        c.quota_deadline("kiosk", &l, t + Duration::from_secs(900)),
        Some(t + Duration::from_secs(1800))
    );
    c.session_closed("kiosk", t + Duration::from_secs(1800));
    let r = c
        .refusal("kiosk", &l, t + Duration::from_secs(1900))
        .unwrap();
    assert_eq!(r.reason, Closed::Quota);
    assert_eq!(r.until, Some(utc("2026-12-05T04:00:00Z")));
    assert!(
        r.message.contains("resets at Sat 2026-12-05 04:00:00 UTC"),
        "{}",
        r.message
    );
    assert_eq!(c.refusal("kiosk", &l, utc("2026-12-05T04:00:00Z")), None);
    assert_eq!(
        c.quota_left("kiosk", &l, utc("2026-12-05T04:00:01Z")),
        Some(Duration::from_secs(1800))
    );
}

#[test]
fn a_cached_close_is_used_only_inside_the_window_it_was_computed_in() {
    let c = Civil::new(TimeZone::UTC, (0, 0), 0);
    let l = limits(&["daily 09:00-10:00"], None);
    let t = utc("2026-12-04T09:30:00Z");
    assert_eq!(c.window_deadline(&l, t), Some(utc("2026-12-04T10:00:00Z")));
    assert_eq!(
        c.window_deadline(&l, utc("2026-12-04T09:59:59Z")),
        Some(utc("2026-12-04T10:00:00Z"))
    );
    // After the close: the passed close, then the next day's window.
    assert_eq!(
        c.window_deadline(&l, utc("2026-12-04T10:00:00Z")),
        Some(utc("2026-12-04T10:00:00Z"))
    );
    assert_eq!(
        c.window_deadline(&l, utc("2026-12-05T09:00:00Z")),
        Some(utc("2026-12-05T10:00:00Z"))
    );
    // Before the instant it was computed at, it is not trusted either.
    assert_eq!(
        c.window_deadline(&l, utc("2026-12-04T09:10:00Z")),
        Some(utc("2026-12-04T10:00:00Z"))
    );
    let other = limits(&["daily 09:00-09:45"], None);
    assert_eq!(
        c.window_deadline(&other, t),
        Some(utc("2026-12-04T09:45:00Z"))
    );
}
