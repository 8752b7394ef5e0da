//! A real OpenSSH sshd on 127.0.0.1, with its own host key, config and PAM
//! service name (through a `sshd-<prefix>` symlink).

use std::ffi::CString;
use std::fs::{self, File};
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::procs;
use crate::util::{file_tail, poll_until, run_ok, terminate_child};

pub const SSHD: &str = "/usr/sbin/sshd";

/// How long sshd may take to start listening.
const START_BOUND: Duration = Duration::from_secs(15);
/// How many times to retry when another process grabbed our port first.
const PORT_ATTEMPTS: usize = 5;

/// A running sshd. Dropping it stops it and everything it forked.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub service: String,
    pub log: PathBuf,
    pub config: PathBuf,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn ensure_privsep_dir() {
    let dir = Path::new("/run/sshd");
    if !dir.exists() {
        // Another test may be creating it at the same moment: ignore AlreadyExists.
        let _ = fs::create_dir_all(dir);
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod 0755 /run/sshd");
}

impl Sshd {
    /// Starts sshd as `DIR/sshd-<prefix>` so that PAM uses `/etc/pam.d/<service>`,
    /// letting only `allow_user` in. Waits until it accepts connections.
    pub fn start(dir: &Path, service: &str, allow_user: &str) -> Sshd {
        Sshd::start_with(dir, service, allow_user, &[])
    }

    /// Like [`start`](Self::start), but sshd (and so every login through it)
    /// runs in a private mount namespace where each `(source, target)` file
    /// of `binds` is bind-mounted over `target`. The host's files are not
    /// touched; the namespace ends with the last process in it. Lets a test
    /// give programs run inside a login (e.g. `su`, whose PAM service name
    /// is fixed) a PAM stack of its own.
    pub fn start_with(
        dir: &Path,
        service: &str,
        allow_user: &str,
        binds: &[(PathBuf, PathBuf)],
    ) -> Sshd {
        Sshd::start_configured(dir, service, allow_user, binds, &[])
    }

    /// Like [`start_with`](Self::start_with), with `extra` lines appended to
    /// sshd_config (e.g. `TrustedUserCAKeys PATH`, a `Match` block).
    pub fn start_configured(
        dir: &Path,
        service: &str,
        allow_user: &str,
        binds: &[(PathBuf, PathBuf)],
        extra: &[String],
    ) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server"
        );
        ensure_privsep_dir();
        let host_key = dir.join("ssh_host_ed25519_key");
        if !host_key.exists() {
            run_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(&host_key),
            );
        }
        let link = dir.join(service);
        if !link.exists() {
            symlink(SSHD, &link).expect("symlinking sshd");
        }
        let mut last_log = String::new();
        for attempt in 0..PORT_ATTEMPTS {
            let port = free_port();
            let config = dir.join("sshd_config");
            let log = dir.join(format!("sshd-{attempt}.log"));
            let text = sshd_config(dir, port, &host_key, allow_user) + &extra.join("\n") + "\n";
            fs::write(&config, text).expect("writing sshd_config");
            let log_file = File::create(&log).expect("creating sshd log");
            let mut cmd = Command::new(&link);
            cmd.arg("-D")
                .arg("-E")
                .arg(&log)
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("dup log"))
                .stderr(log_file);
            if !binds.is_empty() {
                private_mounts(&mut cmd, binds);
            }
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", link.display()));
            let mut sshd = Sshd {
                child,
                port,
                service: service.to_string(),
                log,
                config,
            };
            match sshd.wait_listening() {
                Ok(()) => return sshd,
                Err(e) => {
                    last_log = format!("{e}\n--- sshd log ---\n{}", file_tail(&sshd.log, 4000));
                    // Drop stops it; try another port if someone else took this one.
                    if !(last_log.contains("Address already in use")
                        || last_log.contains("Cannot bind"))
                    {
                        break;
                    }
                }
            }
        }
        panic!("sshd did not start: {last_log}");
    }

    /// Waits until our sshd says it listens on our port and a connect succeeds.
    /// The log line proves the listener is ours and not a process that took
    /// the port between our probe bind and sshd's bind.
    fn wait_listening(&mut self) -> Result<(), String> {
        let needle = format!("Server listening on 127.0.0.1 port {}", self.port);
        let ok = poll_until(START_BOUND, Duration::from_millis(25), || {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(Err(format!("sshd exited early: {st}")));
            }
            let logged = fs::read_to_string(&self.log).is_ok_and(|l| l.contains(&needle));
            (logged && TcpStream::connect(("127.0.0.1", self.port)).is_ok()).then_some(Ok(()))
        });
        ok.unwrap_or_else(|| {
            Err(format!(
                "sshd did not listen on port {} within {START_BOUND:?}",
                self.port
            ))
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The sshd log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Makes `cmd` start in a new mount namespace (propagation private, so
/// nothing leaks back to the host) with `binds` mounted.
fn private_mounts(cmd: &mut Command, binds: &[(PathBuf, PathBuf)]) {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).expect("path without NUL");
    let pairs: Vec<(CString, CString)> = binds
        .iter()
        .map(|(src, dst)| {
            assert!(
                src.exists() && dst.exists(),
                "bind {} over {}: both must exist",
                src.display(),
                dst.display()
            );
            (c(src), c(dst))
        })
        .collect();
    let root = c(Path::new("/"));
    // SAFETY: the closure runs in the forked child before exec and only makes
    // raw syscalls (unshare, mount) on CStrings prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let none: *const libc::c_char = std::ptr::null();
            let no_data: *const libc::c_void = std::ptr::null();
            let flags = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(none, root.as_ptr(), none, flags, no_data) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for (src, dst) in &pairs {
                if libc::mount(src.as_ptr(), dst.as_ptr(), none, libc::MS_BIND, no_data) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

fn sshd_config(dir: &Path, port: u16, host_key: &Path, allow_user: &str) -> String {
    format!(
        "# Written by the session-timeout e2e tests.\n\
         Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {hk}\n\
         PidFile {pid}\n\
         UsePAM yes\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin no\n\
         AllowUsers {allow_user}\n\
         AuthorizedKeysFile .ssh/authorized_keys\n\
         StrictModes yes\n\
         LogLevel VERBOSE\n\
         UseDNS no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         X11Forwarding no\n\
         LoginGraceTime 30\n",
        hk = host_key.display(),
        pid = dir.join("sshd.pid").display(),
    )
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Session processes (`sshd: user [priv]`, running as root) are children
        // of the listener: stop them too, they are ours.
        let kids: Vec<procs::ProcInfo> = procs::descendants(self.pid())
            .into_iter()
            .filter_map(procs::stat)
            .collect();
        if terminate_child(&mut self.child, Duration::from_secs(5)).is_none() {
            eprintln!("e2e cleanup: sshd {} did not exit", self.pid());
        }
        let still_running = |k: &procs::ProcInfo| {
            procs::stat(k.pid).is_some_and(|s| s.start_time == k.start_time && s.state != 'Z')
        };
        let gone = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
            let left: Vec<&procs::ProcInfo> = kids.iter().filter(|k| still_running(k)).collect();
            for k in &left {
                procs::signal_checked(k, libc::SIGKILL);
            }
            left.is_empty().then_some(())
        });
        if gone.is_none() {
            eprintln!("e2e cleanup: some sshd session processes survived SIGKILL");
        }
    }
}
