//! Where the lines come from: the files named (gzip recognised by its magic
//! bytes, `-` for standard input) or, by default, /var/log/auth.log and its
//! rotated siblings, oldest first. Lines are read in bounded pieces: a line
//! longer than [`MAX_LINE`] is cut there and flagged, so one endless line
//! costs no more memory than a long one.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// Longest line kept; the rest of a longer one is skipped.
pub const MAX_LINE: usize = 64 * 1024;
/// The default log.
pub const AUTH_LOG: &str = "/var/log/auth.log";

/// The default inputs: `auth.log.N.gz` .. `auth.log.1`, `auth.log`, oldest
/// first, only those that can be opened.
pub fn default_files(base: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    let dir = base.parent().unwrap_or(Path::new("/"));
    let name = base.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let file = e.file_name();
            let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(name)) else {
                continue;
            };
            let number = rest.strip_prefix('.').map(|r| r.trim_end_matches(".gz"));
            if let Some(n) = number.and_then(|n| n.parse::<u32>().ok()) {
                rotated.push((n, e.path()));
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    out.push(base.to_path_buf());
    out.retain(|p| File::open(p).is_ok());
    out
}

/// Opens `path` (`-` = stdin), decompressing gzip if it starts with the
/// gzip magic bytes.
pub fn open(path: &Path) -> io::Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(path)?)
    };
    let mut buffered = BufReader::with_capacity(256 * 1024, raw);
    let gz = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    })
}

/// Calls `each(line, truncated)` for every line of `r` (without its `\n`,
/// at most [`MAX_LINE`] bytes of it).
pub fn for_each_line(r: &mut dyn BufRead, mut each: impl FnMut(&[u8], bool)) -> io::Result<()> {
    let mut line: Vec<u8> = Vec::with_capacity(4096);
    let mut truncated = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if !line.is_empty() || truncated {
                each(&line, truncated);
            }
            return Ok(());
        }
        let (piece, found) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = MAX_LINE - line.len();
        line.extend_from_slice(&piece[..piece.len().min(room)]);
        truncated |= piece.len() > room;
        let used = found.unwrap_or(buf.len());
        r.consume(used);
        if found.is_some() {
            let text = line.strip_suffix(b"\r").unwrap_or(&line);
            each(text, truncated);
            line.clear();
            truncated = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn lines(input: &[u8]) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        for_each_line(&mut &input[..], |l, t| out.push((l.len(), t))).unwrap();
        out
    }

    #[test]
    fn splits_and_bounds_lines() {
        assert_eq!(
            lines(b"a\nbb\r\n\nccc"),
            vec![(1, false), (2, false), (0, false), (3, false)]
        );
        let mut big = vec![b'x'; MAX_LINE * 3];
        big.extend_from_slice(b"\nok\n");
        assert_eq!(lines(&big), vec![(MAX_LINE, true), (2, false)]);
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn reads_gzip_and_plain_files() {
        let dir = std::env::temp_dir().join(format!("report-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gz = dir.join("auth.log.2.gz");
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(b"one\ntwo\n").unwrap();
        enc.finish().unwrap();
        std::fs::write(dir.join("auth.log.1"), b"three\n").unwrap();
        std::fs::write(dir.join("auth.log"), b"four\n").unwrap();
        std::fs::write(dir.join("auth.log.old"), b"no\n").unwrap();
        let files = default_files(&dir.join("auth.log"));
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["auth.log.2.gz", "auth.log.1", "auth.log"]);
        let mut all = Vec::new();
        for f in &files {
            for_each_line(&mut *open(f).unwrap(), |l, _| all.push(l.to_vec())).unwrap();
        }
        assert_eq!(
            all,
            vec![
                b"one".to_vec(),
                b"two".to_vec(),
                b"three".to_vec(),
                b"four".to_vec()
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
