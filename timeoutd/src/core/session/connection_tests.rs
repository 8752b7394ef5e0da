//! The notty witness arithmetic and its crediting over injected readings.

use super::*;
use std::net::{IpAddr, Ipv4Addr};

fn conn() -> Connection {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    Connection {
        local: SocketAddr::new(ip, 22),
        remote: SocketAddr::new(ip, 50_000),
        child: crate::core::session::ProcRef {
            pid: 2,
            start_time: 3,
        },
    }
}

/// A reading at `at_s` seconds, the client's last packet `lastrcv_ms` before it.
fn fig(at_s: i64, lastrcv_ms: i64, c: [u64; 6]) -> ConnRead {
    let read_at = Timestamp::from_secs(at_s);
    ConnRead::Figures(ConnFigures {
        read_at,
        last_recv: Timestamp(read_at.0 - lastrcv_ms),
        socket_written: c[0],
        socket_read: c[1],
        child_written: c[2],
        child_read: c[3],
        monitor_read: c[4],
        monitor_written: c[5],
    })
}

fn input(w: Witness) -> Option<Timestamp> {
    match w {
        Witness::Read { channel_input, .. } => channel_input,
        Witness::Unreadable => panic!("unreadable"),
    }
}

#[test]
fn keepalives_and_rekeying_are_not_channel_data() {
    let mut w = ConnWatch::new(conn(), Timestamp::from_secs(1_000_000));
    assert_eq!(
        input(w.update(fig(100, 0, [0; 6]))),
        Some(Timestamp::from_secs(100)),
        "the baseline credits the client's last packet before it"
    );
    // A ClientAlive probe and its reply (measured: 60 bytes out, 36 in).
    assert_eq!(
        input(w.update(fig(106, 500, [60, 36, 60, 36, 0, 0]))),
        Some(Timestamp::from_secs(100))
    );
    // A rekey: 96 bytes to the monitor for the host key signature, 92 back.
    assert_eq!(
        input(w.update(fig(110, 200, [2432, 2816, 2528, 2908, 96, 92]))),
        Some(Timestamp::from_secs(100))
    );
}

#[test]
fn client_data_that_reaches_a_channel_is_dated_at_the_last_packet() {
    let mut w = ConnWatch::new(conn(), Timestamp::from_secs(1_000_000));
    w.update(fig(100, 0, [0; 6]));
    // `cat >/dev/null` fed "x\n": 36 bytes read from the socket, 2 written to the pipe.
    let got = input(w.update(fig(103, 700, [0, 36, 2, 36, 0, 0])));
    assert_eq!(got, Some(Timestamp(102_300)));
    // Nothing more: the date stays.
    let got = input(w.update(fig(110, 7700, [0, 36, 2, 36, 0, 0])));
    assert_eq!(got, Some(Timestamp(102_300)));
}

#[test]
fn output_is_told_apart_from_input() {
    let mut w = ConnWatch::new(conn(), Timestamp::from_secs(1_000_000));
    w.update(fig(100, 0, [0; 6]));
    // A background job prints "out\n": 4 bytes read from the pipe, 44 written to the socket.
    let got = w.update(fig(102, 2000, [44, 0, 44, 4, 0, 0]));
    assert_eq!(
        got,
        Witness::Read {
            channel_input: Some(Timestamp::from_secs(100)),
            output: Some(Timestamp::from_secs(102)),
            fresh: false,
        }
    );
}

#[test]
fn a_failed_lookup_is_unreadable_and_changes_nothing() {
    let mut w = ConnWatch::new(conn(), Timestamp::from_secs(1_000_000));
    w.update(fig(100, 0, [0; 6]));
    w.update(fig(103, 0, [0, 36, 2, 36, 0, 0]));
    assert_eq!(w.update(ConnRead::Failed), Witness::Unreadable);
    // The next reading still compares with the last good one.
    let got = input(w.update(fig(109, 1000, [0, 72, 4, 72, 0, 0])));
    assert_eq!(got, Some(Timestamp(108_000)));
}

