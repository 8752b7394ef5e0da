//! Which processes belong to a login: the subtree under its leader, or
//! every process of its audit session. Pure, over one snapshot of /proc.

use std::collections::{HashMap, HashSet};

use crate::host::procfs::{ProcInfo, AUDIT_UNSET};

/// Each pid's children in one snapshot (by position in it), made once and
/// shared by every look at that snapshot: a revocation of a thousand
/// sessions walks a thousand small subtrees, not the whole table each time.
#[derive(Debug, Default)]
pub(crate) struct ChildIndex {
    children: HashMap<u32, Vec<usize>>,
    /// Where each pid first appears.
    position: HashMap<u32, usize>,
}

impl ChildIndex {
    pub(crate) fn new(snap: &[ProcInfo]) -> Self {
        let mut children: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut position = HashMap::with_capacity(snap.len());
        for (i, p) in snap.iter().enumerate() {
            position.entry(p.pid).or_insert(i);
            if p.pid != p.ppid {
                children.entry(p.ppid).or_default().push(i);
            }
        }
        Self { children, position }
    }

    /// The first entry of `pid` in `snap` (the snapshot this index was made of).
    pub(crate) fn get<'a>(&self, snap: &'a [ProcInfo], pid: u32) -> Option<&'a ProcInfo> {
        snap.get(*self.position.get(&pid)?)
    }

    /// `root` (if present in `snap`, the snapshot this index was made of)
    /// and every process below it, following ppid links. Safe against
    /// cycles and duplicate entries. `root == 0` gives an empty list (pid 0
    /// is the parent of init and kthreadd).
    pub(crate) fn subtree<'a>(&self, snap: &'a [ProcInfo], root: u32) -> Vec<&'a ProcInfo> {
        if root == 0 {
            return Vec::new();
        }
        let mut seen = HashSet::from([root]);
        let mut out: Vec<&ProcInfo> = self.get(snap, root).into_iter().collect();
        let mut stack = vec![root];
        while let Some(pid) = stack.pop() {
            for &i in self.children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
                let Some(c) = snap.get(i) else {
                    continue;
                };
                if seen.insert(c.pid) {
                    out.push(c);
                    stack.push(c.pid);
                }
            }
        }
        out
    }
}

/// `root` and every process below it (see [`ChildIndex::subtree`]).
#[cfg(test)]
pub(crate) fn descendants(snap: &[ProcInfo], root: u32) -> Vec<&ProcInfo> {
    ChildIndex::new(snap).subtree(snap, root)
}

/// The live (non-zombie) processes of one login session.
///
/// - `sessionid = Some(S)` (S not [`AUDIT_UNSET`]): every process whose audit
///   session id is S, wherever it is in the tree.
/// - Otherwise: the subtree under `leader_pid`, but only if the leader is in
///   `snap` with start time `leader_start`; if not (gone, or pid reused), an
///   empty list.
///
/// Zombies, pid 1 and the calling process itself are never returned (a
/// daemon started by hand from a login inherits that login's session id).
#[cfg(test)]
pub(crate) fn session_processes(
    snap: &[ProcInfo],
    leader_pid: u32,
    leader_start: u64,
    sessionid: Option<u32>,
) -> Vec<&ProcInfo> {
    session_processes_indexed(snap, None, leader_pid, leader_start, sessionid)
}

/// The live processes of one login session (see [`session_processes`]),
/// with the snapshot's [`ChildIndex`] if one was made.
pub(crate) fn session_processes_indexed<'a>(
    snap: &'a [ProcInfo],
    index: Option<&ChildIndex>,
    leader_pid: u32,
    leader_start: u64,
    sessionid: Option<u32>,
) -> Vec<&'a ProcInfo> {
    let me = std::process::id();
    let keep = |p: &&ProcInfo| p.pid > 1 && p.pid != me && !p.exited();
    match sessionid.filter(|s| *s != AUDIT_UNSET) {
        Some(s) => snap
            .iter()
            .filter(|p| p.sessionid == s)
            .filter(keep)
            .collect(),
        None => {
            let made;
            let ix = match index {
                Some(ix) => ix,
                None => {
                    made = ChildIndex::new(snap);
                    &made
                }
            };
            let leader_ok = ix
                .get(snap, leader_pid)
                .is_some_and(|p| p.start_time == leader_start);
            if !leader_ok {
                return Vec::new();
            }
            ix.subtree(snap, leader_pid)
                .into_iter()
                .filter(keep)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock(pid: u32, ppid: u32, start: u64, sid: u32, state: char) -> ProcInfo {
        ProcInfo {
            pid,
            ppid,
            state,
            tty_nr: 0,
            start_time: start,
            comm: format!("p{pid}"),
            ruid: 1000,
            euid: 1000,
            sessionid: sid,
        }
    }

    fn pids(v: &[&ProcInfo]) -> Vec<u32> {
        let mut p: Vec<u32> = v.iter().map(|p| p.pid).collect();
        p.sort_unstable();
        p
    }

    #[test]
    fn descendants_is_cycle_safe() {
        let snap = vec![
            mock(10, 11, 1, AUDIT_UNSET, 'S'),
            mock(11, 10, 1, AUDIT_UNSET, 'S'),
            mock(12, 11, 1, AUDIT_UNSET, 'S'),
            mock(13, 13, 1, AUDIT_UNSET, 'S'),
            mock(12, 11, 1, AUDIT_UNSET, 'S'),
            mock(20, 1, 1, AUDIT_UNSET, 'S'),
        ];
        assert_eq!(pids(&descendants(&snap, 10)), vec![10, 11, 12]);
        assert_eq!(pids(&descendants(&snap, 13)), vec![13]);
        assert_eq!(pids(&descendants(&snap, 99)), Vec::<u32>::new());
        assert!(descendants(&snap, 0).is_empty());
    }

    #[test]
    fn session_processes_rules() {
        let me = std::process::id();
        let snap = vec![
            mock(1, 0, 1, AUDIT_UNSET, 'S'),
            mock(100, 1, 500, 7, 'S'),
            mock(101, 100, 600, 7, 'S'),
            mock(102, 101, 700, 7, 'Z'),
            mock(200, 1, 800, 7, 'S'), // setsid'd away, same audit session
            mock(300, 1, 900, 8, 'S'),
            mock(301, 1, 900, AUDIT_UNSET, 'S'),
            mock(me, 1, 900, 7, 'S'),
        ];
        let sp = |leader, start, sid| pids(&session_processes(&snap, leader, start, sid));
        assert_eq!(sp(100, 500, Some(7)), vec![100, 101, 200]);
        // No audit id: the live subtree of a leader with the right start time.
        assert_eq!(sp(100, 500, None), vec![100, 101]);
        assert_eq!(sp(100, 500, Some(AUDIT_UNSET)), vec![100, 101]);
        assert!(sp(100, 501, None).is_empty());
        assert!(sp(555, 500, None).is_empty());
        assert!(sp(1, 1, None).iter().all(|p| *p != 1 && *p != me));
    }
}
