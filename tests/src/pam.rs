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

impl Drop for PamService {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("e2e cleanup: removing {}: {e}", self.path.display());
            }
        }
    }
}
