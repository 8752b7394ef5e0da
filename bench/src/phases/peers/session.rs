//! One measured ssh login: a real `ssh -tt` client with a key, whose remote
//! command leaves three escapes behind (nohup, setsid, a double fork), says
//! READY, and reads its terminal. The harness types one key, then nothing:
//! the enforcer's idle limit ends the session, and the client exits.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::now_ns;

/// The escapes, by the sleep each one runs (so they can be told apart).
pub const ESCAPES: [(&str, &str); 3] = [
    ("nohup", "sleep 6011"),
    ("setsid", "sleep 6012"),
    ("double fork", "sleep 6013"),
];

const REMOTE: &str = "nohup sleep 6011 >/dev/null 2>&1 </dev/null & \
     setsid sleep 6012 >/dev/null 2>&1 </dev/null & \
     (sleep 6013 >/dev/null 2>&1 </dev/null &) ; echo READY; exec cat";

/// A login waiting for its end.
pub struct Session {
    child: Child,
    /// When the one key was typed (realtime ns).
    pub t_key: i64,
}

impl Session {
    /// Logs in, waits for READY (bounded by ssh's own ConnectTimeout and the
    /// reader thread), types one key.
    pub fn open(key: &Path, user: &str, port: u16) -> Result<Session, String> {
        let mut cmd = Command::new("ssh");
        crate::sys::unblocked_signals(&mut cmd);
        let mut child = cmd
            .args(["-tt", "-q", "-i"])
            .arg(key)
            .args([
                "-p",
                &port.to_string(),
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "ServerAliveInterval=0",
                &format!("{user}@127.0.0.1"),
                REMOTE,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("ssh: {e}"))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            let mut ready = false;
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if !ready && line.contains("READY") {
                    ready = true;
                    let _ = tx.send(());
                }
                line.clear();
            }
        });
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the ssh login did not come up within 20 s".into());
        }
        let t_key = now_ns();
        child
            .stdin
            .as_mut()
            .ok_or("no stdin")?
            .write_all(b"k")
            .map_err(|e| format!("typing: {e}"))?;
        Ok(Session { child, t_key })
    }

    /// Waits (until `deadline`) for the client to exit: when, realtime ns.
    pub fn wait_end(&mut self, deadline: std::time::Instant) -> Option<i64> {
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(now_ns());
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The processes of `uid`, with their command lines.
pub fn processes_of(uid: u32) -> Vec<(u32, String)> {
    let mut v = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let owned = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok())
            == Some(uid);
        if owned {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            v.push((pid, cmd.trim().to_owned()));
        }
    }
    v
}

/// SIGKILLs every process of `uid` (the peers' own login user), by pid.
pub fn kill_all_of(uid: u32) {
    for _ in 0..5 {
        let left = processes_of(uid);
        if left.is_empty() {
            return;
        }
        for (pid, _) in left {
            let _ = crate::sys::kill_child(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
