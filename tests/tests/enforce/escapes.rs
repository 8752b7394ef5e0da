//! Issue 4, "Enforcement nobody can dodge", end to end: a real sshd with our
//! PAM module, the real daemon, a real `ssh` client, and a test user trying
//! every escape. See README.md in this directory.
//!
//! Every escape test ends the same way: the login is closed for idleness at
//! its limit, the daemon logs `session_terminated survivors=0`, and no live
//! process carries the login's audit session id any more (zombies aside:
//! PID 1 here does not reap them).

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod escapes_support;

use std::time::Duration;

use e2e::audit::{self, Proc};
use e2e::login::{secs, ATIME_GRANULARITY, END_SLACK, EVENT};
use e2e::pam::{module_line, PamService};
use e2e::spawn::ChildGuard;
use e2e::{Env, FailMode, Login, SshOpts};
use escapes_support::{
    escape_is_ended, idle_env, in_subtree_of, is_sleep_1000, notty_session_ends, IDLE,
};

#[test]
fn e01_nohup_sleep_is_ended() {
    escape_is_ended(
        "nohup sleep 1000 >/dev/null 2>&1 &",
        "nohup'd sleep",
        is_sleep_1000,
        |p, _| {
            p.ignores(libc::SIGHUP)
                .then_some(())
                .ok_or("SIGHUP is not ignored".into())
        },
        |_| {},
    );
}

#[test]
fn e02_setsid_sleep_is_ended() {
    escape_is_ended(
        "setsid sleep 1000 </dev/null >/dev/null 2>&1 &",
        "setsid sleep",
        is_sleep_1000,
        |p, shell| {
            if p.sid != p.pid || p.sid == shell.sid || p.tty_nr != 0 {
                return Err("not the leader of a new session without a terminal".into());
            }
            Ok(())
        },
        |_| {},
    );
}

#[test]
fn e03_double_forked_daemon_is_ended() {
    escape_is_ended(
        "( ( sleep 1000 </dev/null >/dev/null 2>&1 & ) & )",
        "double-forked sleep",
        is_sleep_1000,
        |p, shell| {
            if in_subtree_of(p, shell) {
                return Err("still a descendant of the login shell".into());
            }
            Ok(())
        },
        |_| {},
    );
}

#[test]
fn e04_detached_tmux_server_is_ended() {
    // TMUX_TMPDIR in the home, which userdel removes: no /tmp/tmux-UID left.
    escape_is_ended(
        "TMUX_TMPDIR=$HOME tmux new-session -d -s x 'sleep 1000'",
        "sleep inside a detached tmux server",
        is_sleep_1000,
        |p, shell| {
            let server = Proc::read(p.ppid).ok_or("no parent")?;
            if server.argv.first().is_none_or(|a| !a.starts_with("tmux")) {
                return Err(format!("its parent is not tmux: {}", server.command()));
            }
            if in_subtree_of(&server, shell) || server.sid == shell.sid {
                return Err("the tmux server is not detached from the login".into());
            }
            Ok(())
        },
        |_| {},
    );
}

#[test]
fn e05_shell_ignoring_hup_and_term_is_killed() {
    // A shell that ignores SIGHUP (and SIGTERM, so only SIGKILL can end it),
    // and a child that inherited both.
    escape_is_ended(
        "bash -c \"trap '' HUP TERM; sleep 1000 & wait\" </dev/null >/dev/null 2>&1 &",
        "sleep of a shell with trap '' HUP TERM",
        is_sleep_1000,
        |p, _| {
            let parent = Proc::read(p.ppid).ok_or("no parent")?;
            for x in [p, &parent] {
                if !(x.ignores(libc::SIGHUP) && x.ignores(libc::SIGTERM)) {
                    return Err(format!("{} does not ignore HUP and TERM", x.command()));
                }
            }
            Ok(())
        },
        |login| {
            let steps = login.signal_steps();
            let step = |name: &str| steps.iter().find(|(s, _)| s.split(',').any(|x| x == name));
            let ok = step("SIGHUP").is_some()
                && step("SIGTERM").is_some_and(|(_, n)| *n >= 2)
                && step("SIGKILL").is_some_and(|(_, n)| *n >= 2);
            if !ok {
                login.fail(&format!(
                    "expected SIGHUP, then SIGTERM and SIGKILL each reaching the shell and its sleep: {steps:?}"
                ));
            }
        },
    );
}

