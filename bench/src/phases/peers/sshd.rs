//! The peers' login path: a throwaway login user with a key, and a private
//! OpenSSH sshd on 127.0.0.1 (a free port, its own host key, config and PAM
//! service under a unique name, removed afterwards).

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::host;
use crate::util::wait_until;

pub const SSHD: &str = "/usr/sbin/sshd";

/// The login user and the client key.
pub struct Login {
    pub user: String,
    pub uid: u32,
    pub key: PathBuf,
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Login {
    /// Creates `user` (removed by `drop_user` or at the end of the run) with
    /// `dir/key` in its authorized_keys.
    pub fn create(user: &str, dir: &Path) -> Result<Login, String> {
        host::login_user(user, true)?;
        let (uid, gid) = host::passwd_ids(user).ok_or("the new user is not in /etc/passwd")?;
        let key = dir.join("id_ed25519");
        let k = key.display().to_string();
        run("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", &k])?;
        let ssh_dir = PathBuf::from(format!("/home/{user}/.ssh"));
        fs::create_dir_all(&ssh_dir).map_err(|e| e.to_string())?;
        let pubkey = fs::read_to_string(format!("{k}.pub")).map_err(|e| e.to_string())?;
        let auth = ssh_dir.join("authorized_keys");
        fs::write(&auth, pubkey).map_err(|e| e.to_string())?;
        for p in [&ssh_dir, &auth] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        fs::set_permissions(&ssh_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        Ok(Login {
            user: user.to_owned(),
            uid,
            key,
        })
    }

    pub fn remove(&self) {
        if let Err(e) = host::login_user(&self.user, false) {
            eprintln!("st-bench: peers: removing {}: {e}", self.user);
        }
    }
}

/// A running sshd; `stop` ends it (by pid).
pub struct Sshd {
    child: Child,
    pub port: u16,
    pam_file: PathBuf,
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

impl Sshd {
    /// Starts `sshd -D` as `dir/<service>` (so PAM reads
    /// /etc/pam.d/<service>, written from `pam`), letting only `user` in,
    /// with `extra` config lines. Waits until it listens.
    pub fn start(
        dir: &Path,
        service: &str,
        pam: &str,
        user: &str,
        extra: &[&str],
    ) -> Result<Sshd, String> {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        let hostkey = dir.join("host_key");
        if !hostkey.exists() {
            let h = hostkey.display().to_string();
            run("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", &h])?;
        }
        let port = free_port()?;
        let config = dir.join("sshd_config");
        let mut text = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nUsePAM yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             AllowUsers {user}\nStrictModes no\nPrintMotd no\nPrintLastLog no\nUseDNS no\n\
             LogLevel INFO\n",
            hostkey.display()
        );
        for l in extra {
            text.push_str(l);
            text.push('\n');
        }
        fs::write(&config, text).map_err(|e| e.to_string())?;
        let pam_file = PathBuf::from("/etc/pam.d").join(service);
        host::etc_file(&pam_file, Some(pam))?;
        let argv0 = dir.join(service);
        let _ = fs::remove_file(&argv0);
        symlink(SSHD, &argv0).map_err(|e| e.to_string())?;
        let log = dir.join("sshd.log");
        let mut cmd = Command::new(&argv0);
        crate::sys::unblocked_signals(&mut cmd);
        let child = cmd
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("{SSHD}: {e}"))?;
        host::track_daemon(child.id(), true);
        let mut sshd = Sshd {
            child,
            port,
            pam_file,
        };
        let up = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up {
            let tail = fs::read_to_string(&log).unwrap_or_default();
            sshd.stop();
            return Err(format!("sshd did not listen on {port}: {}", tail.trim()));
        }
        Ok(sshd)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&mut self) {
        let pid = self.child.id();
        // Our own child, not yet reaped: the pid is still ours.
        let _ = crate::sys::kill_child(pid, libc::SIGTERM);
        let _ = self.child.wait();
        host::track_daemon(pid, false);
        let _ = host::etc_file(&self.pam_file, None);
    }
}
