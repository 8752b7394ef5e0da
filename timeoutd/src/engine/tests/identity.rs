//! Certificates, administrators' deadlines, runtime limits and rules on how
//! the user authenticated, driven through the engine with a fake system.

use session_timeout_proto::{AuthFacts, Cert, CertFields, ErrorCode, Request, Response, Target};

use crate::core::policy::{Criteria, Policy, Rule};
use crate::core::state::deadlines_store::AdminDeadlines;
use crate::core::time::clock::Timestamp;
use crate::engine::testkit::*;
use crate::engine::Peer;

const ADMIN: Peer = Peer {
    pid: 11,
    uid: 3000,
    gid: 3000,
};

fn cert(key_id: &str, valid_before: u64) -> AuthFacts {
    AuthFacts {
        methods: vec!["publickey".into()],
        cert: Cert::Read(CertFields {
            key_type: "ssh-ed25519-cert-v01@openssh.com".into(),
            serial: 77,
            key_id: key_id.into(),
            principals: vec!["alice".into()],
            valid_after: 0,
            valid_before,
        }),
        runtime_max_at: 0,
    }
}

fn banner(r: Response) -> String {
    match r {
        Response::Registered { banner, .. } => banner,
        other => panic!("expected Registered, got {other:?}"),
    }
}

#[test]
fn a_certificate_ends_the_session_at_valid_before_after_warnings() {
    let mut e = engine(limits(Some(900), Some(3600), &[10]));
    let mut reg = registration();
    reg.auth = Box::new(cert("alice@vault", 1040));
    let text = banner(e.register(reg, ROOT));
    assert!(
        text.contains("Your certificate alice@vault expires at 00:17:20 UTC"),
        "{text}"
    );
    let open = find(&e, "session_open");
    assert_eq!(open.get("cert_id"), Some("alice@vault"));
    assert_eq!(open.get("cert_serial"), Some("77"));
    assert_eq!(open.get("cert_valid_before"), Some("1040"));
    assert_eq!(open.get("auth"), Some("publickey"));
    run_until(&mut e, 1050);
    let warn = find(&e, "session_warn");
    assert_eq!(warn.get("reason"), Some("cert_expired"));
    assert_eq!(warn.get("deadline"), Some("1040"));
    let expired = find(&e, "session_expired");
    assert_eq!(expired.get("reason"), Some("cert_expired"));
    assert_eq!(expired.get("cert_id"), Some("alice@vault"));
    assert!(
        e.sys.writes[0].1.contains("certificate expiry"),
        "{:?}",
        e.sys.writes
    );
}

#[test]
fn a_certificate_valid_forever_or_a_rule_without_cert_expiry_sets_no_deadline() {
    let mut e = engine(limits(None, None, &[10]));
    let mut reg = registration();
    reg.auth = Box::new(cert("forever", u64::MAX));
    let text = banner(e.register(reg, ROOT));
    assert!(!text.contains("certificate"), "{text}");
    assert_eq!(
        find(&e, "session_open").get("cert_valid_before"),
        Some("forever")
    );
    run_until(&mut e, 1100);
    assert!(!names(&e).contains(&"session_expired"));

    let mut off = limits(None, None, &[10]);
    off.end_at_cert_expiry = false;
    let mut e = engine(off);
    let mut reg = registration();
    reg.auth = Box::new(cert("short", 1020));
    e.register(reg, ROOT);
    run_until(&mut e, 1100);
    assert!(!names(&e).contains(&"session_expired"), "{:?}", names(&e));
}

#[test]
fn an_unreadable_certificate_is_logged_and_sets_no_deadline() {
    let mut e = engine(limits(None, None, &[10]));
    let mut reg = registration();
    reg.auth.cert = Cert::Unreadable("certificate ends inside serial".into());
    let r = e.register(reg, ROOT);
    assert!(matches!(r, Response::Registered { .. }), "{r:?}");
    let ev = find(&e, "cert_unreadable");
    assert_eq!(ev.get("error"), Some("certificate ends inside serial"));
    run_until(&mut e, 1100);
    assert!(!names(&e).contains(&"session_expired"));
}

#[test]
fn a_hostile_key_id_is_escaped_in_the_banner_and_cut() {
    let mut e = engine(limits(None, None, &[10]));
    let mut reg = registration();
    let hostile = format!("\x1b]0;pwned\x07\n{}", "A".repeat(10 * 1024));
    reg.auth = Box::new(cert(&hostile, 1040));
    let text = banner(e.register(reg, ROOT));
    assert!(
        !text.contains('\x1b') && !text.contains('\x07') && !text.contains('\n'),
        "{text:?}"
    );
    assert!(text.len() < 400, "{} bytes", text.len());
}

#[test]
fn runtime_max_is_an_absolute_deadline() {
    let mut e = engine(limits(None, None, &[10]));
    let mut reg = registration();
    reg.auth.runtime_max_at = 1030;
    let text = banner(e.register(reg, ROOT));
    assert!(text.contains("runtime limit"), "{text}");
    run_until(&mut e, 1040);
    assert_eq!(
        find(&e, "session_expired").get("reason"),
        Some("runtime_max")
    );
}

