//! The steps of k7: `list --json`, the table and `show` agree with the
//! logins the daemon logged.

use std::collections::BTreeSet;

use e2e::LogLine;
use serde_json::Value as Json;

use super::{now_secs, num_of, parse_json, str_of};
use crate::support::{Login, World};

/// `list --json`, as text and as the rows of this test's users.
pub struct Listed {
    pub text: String,
    pub rows: Vec<Json>,
}

/// Lists the sessions as JSON and keeps this test's users' rows (the daemon
/// also lists the other logins on the host that it adopted at its start).
pub fn list_json_of_our_users(w: &World) -> Listed {
    let text = w.ctl_ok(&["list", "--json"]);
    let list = parse_json(&text, w);
    let ours = [w.name(0), w.name(1)];
    let rows: Vec<Json> = list
        .as_array()
        .expect("an array")
        .iter()
        .filter(|r| str_of(r, "user").is_some_and(|u| ours.contains(&u)))
        .cloned()
        .collect();
    Listed { text, rows }
}

/// Exactly the logged-in sessions are listed: the same ids and users.
pub fn lists_exactly_the_logins(listed: &Listed, logins: &[Login]) {
    let listed_ids: BTreeSet<(String, String)> = listed
        .rows
        .iter()
        .map(|r| {
            (
                num_of(r, "id").map(|n| n.to_string()).unwrap_or_default(),
                str_of(r, "user").unwrap_or_default().to_string(),
            )
        })
        .collect();
    let logged: BTreeSet<(String, String)> = logins
        .iter()
        .map(|l| {
            (
                l.id.clone(),
                l.open.get("user").unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(listed_ids, logged, "{}", listed.text);
}

/// Each login's row has the uid, service, host, rule, state, tty and leader
/// the daemon logged, and a plausible start and absolute deadline.
pub fn rows_match_the_logins(w: &World, listed: &Listed, logins: &[Login], ttys: &[LogLine]) {
    let text = &listed.text;
    let started_after = now_secs() - 120;
    for (l, tty) in logins.iter().zip(ttys) {
        let r = listed
            .rows
            .iter()
            .find(|r| num_of(r, "id").map(|n| n.to_string()) == Some(l.id.clone()))
            .expect("listed");
        let i = if l.open.get("user") == Some(w.name(0)) {
            0
        } else {
            1
        };
        assert_eq!(num_of(r, "uid"), Some(f64::from(w.user(i).uid())), "{text}");
        assert_eq!(str_of(r, "service"), Some(w.service.as_str()), "{text}");
        assert_eq!(str_of(r, "rhost"), Some("127.0.0.1"), "{text}");
        assert_eq!(str_of(r, "rule"), Some("tests"), "{text}");
        assert_eq!(str_of(r, "state"), Some("active"), "{text}");
        assert_eq!(str_of(r, "tty"), tty.get("found"), "{text}\n{}", tty.raw);
        assert_eq!(
            num_of(r, "leader_pid").map(|p| p.to_string()),
            l.open.get("pid").map(str::to_string),
            "{text}\n{}",
            l.open.raw
        );
        let started = num_of(r, "started").unwrap_or(0.0) as i64;
        assert!(started >= started_after && started <= now_secs(), "{text}");
        let max = num_of(r, "max_deadline").unwrap_or(0.0) as i64;
        assert_eq!(max - started, 3600, "{text}");
    }
}

/// The plain table has a row (id, user) per login.
pub fn table_has_a_row_per_login(w: &World, logins: &[Login]) {
    let table = w.ctl_ok(&["list"]);
    for l in logins {
        let user = l.open.get("user").unwrap_or_default();
        assert!(
            table.lines().any(|row| {
                let cells: Vec<&str> = row.split_whitespace().collect();
                cells.first() == Some(&l.id.as_str()) && cells.get(1) == Some(&user)
            }),
            "no row for {} {user}:\n{table}",
            l.id
        );
    }
}

/// `show` adds the processes of the login.
pub fn show_lists_the_processes(w: &World, login: &Login) {
    let show = parse_json(&w.ctl_ok(&["show", &login.id, "--json"]), w);
    let pids = show.get("pids").and_then(Json::as_array).map(Vec::len);
    assert!(pids.is_some_and(|n| n > 0), "{show:?}");
}
