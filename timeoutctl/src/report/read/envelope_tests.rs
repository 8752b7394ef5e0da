//! Unit tests of the envelope parsers: one per format, and hostile lines.

use super::*;

const MSG: &str = "event=session_open id=1 user=alice";
const T: i64 = 1_796_167_830; // 2026-12-01T23:30:30Z

fn cx() -> Context {
    Context {
        now: T + 86_400 * 30,
        zone: LocalZone::default(),
    }
}

fn check(line: &str, time: Option<i64>, host: &str, program: &str, message: &str) {
    let e = open(line, &mut cx()).unwrap_or_else(|| panic!("not recognised: {line}"));
    assert_eq!(e.time, time, "{line}");
    assert_eq!(e.host, host);
    assert_eq!(e.program, program);
    assert_eq!(e.message, message);
}

#[test]
fn rsyslog_traditional() {
    let line = format!("Dec  1 23:30:30 web1 timeoutd[123]: {MSG}");
    let e = open(&line, &mut cx()).unwrap();
    assert!(e.time.is_some_and(|t| (t - T).abs() <= 14 * 3600));
    assert_eq!((e.host.as_ref(), e.program.as_ref()), ("web1", "timeoutd"));
    assert_eq!(e.message, MSG);
    let forwarded = format!("<86>{line}");
    assert_eq!(open(&forwarded, &mut cx()).unwrap().message, MSG);
    let no_pid = format!("Dec 11 23:30:30 web1 timeoutd: {MSG}");
    assert_eq!(open(&no_pid, &mut cx()).unwrap().program, "timeoutd");
}

#[test]
fn high_precision_and_short_iso() {
    let hp = format!("2026-12-01T23:30:30.123456+00:00 web1 timeoutd[123]: {MSG}");
    check(&hp, Some(T), "web1", "timeoutd", MSG);
    let iso = format!("2026-12-02T00:30:30+0100 web2 timeoutd[9]: {MSG}");
    check(&iso, Some(T), "web2", "timeoutd", MSG);
}

#[test]
fn journal_json_string_and_bytes() {
    let s = format!(
        r#"{{"__REALTIME_TIMESTAMP":"{}123456","_HOSTNAME":"web3","SYSLOG_IDENTIFIER":"timeoutd","MESSAGE":"{MSG}","PRIORITY":"6"}}"#,
        T
    );
    check(&s, Some(T), "web3", "timeoutd", MSG);
    let bytes: Vec<String> = "event=x a=\u{1b}".bytes().map(|b| b.to_string()).collect();
    let b = format!(
        r#"{{"MESSAGE":[{}],"SYSLOG_IDENTIFIER":"timeoutd"}}"#,
        bytes.join(",")
    );
    check(&b, None, "-", "timeoutd", "event=x a=\u{1b}");
    assert_eq!(open(r#"{"MESSAGE":[300]}"#, &mut cx()), None);
    assert_eq!(open(r#"{"MESSAGE":"#, &mut cx()), None);
}

#[test]
fn rfc5424_with_and_without_structured_data() {
    let plain = format!("<86>1 2026-12-01T23:30:30.123Z web4 timeoutd 123 - - {MSG}");
    check(&plain, Some(T), "web4", "timeoutd", MSG);
    let sd = format!(
        "<86>1 2026-12-01T23:30:30Z web4 timeoutd 123 ID47 [ex@32473 a=\"x\\\"] y\"][b c=\"d\"] \u{feff}{MSG}"
    );
    check(&sd, Some(T), "web4", "timeoutd", MSG);
    let nil_time = format!("<86>1 - web4 timeoutd - - - {MSG}");
    check(&nil_time, None, "web4", "timeoutd", MSG);
    assert_eq!(
        open(
            "<86>1 2026-12-01T23:30:30Z web4 timeoutd 1 - [open",
            &mut cx()
        ),
        None
    );
    assert_eq!(open("<8x>1 - h a - - - m", &mut cx()), None);
}

#[test]
fn bare_event_lines() {
    check(MSG, None, "-", "timeoutd", MSG);
}

#[test]
fn hostile_lines_are_not_recognised_or_kept_apart() {
    let mut c = cx();
    for line in [
        "",
        "\u{1b}[2J\u{0}\u{7f}",
        "Dec",
        "2026-12-01T23:30:30Z",
        "2026-12-01T23:30:30Z host-only",
        "<>",
        "<999999>1",
        "{}",
        "{\"MESSAGE\": 5}",
        "Dec  1 23:30:30",
    ] {
        assert_eq!(open(line, &mut c), None, "{line:?}");
    }
    let long = format!(
        "Dec  1 23:30:30 h timeoutd[1]: event=x v={}",
        "a".repeat(1 << 20)
    );
    assert_eq!(open(&long, &mut c).unwrap().message.len(), long.len() - 31);
}
