//! Runs the engine's re-validation checks as child processes, at most
//! [`MAX_RUNNING`] at once (the rest wait in line), and holds the replies
//! of `timeoutctl revalidate` until the checks they wait for are answered.
//!
//! Nothing here blocks the event loop: children are started on a thread of
//! their own ([`CheckStarter`]), whose bell and each running child's pidfd
//! are in the loop's poll set, with each child's deadline in its timeout;
//! the loop then calls [`Checks::step`], which hands over what may start,
//! takes the children that started, collects what ended and kills what is
//! overdue.

use std::collections::{BTreeSet, VecDeque};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use session_timeout_proto::Response;

use crate::config::revalidate::RevalidateConfig;
use crate::core::revalidate::{verdict, CheckOutcome, Verdict};
use crate::engine::Check;
use crate::host::identity::check_starter::{CheckStarter, StartRequest, Started};
use crate::host::identity::pam_account::RunningCheck;

/// Checks running at once; a directory is never asked more than this in parallel.
pub(crate) const MAX_RUNNING: usize = 4;
/// A `timeoutctl revalidate` reply waits at most the check timeout plus
/// this, for checks that had to wait in line; later answers are only logged.
const REPLY_SLACK: Duration = Duration::from_secs(5);

/// A reply held until its checks are answered.
struct HeldReply {
    conn: u64,
    waiting: BTreeSet<u32>,
    /// What was found, for users whose sessions it concerned.
    lines: Vec<String>,
    /// Users found valid, listed after the others while the reply has room.
    valid: Vec<String>,
    deadline: Instant,
}

/// A reply's message must fit a protocol string (64 KiB); beyond this the
/// valid users are only counted.
const MESSAGE_ROOM: usize = 60_000;

/// The checks waiting, the ones running, and the replies held for them.
pub(crate) struct Checks {
    exe: PathBuf,
    service: String,
    timeout: Duration,
    waiting: VecDeque<Check>,
    /// Handed to the starter, by tag; they count as running.
    starting: Vec<(u64, Check)>,
    next_tag: u64,
    /// None if its thread could not be made: then checks start in the loop.
    starter: Option<CheckStarter>,
    running: Vec<(Check, RunningCheck)>,
    /// Killed children not reaped yet.
    dying: Vec<RunningCheck>,
    held: Vec<HeldReply>,
}

impl Checks {
    /// Checks run `exe --pam-account-check`: the daemon's own binary.
    pub(crate) fn new(cfg: &RevalidateConfig) -> Self {
        let mut c = Self {
            exe: PathBuf::from("/proc/self/exe"),
            service: String::new(),
            timeout: cfg.timeout,
            waiting: VecDeque::new(),
            starting: Vec::new(),
            next_tag: 0,
            starter: CheckStarter::new().ok(),
            running: Vec::new(),
            dying: Vec::new(),
            held: Vec::new(),
        };
        c.configure(cfg);
        c
    }

    /// A reload: later checks use the new service and timeout.
    pub(crate) fn configure(&mut self, cfg: &RevalidateConfig) {
        self.service.clone_from(&cfg.service);
        self.timeout = cfg.timeout;
    }

    /// Scheduled checks go to the back of the line.
    pub(crate) fn enqueue(&mut self, checks: Vec<Check>) {
        self.waiting.extend(checks);
    }

    /// Checks an administrator asked for go first; the reply on `conn` is
    /// held until every uid in `wait_for` is answered (or the time is up).
    pub(crate) fn request(&mut self, conn: u64, start: Vec<Check>, wait_for: Vec<u32>) {
        for c in start.into_iter().rev() {
            self.waiting.push_front(c);
        }
        let wait = self.timeout + REPLY_SLACK;
        self.held.push(HeldReply {
            conn,
            waiting: wait_for.into_iter().collect(),
            lines: Vec::new(),
            valid: Vec::new(),
            deadline: Instant::now() + wait,
        });
    }

    /// The starter's bell and the pidfds of the running children, for the
    /// poll set.
    pub(crate) fn poll_fds(&self) -> Vec<RawFd> {
        let bell = self.starter.as_ref().map(CheckStarter::bell_fd);
        bell.into_iter()
            .chain(self.running.iter().filter_map(|(_, r)| r.exit_fd()))
            .collect()
    }

