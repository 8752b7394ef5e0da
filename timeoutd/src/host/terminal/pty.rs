//! Terminal devices: timestamps (idle measurement) and safe warning writes.
//!
//! Kernel facts this relies on (drivers/tty/tty_io.c, checked in the tests):
//! a read of >0 bytes from a tty sets the node's atime, a write sets its
//! mtime, only when the value crosses an 8 s boundary, with nanoseconds 0.
//! Writing a warning therefore never looks like user input.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::host::procfs::{PTS_MAJOR_FIRST, PTS_MAJOR_LAST};

/// Timestamps of a tty device node, in milliseconds since the Unix epoch
/// (negative before 1970).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PtyTimes {
    /// Last input read from the tty (or `touch -a`).
    pub(crate) atime_ms: i64,
    /// Last output written to the tty.
    pub(crate) mtime_ms: i64,
    /// Last inode change (chmod/chown/utimes); ordinary I/O never sets it.
    pub(crate) ctime_ms: i64,
    /// Owner of the device node (sshd and login chown it to the user).
    pub(crate) uid: u32,
}

fn to_ms(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1000).saturating_add(nsec / 1_000_000)
}

fn times_of(md: &fs::Metadata) -> PtyTimes {
    PtyTimes {
        atime_ms: to_ms(md.atime(), md.atime_nsec()),
        mtime_ms: to_ms(md.mtime(), md.mtime_nsec()),
        ctime_ms: to_ms(md.ctime(), md.ctime_nsec()),
        uid: md.uid(),
    }
}

fn refuse(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_owned())
}

/// Timestamps of a tty device node. Fails with `InvalidInput` if `path` is
/// not a character device (symlinks are followed, as by `stat(2)`).
pub(crate) fn stat_tty(path: &Path) -> io::Result<PtyTimes> {
    let md = fs::metadata(path)?;
    if !md.file_type().is_char_device() {
        return Err(refuse("not a character device"));
    }
    Ok(times_of(&md))
}

/// Whether a character device number is a pty slave (majors 136..=143),
/// which only the kernel's pty driver serves.
fn is_pty_slave(rdev: u64) -> bool {
    (PTS_MAJOR_FIRST..=PTS_MAJOR_LAST).contains(&libc::major(rdev))
}

/// Whether a character device number belongs to a terminal a person can
/// log in on: a pty slave (majors 136..=143) or a device of the `tty` class
/// in sysfs (virtual consoles, serial lines). Major 5 (`/dev/tty`,
/// `/dev/console`, `/dev/ptmx`) is refused: opening `/dev/ptmx` would create
/// a new pty, and the others are not one user's terminal.
fn is_login_tty(rdev: u64) -> bool {
    if is_pty_slave(rdev) {
        return true;
    }
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    if major == 5 {
        return false;
    }
    fs::read_link(format!("/sys/dev/char/{major}:{minor}/subsystem"))
        .map(|t| t.file_name().is_some_and(|n| n == "tty"))
        .unwrap_or(false)
}

/// Writes `text` (already escaped by the caller, see
/// [`crate::core::audit::escape::for_terminal`]) to the terminal at `path`, once.
///
/// - Refuses (`InvalidInput`) symlinks, anything that is not a character
///   device of a login terminal (checked before opening, so no other device
///   is ever opened), and anything whose opened fd is a different device or
///   not a tty (`isatty`; a pty slave's major already says it is one).
/// - Opens with `O_WRONLY|O_NOCTTY|O_NONBLOCK|O_CLOEXEC|O_NOFOLLOW`: the
///   daemon never gains a controlling tty and never blocks. A stopped
///   terminal (Ctrl-S) or a full buffer gives an error of kind `WouldBlock`.
/// - One `write(2)`: returns the bytes written, possibly fewer than
///   `text.len()`. Use `\n` in `text`; the tty's ONLCR adds the `\r`.
pub(crate) fn write_warning(path: &Path, text: &str) -> io::Result<usize> {
    let before = fs::symlink_metadata(path)?;
    let ft = before.file_type();
    if !ft.is_char_device() {
        return Err(refuse("not a character device"));
    }
    if !is_login_tty(before.rdev()) {
        return Err(refuse("not a terminal device"));
    }
    let mut file: File = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)?;
    let after = file.metadata()?;
    if !after.file_type().is_char_device() || after.rdev() != before.rdev() {
        return Err(refuse("device changed while opening"));
    }
    if !is_pty_slave(after.rdev()) && !file.is_terminal() {
        return Err(refuse("not a tty"));
    }
    file.write(text.as_bytes())
}

