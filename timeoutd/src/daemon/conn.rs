//! One client connection as a state machine, with no socket in it: what is
//! buffered, whether a request is in flight, when the connection expires,
//! what a complete, oversized or garbage frame leads to, and who may connect
//! at all. [`super::server`] does the syscalls and feeds the results in here,
//! so every hostile-input rule is tested without a socket.
//!
//! The rules: a connection with no complete request for [`READ_TIMEOUT`] is
//! dropped; one request per connection is in flight at a time and none is
//! taken while a reply is unsent (a client that never reads cannot grow our
//! buffers); at most one maximal frame is buffered, and a length prefix is
//! checked before anything is allocated for the body.

use std::fmt;
use std::time::{Duration, Instant};

use session_timeout_proto::{encode_frame, take_frame, ErrorCode, Request, Response, MAX_FRAME};

use crate::core::audit::event::{Event, EventName, Severity};
use crate::engine::Peer;

/// A connection with no complete request for this long is dropped.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections open at once, in all.
pub(crate) const MAX_CONNECTIONS: usize = 4096;
/// Connections open at once per non-root uid, so one user cannot crowd out logins.
pub(crate) const MAX_PER_USER: usize = 16;
/// New connections per second per non-root uid; more are closed at once.
pub(crate) const NEW_PER_USER_PER_SEC: u32 = 64;
/// The most bytes buffered from one client: one maximal frame and its prefix.
const MAX_BUFFERED: usize = 4 + MAX_FRAME;
/// `connection_limit` is logged at most this often.
const LIMIT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One client: its buffers, its deadline and where its exchange stands.
#[derive(Debug)]
pub(crate) struct Conn {
    peer: Peer,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    /// How much of `outbuf` is sent: a large reply written in pieces is
    /// not moved down after each piece; `outbuf` is cleared once all is sent.
    out_at: usize,
    deadline: Instant,
    close_after_write: bool,
    /// A request was handed out and its reply is not queued yet.
    awaiting_reply: bool,
}

/// What a ready connection yields.
#[derive(Debug, PartialEq)]
pub(crate) enum Frame {
    /// A well-formed request; the connection now waits for its reply.
    Request(Request),
    /// A bad length prefix or a body that does not decode: an error reply is
    /// queued and the connection closes once it is sent.
    Malformed(String),
}

impl Conn {
    /// A connection just accepted at `now`.
    pub(crate) fn new(peer: Peer, now: Instant) -> Self {
        Self {
            peer,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            out_at: 0,
            deadline: now + READ_TIMEOUT,
            close_after_write: false,
            awaiting_reply: false,
        }
    }

    pub(crate) fn peer(&self) -> Peer {
        self.peer
    }

    /// Whether to poll for input: the client has not closed and there is room.
    pub(crate) fn wants_input(&self) -> bool {
        !self.close_after_write && self.inbuf.len() < MAX_BUFFERED
    }

    /// Whether a reply is waiting to be written.
    pub(crate) fn wants_output(&self) -> bool {
        !self.outbuf.is_empty()
    }

    /// How many more bytes may be read now (up to one maximal frame ahead).
    pub(crate) fn read_room(&self) -> usize {
        MAX_BUFFERED.saturating_sub(self.inbuf.len())
    }

    /// Bytes the client sent (at most [`Conn::read_room`] of them).
    pub(crate) fn received(&mut self, bytes: &[u8]) {
        self.inbuf.extend_from_slice(bytes);
    }

    /// The client closed its end: answer what is complete, then close.
    pub(crate) fn end_of_input(&mut self) {
        self.close_after_write = true;
    }

    /// Reading failed: nothing more is answered.
    pub(crate) fn read_failed(&mut self) {
        self.close_after_write = true;
        self.outbuf.clear();
        self.out_at = 0;
        self.inbuf.clear();
    }

    /// What is queued for the client.
    pub(crate) fn unsent(&self) -> &[u8] {
        &self.outbuf[self.out_at.min(self.outbuf.len())..]
    }

    /// `n` bytes of [`Conn::unsent`] were written.
    pub(crate) fn sent(&mut self, n: usize) {
        self.out_at = self.out_at.saturating_add(n);
        if self.out_at >= self.outbuf.len() {
            self.outbuf.clear();
            self.out_at = 0;
        }
    }

    /// Writing failed: the reply is dropped and the connection closes.
    pub(crate) fn write_failed(&mut self) {
        self.outbuf.clear();
        self.out_at = 0;
        self.close_after_write = true;
    }

    /// Whether a request can be taken now: nothing in flight, nothing unsent,
    /// and a whole frame (or a bad length prefix) waiting.
    pub(crate) fn ready(&self) -> bool {
        !self.awaiting_reply && self.outbuf.is_empty() && frame_waiting(&self.inbuf)
    }

