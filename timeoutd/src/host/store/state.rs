//! The session table on disk: a snapshot plus an append-only journal in
//! `[daemon] state_dir`.
//!
//! Every change appends one line to the journal (one write(2) of whole
//! lines, so a crash leaves at most a torn last line, which replay skips).
//! Between [`StateStore::begin_group`] and [`StateStore::end_group`] the
//! lines are kept and written together, in one write(2), at the end.
//! When the journal grows past twice the live table, a new snapshot is
//! written atomically (temporary file, fsync, rename) and the journal starts
//! over. A crash between the two steps only replays upserts that are already
//! in the snapshot, which is harmless.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::core::state::record::{replay, JournalEntry, SessionRecord};
use crate::host::store::ids::write_atomic;

const SNAPSHOT: &str = "sessions.snapshot";
const JOURNAL: &str = "sessions.journal";

#[derive(Debug)]
pub(crate) struct StateStore {
    dir: PathBuf,
    journal: Option<File>,
    entries: usize,
    /// Lines of the open group, not written yet (`None`: no group open).
    group: Option<String>,
}

/// What was found on disk at start.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) sessions: Vec<SessionRecord>,
    /// Lines that could not be read (a torn tail after a crash, or damage).
    pub(crate) unreadable: usize,
}

fn read_or_empty(path: &Path) -> io::Result<String> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

impl StateStore {
    /// Reads what an earlier run left. An unreadable directory is an error
    /// for the caller to log; the store then works from memory and retries.
    pub(crate) fn open(dir: &Path) -> (Self, io::Result<Loaded>) {
        let mut store = Self {
            dir: dir.to_owned(),
            journal: None,
            entries: 0,
            group: None,
        };
        let loaded = (|| {
            let snapshot = read_or_empty(&dir.join(SNAPSHOT))?;
            let journal = read_or_empty(&dir.join(JOURNAL))?;
            store.entries = journal.lines().count();
            let (sessions, unreadable) = replay(&snapshot, &journal);
            Ok(Loaded {
                sessions,
                unreadable,
            })
        })();
        (store, loaded)
    }

