//! scripts/install.sh and scripts/uninstall.sh, run against scratch roots
//! (`--destdir`) with small fake binaries. Nothing here touches the real /:
//! every test also checks that the host's /etc/pam.d/sshd did not change.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Debian 12's /etc/pam.d/sshd (openssh-server 1:9.2p1-2).
const DEBIAN_SSHD: &str = "\
# PAM configuration for the Secure Shell service

# Standard Un*x authentication.
@include common-auth

# Disallow non-root logins when /etc/nologin exists.
account    required     pam_nologin.so

# Uncomment and edit /etc/security/access.conf if you need to set complex
# access limits that are hard to express in sshd_config.
# account  required     pam_access.so

# Standard Un*x authorization.
@include common-account

# SELinux needs to be the first session rule.  This ensures that any
# lingering context has been cleared.  Without this it is possible that a
# module could execute code in the wrong domain.
session [success=ok ignore=ignore module_unknown=ignore default=bad]        pam_selinux.so close

# Set the loginuid process attribute.
session    required     pam_loginuid.so

# Create a new session keyring.
session    optional     pam_keyinit.so force revoke

# Standard Un*x session setup and teardown.
@include common-session

# Print the message of the day upon successful login.
# This includes a dynamically generated part from /run/motd.dynamic
# and a static (admin-editable) part from /etc/motd.
session    optional     pam_motd.so  motd=/run/motd.dynamic
session    optional     pam_motd.so noupdate

# Print the status of the user's mailbox upon successful login.
session    optional     pam_mail.so standard noenv # [1]

# Set up user limits from /etc/security/limits.conf.
session    required     pam_limits.so

# Read environment variables from /etc/environment and
# /etc/security/pam_env.conf.
session    required     pam_env.so # [1]
# In Debian 4.0 (etch), locale-related environment variables were moved to
# /etc/default/locale, so read that as well.
session    required     pam_env.so user_readenv=1 envfile=/etc/default/locale

# SELinux needs to intervene at login time to ensure that the process starts
# in the proper default security context.  Only sessions which are intended
# to run in the user's context should be run after this.
session [success=ok ignore=ignore module_unknown=ignore default=bad]        pam_selinux.so open

# Standard Un*x password updating.
@include common-password
";

/// The --pam-dir the tests pass (a path on the target, below the scratch root).
const PAM_DIR: &str = "/lib/x86_64-linux-gnu/security";
const MARKER: &str = "# session-timeout:managed";
const FAKE_DAEMON: &[u8] = b"#!/bin/sh\necho fake timeoutd\n";
const FAKE_MODULE: &[u8] = b"\x7fELF not really a PAM module\n";
const FAKE_CTL: &[u8] = b"#!/bin/sh\necho fake timeoutctl\n";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

fn host_pam_sshd() -> Option<Vec<u8>> {
    fs::read("/etc/pam.d/sshd").ok()
}

