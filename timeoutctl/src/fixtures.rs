//! Records for the unit tests of the JSON and the text output: one session
//! with every field set and untrusted text, one with the "none" values.

use session_timeout_proto::{RevocationInfo, SessionInfo, TamperSeen, Target, WarningSent};

/// A session with every field set and untrusted text in two of them.
pub(crate) fn busy() -> SessionInfo {
    SessionInfo {
        id: 7,
        user: "al\"i\\ce\u{1b}[31m".into(),
        uid: 1001,
        service: "sshd".into(),
        tty: "pts/1,pts/3".into(),
        rhost: "10.0.0.1\n\t\r\u{7f}\u{8}\u{c}\u{e9}\u{9b}".into(),
        rule: "tests".into(),
        state: "active".into(),
        started: 1_700_000_000,
        last_activity: 1_700_000_500,
        idle_deadline: 1_700_001_100,
        max_deadline: 1_700_003_600,
        now: 1_700_000_600,
        leader_pid: 4242,
        audit_session: 17,
        pids: vec![4242, 4243],
        warnings: vec![WarningSent {
            reason: "idle".into(),
            at: 1_700_000_550,
            deadline: 1_700_001_100,
        }],
        tampers: vec![TamperSeen {
            tty: "pts/1".into(),
            at: 1_700_000_560,
        }],
        dry_run: false,
        daily_quota: 0,
        quota_used: 0,
    }
}

/// A session with no idle limit, a passed deadline, activity "after" now,
/// no rhost and no audit session.
pub(crate) fn bare() -> SessionInfo {
    SessionInfo {
        id: 8,
        user: "bob".into(),
        uid: 1002,
        service: "sshd".into(),
        tty: "ssh".into(),
        rhost: String::new(),
        rule: "default".into(),
        state: "terminating".into(),
        started: 1_700_000_000,
        last_activity: 1_700_000_700,
        idle_deadline: 0,
        max_deadline: 1_700_000_100,
        now: 1_700_000_600,
        leader_pid: 99,
        audit_session: u32::MAX,
        pids: vec![],
        warnings: vec![],
        tampers: vec![],
        dry_run: false,
        daily_quota: 0,
        quota_used: 0,
    }
}

/// `busy()` under a dry-run rule.
pub(crate) fn dry() -> SessionInfo {
    SessionInfo {
        dry_run: true,
        ..busy()
    }
}

pub(crate) fn revoked() -> Vec<RevocationInfo> {
    vec![
        RevocationInfo {
            target: Target::User("bob".into()),
            since: 1_700_000_000,
            until: 0,
            reason: "inci\"dent".into(),
            by_uid: 0,
        },
        RevocationInfo {
            target: Target::Group("ops".into()),
            since: 1_700_000_000,
            until: 1_700_003_600,
            reason: String::new(),
            by_uid: 1000,
        },
    ]
}
