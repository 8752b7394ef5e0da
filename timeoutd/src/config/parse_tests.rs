//! Tests of config loading: every error located by line and column.

use super::*;
use std::time::Duration;

fn check(text: &str) -> Result<Config, ConfigErrors> {
    parse(Path::new("/etc/t.toml"), text)
}

fn only_error(text: &str) -> ConfigError {
    let errs = check(text).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    errs.into_iter().next().unwrap()
}

#[test]
fn the_issue_schema_loads() {
    let c = check(
        r#"
[daemon]
socket = "/run/st/t.sock"
syslog = "/dev/log"
state_dir = "/var/lib/session-timeout"
[defaults]
idle = "15m"
max  = "12h"
warn = ["1m", "5m"]
grace = "10s"
"#,
    )
    .unwrap();
    assert_eq!(c.daemon.socket, PathBuf::from("/run/st/t.sock"));
    let d = &c.policy.defaults;
    assert_eq!(d.idle, Some(Duration::from_secs(900)));
    assert_eq!(d.max, Some(Duration::from_secs(12 * 3600)));
    assert_eq!(d.warn, [Duration::from_secs(300), Duration::from_secs(60)]);
    assert_eq!(d.grace, Duration::from_secs(10));
}

#[test]
fn off_disables_a_limit_and_empty_file_gets_builtins() {
    let c = check("[defaults]\nidle = \"off\"\n").unwrap();
    assert_eq!(c.policy.defaults.idle, None);
    let c = check("").unwrap();
    assert_eq!(*c.policy.defaults, Limits::builtin());
    assert_eq!(c.daemon, DaemonConfig::default());
}

#[test]
fn unknown_key_is_located() {
    let e = only_error("[defaults]\nidle = \"15m\"\nidel = \"5m\"\n");
    assert_eq!((e.line, e.column), (3, 1));
    assert!(e.message.contains("unknown field `idel`"), "{}", e.message);
    assert!(e.to_string().starts_with("/etc/t.toml:3:1: "));
}

#[test]
fn wrong_type_is_located() {
    let e = only_error("[defaults]\nidle = 15\n");
    assert_eq!((e.line, e.column), (2, 8));
    assert!(e.message.contains("string"), "{}", e.message);
}

#[test]
fn bad_duration_is_located() {
    let e = only_error("[defaults]\nmax = \"12\"\n");
    assert_eq!((e.line, e.column), (2, 7));
    assert!(e.message.contains("bare number"), "{}", e.message);
}

#[test]
fn warning_not_shorter_than_limit_is_an_error() {
    let e = only_error("[defaults]\nidle = \"1m\"\nmax = \"off\"\nwarn = [\"30s\", \"1m\"]\n");
    assert_eq!((e.line, e.column), (4, 16));
    assert!(
        e.message.contains("not shorter than its idle limit 1m"),
        "{}",
        e.message
    );
}

#[test]
fn inherited_warnings_that_do_not_fit_are_dropped() {
    let c = check("[defaults]\nidle = \"2m\"\n").unwrap();
    assert_eq!(c.policy.defaults.warn, [Duration::from_secs(60)]);
}

#[test]
fn unknown_placeholder_is_located() {
    let e = only_error("[defaults]\nmessage = \"bye {usr}\"\n");
    assert_eq!((e.line, e.column), (2, 16));
    assert!(e.message.contains("{usr}"));
}

#[test]
fn relative_paths_and_syntax_errors_are_errors() {
    let e = only_error("[daemon]\nsocket = \"run/x\"\n");
    assert_eq!(e.line, 2);
    let e = only_error("[defaults\nidle = 1\n");
    assert_eq!(e.line, 1);
}

#[test]
fn several_errors_are_all_reported() {
    let errs = check("[defaults]\nidle = \"x\"\nmax = \"y\"\n").unwrap_err();
    assert_eq!(errs.0.len(), 2);
    assert_eq!(errs.to_string().lines().count(), 2);
}

