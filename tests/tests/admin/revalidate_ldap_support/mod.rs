//! A real directory for `revalidate_ldap.rs`: slapd with its own config and
//! database in a temp dir on 127.0.0.1 (a free port), and sssd (ldap id and
//! access providers) in front of it, both started and killed by pid here.
//!
//! The NSS and PAM side lives in the test process's private mount namespace
//! ([`private_namespace`]): bind-mounted copies of /etc/nsswitch.conf (with
//! `sss`), /etc/pam.d (common-account with pam_sss), /etc/sssd and
//! /var/lib/sss, and an overlay on /run (sssd's pid file is fixed at
//! /run/sssd.pid). The host's files are never written; the mounts end with
//! the namespace.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::util::{file_tail, poll_until, run_ok, terminate_child};

/// The environment variable that marks the re-executed test inside the namespace.
pub const INNER: &str = "ST_E2E_LDAP_NAMESPACE";
const SUFFIX: &str = "dc=st,dc=test";
const ADMIN: &str = "cn=admin,dc=st,dc=test";
const ADMIN_PASSWORD: &str = "st-e2e-secret";
/// Bound for slapd to answer and for sssd to resolve a user.
const START: Duration = Duration::from_secs(20);

/// A user of the directory, with a key that sshd accepts.
pub struct DirectoryUser {
    pub name: String,
    pub key: PathBuf,
}

/// slapd and sssd of one test, stopped by pid on drop; then its dir is removed.
pub struct Directory {
    sssd: Child,
    slapd: Child,
    pub dir: PathBuf,
    pub port: u16,
    pub users: Vec<DirectoryUser>,
    /// How long slapd, the entries and sssd took until a user resolved.
    pub start_up: Duration,
}

fn mount(args: &[&str]) {
    run_ok(Command::new("mount").args(args));
}

/// Puts copies of the NSS/PAM/sssd files over the real ones in this process's
/// mount namespace (made by `unshare --mount --propagation private`).
pub fn private_namespace(dir: &Path) {
    let nss = dir.join("nsswitch.conf");
    fs::write(
        &nss,
        "passwd: files sss\ngroup: files sss\nshadow: files\nhosts: files dns\n",
    )
    .expect("writing nsswitch.conf");
    let pam = dir.join("pam.d");
    run_ok(Command::new("cp").arg("-a").arg("/etc/pam.d").arg(&pam));
    // Debian's sss profile: local users by pam_unix, directory users by pam_sss.
    fs::write(
        pam.join("common-account"),
        "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\n\
         account requisite pam_deny.so\naccount required pam_permit.so\n\
         account sufficient pam_localuser.so\n\
         account [default=bad success=ok user_unknown=ignore] pam_sss.so\n",
    )
    .expect("writing common-account");
    let sss = dir.join("var-lib-sss");
    for sub in [
        "db",
        "pipes/private",
        "mc",
        "pubconf/krb5.include.d",
        "gpo_cache",
        "deskprofile",
        "secrets",
        "keytabs",
    ] {
        fs::create_dir_all(sss.join(sub)).expect("creating /var/lib/sss copy");
    }
    let etc_sssd = dir.join("etc-sssd");
    fs::create_dir_all(etc_sssd.join("conf.d")).expect("creating /etc/sssd copy");
    for d in ["run-upper", "run-work"] {
        fs::create_dir_all(dir.join(d)).expect("creating overlay dirs");
    }
    for (from, to) in [
        (&nss, "/etc/nsswitch.conf"),
        (&pam, "/etc/pam.d"),
        (&sss, "/var/lib/sss"),
        (&etc_sssd, "/etc/sssd"),
    ] {
        mount(&["--bind", &from.to_string_lossy(), to]);
    }
    let opts = format!(
        "lowerdir=/run,upperdir={},workdir={}",
        dir.join("run-upper").display(),
        dir.join("run-work").display()
    );
    mount(&["-t", "overlay", "overlay", "-o", &opts, "/run"]);
}

