//! Helpers for `escapes.rs` only: the idle policy most escape tests run
//! under, the shared shape of an escape test (`escape_is_ended`), process
//! predicates, and the no-pty session check.

use std::time::Duration;

use e2e::audit::{self, Proc};
use e2e::login::{secs, EVENT};
use e2e::{Env, Login, SshOpts};

/// The idle limit of most tests, and its config value.
pub const IDLE: Duration = Duration::from_secs(10);

/// idle 10 s, no absolute limit, a warning 5 s before, grace 2 s.
pub fn idle_env() -> e2e::EnvBuilder {
    Env::builder()
        .idle("10s")
        .max("off")
        .warn(&["5s"])
        .grace("2s")
}

/// One escape: `cmd` typed in the login leaves a process that `pick`s out
/// among the session's; `proves` checks the process really escaped the way
/// the test says (against the login shell), so the test cannot pass by
/// testing nothing. Then nothing is typed: the login must end at its idle
/// limit and take the escaped process with it. `after` may check more
/// (e.g. the signal steps) once it has.
pub fn escape_is_ended(
    cmd: &str,
    what: &str,
    pick: impl Fn(&Proc) -> bool,
    proves: impl Fn(&Proc, &Proc) -> Result<(), String>,
    after: impl FnOnce(&Login),
) {
    let env = idle_env().start();
    let login = Login::start(&env);
    let sid = login.audit_session();
    let shell = login.wait_proc(sid, "login shell", |p| {
        p.argv.first().is_some_and(|a| a == "-bash")
    });
    let typed = login.run(cmd);
    let escaped = login.wait_proc(sid, what, &pick);
    if let Err(e) = proves(&escaped, &shell) {
        login.fail(&format!(
            "the escape did not happen as intended ({e}):\n{}\nlogin shell:\n{}",
            audit::describe(std::slice::from_ref(&escaped)),
            audit::describe(std::slice::from_ref(&shell))
        ));
    }
    login.expect_idle_end(typed, IDLE);
    login.expect_terminated_clean();
    login.assert_session_empty(sid);
    assert!(!escaped.still_running(), "{what} survived");
    after(&login);
}

pub fn is_sleep_1000(p: &Proc) -> bool {
    p.argv == ["sleep", "1000"]
}

pub fn in_subtree_of(p: &Proc, root: &Proc) -> bool {
    audit::live_descendants(root.pid)
        .iter()
        .any(|d| d.pid == p.pid)
}

/// `ssh -T host sleep 1000`: the session ends for `reason` not before
/// `limit` after ssh started, and by `limit` + `slack` after it opened.
pub fn notty_session_ends(env: &Env, reason: &str, limit: Duration, slack: Duration) {
    let ssh = env.ssh_with(&SshOpts {
        tty: false,
        command: vec!["sleep".into(), "1000".into()],
        ..SshOpts::default()
    });
    let login = Login::without_shell(env, ssh);
    let sid = login.audit_session();
    let exit = login.wait_exit(login.open.at, limit + slack);
    let after = exit.at - login.ssh.spawned_at;
    eprintln!(
        "notty session ended {} after ssh started ({reason})",
        secs(after)
    );
    if after < limit {
        login.fail(&format!("ended {} after ssh started", secs(after)));
    }
    login.event("session_expired", &[("reason", reason)], EVENT);
    login.expect_terminated_clean();
    login.assert_session_empty(sid);
}
