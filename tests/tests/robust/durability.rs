//! Durability (issue 6, "Nothing lost across restarts" and the PAM module
//! under faults), end to end: a real sshd with our PAM module, the real
//! daemon, which these tests kill, stop, restart and starve, and the real
//! ssh client with a pty.
//!
//! The daemon is run by `durability_support::OwnDaemon` (the harness's
//! daemon cannot be restarted); its policy limits only the test's own user,
//! because a daemon adopts at start every running login through a PAM stack
//! with our module, those of concurrent tests included. The syslog sink
//! keeps capturing across restarts, so accounting is checked over all runs
//! of a test.
//!
//! Test names start with `d<N>`, the number of the case in the brief; the
//! test runner starts them in name order, so the longest start first.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod durability_support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use durability_support as sup;
use durability_support::{
    assert_accounting, event_of, login_time, logout, refused_login_time, refused_start, secs,
    steps, OwnDaemon, Policy, EVENT, LOGIN, ON_TIME,
};
use e2e::SshSession;

/// Issue: "`kill -9` the daemon while two sessions are live, then restart
/// it. Both are still warned and ended on their original deadlines, within
/// 2 s. The syslog accounting balances." An absolute limit of 40 s makes the
/// deadline unambiguous (registration + 40 s, whatever happens meanwhile).
#[test]
fn d1_kill9_restart_keeps_both_sessions_and_their_deadlines() {
    let max = Duration::from_secs(40);
    let warn = Duration::from_secs(10);
    let p = Policy {
        idle: "off",
        max: "40s",
        warn: &["10s"],
        grace: "2s",
    };
    let (env, config) = sup::world(&p);
    let mut first = OwnDaemon::start(&env, &config);
    let user = env.user.name().to_string();
    let ssh = [env.ssh(), env.ssh()];
    let ready = [
        env.expect_ready(&ssh[0], LOGIN),
        env.expect_ready(&ssh[1], LOGIN),
    ];
    let opened = sup::wait_sessions(&env.syslog, "session_open", &user, 2, EVENT);
    assert_eq!(opened.len(), 2, "two session_open\n{}", first.report(&env));
    let ids: Vec<String> = opened
        .iter()
        .map(|l| l.get("id").unwrap().to_string())
        .collect();

    let second = steps::kill9_and_restart(&env, &config, &mut first, &ssh[0], &ids);
    let after_restart: Vec<usize> = ssh.iter().map(SshSession::output_len).collect();
    steps::warned_and_closed_on_time(&env, &second, &ssh, &ready, &after_restart, (max, warn));
    steps::expired_at_max_and_never_adopted_or_lost(&env, &second, &ids, &user);
    assert_accounting(&env, &second);
}

/// Issue: "Stop the daemon, log in with `fail=open`, then start the daemon.
/// The session is adopted and ended at its limit." The limit counts from
/// the login, not from the adoption.
#[test]
fn d2_login_while_daemon_down_is_adopted_and_ended_at_its_limit() {
    let max = Duration::from_secs(20);
    let p = Policy {
        idle: "off",
        max: "20s",
        warn: &["5s"],
        grace: "2s",
    };
    let (env, config) = sup::world(&p);
    let mut was = OwnDaemon::start(&env, &config);
    was.terminate(); // "stop the daemon"
    let ssh = env.ssh();
    let ready = env.expect_ready(&ssh, LOGIN); // fail=open let it in
                                               // Time passes while the daemon is down (the point of the test): 4 s,
                                               // so that a deadline counted from the adoption would come 4 s too late.
    std::thread::sleep(Duration::from_secs(4));
    let d = OwnDaemon::start(&env, &config);
    let adopted = env.expect_event(
        "session_adopted",
        &[("user", env.user.name())],
        EVENT,
        Some(&ssh),
    );
    let id = adopted.get("id").expect("id=").to_string();
    let summary = event_of(&env, &d, "state_restored");
    assert!(
        summary.get("adopted").and_then(|n| n.parse::<u32>().ok()) >= Some(1),
        "{}",
        summary.raw
    );
    let from = ssh.output_len();
    let warning = env.expect_output(&ssh, "will be closed in", from, Duration::from_secs(40));
    let exit = env.expect_exit(&ssh, Duration::from_secs(40));
    let (from_spawn, from_ready) = (exit.at - ssh.spawned_at, exit.at - ready.seen);
    eprintln!(
        "d2: adopted {} after login; warned at {}, closed {} after ssh started ({} after ready)",
        secs(d.started_at - ssh.spawned_at),
        secs(warning.at - ssh.spawned_at),
        secs(from_spawn),
        secs(from_ready)
    );
    // The adopted login's start comes from /proc (boot time in whole
    // seconds plus clock ticks): up to 1 s early.
    let btime = Duration::from_secs(1);
    assert!(
        from_spawn + btime >= max && from_ready <= max + ON_TIME,
        "closed {} after spawn, {} after ready; limit 20 s from login (+2 s)\n{}",
        secs(from_spawn),
        secs(from_ready),
        d.report(&env)
    );
    let exp = env.expect_event("session_expired", &[("id", &id)], EVENT, None);
    assert_eq!(exp.get("reason"), Some("max"), "{}", exp.raw);
    env.expect_event("session_terminated", &[("id", &id)], EVENT, None);
    assert!(
        env.syslog
            .find("session_open", &[("user", env.user.name())])
            .is_none(),
        "the module registered the login although the daemon was down\n{}",
        d.report(&env)
    );
    assert_accounting(&env, &d);
}