#[test]
fn missing_file_is_a_clear_error() {
    let e = load(Path::new("/nonexistent/st.toml")).unwrap_err();
    assert!(e.to_string().contains("cannot read the config file"));
}

const CIS_STIG: &str = r#"
[defaults]
idle = "15m"
max = "12h"
warn = ["5m", "1m"]
grace = "10s"
count_output = false
message = "Session for {user} on {tty} will be closed in {remaining} ({reason})."

[[rule]]
name = "privileged"
groups = ["sudo", "wheel"]
services = ["sshd"]
idle = "10m"
max = "4h"

[[rule]]
name = "automation"
users = ["backup", "deploy-*"]
idle = "off"

[[rule]]
name = "untrusted-networks"
rhosts = ["!10.0.0.0/8", "*"]
max = "1h"

[[rule]]
name = "console"
tty = "console"
idle = "5m"
"#;

#[test]
fn the_documented_example_loads_with_inheritance() {
    let c = check(CIS_STIG).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let names: Vec<&str> = c.policy.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["privileged", "automation", "untrusted-networks", "console"]
    );
    let p = &c.policy.rules[0].limits;
    assert_eq!(
        (p.idle, p.max),
        (
            Some(Duration::from_secs(600)),
            Some(Duration::from_secs(14_400))
        )
    );
    assert_eq!(
        p.grace,
        Duration::from_secs(10),
        "inherited from [defaults]"
    );
    assert_eq!(c.policy.rules[1].limits.idle, None);
    assert_eq!(
        c.policy.rules[1].limits.max,
        Some(Duration::from_secs(43_200))
    );
    assert_eq!(
        c.policy.rules[3].criteria.tty,
        Some(crate::core::policy::TtyClass::Console)
    );
}

#[test]
fn duplicate_rule_names_are_located() {
    let e = only_error(
        "[[rule]]\nname = \"a\"\nusers = [\"x\"]\n[[rule]]\nname = \"a\"\nusers = [\"y\"]\n",
    );
    assert_eq!((e.line, e.column), (5, 8));
    assert!(e.message.contains("duplicate rule name"), "{}", e.message);
}

#[test]
fn malformed_cidr_is_located() {
    let e = only_error("[[rule]]\nname = \"n\"\nrhosts = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n");
    assert_eq!((e.line, e.column), (3, 25));
    assert!(e.message.contains("malformed CIDR"), "{}", e.message);
}

#[test]
fn rule_warning_must_be_shorter_than_the_rules_own_limit() {
    let e = only_error("[defaults]\nwarn = [\"5m\"]\n[[rule]]\nname = \"short\"\nidle = \"10m\"\nwarn = [\"10m\"]\n");
    assert_eq!((e.line, e.column), (6, 9));
    assert!(e.message.contains("rule \"short\""), "{}", e.message);
}

#[test]
fn criteria_in_defaults_and_rules_without_names_are_errors() {
    let e = only_error("[defaults]\nusers = [\"x\"]\n");
    assert_eq!((e.line, e.column), (2, 9));
    let e = only_error("[[rule]]\nusers = [\"x\"]\n");
    assert!(e.message.contains("needs a name"), "{}", e.message);
}

#[test]
fn bad_enums_are_errors() {
    let e = only_error("[[rule]]\nname = \"a\"\ntty = \"serial\"\n");
    assert_eq!((e.line, e.column), (3, 7));
    let e = only_error("[defaults]\nnotty = \"sometimes\"\n");
    assert!(e.message.contains("\"io\", \"max-only\""), "{}", e.message);
    let e = only_error("[defaults]\nkill_scope = \"all\"\n");
    assert!(e.message.contains("kill_scope"), "{}", e.message);
    let e = only_error("[defaults]\ncount_output = \"yes\"\n");
    assert_eq!(e.line, 2);
}