#[test]
fn an_admin_deadline_ends_live_sessions_and_logins_until_then_and_can_be_cleared() {
    let mut e = engine(limits(None, None, &[10]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1005);
    let r = e.handle(
        Request::SetDeadline {
            target: Target::User("alice".into()),
            at: 1030,
            reason: "grant ends".into(),
        },
        ROOT,
    );
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    let set = find(&e, "deadline_set");
    assert_eq!(
        (set.get("target"), set.get("at"), set.get("sessions")),
        (Some("user:alice"), Some("1030"), Some("1"))
    );
    assert!(e
        .sys
        .saved_deadlines
        .as_deref()
        .is_some_and(|t| t.contains("alice")));
    match e.handle(Request::Deadlines, ROOT) {
        Response::Deadlines(l) => assert_eq!((l.len(), l[0].at), (1, 1030)),
        other => panic!("{other:?}"),
    }
    run_until(&mut e, 1035);
    let expired = find(&e, "session_expired");
    assert_eq!(expired.get("reason"), Some("deadline"));
    assert_eq!(expired.get("deadline"), Some("1030"));
    assert_eq!(find(&e, "session_warn").get("reason"), Some("deadline"));
    // A deadline that passed is no longer listed.
    match e.handle(Request::Deadlines, ROOT) {
        Response::Deadlines(l) => assert!(l.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cleared_deadline_no_longer_ends_the_session() {
    let mut e = engine(limits(None, None, &[10]));
    let target = Target::Group("alice".into());
    e.handle(
        Request::SetDeadline {
            target: target.clone(),
            at: 1030,
            reason: String::new(),
        },
        ROOT,
    );
    e.sys.now = Timestamp::from_secs(1001);
    e.register(registration(), ROOT);
    assert!(matches!(
        e.handle(
            Request::ClearDeadline {
                target: target.clone()
            },
            ROOT
        ),
        Response::Done { .. }
    ));
    assert!(names(&e).contains(&"deadline_cleared"));
    run_until(&mut e, 1060);
    assert!(!names(&e).contains(&"session_expired"), "{:?}", names(&e));
    let again = e.handle(Request::ClearDeadline { target }, ROOT);
    assert!(
        matches!(
            again,
            Response::Error {
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "{again:?}"
    );
}

#[test]
fn deadline_verbs_are_admin_only_and_root_is_protected() {
    let mut e = engine(limits(None, None, &[10]));
    e.admin_group = Some("wheel".into());
    e.sys.admins = vec![(ADMIN.uid, "wheel".into())];
    let set = |t: Target| Request::SetDeadline {
        target: t,
        at: 2000,
        reason: String::new(),
    };
    let user = Peer {
        pid: 9,
        uid: USER_UID,
        gid: USER_UID,
    };
    for req in [set(Target::User("bob".into())), Request::Deadlines] {
        let r = e.handle(req, user);
        assert!(
            matches!(
                r,
                Response::Error {
                    code: ErrorCode::PermissionDenied,
                    ..
                }
            ),
            "{r:?}"
        );
    }
    for t in [Target::User("root".into()), Target::Group("wheel".into())] {
        let r = e.handle(set(t), ADMIN);
        assert!(
            matches!(
                r,
                Response::Error {
                    code: ErrorCode::PermissionDenied,
                    ..
                }
            ),
            "{r:?}"
        );
    }
    assert!(matches!(
        e.handle(set(Target::User("bob".into())), ADMIN),
        Response::Done { .. }
    ));
    let past = e.handle(
        Request::SetDeadline {
            target: Target::User("bob".into()),
            at: 999,
            reason: String::new(),
        },
        ROOT,
    );
    assert!(
        matches!(
            past,
            Response::Error {
                code: ErrorCode::Malformed,
                ..
            }
        ),
        "{past:?}"
    );
}

#[test]
fn deadlines_survive_a_restart_through_their_text() {
    let mut e = engine(limits(None, None, &[10]));
    e.handle(
        Request::SetDeadline {
            target: Target::User("alice".into()),
            at: 1030,
            reason: "r".into(),
        },
        ROOT,
    );
    let text = e.sys.saved_deadlines.clone().unwrap_or_default();
    let mut restarted = engine(limits(None, None, &[10]));
    restarted.admin_deadlines = AdminDeadlines::from_text(&text).unwrap();
    restarted.sys.now = Timestamp::from_secs(1010);
    restarted.register(registration(), ROOT);
    run_until(&mut restarted, 1040);
    assert_eq!(
        find(&restarted, "session_expired").get("reason"),
        Some("deadline")
    );
}

#[test]
fn rules_on_auth_pick_limits_and_key_only_logins_fall_through() {
    let mut p = Policy::new(limits(Some(60), None, &[10]));
    p.rules = vec![Rule {
        name: "mfa".into(),
        criteria: Criteria {
            auth: Some(vec!["publickey".into(), "keyboard-interactive*".into()]),
            ..Criteria::default()
        },
        limits: limits(Some(600), None, &[10]).into(),
    }];
    let mut e = engine(limits(Some(60), None, &[10]));
    e.set_policy(p);
    let mut reg = registration();
    reg.auth.methods = vec!["publickey".into(), "keyboard-interactive/pam".into()];
    e.register(reg, ROOT);
    let open = find(&e, "session_open");
    assert_eq!(open.get("rule"), Some("mfa"));
    assert_eq!(open.get("auth"), Some("publickey+keyboard-interactive/pam"));
    assert_eq!(open.get("idle_limit"), Some("10m"));
}
