//! Helpers for `durability.rs` only, beyond the harness's public API:
//! - [`OwnDaemon`]: timeoutd started, killed (-9), stopped (SIGSTOP) and
//!   restarted by the test, on the same config and state dir, logging to the
//!   test's syslog sink (which keeps capturing across restarts);
//! - [`config_text`]: a policy that limits only the test's own user, so a
//!   daemon that adopts the logins of concurrent tests (at start it adopts
//!   every running login through a stack with our module, and every test
//!   here has one) never ends them;
//! - [`ReadOnlyMount`]: an empty read-only tmpfs over a directory (read-only
//!   for root too, unlike chmod);
//! - audit-session scans, the accounting check, and an in-process PAM
//!   latency probe (libpam's `pam_start_confdir`, no pam_wrapper needed);
//! - [`steps`]: the named steps of the longer tests.

pub mod steps;

use std::ffi::c_int;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::ssh_client::{READY_MARKER, READY_PROBE};
use e2e::syslog::SyslogSink;
use e2e::util::{poll_until, run};
use e2e::{procs, Env, FailMode, LogLine, SshSession};
use st_testkit::daemon::{daemon_table, private_dir, Daemon, Launch, Output};
use st_testkit::pam::{Conversation, Pam};

/// How late a session may end after its deadline (the bound).
pub const ON_TIME: Duration = Duration::from_secs(2);

/// A duration as seconds with two decimals, for messages.
pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// Bound for login plus the readiness probe.
pub const LOGIN: Duration = Duration::from_secs(20);
/// Bound for one event that follows from something already seen.
pub const EVENT: Duration = Duration::from_secs(10);
/// How long the daemon may take to log `daemon_start`.
const START_BOUND: Duration = Duration::from_secs(15);

/// The limits of the test user's rule.
pub struct Policy<'a> {
    pub idle: &'a str,
    pub max: &'a str,
    pub warn: &'a [&'a str],
    pub grace: &'a str,
}

/// `[defaults]` limit nothing; one rule limits `user`. Logins of our sshd
/// (`sshd-<prefix>`, so the default `adopt = ["sshd", "login"]` would miss
/// it) are adopted.
pub fn config_text(
    socket: &Path,
    syslog: &Path,
    state_dir: &Path,
    user: &str,
    p: &Policy,
) -> String {
    let warn: Vec<String> = p.warn.iter().map(|w| format!("{w:?}")).collect();
    format!(
        "# Written by durability.rs.\n{}\n\
         [defaults]\nidle = \"off\"\nmax = \"off\"\nwarn = []\n\n\
         [[rule]]\nname = \"this-test\"\nusers = [{user:?}]\n\
         idle = {:?}\nmax = {:?}\nwarn = [{}]\ngrace = {:?}\n",
        daemon_table(socket, syslog, state_dir, Some(&["sshd*"])),
        p.idle,
        p.max,
        warn.join(", "),
        p.grace,
    )
}

/// A test world whose daemon the test runs itself: sshd with our module
/// (fail=open, `timeout_ms=500`) pointing at `env.socket`, nothing listening
/// yet, and a config for [`OwnDaemon`] in `<dir>/own-timeoutd.toml` with the
/// state dir `<dir>/state` (0700).
pub fn world(p: &Policy) -> (Env, PathBuf) {
    let env = Env::builder()
        .daemon(false)
        .module(Some(FailMode::Open))
        .start();
    let state = env.dir().join("state");
    private_dir(&state).expect("creating the state dir");
    let config = env.dir().join("own-timeoutd.toml");
    let text = config_text(&env.socket, &env.syslog.path, &state, env.user.name(), p);
    fs::write(&config, text).expect("writing the config");
    (env, config)
}

/// Rewrites this test's PAM service file (read by sshd at every login).
pub fn edit_pam(env: &Env, from: &str, to: &str) {
    let pam = env.pam.as_ref().expect("a PAM service");
    let text = pam.contents();
    assert!(
        text.contains(from),
        "{from:?} not in {}",
        pam.path.display()
    );
    fs::write(&pam.path, text.replace(from, to)).expect("rewriting the PAM file");
}

/// A timeoutd the test controls: the test kit's [`Daemon`] (dropping it
/// continues it if stopped and terminates it), started on the test's config
/// and appending to one log across restarts.
pub struct OwnDaemon(Daemon);

impl std::ops::Deref for OwnDaemon {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.0
    }
}

impl std::ops::DerefMut for OwnDaemon {
    fn deref_mut(&mut self) -> &mut Daemon {
        &mut self.0
    }
}

