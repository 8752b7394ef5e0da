//! Helpers for `ctl.rs` only: the tests' calm policy, reading `timeoutctl`'s
//! JSON, clocks, and the named steps of the longer tests (`status` for k5,
//! `listing` for k7).

pub mod listing;
pub mod status;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;

use crate::support::{toml_list, World, HANDS_OFF};

/// Limits far from the tests' few seconds, for this test's users only (see
/// HANDS_OFF): only timeoutctl ends sessions here.
pub fn calm(n: &[String]) -> String {
    format!(
        "{HANDS_OFF}[[rule]]\nname = \"tests\"\nusers = {}\nidle = \"10m\"\nmax = \"1h\"\nwarn = [\"1m\"]\n",
        toml_list(n)
    )
}

pub fn parse_json(text: &str, w: &World) -> Json {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {text:?}\n{}", w.report(&[])))
}

/// A string field of a JSON object.
pub fn str_of<'a>(v: &'a Json, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str()
}

/// A number field of a JSON object.
pub fn num_of(v: &Json, key: &str) -> Option<f64> {
    v.get(key)?.as_f64()
}

/// No line for session `id` with one of `events` has arrived. Callers check
/// after something that the daemon does after such a line would be sent.
pub fn assert_untouched(w: &World, id: &str, events: &[&str]) {
    let hit = w
        .env
        .syslog
        .lines()
        .into_iter()
        .find(|l| l.get("id") == Some(id) && l.event().is_some_and(|e| events.contains(&e)));
    assert!(
        hit.is_none(),
        "session {id} was acted on: {hit:?}\n{}",
        w.report(&[])
    );
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Text between two markers that only the shell's evaluation prints.
pub fn between(out: &str, start: &str, end: &str) -> Option<String> {
    let a = out.find(start)? + start.len();
    let b = a + out[a..].find(end)?;
    Some(out[a..b].trim().to_string())
}

/// "HH:MM:SS" as seconds of the day.
pub fn clock_secs(s: &str) -> Option<i64> {
    let f: Vec<i64> = s
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    (f.len() == 3).then(|| f[0] * 3600 + f[1] * 60 + f[2])
}