/// A pty pair for tests, all fds close-on-exec (so children spawned by
/// parallel tests do not inherit them).
#[cfg(test)]
pub(crate) mod test_pty {
    use std::fs::{File, OpenOptions};
    use std::io::{self, Read};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    /// `/dev/pts/N`.
    pub(crate) fn pts_path(n: u32) -> PathBuf {
        PathBuf::from(format!("/dev/pts/{n}"))
    }

    /// Timestamps of `/dev/pts/N`.
    pub(crate) fn stat_pts(n: u32) -> io::Result<super::PtyTimes> {
        super::stat_tty(&pts_path(n))
    }

    pub(crate) struct Pair {
        pub master: File,
        pub slave: File,
        pub n: u32,
    }

    impl Pair {
        pub(crate) fn path(&self) -> PathBuf {
            pts_path(self.n)
        }
    }

    pub(crate) fn open() -> Pair {
        let master = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open("/dev/ptmx")
            .expect("open /dev/ptmx");
        let unlock: libc::c_int = 0;
        let mut n: libc::c_uint = 0;
        // SAFETY: ioctls on an open ptmx fd; TIOCSPTLCK reads one c_int and
        // TIOCGPTN writes one c_uint, both pointing at live locals.
        let rc = unsafe {
            if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) != 0 {
                -1
            } else {
                libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n)
            }
        };
        assert_eq!(rc, 0, "pty ioctl: {}", io::Error::last_os_error());
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(pts_path(n))
            .expect("open slave");
        Pair { master, slave, n }
    }

    /// Waits up to `timeout` for `fd` to become readable.
    pub(crate) fn readable(f: &File, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: poll on one valid pollfd that lives for the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        rc > 0 && (pfd.revents & libc::POLLIN) != 0
    }

    /// Reads from `f` until `want` bytes arrived or 5 s passed.
    pub(crate) fn read_some(f: &mut File, want: usize) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while out.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !readable(f, left) {
                break;
            }
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        out
    }

    /// tcflow(3) on `f`.
    pub(crate) fn tcflow(f: &File, action: libc::c_int) {
        // SAFETY: tcflow on a valid open tty fd.
        let rc = unsafe { libc::tcflow(f.as_raw_fd(), action) };
        assert_eq!(rc, 0, "tcflow: {}", io::Error::last_os_error());
    }
}

#[cfg(test)]
mod tests {
    use super::test_pty::{self, read_some, stat_pts};
    use super::*;
    use crate::host::procfs;
    use std::fs::FileTimes;
    use std::process::Command;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    fn now_ms() -> i64 {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
        i64::try_from(d.as_millis()).expect("ms")
    }

    fn set_times(f: &File, atime_s: u64, mtime_s: u64) {
        f.set_times(
            FileTimes::new()
                .set_accessed(UNIX_EPOCH + Duration::from_secs(atime_s))
                .set_modified(UNIX_EPOCH + Duration::from_secs(mtime_s)),
        )
        .expect("set_times");
    }

    #[test]
    fn stat_pts_matches_stat_tty() {
        let p = test_pty::open();
        set_times(&p.slave, 1_000, 2_000);
        let a = stat_pts(p.n).expect("stat_pts");
        let b = stat_tty(&p.path()).expect("stat_tty");
        assert_eq!(a, b);
        assert_eq!(a.atime_ms, 1_000_000);
        assert_eq!(a.mtime_ms, 2_000_000);
        // Setting times by hand moves ctime to now.
        assert!((now_ms() - a.ctime_ms).abs() < 10_000);
    }

