//! One test's world: temp dir, syslog socket, user, daemon, PAM file, sshd.
//!
//! Field order is drop order: sshd (and its session processes) first, then the
//! daemon, the PAM file, the user (its processes are killed, then userdel),
//! the daemon's empty cgroup subtree, the syslog socket and finally the temp dir.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::daemon::{self, ConfigExtra, Daemon, Limits};
use crate::machine::cgroup::BaseGuard;
use crate::machine::sweep;
use crate::machine::users::TestUser;
use crate::pam::{module_line, overlay_text, FailMode, PamService};
use crate::ssh_client::{Exit, Ready, Seen, SshOpts, SshSession};
use crate::sshd::Sshd;
use crate::syslog::{SinkOptions, SyslogSink};
use crate::util::file_tail;
use crate::LogLine;
use crate::{binaries, new_prefix, require_environment};

/// `/tmp/<prefix>`, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn create(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(prefix);
        fs::create_dir(&p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
        // 0755: a process running as the test user must reach the daemon socket.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            eprintln!("e2e cleanup: removing {}: {e}", self.0.display());
        }
    }
}

/// What a test wants running.
#[derive(Debug, Clone)]
pub struct EnvBuilder {
    limits: Limits,
    daemon: bool,
    module: Option<FailMode>,
    sshd: bool,
    extra_pam: Vec<String>,
    config: ConfigExtra,
    overlays: Vec<String>,
    /// Whole PAM files bound over `/etc/pam.d/<service>` in sshd's namespace.
    replaced: Vec<(String, String)>,
}

impl Default for EnvBuilder {
    fn default() -> Self {
        EnvBuilder {
            limits: daemon::short_limits(),
            daemon: true,
            module: Some(FailMode::Open),
            sshd: true,
            extra_pam: Vec::new(),
            config: ConfigExtra::default(),
            overlays: Vec::new(),
            replaced: Vec::new(),
        }
    }
}