#[test]
fn e06_stopped_process_is_ended() {
    escape_is_ended(
        // Stopped once it is sleep: stopped before its exec it would stay a bash.
        "sleep 1000 & until [ \"$(</proc/$!/comm)\" = sleep ]; do :; done; kill -STOP $!",
        "stopped sleep",
        |p| is_sleep_1000(p) && p.state == 'T',
        |_, _| Ok(()),
        |_| {},
    );
}

/// `touch -a` on the pty every 5 s, from the login's own background job:
/// not activity. idle 20 s, so that touches happen while the real input is
/// still fresh.
#[test]
fn e07_touching_the_tty_does_not_keep_a_login_alive() {
    let idle = Duration::from_secs(20);
    let env = idle_env().idle("20s").start();
    let login = Login::start(&env);
    let sid = login.audit_session();
    // The pty's 10 s settle period (ctime changes ignored) starts when the
    // daemon finds it; the touching starts 16 s after the command is typed,
    // well past it. Real input is credited until at most T+8 s, so the
    // login must end by T+20+8 s (+slack); had a touch counted, not before
    // T+16+20 s.
    let tty = login.event("session_tty", &[], EVENT);
    let pty = tty.get("found").unwrap_or_default().to_string();
    let typed = login.run(
        "T=$(tty); (sleep 16; while :; do touch -a \"$T\"; sleep 5; done) </dev/null >/dev/null 2>&1 &",
    );
    login.wait_proc(sid, "touch loop", |p| p.argv == ["sleep", "16"]);
    login.expect_idle_end_between(login.ready.written, typed, idle);
    let tamper = login.event("tamper_suspected", &[], EVENT);
    let detail = tamper.get("tampered").unwrap_or_default();
    if !(detail.contains(&format!("{pty}:ctime changed")) && tamper.at >= typed) {
        login.fail(&format!(
            "tamper_suspected names the wrong tty or cause: {}",
            tamper.raw
        ));
    }
    login.expect_terminated_clean();
    login.assert_session_empty(sid);
}

/// `touch -a -d 2030-01-01` on the pty: an atime in the future is refused.
#[test]
fn e08_future_atime_does_not_stop_the_clock() {
    let env = idle_env().start();
    let login = Login::start(&env);
    let sid = login.audit_session();
    // The touch is the last thing read from the terminal (one typed line),
    // so the atime stays in 2030.
    let typed = login.run("touch -a -d 2030-01-01 \"$(tty)\"");
    login.expect_idle_end_between(login.ready.written, typed, IDLE);
    let tamper = login.event("tamper_suspected", &[], EVENT);
    if !tamper
        .get("tampered")
        .unwrap_or_default()
        .contains("atime in the future")
    {
        login.fail(&format!(
            "tamper_suspected without the cause: {}",
            tamper.raw
        ));
    }
    login.expect_terminated_clean();
    login.assert_session_empty(sid);
}

/// Real typing every 3 s for 2.5 idle limits keeps the login; then silence
/// ends it.
#[test]
fn e09_real_typing_keeps_a_login_alive() {
    let env = idle_env().start();
    let login = Login::start(&env);
    let sid = login.audit_session();
    let last = login.type_every_3s("tick", IDLE * 5 / 2, &[]);
    if let Some(l) = env.syslog.find("session_expired", &[("id", &login.id)]) {
        login.fail(&format!("expired while typing: {}", l.raw));
    }
    login.expect_idle_end(last, IDLE);
    login.expect_terminated_clean();
    login.assert_session_empty(sid);
}

