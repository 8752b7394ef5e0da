//! Helpers shared by `policy.rs` and `ctl.rs`, built only on the public
//! harness API (crate `e2e`).
//!
//! The harness's `Env` has one user, one `[defaults]`-only daemon config and a
//! PAM file with only a `session` line. These tests need more, so a [`World`]
//! starts an `Env` without daemon, PAM file or sshd (temp dir, syslog socket
//! and first user only), then adds:
//! - more test users (`useradd`, swept like the harness's own), optionally one
//!   of them a supplementary member of another's user-private group;
//! - its own daemon process, from raw TOML (`[[rule]]` tables), that a test
//!   can send SIGHUP, stop by pid and start again with the same state_dir;
//! - its own `/etc/pam.d/sshd-<prefix>`, optionally with an `account` line
//!   and the module's `quiet` argument;
//! - its own sshd that lets every user of the world in;
//! - `timeoutctl`, as root or as a test user, and `ssh user@host CMD`.
//!
//! Field order of [`World`] is drop order: sshd (and its session processes),
//! daemon, PAM file, the extra users, then the `Env` (first user, syslog, dir).

#![allow(dead_code)] // each test file uses a part of it

pub mod run;

use std::collections::HashSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use e2e::machine::users::TestUser;
use e2e::pam::{module_line, PamService};
use e2e::sshd::Sshd;
use e2e::util::{file_tail, poll_until};
use e2e::{Env, FailMode, LogLine, SshSession};
pub use run::{run_bounded, timeoutctl, Run, Timeoutd};

/// Bound for login plus the readiness probe (key exchange, PAM, bash start).
pub const LOGIN: Duration = Duration::from_secs(20);
/// Bound for one syslog event that follows from something already seen.
pub const EVENT: Duration = Duration::from_secs(10);
/// The daemon credits input at the end of the kernel's 8-second atime window
/// (see shared/DOMAIN.md), so an idle deadline can fall up to 8 s late.
pub const ATIME_GRANULARITY: Duration = Duration::from_secs(8);
/// Bound for a timeoutctl or ssh command to finish.
const COMMAND: Duration = Duration::from_secs(20);

/// `[defaults]` that leave every session alone. timeoutd adopts every live
/// login on the host when it starts (sshd or login leaders with an audit
/// session id), including other tests' and real users' sessions; the tests
/// put their limits in rules that match only their own users.
pub const HANDS_OFF: &str =
    "[defaults]\nidle = \"off\"\nmax = \"off\"\nwarn = []\ngrace = \"2s\"\n\n";

