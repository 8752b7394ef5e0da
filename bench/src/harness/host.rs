//! The host for the run: a temporary directory, a throwaway user, enough
//! descriptors and ptys; and putting everything back afterwards, also on
//! Ctrl-C.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::sys;
use crate::util::{random_hex, wait_until};

const PTY_MAX: &str = "/proc/sys/kernel/pty/max";
const PTY_NR: &str = "/proc/sys/kernel/pty/nr";
const PTY_RESERVE: &str = "/proc/sys/kernel/pty/reserve";

/// What must be undone, whatever happens.
#[derive(Debug, Default)]
struct Undo {
    tmp: Option<PathBuf>,
    keep_tmp: bool,
    user: Option<String>,
    pty_max: Option<u64>,
    daemons: Vec<u32>,
    /// Login users of the peers' phase (with a home), and files it put
    /// under /etc (its PAM service).
    login_users: Vec<String>,
    etc_files: Vec<PathBuf>,
}

static UNDO: Mutex<Undo> = Mutex::new(Undo {
    tmp: None,
    keep_tmp: false,
    user: None,
    pty_max: None,
    daemons: Vec::new(),
    login_users: Vec::new(),
    etc_files: Vec::new(),
});

fn undo() -> std::sync::MutexGuard<'static, Undo> {
    UNDO.lock().unwrap_or_else(|e| e.into_inner())
}