#[test]
fn a_shadowed_rule_is_a_warning_not_an_error() {
    let c = check("[[rule]]\nname = \"all\"\nservices = [\"*\"]\n\n[[rule]]\nname = \"late\"\nusers = [\"bob\"]\n").unwrap();
    assert_eq!(c.policy.rules.len(), 2);
    assert_eq!(c.warnings.len(), 1);
    let w = &c.warnings[0];
    assert_eq!(w.line, 5);
    assert!(
        w.message.contains("\"late\" can never match") && w.message.contains("\"all\""),
        "{}",
        w.message
    );
}

#[test]
fn empty_criteria_lists_are_errors() {
    let e = only_error("[[rule]]\nname = \"a\"\nusers = []\n");
    assert!(e.message.contains("never match"), "{}", e.message);
}

#[test]
fn enforce_and_dry_run_warn_are_inherited_and_checked() {
    let c = check(
        "[defaults]\nenforce = \"dry-run\"\ndry_run_warn = true\n\n\
         [[rule]]\nname = \"a\"\nusers = [\"a\"]\nenforce = \"on\"\n\n\
         [[rule]]\nname = \"b\"\nusers = [\"b\"]\n",
    )
    .unwrap();
    assert!(c.policy.defaults.dry_run() && c.policy.defaults.dry_run_warn);
    assert!(!c.policy.rules[0].limits.dry_run());
    assert!(c.policy.rules[0].limits.dry_run_warn, "inherited");
    assert!(c.policy.rules[1].limits.dry_run(), "inherited");
    let d = check("").unwrap().policy.defaults;
    assert!(!d.dry_run() && !d.dry_run_warn, "on and quiet by default");
    let e = only_error("[[rule]]\nname = \"a\"\nenforce = \"maybe\"\n");
    assert_eq!((e.line, e.column), (3, 11));
    assert!(
        e.message
            .contains("enforce must be one of \"on\", \"dry-run\""),
        "{}",
        e.message
    );
    let e = only_error("[defaults]\ndry_run_warn = \"yes\"\n");
    assert_eq!(e.line, 2);
}

#[test]
fn revalidate_is_off_by_default_and_parsed_when_set() {
    use crate::config::revalidate::Unavailable;
    let c = check("").unwrap();
    assert_eq!(c.daemon.revalidate.interval, None);
    assert_eq!(c.daemon.revalidate.service, "session-timeout");
    assert_eq!(c.daemon.revalidate.timeout, Duration::from_secs(10));
    assert_eq!(c.daemon.revalidate.unavailable, Unavailable::Keep);
    let c = check(
        "[daemon]\nrevalidate = \"5m\"\nrevalidate_service = \"st-check\"\nrevalidate_timeout = \"3s\"\nrevalidate_unavailable = \"end\"\n",
    )
    .unwrap();
    let r = &c.daemon.revalidate;
    assert_eq!(r.interval, Some(Duration::from_secs(300)));
    assert_eq!(r.service, "st-check");
    assert_eq!(r.timeout, Duration::from_secs(3));
    assert_eq!(r.unavailable, Unavailable::End);
    assert!(crate::config::explain::describe(&c).contains(
        "revalidate every 5m through PAM service \"st-check\", timeout 3s, unavailable=end"
    ));
    let c = check("[daemon]\nrevalidate = \"off\"\n").unwrap();
    assert_eq!(c.daemon.revalidate.interval, None);
}

#[test]
fn bad_revalidate_keys_are_located() {
    for (text, col, what) in [
        ("[daemon]\nrevalidate = \"5\"\n", 14, "bare number"),
        ("[daemon]\nrevalidate = \"0s\"\n", 14, "zero limit"),
        (
            "[daemon]\nrevalidate_service = \"../sshd\"\n",
            22,
            "PAM service name",
        ),
        (
            "[daemon]\nrevalidate_service = \"\"\n",
            22,
            "PAM service name",
        ),
        (
            "[daemon]\nrevalidate_timeout = \"2m\"\n",
            22,
            "between 1s and 1m",
        ),
        (
            "[daemon]\nrevalidate_timeout = \"0s\"\n",
            22,
            "between 1s and 1m",
        ),
        (
            "[daemon]\nrevalidate_unavailable = \"drop\"\n",
            26,
            "\"keep\" or \"end\"",
        ),
    ] {
        let e = only_error(text);
        assert_eq!((e.line, e.column), (2, col), "{text}: {e}");
        assert!(e.message.contains(what), "{text}: {e}");
    }
}