/// Issue: "A session that logs out while the daemon is down is closed as
/// `lost_while_down` after restart."
#[test]
fn d3_logout_while_daemon_down_is_closed_as_lost_while_down() {
    let p = Policy {
        idle: "off",
        max: "5m",
        warn: &[],
        grace: "2s",
    };
    let (env, config) = sup::world(&p);
    let mut first = OwnDaemon::start(&env, &config);
    let ssh = env.ssh();
    env.expect_ready(&ssh, LOGIN);
    let open = env.expect_session_open(EVENT, Some(&ssh));
    let id = open.get("id").unwrap().to_string();
    let leader: u32 = open.get("pid").and_then(|p| p.parse().ok()).expect("pid=");
    let sid = sup::sessionid_of(leader).expect("the leader's audit session id");
    first.terminate();
    env.expect_event("daemon_stop", &[], EVENT, None);

    logout(&env, &ssh);
    assert!(
        sup::wait_session_gone(sid, EVENT),
        "processes of audit session {sid} outlived the logout: {:?}",
        sup::pids_of_sessionid(sid)
    );
    let d = OwnDaemon::start(&env, &config);
    let close = env.expect_event("session_close", &[("id", &id)], EVENT, None);
    assert_eq!(
        close.get("reason"),
        Some("lost_while_down"),
        "{}\n{}",
        close.raw,
        d.report(&env)
    );
    assert!(close.get("duration").is_some(), "{}", close.raw);
    assert!(
        env.syslog
            .find("session_restored", &[("id", &id)])
            .is_none()
            && env
                .syslog
                .find("session_adopted", &[("user", env.user.name())])
                .is_none(),
        "the ended session was restored or adopted\n{}",
        d.report(&env)
    );
    assert_accounting(&env, &d);
}

/// Issue: "With the state dir made read-only, sessions are still enforced,
/// and `state_write_failed` is logged" (at most once a minute); and once
/// the directory is writable again, the daemon persists again.
#[test]
fn d4_read_only_state_dir_still_enforces_and_logs_state_write_failed() {
    let max = Duration::from_secs(12);
    let p = Policy {
        idle: "off",
        max: "12s",
        warn: &["5s"],
        grace: "2s",
    };
    let (env, config) = sup::world(&p);
    let state = env.dir().join("state");
    let ro = sup::ReadOnlyMount::over(&state);
    let d = OwnDaemon::start(&env, &config);
    let ssh = env.ssh();
    let ready = env.expect_ready(&ssh, LOGIN);
    let open = env.expect_session_open(EVENT, Some(&ssh));
    let id = open.get("id").unwrap().to_string();
    let failed = env.expect_event("state_write_failed", &[], EVENT, Some(&ssh));
    assert!(failed.get("error").is_some(), "{}", failed.raw);
    env.expect_output(&ssh, "will be closed in", 0, Duration::from_secs(30));
    let exit = env.expect_exit(&ssh, Duration::from_secs(30));
    let (from_spawn, from_ready) = (exit.at - ssh.spawned_at, exit.at - ready.seen);
    eprintln!(
        "d4: closed {} after ssh started ({} after ready) with a read-only state dir",
        secs(from_spawn),
        secs(from_ready)
    );
    assert!(
        from_spawn >= max && from_ready <= max + ON_TIME,
        "closed {} after spawn, {} after ready; limit 12 s\n{}",
        secs(from_spawn),
        secs(from_ready),
        d.report(&env)
    );
    env.expect_event("session_terminated", &[("id", &id)], EVENT, None);
    let failures = env
        .syslog
        .lines()
        .iter()
        .filter(|l| l.event() == Some("state_write_failed"))
        .count();
    assert_eq!(
        failures,
        1,
        "state_write_failed must be logged once a minute at most\n{}",
        d.report(&env)
    );

    // Writable again: the next change is persisted (the daemon retries).
    drop(ro);
    steps::writable_again_persists(&env, &d, &state);
    assert_accounting(&env, &d);
}

