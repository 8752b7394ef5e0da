//! Writes a synthetic auth log for `timeoutctl report`: the benchmark corpus
//! (1,000,000 lines) and the data behind docs/report-example.svg.
//!
//! `cargo run --release -p timeoutctl --example report_corpus -- OUT [LINES] [FORMAT]`
//! FORMAT: `traditional` (default, rsyslog auth.log), `iso` (journalctl -o
//! short-iso), `json` (journalctl -o json) or `rfc5424`.
//!
//! The mix is deterministic: about 80% lines of other programs (sshd, CRON,
//! sudo, systemd-logind) and other timeoutd events, the rest session
//! summaries (with up to 16 recorded idle gaps) and dry-run expiries, and a
//! few malformed summaries. Twenty hosts, 300 users, four rules.

use std::fs::File;
use std::io::{BufWriter, Write};

/// xorshift64*: deterministic and good enough for a corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Log-uniform-ish seconds between `lo` and `hi`.
    fn log_between(&mut self, lo: f64, hi: f64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (lo * (hi / lo).powf(u)) as u64
    }
}

const RULES: [(&str, &str, &str); 4] = [
    ("staff", "900", "28800"),
    ("contractors", "600", "14400"),
    ("batch", "off", "86400"),
    ("defaults", "1800", "off"),
];
const ENDS: [&str; 8] = [
    "logout",
    "logout",
    "logout",
    "leader_gone",
    "idle",
    "max",
    "killed",
    "revoked",
];

/// One summary's fields after `event=session_summary`.
fn summary(r: &mut Rng, id: u64, user: u64) -> String {
    let (rule, li, lm) =
        RULES[[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3][(user % 20) as usize]];
    let end = ENDS[r.below(ENDS.len() as u64) as usize];
    let mut duration = r.log_between(20.0, 40_000.0);
    if let (Ok(m), "max") = (lm.parse::<u64>(), end) {
        duration = m;
    }
    let ngaps = r.below(17).min(duration / 60);
    let mut gaps: Vec<(u64, u64)> = (0..ngaps)
        .map(|_| {
            let len = r.log_between(30.0, (duration as f64 / 3.0).max(31.0));
            (r.below(duration.saturating_sub(len).max(1)), len)
        })
        .collect();
    if let (Ok(l), "idle") = (li.parse::<u64>(), end) {
        duration = duration.max(l + 60);
        gaps.truncate(15);
        gaps.push((duration - l, l));
    }
    gaps.sort_unstable();
    let idle_max = gaps.iter().map(|g| g.1).max().unwrap_or(0);
    let gap_text: Vec<String> = gaps.iter().map(|(o, l)| format!("{o}:{l}")).collect();
    let dry = if rule == "contractors" { r.below(3) } else { 0 };
    format!(
        "event=session_summary v=1 id={id} user=u{user} uid={} service=sshd tty=pts/{} \
         rhost=10.1.{}.{} rule={rule} duration={duration} active={} idle_max={idle_max} \
         gaps={} warnings={} tamper={} end={end} dry_run_expiries={dry} limit_idle={li} limit_max={lm}",
        10_000 + user,
        r.below(40),
        r.below(256),
        r.below(256),
        duration.saturating_sub(idle_max) / 2,
        gap_text.join(","),
        r.below(3),
        u64::from(r.below(50) == 0),
    )
}

/// Any other line: (program, message).
fn other(r: &mut Rng, id: u64) -> (&'static str, String) {
    let user = r.below(300);
    match r.below(8) {
        0 => ("sshd", format!("Accepted publickey for u{user} from 10.1.2.3 port {} ssh2: ED25519 SHA256:abcdefghijklmnop", r.below(65_000))),
        1 => ("sshd", format!("pam_unix(sshd:session): session opened for user u{user}(uid={}) by (uid=0)", 10_000 + user)),
        2 => ("CRON", "pam_unix(cron:session): session closed for user root".to_owned()),
        3 => ("sudo", format!("u{user} : TTY=pts/3 ; PWD=/home/u{user} ; USER=root ; COMMAND=/usr/bin/systemctl status nginx")),
        4 => ("systemd-logind", format!("New session {id} of user u{user}.")),
        5 => ("timeoutd", format!("event=session_open id={id} user=u{user} uid={} service=sshd tty=pts/1 rhost=10.1.2.3 pid=4242 rule=staff", 10_000 + user)),
        6 => ("timeoutd", format!("event=session_warn id={id} user=u{user} uid=1 service=sshd tty=pts/1 rhost=10.1.2.3 pid=4242 rule=staff reason=idle in=2m")),
        _ => ("timeoutd", format!("event=session_close id={id} user=u{user} uid=1 service=sshd tty=pts/1 rhost=10.1.2.3 pid=4242 rule=staff reason=logout duration=1h2m")),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Writes one line in `format` at Unix time `t` (treated as UTC).
fn line(
    out: &mut impl Write,
    format: &str,
    t: u64,
    host: &str,
    prog: &str,
    msg: &str,
) -> std::io::Result<()> {
    let (days, s) = (t / 86_400, t % 86_400);
    // 2026-11-01 is day 20758; the corpus stays within November 2026.
    let day = days - 20_758 + 1;
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    match format {
        "iso" => writeln!(
            out,
            "2026-11-{day:02}T{h:02}:{m:02}:{sec:02}+0000 {host} {prog}[812]: {msg}"
        ),
        "rfc5424" => writeln!(
            out,
            "<86>1 2026-11-{day:02}T{h:02}:{m:02}:{sec:02}.000Z {host} {prog} 812 - - {msg}"
        ),
        "json" => {
            let m = msg.replace('\\', "\\\\").replace('"', "\\\"");
            writeln!(
                out,
                r#"{{"__REALTIME_TIMESTAMP":"{t}000000","_HOSTNAME":"{host}","SYSLOG_IDENTIFIER":"{prog}","PRIORITY":"6","_PID":"812","MESSAGE":"{m}"}}"#
            )
        }
        _ => writeln!(
            out,
            "{} {day:>2} {h:02}:{m:02}:{sec:02} {host} {prog}[812]: {msg}",
            MONTHS[10]
        ),
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: report_corpus OUT [LINES] [traditional|iso|json|rfc5424]");
        std::process::exit(2);
    };
    let lines: u64 = args
        .get(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let format = args.get(3).map_or("traditional", String::as_str);
    let mut out = BufWriter::new(File::create(path)?);
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let start = 1_793_491_200u64 + 3600; // 2026-11-01T01:00:00Z
    let step = (20 * 86_400 / lines.max(1)).max(1);
    for i in 0..lines {
        let t = start + i * step;
        let host = format!("web{}", r.below(20) + 1);
        let roll = r.below(1000);
        let (prog, msg) = if roll < 170 {
            {
                let user = r.below(300);
                ("timeoutd", summary(&mut r, i, user))
            }
        } else if roll < 195 {
            let u = r.below(300);
            ("timeoutd", format!("event=session_expired id={i} user=u{u} uid=1 service=sshd tty=pts/1 rhost=10.1.2.3 pid=1 rule=contractors reason=idle deadline={t} idle_for=10m duration=1h dry_run=1"))
        } else if roll < 197 {
            (
                "timeoutd",
                format!("event=session_summary v=2 id={i} user=u1"),
            )
        } else {
            other(&mut r, i)
        };
        line(&mut out, format, t, &host, prog, &msg)?;
    }
    out.flush()
}