    #[test]
    fn stat_refuses_non_devices() {
        let e = stat_tty(Path::new("/proc/self/stat")).expect_err("regular file");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = stat_pts(999_999).expect_err("no such pty");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn warning_reaches_master_and_does_not_touch_atime() {
        let mut p = test_pty::open();
        set_times(&p.slave, 1_000, 2_000);
        let n = write_warning(&p.path(), "idle: logout in 60 s\n").expect("write");
        assert_eq!(n, 21);
        let got = read_some(&mut p.master, 22);
        assert_eq!(got, b"idle: logout in 60 s\r\n");
        let t = stat_pts(p.n).expect("stat");
        assert_eq!(t.atime_ms, 1_000_000, "a write must not look like input");
        assert!((now_ms() - t.mtime_ms).abs() < 10_000, "write sets mtime");
        assert_eq!(t.mtime_ms % 1000, 0, "kernel stores whole seconds");
    }

    #[test]
    fn input_read_moves_atime_but_echo_not_mtime() {
        let mut p = test_pty::open();
        set_times(&p.slave, 1_000, 2_000);
        let ctime = stat_pts(p.n).expect("stat").ctime_ms;
        p.master.write_all(b"ls\n").expect("type");
        let line = read_some(&mut p.slave, 3);
        assert_eq!(line, b"ls\n");
        let t = stat_pts(p.n).expect("stat");
        assert!((now_ms() - t.atime_ms).abs() < 10_000, "read sets atime");
        assert_eq!(t.atime_ms % 1000, 0);
        assert_eq!(t.mtime_ms, 2_000_000, "echo does not set mtime");
        assert_eq!(t.ctime_ms, ctime, "tty I/O never sets ctime");
        // The echo did reach the master.
        assert_eq!(read_some(&mut p.master, 4), b"ls\r\n");
    }

    #[test]
    fn refuses_regular_file_null_ptmx_and_symlink() {
        let dir = std::env::temp_dir().join(format!("timeoutd-pty-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("plain");
        fs::write(&file, b"").expect("file");
        let e = write_warning(&file, "x\n").expect_err("regular file");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(fs::read(&file).expect("read"), b"");

        for dev in ["/dev/null", "/dev/ptmx", "/dev/tty", "/dev/pts/ptmx"] {
            let e = write_warning(Path::new(dev), "x\n").expect_err(dev);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{dev}");
        }

        let p = test_pty::open();
        let link = dir.join("link");
        std::os::unix::fs::symlink(p.path(), &link).expect("symlink");
        let e = write_warning(&link, "x\n").expect_err("symlink");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn stopped_terminal_gives_would_block_at_once() {
        let p = test_pty::open();
        test_pty::tcflow(&p.slave, libc::TCOOFF); // what Ctrl-S does
        let t = Instant::now();
        let e = write_warning(&p.path(), "warning\n").expect_err("stopped");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(t.elapsed() < Duration::from_secs(1));
        test_pty::tcflow(&p.slave, libc::TCOON);
        assert_eq!(write_warning(&p.path(), "ok\n").expect("resumed"), 3);
    }

    #[test]
    fn full_buffer_gives_would_block_at_once() {
        let p = test_pty::open(); // nobody reads the master
        let text = "x".repeat(4000) + "\n";
        let t = Instant::now();
        let mut blocked = false;
        for _ in 0..1000 {
            match write_warning(&p.path(), &text) {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                    blocked = true;
                    break;
                }
            }
        }
        assert!(blocked, "buffer never filled");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn pty_master_and_controlling_tty() {
        let p = test_pty::open();
        let me = std::process::id();
        assert!(procfs::pty_masters_of(me).contains(&p.n));
        let stdin = p.slave.try_clone().expect("dup slave");
        let mut child = Command::new("setsid")
            .args(["-c", "sleep", "100"])
            .stdin(stdin)
            .spawn()
            .expect("spawn setsid");
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        let info = std::iter::from_fn(|| {
            std::thread::sleep(Duration::from_millis(10));
            (Instant::now() < deadline).then_some(())
        })
        .find_map(|()| {
            procfs::proc_info(pid)
                .ok()
                .filter(|i| i.comm == "sleep" && i.tty_nr != 0)
        });
        let info = info.expect("sleep with a controlling tty");
        assert_eq!(procfs::controlling_pts(&info), Some(p.n));
        // The child holds only the slave, not the master.
        assert!(!procfs::pty_masters_of(pid).contains(&p.n));
        assert!(procfs::pty_masters_of(u32::MAX).is_empty());
        let _ = child.kill();
        let _ = child.wait();
    }
}