/// A scratch directory holding `root/` (the DESTDIR, with a Debian-like
/// etc/pam.d/sshd) and `from/` (fake built binaries). Removed on drop.
struct Scratch {
    dir: PathBuf,
    root: PathBuf,
    from: PathBuf,
    host_pam_before: Option<Vec<u8>>,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "session-timeout-install-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        let root = dir.join("root");
        let from = dir.join("from");
        fs::create_dir_all(root.join("etc/pam.d")).unwrap();
        fs::create_dir_all(&from).unwrap();
        fs::write(root.join("etc/pam.d/sshd"), DEBIAN_SSHD).unwrap();
        fs::set_permissions(
            root.join("etc/pam.d/sshd"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        write_mode(&from.join("timeoutd"), FAKE_DAEMON, 0o755);
        write_mode(&from.join("libpam_session_timeout.so"), FAKE_MODULE, 0o755);
        assert!(root.is_absolute() && root != Path::new("/"));
        Scratch {
            dir,
            root,
            from,
            host_pam_before: host_pam_sshd(),
        }
    }

    fn path(&self, target: &str) -> PathBuf {
        self.root.join(target.trim_start_matches('/'))
    }

    fn install_args(&self) -> Vec<String> {
        vec![
            "--destdir".into(),
            self.root.display().to_string(),
            "--no-build".into(),
            "--from".into(),
            self.from.display().to_string(),
            "--no-start".into(),
            "--pam-dir".into(),
            PAM_DIR.into(),
        ]
    }

    fn install(&self) -> String {
        run_ok("install.sh", &self.install_args())
    }

    fn uninstall(&self) -> String {
        run_ok(
            "uninstall.sh",
            &["--destdir".into(), self.root.display().to_string()],
        )
    }

    fn pam_sshd(&self) -> String {
        fs::read_to_string(self.path("/etc/pam.d/sshd")).unwrap()
    }

    fn snapshot(&self) -> BTreeMap<String, Node> {
        let mut map = BTreeMap::new();
        walk(&self.root, &self.root, &mut map);
        map
    }

    fn assert_host_unchanged(&self) {
        assert!(
            host_pam_sshd() == self.host_pam_before,
            "the host's /etc/pam.d/sshd changed"
        );
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn write_mode(path: &Path, contents: &[u8], mode: u32) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// One entry of a recursive listing: type, mode and contents.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(PathBuf),
    Other(u32),
}

fn walk(root: &Path, dir: &Path, map: &mut BTreeMap<String, Node>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let m = meta.permissions().mode() & 0o7777;
        let node = if meta.file_type().is_symlink() {
            Node::Symlink(fs::read_link(&path).unwrap())
        } else if meta.is_dir() {
            walk(root, &path, map);
            Node::Dir(m)
        } else if meta.is_file() {
            Node::File(m, fs::read(&path).unwrap())
        } else {
            Node::Other(m)
        };
        map.insert(rel, node);
    }
}

fn run(script: &str, args: &[String], env: &[(&str, &str)]) -> Output {
    let path = workspace().join("scripts").join(script);
    let mut cmd = Command::new(&path);
    cmd.args(args).env_remove("DESTDIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()))
}

fn describe(script: &str, out: &Output) -> String {
    format!(
        "{script}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_ok(script: &str, args: &[String]) -> String {
    let out = run(script, args, &[]);
    assert!(out.status.success(), "{}", describe(script, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The PAM line as etc/pam.d-sshd.line ships it.
fn shipped_pam_line() -> String {
    fs::read_to_string(workspace().join("etc/pam.d-sshd.line"))
        .unwrap()
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .expect("a PAM line in etc/pam.d-sshd.line")
        .to_string()
}

fn position(lines: &[&str], pred: impl Fn(&str) -> bool, what: &str) -> usize {
    lines
        .iter()
        .position(|l| pred(l))
        .unwrap_or_else(|| panic!("no {what} line"))
}

#[test]
fn install_puts_files_in_place_with_modes_and_adds_the_pam_line_once() {
    let s = Scratch::new("layout");
    s.install();
    s.install();

    let daemon = s.path("/usr/sbin/timeoutd");
    assert_eq!(fs::read(&daemon).unwrap(), FAKE_DAEMON);
    assert_eq!(mode(&daemon), 0o755);

    let module = s.path(&format!("{PAM_DIR}/pam_session_timeout.so"));
    assert_eq!(fs::read(&module).unwrap(), FAKE_MODULE);
    assert_eq!(mode(&module), 0o644);

    let config = s.path("/etc/session-timeout.toml");
    assert_eq!(
        fs::read(&config).unwrap(),
        fs::read(workspace().join("etc/session-timeout.toml")).unwrap()
    );
    assert_eq!(mode(&config), 0o644);

    let service = s.path("/etc/pam.d/session-timeout");
    assert_eq!(
        fs::read(&service).unwrap(),
        fs::read(workspace().join("etc/pam.d/session-timeout")).unwrap(),
        "the re-validation PAM service, as the .deb ships it"
    );
    assert_eq!(mode(&service), 0o644);

    let unit = s.path("/lib/systemd/system/timeoutd.service");
    assert_eq!(
        fs::read(&unit).unwrap(),
        fs::read(workspace().join("etc/timeoutd.service")).unwrap()
    );
    assert_eq!(mode(&unit), 0o644);

    assert_eq!(mode(&s.path("/var/lib/session-timeout")), 0o700);
    assert!(s
        .path("/var/lib/session-timeout/install-manifest")
        .is_file());
    assert!(!s.path("/usr/bin/timeoutctl").exists());

    let pam = s.pam_sshd();
    assert!(
        pam.starts_with(DEBIAN_SSHD),
        "the original lines must stay as they were"
    );
    let lines: Vec<&str> = pam.lines().collect();
    let ours: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("pam_session_timeout.so"))
        .collect();
    assert_eq!(ours.len(), 1, "PAM line must be there exactly once:\n{pam}");
    let ours = ours[0];
    assert_eq!(ours, lines.len() - 1, "PAM line must be the last line");
    assert_eq!(lines[ours], format!("{} {MARKER}", shipped_pam_line()));
    let loginuid = position(&lines, |l| l.contains("pam_loginuid.so"), "pam_loginuid");
    let common = position(
        &lines,
        |l| l.trim() == "@include common-session",
        "common-session",
    );
    assert!(ours > loginuid && ours > common);

    s.assert_host_unchanged();
}

#[test]
fn uninstall_restores_the_scratch_tree_exactly() {
    let s = Scratch::new("roundtrip");
    // An unusual mode, which uninstall must keep too.
    fs::set_permissions(s.path("/etc/pam.d/sshd"), fs::Permissions::from_mode(0o640)).unwrap();
    let before = s.snapshot();
    s.install();
    s.install();
    assert_ne!(s.snapshot(), before);
    s.uninstall();
    assert_eq!(s.pam_sshd().as_bytes(), DEBIAN_SSHD.as_bytes());
    assert_eq!(s.snapshot(), before);

    // A second uninstall finds nothing to do and changes nothing.
    s.uninstall();
    assert_eq!(s.snapshot(), before);
    s.assert_host_unchanged();
}

#[test]
fn an_existing_config_is_neither_overwritten_nor_removed() {
    let s = Scratch::new("admin-config");
    let admin = b"[defaults]\nidle = \"10m\"\n";
    write_mode(&s.path("/etc/session-timeout.toml"), admin, 0o640);
    let before = s.snapshot();

    let out = s.install();
    assert!(out.contains("kept the existing"), "{out}");
    assert_eq!(
        fs::read(s.path("/etc/session-timeout.toml")).unwrap(),
        admin
    );
    assert_eq!(mode(&s.path("/etc/session-timeout.toml")), 0o640);

    s.uninstall();
    assert_eq!(s.snapshot(), before);
    s.assert_host_unchanged();
}

#[test]
fn an_existing_revalidation_pam_service_is_neither_overwritten_nor_removed() {
    let s = Scratch::new("admin-pam-service");
    let admin = b"account required pam_sss.so\n";
    write_mode(&s.path("/etc/pam.d/session-timeout"), admin, 0o644);
    let before = s.snapshot();

    let out = s.install();
    assert!(
        out.contains("kept the existing") && out.contains("/etc/pam.d/session-timeout"),
        "{out}"
    );
    assert_eq!(
        fs::read(s.path("/etc/pam.d/session-timeout")).unwrap(),
        admin
    );

    s.uninstall();
    assert_eq!(s.snapshot(), before);
    s.assert_host_unchanged();
}

#[test]
fn uninstall_keeps_a_config_edited_after_install() {
    let s = Scratch::new("edited-config");
    let before = s.snapshot();
    s.install();
    let config = s.path("/etc/session-timeout.toml");
    let mut edited = fs::read(&config).unwrap();
    edited.extend_from_slice(b"# edited by the admin\n");
    fs::write(&config, &edited).unwrap();

    let out = s.uninstall();
    assert!(out.contains("KEPT"), "{out}");
    assert_eq!(fs::read(&config).unwrap(), edited);

    let mut after = s.snapshot();
    assert_eq!(
        after.remove("etc/session-timeout.toml"),
        Some(Node::File(0o644, edited))
    );
    assert_eq!(after, before);
    s.assert_host_unchanged();
}

#[test]
fn a_pam_file_without_final_newline_is_restored_byte_for_byte() {
    let s = Scratch::new("no-newline");
    let original = DEBIAN_SSHD.trim_end_matches('\n');
    fs::write(s.path("/etc/pam.d/sshd"), original).unwrap();
    let before = s.snapshot();

    s.install();
    let pam = s.pam_sshd();
    assert_eq!(
        pam,
        format!("{original}\n{} {MARKER}\n", shipped_pam_line())
    );
    s.install();
    assert_eq!(s.pam_sshd(), pam);

    s.uninstall();
    assert_eq!(s.pam_sshd(), original);
    assert_eq!(s.snapshot(), before);
    s.assert_host_unchanged();
}

#[test]
fn a_hand_written_pam_line_is_left_alone() {
    let s = Scratch::new("hand-line");
    let by_hand =
        format!("{DEBIAN_SSHD}session optional /opt/pam_session_timeout.so fail=closed\n");
    fs::write(s.path("/etc/pam.d/sshd"), &by_hand).unwrap();
    let before = s.snapshot();

    s.install();
    assert_eq!(s.pam_sshd(), by_hand);
    s.uninstall();
    assert_eq!(s.snapshot(), before);
    s.assert_host_unchanged();
}

#[test]
fn timeoutctl_is_installed_when_it_was_built() {
    let s = Scratch::new("timeoutctl");
    write_mode(&s.from.join("timeoutctl"), FAKE_CTL, 0o755);
    let before = s.snapshot();

    s.install();
    let ctl = s.path("/usr/bin/timeoutctl");
    assert_eq!(fs::read(&ctl).unwrap(), FAKE_CTL);
    assert_eq!(mode(&ctl), 0o755);

    s.uninstall();
    assert_eq!(s.snapshot(), before);
    s.assert_host_unchanged();
}

#[test]
fn files_that_existed_before_install_survive_uninstall() {
    let s = Scratch::new("pre-existing");
    // Something else already lives in /usr/sbin and /lib/systemd/system.
    fs::create_dir_all(s.path("/usr/sbin")).unwrap();
    fs::create_dir_all(s.path("/lib/systemd/system")).unwrap();
    write_mode(&s.path("/usr/sbin/sshd"), b"not ours\n", 0o755);
    symlink("/dev/null", s.path("/lib/systemd/system/masked.service")).unwrap();
    let before = s.snapshot();

    s.install();
    s.uninstall();
    assert_eq!(s.snapshot(), before);
    s.assert_host_unchanged();
}

#[test]
fn destdir_from_the_environment_and_the_default_pam_dir() {
    let s = Scratch::new("env-destdir");
    let before = s.snapshot();
    let root = s.root.display().to_string();
    let args: Vec<String> = ["--no-build", "--from", &s.from.display().to_string()]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let out = run("install.sh", &args, &[("DESTDIR", &root)]);
    assert!(out.status.success(), "{}", describe("install.sh", &out));

    let mut modules: Vec<String> = s
        .snapshot()
        .into_keys()
        .filter(|p| p.ends_with("/pam_session_timeout.so"))
        .collect();
    assert_eq!(modules.len(), 1, "{modules:?}");
    let module = modules.pop().unwrap();
    let dirs: Vec<&str> = module.split('/').collect();
    let shape_ok = matches!(dirs.as_slice(), ["lib", _, "security", _])
        || matches!(dirs.as_slice(), ["usr", "lib", _, "security", _]);
    assert!(shape_ok, "unexpected PAM module path {module}");
    assert!(s
        .path("/var/lib/session-timeout/install-manifest")
        .is_file());

    let out = run("uninstall.sh", &[], &[("DESTDIR", &root)]);
    assert!(out.status.success(), "{}", describe("uninstall.sh", &out));
    assert_eq!(s.snapshot(), before);
    s.assert_host_unchanged();
}

#[test]
fn a_failed_install_changes_nothing() {
    let s = Scratch::new("missing-module");
    fs::remove_file(s.from.join("libpam_session_timeout.so")).unwrap();
    let before = s.snapshot();
    let out = run("install.sh", &s.install_args(), &[]);
    assert!(!out.status.success(), "{}", describe("install.sh", &out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("libpam_session_timeout.so"));
    assert_eq!(s.snapshot(), before);

    let mut args = s.install_args();
    args.push("--no-such-option".into());
    let out = run("install.sh", &args, &[]);
    assert!(!out.status.success(), "{}", describe("install.sh", &out));
    assert_eq!(s.snapshot(), before);
    s.assert_host_unchanged();
}

#[test]
fn file_mode_options_without_files_mode_are_refused_before_anything_happens() {
    // Without --destdir or --files, install.sh installs packages into /; the
    // options that only the file copy understands must stop it at once,
    // before it builds, installs or asks for root.
    let s = Scratch::new("packaged-mode");
    let before = s.snapshot();
    let out = run(
        "install.sh",
        &["--from".into(), s.from.display().to_string()],
        &[],
    );
    assert!(!out.status.success(), "{}", describe("install.sh", &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("need --files"),
        "{}",
        describe("install.sh", &out)
    );
    assert_eq!(s.snapshot(), before);
    s.assert_host_unchanged();
}

#[test]
fn scripts_are_executable() {
    let ws = workspace();
    for script in [
        "scripts/install.sh",
        "scripts/install-packages.sh",
        "scripts/package.sh",
        "scripts/uninstall.sh",
        "tests/package/in-namespace.sh",
        "scripts/deps.sh",
        "scripts/test.sh",
        ".ci/run",
    ] {
        let m = mode(&ws.join(script));
        assert_eq!(m & 0o111, 0o111, "{script} must be executable (mode {m:o})");
    }
}
