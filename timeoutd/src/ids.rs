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
pub struct IdAllocator {
    path: PathBuf,
    next: u64,
    reserved_until: u64,
}

impl IdAllocator {
    /// Starts after every id reserved by an earlier run. A missing file starts at 1.
    pub fn open(state_dir: &Path) -> io::Result<Self> {
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
    pub fn volatile(state_dir: &Path, seed: u64) -> Self {
        Self {
            path: state_dir.join(FILE),
            next: seed.max(1),
            reserved_until: seed.max(1),
        }
    }

    /// The next id, and the error of persisting a new block, if that failed.
    /// The id is usable either way; enforcement must not stop for a full disk.
    pub fn allocate(&mut self) -> (u64, Option<io::Error>) {
        let mut err = None;
        if self.next >= self.reserved_until {
            let until = self.next.saturating_add(BLOCK);
            match write_atomic(&self.path, format!("{until}\n").as_bytes()) {
                Ok(()) => self.reserved_until = until,
                Err(e) => err = Some(e),
            }
        }
        let id = self.next;
        self.next = self.next.saturating_add(1);
        (id, err)
    }
}

/// Writes a file so that a crash at any instant leaves the old or the new content:
/// temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
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
        let first: Vec<u64> = (0..3).map(|_| a.allocate().0).collect();
        assert_eq!(first, [1, 2, 3]);
        drop(a); // a crash: no clean shutdown
        let mut b = IdAllocator::open(&dir).unwrap();
        let (id, err) = b.allocate();
        assert!(err.is_none());
        assert!(id > 3, "{id}");
    }

    #[test]
    fn unwritable_dir_still_hands_out_ids() {
        let mut a = IdAllocator::volatile(Path::new("/nonexistent/dir"), 500);
        let (id, err) = a.allocate();
        assert_eq!(id, 500);
        assert!(err.is_some());
        assert_eq!(a.allocate().0, 501);
    }

    #[test]
    fn garbage_file_is_an_error() {
        let dir = temp_dir("garbage");
        fs::write(dir.join(FILE), "bogus").unwrap();
        assert!(IdAllocator::open(&dir).is_err());
    }
}
