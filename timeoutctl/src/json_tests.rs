//! The JSON views: the exact text the hand-written writer produced before
//! (captured from it on the same records), so scripts see no change but the
//! `dry_run` field added at the end.

use super::*;
use crate::fixtures::{bare, busy, dry, revoked};

const BUSY: &str = concat!(
    r#"{"id":7,"user":"al\"i\\ce\u001b[31m","uid":1001,"service":"sshd","tty":"pts/1,pts/3","#,
    r#""rhost":"10.0.0.1\n\t\r\u007f\u0008\u000c"#,
    "\u{e9}\u{9b}",
    r#"","rule":"tests","state":"active","started":1700000000,"last_activity":1700000500,"#,
    r#""idle_seconds":100,"idle_deadline":1700001100,"idle_remaining":500,"#,
    r#""max_deadline":1700003600,"max_remaining":3000,"leader_pid":4242,"audit_session":17,"#,
    r#""pids":[4242,4243],"warnings":[{"reason":"idle","at":1700000550,"deadline":1700001100}],"#,
    r#""tampers":[{"tty":"pts/1","at":1700000560}],"dry_run":false}"#
);

const BARE: &str = concat!(
    r#"{"id":8,"user":"bob","uid":1002,"service":"sshd","tty":"ssh","rhost":"","rule":"default","#,
    r#""state":"terminating","started":1700000000,"last_activity":1700000700,"idle_seconds":0,"#,
    r#""idle_deadline":null,"idle_remaining":null,"max_deadline":1700000100,"max_remaining":0,"#,
    r#""leader_pid":99,"audit_session":null,"pids":[],"warnings":[],"tampers":[],"dry_run":false}"#
);

const REVOKED: &str = concat!(
    r#"[{"user":"bob","since":1700000000,"until":null,"by_uid":0,"reason":"inci\"dent"},"#,
    r#"{"group":"ops","since":1700000000,"until":1700003600,"by_uid":1000,"reason":""}]"#,
    "\n"
);

#[test]
fn one_session_is_the_same_object_as_before() {
    assert_eq!(session(&busy()), BUSY);
}

#[test]
fn a_list_is_an_array_and_a_newline() {
    assert_eq!(sessions(&[busy(), bare()]), format!("[{BUSY},{BARE}]\n"));
    assert_eq!(sessions(&[]), "[]\n");
}

#[test]
fn revocations_name_their_target_first() {
    assert_eq!(revocations(&revoked()), REVOKED);
    assert_eq!(revocations(&[]), "[]\n");
}

#[test]
fn output_parses_back_with_the_same_strings() {
    let v: serde_json::Value = serde_json::from_str(&session(&busy())).expect("JSON");
    assert_eq!(v["user"], busy().user.as_str());
    assert_eq!(v["rhost"], busy().rhost.as_str());
}

#[test]
fn a_dry_run_session_says_so_in_its_last_field() {
    let text = session(&dry());
    assert_eq!(
        text,
        BUSY.replace(r#""dry_run":false}"#, r#""dry_run":true}"#)
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["dry_run"], true);
}

#[test]
fn a_session_with_a_quota_says_what_is_left_at_the_end() {
    let kiosk = SessionInfo {
        daily_quota: 7200,
        quota_used: 1800,
        ..busy()
    };
    let out = sessions(&[kiosk]);
    assert!(
        out.contains(r#""dry_run":false,"daily_quota":7200,"quota_remaining":5400}"#),
        "{out}"
    );
}
