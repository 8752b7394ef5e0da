//! Arbitrary bytes into the module's `SSH_AUTH_INFO_0` and certificate
//! readers. sshd hands the module whatever the client's certificate holds;
//! neither reader may panic, and what they return stays within its caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_session_timeout::authinfo::{self, MAX_METHODS, MAX_METHOD_LEN};

fuzz_target!(|data: &[u8]| {
    let _ = authinfo::parse_certificate(data);
    let text = String::from_utf8_lossy(data);
    let _ = authinfo::parse_certificate_base64(&text);
    let info = authinfo::parse(&text);
    assert!(info.methods.len() <= MAX_METHODS);
    assert!(info.methods.iter().all(|m| m.len() <= MAX_METHOD_LEN));
});
