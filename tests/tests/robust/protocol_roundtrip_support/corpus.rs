//! One valid value of every request and response kind: the fuzz target's
//! seed corpus is made from them, and checked against them.

use session_timeout_proto::{
    ErrorCode, Registration, Request, Response, RevocationInfo, SessionKey, Target,
};

use super::Rng;

/// Named sample values.
pub type Named<T> = Vec<(&'static str, T)>;

/// One valid value of every request and response kind, for the fuzz seed corpus.
pub fn corpus_values() -> (Named<Request>, Named<Response>) {
    (corpus_requests(), corpus_responses())
}

/// One valid request of every kind.
fn corpus_requests() -> Named<Request> {
    let reg = Registration {
        user: "alice".into(),
        uid: 1000,
        service: "sshd".into(),
        tty: "ssh".into(),
        rhost: "192.0.2.7".into(),
        ruser: String::new(),
        pid: 4242,
        start_time: 987_654,
        loginuid: 1000,
        sessionid: 17,
        auth: Box::new(session_timeout_proto::AuthFacts {
            methods: vec!["publickey".into(), "keyboard-interactive/pam".into()],
            cert: session_timeout_proto::Cert::Read(session_timeout_proto::CertFields {
                key_type: "ssh-ed25519-cert-v01@openssh.com".into(),
                serial: 42,
                key_id: "alice@jit".into(),
                principals: vec!["alice".into()],
                valid_after: 0,
                valid_before: u64::MAX,
            }),
            runtime_max_at: 0,
        }),
    };
    vec![
        ("register", Request::Register(reg)),
        (
            "unregister",
            Request::Unregister(SessionKey {
                pid: 4242,
                start_time: 987_654,
                session_id: 9,
            }),
        ),
        (
            "check-access",
            Request::CheckAccess {
                user: "bob".into(),
                service: "sshd".into(),
                rhost: "2001:db8::1".into(),
            },
        ),
        ("list", Request::List),
        ("show", Request::Show { id: 3 }),
        (
            "kill",
            Request::Kill {
                id: 3,
                reason: "incident 42".into(),
            },
        ),
        (
            "revoke",
            Request::Revoke {
                target: Target::Group("contractors".into()),
                ttl_secs: 3600,
                reason: "offboarding".into(),
            },
        ),
        (
            "unrevoke",
            Request::Unrevoke {
                target: Target::User("bob".into()),
            },
        ),
        ("revocations", Request::Revocations),
        ("reload", Request::Reload),
        ("status", Request::Status),
        ("revalidate", Request::Revalidate { user: "bob".into() }),
        (
            "set-deadline",
            Request::SetDeadline {
                target: Target::User("bob".into()),
                at: 1_700_003_600,
                reason: "JIT grant ends".into(),
            },
        ),
        (
            "clear-deadline",
            Request::ClearDeadline {
                target: Target::Group("contractors".into()),
            },
        ),
        ("deadlines", Request::Deadlines),
        ("daemon-status", Request::DaemonStatus),
    ]
}

/// One valid response of every kind.
fn corpus_responses() -> Named<Response> {
    let mut rng = Rng::new(7);
    let mut info = rng.session_info();
    info.user = "bob".into();
    vec![
        (
            "registered",
            Response::Registered {
                session_id: 9,
                banner: "Idle sessions close after 15m.".into(),
            },
        ),
        ("unregistered", Response::Unregistered { session_id: 9 }),
        (
            "refused",
            Response::Refused {
                message: "revoked".into(),
            },
        ),
        (
            "access",
            Response::Access {
                allowed: true,
                message: String::new(),
            },
        ),
        ("sessions", Response::Sessions(vec![info])),
        (
            "revocation-list",
            Response::Revocations(vec![RevocationInfo {
                target: Target::User("bob".into()),
                since: 1_700_000_000,
                until: 0,
                reason: "r".into(),
                by_uid: 0,
            }]),
        ),
        (
            "done",
            Response::Done {
                message: "ok".into(),
            },
        ),
        (
            "daemon-state",
            Response::DaemonState {
                sessions: 2,
                log_lines_dropped: 5,
            },
        ),
        (
            "deadline-list",
            Response::Deadlines(vec![session_timeout_proto::DeadlineInfo {
                target: Target::User("bob".into()),
                since: 1_700_000_000,
                at: 1_700_003_600,
                reason: "r".into(),
                by_uid: 0,
            }]),
        ),
        (
            "error",
            Response::Error {
                code: ErrorCode::Malformed,
                message: "frame length 0 is outside 1..=65536".into(),
            },
        ),
    ]
}
