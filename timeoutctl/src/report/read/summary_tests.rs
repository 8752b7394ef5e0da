//! Unit tests of the summary and dry-run expiry parser.

use super::*;

pub(crate) const LINE: &str = "event=session_summary v=1 id=7 user=alice uid=1001 service=sshd \
tty=pts/3 rhost=192.0.2.7 rule=staff duration=3600 active=1200 idle_max=900 \
gaps=600:900,100:30 warnings=1 tamper=0 end=idle dry_run_expiries=2 limit_idle=900 limit_max=off";

fn summary_of(line: &str) -> Summary {
    match classify(line) {
        Event::Summary(s) => *s,
        other => panic!("not a summary: {other:?}"),
    }
}

#[test]
fn parses_every_field() {
    let s = summary_of(LINE);
    assert_eq!(s.who.id, 7);
    assert_eq!(s.who.user, "alice");
    assert_eq!(s.who.rule, "staff");
    assert_eq!(s.duration, 3600);
    assert_eq!(s.active, 1200);
    assert_eq!(s.idle_max, 900);
    assert_eq!(s.gaps, vec![(100, 30), (600, 900)]);
    assert_eq!(s.end, End::Idle);
    assert_eq!(s.dry_run_expiries, 2);
    assert_eq!(s.limit_idle, Some(900));
    assert_eq!(s.limit_max, None);
}

#[test]
fn empty_gaps_quoted_or_bare() {
    assert!(summary_of(&LINE.replace("gaps=600:900,100:30", "gaps="))
        .gaps
        .is_empty());
    assert!(
        summary_of(&LINE.replace("gaps=600:900,100:30", "gaps=\"\""))
            .gaps
            .is_empty()
    );
}

#[test]
fn quoted_user_is_unescaped() {
    let s = summary_of(&LINE.replace("user=alice", "user=\"a b\\x1b[2J\""));
    assert_eq!(s.who.user, "a b\u{1b}[2J");
}

#[test]
fn bad_lines_are_malformed() {
    for (from, to) in [
        ("v=1", "v=2"),
        ("v=1 ", ""),
        ("duration=3600", "duration=-5"),
        ("duration=3600", "duration=1h"),
        ("duration=3600", "duration=99999999999999999999999"),
        ("idle_max=900", "idle_max="),
        ("end=idle", "end=nope"),
        ("limit_idle=900", "limit_idle=0"),
        ("gaps=600:900,100:30", "gaps=600-900"),
        ("gaps=600:900,100:30", "gaps=1:2,"),
        ("uid=1001 ", ""),
        ("rule=staff", "rule=\"unterminated"),
    ] {
        let line = LINE.replace(from, to);
        assert_eq!(classify(&line), Event::Malformed, "{line}");
    }
    let many: Vec<String> = (0..17).map(|i| format!("{i}:1")).collect();
    let line = LINE.replace("600:900,100:30", &many.join(","));
    assert_eq!(classify(&line), Event::Malformed);
    // Truncated mid-line.
    assert_eq!(classify(&LINE[..120]), Event::Malformed);
}

#[test]
fn other_events_are_not_malformed() {
    assert_eq!(classify("event=session_open id=1 user=a"), Event::Other);
    assert_eq!(
        classify("event=session_expired id=1 reason=idle"),
        Event::Other
    );
    assert_eq!(classify("something else entirely"), Event::Other);
    assert_eq!(classify("event=session_summaryX v=1"), Event::Other);
}

#[test]
fn dry_run_expiry() {
    let line = "event=session_expired id=3 user=bob uid=1 service=sshd tty=pts/1 rhost=h pid=9 \
                rule=r reason=idle deadline=5 idle_for=10m duration=1h dry_run=1";
    match classify(line) {
        Event::DryRunExpiry(w) => {
            assert_eq!((w.id, w.user.as_str(), w.rule.as_str()), (3, "bob", "r"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(classify(&line.replace("id=3 ", "")), Event::Malformed);
}

#[test]
fn policy_ends() {
    assert!(End::Idle.by_policy() && End::Max.by_policy() && End::Quota.by_policy());
    assert!(!End::Logout.by_policy() && !End::Killed.by_policy() && !End::Revoked.by_policy());
    for (i, e) in End::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
        assert_eq!(End::parse(e.as_str()), Some(*e));
    }
}