/// Issue: "A hung daemon (SIGSTOP) with `timeout_ms=300`: the login
/// completes, or fails with `fail=closed`, within 300 ms plus the login's own
/// time." The login's own time is measured on the same sshd just before.
#[test]
fn d5_hung_daemon_costs_a_login_at_most_timeout_ms() {
    let timeout = Duration::from_millis(300);
    // Login times vary by some 100 ms on a loaded machine (key exchange,
    // bash start-up); the slack covers that, not the module.
    let slack = Duration::from_millis(400);
    let p = Policy {
        idle: "off",
        max: "5m",
        warn: &[],
        grace: "2s",
    };
    let (env, config) = sup::world(&p);
    sup::edit_pam(&env, "timeout_ms=500", "timeout_ms=300");
    let mut d = OwnDaemon::start(&env, &config);
    let base = login_time(&env).min(login_time(&env));
    d.signal(libc::SIGSTOP);
    // Each figure is the faster of two logins, on both sides, to take out
    // the noise of other tests logging in at the same moment.
    let hung = login_time(&env).min(login_time(&env));

    // fail=closed: the baseline is a refusal without any wait (no socket).
    sup::edit_pam(&env, "fail=open", "fail=closed");
    let socket = env.socket.display().to_string();
    sup::edit_pam(&env, &socket, &format!("{socket}.absent"));
    let refused_base = refused_login_time(&env, &d).min(refused_login_time(&env, &d));
    sup::edit_pam(&env, &format!("{socket}.absent"), &socket);
    let refused_hung = refused_login_time(&env, &d).min(refused_login_time(&env, &d));
    d.signal(libc::SIGCONT);

    eprintln!(
        "d5: login {} with the daemon up, {} with it stopped; refused login {} without a daemon, {} with it stopped",
        secs(base),
        secs(hung),
        secs(refused_base),
        secs(refused_hung)
    );
    let report = d.report(&env);
    assert!(
        hung <= base + timeout + slack,
        "fail=open: a hung daemon cost the login {} more (bound 300 ms + {} slack)\n{report}",
        secs(hung.saturating_sub(base)),
        secs(slack)
    );
    assert!(
        refused_hung <= refused_base + timeout + slack,
        "fail=closed: a hung daemon cost the refusal {} more (bound 300 ms + {} slack)\n{report}",
        secs(refused_hung.saturating_sub(refused_base)),
        secs(slack)
    );
    // The module did wait for the hung daemon (it was reached, not skipped).
    assert!(
        refused_hung >= refused_base + timeout / 2,
        "the refusal with a stopped daemon took {}, without a daemon {}: the module did not wait\n{report}",
        secs(refused_hung),
        secs(refused_base)
    );
    assert!(d.running(), "the daemon died after SIGCONT\n{report}");
}

/// Issue 6 via the Policy issue: the daemon refuses to start on a missing
/// or invalid config, with the file, line and cause on stderr.
#[test]
fn d6_daemon_refuses_to_start_on_missing_or_invalid_config() {
    let dir = e2e::env::TempDir::create(&e2e::new_prefix());
    let socket = dir.0.join("t.sock");
    let head = format!(
        "[daemon]\nsocket = {:?}\nsyslog = {:?}\nstate_dir = {:?}\n",
        socket.display().to_string(),
        dir.0.join("syslog.sock").display().to_string(),
        dir.0.join("state").display().to_string()
    );
    let missing = dir.0.join("absent.toml");
    let err = refused_start(&missing, &socket);
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("cannot read"),
        "{err}"
    );
    for (name, body, want) in [
        (
            "typo",
            "[defaults]\nidel = \"15m\"\n",
            ":6:1: unknown field `idel`",
        ),
        ("bare", "[defaults]\nmax = \"12\"\n", ":6:7: bad duration"),
        ("toml", "[defaults\n", ":5:"),
        (
            "warn",
            "[defaults]\nidle = \"1m\"\nwarn = [\"2m\"]\n",
            "not shorter",
        ),
    ] {
        let path = dir.0.join(format!("{name}.toml"));
        fs::write(&path, format!("{head}{body}")).expect("writing config");
        let err = refused_start(&path, &socket);
        let located = format!("{}{want}", path.display());
        assert!(
            err.contains(&located)
                || (err.contains(&path.display().to_string()) && err.contains(want)),
            "{name}: stderr lacks {located:?}:\n{err}"
        );
    }
}

