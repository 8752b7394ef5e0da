//! What the module tells the daemon about how the user authenticated: the
//! methods and certificate fields from sshd's `SSH_AUTH_INFO_0` (never the
//! certificate itself), and pam_systemd's `systemd.runtime_max_sec` PAM data
//! made absolute. Everything is capped to the protocol's limits; input that
//! cannot be read only means fewer facts, never a failed or slower login.

use session_timeout_proto::identity::{
    cap, MAX_CERT_TEXT, MAX_KEY_ID, MAX_METHODS, MAX_METHOD_LEN, MAX_PRINCIPALS, MAX_PRINCIPAL_LEN,
};
use session_timeout_proto::{AuthFacts, Cert, CertFields};

use crate::authinfo::{self, Certificate};
use crate::logic::{Environment, Level};

/// The PAM environment variable sshd sets.
pub const AUTH_INFO_VAR: &str = "SSH_AUTH_INFO_0";
/// The PAM data key pam_systemd reads (a string of seconds).
pub const RUNTIME_MAX_KEY: &str = "systemd.runtime_max_sec";

fn fields(c: &Certificate) -> CertFields {
    CertFields {
        key_type: cap(&c.key_type, MAX_CERT_TEXT),
        serial: c.serial,
        key_id: cap(&c.key_id, MAX_KEY_ID),
        principals: c
            .principals
            .iter()
            .take(MAX_PRINCIPALS)
            .map(|p| cap(p, MAX_PRINCIPAL_LEN))
            .collect(),
        valid_after: c.valid_after,
        valid_before: c.valid_before,
    }
}

/// The facts of `SSH_AUTH_INFO_0`'s text.
pub fn from_auth_info(text: &str) -> AuthFacts {
    let info = authinfo::parse(text);
    let cert = match info.certificate {
        None => Cert::None,
        Some(Ok(c)) => Cert::Read(fields(&c)),
        Some(Err(e)) => Cert::Unreadable(cap(&e.to_string(), MAX_CERT_TEXT)),
    };
    AuthFacts {
        methods: info
            .methods
            .iter()
            .take(MAX_METHODS)
            .map(|m| cap(m, MAX_METHOD_LEN))
            .collect(),
        cert,
        runtime_max_at: 0,
    }
}

/// `systemd.runtime_max_sec` as an absolute time; `None` when absent,
/// zero, or not a number of seconds.
pub fn runtime_max_at(text: &str, now_secs: i64) -> Option<i64> {
    let secs: i64 = text.trim().parse().ok().filter(|s| *s > 0)?;
    now_secs.checked_add(secs)
}

/// Everything the environment says about how the user authenticated.
pub fn gather(env: &dyn Environment) -> AuthFacts {
    let mut facts = env
        .pam_env(AUTH_INFO_VAR)
        .map(|t| from_auth_info(&t))
        .unwrap_or_default();
    if let Some(text) = env.pam_data_text(RUNTIME_MAX_KEY) {
        match runtime_max_at(&text, env.now_secs()) {
            Some(at) => facts.runtime_max_at = at,
            None => env.log(
                Level::Warning,
                &format!(
                    "ignoring {RUNTIME_MAX_KEY} {:?}: not a number of seconds",
                    cap(&text, 32)
                ),
            ),
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_without_a_certificate() {
        let f = from_auth_info("publickey ssh-ed25519 AAAAC3Nza\nkeyboard-interactive/pam\n");
        assert_eq!(f.methods, ["publickey", "keyboard-interactive/pam"]);
        assert_eq!(f.cert, Cert::None);
        assert_eq!(from_auth_info(""), AuthFacts::default());
    }

    #[test]
    fn a_broken_certificate_is_reported_as_unreadable() {
        let f = from_auth_info("publickey ssh-ed25519-cert-v01@openssh.com AAAA!!!!\n");
        assert!(matches!(f.cert, Cert::Unreadable(_)), "{f:?}");
        let truncated = from_auth_info("publickey ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1l\n");
        assert!(
            matches!(truncated.cert, Cert::Unreadable(_)),
            "{truncated:?}"
        );
    }

    #[test]
    fn hostile_certificate_fields_are_capped() {
        let c = Certificate {
            key_type: "t".repeat(1000),
            serial: 1,
            cert_type: 1,
            key_id: "\u{1b}".repeat(10 * 1024),
            principals: vec!["p".repeat(100); 40],
            valid_after: 0,
            valid_before: u64::MAX,
        };
        let f = fields(&c);
        assert_eq!(f.key_id.len(), MAX_KEY_ID);
        assert_eq!(f.principals.len(), MAX_PRINCIPALS);
        assert!(f.principals.iter().all(|p| p.len() == MAX_PRINCIPAL_LEN));
        assert_eq!(f.key_type.len(), MAX_CERT_TEXT);
    }

    #[test]
    fn runtime_max_is_made_absolute_and_garbage_ignored() {
        assert_eq!(runtime_max_at("3600", 1000), Some(4600));
        assert_eq!(runtime_max_at(" 60\n", 1000), Some(1060));
        for bad in ["", "0", "-5", "1h", "9999999999999999999999"] {
            assert_eq!(runtime_max_at(bad, 1000), None, "{bad}");
        }
        assert_eq!(runtime_max_at(&i64::MAX.to_string(), 1000), None);
    }
}
