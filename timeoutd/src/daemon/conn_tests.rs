//! The connection state machine without a socket: frames in, replies out,
//! deadlines on a clock the test holds.

use super::*;
use session_timeout_proto::SessionKey;

const PEER: Peer = Peer {
    pid: 42,
    uid: 1000,
    gid: 1000,
};

fn unregister() -> Request {
    Request::Unregister(SessionKey::default())
}

fn frame_of(req: &Request) -> Vec<u8> {
    encode_frame(&req.encode())
}

/// The response queued on `c`, decoded.
fn queued_reply(c: &Conn) -> Response {
    let out = c.unsent();
    let len = u32::from_be_bytes(*out.first_chunk::<4>().unwrap()) as usize;
    assert_eq!(out.len(), 4 + len, "exactly one frame queued");
    Response::decode(&out[4..]).unwrap()
}

fn is_malformed_error(r: &Response) -> bool {
    matches!(
        r,
        Response::Error {
            code: ErrorCode::Malformed,
            ..
        }
    )
}

#[test]
fn a_request_split_across_reads_is_taken_once_whole() {
    let now = Instant::now();
    let mut c = Conn::new(PEER, now);
    let bytes = frame_of(&unregister());
    c.received(&bytes[..3]);
    assert!(!c.ready());
    assert_eq!(c.take(now), None);
    c.received(&bytes[3..]);
    assert!(c.ready());
    assert_eq!(c.take(now), Some(Frame::Request(unregister())));
    assert!(!c.ready());
}

#[test]
fn one_request_in_flight_and_none_taken_while_a_reply_is_unsent() {
    let now = Instant::now();
    let mut c = Conn::new(PEER, now);
    let mut burst = frame_of(&unregister());
    burst.extend(frame_of(&Request::List));
    c.received(&burst);
    assert_eq!(c.take(now), Some(Frame::Request(unregister())));
    assert!(!c.ready(), "in flight");
    assert_eq!(c.take(now), None);
    c.reply(&Response::Unregistered { session_id: 0 }, now);
    assert!(c.wants_output());
    assert!(!c.ready(), "the reply is unsent");
    assert_eq!(c.take(now), None);
    let n = c.unsent().len();
    c.sent(n - 1);
    assert!(!c.ready(), "one byte still unsent");
    c.sent(1);
    assert!(!c.wants_output());
    assert_eq!(c.take(now), Some(Frame::Request(Request::List)));
}

#[test]
fn an_oversized_prefix_is_refused_before_its_body_arrives() {
    let now = Instant::now();
    let mut c = Conn::new(PEER, now);
    c.received(&u32::MAX.to_be_bytes());
    assert!(c.ready(), "a bad prefix is known at once");
    assert!(matches!(c.take(now), Some(Frame::Malformed(_))));
    assert!(is_malformed_error(&queued_reply(&c)));
    assert!(!c.wants_input(), "nothing more is read");
    let just_over = u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes();
    let mut c = Conn::new(PEER, now);
    c.received(&just_over);
    assert!(matches!(c.take(now), Some(Frame::Malformed(_))));
    let mut c = Conn::new(PEER, now);
    c.received(&0u32.to_be_bytes());
    assert!(
        matches!(c.take(now), Some(Frame::Malformed(_))),
        "empty frame"
    );
}

#[test]
fn garbage_gets_an_error_reply_and_the_connection_closes_after_it() {
    let now = Instant::now();
    let mut c = Conn::new(PEER, now);
    c.received(&encode_frame(&[9, 1])); // unknown version
    let Some(Frame::Malformed(why)) = c.take(now) else {
        panic!("not malformed");
    };
    assert!(!why.is_empty());
    assert!(is_malformed_error(&queued_reply(&c)));
    assert!(!c.finished(now), "the error is still to be sent");
    let n = c.unsent().len();
    c.sent(n);
    assert!(c.finished(now), "closed once the error is sent");
}

#[test]
fn at_most_one_maximal_frame_is_buffered() {
    let now = Instant::now();
    let mut c = Conn::new(PEER, now);
    let len = u32::try_from(MAX_FRAME).unwrap();
    c.received(&len.to_be_bytes());
    assert_eq!(c.read_room(), MAX_FRAME);
    c.received(&vec![0; MAX_FRAME]);
    assert_eq!(c.read_room(), 0);
    assert!(!c.wants_input());
}

#[test]
fn a_stalled_client_expires_after_the_read_timeout() {
    let now = Instant::now();
    let mut c = Conn::new(PEER, now);
    c.received(&[0, 0, 0, 40, 1]);
    assert!(!c.finished(now + READ_TIMEOUT - Duration::from_millis(1)));
    assert!(c.finished(now + READ_TIMEOUT));
}