/// The run's user and directory.
#[derive(Debug, Clone)]
pub struct Host {
    pub tmp: PathBuf,
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

fn read_u64(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Host {
    pub fn setup(max_sessions: usize, keep_tmp: bool) -> Result<Host, String> {
        let tag = random_hex(8);
        let tmp = PathBuf::from(format!("/tmp/stb-{tag}"));
        fs::create_dir(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        {
            let mut u = undo();
            u.tmp = Some(tmp.clone());
            u.keep_tmp = keep_tmp;
        }
        // A pty master per leader, a pidfd per watched leader, and slack.
        let want = (2 * max_sessions as u64 + 4096).max(65_536);
        let got = sys::raise_nofile(want).map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
        let need = max_sessions as u64 + 2048;
        if got < need {
            return Err(format!(
                "RLIMIT_NOFILE is {got}, {need} are needed for {max_sessions} sessions (ulimit -Hn)"
            ));
        }
        let user = format!("stb{tag}");
        create_user(&user)?;
        undo().user = Some(user.clone());
        let (uid, gid) = passwd_ids(&user).ok_or(format!("{user} is not in /etc/passwd"))?;
        Ok(Host {
            tmp,
            user,
            uid,
            gid,
        })
    }

    /// Raises kernel.pty.max so that `n` more ptys can be opened (restored at the end).
    pub fn ensure_ptys(&self, n: usize) -> Result<(), String> {
        let max = read_u64(PTY_MAX).ok_or("cannot read kernel.pty.max")?;
        let nr = read_u64(PTY_NR).unwrap_or(0);
        let reserve = read_u64(PTY_RESERVE).unwrap_or(0);
        let need = nr + n as u64 + reserve + 512;
        if max >= need {
            return Ok(());
        }
        {
            let mut u = undo();
            if u.pty_max.is_none() {
                u.pty_max = Some(max);
            }
        }
        fs::write(PTY_MAX, format!("{need}\n"))
            .map_err(|e| format!("raising kernel.pty.max from {max} to {need}: {e}"))?;
        eprintln!("st-bench: kernel.pty.max raised from {max} to {need} for the run");
        Ok(())
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.tmp.join(name);
        let _ = fs::create_dir_all(&d);
        d
    }
}

/// A daemon to SIGKILL if the run is interrupted.
pub fn track_daemon(pid: u32, on: bool) {
    let mut u = undo();
    u.daemons.retain(|p| *p != pid);
    if on {
        u.daemons.push(pid);
    }
}

/// Creates a login user (home, /bin/sh) that `restore` removes, or removes
/// it now (`on == false`).
pub fn login_user(user: &str, on: bool) -> Result<(), String> {
    if !on {
        undo().login_users.retain(|u| u != user);
        return account_command("userdel", &["--remove", user]);
    }
    account_command(
        "useradd",
        &[
            "--create-home",
            "--user-group",
            "--shell",
            "/bin/sh",
            "--comment",
            "st-bench peers login user",
            user,
        ],
    )?;
    undo().login_users.push(user.to_owned());
    Ok(())
}

/// A file under /etc that `restore` removes; `on == false` removes it now.
pub fn etc_file(path: &Path, text: Option<&str>) -> Result<(), String> {
    match text {
        Some(t) => {
            fs::write(path, t).map_err(|e| format!("{}: {e}", path.display()))?;
            undo().etc_files.push(path.to_path_buf());
        }
        None => {
            undo().etc_files.retain(|p| p != path);
            let _ = fs::remove_file(path);
        }
    }
    Ok(())
}

/// Puts the host back: stops tracked daemons, restores kernel.pty.max,
/// removes the user and the temporary directory. Safe to call twice.
pub fn restore() {
    let mut u = undo();
    for pid in u.daemons.drain(..) {
        let _ = sys::kill_child(pid, libc::SIGKILL);
    }
    if let Some(max) = u.pty_max.take() {
        match fs::write(PTY_MAX, format!("{max}\n")) {
            Ok(()) => eprintln!("st-bench: kernel.pty.max restored to {max}"),
            Err(e) => eprintln!("st-bench: restoring kernel.pty.max to {max}: {e}"),
        }
    }
    if let Some(user) = u.user.take() {
        delete_user(&user);
    }
    for f in u.etc_files.drain(..) {
        let _ = fs::remove_file(&f);
    }
    for user in u.login_users.drain(..) {
        match account_command("userdel", &["--remove", &user]) {
            Ok(()) => eprintln!("st-bench: removed user {user}"),
            Err(e) => eprintln!("st-bench: could not remove user {user}: {e}"),
        }
    }
    if let Some(tmp) = u.tmp.take() {
        if u.keep_tmp {
            eprintln!("st-bench: kept {}", tmp.display());
        } else if let Err(e) = fs::remove_dir_all(&tmp) {
            eprintln!("st-bench: removing {}: {e}", tmp.display());
        }
    }
}

/// Runs `f` on SIGINT, SIGTERM or SIGHUP, then exits. Must be called before
/// any other thread starts, so that every thread blocks these signals.
pub fn on_interrupt(f: fn()) -> Result<(), String> {
    let sigs = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
    let fd = sys::signalfd_for(&sigs).map_err(|e| format!("signalfd: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            use std::os::fd::AsRawFd;
            if let Ok((sig, _)) = sys::read_signal(fd.as_raw_fd()) {
                eprintln!("st-bench: interrupted by signal {sig}; cleaning up");
                f();
                std::process::exit(128 + sig as i32);
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// useradd and userdel may find the account files locked by someone else
/// (the e2e tests create users too): retry for a while.
fn account_command(program: &str, args: &[&str]) -> Result<(), String> {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(15), Duration::from_millis(250), || {
        match Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => true,
            Ok(out) => {
                last = format!(
                    "{program} {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                // Only a lock is worth waiting for.
                !last.to_lowercase().contains("lock") && !matches!(out.status.code(), Some(1 | 10))
            }
            Err(e) => {
                last = format!("{program}: {e}");
                true
            }
        }
    });
    if ok && last.is_empty() {
        Ok(())
    } else {
        Err(if last.is_empty() {
            format!("{program} timed out")
        } else {
            last
        })
    }
}

fn create_user(user: &str) -> Result<(), String> {
    account_command(
        "useradd",
        &[
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "st-bench throwaway user",
            user,
        ],
    )
}

fn delete_user(user: &str) {
    match account_command("userdel", &[user]) {
        Ok(()) => eprintln!("st-bench: removed user {user}"),
        Err(e) => eprintln!("st-bench: could not remove user {user}: {e}"),
    }
}

pub fn passwd_ids(user: &str) -> Option<(u32, u32)> {
    let text = fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == user).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// The first existing path among `candidates`.
pub fn first_existing(candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .map(Path::to_path_buf)
}
