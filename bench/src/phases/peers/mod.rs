//! Peers side by side (issue 16): the same ssh logins, one peer after
//! another, each enforcing the same 60 s idle limit (autolog counts idle
//! time in whole minutes: 1 is its shortest): ours (timeoutd through its PAM
//! module), OpenSSH's own `ChannelTimeout`, and Debian's `autolog`. For
//! each: idle lateness after the last keystroke, the enforcer's CPU, and
//! the escapes (nohup, setsid, double fork) left alive once the session
//! ended; every figure also as a ratio to ours.

mod enforcers;
mod session;
mod sshd;

use std::fmt::Write as _;
use std::time::Duration;

use crate::harness::ctx::Ctx;
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json};
use crate::util::random_hex;
use enforcers::{Enforcer, PEERS};
use session::{kill_all_of, processes_of, Session, ESCAPES};
use sshd::Login;

/// The idle limit of every peer, seconds.
pub const LIMIT_S: u64 = 60;
/// Logins per peer.
const SESSIONS: usize = 3;

/// What one peer did.
struct Trial {
    name: &'static str,
    /// Client gone − (key typed + limit), ms; one per session (a session
    /// not ended within the bound counts as the bound: "≥").
    lateness_ms: Vec<f64>,
    /// Sessions not ended within the bound.
    not_ended: usize,
    cpu_s: f64,
    cpu_what: String,
    /// Per escape, how many sessions left it alive.
    survivors: [usize; 3],
}

pub fn run(ctx: &mut Ctx, r: &mut Report) -> Result<(), String> {
    for tool in ["ssh", "ssh-keygen", sshd::SSHD] {
        let found = tool.starts_with('/') && std::path::Path::new(tool).exists()
            || std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!(
                "{tool} is not installed (scripts/deps.sh installs openssh-server and openssh-client)"
            ));
        }
    }
    let tag = random_hex(4);
    let dir = ctx.host.dir("peers");
    let login = Login::create(&format!("stbp{tag}"), &dir)?;
    let mut trials: Vec<Result<Trial, String>> = Vec::new();
    for peer in PEERS {
        eprintln!("st-bench: peers: {peer:?} ...");
        let res = trial(ctx, &login, &dir, &tag, peer);
        kill_all_of(login.uid);
        trials.push(res);
    }
    login.remove();
    report(r, &trials);
    Ok(())
}

/// One peer over `SESSIONS` logins.
fn trial(
    ctx: &Ctx,
    login: &Login,
    dir: &std::path::Path,
    tag: &str,
    peer: enforcers::Peer,
) -> Result<Trial, String> {
    let mut e = Enforcer::start(ctx, login, dir, tag, peer)?;
    let res = sessions(ctx, login, &mut e);
    let cpu = e.cpu_s();
    let cpu_what = e.cpu_what();
    let res = res.map(|(lateness_ms, not_ended, survivors)| Trial {
        name: peer.name(),
        lateness_ms,
        not_ended,
        cpu_s: cpu,
        cpu_what,
        survivors,
    });
    e.stop(ctx);
    res
}

type Seen = (Vec<f64>, usize, [usize; 3]);

fn sessions(ctx: &Ctx, login: &Login, e: &mut Enforcer) -> Result<Seen, String> {
    let mut open = Vec::new();
    for _ in 0..SESSIONS {
        open.push(Session::open(&login.key, &login.user, e.sshd.port)?);
    }
    // autolog: up to a poll (60 s) late, and a grace; the others: the
    // kernel's 8 s atime step. Bounded well past both.
    let deadline = std::time::Instant::now() + Duration::from_secs(LIMIT_S + 100);
    let mut lateness = Vec::new();
    let mut not_ended = 0;
    for s in &mut open {
        match s.wait_end(deadline) {
            Some(t) => lateness.push((t - s.t_key) as f64 / 1e6 - LIMIT_S as f64 * 1e3),
            // Censored: counted at the bound, a lower bound of its lateness.
            None => {
                not_ended += 1;
                lateness.push(100e3);
            }
        }
    }
    e.settle(ctx, SESSIONS);
    let left = processes_of(login.uid);
    let mut survivors = [0; 3];
    for (i, (_, cmd)) in ESCAPES.iter().enumerate() {
        survivors[i] = left.iter().filter(|(_, c)| c == cmd).count();
    }
    Ok((lateness, not_ended, survivors))
}

