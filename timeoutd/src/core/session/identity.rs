//! How a session's user authenticated: the methods sshd reported, the
//! OpenSSH certificate's identity and validity, and the runtime limit an
//! earlier PAM module set. Pure: built from the Register request, kept in the
//! durable record, shown in events, matched by rules.

use session_timeout_proto::{AuthFacts, Cert};

use crate::core::audit::event::Event;
use crate::core::state::record::{esc, unesc};
use crate::core::time::clock::Timestamp;

/// Longest key id or principal shown in an event or a banner, in characters.
pub const SHOWN_MAX: usize = 64;

/// The certificate of a login.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CertUse {
    #[default]
    None,
    Read(CertFacts),
    /// One was used but could not be read: no certificate deadline.
    Unreadable,
}

/// What the daemon keeps of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertFacts {
    pub key_id: String,
    pub serial: u64,
    pub principals: Vec<String>,
    /// `None`: valid forever.
    pub valid_before: Option<Timestamp>,
}

/// How the user authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// Methods that succeeded, in order; empty for a login that was not sshd's.
    pub methods: Vec<String>,
    pub cert: CertUse,
    /// pam_systemd's `systemd.runtime_max_sec`, made absolute by the module.
    pub runtime_max_at: Option<Timestamp>,
}

/// A certificate's `valid_before` as a time; `None` for "forever" (and for
/// a time too far away to be one).
fn valid_before(secs: u64) -> Option<Timestamp> {
    if secs == u64::MAX {
        return None;
    }
    i64::try_from(secs)
        .ok()
        .filter(|s| *s < i64::MAX / 1000)
        .map(Timestamp::from_secs)
}

impl Identity {
    /// From the Register request, and the reason a certificate was unreadable.
    pub fn from_wire(a: &AuthFacts) -> (Identity, Option<String>) {
        let (cert, unreadable) = match &a.cert {
            Cert::None => (CertUse::None, None),
            Cert::Unreadable(why) => (CertUse::Unreadable, Some(why.clone())),
            Cert::Read(c) => (
                CertUse::Read(CertFacts {
                    key_id: c.key_id.clone(),
                    serial: c.serial,
                    principals: c.principals.clone(),
                    valid_before: valid_before(c.valid_before),
                }),
                None,
            ),
        };
        let id = Identity {
            methods: a.methods.clone(),
            cert,
            runtime_max_at: (a.runtime_max_at > 0).then(|| Timestamp::from_secs(a.runtime_max_at)),
        };
        (id, unreadable)
    }

    /// Whether a certificate was used (read or not).
    pub fn certificate(&self) -> bool {
        !matches!(self.cert, CertUse::None)
    }

    /// The certificate's end, if one was read and it ends.
    pub fn cert_end(&self) -> Option<Timestamp> {
        match &self.cert {
            CertUse::Read(c) => c.valid_before,
            _ => None,
        }
    }

    /// `auth=` and, with a certificate, `cert_id=`, `cert_serial=`,
    /// `cert_valid_before=` (`forever` or Unix seconds). The event writer
    /// escapes the values; the key id is also cut to [`SHOWN_MAX`].
    pub fn event_fields(&self, ev: Event) -> Event {
        let ev = if self.methods.is_empty() {
            ev
        } else {
            ev.field("auth", self.methods.join("+"))
        };
        match &self.cert {
            CertUse::None => ev,
            CertUse::Unreadable => ev.field("cert_id", "(unreadable)"),
            CertUse::Read(c) => ev
                .field("cert_id", shown(&c.key_id))
                .field("cert_serial", c.serial)
                .field(
                    "cert_valid_before",
                    c.valid_before
                        .map_or_else(|| "forever".to_owned(), |t| t.secs().to_string()),
                ),
        }
    }

