//! Command-line options. `--quick` is the CI preset; every duration and
//! count can be set on its own.

use std::path::PathBuf;

pub const USAGE: &str = "\
usage: st-bench [--quick] [--out FILE] [--markdown FILE] [options]

Benchmarks timeoutd and pam_session_timeout.so on this host (issue 7) and
prints a results table in markdown and JSON, with PASS/FAIL per target.
Must run as root. Build first: cargo build --release --workspace

  --quick                  CI preset: 200 sessions, short windows (~4 min),
                           no peers
  --peers                  only the peers' phase (same as --only peers)
  --out FILE               write the JSON results here too
  --markdown FILE          write the markdown table here too
  --runs N                 run every phase N times in a row (peers only in
                           the last run); the reports show each run (1)
  --write-doc FILE         put the runs' targets side by side, and each run's
                           report, between the st-bench markers of FILE
                           (docs/BENCHMARKS.md); the prose around them stays
  --bin-dir DIR            where timeoutd and libpam_session_timeout.so are
                           (default: the directory of this executable)
  --only LIST              phases to run, comma-separated, of:
                           overhead,storm,absolute,idle,witness,revoke,kill,
                           revalidate,report,scale,peers
                           (report also needs: cargo build --release
                           -p timeoutctl --example report_corpus)
  --scale LIST             session counts of the scale phase (1000,10000)
  --steady-secs S          steady-state sampling window per count (200)
  --warn-after S           the scale policy's first idle warning falls S
                           seconds after login (120), inside the window
  --cpu-window S           sliding window of the CPU target (120)
  --pam-leaders K          sessions of each scale count opened through libpam (100)
  --iterations N           login overhead iterations per stack (2000)
  --storm N                registrations in the login storm (1000)
  --storm-clients C        concurrent clients in the storm (32)
  --precision-sessions N   sessions per enforcement-precision run (1000)
  --abs-spread S           registrations spread over S seconds (20)
  --abs-max S              absolute limit of those sessions (30)
  --idle-limit S           idle limit of the idle-precision run (20)
  --idle-input S           input lasts up to S seconds per session (16)
  --revoke-sessions N      sessions of the revoked user (1000)
  --kill-sessions N        sessions per kill path, 10 processes each (1000)
  --kill-max S             absolute limit of those sessions (20)
  --label TEXT             a note for the results (e.g. the commit measured)
  --keep                   keep the temporary directory (debugging)
  --help
";

#[derive(Debug, Clone)]
pub struct Opts {
    pub quick: bool,
    pub out: Option<PathBuf>,
    pub markdown: Option<PathBuf>,
    pub write_doc: Option<PathBuf>,
    pub repeat: usize,
    pub bin_dir: Option<PathBuf>,
    pub only: Vec<String>,
    pub scale: Vec<usize>,
    pub steady_secs: u64,
    pub warn_after: u64,
    pub cpu_window: u64,
    pub pam_leaders: usize,
    pub iterations: usize,
    pub storm: usize,
    pub storm_clients: usize,
    pub precision_sessions: usize,
    pub abs_spread: u64,
    pub abs_max: u64,
    pub idle_limit: u64,
    pub idle_input: u64,
    pub revoke_sessions: usize,
    pub kill_sessions: usize,
    pub kill_max: u64,
    pub keep: bool,
    pub label: Option<String>,
}

pub const PHASES: [&str; 11] = [
    "overhead",
    "storm",
    "absolute",
    "idle",
    "witness",
    "revoke",
    "kill",
    "revalidate",
    "report",
    "scale",
    "peers",
];

impl Opts {
    fn full() -> Opts {
        Opts {
            quick: false,
            out: None,
            markdown: None,
            write_doc: None,
            repeat: 1,
            bin_dir: None,
            only: PHASES.iter().map(|p| (*p).to_owned()).collect(),
            scale: vec![1000, 10_000],
            steady_secs: 200,
            warn_after: 120,
            cpu_window: 120,
            pam_leaders: 100,
            iterations: 2000,
            storm: 1000,
            storm_clients: 32,
            precision_sessions: 1000,
            abs_spread: 20,
            abs_max: 30,
            idle_limit: 20,
            idle_input: 16,
            revoke_sessions: 1000,
            kill_sessions: 1000,
            kill_max: 20,
            keep: false,
            label: None,
        }
    }