#[test]
fn a_connection_that_resets_brings_no_new_client_data() {
    let mut w = ConnWatch::new(conn(), Timestamp::from_secs(1_000_000));
    w.update(fig(100, 0, [0; 6]));
    w.update(fig(103, 0, [0, 36, 2, 36, 0, 0]));
    assert_eq!(input(w.update(ConnRead::Gone)), Some(Timestamp(103_000)));
    assert!(w.gone());
    // Afterwards a failure is not a reason to fall back, and nothing is credited.
    assert_eq!(input(w.update(ConnRead::Failed)), Some(Timestamp(103_000)));
    assert_eq!(
        input(w.update(fig(200, 0, [0, 99, 99, 99, 0, 0]))),
        Some(Timestamp(103_000))
    );
}

#[test]
fn counters_going_backwards_credit_nothing() {
    let mut w = ConnWatch::new(conn(), Timestamp::from_secs(1_000_000));
    w.update(fig(100, 9000, [500, 500, 500, 500, 0, 0]));
    assert_eq!(
        input(w.update(fig(101, 0, [10, 10, 20, 10, 0, 0]))),
        Some(Timestamp::from_secs(91))
    );
    assert_eq!(channel_bytes_of([0; 6], [10, 0, 5, 0, 0, 0]), (0, 0));
}

fn channel_bytes_of(a: [u64; 6], b: [u64; 6]) -> (u64, u64) {
    let f = |c: [u64; 6]| match fig(0, 0, c) {
        ConnRead::Figures(f) => f,
        _ => unreachable!(),
    };
    channel_bytes(&f(a), &f(b))
}

#[test]
fn channel_bytes_are_the_excess_over_the_socket_and_the_monitor() {
    // A forwarded request: "ping" in, 20 bytes "pong…" out.
    assert_eq!(
        channel_bytes_of([0; 6], [176, 208, 180, 228, 0, 0]),
        (4, 20)
    );
}

#[test]
fn a_restored_session_gains_nothing_from_the_baseline() {
    // Registered at 10, restored at 1000 with a keepalive at 999.
    let mut w = ConnWatch::new(conn(), Timestamp::from_secs(10 + 120));
    assert_eq!(
        input(w.update(fig(1000, 1000, [0; 6]))),
        Some(Timestamp::from_secs(130))
    );
}

#[test]
fn a_reading_taken_mid_transfer_keeps_the_earlier_one_so_no_input_is_lost() {
    let mut w = ConnWatch::new(conn(), Timestamp::from_secs(1_000_000));
    w.update(fig(100, 90, [1000, 1000, 1000, 1000, 0, 0]));
    // Typed bytes: the socket shows the echo already sent, the session
    // process's counter not yet (a torn reading): nothing is decided.
    let torn = w.update(fig(101, 100, [1010, 1040, 1000, 1000, 0, 0]));
    assert!(matches!(torn, Witness::Read { fresh: false, .. }));
    // The next reading spans both and credits the input at its packet.
    assert_eq!(
        input(w.update(fig(102, 100, [1010, 1040, 1015, 1045, 0, 0]))),
        Some(Timestamp(101_900))
    );
}

#[test]
fn a_reading_is_held_back_once_at_most() {
    let mut w = ConnWatch::new(conn(), Timestamp::from_secs(1_000_000));
    w.update(fig(100, 90, [1000, 1000, 1000, 1000, 0, 0]));
    // Two torn-looking readings in a row: the second is taken as it is.
    w.update(fig(101, 100, [1010, 1040, 1000, 1000, 0, 0]));
    let second = w.update(fig(102, 100, [1020, 1080, 1000, 1000, 0, 0]));
    assert!(matches!(second, Witness::Read { fresh: false, .. }));
    // And the baseline moved on: new input counts from there.
    assert_eq!(
        input(w.update(fig(103, 100, [1020, 1080, 1005, 1080, 0, 0]))),
        Some(Timestamp(102_900))
    );
}
