//! How a login authenticated, as the module reports it inside Register: the
//! methods sshd named in `SSH_AUTH_INFO_0`, the fields of the OpenSSH
//! certificate if one was used (never the certificate itself), and the
//! absolute deadline an earlier PAM module set as `systemd.runtime_max_sec`.
//!
//! Every field is capped, and the decoder refuses anything over its cap, so a
//! hostile key id or principal list cannot grow the daemon's records.

use crate::wire::{DecodeError, Decoder, Encoder};

/// At most this many authentication methods.
pub const MAX_METHODS: usize = 8;
/// Longest method name, in bytes (`keyboard-interactive/pam` is 24).
pub const MAX_METHOD_LEN: usize = 64;
/// Longest certificate key id, in bytes.
pub const MAX_KEY_ID: usize = 256;
/// At most this many certificate principals.
pub const MAX_PRINCIPALS: usize = 16;
/// Longest principal, in bytes.
pub const MAX_PRINCIPAL_LEN: usize = 64;
/// Longest certificate key type, or reason a certificate was unreadable, in bytes.
pub const MAX_CERT_TEXT: usize = 128;

/// The fields of an OpenSSH user certificate that decide a session's life.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertFields {
    /// e.g. `ssh-ed25519-cert-v01@openssh.com`.
    pub key_type: String,
    pub serial: u64,
    pub key_id: String,
    pub principals: Vec<String>,
    /// Unix seconds; 0 = always.
    pub valid_after: u64,
    /// Unix seconds; `u64::MAX` = forever.
    pub valid_before: u64,
}

/// The certificate of a login, if any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cert {
    /// No certificate was used.
    #[default]
    None,
    Read(CertFields),
    /// A certificate was used but could not be read; the text says why.
    Unreadable(String),
}

/// How the login authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthFacts {
    /// The methods that succeeded, in order (`publickey`, `keyboard-interactive/pam`, …).
    pub methods: Vec<String>,
    pub cert: Cert,
    /// `systemd.runtime_max_sec` made absolute (Unix seconds); 0 = none.
    pub runtime_max_at: i64,
}

/// Cuts `s` at a character boundary to at most `max` bytes.
pub fn cap(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn count(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn capped(d: &mut Decoder, field: &'static str, max: usize) -> Result<String, DecodeError> {
    let s = d.string(field)?;
    if s.len() > max {
        return Err(DecodeError::BadValue(field));
    }
    Ok(s)
}

fn capped_list(
    d: &mut Decoder,
    field: &'static str,
    max_n: usize,
    max_len: usize,
) -> Result<Vec<String>, DecodeError> {
    let n = usize::from(d.u16(field)?);
    if n > max_n {
        return Err(DecodeError::BadValue(field));
    }
    (0..n).map(|_| capped(d, field, max_len)).collect()
}

impl AuthFacts {
    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.u16(count(self.methods.len()));
        for m in &self.methods {
            e.str(m);
        }
        let empty = CertFields::default();
        let (state, c, why) = match &self.cert {
            Cert::None => (0, &empty, ""),
            Cert::Read(c) => (1, c, ""),
            Cert::Unreadable(why) => (2, &empty, why.as_str()),
        };
        e.u8(state).str(&c.key_type).u64(c.serial).str(&c.key_id);
        e.u16(count(c.principals.len()));
        for p in &c.principals {
            e.str(p);
        }
        e.u64(c.valid_after)
            .u64(c.valid_before)
            .str(why)
            .i64(self.runtime_max_at);
    }

    pub(crate) fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        let methods = capped_list(d, "methods", MAX_METHODS, MAX_METHOD_LEN)?;
        let state = d.u8("cert state")?;
        let fields = CertFields {
            key_type: capped(d, "cert key_type", MAX_CERT_TEXT)?,
            serial: d.u64("cert serial")?,
            key_id: capped(d, "cert key_id", MAX_KEY_ID)?,
            principals: capped_list(d, "cert principals", MAX_PRINCIPALS, MAX_PRINCIPAL_LEN)?,
            valid_after: d.u64("cert valid_after")?,
            valid_before: d.u64("cert valid_before")?,
        };
        let why = capped(d, "cert error", MAX_CERT_TEXT)?;
        // Fields that a state does not use must be empty, so that every
        // frame has one meaning and re-encodes to the same bytes.
        let unused = fields == CertFields::default();
        let cert = match state {
            0 if unused && why.is_empty() => Cert::None,
            1 if why.is_empty() => Cert::Read(fields),
            2 if unused => Cert::Unreadable(why),
            _ => return Err(DecodeError::BadValue("cert state")),
        };
        Ok(Self {
            methods,
            cert,
            runtime_max_at: d.i64("runtime_max_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(a: &AuthFacts) -> Result<AuthFacts, DecodeError> {
        let mut e = Encoder::new(1);
        a.encode(&mut e);
        let body = e.finish();
        let (_, mut d) = Decoder::open(&body)?;
        let out = AuthFacts::decode(&mut d)?;
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn every_cert_state_round_trips() {
        for cert in [
            Cert::None,
            Cert::Unreadable("certificate ends inside serial".into()),
            Cert::Read(CertFields {
                key_type: "ssh-ed25519-cert-v01@openssh.com".into(),
                serial: 7,
                key_id: "alice@vault".into(),
                principals: vec!["alice".into(), "ops".into()],
                valid_after: 1,
                valid_before: u64::MAX,
            }),
        ] {
            let a = AuthFacts {
                methods: vec!["publickey".into(), "keyboard-interactive/pam".into()],
                cert,
                runtime_max_at: 1_700_000_000,
            };
            assert_eq!(round_trip(&a), Ok(a));
        }
    }

    #[test]
    fn fields_over_their_caps_are_refused() {
        let long_id = AuthFacts {
            cert: Cert::Read(CertFields {
                key_id: "x".repeat(MAX_KEY_ID + 1),
                ..CertFields::default()
            }),
            ..AuthFacts::default()
        };
        assert_eq!(
            round_trip(&long_id),
            Err(DecodeError::BadValue("cert key_id"))
        );
        let many = AuthFacts {
            methods: vec!["password".into(); MAX_METHODS + 1],
            ..AuthFacts::default()
        };
        assert_eq!(round_trip(&many), Err(DecodeError::BadValue("methods")));
        let principals = AuthFacts {
            cert: Cert::Read(CertFields {
                principals: vec!["p".into(); MAX_PRINCIPALS + 1],
                ..CertFields::default()
            }),
            ..AuthFacts::default()
        };
        assert_eq!(
            round_trip(&principals),
            Err(DecodeError::BadValue("cert principals"))
        );
    }

    #[test]
    fn cap_cuts_at_a_character_boundary() {
        assert_eq!(cap("ééé", 3), "é");
        assert_eq!(cap("abc", 10), "abc");
    }
}
