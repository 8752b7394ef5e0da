//! Property tests of the wire protocol, proptest-style but without a new
//! dependency: a small deterministic generator (xorshift64*) builds random
//! requests and responses, and every property is checked on thousands of
//! them. The seed is fixed so a failure reproduces; `PROTO_SEED=N` explores
//! other seeds, and a failure message names the seed and the case number.
//!
//! Properties:
//! - `decode(encode(x)) == x` for every request and response;
//! - every strict prefix of an encoding fails to decode, and so does the
//!   encoding with a byte appended or with another version byte;
//! - framing: `take_frame` returns the body of `encode_frame(body)` and
//!   leaves a partial frame untouched, and `read_frame` agrees;
//! - mutated encodings never panic, and whatever decodes re-encodes to the
//!   very same bytes (the encoding is canonical).

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod protocol_roundtrip_support;

use protocol_roundtrip_support::corpus::corpus_values;
use protocol_roundtrip_support::Rng;
use session_timeout_proto::{
    encode_frame, read_frame, take_frame, DecodeError, Request, Response, MAX_FRAME, VERSION,
};

/// Random values per property. Each case is a few microseconds.
const CASES: usize = 2000;

fn seed() -> u64 {
    std::env::var("PROTO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5e55_1013_7173_0d11)
}

/// The checks every encoding must pass, whatever type it is.
fn check_encoding<T: PartialEq + std::fmt::Debug>(
    what: &str,
    value: &T,
    body: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) {
    assert_eq!(body.first(), Some(&VERSION), "{what}: version byte first");
    assert_eq!(
        decode(body).as_ref(),
        Ok(value),
        "{what}: decode(encode(x)) != x"
    );
    // Every prefix of a short body; of a long one, the first and last 300
    // (where the header and the last fields end) and every 7th in between.
    let cuts = (0..body.len()).filter(|&c| c < 300 || c + 300 >= body.len() || c % 7 == 0);
    for cut in cuts {
        assert!(
            decode(&body[..cut]).is_err(),
            "{what}: the {cut}-byte prefix of a {}-byte encoding decoded",
            body.len()
        );
    }
    let mut longer = body.to_vec();
    longer.push(0);
    assert_eq!(
        decode(&longer).err(),
        Some(DecodeError::TrailingBytes(1)),
        "{what}: a trailing byte was accepted"
    );
    let mut other = body.to_vec();
    other[0] = VERSION.wrapping_add(1);
    assert_eq!(
        decode(&other).err(),
        Some(DecodeError::UnsupportedVersion(VERSION.wrapping_add(1))),
        "{what}: another version was accepted"
    );
}

#[test]
fn requests_round_trip_and_every_prefix_fails() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mut kinds = std::collections::BTreeSet::new();
    for case in 0..CASES {
        let req = rng.request();
        let body = req.encode();
        kinds.insert(body[1]);
        check_encoding(
            &format!("seed {seed} case {case} {req:?}"),
            &req,
            &body,
            Request::decode,
        );
    }
    assert_eq!(kinds.len(), 16, "the generator missed request kinds");
}

#[test]
fn responses_round_trip_and_every_prefix_fails() {
    let seed = seed() ^ 0xa5a5;
    let mut rng = Rng::new(seed);
    let mut kinds = std::collections::BTreeSet::new();
    for case in 0..CASES {
        let resp = rng.response();
        let body = resp.encode();
        kinds.insert(body[1]);
        check_encoding(
            &format!("seed {seed} case {case} {resp:?}"),
            &resp,
            &body,
            Response::decode,
        );
    }
    assert_eq!(kinds.len(), 10, "the generator missed response kinds");
}

#[test]
fn frames_round_trip_through_take_frame_and_read_frame() {
    let seed = seed() ^ 0x5a5a;
    let mut rng = Rng::new(seed);
    for case in 0..CASES / 3 {
        let (a, b) = (rng.request().encode(), rng.request().encode());
        let mut wire = encode_frame(&a);
        wire.extend_from_slice(&encode_frame(&b));
        // Every prefix that ends inside the first frame: nothing yet, nothing consumed.
        for cut in 0..4 + a.len() {
            let mut part = wire[..cut].to_vec();
            assert_eq!(
                take_frame(&mut part, MAX_FRAME),
                Ok(None),
                "seed {seed} case {case} cut {cut}"
            );
            assert_eq!(part.len(), cut, "a partial frame was consumed");
        }
        let mut buf = wire.clone();
        assert_eq!(take_frame(&mut buf, MAX_FRAME), Ok(Some(a.clone())));
        assert_eq!(take_frame(&mut buf, MAX_FRAME), Ok(Some(b.clone())));
        assert!(buf.is_empty());
        let mut r = wire.as_slice();
        assert_eq!(read_frame(&mut r).expect("first frame"), a);
        assert_eq!(read_frame(&mut r).expect("second frame"), b);
    }
    // Lengths outside 1..=MAX_FRAME are refused as soon as the header is in.
    for len in [0u32, MAX_FRAME as u32 + 1, u32::MAX] {
        let mut buf = len.to_be_bytes().to_vec();
        assert_eq!(
            take_frame(&mut buf, MAX_FRAME),
            Err(DecodeError::BadLength(u64::from(len)))
        );
    }
}