fn ldap_tool(tool: &str, port: u16, ldif: &str) {
    let path = std::env::temp_dir().join(format!("{}.ldif", e2e::new_prefix()));
    fs::write(&path, ldif).expect("writing ldif");
    let url = format!("ldap://127.0.0.1:{port}");
    let out = Command::new(tool)
        .args(["-x", "-D", ADMIN, "-w", ADMIN_PASSWORD, "-H", &url, "-f"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e} (install ldap-utils)"));
    let _ = fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{tool} failed: {}\n{ldif}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn slapd_config(dir: &Path) -> String {
    format!(
        "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
         include /etc/ldap/schema/nis.schema\ninclude /etc/ldap/schema/inetorgperson.schema\n\
         pidfile {d}/slapd.pid\nargsfile {d}/slapd.args\nmodulepath /usr/lib/ldap\n\
         moduleload back_mdb\ndatabase mdb\nsuffix \"{SUFFIX}\"\nrootdn \"{ADMIN}\"\n\
         rootpw {ADMIN_PASSWORD}\ndirectory {d}/db\nmaxsize 10485760\n",
        d = dir.display()
    )
}

fn sssd_config(port: u16) -> String {
    // pam_id_timeout and entry_cache_timeout of 1 s: every account check
    // re-reads the user (shadowExpire) from slapd instead of sssd's cache.
    format!(
        "[sssd]\nservices = nss, pam\ndomains = st\n\n[pam]\npam_id_timeout = 1\n\n\
         [domain/st]\nid_provider = ldap\nauth_provider = none\naccess_provider = ldap\n\
         ldap_uri = ldap://127.0.0.1:{port}\nldap_search_base = {SUFFIX}\nldap_schema = rfc2307\n\
         ldap_access_order = expire\nldap_account_expire_policy = shadow\n\
         ldap_id_use_start_tls = false\nldap_tls_reqcert = never\ncache_credentials = false\n\
         entry_cache_timeout = 1\n"
    )
}

fn entries(dir: &Path, names: &[(String, u32)]) -> String {
    let mut l = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: st\ndc: st\n\n\
         dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    for (name, id) in names {
        l.push_str(&format!(
            "dn: uid={name},ou=people,{SUFFIX}\nobjectClass: account\nobjectClass: posixAccount\n\
             objectClass: shadowAccount\nuid: {name}\ncn: {name}\nuidNumber: {id}\ngidNumber: {id}\n\
             homeDirectory: {home}\nloginShell: /bin/bash\n\n\
             dn: cn={name},ou=groups,{SUFFIX}\nobjectClass: posixGroup\ncn: {name}\ngidNumber: {id}\n\n",
            home = dir.join("home").join(name).display()
        ));
    }
    l
}

/// `home/NAME/.ssh/authorized_keys` owned by the directory's uid, and the key.
fn home_with_key(dir: &Path, name: &str, id: u32) -> PathBuf {
    let ssh = dir.join("home").join(name).join(".ssh");
    fs::create_dir_all(&ssh).expect("creating home");
    let key = dir.join(format!("key-{name}"));
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key),
    );
    let public = fs::read_to_string(key.with_extension("pub")).expect("reading public key");
    fs::write(ssh.join("authorized_keys"), public).expect("writing authorized_keys");
    for p in [
        ssh.parent().expect("home"),
        &ssh,
        &ssh.join("authorized_keys"),
    ] {
        chown(p, Some(id), Some(id)).expect("chown home");
    }
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700)).expect("chmod .ssh");
    key
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let f = fs::File::create(log).expect("creating log");
    cmd.stdin(Stdio::null())
        .stdout(f.try_clone().expect("dup log"))
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {:?}: {e}", cmd.get_program()))
}

