//! Arbitrary bytes into the frame layer and the message decoders.
//!
//! The daemon feeds whatever a client sends to `take_frame` and then to
//! `Request::decode`; clients feed the daemon's replies to `read_frame` and
//! `Response::decode`. None of them may panic, and anything that decodes
//! must survive `decode(encode(x)) == x` and re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_timeout_proto::{read_frame_limited, take_frame, Request, Response, MAX_FRAME};

fn check_body(body: &[u8]) {
    if let Ok(req) = Request::decode(body) {
        let enc = req.encode();
        assert_eq!(
            Request::decode(&enc).as_ref(),
            Ok(&req),
            "request round trip"
        );
        assert_eq!(enc, body, "request encoding is not canonical");
    }
    if let Ok(resp) = Response::decode(body) {
        let enc = resp.encode();
        assert_eq!(
            Response::decode(&enc).as_ref(),
            Ok(&resp),
            "response round trip"
        );
        assert_eq!(enc, body, "response encoding is not canonical");
    }
}

fuzz_target!(|data: &[u8]| {
    // The bytes as one message body.
    check_body(data);

    // The bytes as a stream of frames, the way the daemon's poll loop sees
    // them. A small limit as well as the real one, so that both the
    // "too long" and the "whole frame" paths are reached with short inputs.
    for max in [MAX_FRAME, 64] {
        let mut buf = data.to_vec();
        loop {
            let before = buf.len();
            match take_frame(&mut buf, max) {
                Ok(Some(body)) => {
                    assert!(!body.is_empty() && body.len() <= max);
                    assert_eq!(
                        buf.len(),
                        before - 4 - body.len(),
                        "take_frame consumed wrongly"
                    );
                    check_body(&body);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "an incomplete frame was consumed");
                    break;
                }
                Err(_) => break,
            }
        }
    }

    // The bytes as a blocking stream, the way a client reads a reply.
    let mut r = data;
    while let Ok(body) = read_frame_limited(&mut r, MAX_FRAME) {
        check_body(&body);
    }
});
