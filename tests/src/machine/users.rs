//! Test users: created with `useradd -m`, given an ed25519 key, removed on drop.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::procs;
use crate::util::{poll_until, run, run_ok};

/// useradd and userdel lock /etc/passwd and /etc/shadow; two of them running
/// at once from our parallel tests would fail each other. Serialize them.
static ACCOUNTS_LOCK: Mutex<()> = Mutex::new(());

/// Exit codes of useradd/userdel that mean "the account files are locked or
/// busy right now" (another process outside ours is editing them).
const LOCK_EXIT_CODES: &[i32] = &[1, 10];

fn account_command(program: &str, args: &[&str]) -> std::process::Output {
    let _guard = ACCOUNTS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = None;
    // Retry briefly on lock errors caused by processes we do not control.
    poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let out = run(Command::new(program).args(args));
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        let locked = out
            .status
            .code()
            .is_some_and(|c| LOCK_EXIT_CODES.contains(&c))
            && stderr.contains("lock");
        if locked {
            last = Some(out);
            None
        } else {
            Some(out)
        }
    })
    .or(last)
    .expect("account command produced no output")
}

/// A passwd entry.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Looks `name` up in /etc/passwd.
pub fn lookup(name: &str) -> Option<Account> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || f[0] != name {
            return None;
        }
        Some(Account {
            name: name.to_string(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: PathBuf::from(f[5]),
        })
    })
}

/// Every user name in /etc/passwd.
pub fn all_names() -> Vec<String> {
    fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(':').next().map(str::to_string))
        .collect()
}

/// Kills every process of `uid`, then `userdel -r -f`s `name`. Used by the
/// guard and by the start-up sweep. Problems are reported, not fatal.
pub fn remove_user(name: &str, uid: u32) {
    let left = procs::kill_all_until_gone(|| procs::pids_of_uid(uid), Duration::from_secs(10));
    if !left.is_empty() {
        eprintln!("e2e cleanup: processes of {name} (uid {uid}) survived SIGKILL: {left:?}");
    }
    let out = account_command("userdel", &["-r", "-f", name]);
    // 6 = no such user (already gone); 12 = home or mail spool missing: fine.
    if !out.status.success() && !matches!(out.status.code(), Some(6) | Some(12)) {
        eprintln!(
            "e2e cleanup: userdel -r -f {name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A user created for one test. Dropping it kills its processes and deletes it.
#[derive(Debug)]
pub struct TestUser {
    pub account: Account,
    /// Private key (owned by root, in the test's temp dir) whose public half is
    /// in the user's ~/.ssh/authorized_keys.
    pub key: PathBuf,
}

impl TestUser {
    /// `useradd -m -s /bin/bash NAME`, and an ed25519 key in `key_dir`.
    pub fn create(name: &str, key_dir: &Path) -> TestUser {
        TestUser::create_keyed(name, &key_dir.join("id_ed25519"))
    }

    /// Like [`create`](Self::create), with the private key at `key` (so that
    /// several users can keep their keys in one directory).
    pub fn create_keyed(name: &str, key: &Path) -> TestUser {
        assert!(name.len() <= 32, "user name {name:?} is too long");
        let out = account_command("useradd", &["-m", "-s", "/bin/bash", name]);
        if !out.status.success() {
            panic!(
                "useradd -m -s /bin/bash {name} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let account = lookup(name)
            .unwrap_or_else(|| panic!("useradd succeeded but {name} is not in /etc/passwd"));
        // From here on the guard owns the account, so a panic below removes it.
        let mut user = TestUser {
            account,
            key: key.to_path_buf(),
        };
        user.install_key();
        user
    }

    fn install_key(&mut self) {
        let a = &self.account;
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                .arg(&a.name)
                .arg("-f")
                .arg(&self.key),
        );
        let public =
            fs::read_to_string(self.key.with_extension("pub")).expect("reading public key");
        let ssh_dir = a.home.join(".ssh");
        fs::create_dir_all(&ssh_dir).expect("creating ~/.ssh");
        let auth = ssh_dir.join("authorized_keys");
        fs::write(&auth, public).expect("writing authorized_keys");
        fs::set_permissions(&ssh_dir, fs::Permissions::from_mode(0o700)).expect("chmod ~/.ssh");
        fs::set_permissions(&auth, fs::Permissions::from_mode(0o600))
            .expect("chmod authorized_keys");
        chown(&ssh_dir, Some(a.uid), Some(a.gid)).expect("chown ~/.ssh");
        chown(&auth, Some(a.uid), Some(a.gid)).expect("chown authorized_keys");
        // sshd's StrictModes wants the home not group/world writable.
        let mode = fs::metadata(&a.home)
            .expect("stat home")
            .permissions()
            .mode();
        if mode & 0o022 != 0 {
            fs::set_permissions(&a.home, fs::Permissions::from_mode(mode & !0o022))
                .expect("chmod home");
        }
    }

    pub fn name(&self) -> &str {
        &self.account.name
    }

    pub fn uid(&self) -> u32 {
        self.account.uid
    }

    pub fn gid(&self) -> u32 {
        self.account.gid
    }

    /// Sets a password (`chpasswd`), for tests that authenticate as this
    /// user interactively (su). Accounts made by useradd have none.
    pub fn set_password(&self, password: &str) {
        let _guard = ACCOUNTS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting chpasswd");
        child
            .stdin
            .take()
            .expect("chpasswd stdin")
            .write_all(format!("{}:{password}\n", self.name()).as_bytes())
            .expect("writing to chpasswd");
        let out = child.wait_with_output().expect("waiting for chpasswd");
        assert!(
            out.status.success(),
            "chpasswd for {} failed ({}): {}",
            self.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Live processes of this user right now.
    pub fn processes(&self) -> Vec<u32> {
        procs::pids_of_uid(self.uid())
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        remove_user(&self.account.name, self.account.uid);
    }
}