/// Names as a TOML list: `["a", "b"]`.
pub fn toml_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// `usermod -aG group user`, retried while another process holds the
/// account files' lock (the harness serializes its own useradd/userdel).
fn add_to_group(user: &str, group: &str) {
    let mut last = None;
    let done = poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let out = Command::new("usermod")
            .args(["-aG", group, user])
            .output()
            .expect("running usermod");
        let ok = out.status.success();
        last = Some(out);
        ok.then_some(())
    });
    if done.is_none() {
        let out = last.expect("usermod ran");
        panic!(
            "usermod -aG {group} {user} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Makes the policy part of the config from the users' names.
type PolicyFn = Box<dyn Fn(&[String]) -> String>;
/// Makes the extra sshd_config lines from the users' names.
type SshdLinesFn = Box<dyn Fn(&[String]) -> Vec<String>>;

/// What a test world needs.
pub struct WorldBuilder {
    users: usize,
    policy: PolicyFn,
    account_line: bool,
    quiet: bool,
    supplementary: Vec<(usize, usize)>,
    daemon_keys: String,
    sshd: SshdLinesFn,
    allow_also: Vec<String>,
    daemon_args: Vec<String>,
}

impl WorldBuilder {
    /// More `timeoutd` arguments, kept for a restart too.
    pub fn daemon_args(mut self, args: &[String]) -> Self {
        self.daemon_args.extend_from_slice(args);
        self
    }
    /// More names sshd lets in: users the test made elsewhere (a directory).
    pub fn allow_also(mut self, names: &[String]) -> Self {
        self.allow_also.extend_from_slice(names);
        self
    }
    /// More `[daemon]` keys (TOML lines), e.g. `revalidate = "5s"`.
    pub fn daemon_keys(mut self, toml: &str) -> Self {
        self.daemon_keys.push_str(toml);
        self
    }
    /// `n` users in all (at least 1): user 0 is the harness's, 1.. are extra.
    pub fn users(mut self, n: usize) -> Self {
        self.users = n.max(1);
        self
    }
    /// The config below `[daemon]`: `[defaults]` and `[[rule]]` tables.
    pub fn policy(mut self, toml: &str) -> Self {
        let toml = toml.to_string();
        self.policy = Box::new(move |_| toml.clone());
        self
    }
    /// The same, made from the names of the users (index 0..n).
    pub fn policy_for(mut self, f: impl Fn(&[String]) -> String + 'static) -> Self {
        self.policy = Box::new(f);
        self
    }
    /// Also an `account required <module> socket=...` line.
    pub fn account_line(mut self) -> Self {
        self.account_line = true;
        self
    }
    /// More sshd_config lines (`TrustedUserCAKeys PATH`, ...).
    pub fn sshd_lines(mut self, lines: &[String]) -> Self {
        let lines = lines.to_vec();
        self.sshd = Box::new(move |_| lines.clone());
        self
    }
    /// The same, made from the names of the users (a `Match User` block).
    pub fn sshd_lines_for(mut self, f: impl Fn(&[String]) -> Vec<String> + 'static) -> Self {
        self.sshd = Box::new(f);
        self
    }
    /// The module's `quiet` argument on the session line.
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }
    /// Makes user `member` a supplementary member of user `owner`'s
    /// user-private group. The owner must be user 0 and the member an extra
    /// user: extra users are deleted first, and userdel keeps a group that
    /// still has members.
    pub fn supplementary(mut self, member: usize, owner: usize) -> Self {
        assert!(member >= 1 && owner == 0, "member >= 1, owner == 0");
        self.supplementary.push((member, owner));
        self
    }

    pub fn start(self) -> World {
        let env = Env::builder()
            .daemon(false)
            .module(None)
            .sshd(false)
            .start();
        let bins = e2e::binaries();
        // Test users run it too (`ctl_as`, typed in their sessions).
        let ctl = env.runnable_by_users(&timeoutctl());
        let dir = env.dir().to_path_buf();
        let mut extra = Vec::new();
        for i in 1..self.users {
            let keys = dir.join(format!("keys{i}"));
            fs::create_dir(&keys).expect("creating key dir");
            extra.push(TestUser::create(&e2e::new_prefix(), &keys));
        }
        let name = |i: usize| -> String {
            if i == 0 {
                env.user.name().to_string()
            } else {
                extra[i - 1].name().to_string()
            }
        };
        for &(member, owner) in &self.supplementary {
            add_to_group(&name(member), &name(owner));
        }
        let socket = dir.join("timeoutd.sock");
        let state_dir = dir.join("state");
        e2e::daemon::private_dir(&state_dir).expect("creating state dir");
        let config = dir.join("policy.toml");
        let mut header = daemon_table(&socket, &env.syslog.path, &state_dir);
        header.push_str(&self.daemon_keys);
        let names: Vec<String> = (0..self.users).map(name).collect();
        let policy = (self.policy)(&names);
        fs::write(&config, format!("{header}{policy}")).expect("writing config");
        let log = dir.join("timeoutd.log");
        let daemon = Timeoutd::start_with_args(
            &bins.timeoutd,
            &config,
            &env,
            &log,
            &socket,
            &self.daemon_args,
        );
        let service = format!("sshd-{}", env.prefix);
        let mut session = module_line(&bins.module, &socket, FailMode::Open);
        if self.quiet {
            session.push_str(" quiet");
        }
        let mut lines = vec![session];
        if self.account_line {
            lines.push(format!(
                "account required {} socket={} fail=open timeout_ms=500",
                bins.module.display(),
                socket.display()
            ));
        }
        let pam = PamService::write(&service, &lines);
        // The harness writes `AllowUsers <allow_user>`: a space-separated list works.
        let sshd_lines = (self.sshd)(&names);
        let allowed: Vec<&String> = names.iter().chain(&self.allow_also).collect();
        let allowed: Vec<&str> = allowed.iter().map(|n| n.as_str()).collect();
        let sshd = Sshd::start_configured(&dir, &service, &allowed.join(" "), &[], &sshd_lines);
        World {
            sshd,
            daemon: Some(daemon),
            pam,
            extra,
            env,
            timeoutd: bins.timeoutd,
            ctl,
            socket,
            config,
            header,
            service,
            claimed: Mutex::new(HashSet::new()),
            daemon_args: self.daemon_args,
        }
    }
}

/// The `[daemon]` table every config of a world starts with.
fn daemon_table(socket: &Path, syslog: &Path, state_dir: &Path) -> String {
    format!(
        "# Written by the session-timeout e2e tests.\n{}\n",
        e2e::daemon::daemon_table(socket, syslog, state_dir, Some(&[]))
    )
}

/// A logged-in interactive session.
pub struct Login {
    pub ssh: SshSession,
    /// The daemon's session id, from `session_open`.
    pub id: String,
    pub open: LogLine,
}

/// One test's world; see the module documentation. Field order is drop order.
pub struct World {
    pub sshd: Sshd,
    pub daemon: Option<Timeoutd>,
    pub pam: PamService,
    pub extra: Vec<TestUser>,
    pub env: Env,
    pub timeoutd: PathBuf,
    pub ctl: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    header: String,
    pub service: String,
    /// Session ids already handed to a [`Login`].
    claimed: Mutex<HashSet<String>>,
    daemon_args: Vec<String>,
}

impl World {
    pub fn builder() -> WorldBuilder {
        WorldBuilder {
            users: 1,
            policy: Box::new(|_| String::new()),
            account_line: false,
            quiet: false,
            supplementary: Vec::new(),
            daemon_keys: String::new(),
            sshd: Box::new(|_| Vec::new()),
            allow_also: Vec::new(),
            daemon_args: Vec::new(),
        }
    }

    pub fn user(&self, i: usize) -> &TestUser {
        if i == 0 {
            &self.env.user
        } else {
            &self.extra[i - 1]
        }
    }

    pub fn name(&self, i: usize) -> &str {
        self.user(i).name()
    }

    /// `ssh -tt` as user `i`.
    pub fn ssh(&self, i: usize) -> SshSession {
        let u = self.user(i);
        SshSession::spawn(self.sshd.port, u.name(), &u.key)
    }

    /// Logs user `i` in, waits for the shell and for this login's
    /// `session_open`. Logins of one user must be made one after the other.
    pub fn login(&self, i: usize) -> Login {
        let ssh = self.ssh(i);
        self.expect_ready(&ssh);
        let name = self.name(i).to_string();
        // The module registers the session before sshd starts the shell, so
        // the shell answering means session_open was sent.
        let open = self
            .env
            .syslog
            .wait_line(EVENT, |l| {
                l.matches("session_open", &[("user", &name)])
                    && l.get("id")
                        .is_some_and(|id| !self.claimed.lock().unwrap().contains(id))
            })
            .unwrap_or_else(|| panic!("no new session_open for {name}\n{}", self.report(&[&ssh])));
        let id = open.get("id").expect("session_open has id=").to_string();
        self.claimed.lock().unwrap().insert(id.clone());
        Login { ssh, id, open }
    }

    pub fn expect_ready(&self, ssh: &SshSession) -> e2e::Ready {
        ssh.shell_ready(LOGIN)
            .unwrap_or_else(|e| panic!("shell not ready: {e}\n{}", self.report(&[ssh])))
    }

    /// `ssh user@127.0.0.1 CMD` as user `i`, without a pty, at LogLevel INFO
    /// so that a userauth banner (where sshd puts PAM account messages) is
    /// printed on stderr.
    pub fn ssh_command(&self, i: usize, cmd: &str) -> Run {
        let u = self.user(i);
        run_bounded(
            Command::new("ssh")
                .args(["-F", "/dev/null", "-T", "-i"])
                .arg(&u.key)
                .arg("-p")
                .arg(self.sshd.port.to_string())
                .args([
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "LogLevel=INFO",
                    "-o",
                    "IdentitiesOnly=yes",
                    "-o",
                    "ConnectTimeout=10",
                ])
                .arg(format!("{}@127.0.0.1", u.name()))
                .arg(cmd)
                .env_remove("SSH_AUTH_SOCK"),
            COMMAND,
        )
    }

    /// Asserts that `ssh user@host CMD` as user `i` runs a command.
    pub fn expect_login_works(&self, i: usize, when: &str) {
        let r = self.ssh_command(i, "echo st_$((6*7))_ok");
        assert!(
            r.ok() && r.stdout.contains("st_42_ok"),
            "{when}: login failed\n{}\n{}",
            r.describe(),
            self.report(&[])
        );
    }

    /// Asserts that `ssh user@host CMD` as user `i` is refused before any
    /// command runs, and that the client's stderr shows `told`.
    pub fn expect_login_refused(&self, i: usize, when: &str, told: &str) {
        let r = self.ssh_command(i, "echo st_$((6*7))_ok");
        assert!(
            !r.ok() && !r.stdout.contains("st_42_ok") && r.stderr.contains(told),
            "{when}: expected a refusal showing {told:?}\n{}\n{}",
            r.describe(),
            self.report(&[])
        );
    }

    /// `timeoutctl --socket SOCK ARGS...` as root.
    pub fn ctl(&self, args: &[&str]) -> Run {
        run_bounded(
            Command::new(&self.ctl)
                .arg("--socket")
                .arg(&self.socket)
                .args(args),
            COMMAND,
        )
    }

    /// The same as user `i` (its uid and primary gid, no supplementary groups).
    pub fn ctl_as(&self, i: usize, args: &[&str]) -> Run {
        let u = self.user(i);
        run_bounded(
            Command::new(&self.ctl)
                .arg("--socket")
                .arg(&self.socket)
                .args(args)
                .uid(u.uid())
                .gid(u.gid())
                .current_dir("/"),
            COMMAND,
        )
    }

    /// Root's timeoutctl, which must succeed; returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let r = self.ctl(args);
        assert!(r.ok(), "{}\n{}", r.describe(), self.report(&[]));
        r.stdout
    }

    /// Replaces the policy part of the config file (the `[daemon]` table stays).
    pub fn write_policy(&self, toml: &str) {
        fs::write(&self.config, format!("{}{toml}", self.header)).expect("writing config");
    }

    /// The `[daemon]` table's line count, to locate errors in a policy.
    pub fn header_lines(&self) -> usize {
        self.header.lines().count()
    }

    pub fn daemon(&mut self) -> &mut Timeoutd {
        self.daemon.as_mut().expect("the daemon is not running")
    }

    /// Sends SIGHUP; returns the instant just before, so that every line the
    /// daemon logs in answer arrived after it.
    pub fn sighup(&mut self) -> Instant {
        let since = Instant::now();
        self.daemon().signal(libc::SIGHUP);
        since
    }

    /// Stops the daemon with SIGTERM by pid; asserts it exits and logs `daemon_stop`.
    pub fn stop_daemon(&mut self) {
        let d = self.daemon.take().expect("the daemon is not running");
        let since = Instant::now();
        let st = d.stop();
        assert!(
            st.is_some(),
            "timeoutd did not exit within 10 s of SIGTERM\n{}",
            self.report(&[])
        );
        self.expect_line(&format!("daemon_stop after {since:?}"), |l| {
            l.at >= since && l.event() == Some("daemon_stop")
        });
    }

    /// Replaces the extra `timeoutd` arguments for the next start.
    pub fn set_daemon_args(&mut self, args: &[String]) {
        self.daemon_args = args.to_vec();
    }

    /// Starts the daemon again with the same config and state_dir.
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "the daemon is running");
        let log = self.env.dir().join("timeoutd-2.log");
        let d = Timeoutd::start_with_args(
            &self.timeoutd,
            &self.config,
            &self.env,
            &log,
            &self.socket,
            &self.daemon_args,
        );
        self.daemon = Some(d);
    }

    /// Waits for a syslog line; panics with the report if none comes.
    pub fn expect_line(&self, what: &str, pred: impl Fn(&LogLine) -> bool) -> LogLine {
        self.env.syslog.wait_line(EVENT, pred).unwrap_or_else(|| {
            panic!(
                "no syslog line {what} within {EVENT:?}\n{}",
                self.report(&[])
            )
        })
    }

    pub fn expect_event(&self, event: &str, filters: &[(&str, &str)]) -> LogLine {
        self.expect_line(&format!("event={event} {filters:?}"), |l| {
            l.matches(event, filters)
        })
    }

    /// Waits for an event that arrived at or after `since`.
    pub fn expect_event_since(
        &self,
        since: Instant,
        event: &str,
        filters: &[(&str, &str)],
    ) -> LogLine {
        self.expect_line(&format!("event={event} {filters:?} since {since:?}"), |l| {
            l.at >= since && l.matches(event, filters)
        })
    }

    /// Waits (bounded) for ssh to exit; panics with the report if it does not.
    pub fn expect_exit(&self, ssh: &SshSession, bound: Duration) -> e2e::Exit {
        ssh.wait_for_exit(bound)
            .unwrap_or_else(|| panic!("ssh did not exit within {bound:?}\n{}", self.report(&[ssh])))
    }

    /// Everything useful in a failure message.
    pub fn report(&self, ssh: &[&SshSession]) -> String {
        let mut r = String::new();
        for s in ssh {
            r.push_str(&s.describe());
            r.push('\n');
        }
        r.push_str(&self.env.report(None));
        if let Some(d) = &self.daemon {
            r.push_str(&format!(
                "--- timeoutd output ---\n{}\n",
                file_tail(&d.log, 6000)
            ));
        }
        r.push_str(&format!(
            "--- config {} ---\n{}\n--- sshd log ---\n{}\n--- end of {} ---\n{}\n",
            self.config.display(),
            fs::read_to_string(&self.config).unwrap_or_default(),
            file_tail(&self.sshd.log, 6000),
            self.pam.path.display(),
            self.pam
                .contents()
                .lines()
                .rev()
                .take(2)
                .collect::<Vec<_>>()
                .join("\n")
        ));
        r
    }
}