/// `su - OTHER` inside an ssh login: su keeps the login's audit session id,
/// so its session is the su process's subtree. It expires; the outer login
/// (no idle limit) lives on and answers.
///
/// su's PAM service name is fixed (`su-l` for `su -`), so this test's sshd
/// runs in a private mount namespace where /etc/pam.d/su-l is the host's
/// stack plus our module (the host's file is untouched).
#[test]
fn e10_su_session_inside_ssh_ends_only_its_subtree() {
    let rule =
        "[[rule]]\nname = \"su\"\nservices = [\"su\", \"su-l\"]\nidle = \"10s\"\nwarn = [\"5s\"]";
    let env = Env::builder()
        .idle("off")
        .max("off")
        .warn(&[])
        .pam_overlay("su-l")
        .rule_toml(rule)
        .start();
    let other = env.second_user();
    let password = format!("pw-{}", e2e::util::random_hex(16));
    other.set_password(&password);
    let outer = Login::start(&env);
    let outer_sid = outer.audit_session();

    let su = |args: &str| {
        let from = outer.ssh.output_len();
        outer.type_line(&format!("su {args}"));
        env.expect_output(&outer.ssh, "Password:", from, EVENT);
        outer.type_line(&password);
    };
    // OTHER's process in this audit session but outside the su session to
    // come (from an earlier `su -c`, whose `su` stack has no module): the su
    // session's scope is its own subtree, so this one must survive it.
    su(&format!(
        "{} -c 'setsid sleep 1001 </dev/null >/dev/null 2>&1 &'",
        other.name()
    ));
    let bystander = outer.wait_proc(outer_sid, "sleep 1001 of OTHER", |p| {
        p.argv == ["sleep", "1001"] && p.ruid == other.uid()
    });
    outer.run("true");
    su(&format!("- {}", other.name()));
    let su = env.expect_event("session_open", &[("user", other.name())], EVENT, None);
    let su_id = su.get("id").unwrap_or_default();
    if su.get("scope") != Some("subtree") || su.get("service") != Some("su-l") {
        outer.fail(&format!("not a su-l subtree session: {}", su.raw));
    }
    let su_pid: u32 = su.get("pid").and_then(|p| p.parse().ok()).unwrap_or(0);
    // The su shell runs as OTHER, in the outer login's audit session.
    let typed = outer.run(&format!("[ $(id -un) = {} ] && sleep 1000 &", other.name()));
    let su_sleep = outer.wait_proc(outer_sid, "sleep of the su shell", |p| {
        is_sleep_1000(p) && p.ruid == other.uid()
    });
    let bound = IDLE + ATIME_GRANULARITY + END_SLACK;
    let expired = outer.event_of(su_id, "session_expired", &[("reason", "idle")], bound);
    if expired.at < typed + IDLE {
        outer.fail(&format!(
            "expired {} after the last input",
            secs(expired.at - typed)
        ));
    }
    outer.event_of(su_id, "session_terminated", &[("survivors", "0")], EVENT);
    let su_alive = Proc::read(su_pid).is_some_and(|p| p.live());
    let left: Vec<u32> = other.processes();
    if left != [bystander.pid] || su_sleep.still_running() || su_alive {
        outer.fail(&format!(
            "the su session (su pid {su_pid}) left processes or took the bystander {}: {left:?}",
            bystander.pid
        ));
    }
    // The outer login is still there, its shell answers as the ssh user.
    let from = outer.ssh.output_len();
    outer.type_line("echo outer_$(id -un)_$((6*7))");
    let answer = format!("outer_{}_42", env.user.name());
    env.expect_output(&outer.ssh, &answer, from, EVENT);
    let outer_ended = env.syslog.find("session_expired", &[("id", &outer.id)]);
    let shell_alive = audit::live_in_session(outer_sid)
        .iter()
        .any(|p| p.argv.first().is_some_and(|a| a == "-bash"));
    if outer.ssh.exit().is_some() || outer_ended.is_some() || !shell_alive {
        outer.fail("the outer login was ended");
    }
}