/// Flips, inserts, deletes and overwrites bytes of valid encodings. Nothing
/// may panic, and anything that decodes must re-encode to the same bytes.
#[test]
fn mutated_encodings_never_panic_and_decode_canonically() {
    let seed = seed() ^ 0x1234_5678;
    let mut rng = Rng::new(seed);
    let mut decoded = 0usize;
    for case in 0..CASES * 4 {
        let mut body = if rng.bool() {
            rng.request().encode()
        } else {
            rng.response().encode()
        };
        for _ in 0..=rng.below(3) {
            let at = rng.below(body.len() as u64 + 1) as usize;
            match rng.below(4) {
                0 if at < body.len() => body[at] ^= 1 << rng.below(8),
                1 => body.insert(at, rng.next() as u8),
                2 if at < body.len() => {
                    body.remove(at);
                }
                _ if at < body.len() => body[at] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5) as usize],
                _ => {}
            }
        }
        if let Ok(req) = Request::decode(&body) {
            decoded += 1;
            assert_eq!(req.encode(), body, "seed {seed} case {case}: {req:?}");
        }
        if let Ok(resp) = Response::decode(&body) {
            decoded += 1;
            assert_eq!(resp.encode(), body, "seed {seed} case {case}: {resp:?}");
        }
    }
    // Some mutations (a flipped bit inside a string or an integer) stay valid:
    // the canonical check above must have had something to check.
    assert!(decoded > 100, "only {decoded} mutated bodies decoded");
}

fn corpus_dir() -> std::path::PathBuf {
    e2e::workspace_root().join("fuzz/corpus/frame")
}

/// Regenerates the frame seed corpus of the fuzz target (run by hand after a
/// protocol change): `cargo test -p e2e --test protocol_roundtrip -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus/frame; run by hand after a protocol change"]
fn write_fuzz_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).expect("creating the corpus dir");
    let (requests, responses) = corpus_values();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, r) in &requests {
        files.push((format!("req-{name}.frame"), encode_frame(&r.encode())));
        files.push((format!("req-{name}.body"), r.encode()));
    }
    for (name, r) in &responses {
        files.push((format!("resp-{name}.frame"), encode_frame(&r.encode())));
        files.push((format!("resp-{name}.body"), r.encode()));
    }
    // The hostile inputs of the end-to-end tests, as seeds for mutation.
    let register = requests[0].1.encode();
    let mut two = encode_frame(&requests[3].1.encode());
    two.extend_from_slice(&encode_frame(&register));
    let mut wrong_version = encode_frame(&register);
    wrong_version[4] = VERSION.wrapping_add(1);
    files.push(("bad-two-frames.frame".into(), two));
    files.push(("bad-wrong-version.frame".into(), wrong_version));
    files.push((
        "bad-oversized-length.frame".into(),
        [&u32::MAX.to_be_bytes()[..], &register[..]].concat(),
    ));
    files.push((
        "bad-truncated.frame".into(),
        encode_frame(&register)[..20].to_vec(),
    ));
    files.push(("bad-zero-length.frame".into(), vec![0, 0, 0, 0]));
    for (name, bytes) in files {
        std::fs::write(dir.join(&name), bytes).expect("writing a corpus file");
    }
}

/// The committed seed corpus still speaks the current protocol: every
/// `req-*`/`resp-*` seed decodes to the value it was made from. A protocol
/// change that leaves the corpus stale fails here (regenerate it with the
/// ignored test above).
#[test]
fn fuzz_seed_corpus_matches_the_protocol() {
    let dir = corpus_dir();
    let (requests, responses) = corpus_values();
    for (name, r) in &requests {
        let frame = std::fs::read(dir.join(format!("req-{name}.frame")))
            .unwrap_or_else(|e| panic!("seed req-{name}.frame: {e}"));
        let mut buf = frame;
        let body = take_frame(&mut buf, MAX_FRAME)
            .expect("valid frame")
            .expect("whole frame");
        assert_eq!(&Request::decode(&body).expect("decodes"), r, "req-{name}");
    }
    for (name, r) in &responses {
        let body = std::fs::read(dir.join(format!("resp-{name}.body")))
            .unwrap_or_else(|e| panic!("seed resp-{name}.body: {e}"));
        assert_eq!(&Response::decode(&body).expect("decodes"), r, "resp-{name}");
    }
}