#[test]
fn auth_and_certificate_criteria_and_cert_expiry_load() {
    let c = check(
        "[defaults]\nend_at_cert_expiry = false\n\
         [[rule]]\nname = \"mfa\"\nauth = [\"publickey\", \"keyboard-interactive*\"]\ncertificate = false\n\
         [[rule]]\nname = \"jit\"\ncertificate = true\nend_at_cert_expiry = true\n",
    )
    .unwrap();
    assert!(!c.policy.defaults.end_at_cert_expiry);
    let mfa = &c.policy.rules[0];
    assert_eq!(
        mfa.criteria.auth.as_deref(),
        Some(&["publickey".to_owned(), "keyboard-interactive*".to_owned()][..])
    );
    assert_eq!(mfa.criteria.certificate, Some(false));
    assert!(!mfa.limits.end_at_cert_expiry, "inherited from [defaults]");
    assert!(c.policy.rules[1].limits.end_at_cert_expiry);
    assert!(check("").unwrap().policy.defaults.end_at_cert_expiry);
}

#[test]
fn bad_auth_criteria_are_located() {
    let e = only_error("[[rule]]\nname = \"a\"\nauth = []\n");
    assert_eq!((e.line, e.column), (3, 8));
    assert!(e.message.contains("never match"), "{}", e.message);
    let e = only_error("[[rule]]\nname = \"a\"\nauth = [\"publickey\", \"pass word\"]\n");
    assert_eq!((e.line, e.column), (3, 22));
    assert!(e.message.contains("auth method"), "{}", e.message);
    let e = only_error("[[rule]]\nname = \"a\"\ncertificate = \"yes\"\n");
    assert_eq!((e.line, e.column), (3, 15));
    let e = only_error("[defaults]\nauth = [\"publickey\"]\n");
    assert_eq!((e.line, e.column), (2, 8));
    assert!(e.message.contains("rule criterion"), "{}", e.message);
    let e = only_error("[defaults]\nend_at_cert_expiry = 1\n");
    assert_eq!(e.line, 2);
}

#[test]
fn windows_quotas_and_the_zone_load_and_bad_ones_are_located() {
    let c = check(
        "[daemon]\ntimezone = \"Europe/Berlin\"\nday_starts = \"04:00\"\n[[rule]]\nname = \"kiosk\"\nusers = [\"k\"]\nhours = [\"Mon-Fri 07:00-19:00\", \"Fri 22:00-02:00\"]\ndaily = \"2h\"\n",
    )
    .unwrap();
    assert_eq!(c.daemon.timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(c.daemon.day_starts, (4, 0));
    let l = &c.policy.rules[0].limits;
    assert_eq!(l.daily, Some(Duration::from_secs(7200)));
    assert_eq!(l.hours.as_ref().map(|h| h.0.len()), Some(2));
    let e =
        only_error("[[rule]]\nname = \"a\"\nhours = [\"Mon 07:00-19:00\", \"Tue 07:00-25:00\"]\n");
    assert_eq!((e.line, e.column), (3, 29), "{e}");
    assert!(e.message.contains("\"25:00\" is not a time"), "{e}");
    let e = only_error("[defaults]\nhours = []\n");
    assert!(e.message.contains("refuse every login"), "{e}");
    let e = only_error("[daemon]\ntimezone = \"Mars/Olympus\"\n");
    assert_eq!((e.line, e.column), (2, 12), "{e}");
    let e = only_error("[daemon]\nday_starts = \"4am\"\n");
    assert!(e.message.contains("day_starts"), "{e}");
}
