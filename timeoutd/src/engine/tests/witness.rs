//! The login's connection as the witness of activity (issue 12), over the
//! fake system's injected clock and readings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::core::session::connection::{ConnFigures, ConnRead, Connection};
use crate::core::session::ProcRef;
use crate::core::time::clock::Timestamp;
use crate::engine::testkit::*;
use crate::engine::{ConnSearch, Engine};

fn conn() -> Connection {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    Connection {
        local: SocketAddr::new(ip, 2222),
        remote: SocketAddr::new(ip, 50_123),
        child: ProcRef {
            pid: 501,
            start_time: 501,
        },
    }
}

fn figures() -> ConnFigures {
    ConnFigures {
        read_at: Timestamp(0),
        last_recv: Timestamp::from_secs(1000),
        socket_written: 0,
        socket_read: 0,
        child_written: 0,
        child_read: 0,
        monitor_read: 0,
        monitor_written: 0,
    }
}

fn with_conn(e: &mut Engine<crate::engine::testkit::Fake>) {
    e.sys.conn_search = Some(ConnSearch::Found(conn()));
    e.sys.conn_read = Some(ConnRead::Figures(figures()));
}

/// A keepalive (probe and reply: socket bytes only) at `t`.
fn keepalive(e: &mut Engine<crate::engine::testkit::Fake>, t: i64) {
    if let Some(ConnRead::Figures(f)) = &mut e.sys.conn_read {
        f.last_recv = Timestamp::from_secs(t);
        f.socket_read += 36;
        f.child_read += 36;
        f.socket_written += 60;
        f.child_written += 60;
    }
}

/// Client data that reaches a channel at `t` (e.g. "x\n" to `cat`).
fn client_data(e: &mut Engine<crate::engine::testkit::Fake>, t: i64) {
    if let Some(ConnRead::Figures(f)) = &mut e.sys.conn_read {
        f.last_recv = Timestamp::from_secs(t);
        f.socket_read += 36;
        f.child_read += 36;
        f.child_written += 2;
    }
}

fn expired_deadline(e: &Engine<crate::engine::testkit::Fake>) -> i64 {
    let ev = find(e, "session_expired");
    assert_eq!(ev.get("reason"), Some("idle"));
    ev.get("deadline").unwrap().parse().unwrap()
}

#[test]
fn the_connection_is_logged_with_the_terminal() {
    let mut e = engine(limits(Some(15), None, &[]));
    with_conn(&mut e);
    e.register(registration(), ROOT);
    run_until(&mut e, 1001);
    let c = find(&e, "session_connection");
    assert_eq!(c.get("conn"), Some("2222:50123"));
    assert_eq!(c.get("activity_source"), Some("client"));
    assert_eq!(find(&e, "session_tty").get("conn"), Some("2222:50123"));
}

#[test]
fn without_a_terminal_keepalives_and_background_io_do_not_count() {
    let mut e = engine(limits(Some(15), Some(600), &[]));
    e.sys.tty_appears_at = None;
    with_conn(&mut e);
    e.register(registration(), ROOT);
    for t in (1002..=1040).step_by(2) {
        run_until(&mut e, t);
        keepalive(&mut e, t);
        e.sys.io += 1000; // a background loop: process I/O is not looked at
    }
    assert_eq!(expired_deadline(&e), 1015);
}

#[test]
fn without_a_terminal_client_data_counts_at_its_packet() {
    let mut e = engine(limits(Some(15), Some(600), &[]));
    e.sys.tty_appears_at = None;
    with_conn(&mut e);
    e.register(registration(), ROOT);
    for t in (1003..=1030).step_by(3) {
        run_until(&mut e, t);
        client_data(&mut e, t);
    }
    run_until(&mut e, 1060);
    // The last data at 1030: ended 15 s later, to the second.
    assert_eq!(expired_deadline(&e), 1045);
}

