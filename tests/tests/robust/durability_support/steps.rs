//! Named steps of the longer tests in `durability.rs` (d1, d4), so each
//! test reads as its story; each step asserts what its name says.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::{Env, Ready, SshSession};

use super::{event_of, logout, secs, wait_sessions, OwnDaemon, EVENT, LOGIN, ON_TIME};

/// d1: `kill -9` the first daemon and start a second on the same config;
/// every session of `ids` is restored, and `state_restored` counts at least
/// ours (a daemon also adopts, persists and restores the logins of
/// concurrent tests, under its defaults, which limit nothing).
pub fn kill9_and_restart(
    env: &Env,
    config: &Path,
    first: &mut OwnDaemon,
    first_login: &SshSession,
    ids: &[String],
) -> OwnDaemon {
    first.kill9();
    let killed_at = Instant::now();
    let second = OwnDaemon::start(env, config);
    eprintln!(
        "d1: killed {} after the first login; restarted in {}",
        secs(killed_at - first_login.spawned_at),
        secs(second.started_at - killed_at)
    );
    for id in ids {
        env.expect_event("session_restored", &[("id", id)], EVENT, None);
    }
    let restored = event_of(env, &second, "state_restored");
    assert!(
        restored.get("restored").and_then(|n| n.parse::<u32>().ok()) >= Some(2),
        "{}",
        restored.raw
    );
    second
}

/// d1: each session is warned and closed on its original deadline
/// (registered between spawn and ready: the deadline lies between those
/// + `max`), within 2 s.
pub fn warned_and_closed_on_time(
    env: &Env,
    second: &OwnDaemon,
    ssh: &[SshSession],
    ready: &[Ready],
    after_restart: &[usize],
    (max, warn): (Duration, Duration),
) {
    let give_up = Duration::from_secs(60);
    for (i, s) in ssh.iter().enumerate() {
        let warning = env.expect_output(s, "will be closed in", after_restart[i], give_up);
        let exit = env.expect_exit(s, give_up);
        let (from_spawn, from_ready) = (exit.at - s.spawned_at, exit.at - ready[i].seen);
        eprintln!(
            "d1: session {i} warned {} and closed {} after ssh started ({} after ready)",
            secs(warning.at - s.spawned_at),
            secs(from_spawn),
            secs(from_ready)
        );
        // Registered between spawn and ready: the deadline lies between those + 40 s.
        assert!(
            from_spawn >= max && from_ready <= max + ON_TIME,
            "session {i} closed {} after spawn, {} after ready; deadline 40 s (+2 s)\n{}",
            secs(from_spawn),
            secs(from_ready),
            second.report(env)
        );
        assert!(
            warning.at - s.spawned_at >= max - warn
                && warning.at - ready[i].seen <= max - warn + ON_TIME,
            "session {i} warned {} after spawn; its warning was due 30 s after login\n{}",
            secs(warning.at - s.spawned_at),
            second.report(env)
        );
    }
}

/// d1: both sessions expired at their absolute limit and were restored,
/// never adopted or lost while the daemon was down.
pub fn expired_at_max_and_never_adopted_or_lost(
    env: &Env,
    second: &OwnDaemon,
    ids: &[String],
    user: &str,
) {
    for id in ids {
        let exp = env.expect_event("session_expired", &[("id", id)], EVENT, None);
        assert_eq!(exp.get("reason"), Some("max"), "{}", exp.raw);
        env.expect_event("session_terminated", &[("id", id)], EVENT, None);
    }
    assert!(
        env.syslog
            .find("session_adopted", &[("user", user)])
            .is_none()
            && env
                .syslog
                .find("session_close", &[("reason", "lost_while_down")])
                .is_none(),
        "a live session was adopted or lost instead of restored\n{}",
        second.report(env)
    );
}

/// d4: with the state dir writable again, the next change is persisted (the
/// daemon retries): a second login reaches the journal, then logs out.
pub fn writable_again_persists(env: &Env, d: &OwnDaemon, state: &Path) {
    let again = env.ssh();
    env.expect_ready(&again, LOGIN);
    let open2 = wait_sessions(&env.syslog, "session_open", env.user.name(), 2, EVENT);
    let id2 = open2
        .last()
        .and_then(|l| l.get("id"))
        .expect("second session")
        .to_string();
    let journal = state.join("sessions.journal");
    // A whole upsert of the current record format (`s2`, core/record.rs:
    // identity, cgroup, evidence, then the end mark `e`), not a torn one.
    let head = format!("U\ts2\t{id2}\t");
    let persisted = e2e::util::poll_until(EVENT, Duration::from_millis(50), || {
        fs::read_to_string(&journal)
            .ok()?
            .lines()
            .any(|l| l.starts_with(&head) && l.ends_with("\te"))
            .then_some(())
    });
    assert!(
        persisted.is_some(),
        "session {id2} is not in {} once the dir is writable again\n{}",
        journal.display(),
        d.report(env)
    );
    logout(env, &again);
    env.expect_event("session_close", &[("id", &id2)], EVENT, None);
}
