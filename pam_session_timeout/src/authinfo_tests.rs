//! Unit tests of `authinfo`: certificates made with `ssh-keygen -s`, and
//! hostile `SSH_AUTH_INFO_0` text.

use super::*;

/// `ssh-keygen -s ca -I alice@jit -n alice,admin -z 42 -V 20260101000000:20260102000000` (UTC).
const ED25519_CERT: &str = "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIKS+2xrzQNv8lEqLQFNzR1k1T3QRBzCMMcZ9kPI3HnsJAAAAIAeuMS2WAVKFkbTmWJiZW85oteiVoZKaeBdswT1AIaoVAAAAAAAAACoAAAABAAAACWFsaWNlQGppdAAAABIAAAAFYWxpY2UAAAAFYWRtaW4AAAAAaVW5AAAAAABpVwqAAAAAAAAAAIIAAAAVcGVybWl0LVgxMS1mb3J3YXJkaW5nAAAAAAAAABdwZXJtaXQtYWdlbnQtZm9yd2FyZGluZwAAAAAAAAAWcGVybWl0LXBvcnQtZm9yd2FyZGluZwAAAAAAAAAKcGVybWl0LXB0eQAAAAAAAAAOcGVybWl0LXVzZXItcmMAAAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAgV52kPWpcKXH16HXMM2wFPyStFFH6V2D/qxaG7Scvxr4AAABTAAAAC3NzaC1lZDI1NTE5AAAAQF/nbQXxNqFzh1ksu+mEEERDiCu/kRyixLq3Gt/6hYWYT9uKm+YP9cQQiOs2qAIKlGewm8pT80jTMAwlnmtNzQM=";
/// `ssh-keygen -s ca -I forever -n bob -z 7` (no -V: valid forever).
const RSA_CERT: &str = "AAAAHHNzaC1yc2EtY2VydC12MDFAb3BlbnNzaC5jb20AAAAgQMVX+YuTxnmYn/6N3JXSsMTnWaz/4H3whLBhlMvMG8gAAAADAQABAAABgQCwN5c3H1BBzI7YsiQMLMHnC4v4g4KFbp2MRuCvx3NDe5alL8/nAiDMBEx/0uZEzshfL3GYAbo5tKrdAqc11G3wby52aqkcZ+rHBg47ycoMc/CcMozILVTyDoysEW24PeU66UsO/GGuHRgnPPyjjnCDMTCu8VTN5S8yyQxQNLDqGISG9P2+27W+XFGost/Ztdzw1XepAP+/Wne87myXa/kzpEwcfIRhsJ3lo+TCRwFg3sZ3SHCeeJxovbbOAtQMfOv36YK3rNRjAkoqHnYHjafieao03Ogj3/oUyk1ShVxec3tBMqyQBu5yTdOLy8L0+5VYG8ac2N/ySHpupUEU+GA6hzgK58zhFDhxb7kus3nTLgmxjWWeoLUhVCfqDwAupV1UjoBrKNrg94Mal2nG0cZssXymeJ22J4equX3LInyPku3oPq9VBNyu2PivY/Zmol1fOdFuVDVAaEHzVOIOYxzpNwPaJCQnGCht83CX5KFF0vOZSlXYwziMT5PDOHIMKPsAAAAAAAAABwAAAAEAAAAHZm9yZXZlcgAAAAcAAAADYm9iAAAAAAAAAAD//////////wAAAAAAAACCAAAAFXBlcm1pdC1YMTEtZm9yd2FyZGluZwAAAAAAAAAXcGVybWl0LWFnZW50LWZvcndhcmRpbmcAAAAAAAAAFnBlcm1pdC1wb3J0LWZvcndhcmRpbmcAAAAAAAAACnBlcm1pdC1wdHkAAAAAAAAADnBlcm1pdC11c2VyLXJjAAAAAAAAAAAAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIFedpD1qXClx9eh1zDNsBT8krRRR+ldg/6sWhu0nL8a+AAAAUwAAAAtzc2gtZWQyNTUxOQAAAEBLkNmXa7lKbi/fzATxk4rFx4JyM0vxhAXobvVo4vPrT+1IAGU+TuMRtQqOCGuFbC5ze0tcMYKjWDxxYX0kmlMB";
/// `ssh-keygen -s ca -I ec -n carol -z 9 -V +1h`.
const ECDSA_CERT: &str = "AAAAKGVjZHNhLXNoYTItbmlzdHAyNTYtY2VydC12MDFAb3BlbnNzaC5jb20AAAAgY0wSGi2ZCuk0JwxnvPIG9Qgh2t1s7RifiGQ4BTJvH8sAAAAIbmlzdHAyNTYAAABBBCJsMOCJcgRAf+tyIW5TjzRaDGATfGO91fU1u+8cHaJgHpoBx604At5OqCcQu8U4oX1RzTlyVyyBl/niDAw2RvsAAAAAAAAACQAAAAEAAAACZWMAAAAJAAAABWNhcm9sAAAAAGsPWhwAAAAAaw9oggAAAAAAAACCAAAAFXBlcm1pdC1YMTEtZm9yd2FyZGluZwAAAAAAAAAXcGVybWl0LWFnZW50LWZvcndhcmRpbmcAAAAAAAAAFnBlcm1pdC1wb3J0LWZvcndhcmRpbmcAAAAAAAAACnBlcm1pdC1wdHkAAAAAAAAADnBlcm1pdC11c2VyLXJjAAAAAAAAAAAAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIFedpD1qXClx9eh1zDNsBT8krRRR+ldg/6sWhu0nL8a+AAAAUwAAAAtzc2gtZWQyNTUxOQAAAEC8cZSAfO7zFm1JRHb0RZD+y0puwfkNTmtQk9sAn01/2d1eac6joSwBkiLO4B0wrZlx71KLaXBDySk1WLTMDdgL";

