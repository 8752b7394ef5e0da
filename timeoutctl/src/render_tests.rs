//! The text output: the same tables and lines as before on the same records,
//! and no control character from the daemon reaches the terminal raw.

use super::*;
use crate::fixtures::{bare, busy, dry, revoked};

#[test]
fn tables_align_and_escape_every_cell() {
    let t = table(
        &["A", "B"],
        &[vec!["x".into(), "\u{1b}[31mred\u{9b}".into()]],
    );
    assert_eq!(t, "A  B\nx  \\x1b[31mred\\u{9b}\n");
    let t = sessions_table(&[busy(), bare()]);
    assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
    assert_eq!(
        t,
        concat!(
        "ID  USER             SERVICE  TTY          RHOST                              STARTED(UTC)  IDLE   IDLE-LEFT  MAX-LEFT  RULE     STATE\n",
        "7   al\"i\\ce\\x1b[31m  sshd     pts/1,pts/3  10.0.0.1  \\x0d\\x7f\\x08\\x0c\u{e9}\\u{9b}  22:13:20      1m40s  8m20s      50m       tests    active\n",
        "8   bob              sshd     ssh          -                                  22:13:20      0s     -          0s        default  terminating\n"
    )
    );
}

#[test]
fn detail_shows_every_field() {
    assert_eq!(
        session_detail(&busy()),
        concat!(
            "id              7\n",
            "user            al\"i\\ce\\x1b[31m (uid 1001)\n",
            "service         sshd\n",
            "tty             pts/1,pts/3\n",
            "rhost           10.0.0.1\n",
            "\t\\x0d\\x7f\\x08\\x0c\u{e9}\\u{9b}\n",
            "rule            tests\n",
            "state           active\n",
            "started         22:13:20 UTC\n",
            "idle for        1m40s\n",
            "idle deadline   22:31:40 (in 8m20s)\n",
            "max deadline    23:13:20 (in 50m)\n",
            "leader pid      4242\n",
            "audit session   17\n",
            "pids            4242 4243\n",
            "warning         idle at 22:22:30 for deadline 22:31:40\n",
            "tamper          pts/1 at 22:22:40\n"
        )
    );
    assert_eq!(
        session_detail(&bare()),
        concat!(
            "id              8\n",
            "user            bob (uid 1002)\n",
            "service         sshd\n",
            "tty             ssh\n",
            "rhost           \n",
            "rule            default\n",
            "state           terminating\n",
            "started         22:13:20 UTC\n",
            "idle for        0s\n",
            "idle deadline   - (in -)\n",
            "max deadline    22:15:00 (in 0s)\n",
            "leader pid      99\n",
            "audit session   none (process subtree)\n",
            "pids            \n"
        )
    );
}

#[test]
fn status_says_what_is_left() {
    assert_eq!(
        status_text(&[busy(), bare()]),
        concat!(
        "session 7 (sshd on pts/1,pts/3): idle 1m40s, closes after 8m20s more idle; closes at 23:13:20 UTC at the latest (in 50m).\n",
        "session 8 (sshd on ssh): no idle limit; closes at 22:15:00 UTC at the latest (in 0s).\n"
    )
    );
    assert_eq!(
        status_text(&[]),
        "You have no sessions under timeout policy.\n"
    );
}

#[test]
fn revocations_table_says_until_unrevoke() {
    assert_eq!(
        revocations_table(&revoked()),
        concat!(
            "TARGET     SINCE(UTC)  UNTIL(UTC)      BY-UID  REASON\n",
            "user bob   22:13:20    until unrevoke  0       inci\"dent\n",
            "group ops  22:13:20    23:13:20        1000\n"
        )
    );
}

#[test]
fn dry_run_sessions_are_marked_and_threaten_nothing() {
    let t = sessions_table(&[dry()]);
    assert!(
        t.lines()
            .nth(1)
            .is_some_and(|l| l.contains("tests (dry-run)  active")),
        "{t}"
    );
    let d = session_detail(&dry());
    assert!(
        d.contains("rule            tests\nenforce         dry-run: deadlines are logged, nothing is ended\n"),
        "{d}"
    );
    let st = status_text(&[dry()]);
    assert_eq!(
        st,
        "session 7 (sshd on pts/1,pts/3): dry run, limits are measured but nothing will be closed: \
         idle 1m40s, idle limit reached in 8m20s; absolute limit at 23:13:20 UTC (in 50m).\n"
    );
    assert!(!st.contains("closes"), "{st}");
}

#[test]
fn the_daemons_state_says_whether_log_lines_were_lost() {
    let ok = Response::DaemonState {
        sessions: 3,
        log_lines_dropped: 0,
    };
    assert_eq!(
        daemon_state(&ok).unwrap(),
        "\nDaemon: 3 session(s) in all; no log line lost.\n"
    );
    let lost = Response::DaemonState {
        sessions: 0,
        log_lines_dropped: 12,
    };
    assert!(daemon_state(&lost)
        .unwrap()
        .contains("12 log line(s) could not be delivered to syslog"));
    assert_eq!(daemon_state(&Response::Sessions(Vec::new())), None);
}

#[test]
fn status_and_list_show_the_quota_left_only_where_there_is_one() {
    let plain = sessions_table(&[busy()]);
    assert!(!plain.contains("QUOTA-LEFT"), "{plain}");
    let kiosk = SessionInfo {
        daily_quota: 7200,
        quota_used: 1800,
        ..busy()
    };
    let listed = sessions_table(&[kiosk.clone(), busy()]);
    assert!(listed.contains("QUOTA-LEFT"), "{listed}");
    assert!(listed.contains("1h30m of 2h"), "{listed}");
    let status = status_text(&[kiosk.clone(), kiosk]);
    assert_eq!(
        status
            .matches("Daily quota: 1h30m of 2h left today")
            .count(),
        1,
        "{status}"
    );
}