/// No pty, `notty = "io"` (the default): idle is measured from the
/// session's process I/O, and `sleep` does none. The daemon knows there is
/// no terminal once sshd's child is titled `@notty`, and samples I/O at its
/// wake-ups (5 s of slack for their spacing).
#[test]
fn e11a_notty_session_io_ends_at_idle_limit() {
    let env = idle_env().start();
    notty_session_ends(&env, "idle", IDLE, Duration::from_secs(5) + END_SLACK);
}

/// The same with `notty = "max-only"`: no idle limit, the 25 s absolute one.
#[test]
fn e11b_notty_session_max_only_ends_at_absolute_limit() {
    let env = idle_env()
        .max("25s")
        .defaults_toml("notty = \"max-only\"")
        .start();
    notty_session_ends(&env, "max", Duration::from_secs(25), END_SLACK);
}

/// ControlMaster: a second `ssh -tt` through the first one's connection is
/// a second pty in the same PAM session. Typing on either one alone keeps
/// the session; when both stop, it ends.
#[test]
fn e12_controlmaster_session_lives_while_either_pty_has_input() {
    let env = idle_env().start();
    let path = env.dir().join("cm.sock");
    let mux = |master: &str| SshOpts {
        options: vec![
            format!("ControlMaster={master}"),
            format!("ControlPath={}", path.display()),
            "ControlPersist=no".into(),
        ],
        ..SshOpts::default()
    };
    let first = Login::attach(&env, env.ssh_with(&mux("yes")));
    // The same daemon session: it must not open a second one (checked below).
    let second = first.same_session(env.ssh_with(&mux("no")));
    // Each phase outlasts idle + atime granularity + slack: had the daemon
    // measured only the other pty, the session would end within it.
    let span = IDLE + ATIME_GRANULARITY + END_SLACK + Duration::from_secs(1);
    first.type_every_3s("a", span, &[&second]);
    let last = second.type_every_3s("b", span, &[&first]);
    second.expect_idle_end(last, IDLE);
    env.expect_exit(&first.ssh, EVENT);
    first.expect_terminated_clean();
    let lines = env.syslog.lines();
    let opens = lines.iter().filter(|l| l.event() == Some("session_open"));
    let mut ttys: Vec<&str> = lines
        .iter()
        .filter(|l| l.matches("session_tty", &[("id", &first.id)]))
        .filter_map(|l| l.get("found"))
        .collect();
    ttys.sort();
    ttys.dedup();
    if opens.count() != 1 || ttys.len() != 2 {
        first.fail(&format!(
            "expected one session with two ptys, ptys {ttys:?}"
        ));
    }
    first.assert_session_empty(first.audit_session());
}

/// Another user's process, the same user's process outside this login, and
/// the test's sshd listener are untouched when a login is ended.
#[test]
fn e13_other_users_and_sshd_are_untouched() {
    let env = idle_env().start();
    let other = env.second_user();
    let theirs = ChildGuard::spawn_as(other.uid(), other.gid(), &["/bin/sleep", "1001"]);
    let (uid, gid) = (env.user.uid(), env.user.gid());
    let mine_elsewhere = ChildGuard::spawn_as(uid, gid, &["/bin/sleep", "1002"]);
    let sshd = env.sshd.as_ref().expect("sshd");
    let listener = Proc::read(sshd.pid()).expect("sshd runs");
    let login = Login::start(&env);
    let sid = login.audit_session();
    let typed = login.run("sleep 1000 &");
    login.wait_proc(sid, "sleep", is_sleep_1000);
    login.expect_idle_end(typed, IDLE);
    login.expect_terminated_clean();
    login.assert_session_empty(sid);
    for (what, ok) in [
        ("the other user's sleep", theirs.running()),
        (
            "the same user's sleep outside the login",
            mine_elsewhere.running(),
        ),
        ("the sshd listener", listener.still_running()),
        (
            "the sshd listener's port",
            std::net::TcpStream::connect(("127.0.0.1", sshd.port)).is_ok(),
        ),
    ] {
        if !ok {
            login.fail(&format!("{what} was hit"));
        }
    }
}