    /// Four tab-free fields for the durable record: methods, certificate,
    /// principals, runtime_max (ms or `-`).
    pub fn encode(&self) -> [String; 4] {
        let methods = self
            .methods
            .iter()
            .map(|m| esc(m))
            .collect::<Vec<_>>()
            .join(",");
        let (cert, principals) = match &self.cert {
            CertUse::None => ("-".to_owned(), String::new()),
            CertUse::Unreadable => ("?".to_owned(), String::new()),
            CertUse::Read(c) => (
                format!(
                    "{}:{}:{}",
                    c.serial,
                    c.valid_before
                        .map_or_else(|| "-".to_owned(), |t| t.0.to_string()),
                    esc(&c.key_id)
                ),
                c.principals
                    .iter()
                    .map(|p| esc(p))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        };
        let runtime = self
            .runtime_max_at
            .map_or_else(|| "-".to_owned(), |t| t.0.to_string());
        [methods, cert, principals, runtime]
    }

    /// Reverses [`Identity::encode`].
    pub fn decode(f: &[&str]) -> Result<Identity, String> {
        let [methods, cert, principals, runtime] = f else {
            return Err("identity needs 4 fields".into());
        };
        let list = |s: &str| -> Vec<String> {
            if s.is_empty() {
                Vec::new()
            } else {
                s.split(',').map(unesc).collect()
            }
        };
        let ms = |s: &str| -> Result<Option<Timestamp>, String> {
            match s {
                "-" => Ok(None),
                v => v
                    .parse()
                    .map(|n| Some(Timestamp(n)))
                    .map_err(|_| "bad time".to_owned()),
            }
        };
        let cert = match *cert {
            "-" => CertUse::None,
            "?" => CertUse::Unreadable,
            c => {
                let mut parts = c.splitn(3, ':');
                let (Some(serial), Some(before), Some(id)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err("bad certificate field".into());
                };
                CertUse::Read(CertFacts {
                    key_id: unesc(id),
                    serial: serial.parse().map_err(|_| "bad serial")?,
                    principals: list(principals),
                    valid_before: ms(before)?,
                })
            }
        };
        Ok(Identity {
            methods: list(methods),
            cert,
            runtime_max_at: ms(runtime)?,
        })
    }
}

/// A user-controlled text cut to [`SHOWN_MAX`] characters (escaping is the
/// writer's job: the event line or the terminal).
pub fn shown(s: &str) -> String {
    if s.chars().count() <= SHOWN_MAX {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(SHOWN_MAX).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_timeout_proto::CertFields;

    fn wire(key_id: &str, before: u64) -> AuthFacts {
        AuthFacts {
            methods: vec!["publickey".into(), "keyboard-interactive/pam".into()],
            cert: Cert::Read(CertFields {
                key_type: "ssh-ed25519-cert-v01@openssh.com".into(),
                serial: 42,
                key_id: key_id.into(),
                principals: vec!["alice".into(), "a,b\tc".into()],
                valid_after: 0,
                valid_before: before,
            }),
            runtime_max_at: 1_700_000_000,
        }
    }

    #[test]
    fn wire_facts_become_an_identity() {
        let (id, why) = Identity::from_wire(&wire("alice@vault", 1_700_000_600));
        assert_eq!(why, None);
        assert!(id.certificate());
        assert_eq!(id.cert_end(), Some(Timestamp::from_secs(1_700_000_600)));
        assert_eq!(id.runtime_max_at, Some(Timestamp::from_secs(1_700_000_000)));
        let (forever, _) = Identity::from_wire(&wire("x", u64::MAX));
        assert_eq!(forever.cert_end(), None);
        let (far, _) = Identity::from_wire(&wire("x", u64::MAX - 1));
        assert_eq!(far.cert_end(), None, "a time beyond the clock is forever");
        let (bad, why) = Identity::from_wire(&AuthFacts {
            cert: Cert::Unreadable("truncated".into()),
            ..AuthFacts::default()
        });
        assert_eq!(why.as_deref(), Some("truncated"));
        assert!(bad.certificate() && bad.cert_end().is_none());
    }

    #[test]
    fn the_record_fields_round_trip() {
        for a in [
            wire("id\twith\ttabs, commas\nand \\ lines", 1_700_000_600),
            wire("", u64::MAX),
            AuthFacts::default(),
            AuthFacts {
                cert: Cert::Unreadable("x".into()),
                ..AuthFacts::default()
            },
        ] {
            let (id, _) = Identity::from_wire(&a);
            let fields = id.encode();
            assert!(fields
                .iter()
                .all(|f| !f.contains('\t') && !f.contains('\n')));
            let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            assert_eq!(Identity::decode(&refs), Ok(id));
        }
        assert!(Identity::decode(&["", "nonsense", "", "-"]).is_err());
        assert!(Identity::decode(&["", "-", ""]).is_err());
    }

    #[test]
    fn events_carry_the_methods_and_a_capped_key_id() {
        let hostile = format!("\x1b[2J\n{}", "k".repeat(10 * 1024));
        let (id, _) = Identity::from_wire(&wire(&hostile, 1_700_000_600));
        let ev = id.event_fields(Event::new(
            crate::core::audit::event::EventName::SessionOpen,
        ));
        assert_eq!(ev.get("auth"), Some("publickey+keyboard-interactive/pam"));
        assert_eq!(ev.get("cert_serial"), Some("42"));
        assert_eq!(ev.get("cert_valid_before"), Some("1700000600"));
        let shown_id = ev.get("cert_id").unwrap_or_default();
        assert!(shown_id.chars().count() <= SHOWN_MAX + 1, "{shown_id}");
        let line = ev.to_string();
        assert!(!line.contains('\x1b') && !line.contains('\n'), "{line}");
        let plain = Identity::default().event_fields(Event::new(
            crate::core::audit::event::EventName::SessionOpen,
        ));
        assert_eq!(plain.get("auth"), None);
        assert_eq!(plain.get("cert_id"), None);
    }
}
