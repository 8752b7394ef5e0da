//! The socket server against real Unix sockets.

use super::*;
use crate::daemon::conn::READ_TIMEOUT;
use session_timeout_proto::{read_frame, write_frame, ErrorCode, SessionKey};

impl Server {
    fn connection_count(&self) -> usize {
        self.clients.len()
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("st-server-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d.join("sub").join("t.sock")
}

fn unregister() -> Request {
    Request::Unregister(SessionKey::default())
}

/// A server whose signal fd is a dummy (signals are not under test here).
fn server(path: &Path) -> Server {
    let l = bind(path).unwrap();
    let dummy = fs::File::open("/dev/null").unwrap();
    Server::new(l, OwnedFd::from(dummy))
}

/// Polls until `want` requests arrived or a bound passes (polling is the thing under test).
fn poll_for(s: &mut Server, want: usize) -> Vec<(u64, Request)> {
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    while got.len() < want && Instant::now() < until {
        for inc in s.poll(Duration::from_millis(50)) {
            if let Incoming::Request { conn, req, .. } = inc {
                got.push((conn, req));
            }
        }
    }
    got
}

#[test]
fn socket_modes_and_stale_sockets() {
    let path = temp("modes");
    let l = bind(&path).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o666);
    assert_eq!(mode(path.parent().unwrap()), 0o755);
    assert_eq!(bind(&path).unwrap_err().kind(), ErrorKind::AddrInUse);
    drop(l); // the file stays behind, as after a crash
    assert!(path.exists());
    // A child another test forks holds a copy of every fd until its exec,
    // which keeps the listener taking connections for that moment: wait
    // (bounded) until it is gone, as it is at once after a crash.
    let until = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&path).is_ok() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    bind(&path).unwrap();
}

#[test]
fn a_regular_file_is_never_replaced() {
    let path = temp("file");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, "keep me").unwrap();
    assert_eq!(bind(&path).unwrap_err().kind(), ErrorKind::AlreadyExists);
    assert_eq!(fs::read_to_string(&path).unwrap(), "keep me");
}

#[test]
fn peer_cred_reports_this_process() {
    let (a, _b) = UnixStream::pair().unwrap();
    let p = peer_cred(&a).unwrap();
    assert_eq!(p.pid, std::process::id());
    // SAFETY: getuid(2) cannot fail.
    assert_eq!(p.uid, unsafe { libc::getuid() });
}

#[test]
fn requests_are_answered_while_idle_and_broken_clients_hang_around() {
    let path = temp("busy");
    let mut s = server(&path);
    // 300 idle connections and a few hostile ones.
    let idle: Vec<UnixStream> = (0..300)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    let mut half = UnixStream::connect(&path).unwrap();
    half.write_all(&[0, 0, 0, 40, 1, 1]).unwrap(); // half a frame, then silence
    let mut garbage = UnixStream::connect(&path).unwrap();
    garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut oversized = UnixStream::connect(&path).unwrap();
    oversized.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let mut wrong_version = UnixStream::connect(&path).unwrap();
    write_frame(&mut wrong_version, &[9, 1]).unwrap();
    // And one good client.
    let mut good = UnixStream::connect(&path).unwrap();
    write_frame(&mut good, &unregister().encode()).unwrap();
    let got = poll_for(&mut s, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, unregister());
    s.reply(got[0].0, &Response::Unregistered { session_id: 0 });
    good.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(
        Response::decode(&read_frame(&mut good).unwrap()).unwrap(),
        Response::Unregistered { session_id: 0 }
    );
    // The hostile ones got an error reply and were closed.
    for c in [&mut garbage, &mut oversized, &mut wrong_version] {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = Response::decode(&read_frame(c).unwrap()).unwrap();
        assert!(
            matches!(
                r,
                Response::Error {
                    code: ErrorCode::Malformed,
                    ..
                }
            ),
            "{r:?}"
        );
    }
    let malformed = s
        .notices
        .iter()
        .filter(|e| e.name() == "request_malformed")
        .count();
    assert_eq!(malformed, 3);
    assert!(s.connection_count() >= 300);
    drop(idle);
}

#[test]
fn a_stalled_client_is_dropped_after_the_read_timeout() {
    let path = temp("stall");
    let mut s = server(&path);
    let mut half = UnixStream::connect(&path).unwrap();
    half.write_all(&[0, 0, 0, 40, 1]).unwrap();
    let until = Instant::now() + READ_TIMEOUT + Duration::from_secs(3);
    while s.connection_count() == 0 && Instant::now() < until {
        s.poll(Duration::from_millis(50));
    }
    assert_eq!(s.connection_count(), 1);
    let start = Instant::now();
    while s.connection_count() > 0 && Instant::now() < until {
        s.poll(Duration::from_millis(200));
    }
    assert_eq!(s.connection_count(), 0, "dropped");
    assert!(start.elapsed() <= READ_TIMEOUT + Duration::from_secs(1));
    // Generous: the end of file is there at once, unless a child another
    // test forks holds a copy of the server's end until its exec.
    half.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut b = [0u8; 1];
    assert_eq!(half.read(&mut b).unwrap(), 0, "the server closed it");
}

#[test]
fn one_request_at_a_time_per_connection_and_none_while_a_reply_is_unsent() {
    let path = temp("pipeline");
    let mut s = server(&path);
    let mut c = UnixStream::connect(&path).unwrap();
    let mut burst = Vec::new();
    for _ in 0..100 {
        burst.extend_from_slice(&session_timeout_proto::encode_frame(&unregister().encode()));
    }
    c.write_all(&burst).unwrap();
    let first = poll_for(&mut s, 1);
    assert_eq!(
        first.len(),
        1,
        "only one request is taken before it is answered"
    );
    // Unanswered: nothing more is taken, however long we poll.
    for _ in 0..5 {
        assert!(s.poll(Duration::from_millis(10)).is_empty());
    }
    s.reply(first[0].0, &Response::Unregistered { session_id: 0 });
    assert_eq!(poll_for(&mut s, 1).len(), 1, "the next one after the reply");
}

#[test]
fn a_client_that_never_reads_is_dropped_not_buffered_without_end() {
    let path = temp("noread");
    let mut s = server(&path);
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_nonblocking(true).unwrap();
    let frame = session_timeout_proto::encode_frame(&Request::List.encode());
    let big = Response::Done {
        message: "x".repeat(60_000),
    };
    let until = Instant::now() + READ_TIMEOUT + Duration::from_secs(3);
    let mut answered = 0;
    while Instant::now() < until && (answered == 0 || s.connection_count() > 0) {
        let _ = c.write_all(&frame); // keep asking, never read
        for inc in s.poll(Duration::from_millis(20)) {
            if let Incoming::Request { conn, .. } = inc {
                s.reply(conn, &big);
                answered += 1;
            }
        }
    }
    assert!(answered > 0);
    assert!(
        answered < 100,
        "replies stop once the client stops reading: {answered}"
    );
    assert_eq!(s.connection_count(), 0, "dropped after the timeout");
}