fn ratio(v: f64, ours: f64) -> String {
    if v < 0.0 {
        // ChannelTimeout counts whole seconds: it can end a session early.
        return format!("early by {:.0} ms", -v);
    }
    if ours.abs() < 1e-12 {
        if v.abs() < 1e-12 {
            "= ours".into()
        } else {
            "∞ (ours 0)".into()
        }
    } else {
        format!("{:.2}×", v / ours)
    }
}

fn report(r: &mut Report, trials: &[Result<Trial, String>]) {
    let ours = trials.first().and_then(|t| t.as_ref().ok());
    let p50 = |t: &Trial| summarize(&t.lateness_ms).map(|s| s.p50);
    let mut md = format!(
        "{SESSIONS} ssh logins per peer (real sshd on 127.0.0.1, real `ssh -tt` with a key), idle \
         limit {LIMIT_S} s for every peer; each login starts `nohup sleep`, `setsid sleep` and a \
         double-forked `sleep`, then reads its terminal; the harness types one key, then nothing. \
         Lateness = client gone − (key typed + {LIMIT_S} s). Survivors counted once the enforcer \
         was done (ours: its `session_terminated`; the others: 3 s after the client was gone). A \
         session the peer did not end within 100 s past the limit is counted at that bound (≥) and \
         closed by the harness (its ssh client killed); its escapes are counted with the others'.\n\n\
         | peer | lateness p50 / max | vs ours | not ended within 100 s past the limit | enforcer CPU | vs ours | escapes alive (nohup, setsid, double fork) | vs ours |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    let mut json = Vec::new();
    for (i, t) in trials.iter().enumerate() {
        let name = PEERS[i].name();
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                let _ = writeln!(
                    md,
                    "| {name} | not run: {} | | | | | | |",
                    e.replace('|', "/")
                );
                r.error("peers", format!("{name}: {e}"));
                json.push(J::obj([
                    ("peer", J::from(name)),
                    ("error", J::from(e.as_str())),
                ]));
                continue;
            }
        };
        let sum = summarize(&t.lateness_ms);
        let alive: usize = t.survivors.iter().sum();
        let (lat_vs, cpu_vs, alive_vs) = match ours {
            Some(o) => (
                match (p50(t), p50(o)) {
                    (Some(a), Some(b)) if t.not_ended > 0 => format!("≥ {}", ratio(a, b)),
                    (Some(a), Some(b)) => ratio(a, b),
                    _ => "—".into(),
                },
                ratio(t.cpu_s, o.cpu_s),
                ratio(alive as f64, o.survivors.iter().sum::<usize>() as f64),
            ),
            None => ("—".into(), "—".into(), "—".into()),
        };
        let _ = writeln!(
            md,
            "| {} | {}{} ms | {lat_vs} | {} | {:.3} s ({}) | {cpu_vs} | {} of {} ({}, {}, {}) | {alive_vs} |",
            t.name,
            if t.not_ended > 0 { "≥ " } else { "" },
            sum.map_or("—".into(), |s| format!("{:.0} / {:.0}", s.p50, s.max)),
            t.not_ended,
            t.cpu_s,
            t.cpu_what,
            alive,
            3 * SESSIONS,
            t.survivors[0],
            t.survivors[1],
            t.survivors[2],
        );
        let key = t.name.replace(' ', "_").to_lowercase();
        r.figure(
            &format!("peers.{key}.lateness_p50_ms"),
            &format!(
                "peers: {}: idle lateness after the last keystroke, p50",
                t.name
            ),
            sum.map(|s| s.p50),
            "ms",
        );
        r.figure(
            &format!("peers.{key}.escapes_alive"),
            &format!(
                "peers: {}: escapes alive after the session ended (of {})",
                t.name,
                3 * SESSIONS
            ),
            Some(alive as f64),
            "",
        );
        json.push(J::obj([
            ("peer", J::from(t.name)),
            ("lateness_ms", summary_json(sum)),
            ("not_ended", J::from(t.not_ended)),
            ("cpu_s", J::num(t.cpu_s)),
            ("cpu_what", J::from(t.cpu_what.as_str())),
            (
                "escapes_alive",
                J::Obj(
                    ESCAPES
                        .iter()
                        .zip(t.survivors)
                        .map(|((k, _), n)| ((*k).to_owned(), J::from(n)))
                        .collect(),
                ),
            ),
        ]));
    }
    r.section("Peers side by side", md);
    r.detail("peers", J::Arr(json));
}