fn slapd_answers(port: u16) -> bool {
    let url = format!("ldap://127.0.0.1:{port}");
    Command::new("ldapsearch")
        .args(["-x", "-H", &url, "-b", "", "-s", "base"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts slapd on a free port; tries another port if that one was taken.
fn start_slapd(dir: &Path) -> (Child, u16) {
    let config = dir.join("slapd.conf");
    fs::write(&config, slapd_config(dir)).expect("writing slapd.conf");
    fs::create_dir_all(dir.join("db")).expect("creating db dir");
    for attempt in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = dir.join(format!("slapd-{attempt}.log"));
        // -d keeps it in the foreground (level 0: no debug output).
        let mut child = spawn_logged(
            Command::new("/usr/sbin/slapd")
                .arg("-f")
                .arg(&config)
                .args(["-h", &format!("ldap://127.0.0.1:{port}/"), "-d", "0"]),
            &log,
        );
        let up = poll_until(START, Duration::from_millis(50), || {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(false);
            }
            slapd_answers(port).then_some(true)
        });
        if up == Some(true) {
            return (child, port);
        }
        terminate_child(&mut child, Duration::from_secs(5));
        eprintln!("slapd on port {port}: {}", file_tail(&log, 2000));
    }
    panic!("slapd did not start (see {})", dir.display());
}

/// The uid NSS (so sss) gives `name`, as the daemon and sshd see it.
fn getent_uid(name: &str) -> Option<u32> {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split(':').nth(2)?.trim().parse().ok()
}

impl Directory {
    /// slapd with `users` posix users, sssd in front of it, and every user
    /// resolvable through NSS (inside the private namespace).
    pub fn start(dir: &Path, users: &[(String, u32)]) -> Directory {
        assert!(
            Path::new("/usr/sbin/slapd").exists() && Path::new("/usr/sbin/sssd").exists(),
            "slapd or sssd missing: run scripts/deps.sh"
        );
        let t = Instant::now();
        let (slapd, port) = start_slapd(dir);
        ldap_tool("ldapadd", port, &entries(dir, users));
        let conf = Path::new("/etc/sssd/sssd.conf");
        fs::write(conf, sssd_config(port)).expect("writing sssd.conf");
        fs::set_permissions(conf, fs::Permissions::from_mode(0o600)).expect("chmod sssd.conf");
        let sssd = spawn_logged(
            Command::new("/usr/sbin/sssd").args([
                "-i",
                "-c",
                "/etc/sssd/sssd.conf",
                "--logger=stderr",
                "-d",
                "2",
            ]),
            &dir.join("sssd.log"),
        );
        let mut d = Directory {
            sssd,
            slapd,
            dir: dir.to_path_buf(),
            port,
            users: Vec::new(),
            start_up: Duration::ZERO,
        };
        for (name, id) in users {
            let resolved = poll_until(START, Duration::from_millis(50), || {
                (getent_uid(name) == Some(*id)).then_some(())
            });
            assert!(
                resolved.is_some(),
                "{name} not resolved through sss\n{}",
                d.logs()
            );
            let key = home_with_key(dir, name, *id);
            d.users.push(DirectoryUser {
                name: name.clone(),
                key,
            });
        }
        d.start_up = t.elapsed();
        d
    }

    /// `shadowExpire: 1` (1970-01-02): the account expired long ago.
    pub fn expire(&self, user: &str) {
        ldap_tool(
            "ldapmodify",
            self.port,
            &format!(
                "dn: uid={user},ou=people,{SUFFIX}\nchangetype: modify\nreplace: shadowExpire\nshadowExpire: 1\n"
            ),
        );
    }

    pub fn logs(&self) -> String {
        format!(
            "--- sssd log ---\n{}\n",
            file_tail(&self.dir.join("sssd.log"), 6000)
        )
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        // The monitor ends its responders and back end on SIGTERM.
        terminate_child(&mut self.sssd, Duration::from_secs(10));
        terminate_child(&mut self.slapd, Duration::from_secs(10));
        let _ = fs::remove_dir_all(&self.dir);
    }
}
