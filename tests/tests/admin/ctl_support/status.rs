//! The steps of k5: a user's own `timeoutctl status`, and the admin verbs
//! refused to them.

use std::time::{Duration, Instant};

use e2e::Seen;
use serde_json::Value as Json;

use super::{assert_untouched, between, num_of, parse_json, str_of};
use crate::support::{secs, Login, World, EVENT};

/// Admin verbs, as the user (SO_PEERCRED says who asks): refused, logged
/// with their uid, and the other user's session is untouched.
pub fn admin_verbs_are_refused(w: &World, uid: u32, other: &Login) {
    for (verb, args) in [
        ("list", vec!["list"]),
        ("kill", vec!["kill", other.id.as_str()]),
    ] {
        let r = w.ctl_as(0, &args);
        assert!(
            r.code() == Some(1)
                && r.stderr
                    .starts_with("timeoutctl: refused (PermissionDenied): "),
            "{}",
            r.describe()
        );
        w.expect_event(
            "request_denied",
            &[("request", verb), ("peer_uid", &uid.to_string())],
        );
    }
    assert_untouched(w, &other.id, &["session_killed", "session_terminated"]);
    assert!(other.ssh.exit().is_none(), "{}", w.report(&[&other.ssh]));
}

/// The plain-text status, from outside the session: one line, for the
/// user's own session only.
pub fn plain_status_shows_only_mine(w: &World, mine: &Login, other: &Login) {
    let text = w.ctl_as(0, &["status"]);
    assert!(text.ok(), "{}", text.describe());
    assert!(
        text.stdout.contains(&format!("session {} (", mine.id))
            && !text.stdout.contains(&format!("session {} (", other.id))
            && text.stdout.contains("more idle")
            && text.stdout.lines().count() == 1,
        "{}",
        text.describe()
    );
}

/// `status --json` as typed in the session, and when.
pub struct TypedStatus {
    /// When the line was typed.
    pub typed: Instant,
    /// Where (and when) the end marker arrived.
    pub end: Seen,
    /// The JSON text between the markers.
    pub body: String,
    /// Its one session.
    pub session: Json,
}

/// Typed in the session, as a user would. Only the shell's evaluation
/// prints the markers, never the echo of the typed line. It lists exactly
/// one session.
pub fn type_status_json(w: &World, mine: &Login) -> TypedStatus {
    let from = mine.ssh.output_len();
    let typed = mine
        .ssh
        .send(&format!(
            "echo ST$((1+1))B; {} --socket {} status --json; echo ST$((1+1))E\n",
            w.ctl.display(),
            w.socket.display()
        ))
        .expect("typing");
    let end = mine
        .ssh
        .wait_output_from("ST2E", from, EVENT)
        .unwrap_or_else(|| panic!("no status output\n{}", w.report(&[&mine.ssh])));
    let out = String::from_utf8_lossy(&mine.ssh.output()[from..end.end]).into_owned();
    let body = between(&out, "ST2B", "ST2E").unwrap_or_default();
    let list = parse_json(&body, w);
    let sessions = list.as_array().expect("an array");
    assert_eq!(sessions.len(), 1, "{body}");
    let session = sessions[0].clone();
    TypedStatus {
        typed,
        end,
        body,
        session,
    }
}

/// The session listed is the user's own, not the other user's.
pub fn names_the_user_only(w: &World, mine: &Login, st: &TypedStatus, uid: u32, other_uid: u32) {
    let (s, body) = (&st.session, &st.body);
    assert_eq!(
        (num_of(s, "id"), str_of(s, "user"), num_of(s, "uid")),
        (mine.id.parse().ok(), Some(w.name(0)), Some(f64::from(uid))),
        "{body}"
    );
    assert_ne!(num_of(s, "uid"), Some(f64::from(other_uid)));
}

/// Every field of a listed session is there.
pub fn has_every_field(st: &TypedStatus) {
    let (s, body) = (&st.session, &st.body);
    for key in [
        "id",
        "user",
        "uid",
        "service",
        "tty",
        "rhost",
        "rule",
        "state",
        "started",
        "last_activity",
        "idle_seconds",
        "idle_deadline",
        "idle_remaining",
        "max_deadline",
        "max_remaining",
        "leader_pid",
        "audit_session",
        "pids",
        "warnings",
        "tampers",
    ] {
        assert!(s.get(key).is_some(), "no {key:?} in {body}");
    }
}

/// The absolute time left counts from registration, and the idle time left
/// predicts when the session really closes (within 2 s), as idle.
pub fn remaining_times_predict_the_close(
    w: &World,
    mine: &Login,
    st: &TypedStatus,
    idle: u64,
    max: u64,
) {
    let (s, body, end, typed) = (&st.session, &st.body, st.end, st.typed);
    let idle_left = num_of(s, "idle_remaining").expect("idle_remaining") as u64;
    let max_left = num_of(s, "max_remaining").expect("max_remaining") as u64;
    // The absolute deadline counts from registration.
    let since_open = end.at - mine.open.at;
    let expected_max = Duration::from_secs(max)
        .saturating_sub(since_open)
        .as_secs();
    assert!(
        max_left.abs_diff(expected_max) <= 2,
        "max_remaining {max_left}, expected {expected_max}: {body}"
    );
    // The idle time left must predict when the session really closes.
    let predicted = end.at + Duration::from_secs(idle_left);
    let exit = w.expect_exit(&mine.ssh, Duration::from_secs(idle + 8 + 2 + 10));
    let off = if exit.at > predicted {
        exit.at - predicted
    } else {
        predicted - exit.at
    };
    eprintln!(
        "k5: status said {idle_left}s of idle left; the session closed {} after the status was typed ({} off)",
        secs(exit.at - typed),
        secs(off)
    );
    assert!(
        off <= Duration::from_secs(2),
        "status said {idle_left}s of idle time left {} before the close: {} off\n{}",
        secs(exit.at - end.at),
        secs(off),
        w.report(&[&mine.ssh])
    );
    let ex = w.expect_event("session_expired", &[("id", &mine.id)]);
    assert_eq!(ex.get("reason"), Some("idle"), "{}", ex.raw);
}