#[test]
fn reads_an_ed25519_certificate() {
    let c = parse_certificate_base64(ED25519_CERT).unwrap();
    assert_eq!(c.key_type, "ssh-ed25519-cert-v01@openssh.com");
    assert_eq!(c.serial, 42);
    assert_eq!(c.cert_type, 1);
    assert_eq!(c.key_id, "alice@jit");
    assert_eq!(c.principals, vec!["alice", "admin"]);
    assert_eq!(c.valid_after, 1_767_225_600);
    assert_eq!(c.valid_before, 1_767_312_000);
}

#[test]
fn a_certificate_without_validity_is_valid_forever() {
    let c = parse_certificate_base64(RSA_CERT).unwrap();
    assert_eq!(c.key_type, "ssh-rsa-cert-v01@openssh.com");
    assert_eq!((c.serial, c.key_id.as_str()), (7, "forever"));
    assert_eq!(c.principals, vec!["bob"]);
    assert_eq!((c.valid_after, c.valid_before), (0, u64::MAX));
}

#[test]
fn reads_an_ecdsa_certificate() {
    let c = parse_certificate_base64(ECDSA_CERT).unwrap();
    assert_eq!(c.key_type, "ecdsa-sha2-nistp256-cert-v01@openssh.com");
    assert_eq!(c.principals, vec!["carol"]);
    // ssh-keygen starts a relative validity up to two minutes in the past.
    let span = c.valid_before - c.valid_after;
    assert!((3600..=3720).contains(&span), "{span}");
}

#[test]
fn auth_info_lists_methods_and_reads_the_certificate() {
    let text = format!(
        "publickey ssh-ed25519-cert-v01@openssh.com {ED25519_CERT}\nkeyboard-interactive/pam\n"
    );
    let info = parse(&text);
    assert_eq!(info.methods, vec!["publickey", "keyboard-interactive/pam"]);
    let cert = info.certificate.unwrap().unwrap();
    assert_eq!(cert.key_id, "alice@jit");
}

#[test]
fn a_plain_key_login_has_no_certificate() {
    let info = parse("publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE\n");
    assert_eq!(info.methods, vec!["publickey"]);
    assert_eq!(info.certificate, None);
    assert_eq!(parse("").methods, Vec::<String>::new());
}

#[test]
fn every_truncation_of_a_certificate_is_an_error_not_a_panic() {
    let blob = decode_base64(ED25519_CERT).unwrap();
    let whole_fields_end = blob.len();
    for n in 0..whole_fields_end {
        let r = parse_certificate(&blob[..n]);
        // The fields we read end before the signature; past them a cut is harmless.
        if let Ok(c) = r {
            assert_eq!(c.serial, 42, "cut at {n}");
        }
    }
    assert!(matches!(
        parse_certificate(&blob[..20]),
        Err(CertError::Truncated(_) | CertError::BadLength(_))
    ));
}

#[test]
fn hostile_input_is_refused_or_bounded() {
    assert_eq!(
        parse_certificate_base64("not base64!"),
        Err(CertError::Base64)
    );
    // A length prefix far past the end.
    let mut blob = vec![0xff, 0xff, 0xff, 0xf0];
    blob.extend_from_slice(b"abc");
    assert_eq!(parse_certificate(&blob), Err(CertError::BadLength("type")));
    // A known string but not a certificate type.
    let mut blob = 7u32.to_be_bytes().to_vec();
    blob.extend_from_slice(b"ssh-rsa");
    assert!(matches!(
        parse_certificate(&blob),
        Err(CertError::UnknownType(_))
    ));
    // Control characters and huge lines: methods are filtered, the text is capped.
    let evil = format!("pass\x1b[2Jword\n{}\n", "x".repeat(200_000));
    let info = parse(&evil);
    assert!(info.methods.is_empty(), "{:?}", info.methods);
    let many = "password\n".repeat(100);
    assert_eq!(parse(&many).methods.len(), MAX_METHODS);
}

#[test]
fn a_broken_certificate_line_is_reported_and_the_methods_kept() {
    let info = parse("publickey ssh-ed25519-cert-v01@openssh.com AAAA\npassword\n");
    assert_eq!(info.methods, vec!["publickey", "password"]);
    assert!(matches!(info.certificate, Some(Err(_))));
}

#[test]
fn base64_round_trips_known_values() {
    assert_eq!(decode_base64("aGVsbG8="), Some(b"hello".to_vec()));
    assert_eq!(decode_base64("aGVsbA=="), Some(b"hell".to_vec()));
    assert_eq!(decode_base64(""), Some(vec![]));
    assert_eq!(decode_base64("a"), None);
}
