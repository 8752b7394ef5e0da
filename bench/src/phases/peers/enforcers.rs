//! The three enforcers, each with the sshd its logins go through.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::sshd::{Login, Sshd};
use super::LIMIT_S;
use crate::harness::ctx::Ctx;
use crate::harness::daemon::{Daemon, Limits};
use crate::harness::host;
use crate::sys;

#[derive(Debug, Clone, Copy)]
pub enum Peer {
    Ours,
    ChannelTimeout,
    Autolog,
}

/// Ours first: the others' ratios are to it.
pub const PEERS: [Peer; 3] = [Peer::Ours, Peer::ChannelTimeout, Peer::Autolog];

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Ours => "timeoutd (ours)",
            Peer::ChannelTimeout => "OpenSSH ChannelTimeout",
            Peer::Autolog => "autolog",
        }
    }
}

const AUTOLOG: &str = "/usr/sbin/autolog";
const UTMP: &str = "/run/utmp";

/// A running enforcer and the sshd of its logins.
pub struct Enforcer {
    peer: Peer,
    pub sshd: Sshd,
    daemon: Option<Daemon>,
    autolog: Option<Child>,
}

/// utime + stime (+ the children it reaped, with `children`), seconds.
fn cpu_of(pid: u32, children: bool) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // After the name: state is field 3; utime 14, stime 15, cutime 16, cstime 17.
    let pick = |n: usize| f.get(n - 3).copied().unwrap_or(0);
    let ticks = pick(14) + pick(15) + if children { pick(16) + pick(17) } else { 0 };
    ticks as f64 / sys::clock_ticks() as f64
}

fn pam_text(session_lines: &str) -> String {
    // Public-key logins do not authenticate through PAM; the account and
    // session stacks are sshd's, with pam_loginuid as Debian's has it.
    format!(
        "# st-bench peers (removed at the end of the run)\naccount required pam_permit.so\n\
         session optional pam_loginuid.so\n{session_lines}"
    )
}

impl Enforcer {
    pub fn start(
        ctx: &Ctx,
        login: &Login,
        dir: &Path,
        tag: &str,
        peer: Peer,
    ) -> Result<Enforcer, String> {
        let sdir = dir.join(format!("{peer:?}").to_lowercase());
        let service = format!("stbp{tag}-{}", format!("{peer:?}").to_lowercase());
        let limit = format!("{LIMIT_S}s");
        match peer {
            Peer::Ours => {
                let mut limits = Limits::new(&limit, "12h", &[]);
                limits.grace = "2s".into();
                let d = ctx.start_daemon("peers-ours", &limits, &[])?;
                let module = ctx.timeoutd.with_file_name("libpam_session_timeout.so");
                let pam = pam_text(&format!(
                    "session required {} socket={} fail=closed\n",
                    module.display(),
                    d.socket.display()
                ));
                match Sshd::start(&sdir, &service, &pam, &login.user, &[]) {
                    Ok(sshd) => Ok(Enforcer {
                        peer,
                        sshd,
                        daemon: Some(d),
                        autolog: None,
                    }),
                    Err(e) => {
                        ctx.stop_daemon(d);
                        Err(e)
                    }
                }
            }
            Peer::ChannelTimeout => {
                let pam = pam_text("session required pam_permit.so\n");
                let extra = format!("ChannelTimeout session:*={limit}");
                let sshd = Sshd::start(&sdir, &service, &pam, &login.user, &[&extra])?;
                Ok(Enforcer {
                    peer,
                    sshd,
                    daemon: None,
                    autolog: None,
                })
            }
            Peer::Autolog => {
                if !Path::new(AUTOLOG).exists() {
                    return Err(format!(
                        "{AUTOLOG} missing (apt-get install autolog; scripts/deps.sh installs it)"
                    ));
                }
                // autolog finds logins in utmp, which sshd writes only if it exists.
                if !Path::new(UTMP).exists() {
                    host::etc_file(Path::new(UTMP), Some(""))?;
                }
                let pam = pam_text("session required pam_permit.so\n");
                let sshd = Sshd::start(&sdir, &service, &pam, &login.user, &[])?;
                let conf = sdir.join("autolog.conf");
                // nolostkill: autolog would otherwise kill every process of
                // any uid 500–60000 that has no login, on this shared host.
                fs::write(
                    &conf,
                    format!(
                        "nolostkill\nname={} idle={} grace=1 nomail\n",
                        login.user,
                        LIMIT_S / 60
                    ),
                )
                .map_err(|e| e.to_string())?;
                let log = sdir.join("autolog.log");
                fs::write(&log, "").map_err(|e| e.to_string())?;
                let out = fs::File::create(sdir.join("autolog.out")).map_err(|e| e.to_string())?;
                let mut cmd = Command::new(AUTOLOG);
                sys::unblocked_signals(&mut cmd);
                let child = cmd
                    .arg("-d")
                    .arg("-f")
                    .arg(&conf)
                    .arg("-l")
                    .arg(&log)
                    .stdin(Stdio::null())
                    .stdout(out.try_clone().map_err(|e| e.to_string())?)
                    .stderr(out)
                    .spawn()
                    .map_err(|e| format!("{AUTOLOG}: {e}"))?;
                host::track_daemon(child.id(), true);
                Ok(Enforcer {
                    peer,
                    sshd,
                    daemon: None,
                    autolog: Some(child),
                })
            }
        }
    }

    /// Waits until the enforcer is done with `n` ended sessions: ours logs
    /// `session_terminated` (bounded: the 2 s grace ladder and more); the
    /// others have no such signal, 3 s.
    pub fn settle(&self, ctx: &Ctx, n: usize) {
        match &self.daemon {
            Some(d) => {
                ctx.sink
                    .wait_count(d.pid, "session_terminated", n, Duration::from_secs(20));
            }
            None => std::thread::sleep(Duration::from_secs(3)),
        }
    }

    /// The enforcer's CPU so far, seconds.
    pub fn cpu_s(&self) -> f64 {
        match (self.peer, &self.daemon, &self.autolog) {
            (Peer::Ours, Some(d), _) => cpu_of(d.pid, true),
            (Peer::Autolog, _, Some(c)) => cpu_of(c.id(), true),
            // The timeout is inside sshd: its listener's reaped children
            // (every connection's processes).
            _ => cpu_of(self.sshd.pid(), true),
        }
    }

    pub fn cpu_what(&self) -> String {
        match self.peer {
            Peer::Ours => "timeoutd, whole trial".into(),
            Peer::Autolog => "autolog and its ps children, whole trial".into(),
            Peer::ChannelTimeout => {
                "all of sshd's per-login processes: its timeout is not separable".into()
            }
        }
    }

    pub fn stop(mut self, ctx: &Ctx) {
        if let Some(mut c) = self.autolog.take() {
            let _ = sys::kill_child(c.id(), libc::SIGTERM);
            let gone =
                crate::util::wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
                    matches!(c.try_wait(), Ok(Some(_)))
                });
            if !gone {
                let _ = c.kill();
                let _ = c.wait();
            }
            host::track_daemon(c.id(), false);
        }
        self.sshd.stop();
        if let Some(d) = self.daemon.take() {
            ctx.stop_daemon(d);
        }
    }
}
