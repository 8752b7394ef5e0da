//! One pass over /proc for the kill's final step (stop-then-kill, where no
//! writable cgroup exists), shared by every session due in the same kill
//! round, and what it takes for a pass to count towards a proof that a
//! scope is empty or stopped.
//!
//! A listing of /proc is not atomic: a process that forks and exits while
//! it is read (a pid hopper) can leave a child the listing never shows. So
//! every pid handed out (the last field of `/proc/loadavg`) since the
//! previous pass of the chain ended is read directly, until a look finds
//! no new one. A pid handed out but not readable is either gone already or
//! a child still being created (the kernel hands out the pid before the
//! task appears in /proc): the pass is then *incomplete* and proves
//! nothing. Two consecutive complete passes whose scope processes are all
//! stopped (or none) prove that no process of the scope can still run:
//! one that ran unseen must have been created during or between them (its
//! pid was read, so it was seen) or before the first, by a parent still
//! inside fork() then, which the first pass saw running.

use std::collections::HashMap;

use crate::core::session::ProcRef;
use crate::engine::ProcFacts;
use crate::host::processes::facts_of;
use crate::host::procfs;

/// Looks for new pids in one pass before it is given up as incomplete.
const MAX_LOOKS: u32 = 64;
/// A chain whose pass ended this many pids ago is not followed (a pass
/// would read them all); the next pass starts a new chain.
const MAX_CHAIN_GAP: u32 = 4096;

/// A process of some audit session, as one pass saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    pub(crate) facts: ProcFacts,
    pub(crate) stopped: bool,
}

/// Every live process with an audit session id, by session id.
#[derive(Debug, Default)]
pub(crate) struct Census {
    by_sid: HashMap<u32, Vec<Member>>,
    /// Every pid handed out during the pass (and since the previous pass
    /// ended, if `chained`) was read.
    pub(crate) complete: bool,
    /// The pass read on from where the previous one ended.
    pub(crate) chained: bool,
    /// The last pid handed out when the pass ended.
    pub(crate) ended_at: u32,
}

impl Census {
    /// Takes one pass; `chain` is where the previous pass ended, if this
    /// one follows it (it then also reads the pids handed out in between).
    pub(crate) fn take(chain: Option<u32>) -> Census {
        let me = std::process::id();
        let start = last_pid();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return Census::default();
        };
        let mut pending: Vec<(u32, u32)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid > 1 && *pid != me)
            .filter_map(|pid| Some((pid, sessionid(pid).ok()?)))
            .filter(|(_, sid)| *sid != procfs::AUDIT_UNSET)
            .collect();
        let chain = chain.filter(|c| start.wrapping_sub(*c) <= MAX_CHAIN_GAP);
        let mut last = chain.unwrap_or(start);
        let mut census = Census {
            complete: true,
            chained: chain.is_some(),
            ..Census::default()
        };
        let mut read: Vec<u32> = Vec::new();
        let mut settled = false;
        for _ in 0..MAX_LOOKS {
            census.read_facts(&mut pending, &mut read);
            let now = last_pid();
            if now == last {
                settled = true;
                break;
            }
            for pid in pids_between(last, now).filter(|pid| *pid > 1 && *pid != me) {
                match sessionid(pid) {
                    Ok(sid) if sid != procfs::AUDIT_UNSET => pending.push((pid, sid)),
                    Ok(_) => {}
                    Err(_) => census.complete = false,
                }
            }
            last = now;
        }
        census.complete &= settled;
        census.ended_at = last;
        census
    }

    fn read_facts(&mut self, pending: &mut Vec<(u32, u32)>, read: &mut Vec<u32>) {
        pending.sort_unstable();
        pending.dedup();
        for (pid, sid) in pending.drain(..) {
            if read.contains(&pid) {
                continue;
            }
            read.push(pid);
            let Ok(p) = procfs::proc_info(pid) else {
                continue; // gone since it was listed
            };
            if p.sessionid != sid || p.exited() {
                continue;
            }
            let stopped = p.stopped();
            let member = Member {
                facts: facts_of(p),
                stopped,
            };
            self.by_sid.entry(sid).or_default().push(member);
        }
    }

    /// The processes of one audit session.
    pub(crate) fn session(&self, sid: u32) -> Vec<ProcFacts> {
        self.by_sid
            .get(&sid)
            .map(|m| m.iter().map(|m| m.facts).collect())
            .unwrap_or_default()
    }

    /// Whether the pass saw `p` stopped; `None` if it did not see it.
    pub(crate) fn stopped(&self, p: ProcRef) -> Option<bool> {
        self.by_sid
            .values()
            .flatten()
            .find(|m| m.facts.proc == p)
            .map(|m| m.stopped)
    }
}

/// The audit session id of a process; an error if it cannot be read (gone,
/// or not yet visible).
fn sessionid(pid: u32) -> std::io::Result<u32> {
    match std::fs::read_to_string(format!("/proc/{pid}/sessionid")) {
        Ok(t) => Ok(t.trim().parse::<u32>().unwrap_or(procfs::AUDIT_UNSET)),
        // A kernel without CONFIG_AUDIT has no such file for any process.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && proc_dir_exists(pid) => {
            Ok(procfs::AUDIT_UNSET)
        }
        Err(e) => Err(e),
    }
}

fn proc_dir_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid last handed out (the last field of /proc/loadavg).
pub(crate) fn last_pid() -> u32 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

/// Pids handed out after `from` up to `to`, across a wrap at pid_max.
pub(crate) fn pids_between(from: u32, to: u32) -> impl Iterator<Item = u32> {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(4_194_304);
    let wrapped = to < from;
    let first_end = if wrapped { max } else { to };
    let second_end = if wrapped { to } else { 1 };
    (from.saturating_add(1)..=first_end).chain(2..=second_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_between_follows_a_wrap() {
        assert_eq!(pids_between(5, 8).collect::<Vec<_>>(), [6, 7, 8]);
        assert_eq!(pids_between(8, 8).count(), 0);
        let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .map_or(4_194_304, |t| t.trim().parse().unwrap_or(4_194_304));
        let wrapped: Vec<u32> = pids_between(max - 1, 3).collect();
        assert_eq!(wrapped, [max, 2, 3]);
    }

    #[test]
    fn a_pass_sees_this_process_group_only_by_its_session() {
        let c = Census::take(None);
        assert!(!c.chained, "a first pass follows no chain");
        assert!(Census::take(Some(c.ended_at)).chained);
        let me = std::process::id();
        assert!(c.by_sid.values().flatten().all(|m| m.facts.proc.pid != me));
    }
}
