//! Unit tests of `window`: a week of windows, midnight, and both DST
//! transitions in Europe/Berlin and America/New_York, from the system's tz
//! database.

use super::*;

fn utc(s: &str) -> Timestamp {
    Timestamp(s.parse::<jiff::Timestamp>().unwrap().as_millisecond())
}

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn windows(specs: &[&str]) -> Windows {
    Windows(specs.iter().map(|s| Window::parse(s).unwrap()).collect())
}

fn open_until(w: &Windows, at: &str, zone: &TimeZone) -> Option<Timestamp> {
    match w.state_at(utc(at), zone) {
        WindowState::Open { closes_at } => Some(closes_at),
        WindowState::Closed { .. } => None,
    }
}

fn opens_at(w: &Windows, at: &str, zone: &TimeZone) -> Option<Timestamp> {
    match w.state_at(utc(at), zone) {
        WindowState::Closed { opens_at } => opens_at,
        WindowState::Open { .. } => panic!("open at {at}"),
    }
}

#[test]
fn parses_days_ranges_lists_and_rejects_nonsense() {
    let w = Window::parse("Mon-Fri 07:00-19:00").unwrap();
    assert_eq!((w.days, w.start, w.end), (0b001_1111, 420, 1140));
    assert_eq!(
        Window::parse("Fri-Mon 22:00-02:00").unwrap().days,
        0b111_0001
    );
    assert_eq!(
        Window::parse("sat,SUN 00:00-24:00").unwrap().days,
        0b110_0000
    );
    assert_eq!(Window::parse("daily 09:00-00:00").unwrap().end, 1440);
    for bad in [
        "",
        "Mon",
        "Mon 07:00",
        "Mon 7:00-19:00",
        "Mon 07:00-25:00",
        "Mon 07:60-08:00",
        "Moon 07:00-08:00",
        "Mon 07:00-07:00",
        "Mon 24:00-01:00",
        "Mon 07:00-08:00 extra",
    ] {
        assert!(Window::parse(bad).is_err(), "{bad:?} was accepted");
    }
    assert!(Window::parse("Xyz 07:00-08:00")
        .unwrap_err()
        .to_string()
        .contains("not a day"));
}

#[test]
fn a_week_of_office_hours_in_utc() {
    let z = TimeZone::UTC;
    let w = windows(&["Mon-Fri 07:00-19:00", "Sat 09:00-13:00"]);
    // Friday 2026-12-04.
    assert_eq!(
        open_until(&w, "2026-12-04T12:00:00Z", &z),
        Some(utc("2026-12-04T19:00:00Z"))
    );
    assert_eq!(
        opens_at(&w, "2026-12-04T19:00:00Z", &z),
        Some(utc("2026-12-05T09:00:00Z"))
    );
    assert_eq!(
        opens_at(&w, "2026-12-05T13:00:00Z", &z),
        Some(utc("2026-12-07T07:00:00Z"))
    );
    assert_eq!(
        opens_at(&w, "2026-12-07T06:59:59Z", &z),
        Some(utc("2026-12-07T07:00:00Z"))
    );
    assert_eq!(
        Windows::default().state_at(utc("2026-12-04T12:00:00Z"), &z),
        WindowState::Closed { opens_at: None }
    );
}

#[test]
fn a_window_across_midnight_belongs_to_its_start_day() {
    let z = TimeZone::UTC;
    let w = windows(&["Fri 22:00-02:00"]);
    assert_eq!(
        open_until(&w, "2026-12-04T23:30:00Z", &z),
        Some(utc("2026-12-05T02:00:00Z"))
    );
    // Saturday 01:00 is still Friday's window.
    assert_eq!(
        open_until(&w, "2026-12-05T01:00:00Z", &z),
        Some(utc("2026-12-05T02:00:00Z"))
    );
    // Saturday 23:00 is not a window (it starts on Fridays only).
    assert_eq!(
        opens_at(&w, "2026-12-05T23:00:00Z", &z),
        Some(utc("2026-12-11T22:00:00Z"))
    );
}

#[test]
fn touching_windows_count_as_one() {
    let z = TimeZone::UTC;
    let w = windows(&["Fri 20:00-24:00", "Sat 00:00-03:00"]);
    assert_eq!(
        open_until(&w, "2026-12-04T21:00:00Z", &z),
        Some(utc("2026-12-05T03:00:00Z"))
    );
}

#[test]
fn berlin_spring_forward_keeps_wall_clock_times() {
    let z = tz("Europe/Berlin");
    let w = windows(&["daily 08:00-18:00"]);
    // Saturday 18:00 CET is 17:00Z; Sunday (CEST from 02:00) 18:00 is 16:00Z.
    assert_eq!(
        open_until(&w, "2026-03-28T12:00:00Z", &z),
        Some(utc("2026-03-28T17:00:00Z"))
    );
    assert_eq!(
        open_until(&w, "2026-03-29T12:00:00Z", &z),
        Some(utc("2026-03-29T16:00:00Z"))
    );
    // A close time inside the gap (02:30 does not exist) is taken after it: 03:30 CEST.
    let w = windows(&["Sun 01:00-02:30"]);
    assert_eq!(
        open_until(&w, "2026-03-29T00:30:00Z", &z),
        Some(utc("2026-03-29T01:30:00Z"))
    );
}

#[test]
fn berlin_fall_back_closes_at_the_first_of_two_equal_wall_times() {
    let z = tz("Europe/Berlin");
    let w = windows(&["Sun 00:00-02:30"]);
    // 02:30 happens twice on 2026-10-25; the window ends at the first (CEST, 00:30Z),
    // never an hour late.
    assert_eq!(
        open_until(&w, "2026-10-25T00:00:00Z", &z),
        Some(utc("2026-10-25T00:30:00Z"))
    );
    assert_eq!(
        opens_at(&w, "2026-10-25T00:30:00Z", &z),
        Some(utc("2026-10-31T23:00:00Z"))
    );
}

#[test]
fn new_york_both_transitions() {
    let z = tz("America/New_York");
    let w = windows(&["Sun 09:00-17:00"]);
    // EST (UTC-5) the week before, EDT (UTC-4) from 2026-03-08.
    assert_eq!(
        open_until(&w, "2026-03-01T15:00:00Z", &z),
        Some(utc("2026-03-01T22:00:00Z"))
    );
    assert_eq!(
        open_until(&w, "2026-03-08T15:00:00Z", &z),
        Some(utc("2026-03-08T21:00:00Z"))
    );
    // Back to EST on 2026-11-01: 17:00 EST is 22:00Z.
    assert_eq!(
        open_until(&w, "2026-11-01T15:00:00Z", &z),
        Some(utc("2026-11-01T22:00:00Z"))
    );
    // 01:30 happens twice that night: the first (EDT, 05:30Z).
    let w = windows(&["Sun 00:00-01:30"]);
    assert_eq!(
        open_until(&w, "2026-11-01T04:30:00Z", &z),
        Some(utc("2026-11-01T05:30:00Z"))
    );
}

#[test]
fn a_window_prints_as_the_config_writes_it() {
    for spec in [
        "Mon-Fri 07:00-19:00",
        "Fri 22:00-02:00",
        "daily 09:00-00:00",
        "Mon,Wed-Thu 08:00-09:30",
    ] {
        assert_eq!(Window::parse(spec).unwrap().to_string(), spec);
    }
}