/// Issue: "with the daemon down, connect fails fast. The added login
/// latency is under 5 ms, measured." Measured in this process: libpam runs
/// a stack with our module (socket absent, or a stale socket nobody listens
/// on) and the same stack without it; the median difference of
/// `pam_open_session` is the module's cost.
#[test]
fn d7_pam_module_adds_under_5ms_with_the_daemon_down() {
    const RUNS: usize = 40;
    let bound = Duration::from_millis(5);
    let dir = e2e::env::TempDir::create(&e2e::new_prefix());
    let module = e2e::binaries().module;
    let stale = dir.0.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind")); // file left, nobody listens
    let line = |sock: &Path, fail: &str| {
        format!(
            "session required {} socket={} fail={fail} timeout_ms=300\nsession required pam_permit.so\n",
            module.display(),
            sock.display()
        )
    };
    let stacks = [
        ("base", "session required pam_permit.so\n".to_string()),
        ("absent", line(&dir.0.join("absent.sock"), "open")),
        ("stale", line(&stale, "open")),
        ("closed", line(&dir.0.join("absent.sock"), "closed")),
    ];
    for (name, text) in &stacks {
        fs::write(dir.0.join(name), text).expect("writing a PAM stack");
    }
    let pam = sup::PamProbe::load(&dir.0);
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); stacks.len()];
    for run in 0..=RUNS {
        for (i, (name, _)) in stacks.iter().enumerate() {
            let (rc, took) = pam.open_session(name, "root");
            let want_ok = *name != "closed";
            assert_eq!(rc == 0, want_ok, "pam_open_session({name}) = {rc}");
            if run > 0 {
                times[i].push(took); // run 0 loads the modules
            }
        }
    }
    let med: Vec<Duration> = times.into_iter().map(sup::median).collect();
    for (i, (name, _)) in stacks.iter().enumerate().skip(1) {
        let added = med[i].saturating_sub(med[0]);
        eprintln!(
            "d7: pam_open_session median {:?} ({name}) vs {:?} without the module: +{added:?}",
            med[i], med[0]
        );
        assert!(
            added < bound,
            "the module adds {added:?} to a login with the daemon down ({name}); bound {bound:?}"
        );
    }
}

/// Issue: "A session whose deadline passed while the daemon was down is
/// ended at once, after a short warning": one warning, then the end 5 s
/// (timeoutd's RESTORE_WARNING) after the restart.
#[test]
fn d8_deadline_passed_while_down_is_warned_then_ended_after_restart() {
    let notice = Duration::from_secs(5);
    let p = Policy {
        idle: "off",
        max: "6s",
        warn: &["3s"],
        grace: "2s",
    };
    let (env, config) = sup::world(&p);
    let mut first = OwnDaemon::start(&env, &config);
    let ssh = env.ssh();
    env.expect_ready(&ssh, LOGIN);
    let open = env.expect_session_open(EVENT, Some(&ssh));
    let id = open.get("id").unwrap().to_string();
    first.kill9();
    // The daemon stays down past the 6 s deadline: that is the case under
    // test. Bounded: until 8 s after ssh started.
    let past = (ssh.spawned_at + Duration::from_secs(8)).saturating_duration_since(Instant::now());
    std::thread::sleep(past);
    assert!(
        ssh.exit().is_none(),
        "the session ended while the daemon was down\n{}",
        first.report(&env)
    );
    let from = ssh.output_len();
    let d = OwnDaemon::start(&env, &config);
    env.expect_event("session_restored", &[("id", &id)], EVENT, Some(&ssh));
    let warning = env.expect_output(&ssh, "will be closed in", from, notice + EVENT);
    let exit = env.expect_exit(&ssh, notice + EVENT);
    let (warned, ended) = (
        warning.at.saturating_duration_since(d.started_at),
        exit.at.saturating_duration_since(d.started_at),
    );
    let warn_line = env.expect_event("session_warn", &[("id", &id)], EVENT, None);
    eprintln!(
        "d8: restarted {} after ssh started; warned {} (remaining={}) and closed {} after the restart",
        secs(d.started_at - ssh.spawned_at),
        secs(warned),
        warn_line.get("remaining").unwrap_or("?"),
        secs(ended)
    );
    // The daemon restores after it was spawned and (about) when its
    // daemon_start reached us: the end lies 5 s after a point in between.
    assert!(
        warning.at < exit.at && exit.at - d.spawned_at >= notice && ended <= notice + ON_TIME,
        "warned {} and closed {} after the restart; expected a warning, then the end 5 s after the restart (+2 s)\n{}",
        secs(warned),
        secs(ended),
        d.report(&env)
    );
    let warns = env
        .syslog
        .lines()
        .iter()
        .filter(|l| l.matches("session_warn", &[("id", &id)]))
        .count();
    assert_eq!(
        warns,
        1,
        "one warning after the restart\n{}",
        d.report(&env)
    );
    let exp = env.expect_event("session_expired", &[("id", &id)], EVENT, None);
    assert_eq!(exp.get("reason"), Some("max"), "{}", exp.raw);
    env.expect_event("session_terminated", &[("id", &id)], EVENT, None);
    assert_accounting(&env, &d);
}
