//! The kernel's per-socket TCP figures of a login's connection, read through
//! `NETLINK_SOCK_DIAG` (inet_diag with `INET_DIAG_INFO`), without touching
//! the connection and without holding a descriptor of it: a dup of sshd's
//! socket would keep the connection open after sshd exits.
//!
//! A login's socket is found by inode (`/proc/PID/fd/N` -> `socket:[INODE]`)
//! in one dump of every TCP socket; later looks ask for that one 4-tuple.
//! Only the syscalls are unsafe; requests and replies are built and read as
//! bytes, and a reply that is short or malformed is an error, never a panic.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const INET_DIAG_INFO: u16 = 2;
const NLMSG_HDR: usize = 16;
const REQ_LEN: usize = 56;
const DIAG_MSG_LEN: usize = 72;
/// Every TCP state but LISTEN (bit 10): a login's connection is established
/// or closing.
const STATES_BUT_LISTEN: u32 = 0xfff & !(1 << 10);
/// Ask for no particular socket cookie.
const NO_COOKIE: u32 = u32::MAX;
/// Offsets in `struct tcp_info` (linux/tcp.h); figures past the end of what
/// the running kernel sends are absent, never guessed.
mod offset {
    pub const LAST_DATA_SENT: usize = 44;
    pub const LAST_DATA_RECV: usize = 52;
    pub const BYTES_ACKED: usize = 120;
    pub const BYTES_RECEIVED: usize = 128;
    pub const BYTES_SENT: usize = 200;
}

/// The local and remote end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpTuple {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// What the kernel knows about one TCP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFigures {
    pub inode: u64,
    pub tuple: TcpTuple,
    /// TCP state number (1 established, 7 close, …).
    pub state: u8,
    /// Milliseconds since data last arrived from the peer.
    pub last_data_recv_ms: Option<u32>,
    /// Milliseconds since data was last sent to the peer.
    pub last_data_sent_ms: Option<u32>,
    /// Payload bytes received from the peer.
    pub bytes_received: Option<u64>,
    /// Payload bytes the peer acknowledged.
    pub bytes_acked: Option<u64>,
    /// Payload bytes sent, retransmissions included (Linux 4.19+).
    pub bytes_sent: Option<u64>,
    /// Bytes received but not yet read by the socket's owner
    /// (`idiag_rqueue`: rcv_nxt − copied_seq).
    pub rqueue: u32,
    /// Bytes the owner wrote that the peer has not acknowledged yet
    /// (`idiag_wqueue`: write_seq − snd_una).
    pub wqueue: u32,
}

impl TcpFigures {
    /// Every byte the socket's owner has written to it so far: acknowledged
    /// ones plus those still queued (exact; retransmissions not counted twice).
    pub fn app_written(&self) -> Option<u64> {
        Some(self.bytes_acked?.saturating_add(u64::from(self.wqueue)))
    }

    /// Every byte the socket's owner has read from it so far.
    pub fn app_read(&self) -> Option<u64> {
        Some(self.bytes_received?.saturating_sub(u64::from(self.rqueue)))
    }
}

/// Every TCP socket of this network namespace, v4 and v6.
pub fn dump_all() -> io::Result<Vec<TcpFigures>> {
    let nl = NetlinkSocket::open()?;
    let mut out = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        nl.send(&request(family, None, NLM_F_REQUEST | NLM_F_DUMP))?;
        nl.collect(&mut out, true)?;
    }
    Ok(out)
}

