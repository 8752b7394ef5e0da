//! The views of /proc that one batch of the engine's work shares: the
//! kill's census, the stat snapshot with its parent → children index, the
//! audit-session index, and the facts the kill logic needs of a process.

use std::collections::HashMap;

use crate::core::session::ProcRef;
use crate::engine::ProcFacts;
use crate::host::processes::census;
use crate::host::procfs::{self, ProcInfo};
use crate::host::Host;

impl Host {
    /// The kill's current pass over /proc (taken on first use after `rescan`).
    pub(crate) fn census(&mut self) -> &census::Census {
        if self.census.is_none() {
            let c = census::Census::take(self.census_chain.map(|(end, _)| end));
            let prev_complete = self.census_chain.is_some_and(|(_, ok)| ok);
            self.census_pair_complete = prev_complete && c.chained && c.complete;
            self.census_chain = Some((c.ended_at, c.complete));
            self.census = Some(c);
        }
        self.census.get_or_insert_with(census::Census::default)
    }

    pub(crate) fn processes(&mut self) -> (&[ProcInfo], &procfs::ChildIndex) {
        let (snap, index) = self.snapshot.get_or_insert_with(|| {
            let snap = procfs::stat_snapshot();
            let index = procfs::ChildIndex::new(&snap);
            (snap, index)
        });
        (snap, index)
    }

    /// The pids of each audit session, one small read per process, reused
    /// for the whole batch (a revocation of hundreds of sessions scans once).
    fn audit_index(&mut self) -> &HashMap<u32, Vec<u32>> {
        self.by_sessionid.get_or_insert_with(|| {
            let mut index: HashMap<u32, Vec<u32>> = HashMap::new();
            let Ok(rd) = std::fs::read_dir("/proc") else {
                return index;
            };
            for pid in rd
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            {
                let sid = std::fs::read_to_string(format!("/proc/{pid}/sessionid"))
                    .ok()
                    .and_then(|t| t.trim().parse::<u32>().ok());
                if let Some(sid) = sid.filter(|s| *s != procfs::AUDIT_UNSET) {
                    index.entry(sid).or_default().push(pid);
                }
            }
            index
        })
    }

    /// The processes of an audit session, read afresh (zombies, pid 1 and
    /// this daemon left out).
    pub(crate) fn audit_session_processes(&mut self, sid: u32) -> Vec<ProcFacts> {
        let me = std::process::id();
        let pids = self.audit_index().get(&sid).cloned().unwrap_or_default();
        pids.into_iter()
            .filter(|pid| *pid > 1 && *pid != me)
            .filter_map(|pid| procfs::proc_info(pid).ok())
            .filter(|p| p.sessionid == sid && !p.exited())
            .map(facts_of)
            .collect()
    }
}

/// A live, non-zombie process as the kill logic sees it.
pub(crate) fn proc_facts(pid: u32) -> Option<ProcFacts> {
    procfs::proc_info(pid)
        .ok()
        .filter(|p| !p.exited())
        .map(facts_of)
}

/// What the kill logic needs of a process read from /proc.
pub(crate) fn facts_of(p: ProcInfo) -> ProcFacts {
    let parent_comm = procfs::read_stat(p.ppid).ok().map(|st| st.comm);
    ProcFacts {
        proc: ProcRef {
            pid: p.pid,
            start_time: p.start_time,
        },
        ppid: p.ppid,
        ruid: p.ruid,
        euid: p.euid,
        same_program_as_parent: parent_comm.as_deref() == Some(p.comm.as_str()),
    }
}
