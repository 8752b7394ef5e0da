//! The two things the daemon tells systemd, without libsystemd: `READY=1` once
//! it serves (`Type=notify`), and whether its stderr already is the journal
//! (`$JOURNAL_STREAM`), in which case events are not copied there as well.
//!
//! sd_notify is one datagram to the Unix socket named by `$NOTIFY_SOCKET`: a
//! path, or an abstract name when it starts with '@'. Outside systemd the
//! variable is unset and both functions do nothing.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Tells the service manager the daemon is ready; a no-op without `$NOTIFY_SOCKET`.
/// Errors are returned for the caller to log; they never stop the daemon.
pub fn ready() -> io::Result<()> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(name) => send(name.as_encoded_bytes(), b"READY=1\n"),
        None => Ok(()),
    }
}

fn send(name: &[u8], message: &[u8]) -> io::Result<()> {
    let addr = match name.split_first() {
        Some((b'@', abstract_name)) => SocketAddr::from_abstract_name(abstract_name)?,
        Some((b'/', _)) => SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(name))?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither an absolute path nor an abstract name",
            ))
        }
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(message, &addr)?;
    Ok(())
}

/// Whether stderr is the journal stream systemd connected (`$JOURNAL_STREAM`
/// is `DEVICE:INODE` of it). Checked against fd 2 itself, so a child whose
/// stderr was redirected elsewhere still gets its copy.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(m) => m.dev() == dev && m.ino() == ino,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_a_socket_named_by_path() {
        let dir = std::env::temp_dir().join(format!("st-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str().as_bytes(), b"READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ready_reaches_an_abstract_socket() {
        let name = format!("st-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        send(format!("@{name}").as_bytes(), b"READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }

    #[test]
    fn a_relative_name_is_refused() {
        assert!(send(b"notify", b"READY=1\n").is_err());
        assert!(send(b"", b"READY=1\n").is_err());
    }
}