impl OwnDaemon {
    /// Starts `timeoutd --config CONFIG --foreground` and waits for the
    /// `daemon_start` that carries its pid (earlier runs logged theirs too),
    /// and then until it answers a `status` request (a login made before the
    /// daemon serves waits for its reply until the module's timeout).
    pub fn start(env: &Env, config: &Path) -> OwnDaemon {
        let bins = e2e::binaries();
        let launch = Launch {
            binary: &bins.timeoutd,
            config,
            socket: &env.socket,
            output: Output {
                log: env.dir().join("own-timeoutd.log"),
                append: true,
                stdout: true,
            },
            start_bound: START_BOUND,
            serving: Some(START_BOUND),
        };
        let d = Daemon::start(&launch, &env.syslog).unwrap_or_else(|e| {
            panic!("{e}\n{}", env.report(None));
        });
        eprintln!(
            "timeoutd {} served {} ms after its daemon_start",
            d.pid(),
            d.started_at.elapsed().as_millis()
        );
        OwnDaemon(d)
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) {
        self.0.kill();
    }

    /// SIGTERM and wait for the exit (a normal stop).
    pub fn terminate(&mut self) {
        assert!(
            self.0.terminate(Duration::from_secs(10)).is_some(),
            "timeoutd did not stop"
        );
    }

    /// The test's report plus this daemon's output (all runs).
    pub fn report(&self, env: &Env) -> String {
        format!(
            "{}--- own timeoutd output ---\n{}\n",
            env.report(None),
            self.output(6000)
        )
    }
}

/// An empty read-only tmpfs mounted over `dir` (root cannot write to it
/// either); unmounted on drop.
pub struct ReadOnlyMount(pub PathBuf);

impl ReadOnlyMount {
    pub fn over(dir: &Path) -> ReadOnlyMount {
        let out = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,mode=0700,size=64k", "e2e-ro-state"])
            .arg(dir));
        assert!(
            out.status.success(),
            "mount -t tmpfs -o ro over {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let m = ReadOnlyMount(dir.to_path_buf());
        assert!(
            File::create(dir.join("probe")).is_err(),
            "root can still write to {}",
            dir.display()
        );
        m
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let out = run(Command::new("umount").arg(&self.0));
        if !out.status.success() {
            // Busy (a daemon still has it open): detach it now, freed when closed.
            let lazy = run(Command::new("umount").arg("-l").arg(&self.0));
            if !lazy.status.success() {
                eprintln!("e2e cleanup: cannot unmount {}", self.0.display());
            }
        }
    }
}