#[test]
fn with_keepalives_after_the_data_the_credit_is_late_by_one_look_at_most() {
    let mut e = engine(limits(Some(15), Some(600), &[]));
    e.sys.tty_appears_at = None;
    with_conn(&mut e);
    e.register(registration(), ROOT);
    run_until(&mut e, 1005);
    client_data(&mut e, 1005);
    for t in (1006..=1060).step_by(2) {
        run_until(&mut e, t);
        keepalive(&mut e, t);
    }
    // Looked at every 3 s (a fifth of 15 s): dated at most 3 s late.
    let d = expired_deadline(&e);
    assert!((1020..=1023).contains(&d), "{d}");
}

#[test]
fn a_failed_lookup_falls_back_and_never_ends_early() {
    let mut e = engine(limits(Some(15), Some(600), &[]));
    e.sys.tty_appears_at = None;
    with_conn(&mut e);
    e.register(registration(), ROOT);
    run_until(&mut e, 1005);
    // sock_diag fails from now on: the process I/O rule applies again.
    e.sys.conn_read = None;
    for t in (1006..=1030).step_by(2) {
        e.sys.io += 100;
        run_until(&mut e, t);
    }
    assert!(
        e.sys.events.iter().all(|ev| ev.name() != "session_expired"),
        "not ended while its processes did I/O"
    );
    let fallbacks: Vec<_> = e
        .sys
        .events
        .iter()
        .filter(|ev| ev.name() == "session_connection" && ev.get("reason").is_some())
        .collect();
    assert_eq!(fallbacks.len(), 1, "said once");
    assert_eq!(fallbacks[0].get("activity_source"), Some("io"));
    assert_eq!(fallbacks[0].get("reason"), Some("lookup_failed"));
}

#[test]
fn a_connection_that_resets_brings_no_new_data() {
    let mut e = engine(limits(Some(15), Some(600), &[]));
    e.sys.tty_appears_at = None;
    with_conn(&mut e);
    e.register(registration(), ROOT);
    run_until(&mut e, 1004);
    client_data(&mut e, 1004);
    // Looks while the terminal is looked for: 1006.2 and 1012.6 at the latest.
    run_until(&mut e, 1013);
    e.sys.conn_read = Some(ConnRead::Gone);
    for t in (1007..=1030).step_by(2) {
        e.sys.io += 100;
        run_until(&mut e, t);
    }
    assert_eq!(expired_deadline(&e), 1019);
}

#[test]
fn terminal_input_the_client_never_sent_gains_nothing() {
    let mut e = engine(limits(Some(15), None, &[]));
    with_conn(&mut e);
    e.register(registration(), ROOT);
    // TIOCSTI every 4 s moves atime; the client only sends keepalives.
    for t in (1004..=1040).step_by(4) {
        run_until(&mut e, t);
        e.sys.ttys.insert("pts/4".into(), times(t, 995));
        keepalive(&mut e, t);
    }
    assert_eq!(expired_deadline(&e), 1015);
    assert_eq!(
        find(&e, "tamper_suspected").get("reason"),
        Some("no_client_input")
    );
}

#[test]
fn terminal_input_the_client_sent_is_credited_at_its_packet() {
    let mut e = engine(limits(Some(15), None, &[]));
    with_conn(&mut e);
    e.register(registration(), ROOT);
    for t in (1003..=1030).step_by(3) {
        run_until(&mut e, t);
        e.sys.ttys.insert("pts/4".into(), times(t, 995));
        client_data(&mut e, t);
    }
    run_until(&mut e, 1060);
    // The last keystroke at 1030 (its atime window ends at 1032): ended 15 s
    // after the packet, not after the window.
    assert_eq!(expired_deadline(&e), 1045);
    assert!(e
        .sys
        .events
        .iter()
        .all(|ev| ev.name() != "tamper_suspected"));
}

#[test]
fn a_pty_made_after_registration_is_the_logins_own_activity() {
    let mut e = engine(limits(Some(15), None, &[]));
    with_conn(&mut e);
    // A slow login: the pty appears 6 s after registration.
    e.sys.tty_appears_at = Some(Timestamp::from_secs(1006));
    e.sys.ttys.insert("pts/4".into(), times(1006, 1006));
    e.register(registration(), ROOT);
    run_until(&mut e, 1040);
    assert_eq!(expired_deadline(&e), 1021);
}