/// `kill_scope = "leader"` (documented as weaker): only sshd's processes of
/// the login are signalled; a detached `setsid sleep` survives.
#[test]
fn e14_kill_scope_leader_spares_detached_processes() {
    let env = idle_env().defaults_toml("kill_scope = \"leader\"").start();
    let login = Login::start(&env);
    let sid = login.audit_session();
    let typed = login.run("setsid sleep 1000 </dev/null >/dev/null 2>&1 &");
    let detached = login.wait_proc(sid, "setsid sleep", is_sleep_1000);
    login.expect_idle_end(typed, IDLE);
    login.expect_terminated_clean();
    let steps = login.signal_steps();
    // sshd's `[priv]` monitor and its `user@pts/N` child.
    if !detached.still_running() || steps.first().is_none_or(|(_, n)| *n > 2) {
        login.fail(&format!(
            "leader scope hit more than sshd's processes: {steps:?}"
        ));
    }
    // Clean up what the weaker scope leaves (the user guard would too).
    let in_session = || audit::live_in_session(sid).iter().map(|p| p.pid).collect();
    let left = e2e::procs::kill_all_until_gone(in_session, EVENT);
    assert!(left.is_empty(), "could not clean up {left:?}");
}

/// Posture: `timeoutd --posture` and the daemon's start report TIOCSTI (if
/// the sysctl is on here) and a PAM stack using the module without
/// pam_loginuid; this test's own sshd stack (pam_loginuid first) is fine.
#[test]
fn e15_posture_reports_tiocsti_and_stack_without_loginuid() {
    let bins = e2e::binaries();
    let service = format!("{}-nologinuid", e2e::new_prefix());
    let socket = std::path::Path::new("/nonexistent/timeoutd.sock");
    let line = module_line(&bins.module, socket, FailMode::Open);
    let _stack = PamService::write_text(
        &service,
        &format!("session required pam_permit.so\n{line}\n"),
    );
    let env = Env::builder().start();
    let sysctl = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti");
    let tiocsti = sysctl.unwrap_or_default().trim() == "1";
    let out = std::process::Command::new(&bins.timeoutd)
        .arg("--posture")
        .output()
        .expect("running timeoutd --posture");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let what = format!("--posture: {}\n{stdout}\n{}", out.status, env.report(None));
    assert_eq!(out.status.code(), Some(1), "{what}");
    let reported = |check: &str, svc: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("{check}:")) && l.contains(svc))
    };
    assert_eq!(
        reported("legacy_tiocsti", "legacy_tiocsti=1"),
        tiocsti,
        "{what}"
    );
    assert!(reported("pam_loginuid", &format!("{service:?}")), "{what}");
    let own = &env.pam.as_ref().expect("pam").service;
    assert!(!reported("pam_loginuid", &format!("{own:?}")), "{what}");
    // The daemon said the same at its start.
    let logged = |check: &str, needle: &str| {
        env.syslog.lines().iter().any(|l| {
            l.matches("posture_warning", &[("check", check)])
                && l.get("problem").is_some_and(|p| p.contains(needle))
        })
    };
    assert_eq!(
        logged("legacy_tiocsti", "legacy_tiocsti=1"),
        tiocsti,
        "{what}"
    );
    assert!(logged("pam_loginuid", &format!("{service:?}")), "{what}");
}
