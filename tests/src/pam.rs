//! The PAM service file `/etc/pam.d/sshd-<prefix>` each test writes.

use std::fs;
use std::path::{Path, PathBuf};

/// What our module does when the daemon cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    Open,
    Closed,
}

impl FailMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        }
    }
}

/// The line that loads our module, as the install docs will tell admins to write it.
pub fn module_line(module: &Path, socket: &Path, fail: FailMode) -> String {
    format!(
        "session required {} socket={} fail={} timeout_ms=500",
        module.display(),
        socket.display(),
        fail.as_str()
    )
}

/// `/etc/pam.d/<service>`: a copy of Debian's /etc/pam.d/sshd plus `extra`
/// lines at the end. Removed on drop.
#[derive(Debug)]
pub struct PamService {
    pub service: String,
    pub path: PathBuf,
}

impl PamService {
    pub fn write(service: &str, extra: &[String]) -> PamService {
        let base = fs::read_to_string("/etc/pam.d/sshd")
            .expect("reading /etc/pam.d/sshd (is openssh-server installed?)");
        let mut text = base;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "\n# Written by the session-timeout e2e tests for service {service}; removed when the test ends.\n"
        ));
        for l in extra {
            text.push_str(l);
            text.push('\n');
        }
        PamService::write_text(service, &text)
    }

    /// `/etc/pam.d/<service>` with exactly `text` (no copy of sshd's stack).
    /// Name it `<prefix>-<suffix>` so a crashed run's file is swept.
    pub fn write_text(service: &str, text: &str) -> PamService {
        let path = PathBuf::from("/etc/pam.d").join(service);
        assert!(!path.exists(), "{} already exists", path.display());
        let guard = PamService {
            service: service.to_string(),
            path,
        };
        fs::write(&guard.path, text)
            .unwrap_or_else(|e| panic!("writing {}: {e}", guard.path.display()));
        guard
    }

    pub fn contents(&self) -> String {
        fs::read_to_string(&self.path).unwrap_or_default()
    }
}

/// The text of the host's `/etc/pam.d/<service>` plus `extra` lines at the
/// end: a stack to bind-mount over the original in a private mount namespace
/// (see [`crate::sshd::Sshd::start_with`]), never written to /etc.
pub fn overlay_text(service: &str, extra: &[String]) -> String {
    let path = Path::new("/etc/pam.d").join(service);
    let mut text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(
        "\n# Added by the session-timeout e2e tests, in a private mount namespace only.\n",
    );
    for l in extra {
        text.push_str(l);
        text.push('\n');
    }
    text
}

impl Drop for PamService {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("e2e cleanup: removing {}: {e}", self.path.display());
            }
        }
    }
}
