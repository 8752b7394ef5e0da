//! How the user authenticated, read from sshd's `SSH_AUTH_INFO_0`.
//!
//! sshd (7.6+, `UsePAM yes`) puts one line per successful method into the PAM
//! environment before the session opens: `publickey ssh-ed25519 AAAA…`,
//! `keyboard-interactive/pam`, `password`, … A certificate login's line holds
//! the whole certificate in base64. This file reads the method names and the
//! certificate's identity and validity fields. It does not verify anything
//! (sshd already did), and it never fails a login: bad input only means
//! "no certificate fields".

use std::fmt;

/// Longest `SSH_AUTH_INFO_0` read; more is truncated (a 16384-bit RSA
/// certificate is under 6 KiB of base64).
pub const MAX_AUTH_INFO: usize = 64 * 1024;
/// At most this many methods are kept.
pub const MAX_METHODS: usize = 8;
/// Longest method name kept (`keyboard-interactive/pam` is 24).
pub const MAX_METHOD_LEN: usize = 64;

/// What one login's authentication was.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthInfo {
    /// The methods that succeeded, in order (`publickey`, `password`, …).
    pub methods: Vec<String>,
    /// The certificate, when a publickey method used one.
    pub certificate: Option<Result<Certificate, CertError>>,
}

/// The fields of an OpenSSH user certificate that decide a session's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// e.g. `ssh-ed25519-cert-v01@openssh.com`.
    pub key_type: String,
    pub serial: u64,
    /// 1 user, 2 host.
    pub cert_type: u32,
    /// The key id the CA wrote; any bytes, shown lossily as UTF-8.
    pub key_id: String,
    pub principals: Vec<String>,
    /// Seconds since the epoch; 0 means "always".
    pub valid_after: u64,
    /// Seconds since the epoch; `u64::MAX` means "forever".
    pub valid_before: u64,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertError {
    /// The base64 text is not valid base64.
    Base64,
    /// The blob ended inside the named field.
    Truncated(&'static str),
    /// A length prefix is larger than what is left of the blob.
    BadLength(&'static str),
    /// The key type inside the blob is not a certificate type we know.
    UnknownType(String),
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Base64 => write!(f, "certificate is not valid base64"),
            Self::Truncated(field) => write!(f, "certificate ends inside {field}"),
            Self::BadLength(field) => write!(f, "certificate field {field} has a bad length"),
            Self::UnknownType(t) => write!(f, "unknown certificate type {t:?}"),
        }
    }
}

impl std::error::Error for CertError {}

/// Reads `SSH_AUTH_INFO_0`. Never fails: what cannot be read is left out.
pub fn parse(text: &str) -> AuthInfo {
    let text = truncate(text, MAX_AUTH_INFO);
    let mut info = AuthInfo::default();
    for line in text.lines() {
        let mut words = line.split(' ');
        let Some(method) = words.next().filter(|m| is_method_name(m)) else {
            continue;
        };
        if info.methods.len() < MAX_METHODS {
            info.methods.push(method.to_string());
        }
        if method != "publickey" || info.certificate.is_some() {
            continue;
        }
        if let (Some(key_type), Some(blob)) = (words.next(), words.next()) {
            if key_type.ends_with("-cert-v01@openssh.com") {
                info.certificate = Some(parse_certificate_base64(blob));
            }
        }
    }
    info
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn is_method_name(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= MAX_METHOD_LEN
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-/@._".contains(&b))
}

/// Decodes and reads a base64 certificate blob.
pub fn parse_certificate_base64(b64: &str) -> Result<Certificate, CertError> {
    let blob = decode_base64(b64).ok_or(CertError::Base64)?;
    parse_certificate(&blob)
}

/// How many length-prefixed key fields follow the nonce for each type.
fn key_field_count(key_type: &str) -> Option<usize> {
    let base = key_type.strip_suffix("-cert-v01@openssh.com")?;
    match base {
        "ssh-rsa" => Some(2),
        "ssh-dss" => Some(4),
        "ssh-ed25519" => Some(1),
        "sk-ssh-ed25519" => Some(2),
        "sk-ecdsa-sha2-nistp256" => Some(3),
        b if b.starts_with("ecdsa-sha2-") => Some(2),
        _ => None,
    }
}

/// Reads a certificate blob (PROTOCOL.certkeys): the type, the nonce, the
/// key fields (skipped), then serial, type, key id, principals and validity.
pub fn parse_certificate(blob: &[u8]) -> Result<Certificate, CertError> {
    let mut r = Reader { rest: blob };
    let key_type = String::from_utf8_lossy(r.string("type")?).into_owned();
    let fields =
        key_field_count(&key_type).ok_or_else(|| CertError::UnknownType(key_type.clone()))?;
    r.string("nonce")?;
    for _ in 0..fields {
        r.string("public key")?;
    }
    let serial = r.u64("serial")?;
    let cert_type = r.u32("cert type")?;
    let key_id = String::from_utf8_lossy(r.string("key id")?).into_owned();
    let mut packed = Reader {
        rest: r.string("principals")?,
    };
    let mut principals = Vec::new();
    while !packed.rest.is_empty() {
        principals.push(String::from_utf8_lossy(packed.string("principal")?).into_owned());
    }
    let valid_after = r.u64("valid after")?;
    let valid_before = r.u64("valid before")?;
    Ok(Certificate {
        key_type,
        serial,
        cert_type,
        key_id,
        principals,
        valid_after,
        valid_before,
    })
}

/// A cursor over SSH wire data that never reads past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CertError> {
        if self.rest.len() < n {
            return Err(CertError::Truncated(field));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, CertError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, CertError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn string(&mut self, field: &'static str) -> Result<&'a [u8], CertError> {
        let len = usize::try_from(self.u32(field)?).map_err(|_| CertError::BadLength(field))?;
        if len > self.rest.len() {
            return Err(CertError::BadLength(field));
        }
        self.take(len, field)
    }
}

/// Standard base64 with optional padding; `None` on any other byte.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

#[cfg(test)]
#[path = "authinfo_tests.rs"]
mod tests;
