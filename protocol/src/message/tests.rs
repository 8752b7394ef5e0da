//! Round trips and hostile bodies for the message codecs.

use super::*;
use crate::control::{RevocationInfo, SessionInfo, Target};

fn sample() -> Registration {
    Registration {
        user: "alice".into(),
        uid: 1000,
        service: "sshd".into(),
        tty: "ssh".into(),
        rhost: "127.0.0.1".into(),
        ruser: String::new(),
        pid: 4242,
        start_time: 987_654,
        loginuid: 1000,
        sessionid: 17,
        auth: Box::new(crate::AuthFacts {
            methods: vec!["publickey".into()],
            cert: crate::Cert::Unreadable("bad base64".into()),
            runtime_max_at: 5,
        }),
    }
}

#[test]
fn requests_round_trip() {
    for req in [
        Request::Register(sample()),
        Request::Unregister(SessionKey {
            pid: 1,
            start_time: 2,
            session_id: 3,
        }),
    ] {
        assert_eq!(Request::decode(&req.encode()).unwrap(), req);
    }
}

#[test]
fn responses_round_trip() {
    for resp in [
        Response::Registered {
            session_id: 9,
            banner: "Idle sessions close after 15m.".into(),
        },
        Response::Unregistered { session_id: 0 },
        Response::Error {
            code: ErrorCode::PermissionDenied,
            message: "only root may register".into(),
        },
    ] {
        assert_eq!(Response::decode(&resp.encode()).unwrap(), resp);
    }
}

fn info() -> SessionInfo {
    SessionInfo {
        id: 7,
        user: "bob".into(),
        uid: 1002,
        service: "sshd".into(),
        tty: "pts/1,pts/3".into(),
        rhost: "::1".into(),
        rule: "privileged".into(),
        state: "active".into(),
        started: 1_700_000_000,
        last_activity: 1_700_000_100,
        idle_deadline: 1_700_000_700,
        max_deadline: 0,
        now: 1_700_000_200,
        leader_pid: 4242,
        audit_session: 9,
        pids: vec![4242, 4250],
        warnings: vec![crate::WarningSent {
            reason: "idle".into(),
            at: 1_700_000_400,
            deadline: 1_700_000_700,
        }],
        tampers: vec![crate::TamperSeen {
            tty: "pts/1".into(),
            at: 1_700_000_150,
        }],
        dry_run: true,
        daily_quota: 7200,
        quota_used: 1800,
    }
}

#[test]
fn a_version_1_frame_is_refused_and_dry_run_is_0_or_1() {
    let resp = Response::Sessions(vec![info()]);
    let mut body = resp.encode();
    body[0] = 1;
    assert_eq!(
        Response::decode(&body),
        Err(DecodeError::UnsupportedVersion(1))
    );
    let mut body = resp.encode();
    // dry_run, then the quota's two i64 (version 3).
    let last = body.len() - 1 - 16;
    assert_eq!(body[last], 1, "dry_run is before the quota fields");
    body[last] = 2;
    assert_eq!(
        Response::decode(&body),
        Err(DecodeError::BadValue("dry_run"))
    );
    // A version-2 record (without the quota) cannot pass for a version-3 one.
    let mut body = resp.encode();
    body.truncate(body.len() - 16);
    assert!(Response::decode(&body).is_err());
}

#[test]
fn control_verbs_round_trip() {
    for req in [
        Request::CheckAccess {
            user: "bob".into(),
            service: "sshd".into(),
            rhost: "10.0.0.1".into(),
        },
        Request::List,
        Request::Show { id: 3 },
        Request::Kill {
            id: 3,
            reason: "incident 42".into(),
        },
        Request::Revoke {
            target: Target::Group("contractors".into()),
            ttl_secs: 3600,
            reason: "offboarding".into(),
        },
        Request::Unrevoke {
            target: Target::User("bob".into()),
        },
        Request::Revocations,
        Request::Reload,
        Request::Status,
        Request::Revalidate { user: "bob".into() },
        Request::SetDeadline {
            target: Target::User("bob".into()),
            at: 1_700_000_000,
            reason: "jit grant ends".into(),
        },
        Request::ClearDeadline {
            target: Target::Group("ops".into()),
        },
        Request::Deadlines,
        Request::DaemonStatus,
        Request::Revalidate {
            user: String::new(),
        },
    ] {
        assert_eq!(Request::decode(&req.encode()).unwrap(), req);
    }
    for resp in [
        Response::Refused {
            message: "revoked".into(),
        },
        Response::Access {
            allowed: false,
            message: "revoked until 12:00".into(),
        },
        Response::Sessions(vec![info(), SessionInfo::default()]),
        Response::Revocations(vec![RevocationInfo {
            target: Target::User("bob".into()),
            since: 1,
            until: 0,
            reason: "r".into(),
            by_uid: 0,
        }]),
        Response::Deadlines(vec![crate::DeadlineInfo {
            target: Target::User("bob".into()),
            since: 1,
            at: 2,
            reason: "r".into(),
            by_uid: 0,
        }]),
        Response::DaemonState {
            sessions: 3,
            log_lines_dropped: u64::MAX,
        },
        Response::Done {
            message: "ok".into(),
        },
    ] {
        assert_eq!(Response::decode(&resp.encode()).unwrap(), resp);
    }
}

#[test]
fn a_huge_list_count_is_refused_before_allocating() {
    let mut body = Response::Sessions(vec![]).encode();
    let n = body.len();
    body[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        Response::decode(&body),
        Err(DecodeError::BadValue("sessions"))
    );
}

#[test]
fn every_truncation_of_a_session_list_is_an_error() {
    let body = Response::Sessions(vec![info()]).encode();
    for cut in 0..body.len() {
        assert!(Response::decode(&body[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn every_truncation_of_a_register_is_an_error() {
    let body = Request::Register(sample()).encode();
    for cut in 0..body.len() {
        assert!(Request::decode(&body[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn unknown_kind_and_code_are_errors() {
    assert_eq!(
        Request::decode(&[crate::VERSION, 77]),
        Err(DecodeError::UnknownKind(77))
    );
    assert_eq!(
        Response::decode(&[crate::VERSION, kind::ERROR, 250, 0, 0]),
        Err(DecodeError::BadValue("error code"))
    );
}
