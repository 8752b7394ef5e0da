//! The login's SSH connection as a witness of activity (issue 12). A person's
//! input reaches the host as data on the login's TCP connection, and sshd's
//! session process writes it to a channel (the pty master, a command's
//! stdin, a forwarded socket). So the bytes that process wrote beyond what it
//! wrote to the client socket, less what the `[priv]` monitor read from it
//! (log lines, rekey signatures), are client data that reached a channel.
//! Keepalives both ways, rekeying and background jobs on the server never
//! are (measured on OpenSSH 9.2p1, see docs/ARCHITECTURE.md, "The connection as a witness"). Pure: the figures
//! come in as values.

use std::net::SocketAddr;

use crate::core::session::ProcRef;
use crate::core::time::clock::Timestamp;

/// A login's connection, as found at discovery: no descriptor of it is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// sshd's session process (`sshd: user@…`), which does the socket's I/O.
    pub child: ProcRef,
}

impl Connection {
    /// `LOCALPORT:REMOTEPORT`, to match sshd's own log.
    pub fn ports(&self) -> String {
        format!("{}:{}", self.local.port(), self.remote.port())
    }
}

/// One reading of the connection and of sshd's processes, all counters
/// cumulative since they started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnFigures {
    /// The clock, read right after the socket lookup.
    pub read_at: Timestamp,
    /// When data last arrived from the client (`read_at − lastrcv`).
    pub last_recv: Timestamp,
    /// Bytes sshd wrote to / read from the client socket.
    pub socket_written: u64,
    pub socket_read: u64,
    /// wchar / rchar of sshd's session process (its own thread only: a
    /// reaped child's I/O is not in it).
    pub child_written: u64,
    pub child_read: u64,
    /// rchar / wchar of the `[priv]` monitor: what it exchanged with the
    /// session process (log lines, rekey signatures), not channel data.
    pub monitor_read: u64,
    pub monitor_written: u64,
}

/// What one attempt to read the connection gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnRead {
    Figures(ConnFigures),
    /// The connection (or sshd's session process) is gone, or closing: no
    /// client data can arrive any more.
    Gone,
    /// The lookup failed (sock_diag error): nothing is known this time.
    Failed,
}

/// What a look at the witness says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Witness {
    /// The witness was read (or the connection is gone): the last client data
    /// that reached a channel (`None`: none since discovery), and output
    /// that left a channel for the client since the last look, if any.
    Read {
        channel_input: Option<Timestamp>,
        output: Option<Timestamp>,
        /// Client data reached a channel since the last reading.
        fresh: bool,
    },
    /// Nothing could be read this time: fall back to today's rules for this
    /// look (never end a session early because a lookup failed).
    Unreadable,
}

/// The witness of one session: the previous reading and the last client
/// data that reached a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnWatch {
    pub conn: Connection,
    /// The baseline's last packet is credited no later than this (the
    /// login's own start): a session restored after a restart gains nothing
    /// from a keepalive that came just before the daemon's first look.
    baseline_cap: Timestamp,
    prev: Option<ConnFigures>,
    channel_input: Option<Timestamp>,
    gone: bool,
    /// The last reading was torn and kept the one before it; the next one
    /// is taken as it is, so a reading is never held back twice.
    held: bool,
}

impl ConnWatch {
    /// `baseline_cap`: see the field.
    pub fn new(conn: Connection, baseline_cap: Timestamp) -> Self {
        Self {
            conn,
            baseline_cap,
            prev: None,
            channel_input: None,
            gone: false,
            held: false,
        }
    }

    /// sshd's session process changed (the one first found was sshd's
    /// pre-authentication child, which exits): the next reading is a new
    /// baseline; what was credited stays.
    pub fn rebind(&mut self, conn: Connection) {
        if conn != self.conn {
            self.conn = conn;
            self.prev = None;
        }
    }

    /// Whether the connection was seen gone (then no new data can come).
    #[cfg(test)]
    pub fn gone(&self) -> bool {
        self.gone
    }

    /// Takes one reading. Client data that reached a channel since the last
    /// reading is dated at the client's last packet: never before the data
    /// arrived, and exact when nothing else flowed. The first reading is the
    /// baseline, whose last packet is credited. Counters that went backwards (never expected) are a new
    /// baseline, crediting nothing.
    pub fn update(&mut self, read: ConnRead) -> Witness {
        let f = match read {
            ConnRead::Failed if !self.gone => return Witness::Unreadable,
            ConnRead::Failed | ConnRead::Gone => {
                self.gone = true;
                return Witness::Read {
                    channel_input: self.channel_input,
                    output: None,
                    fresh: false,
                };
            }
            ConnRead::Figures(f) => f,
        };
        let mut output = None;
        let mut fresh = false;
        if self.prev.is_none() && !self.gone {
            // A baseline: what the client sent before it (the login itself,
            // or typing before the first look) may have been input, so its
            // last packet is credited: never early, and worth at most the
            // time until the first look.
            let at = f.last_recv.min(f.read_at).min(self.baseline_cap);
            self.channel_input = Some(self.channel_input.map_or(at, |c| c.max(at)));
        }
        if let Some(p) = self.prev.filter(|_| !self.gone) {
            if !self.held && torn(&p, &f) {
                self.held = true;
                // The counters were read while bytes were in flight between
                // the pty and the socket: keep the earlier reading, so the
                // next one counts these bytes instead of losing them.
                return Witness::Read {
                    channel_input: self.channel_input,
                    output: None,
                    fresh: false,
                };
            }
            self.held = false;
            let (input, out) = channel_bytes(&p, &f);
            if input > 0 {
                fresh = true;
                let at = f.last_recv.min(f.read_at);
                self.channel_input = Some(self.channel_input.map_or(at, |c| c.max(at)));
            }
            if out > 0 {
                output = Some(f.read_at);
            }
        }
        self.prev = Some(f);
        Witness::Read {
            channel_input: self.channel_input,
            output,
            fresh,
        }
    }
}

/// Whether two readings disagree although no counter went backwards: more
/// was written to (or read from) the socket than sshd's session process
/// wrote (or read) in all, which only a reading taken mid-transfer gives.
fn torn(p: &ConnFigures, f: &ConnFigures) -> bool {
    let forward = f.child_written >= p.child_written
        && f.socket_written >= p.socket_written
        && f.monitor_read >= p.monitor_read
        && f.child_read >= p.child_read
        && f.socket_read >= p.socket_read
        && f.monitor_written >= p.monitor_written;
    let written = f.child_written - p.child_written.min(f.child_written);
    let sent = f.socket_written - p.socket_written.min(f.socket_written);
    let read = f.child_read - p.child_read.min(f.child_read);
    let received = f.socket_read - p.socket_read.min(f.socket_read);
    forward && (sent > written || received > read)
}

/// Bytes of client data written to channels, and of channel output read,
/// between two readings; 0 when a counter went backwards.
pub fn channel_bytes(p: &ConnFigures, f: &ConnFigures) -> (u64, u64) {
    let d = |a: u64, b: u64| a.checked_sub(b);
    let input = (|| {
        d(f.child_written, p.child_written)?
            .checked_sub(d(f.socket_written, p.socket_written)?)?
            .checked_sub(d(f.monitor_read, p.monitor_read)?)
    })();
    let output = (|| {
        d(f.child_read, p.child_read)?
            .checked_sub(d(f.socket_read, p.socket_read)?)?
            .checked_sub(d(f.monitor_written, p.monitor_written)?)
    })();
    (input.unwrap_or(0), output.unwrap_or(0))
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
