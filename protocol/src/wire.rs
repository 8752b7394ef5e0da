//! Low-level encoding: the frame header and the primitive field codecs.
//!
//! A frame on the socket is:
//!
//! ```text
//! u32 big-endian  length of everything after these four bytes (1..=MAX_FRAME)
//! u8              protocol version (VERSION)
//! u8              message kind
//! ...             fields of that kind, in order
//! ```
//!
//! Strings are a u16 big-endian byte count followed by UTF-8; integers are
//! big-endian. There is no padding and no optional trailing data: a body with
//! bytes left over after its last field is malformed.

use std::fmt;
use std::io::{self, Read, Write};

/// The only protocol version this build speaks.
/// Version 2 added the authentication facts to Register and the deadline verbs;
/// version 3 the daily quota at the end of SessionInfo.
pub const VERSION: u8 = 3;

/// Largest accepted request body, in bytes (after the length prefix).
pub const MAX_FRAME: usize = 64 * 1024;

/// Largest reply body a client accepts: a session list of a busy host.
pub const MAX_REPLY: usize = 32 * 1024 * 1024;

/// Why a frame or a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The length prefix is zero or larger than [`MAX_FRAME`].
    BadLength(u64),
    /// The peer speaks another protocol version.
    UnsupportedVersion(u8),
    /// The message kind byte is not one we know.
    UnknownKind(u8),
    /// The body ended before the named field was complete.
    Truncated(&'static str),
    /// A string field is not UTF-8.
    NotUtf8(&'static str),
    /// A field holds a value outside its domain.
    BadValue(&'static str),
    /// Bytes remain after the last field.
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadLength(n) => write!(f, "frame length {n} is outside 1..={MAX_FRAME}"),
            Self::UnsupportedVersion(v) => {
                write!(
                    f,
                    "protocol version {v} is not supported (this side speaks {VERSION})"
                )
            }
            Self::UnknownKind(k) => write!(f, "unknown message kind {k}"),
            Self::Truncated(field) => write!(f, "message ends inside field `{field}`"),
            Self::NotUtf8(field) => write!(f, "field `{field}` is not valid UTF-8"),
            Self::BadValue(field) => write!(f, "field `{field}` has an invalid value"),
            Self::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the last field"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Errors from reading a frame off a stream.
#[derive(Debug)]
pub enum FrameError {
    /// The stream failed or timed out.
    Io(io::Error),
    /// The stream closed cleanly before any byte of a frame.
    Closed,
    /// The header announced an impossible length.
    Decode(DecodeError),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "i/o error: {e}"),
            Self::Closed => write!(f, "connection closed"),
            Self::Decode(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Reads one frame body (version byte onwards) from `r`, at most [`MAX_FRAME`].
pub fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    read_frame_limited(r, MAX_FRAME)
}

/// Reads one frame body of at most `max` bytes.
///
/// The length prefix is checked before any allocation, so a hostile prefix
/// cannot make the reader allocate more than `max` bytes.
pub fn read_frame_limited(r: &mut impl Read, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > max {
        return Err(FrameError::Decode(DecodeError::BadLength(len as u64)));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Takes one complete frame body off the front of `buf`, for non-blocking
/// readers: `Ok(None)` until the whole frame has arrived. A bad length is an
/// error as soon as the four length bytes are there.
pub fn take_frame(buf: &mut Vec<u8>, max: usize) -> Result<Option<Vec<u8>>, DecodeError> {
    let Some(head) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*head) as usize;
    if len == 0 || len > max {
        return Err(DecodeError::BadLength(len as u64));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let body = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Ok(Some(body))
}

/// The bytes of one frame: length prefix and body.
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    buf
}

/// Writes `body` (version byte onwards) as one request-sized frame.
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    if body.is_empty() || body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "frame body of {} bytes is outside 1..={MAX_FRAME}",
                body.len()
            ),
        ));
    }
    w.write_all(&encode_frame(body))?;
    w.flush()
}