    /// Takes one frame off a ready connection; `None` if it is not ready.
    pub(crate) fn take(&mut self, now: Instant) -> Option<Frame> {
        if !self.ready() {
            return None;
        }
        match take_frame(&mut self.inbuf, MAX_FRAME) {
            Ok(Some(body)) => match Request::decode(&body) {
                Ok(req) => {
                    self.awaiting_reply = true;
                    self.deadline = now + READ_TIMEOUT;
                    Some(Frame::Request(req))
                }
                Err(e) => Some(self.reject(e.to_string())),
            },
            Ok(None) => None,
            Err(e) => Some(self.reject(e.to_string())),
        }
    }

    /// Queues the reply to the request in flight; the client has
    /// [`READ_TIMEOUT`] from `now` to read it and send the next one.
    pub(crate) fn reply(&mut self, resp: &Response, now: Instant) {
        self.outbuf.extend_from_slice(&encode_frame(&resp.encode()));
        self.awaiting_reply = false;
        self.deadline = now + READ_TIMEOUT;
    }

    /// Whether the connection is to be dropped: finished, broken, or past its
    /// deadline (a request being answered holds the deadline off).
    pub(crate) fn finished(&self, now: Instant) -> bool {
        let done = self.close_after_write
            && self.outbuf.is_empty()
            && !self.awaiting_reply
            && !frame_waiting(&self.inbuf);
        done || (self.deadline <= now && !self.awaiting_reply)
    }

    /// Answers a malformed frame with an error and closes after it.
    fn reject(&mut self, why: String) -> Frame {
        let resp = Response::Error {
            code: ErrorCode::Malformed,
            message: why.clone(),
        };
        self.inbuf.clear();
        self.outbuf.extend_from_slice(&encode_frame(&resp.encode()));
        self.close_after_write = true;
        Frame::Malformed(why)
    }
}

/// A complete frame, or a length prefix that is already known to be bad.
fn frame_waiting(buf: &[u8]) -> bool {
    match buf.first_chunk::<4>() {
        None => false,
        Some(head) => {
            let len = u32::from_be_bytes(*head) as usize;
            len == 0 || len > MAX_FRAME || buf.len() >= 4 + len
        }
    }
}

/// How long poll(2) may wait: what the caller asked, cut to the nearest
/// deadline of a connection not awaiting its reply, and zero if a request is
/// already waiting in a buffer.
pub(crate) fn poll_timeout<'a>(
    conns: impl Iterator<Item = &'a Conn>,
    wanted: Duration,
    now: Instant,
) -> Duration {
    let mut timeout = wanted;
    for c in conns {
        if c.ready() {
            return Duration::ZERO;
        }
        // A request being answered later (revalidate) holds its deadline off.
        if c.awaiting_reply {
            continue;
        }
        timeout = timeout.min(c.deadline.saturating_duration_since(now));
    }
    timeout
}

/// The `request_malformed` event for a frame from `peer`.
pub(crate) fn malformed_notice(peer: Peer, why: &str) -> Event {
    Event::new(EventName::RequestMalformed)
        .with_severity(Severity::Warning)
        .caused_by(peer.uid)
        .field("peer_uid", peer.uid)
        .field("peer_pid", peer.pid)
        .field("error", why)
}

/// A connection turned away by the connection limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    uid: u32,
    open: usize,
    open_by_uid: usize,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refusing a connection from uid {}: {} open in all (limit {MAX_CONNECTIONS}), {} from that uid (limit {MAX_PER_USER} for non-root)",
            self.uid, self.open, self.open_by_uid
        )
    }
}

/// The `connection_limit` line for a connection from `uid` turned away.
/// It is rate-limited per uid when logged.
pub(crate) fn refused_notice(uid: u32, why: &str) -> Event {
    Event::new(EventName::ConnectionLimit)
        .with_severity(Severity::Warning)
        .caused_by(uid)
        .field("peer_uid", uid)
        .field("detail", why)
}

/// Whether a new connection from `uid` may be kept, with `open` connections
/// open in all and `open_by_uid` of them from that uid. Root is only bound
/// by the total.
pub(crate) fn admit(uid: u32, open: usize, open_by_uid: usize) -> Result<(), Refused> {
    if open >= MAX_CONNECTIONS || (uid != 0 && open_by_uid >= MAX_PER_USER) {
        return Err(Refused {
            uid,
            open,
            open_by_uid,
        });
    }
    Ok(())
}

/// Rate limit for `connection_limit`: a flood of refused clients logs once
/// per [`LIMIT_LOG_INTERVAL`], not once per client.
#[derive(Debug, Default)]
pub(crate) struct LimitLog {
    last: Option<Instant>,
}

impl LimitLog {
    /// The `connection_limit` event to log now, if one is due.
    pub(crate) fn notice(&mut self, detail: &str, now: Instant) -> Option<Event> {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < LIMIT_LOG_INTERVAL)
        {
            return None;
        }
        self.last = Some(now);
        Some(
            Event::new(EventName::ConnectionLimit)
                .with_severity(Severity::Warning)
                .field("detail", detail),
        )
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