/// `/proc/PID/sessionid`.
pub fn sessionid_of(pid: u32) -> Option<u32> {
    fs::read_to_string(format!("/proc/{pid}/sessionid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Live (non-zombie) processes of audit session `sid`.
pub fn pids_of_sessionid(sid: u32) -> Vec<u32> {
    procs::all_pids()
        .into_iter()
        .filter(|&p| sessionid_of(p) == Some(sid))
        .filter(|&p| procs::stat(p).is_some_and(|s| s.state != 'Z'))
        .collect()
}

/// Waits until no process of audit session `sid` is left.
pub fn wait_session_gone(sid: u32, bound: Duration) -> bool {
    poll_until(bound, Duration::from_millis(50), || {
        pids_of_sessionid(sid).is_empty().then_some(())
    })
    .is_some()
}

/// Waits for `n` distinct sessions of `user` to be logged with `event`;
/// returns their lines in arrival order.
pub fn wait_sessions(
    sink: &SyslogSink,
    event: &str,
    user: &str,
    n: usize,
    bound: Duration,
) -> Vec<LogLine> {
    let mut seen: Vec<LogLine> = Vec::new();
    let deadline = Instant::now() + bound;
    while seen.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let ids: Vec<String> = seen
            .iter()
            .filter_map(|l| l.get("id").map(str::to_string))
            .collect();
        let next = sink.wait_line(left, |l| {
            l.matches(event, &[("user", user)])
                && l.get("id").is_some_and(|id| !ids.iter().any(|s| s == id))
        });
        match next {
            Some(l) => seen.push(l),
            None => break,
        }
    }
    seen
}

/// Every session of `user` that was opened or adopted has exactly one
/// `session_close` or `session_terminated`. Returns the problems found.
pub fn accounting_problems(sink: &SyslogSink, user: &str) -> Vec<String> {
    let lines = sink.lines();
    let mut problems = Vec::new();
    let begun: Vec<&LogLine> = lines
        .iter()
        .filter(|l| {
            (l.matches("session_open", &[("user", user)])
                || l.matches("session_adopted", &[("user", user)]))
                && l.get("id").is_some()
        })
        .collect();
    if begun.is_empty() {
        problems.push(format!("no session_open or session_adopted for {user}"));
    }
    for b in &begun {
        let id = b.get("id").unwrap_or_default();
        let opens = lines
            .iter()
            .filter(|l| {
                l.get("id") == Some(id)
                    && matches!(l.event(), Some("session_open" | "session_adopted"))
            })
            .count();
        let ends = lines
            .iter()
            .filter(|l| {
                l.get("id") == Some(id)
                    && matches!(l.event(), Some("session_close" | "session_terminated"))
            })
            .count();
        if opens != 1 || ends != 1 {
            problems.push(format!(
                "session {id}: {opens} open/adopted, {ends} close/terminated"
            ));
        }
    }
    problems
}

// ---- in-process PAM ----

/// libpam, loaded into this process, running stacks from a directory of our
/// own (`pam_start_confdir`, Linux-PAM 1.4+): no /etc/pam.d, no wrapper.
pub struct PamProbe {
    confdir: PathBuf,
}

impl PamProbe {
    pub fn load(confdir: &Path) -> PamProbe {
        PamProbe {
            confdir: confdir.to_path_buf(),
        }
    }

    /// Runs `service`'s session stack for `user` once (every conversation
    /// refused, PAM_TTY `ssh`, PAM_RHOST 127.0.0.1): returns the result of
    /// `pam_open_session` and how long that call took.
    pub fn open_session(&self, service: &str, user: &str) -> (c_int, Duration) {
        let mut pam = Pam::start_with(service, user, Conversation::RefuseAll, Some(&self.confdir))
            .unwrap_or_else(|rc| panic!("pam_start_confdir({service}) = {rc}"));
        pam.set_tty("ssh");
        pam.set_rhost("127.0.0.1");
        let t = Instant::now();
        let rc = pam.open_session();
        let took = t.elapsed();
        if rc == 0 {
            pam.close_session();
        }
        pam.end(rc);
        (rc, took)
    }
}

/// The median of `d`.
pub fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

// ---- shared steps of the tests ----

/// The first `event` line of daemon `d` (earlier runs logged the same
/// events; the syslog tag `timeoutd[PID]` tells them apart).
pub fn event_of(env: &Env, d: &OwnDaemon, event: &str) -> e2e::LogLine {
    env.syslog
        .wait_line(EVENT, |l| l.is(d.pid(), event))
        .unwrap_or_else(|| panic!("no {event} from timeoutd {}\n{}", d.pid(), d.report(env)))
}

pub fn assert_accounting(env: &Env, d: &OwnDaemon) {
    let problems = accounting_problems(&env.syslog, env.user.name());
    assert!(
        problems.is_empty(),
        "syslog accounting does not balance: {problems:?}\n{}",
        d.report(env)
    );
}

/// Logs out of a shell and waits for ssh to end.
pub fn logout(env: &Env, ssh: &SshSession) {
    ssh.send("exit\n").expect("typing exit");
    env.expect_exit(ssh, EVENT);
}

/// The time from spawning ssh until the shell answers.
pub fn login_time(env: &Env) -> Duration {
    let ssh = env.ssh();
    let ready = env.expect_ready(&ssh, LOGIN);
    logout(env, &ssh);
    ready.seen - ssh.spawned_at
}

/// The time from spawning ssh until it exits, for a login that must fail.
pub fn refused_login_time(env: &Env, d: &OwnDaemon) -> Duration {
    let ssh = env.ssh();
    ssh.send(READY_PROBE).expect("typing the probe");
    let exit = env.expect_exit(&ssh, LOGIN);
    assert!(
        !exit.status.success() && ssh.wait_for_output(READY_MARKER, Duration::ZERO).is_none(),
        "fail=closed let the login in\n{}",
        d.report(env)
    );
    exit.at - ssh.spawned_at
}

/// Runs `timeoutd --config PATH --foreground`, which must refuse to start;
/// returns its stderr.
pub fn refused_start(config: &Path, socket: &Path) -> String {
    let mut child = Command::new(e2e::binaries().timeoutd)
        .arg("--config")
        .arg(config)
        .arg("--foreground")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting timeoutd");
    let status = e2e::util::wait_child_timeout(&mut child, EVENT);
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("timeoutd's stderr");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        matches!(status, Some(s) if !s.success()),
        "timeoutd with {} did not refuse to start: {status:?}\n{stderr}",
        config.display()
    );
    assert!(!socket.exists(), "it created its socket anyway");
    assert!(stderr.contains("refusing to start"), "{stderr}");
    stderr
}
