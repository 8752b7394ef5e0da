//! Session ids that are never handed out twice, across restarts too.
//!
//! Ids are reserved in blocks: the file holds the first id not yet reserved,
//! and is rewritten (atomically) once per block, not once per login.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const FILE: &str = "next-session-id";
const BLOCK: u64 = 1024;

#[derive(Debug)]
pub(crate) struct IdAllocator {
    path: PathBuf,
    next: u64,
    reserved_until: u64,
}

impl IdAllocator {
    /// Starts after every id reserved by an earlier run. A missing file starts at 1.
    pub(crate) fn open(state_dir: &Path) -> io::Result<Self> {
        let path = state_dir.join(FILE);
        let next = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hold a number", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            next: next.max(1),
            reserved_until: next.max(1),
        })
    }

    /// An allocator that cannot persist (the state directory is unusable):
    /// ids start from the wall clock so they still do not repeat old ones.
    pub(crate) fn volatile(state_dir: &Path, seed: u64) -> Self {
        Self {
            path: state_dir.join(FILE),
            next: seed.max(1),
            reserved_until: seed.max(1),
        }
    }

    /// The next id, and the error of persisting a new block, if that failed.
    /// The id is usable either way; enforcement must not stop for a full disk.
    ///
    /// An id that could not be reserved on disk might be handed out again
    /// after a restart, so when a reservation fails the counter jumps to
    /// `now_ms` (milliseconds since the epoch), far above anything a
    /// persisted counter reaches, and carries on from there.
    pub(crate) fn allocate(&mut self, now_ms: u64) -> (u64, Option<io::Error>) {
        let mut err = None;
        if self.next >= self.reserved_until {
            let until = self.next.saturating_add(BLOCK);
            match write_atomic(&self.path, format!("{until}\n").as_bytes()) {
                Ok(()) => self.reserved_until = until,
                Err(e) => {
                    if self.next < now_ms {
                        self.next = now_ms;
                        self.reserved_until = now_ms;
                    }
                    err = Some(e);
                }
            }
        }
        let id = self.next;
        self.next = self.next.saturating_add(1);
        (id, err)
    }
}

/// Writes a file so that a crash at any instant leaves the old or the new content:
/// temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Some wall-clock milliseconds.
    const NOW: u64 = 1_800_000_000_000;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("st-ids-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn ids_never_repeat_across_restarts() {
        let dir = temp_dir("restart");
        let mut a = IdAllocator::open(&dir).unwrap();
        let first: Vec<u64> = (0..3).map(|_| a.allocate(NOW).0).collect();
        assert_eq!(first, [1, 2, 3]);
        drop(a); // a crash: no clean shutdown
        let mut b = IdAllocator::open(&dir).unwrap();
        let (id, err) = b.allocate(NOW);
        assert!(err.is_none());
        assert!(id > 3, "{id}");
    }

    #[test]
    fn unwritable_dir_still_hands_out_ids() {
        let mut a = IdAllocator::volatile(Path::new("/nonexistent/dir"), 500);
        let (id, err) = a.allocate(NOW);
        assert_eq!(id, NOW, "unreserved ids come from the clock");
        assert!(err.is_some());
        let (second, _) = a.allocate(NOW);
        assert!(second > id, "still unique: {second} after {id}");
    }

    #[test]
    fn ids_handed_out_while_the_disk_failed_are_not_reused_after_a_restart() {
        let dir = temp_dir("failed-write");
        let mut a = IdAllocator::open(&dir).unwrap();
        assert_eq!(a.allocate(NOW).0, 1); // reserves 1..1025 on disk
        drop(a);
        // The next run cannot write: its ids are not reserved on disk.
        let mut b = IdAllocator::open(&dir).unwrap();
        b.path = PathBuf::from("/nonexistent/dir/next-session-id");
        let unreserved = b.allocate(NOW).0;
        drop(b);
        // A later run (disk fine again) starts from the reserved counter,
        // which is far below the ids handed out unreserved.
        let mut c = IdAllocator::open(&dir).unwrap();
        let later = c.allocate(NOW + 1).0;
        assert_ne!(later, unreserved);
        assert!(later < unreserved);
    }

    #[test]
    fn garbage_file_is_an_error() {
        let dir = temp_dir("garbage");
        fs::write(dir.join(FILE), "bogus").unwrap();
        assert!(IdAllocator::open(&dir).is_err());
    }
}
