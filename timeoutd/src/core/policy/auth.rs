//! The rule criteria on how a login authenticated: `auth` (globs over the
//! methods sshd reported; every glob must match a method that was used) and
//! `certificate` (whether an OpenSSH certificate was used). Pure.

use crate::core::policy::matching::glob;
use crate::core::policy::{Criteria, LoginFacts, Mismatch};

fn shown(methods: &[String]) -> String {
    if methods.is_empty() {
        "(none reported)".to_owned()
    } else {
        methods.join("+")
    }
}

/// The `auth` and `certificate` part of [`Criteria::check`].
pub fn check(c: &Criteria, l: &LoginFacts) -> Result<(), Mismatch> {
    if let Some(wanted) = &c.auth {
        if let Some(missing) = wanted.iter().find(|w| !l.auth.iter().any(|m| glob(w, m))) {
            return Err(Mismatch(format!(
                "auth {} has no method matching {missing} (the rule wants auth = [{}])",
                shown(&l.auth),
                wanted.join(", ")
            )));
        }
    }
    if let Some(want) = c.certificate {
        if want != l.certificate {
            return Err(Mismatch(format!(
                "certificate is {}, the rule wants certificate = {want}",
                l.certificate
            )));
        }
    }
    Ok(())
}

/// Whether `earlier`'s auth criteria select every login `later`'s do:
/// conservative (only no criterion, or the same one).
pub fn covers(earlier: &Criteria, later: &Criteria) -> bool {
    let auth = match (&earlier.auth, &later.auth) {
        (None, _) => true,
        (Some(e), Some(l)) => e.iter().all(|ep| l.contains(ep)),
        (Some(_), None) => false,
    };
    let cert = earlier.certificate.is_none() || earlier.certificate == later.certificate;
    auth && cert
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::TtyClass;

    fn login(methods: &[&str], certificate: bool) -> LoginFacts {
        LoginFacts {
            user: "alice".into(),
            groups: Vec::new(),
            service: "sshd".into(),
            rhost: String::new(),
            tty: TtyClass::Pty,
            auth: methods.iter().map(|m| m.to_string()).collect(),
            certificate,
        }
    }

    fn wants(auth: Option<&[&str]>, certificate: Option<bool>) -> Criteria {
        Criteria {
            auth: auth.map(|a| a.iter().map(|m| m.to_string()).collect()),
            certificate,
            ..Criteria::default()
        }
    }

    #[test]
    fn every_glob_must_match_a_used_method() {
        let mfa = wants(Some(&["publickey", "keyboard-interactive*"]), None);
        assert!(check(
            &mfa,
            &login(&["publickey", "keyboard-interactive/pam"], false)
        )
        .is_ok());
        let why = check(&mfa, &login(&["publickey"], false)).unwrap_err();
        assert!(
            why.0.contains("no method matching keyboard-interactive*"),
            "{why}"
        );
        assert!(check(&mfa, &login(&[], false)).is_err());
    }

    #[test]
    fn certificate_is_matched_both_ways() {
        assert!(check(&wants(None, Some(true)), &login(&["publickey"], true)).is_ok());
        let why = check(&wants(None, Some(true)), &login(&["publickey"], false)).unwrap_err();
        assert_eq!(
            why.0,
            "certificate is false, the rule wants certificate = true"
        );
        assert!(check(&wants(None, Some(false)), &login(&[], false)).is_ok());
    }

    #[test]
    fn covering_is_conservative() {
        let any = wants(None, None);
        let mfa = wants(Some(&["publickey", "password"]), Some(true));
        assert!(covers(&any, &mfa));
        assert!(!covers(&mfa, &any));
        assert!(covers(&wants(Some(&["publickey"]), None), &mfa));
        assert!(!covers(&wants(None, Some(false)), &mfa));
    }
}