/// The socket with this exact 4-tuple, if it still exists.
pub fn lookup(tuple: TcpTuple) -> io::Result<Option<TcpFigures>> {
    let family = match tuple.local {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let nl = NetlinkSocket::open()?;
    nl.send(&request(family, Some(tuple), NLM_F_REQUEST))?;
    let mut out = Vec::new();
    match nl.collect(&mut out, false) {
        Ok(()) => Ok(out.into_iter().find(|f| f.tuple == tuple)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The socket inodes among a process's open descriptors.
pub fn socket_inodes(proc_root: &Path, pid: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| parse_socket_link(&l.to_string_lossy()))
        .collect()
}

fn parse_socket_link(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn request(family: i32, tuple: Option<TcpTuple>, flags: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(NLMSG_HDR + REQ_LEN);
    b.extend_from_slice(&((NLMSG_HDR + REQ_LEN) as u32).to_ne_bytes());
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
    b.push(family as u8);
    b.push(libc::IPPROTO_TCP as u8);
    b.push(1 << (INET_DIAG_INFO - 1)); // idiag_ext: ask for tcp_info
    b.push(0);
    b.extend_from_slice(&STATES_BUT_LISTEN.to_ne_bytes());
    let (local, remote) = match tuple {
        Some(t) => (t.local, t.remote),
        None => {
            let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
            (any, any)
        }
    };
    b.extend_from_slice(&local.port().to_be_bytes());
    b.extend_from_slice(&remote.port().to_be_bytes());
    b.extend_from_slice(&addr_bytes(local.ip()));
    b.extend_from_slice(&addr_bytes(remote.ip()));
    b.extend_from_slice(&0u32.to_ne_bytes()); // interface
    b.extend_from_slice(&NO_COOKIE.to_ne_bytes());
    b.extend_from_slice(&NO_COOKIE.to_ne_bytes());
    b
}

fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    let mut a = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a = v6.octets(),
    }
    a
}

fn u16_ne(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_ne(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_ne(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn sock_addr(family: u8, addr: &[u8], port: u16) -> Option<SocketAddr> {
    let ip = if i32::from(family) == libc::AF_INET {
        let o: [u8; 4] = addr.get(..4)?.try_into().ok()?;
        IpAddr::V4(Ipv4Addr::from(o))
    } else {
        let o: [u8; 16] = addr.get(..16)?.try_into().ok()?;
        IpAddr::V6(Ipv6Addr::from(o))
    };
    Some(SocketAddr::new(ip, port))
}

/// Reads one `inet_diag_msg` and its attributes (the message body, without
/// the netlink header).
fn parse_diag_msg(m: &[u8]) -> Option<TcpFigures> {
    if m.len() < DIAG_MSG_LEN {
        return None;
    }
    let family = m[0];
    let sport = u16::from_be_bytes([m[4], m[5]]);
    let dport = u16::from_be_bytes([m[6], m[7]]);
    let tuple = TcpTuple {
        local: sock_addr(family, &m[8..24], sport)?,
        remote: sock_addr(family, &m[24..40], dport)?,
    };
    let inode = u64::from(u32_ne(m, 68)?);
    let info = attributes(&m[DIAG_MSG_LEN..]).find(|(t, _)| *t == INET_DIAG_INFO);
    let info = info.map(|(_, d)| d).unwrap_or(&[]);
    Some(TcpFigures {
        inode,
        tuple,
        state: m[1],
        last_data_recv_ms: u32_ne(info, offset::LAST_DATA_RECV),
        last_data_sent_ms: u32_ne(info, offset::LAST_DATA_SENT),
        bytes_received: u64_ne(info, offset::BYTES_RECEIVED),
        bytes_acked: u64_ne(info, offset::BYTES_ACKED),
        bytes_sent: u64_ne(info, offset::BYTES_SENT),
        rqueue: u32_ne(m, 56)?,
        wqueue: u32_ne(m, 60)?,
    })
}

/// The `(type, data)` route attributes in `b`, stopping at the first bad one.
fn attributes(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16_ne(b, 0)?);
        let kind = u16_ne(b, 2)?;
        let data = b.get(4..len)?;
        b = b.get(align4(len)..).unwrap_or(&[]);
        Some((kind & 0x3fff, data))
    })
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// What one datagram from the kernel said.
enum Batch {
    More,
    Done,
}

/// Appends the sockets in one datagram; an `NLMSG_ERROR` becomes an error.
fn parse_datagram(mut b: &[u8], out: &mut Vec<TcpFigures>) -> io::Result<Batch> {
    while b.len() >= NLMSG_HDR {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed sock_diag reply");
        let len = u32_ne(b, 0).ok_or_else(bad)? as usize;
        let kind = u16_ne(b, 4).ok_or_else(bad)?;
        let body = b.get(NLMSG_HDR..len).ok_or_else(bad)?;
        match kind {
            NLMSG_DONE => return Ok(Batch::Done),
            NLMSG_ERROR => {
                let code = u32_ne(body, 0).ok_or_else(bad)? as i32;
                return match code {
                    0 => Ok(Batch::Done),
                    c => Err(io::Error::from_raw_os_error(-c)),
                };
            }
            SOCK_DIAG_BY_FAMILY => out.extend(parse_diag_msg(body)),
            _ => {}
        }
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(Batch::More)
}

/// A netlink socket for sock_diag, closed on drop.
struct NetlinkSocket(OwnedFd);

impl NetlinkSocket {
    fn open() -> io::Result<Self> {
        // SAFETY: socket(2) with constant arguments; the result is checked
        // before it is wrapped.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let timeout = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: fd is open; the option value is a valid timeval of the given size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(owned))
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain old data; all-zero (pid 0: the kernel)
        // is valid once the family is set.
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: msg is a valid buffer of msg.len() bytes; `to` is a valid
        // sockaddr_nl of the given size.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&raw const to).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads replies into `out` until the dump is done (or, for a single
    /// lookup, until the first datagram).
    fn collect(&self, out: &mut Vec<TcpFigures>, dump: bool) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buf is a valid, writable buffer of buf.len() bytes.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let got = buf.get(..n as usize).unwrap_or(&[]);
            match parse_datagram(got, out)? {
                Batch::Done => return Ok(()),
                Batch::More if !dump => return Ok(()),
                Batch::More => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
