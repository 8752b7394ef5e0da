//! The command line: every verb parses to its request, help and version are
//! exit-0 results, and mistakes are exit-2 errors.

use super::*;
use clap::error::ErrorKind;

fn words(s: &str) -> Vec<String> {
    std::iter::once("timeoutctl")
        .chain(s.split_whitespace())
        .map(str::to_owned)
        .collect()
}

fn ok(s: &str) -> Cli {
    parse(words(s)).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn request(s: &str) -> Request {
    ok(s).verb.and_then(|v| v.request()).expect("a request")
}

fn json(s: &str) -> bool {
    ok(s).verb.is_some_and(|v| v.json())
}

fn err(s: &str) -> clap::Error {
    match parse(words(s)) {
        Ok(c) => panic!("{s:?} parsed: {c:?}"),
        Err(e) => e,
    }
}

/// A mistake: exit 2, and the rendered message contains `text`.
fn mistake(s: &str, text: &str) {
    let e = err(s);
    let shown = e.render().to_string();
    assert_eq!(e.exit_code(), 2, "{s:?}: {shown}");
    assert!(e.use_stderr(), "{s:?}");
    assert!(shown.contains(text), "{s:?}: {shown}");
}

fn user(n: &str) -> Target {
    Target::User(n.into())
}

#[test]
fn every_verb_parses_to_its_request() {
    assert_eq!(request("list"), Request::List);
    assert_eq!(request("show 7"), Request::Show { id: 7 });
    assert_eq!(
        request("kill 7"),
        Request::Kill {
            id: 7,
            reason: String::new()
        }
    );
    assert_eq!(
        request("kill 7 --reason x"),
        Request::Kill {
            id: 7,
            reason: "x".into()
        }
    );
    assert_eq!(
        request("revoke --user bob --ttl 1h --reason incident"),
        Request::Revoke {
            target: user("bob"),
            ttl_secs: 3600,
            reason: "incident".into()
        }
    );
    assert_eq!(
        request("revoke --group ops"),
        Request::Revoke {
            target: Target::Group("ops".into()),
            ttl_secs: 0,
            reason: String::new()
        }
    );
    assert_eq!(
        request("unrevoke --group ops"),
        Request::Unrevoke {
            target: Target::Group("ops".into())
        }
    );
    assert_eq!(
        request("unrevoke --user bob"),
        Request::Unrevoke {
            target: user("bob")
        }
    );
    assert_eq!(request("revocations"), Request::Revocations);
    assert_eq!(request("reload"), Request::Reload);
    assert_eq!(request("status"), Request::Status);
    assert_eq!(
        request("revalidate"),
        Request::Revalidate {
            user: String::new()
        }
    );
    assert_eq!(
        request("revalidate --user bob"),
        Request::Revalidate { user: "bob".into() }
    );
}

#[test]
fn json_flag_and_global_options() {
    for verb in ["list", "show 3", "revocations", "status"] {
        assert!(!json(verb), "{verb}");
        assert!(json(&format!("{verb} --json")), "{verb}");
    }
    let c = ok("--socket /tmp/s list --json");
    assert_eq!(c.socket, Some(PathBuf::from("/tmp/s")));
    assert_eq!(c.config, PathBuf::from(config::DEFAULT_PATH));
    // Global options also after the verb, and in the --opt=value form.
    let c = ok("status --config=/etc/x.toml --socket=/run/y.sock");
    assert_eq!(
        (c.socket, c.config),
        (
            Some(PathBuf::from("/run/y.sock")),
            PathBuf::from("/etc/x.toml")
        )
    );
    assert!(ok("").verb.is_none());
}

#[test]
fn a_value_that_looks_like_an_option_needs_the_equals_form() {
    mistake("kill 7 --reason --json", "--reason");
    assert_eq!(
        request("kill 7 --reason=--json"),
        Request::Kill {
            id: 7,
            reason: "--json".into()
        }
    );
    mistake("revoke --user --group ops", "--user");
}

#[test]
fn double_dash_ends_the_options() {
    assert_eq!(
        request("kill -- 7"),
        Request::Kill {
            id: 7,
            reason: String::new()
        }
    );
    assert_eq!(request("show --json -- 7"), Request::Show { id: 7 });
    mistake("list -- --json", "--json");
    mistake("kill 7 -- --reason x", "unexpected argument");
}

#[test]
fn help_and_version_are_exit_0() {
    for s in [
        "--help",
        "-h",
        "help",
        "help kill",
        "list --help",
        "show --help",
        "kill --help",
        "revoke --help",
        "unrevoke --help",
        "revocations --help",
        "reload --help",
        "status -h",
        "completions --help",
    ] {
        let e = err(s);
        assert_eq!(
            (e.kind(), e.exit_code(), e.use_stderr()),
            (ErrorKind::DisplayHelp, 0, false),
            "{s:?}"
        );
    }
    let kill = err("kill --help").render().to_string();
    assert!(kill.contains("--reason <TEXT>"), "{kill}");
    let e = err("--version");
    assert_eq!((e.kind(), e.exit_code()), (ErrorKind::DisplayVersion, 0));
    let shown = e.render().to_string();
    assert_eq!(shown, format!("timeoutctl {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn mistakes_are_exit_2_with_a_reason() {
    mistake("frobnicate", "unrecognized subcommand 'frobnicate'");
    mistake("revoke --user a --group b", "cannot be used with");
    mistake("revoke", "--user");
    mistake("revoke --user a --ttl 15", "bare number");
    mistake("kill x", "invalid value 'x'");
    mistake("kill", "<ID>");
    mistake("kill 7 --reason", "--reason");
    mistake("list extra", "unexpected argument 'extra'");
    mistake("reload --json", "--json");
    mistake("--socket", "--socket");
    mistake("completions fish", "fish");
}

#[test]
fn top_level_help_lists_every_verb() {
    let h = help();
    for verb in [
        "list",
        "show",
        "kill",
        "revoke",
        "unrevoke",
        "revocations",
        "reload",
        "status",
        "revalidate",
        "completions",
    ] {
        assert!(
            h.lines().any(|l| l.trim_start().starts_with(verb)),
            "{verb}: {h}"
        );
    }
    assert!(h.contains("admin_group"), "{h}");
}

#[test]
fn completions_name_the_verbs_and_options() {
    for shell in [Shell::Bash, Shell::Zsh] {
        let script = String::from_utf8(completions(shell)).expect("UTF-8");
        for word in ["timeoutctl", "revocations", "--reason", "--socket"] {
            assert!(script.contains(word), "{shell:?} lacks {word}");
        }
    }
    let zsh = String::from_utf8(completions(Shell::Zsh)).expect("UTF-8");
    assert!(zsh.starts_with("#compdef timeoutctl"), "{zsh}");
    assert_eq!(ok("completions bash").verb.map(|v| v.request()), Some(None));
}