    fn journal(&mut self) -> io::Result<&mut File> {
        if self.journal.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(JOURNAL))?;
            self.journal = Some(f);
        }
        self.journal
            .as_mut()
            .ok_or_else(|| io::Error::other("journal unavailable"))
    }

    /// Appends one entry, or keeps it for the end of the open group. On
    /// failure the file is reopened next time.
    pub(crate) fn append(&mut self, entry: &JournalEntry) -> io::Result<()> {
        if let Some(group) = &mut self.group {
            entry.encode_into(group);
            return Ok(());
        }
        self.write_lines(&entry.encode(), 1)
    }

    /// Keeps the entries appended from now on for one write at [`Self::end_group`].
    pub(crate) fn begin_group(&mut self) {
        self.group.get_or_insert_with(String::new);
    }

    /// Writes the entries kept since [`Self::begin_group`], in one write.
    pub(crate) fn end_group(&mut self) -> io::Result<()> {
        match self.group.take() {
            Some(lines) if !lines.is_empty() => {
                let count = lines.bytes().filter(|&b| b == b'\n').count();
                self.write_lines(&lines, count)
            }
            _ => Ok(()),
        }
    }

    fn write_lines(&mut self, lines: &str, count: usize) -> io::Result<()> {
        let result = self.journal().and_then(|f| f.write_all(lines.as_bytes()));
        match result {
            Ok(()) => {
                self.entries += count;
                Ok(())
            }
            Err(e) => {
                self.journal = None;
                Err(e)
            }
        }
    }

    /// Whether the journal is long enough to be folded into a snapshot.
    pub(crate) fn wants_compaction(&self, live: usize) -> bool {
        self.entries > 2 * live + 1024
    }

    /// Writes the whole live table as the new snapshot and empties the journal.
    pub(crate) fn compact(
        &mut self,
        live: impl IntoIterator<Item = SessionRecord>,
    ) -> io::Result<()> {
        // The snapshot holds the table after every kept entry; the journal
        // they would go to is emptied.
        if let Some(group) = &mut self.group {
            group.clear();
        }
        let mut text = String::from("# timeoutd sessions v1\n");
        for r in live {
            text.push_str("U\t");
            r.encode_into(&mut text);
            text.push('\n');
        }
        write_atomic(&self.dir.join(SNAPSHOT), text.as_bytes())?;
        self.journal = None;
        File::create(self.dir.join(JOURNAL))?;
        self.entries = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::TtyClass;
    use crate::core::session::{Login, ProcRef, Scope, SessionId};
    use crate::core::time::clock::Timestamp;

    fn rec(id: u64) -> SessionRecord {
        SessionRecord {
            id: SessionId(id),
            login: Login {
                user: "u".into(),
                ..Login::default()
            },
            leader: ProcRef {
                pid: 1,
                start_time: 2,
            },
            scope: Scope::Subtree,
            registered_at: Timestamp(1),
            last_activity: Timestamp(2),
            tty_class: TtyClass::None,
            tty_settled: false,
            ttys: vec![],
            adopted: false,
            cgroup: None,
            evidence: Default::default(),
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("st-state-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_restart_sees_what_was_journaled() {
        let d = dir("journal");
        let (mut s, loaded) = StateStore::open(&d);
        assert!(loaded.unwrap().sessions.is_empty());
        s.append(&JournalEntry::Upsert(Box::new(rec(1)))).unwrap();
        s.append(&JournalEntry::Upsert(Box::new(rec(2)))).unwrap();
        s.append(&JournalEntry::Gone(SessionId(1))).unwrap();
        drop(s); // as after kill -9: nothing flushed by hand
        let (_, loaded) = StateStore::open(&d);
        let ids: Vec<u64> = loaded.unwrap().sessions.iter().map(|r| r.id.0).collect();
        assert_eq!(ids, [2]);
    }

    #[test]
    fn compaction_keeps_the_live_table_and_empties_the_journal() {
        let d = dir("compact");
        let (mut s, _) = StateStore::open(&d);
        for i in 0..2000 {
            s.append(&JournalEntry::Upsert(Box::new(rec(i % 3))))
                .unwrap();
        }
        assert!(s.wants_compaction(3));
        s.compact([rec(7), rec(8)]).unwrap();
        assert!(!s.wants_compaction(2));
        assert_eq!(fs::read_to_string(d.join(JOURNAL)).unwrap(), "");
        s.append(&JournalEntry::Gone(SessionId(7))).unwrap();
        let (_, loaded) = StateStore::open(&d);
        let ids: Vec<u64> = loaded.unwrap().sessions.iter().map(|r| r.id.0).collect();
        assert_eq!(ids, [8]);
    }

    #[test]
    fn a_group_is_written_at_its_end_in_one_piece() {
        let d = dir("group");
        let (mut s, _) = StateStore::open(&d);
        s.begin_group();
        s.append(&JournalEntry::Upsert(Box::new(rec(1)))).unwrap();
        s.append(&JournalEntry::Upsert(Box::new(rec(2)))).unwrap();
        assert_eq!(read_or_empty(&d.join(JOURNAL)).unwrap(), "");
        s.end_group().unwrap();
        s.append(&JournalEntry::Gone(SessionId(1))).unwrap(); // no group: at once
        let (again, loaded) = StateStore::open(&d);
        let ids: Vec<u64> = loaded.unwrap().sessions.iter().map(|r| r.id.0).collect();
        assert_eq!(ids, [2]);
        assert_eq!(again.entries, 3);
        assert_eq!(s.entries, 3);
    }

    #[test]
    fn an_unwritable_directory_is_an_error_not_a_panic() {
        let (mut s, loaded) = StateStore::open(Path::new("/nonexistent/st-state"));
        assert!(loaded.unwrap().sessions.is_empty());
        assert!(s.append(&JournalEntry::Gone(SessionId(1))).is_err());
        assert!(s.compact([]).is_err());
    }
}