impl EnvBuilder {
    pub fn idle(mut self, v: &str) -> Self {
        self.limits.idle = v.into();
        self
    }
    pub fn max(mut self, v: &str) -> Self {
        self.limits.max = v.into();
        self
    }
    pub fn warn(mut self, v: &[&str]) -> Self {
        self.limits.warn = v.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn grace(mut self, v: &str) -> Self {
        self.limits.grace = v.into();
        self
    }
    /// Start the daemon (default) or leave its socket path pointing nowhere.
    pub fn daemon(mut self, on: bool) -> Self {
        self.daemon = on;
        self
    }
    /// Our module's line in the PAM stack, with this fail mode; `None` for a
    /// plain copy of Debian's sshd stack.
    pub fn module(mut self, fail: Option<FailMode>) -> Self {
        self.module = fail;
        self
    }
    /// Run sshd (default) or not (tests that only talk to the daemon).
    pub fn sshd(mut self, on: bool) -> Self {
        self.sshd = on;
        self
    }
    /// More lines for the end of the PAM stack.
    pub fn pam_line(mut self, line: &str) -> Self {
        self.extra_pam.push(line.to_string());
        self
    }

    /// One more `key = value` line for the daemon's `[defaults]`.
    pub fn defaults_toml(mut self, line: &str) -> Self {
        self.config.defaults.push(line.to_string());
        self
    }
    /// A whole `[[rule]]` table, verbatim, after `[defaults]`.
    pub fn rule_toml(mut self, table: &str) -> Self {
        self.config.rules.push(table.to_string());
        self
    }
    /// Inside the logins of this test's sshd (only there: a private mount
    /// namespace), `/etc/pam.d/<service>` is the host's stack plus our
    /// module's line. For `su` and the like, whose service name is fixed.
    pub fn pam_overlay(mut self, service: &str) -> Self {
        self.overlays.push(service.to_string());
        self
    }

    /// Inside the logins of this test's sshd (a private mount namespace
    /// only), `/etc/pam.d/<service>` is exactly `text` (e.g. a `su` stack
    /// that lets the test user become root without a password).
    pub fn pam_replace(mut self, service: &str, text: &str) -> Self {
        self.replaced.push((service.to_string(), text.to_string()));
        self
    }

    pub fn start(self) -> Env {
        require_environment();
        sweep::sweep_once();
        let bins = (self.daemon || self.module.is_some()).then(binaries);
        let prefix = new_prefix();
        let dir = TempDir::create(&prefix);
        let sink_path = dir.0.join("syslog.sock");
        let syslog = SyslogSink::start(&sink_path, SinkOptions::default())
            .unwrap_or_else(|e| panic!("binding syslog socket {}: {e}", sink_path.display()));
        let user = TestUser::create(&prefix, &dir.0);
        let socket = if self.daemon {
            dir.0.join("timeoutd.sock")
        } else {
            // Nothing will ever listen here.
            dir.0.join("no-daemon-here.sock")
        };
        let daemon = self.daemon.then(|| {
            let b = bins.as_ref().expect("binaries");
            daemon::start(
                &b.timeoutd,
                &dir.0,
                &socket,
                &syslog,
                &self.limits,
                &self.config,
            )
        });
        let service = format!("sshd-{prefix}");
        let pam = self.sshd.then(|| {
            let mut lines = Vec::new();
            if let Some(fail) = self.module {
                lines.push(module_line(
                    &bins.as_ref().expect("binaries").module,
                    &socket,
                    fail,
                ));
            }
            lines.extend(self.extra_pam.iter().cloned());
            PamService::write(&service, &lines)
        });
        let mut binds: Vec<(PathBuf, PathBuf)> = self
            .overlays
            .iter()
            .map(|svc| {
                let b = bins.as_ref().expect("an overlay needs the module");
                let line = module_line(&b.module, &socket, self.module.unwrap_or(FailMode::Open));
                let src = dir.0.join(format!("pam-overlay-{svc}"));
                fs::write(&src, overlay_text(svc, &[line]))
                    .unwrap_or_else(|e| panic!("writing {}: {e}", src.display()));
                (src, PathBuf::from("/etc/pam.d").join(svc))
            })
            .collect();
        for (svc, text) in &self.replaced {
            let src = dir.0.join(format!("pam-replaced-{svc}"));
            fs::write(&src, text).unwrap_or_else(|e| panic!("writing {}: {e}", src.display()));
            binds.push((src, PathBuf::from("/etc/pam.d").join(svc)));
        }
        let sshd = self
            .sshd
            .then(|| Sshd::start_with(&dir.0, &service, user.name(), &binds));
        Env {
            prefix,
            limits: self.limits,
            socket,
            sshd,
            daemon,
            pam,
            user,
            cgroup: BaseGuard(dir.0.join("state")),
            syslog,
            dir,
        }
    }
}

/// A running test world. Declared field order is drop order.
#[derive(Debug)]
pub struct Env {
    pub prefix: String,
    pub limits: Limits,
    /// The daemon socket path given to the daemon and the module.
    pub socket: PathBuf,
    pub sshd: Option<Sshd>,
    pub daemon: Option<Daemon>,
    pub pam: Option<PamService>,
    pub user: TestUser,
    /// The subtree of the daemons keeping their state in `<dir>/state`
    /// (every daemon [`daemon::start`] starts for this test), even when a
    /// test fails or kills its daemon.
    pub cgroup: BaseGuard,
    pub syslog: SyslogSink,
    pub dir: TempDir,
}

impl Env {
    pub fn builder() -> EnvBuilder {
        EnvBuilder::default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// Starts this test's daemon (built with `.daemon(false)`) where it sees
    /// no writable cgroup2 (`machine::cgroup::without_cgroups`), with an
    /// idle limit of `idle` and `grace`, and waits for its `cgroup_v2`
    /// posture warning. Returns the wrapper, which also runs `--posture`.
    pub fn start_daemon_without_cgroups(&mut self, idle: &str, grace: &str) -> PathBuf {
        let wrapper =
            crate::machine::cgroup::without_cgroups(self.dir(), &crate::binaries().timeoutd);
        let limits = crate::Limits {
            grace: grace.into(),
            ..crate::Limits::new(idle, "off", &[])
        };
        let daemon = crate::daemon::start(
            &wrapper,
            self.dir(),
            &self.socket,
            &self.syslog,
            &limits,
            &crate::ConfigExtra::default(),
        );
        self.daemon = Some(daemon);
        self.expect_event(
            "posture_warning",
            &[("check", "cgroup_v2")],
            crate::login::EVENT,
            None,
        );
        wrapper
    }

    /// A copy of `binary` that the test users can run: `<dir>/bin/NAME`,
    /// mode 0755 in 0755 directories, removed with the test's directory.
    /// The build directory may not be theirs to reach (a clone in /root,
    /// mode 0700), so a test never runs it there as a test user.
    pub fn runnable_by_users(&self, binary: &Path) -> PathBuf {
        let bin = self.dir().join("bin");
        if !bin.exists() {
            fs::create_dir(&bin).unwrap_or_else(|e| panic!("creating {}: {e}", bin.display()));
            fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod bin dir");
        }
        let name = binary.file_name().expect("a binary has a file name");
        let copy = bin.join(name);
        fs::copy(binary, &copy)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", binary.display(), copy.display()));
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod the copy");
        copy
    }

    /// Starts `ssh -tt user@127.0.0.1` to this test's sshd.
    pub fn ssh(&self) -> SshSession {
        let sshd = self.sshd.as_ref().expect("this Env has no sshd");
        SshSession::spawn(sshd.port, self.user.name(), &self.user.key)
    }

    /// `ssh` to this test's sshd as the test user, as `opts` says.
    pub fn ssh_with(&self, opts: &SshOpts) -> SshSession {
        let sshd = self.sshd.as_ref().expect("this Env has no sshd");
        SshSession::spawn_opts(sshd.port, self.user.name(), &self.user.key, opts)
    }

    /// Another user, `useradd`ed like the first (its key in this test's dir).
    /// The caller keeps the guard; dropping it kills the user's processes
    /// and deletes it. Declare it after the `Env` so it drops first.
    pub fn second_user(&self) -> TestUser {
        let name = new_prefix();
        let key = self.dir().join(format!("{name}_ed25519"));
        TestUser::create_keyed(&name, &key)
    }

    /// Everything useful for a failure message.
    pub fn report(&self, ssh: Option<&SshSession>) -> String {
        let mut r = String::new();
        if let Some(s) = ssh {
            r.push_str(&s.describe());
            r.push('\n');
        }
        r.push_str(&format!(
            "--- syslog ({}) ---\n{}",
            self.syslog.path.display(),
            self.syslog.dump()
        ));
        if let Some(d) = &self.daemon {
            r.push_str(&format!("--- timeoutd output ---\n{}\n", d.output(8000)));
        }
        if let Some(s) = &self.sshd {
            r.push_str(&format!("--- sshd log ---\n{}\n", file_tail(&s.log, 6000)));
        }
        if let Some(p) = &self.pam {
            let ours: Vec<String> = p
                .contents()
                .lines()
                .rev()
                .take(3)
                .map(str::to_string)
                .collect();
            r.push_str(&format!(
                "--- end of {} ---\n{}\n",
                p.path.display(),
                ours.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        r
    }

    /// Probes the shell; panics with the full report if it is not ready.
    pub fn expect_ready(&self, ssh: &SshSession, timeout: Duration) -> Ready {
        ssh.shell_ready(timeout)
            .unwrap_or_else(|e| panic!("shell not ready: {e}\n{}", self.report(Some(ssh))))
    }

    pub fn expect_output(
        &self,
        ssh: &SshSession,
        needle: &str,
        from: usize,
        timeout: Duration,
    ) -> Seen {
        ssh.wait_output_from(needle, from, timeout)
            .unwrap_or_else(|| {
                panic!(
                    "{needle:?} did not appear on the terminal within {timeout:?}\n{}",
                    self.report(Some(ssh))
                )
            })
    }

    pub fn expect_exit(&self, ssh: &SshSession, timeout: Duration) -> Exit {
        ssh.wait_for_exit(timeout).unwrap_or_else(|| {
            panic!(
                "ssh did not exit within {timeout:?}\n{}",
                self.report(Some(ssh))
            )
        })
    }

    pub fn expect_event(
        &self,
        event: &str,
        filters: &[(&str, &str)],
        timeout: Duration,
        ssh: Option<&SshSession>,
    ) -> LogLine {
        self.syslog
            .wait_event(event, filters, timeout)
            .unwrap_or_else(|| {
                panic!(
                    "no syslog line event={event} {filters:?} within {timeout:?}\n{}",
                    self.report(ssh)
                )
            })
    }

    /// Waits for this user's `session_open` and returns the session id.
    pub fn expect_session_open(&self, timeout: Duration, ssh: Option<&SshSession>) -> LogLine {
        let l = self.expect_event("session_open", &[("user", self.user.name())], timeout, ssh);
        assert!(l.get("id").is_some(), "session_open without id=: {}", l.raw);
        l
    }
}

impl Drop for Env {
    /// With `E2E_REPORT=1`, every test prints its syslog, daemon output and
    /// sshd log when it ends (pass or fail); use with `-- --nocapture`.
    fn drop(&mut self) {
        if std::env::var_os("E2E_REPORT").is_some_and(|v| !v.is_empty() && v != "0") {
            eprintln!(
                "===== e2e report for {} =====\n{}",
                self.prefix,
                self.report(None)
            );
        }
    }
}