/// Builds a message body field by field.
#[derive(Debug)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// Starts a body of the given message kind.
    pub fn new(kind: u8) -> Self {
        Self {
            buf: vec![VERSION, kind],
        }
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a string, cut at a character boundary to at most `u16::MAX` bytes.
    pub fn str(&mut self, s: &str) -> &mut Self {
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.buf.extend_from_slice(&(end as u16).to_be_bytes());
        self.buf.extend_from_slice(&s.as_bytes()[..end]);
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Reads a message body field by field; every read names its field for errors.
#[derive(Debug)]
pub struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Checks the version byte and returns the kind byte with a decoder for the fields.
    pub fn open(body: &'a [u8]) -> Result<(u8, Self), DecodeError> {
        let [version, rest @ ..] = body else {
            return Err(DecodeError::Truncated("version"));
        };
        if *version != VERSION {
            return Err(DecodeError::UnsupportedVersion(*version));
        }
        let [kind, rest @ ..] = rest else {
            return Err(DecodeError::Truncated("kind"));
        };
        Ok((*kind, Self { rest }))
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated(field));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.array(field).map(u16::from_be_bytes)
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_be_bytes)
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.array(field).map(u64::from_be_bytes)
    }

    pub fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.array(field).map(i64::from_be_bytes)
    }

    pub fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = u16::from_be_bytes(self.array(field)?) as usize;
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::NotUtf8(field))
    }

    /// Fails if any byte is left after the last field.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.rest.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"\x01\x02abc").unwrap();
        assert_eq!(&wire[..4], &[0, 0, 0, 5]);
        let body = read_frame(&mut wire.as_slice()).unwrap();
        assert_eq!(body, b"\x01\x02abc");
    }

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        let wire = (u32::MAX).to_be_bytes();
        match read_frame(&mut wire.as_slice()) {
            Err(FrameError::Decode(DecodeError::BadLength(n))) => assert_eq!(n, u32::MAX as u64),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn take_frame_waits_for_whole_frames() {
        let mut buf = encode_frame(b"\x01\x02ab");
        buf.extend_from_slice(&encode_frame(b"\x01\x03")[..3]);
        assert_eq!(
            take_frame(&mut buf, MAX_FRAME).unwrap().unwrap(),
            b"\x01\x02ab"
        );
        assert_eq!(take_frame(&mut buf, MAX_FRAME).unwrap(), None);
        buf.extend_from_slice(&[2, 1, 3]);
        assert_eq!(
            take_frame(&mut buf, MAX_FRAME).unwrap().unwrap(),
            b"\x01\x03"
        );
        assert!(buf.is_empty());
        let mut huge = vec![0xff, 0xff, 0xff, 0xff];
        assert!(take_frame(&mut huge, MAX_FRAME).is_err());
    }

    #[test]
    fn zero_length_is_refused() {
        let wire = 0u32.to_be_bytes();
        assert!(matches!(
            read_frame(&mut wire.as_slice()),
            Err(FrameError::Decode(DecodeError::BadLength(0)))
        ));
    }

    #[test]
    fn empty_stream_is_closed_and_half_header_is_eof() {
        assert!(matches!(read_frame(&mut &b""[..]), Err(FrameError::Closed)));
        assert!(matches!(
            read_frame(&mut &b"\0\0"[..]),
            Err(FrameError::Io(_))
        ));
        assert!(matches!(
            read_frame(&mut &b"\0\0\0\x09abc"[..]),
            Err(FrameError::Io(_))
        ));
    }

    #[test]
    fn decoder_reports_the_field_that_is_short() {
        let body = Encoder::new(7).u32(5).finish();
        let (kind, mut d) = Decoder::open(&body).unwrap();
        assert_eq!(kind, 7);
        assert_eq!(d.u32("a").unwrap(), 5);
        assert_eq!(d.u64("b"), Err(DecodeError::Truncated("b")));
    }

    #[test]
    fn wrong_version_is_named() {
        assert_eq!(
            Decoder::open(&[9, 1]).unwrap_err(),
            DecodeError::UnsupportedVersion(9)
        );
    }

    #[test]
    fn long_strings_are_cut_on_a_char_boundary() {
        let s = "é".repeat(40_000); // 80,000 bytes
        let body = Encoder::new(1).str(&s).finish();
        let (_, mut d) = Decoder::open(&body).unwrap();
        let back = d.string("s").unwrap();
        assert!(back.len() <= u16::MAX as usize);
        assert!(s.starts_with(&back));
        d.finish().unwrap();
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let mut body = Encoder::new(1).finish();
        body.extend_from_slice(&[0, 2, 0xff, 0xfe]);
        let (_, mut d) = Decoder::open(&body).unwrap();
        assert_eq!(d.string("user"), Err(DecodeError::NotUtf8("user")));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let body = Encoder::new(1).u8(1).u8(2).finish();
        let (_, mut d) = Decoder::open(&body).unwrap();
        d.u8("x").unwrap();
        assert_eq!(d.finish(), Err(DecodeError::TrailingBytes(1)));
    }
}