#[test]
fn a_request_being_answered_holds_the_deadline_off() {
    let now = Instant::now();
    let mut c = Conn::new(PEER, now);
    c.received(&frame_of(&Request::List));
    assert!(c.take(now).is_some());
    let late = now + READ_TIMEOUT * 3;
    assert!(!c.finished(late), "awaiting a reply");
    c.reply(&Response::Unregistered { session_id: 0 }, late);
    assert_eq!(
        c.deadline,
        late + READ_TIMEOUT,
        "the reply restarts the clock"
    );
    assert!(!c.finished(late + READ_TIMEOUT - Duration::from_millis(1)));
    assert!(c.finished(late + READ_TIMEOUT));
}

#[test]
fn end_of_input_answers_what_is_complete_then_closes() {
    let now = Instant::now();
    let mut c = Conn::new(PEER, now);
    c.received(&frame_of(&Request::List));
    c.end_of_input();
    assert!(!c.finished(now), "a complete request is still answered");
    assert!(c.take(now).is_some());
    assert!(!c.finished(now));
    c.reply(&Response::Unregistered { session_id: 0 }, now);
    let n = c.unsent().len();
    c.sent(n);
    assert!(c.finished(now));
}

#[test]
fn failures_drop_what_is_buffered() {
    let now = Instant::now();
    let mut c = Conn::new(PEER, now);
    c.received(&frame_of(&Request::List));
    c.read_failed();
    assert!(!c.ready());
    assert!(c.finished(now));
    let mut c = Conn::new(PEER, now);
    c.received(&frame_of(&Request::List));
    assert!(c.take(now).is_some());
    c.reply(&Response::Unregistered { session_id: 0 }, now);
    c.write_failed();
    assert!(!c.wants_output());
    assert!(c.finished(now));
}

#[test]
fn poll_waits_for_the_nearest_deadline_or_not_at_all() {
    let now = Instant::now();
    let hour = Duration::from_secs(3600);
    assert_eq!(poll_timeout([].iter(), hour, now), hour);
    let early = Conn::new(PEER, now);
    let late = Conn::new(PEER, now + Duration::from_secs(2));
    let conns = [late, early];
    assert_eq!(poll_timeout(conns.iter(), hour, now), READ_TIMEOUT);
    assert_eq!(
        poll_timeout(conns.iter(), Duration::from_secs(1), now),
        Duration::from_secs(1)
    );
    let mut ready = Conn::new(PEER, now);
    ready.received(&frame_of(&Request::List));
    assert_eq!(
        poll_timeout([ready].iter(), hour, now),
        Duration::ZERO,
        "a request is already buffered"
    );
    // A request whose reply is held (revalidate) does not make poll spin
    // once its connection's deadline has passed.
    let mut held = Conn::new(PEER, now);
    held.received(&frame_of(&Request::List));
    assert!(matches!(held.take(now), Some(Frame::Request(_))));
    let later = now + READ_TIMEOUT * 2;
    assert_eq!(poll_timeout([held].iter(), hour, later), hour);
}

#[test]
fn connection_limits_in_all_and_per_non_root_uid() {
    assert!(admit(1000, 0, 0).is_ok());
    assert!(admit(1000, MAX_CONNECTIONS - 1, MAX_PER_USER - 1).is_ok());
    let refused = admit(1000, 20, MAX_PER_USER).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "refusing a connection from uid 1000: 20 open in all (limit 4096), 16 from that uid (limit 16 for non-root)"
    );
    assert!(
        admit(0, 100, 100).is_ok(),
        "root is bound only by the total"
    );
    assert!(admit(0, MAX_CONNECTIONS, 0).is_err());
    assert!(admit(1000, MAX_CONNECTIONS, 0).is_err());
}

#[test]
fn limit_notices_are_rate_limited() {
    let now = Instant::now();
    let mut log = LimitLog::default();
    let ev = log.notice("full", now).unwrap();
    assert_eq!(ev.name(), "connection_limit");
    assert!(log.notice("full", now + Duration::from_secs(9)).is_none());
    assert!(log.notice("full", now + Duration::from_secs(10)).is_some());
}

#[test]
fn malformed_notices_name_the_peer() {
    let ev = malformed_notice(PEER, "bad length");
    assert_eq!(ev.name(), "request_malformed");
    let line = ev.to_string();
    assert!(
        line.contains("peer_uid=1000") && line.contains("peer_pid=42"),
        "{line}"
    );
}

#[test]
fn a_reply_sent_in_pieces_goes_out_whole_and_in_order() {
    let now = Instant::now();
    let mut c = Conn::new(PEER, now);
    c.received(&frame_of(&Request::List));
    assert_eq!(c.take(now), Some(Frame::Request(Request::List)));
    let reply = Response::Done {
        message: "x".repeat(10_000),
    };
    c.reply(&reply, now);
    let whole = c.unsent().to_vec();
    let mut got = Vec::new();
    while c.wants_output() {
        let piece = c.unsent().len().min(777);
        got.extend_from_slice(&c.unsent()[..piece]);
        c.sent(piece);
    }
    assert_eq!(got, whole);
    assert_eq!(Response::decode(&got[4..]).unwrap(), reply);
    assert!(c.unsent().is_empty());
}