    fn quick() -> Opts {
        Opts {
            quick: true,
            scale: vec![200],
            // The first warning ~15 s into the window, the worst 8 s
            // window around it with room after.
            steady_secs: 26,
            warn_after: 20,
            cpu_window: 8,
            pam_leaders: 20,
            iterations: 2000,
            storm: 200,
            precision_sessions: 200,
            abs_spread: 2,
            abs_max: 4,
            idle_limit: 4,
            idle_input: 3,
            revoke_sessions: 200,
            kill_sessions: 100,
            kill_max: 5,
            // The peers' phase takes minutes; `--only peers` runs it.
            only: PHASES
                .iter()
                .filter(|p| **p != "peers")
                .map(|p| (*p).to_owned())
                .collect(),
            ..Opts::full()
        }
    }

    pub fn runs(&self, phase: &str) -> bool {
        self.only.iter().any(|p| p == phase)
    }

    /// Parses the arguments; `Err("")` means --help.
    pub fn parse(args: &[String]) -> Result<Opts, String> {
        let mut o = if args.iter().any(|a| a == "--quick") {
            Opts::quick()
        } else {
            Opts::full()
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--quick" => {}
                "--peers" => o.only = vec!["peers".into()],
                "--help" | "-h" => return Err(String::new()),
                "--keep" => o.keep = true,
                "--label" => o.label = Some(value()?),
                "--out" => o.out = Some(value()?.into()),
                "--markdown" => o.markdown = Some(value()?.into()),
                "--write-doc" => o.write_doc = Some(value()?.into()),
                "--runs" => o.repeat = num::<usize>(&value()?)?.max(1),
                "--bin-dir" => o.bin_dir = Some(value()?.into()),
                "--only" => {
                    o.only = value()?.split(',').map(str::to_owned).collect();
                    if let Some(bad) = o.only.iter().find(|p| !PHASES.contains(&p.as_str())) {
                        return Err(format!("unknown phase {bad:?}"));
                    }
                }
                "--scale" => {
                    o.scale = value()?
                        .split(',')
                        .map(|n| n.parse().map_err(|_| format!("bad count {n:?}")))
                        .collect::<Result<_, _>>()?
                }
                "--steady-secs" => o.steady_secs = num(&value()?)?,
                "--warn-after" => o.warn_after = num(&value()?)?,
                "--cpu-window" => o.cpu_window = num(&value()?)?,
                "--pam-leaders" => o.pam_leaders = num(&value()?)?,
                "--iterations" => o.iterations = num(&value()?)?,
                "--storm" => o.storm = num(&value()?)?,
                "--storm-clients" => o.storm_clients = num::<usize>(&value()?)?.max(1),
                "--precision-sessions" => o.precision_sessions = num(&value()?)?,
                "--abs-spread" => o.abs_spread = num(&value()?)?,
                "--abs-max" => o.abs_max = num(&value()?)?,
                "--idle-limit" => o.idle_limit = num(&value()?)?,
                "--idle-input" => o.idle_input = num(&value()?)?,
                "--revoke-sessions" => o.revoke_sessions = num(&value()?)?,
                "--kill-sessions" => o.kill_sessions = num(&value()?)?,
                "--kill-max" => o.kill_max = num(&value()?)?,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if o.abs_max <= o.abs_spread {
            return Err("--abs-max must be longer than --abs-spread".into());
        }
        if o.idle_limit < 2 || o.abs_max < 2 || o.kill_max < 2 {
            return Err("limits must be at least 2 s".into());
        }
        Ok(o)
    }

    /// The largest number of leaders alive at once.
    pub fn max_sessions(&self) -> usize {
        let mut n = 0;
        for (phase, count) in [
            (
                "scale",
                // The list phase's login burst comes on top.
                self.scale.iter().copied().max().unwrap_or(0) + self.storm,
            ),
            ("storm", self.storm),
            ("absolute", self.precision_sessions),
            ("idle", self.precision_sessions),
            ("revoke", self.revoke_sessions),
            (
                "revalidate",
                crate::phases::revalidate::USERS * crate::phases::revalidate::PER_USER,
            ),
            ("kill", self.kill_sessions),
        ] {
            if self.runs(phase) {
                n = n.max(count);
            }
        }
        n
    }
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("bad number {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn presets_and_overrides() {
        let o = Opts::parse(&args("--quick --scale 50,60 --only scale,idle")).unwrap();
        assert!(o.quick);
        assert_eq!(o.scale, [50, 60]);
        assert!(o.runs("idle") && !o.runs("storm"));
        let f = Opts::parse(&[]).unwrap();
        assert_eq!(f.scale, [1000, 10_000]);
        assert_eq!(f.max_sessions(), 11_000);
        assert!(Opts::parse(&args("--only nope")).is_err());
        assert_eq!(Opts::parse(&args("--help")).unwrap_err(), "");
    }
}