    /// How long the loop may sleep before something here is due.
    pub(crate) fn time_to_next(&self, now: Instant) -> Option<Duration> {
        let run = self.running.iter().map(|(_, r)| r.deadline());
        let held = self.held.iter().map(|h| h.deadline);
        // Killed children are looked at again soon, to reap them.
        let dying = (!self.dying.is_empty()).then(|| now + Duration::from_millis(100));
        run.chain(held)
            .chain(dying)
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Takes what started, collects what ended and hands over what may
    /// start; a child that cannot be started is an answer too (`Failed`).
    pub(crate) fn step(&mut self, now: Instant) -> Vec<(Check, CheckOutcome)> {
        let mut done = self.take_started();
        let mut i = 0;
        while i < self.running.len() {
            match self.running[i].1.poll(now) {
                Some(outcome) => {
                    let (check, child) = self.running.swap_remove(i);
                    if outcome == CheckOutcome::TimedOut {
                        self.dying.push(child);
                    }
                    done.push((check, outcome));
                }
                None => i += 1,
            }
        }
        self.dying.retain_mut(|c| !c.reaped());
        while self.running.len() + self.starting.len() < MAX_RUNNING {
            let Some(check) = self.waiting.pop_front() else {
                break;
            };
            if let Some(failed) = self.start(check) {
                done.push((failed, CheckOutcome::Failed));
            }
        }
        done
    }

    /// The started children join the running ones; a start that failed is
    /// an answer.
    fn take_started(&mut self) -> Vec<(Check, CheckOutcome)> {
        // The bell rings only for a start handed over.
        let Some(starter) = self.starter.as_mut().filter(|_| !self.starting.is_empty()) else {
            return Vec::new();
        };
        let mut failed = Vec::new();
        for Started { tag, check: child } in starter.take_started() {
            let Some(at) = self.starting.iter().position(|(t, _)| *t == tag) else {
                continue;
            };
            let (_, check) = self.starting.swap_remove(at);
            match child {
                Ok(child) => self.running.push((check, child)),
                Err(_) => failed.push((check, CheckOutcome::Failed)),
            }
        }
        failed
    }

    /// Hands `check` to the starter (or starts it here if there is none);
    /// gives it back if it could not start.
    fn start(&mut self, check: Check) -> Option<Check> {
        let tag = self.next_tag;
        self.next_tag += 1;
        let req = StartRequest {
            tag,
            exe: self.exe.clone(),
            service: self.service.clone(),
            user: check.user.clone(),
            timeout: self.timeout,
        };
        let req = match &self.starter {
            Some(starter) => match starter.submit(req) {
                Ok(()) => {
                    self.starting.push((tag, check));
                    return None;
                }
                Err(req) => {
                    // The thread is gone: start in the loop from now on,
                    // and again what it had not given back.
                    self.starter = None;
                    for (_, c) in self.starting.drain(..).rev() {
                        self.waiting.push_front(c);
                    }
                    req
                }
            },
            None => req,
        };
        match RunningCheck::start(&req.exe, &req.service, &req.user, req.timeout) {
            Ok(child) => {
                self.running.push((check, child));
                None
            }
            Err(_) => Some(check),
        }
    }

    /// One answer, for the replies that wait for it.
    pub(crate) fn answered(&mut self, uid: u32, outcome: CheckOutcome, line: &str) {
        let valid = verdict(outcome) == Verdict::Valid;
        for h in &mut self.held {
            if h.waiting.remove(&uid) {
                let list = if valid { &mut h.valid } else { &mut h.lines };
                list.push(line.to_owned());
            }
        }
    }

    /// The held replies that are complete or out of time.
    pub(crate) fn replies_due(&mut self, now: Instant) -> Vec<(u64, Response)> {
        let mut out = Vec::new();
        self.held.retain_mut(|h| {
            if !h.waiting.is_empty() && now < h.deadline {
                return true;
            }
            if !h.waiting.is_empty() {
                h.lines.push(format!(
                    "{} check(s) not answered yet (uid {}): their results will be logged",
                    h.waiting.len(),
                    h.waiting
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
            out.push((
                h.conn,
                Response::Done {
                    message: message(&h.lines, &h.valid),
                },
            ));
            false
        });
        out
    }
}

/// The findings first, then the valid users while there is room, then how
/// many valid ones did not fit.
fn message(findings: &[String], valid: &[String]) -> String {
    let mut out: Vec<&str> = findings.iter().map(String::as_str).collect();
    let mut room = MESSAGE_ROOM.saturating_sub(out.iter().map(|l| l.len() + 1).sum());
    let mut shown = 0;
    for v in valid {
        if v.len() + 1 > room {
            break;
        }
        room -= v.len() + 1;
        out.push(v);
        shown += 1;
    }
    let mut text = out.join("\n");
    if shown < valid.len() {
        text.push_str(&format!(
            "\n{} more user(s) valid, sessions kept",
            valid.len() - shown
        ));
    }
    text
}

impl Checks {
    #[cfg(test)]
    fn with_exe(mut self, exe: &str) -> Self {
        self.exe = PathBuf::from(exe);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(uid: u32) -> Check {
        Check {
            uid,
            user: format!("u{uid}"),
        }
    }

    fn cfg(timeout_ms: u64) -> RevalidateConfig {
        RevalidateConfig {
            timeout: Duration::from_millis(timeout_ms),
            ..RevalidateConfig::default()
        }
    }

    /// An executable script `name` with `body`, written by a shell of its
    /// own: had this process opened it for writing, a child another test
    /// forks meanwhile would hold that fd until its exec, and starting the
    /// script could fail with ETXTBSY.
    fn script(name: &str, body: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("{name}-{}.sh", std::process::id()));
        let ok = std::process::Command::new("/bin/sh")
            .args([
                "-c",
                "printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"",
                "sh",
                body,
            ])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "writing {}", path.display());
        path
    }

    /// Steps until `n` answers came, as the loop would (without the poll).
    fn answers(c: &mut Checks, n: usize) -> Vec<(Check, CheckOutcome)> {
        let until = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < n {
            assert!(Instant::now() < until, "only {got:?}");
            got.extend(c.step(Instant::now()));
            std::thread::sleep(Duration::from_millis(2));
        }
        got
    }

    #[test]
    fn at_most_four_run_at_once_and_the_rest_wait() {
        // `sleep` ignores the flag's arguments only if they are numbers; use
        // a shell that sleeps a little and answers.
        let script = script("st-checks", "#!/bin/sh\nsleep 0.2\necho pam_result=0\n");
        let mut c = Checks::new(&cfg(5000)).with_exe(script.to_str().unwrap());
        c.enqueue((1..=6).map(check).collect());
        assert!(c.step(Instant::now()).is_empty());
        // Handed to the starter, not started by the loop itself.
        assert_eq!(c.starting.len(), MAX_RUNNING);
        assert!(c.running.is_empty());
        assert_eq!(c.poll_fds().len(), 1, "the starter's bell");
        assert_eq!(c.waiting.len(), 2);
        let until = Instant::now() + Duration::from_secs(10);
        while c.running.len() < MAX_RUNNING {
            assert!(Instant::now() < until, "the starter did not start them");
            assert!(c.step(Instant::now()).is_empty());
            assert_eq!(c.running.len() + c.starting.len(), MAX_RUNNING);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(c.poll_fds().len(), 1 + MAX_RUNNING);
        let got = answers(&mut c, 6);
        assert!(got.iter().all(|(_, o)| *o == CheckOutcome::Returned(0)));
        let _ = std::fs::remove_file(&script);
    }

    #[test]
    fn a_hung_check_times_out_and_a_missing_binary_fails() {
        let mut c = Checks::new(&cfg(100)).with_exe("/bin/sleep");
        // `sleep --pam-account-check ...` fails at once: an answer-less exit.
        c.enqueue(vec![check(1)]);
        let got = answers(&mut c, 1);
        assert_eq!(got[0].1, CheckOutcome::Failed);
        let mut c = Checks::new(&cfg(100)).with_exe("/nonexistent/timeoutd");
        c.enqueue(vec![check(2)]);
        assert_eq!(answers(&mut c, 1)[0].1, CheckOutcome::Failed);
        let script = script("st-hang", "#!/bin/sh\nsleep 30\n");
        let mut c = Checks::new(&cfg(100)).with_exe(script.to_str().unwrap());
        c.enqueue(vec![check(3)]);
        assert_eq!(answers(&mut c, 1)[0].1, CheckOutcome::TimedOut);
        let _ = std::fs::remove_file(&script);
    }

    #[test]
    fn without_a_starter_the_loop_starts_checks_itself() {
        let mut c = Checks::new(&cfg(5000)).with_exe("/bin/true");
        c.starter = None;
        c.enqueue(vec![check(1), check(2)]);
        assert!(c.step(Instant::now()).is_empty());
        assert_eq!(c.running.len(), 2);
        assert!(c.starting.is_empty());
        let got = answers(&mut c, 2);
        assert!(
            got.iter().all(|(_, o)| *o == CheckOutcome::Failed),
            "{got:?}"
        );
    }

    #[test]
    fn a_held_reply_is_sent_when_its_checks_are_answered_or_time_is_up() {
        let mut c = Checks::new(&cfg(100));
        c.request(7, vec![check(1), check(2)], vec![1, 2]);
        assert_eq!(
            c.waiting.front(),
            Some(&check(1)),
            "asked-for checks go first"
        );
        let now = Instant::now();
        c.answered(1, CheckOutcome::Returned(0), "u1: valid");
        assert!(c.replies_due(now).is_empty());
        c.answered(2, CheckOutcome::Returned(13), "u2: invalid");
        let due = c.replies_due(now);
        assert_eq!(
            due,
            vec![(
                7,
                Response::Done {
                    message: "u2: invalid\nu1: valid".into()
                }
            )]
        );
        c.request(8, Vec::new(), vec![3]);
        let late = Instant::now() + Duration::from_secs(6);
        let due = c.replies_due(late);
        assert!(
            matches!(&due[0].1, Response::Done { message } if message.contains("not answered yet (uid 3)")),
            "{due:?}"
        );
    }

    #[test]
    fn a_reply_about_thousands_of_users_fits_a_message() {
        let valid: Vec<String> = (0..5000)
            .map(|i| format!("user{i} (uid {i}): PAM_SUCCESS: valid, sessions kept"))
            .collect();
        let text = message(&["bad (uid 9): PAM_ACCT_EXPIRED".into()], &valid);
        assert!(text.len() <= MESSAGE_ROOM + 64, "{}", text.len());
        assert!(text.starts_with("bad (uid 9)"));
        assert!(
            text.ends_with("more user(s) valid, sessions kept"),
            "{text}"
        );
    }
}
