//! Finding a login's SSH connection, and crediting the client data that
//! reached one of its channels (issue 12). Where the connection cannot be
//! read, the session keeps today's rules (pty atime, process I/O), said once
//! in `session_connection activity_source=`.

use std::time::Duration;

use crate::core::audit::event::EventName;
use crate::core::session::connection::{ConnWatch, Witness};
use crate::core::session::Session;
use crate::core::time::clock::Timestamp;
use crate::engine::wake::DISCOVERY_WINDOW;
use crate::engine::{session_event, ConnSearch, Engine, System};

/// Bounds of the pause between looks at a session measured by its
/// connection alone (see [`channel_look_interval`]).
const CHANNEL_LOOK_MIN: Duration = Duration::from_secs(1);
const CHANNEL_LOOK_MAX: Duration = Duration::from_secs(60);

/// How often a session without a terminal is looked at when its connection
/// is the witness: channel data is dated at the client's last packet, which
/// a later keepalive moves, so the credit can be late by up to the pause
/// between looks. A fifth of the idle limit keeps that within 20 %; a
/// terminal's own 8-second window bounds it for pty sessions.
pub(super) fn channel_look_interval(s: &Session) -> Option<Duration> {
    if !s.ttys.is_empty() || s.conn.is_none() || !s.idle_measured() {
        return None;
    }
    let idle = s.limits.idle?;
    Some((idle / 5).clamp(CHANNEL_LOOK_MIN, CHANNEL_LOOK_MAX))
}

impl<S: System> Engine<S> {
    /// Looks for the login's connection until it is found, known absent, or
    /// the discovery window is over.
    pub(super) fn refresh_conn(&mut self, s: &mut Session, now: Timestamp) {
        if s.conn_settled {
            return;
        }
        let reason = match self.sys.find_connection(s.leader) {
            ConnSearch::Found(conn) => {
                let ev = session_event(EventName::SessionConnection, s)
                    .field("conn", conn.ports())
                    .field("local", conn.local)
                    .field("remote", conn.remote)
                    .field("sshd_pid", conn.child.pid)
                    .field("activity_source", "client");
                self.sys.log(ev);
                let cap = s.registered_at + DISCOVERY_WINDOW;
                s.conn = Some(Box::new(ConnWatch::new(conn, cap)));
                s.conn_settled = true;
                return;
            }
            // A console or su: nothing to say, today's rules.
            ConnSearch::NoTcp => {
                s.conn_settled = true;
                return;
            }
            ConnSearch::NoSessionProcess => "no_session_process",
            ConnSearch::Failed => "sock_diag_failed",
        };
        if now.since(s.registered_at) < DISCOVERY_WINDOW {
            return; // sshd's session process may not be there yet
        }
        s.conn_settled = true;
        self.log_fallback(s, reason);
    }

    /// `session_connection activity_source=pty|io reason=…`, once per session.
    fn log_fallback(&mut self, s: &mut Session, reason: &str) {
        if s.conn_fallback_logged {
            return;
        }
        s.conn_fallback_logged = true;
        let source = if s.ttys.is_empty() { "io" } else { "pty" };
        let ev = session_event(EventName::SessionConnection, s)
            .field("activity_source", source)
            .field("reason", reason);
        self.sys.log(ev);
    }

    /// Measures the session's activity: from its terminals (with the client's
    /// channel data as witness when the connection can be read), or without
    /// one from the connection, or by today's rules. Returns the terminals
    /// whose last atime move no client data explains while none arrived since
    /// the last look: reported if the session ends idle now (TIOCSTI; a late
    /// read of type-ahead has its data arrive since the look before).
    pub(super) fn measure_activity(&mut self, s: &mut Session, now: Timestamp) -> Vec<String> {
        let witness = self.read_witness(s);
        if s.ttys.is_empty() {
            if s.idle_measured() {
                match witness {
                    Some(Witness::Read {
                        channel_input,
                        output,
                        ..
                    }) => self.credit_channels(s, channel_input, output),
                    _ => self.measure_io(s, now),
                }
            }
            return Vec::new();
        }
        let (client_last, fresh) = match witness {
            Some(Witness::Read {
                channel_input,
                fresh,
                ..
            }) => (Some(channel_input.unwrap_or(s.registered_at)), fresh),
            _ => (None, true),
        };
        self.measure(s, now, client_last);
        if fresh {
            return Vec::new();
        }
        s.ttys
            .iter()
            .filter(|t| t.last_move_unwitnessed())
            .map(|t| format!("{}:no client data since the last look", t.name))
            .collect()
    }

    /// One reading of the connection. When it cannot be read but the
    /// connection is found again with another session process (the first
    /// one was sshd's pre-authentication child), that one is read instead.
    fn read_witness(&mut self, s: &mut Session) -> Option<Witness> {
        let c = s.conn.as_mut()?;
        let w = c.update(self.sys.read_connection(s.leader, &c.conn));
        if w == Witness::Unreadable {
            let mut rebound = false;
            if let ConnSearch::Found(again) = self.sys.find_connection(s.leader) {
                if again != c.conn {
                    // A new baseline: what flowed meanwhile is unknown, so
                    // this look keeps today's rules (never early).
                    c.rebind(again);
                    let _baseline = c.update(self.sys.read_connection(s.leader, &c.conn));
                    rebound = true;
                }
            }
            if !rebound {
                self.log_fallback(s, "lookup_failed");
            }
        }
        Some(w)
    }

    /// A pty the login got after it registered was asked for by its client
    /// (sshd allocates one on the client's `pty-req`): activity when it was
    /// made (its ctime: creation, then sshd's chown), as the login itself is.
    /// A slow login whose shell is ready late is not idle from registration.
    pub(super) fn credit_pty_creation(&mut self, s: &mut Session, name: &str, now: Timestamp) {
        let Some(times) = self.sys.tty_times(name) else {
            return;
        };
        let made = times.ctime.min(now);
        if made >= s.registered_at {
            s.last_activity = s.last_activity.max(made);
        }
    }

    /// Idle measurement of a session without a terminal from its
    /// connection: client data that reached a channel (a command's stdin,
    /// a forwarded connection, an upload) counts at the client's packet;
    /// output only with `count_output`. Keepalives, rekeying and the
    /// session's own background jobs never count.
    fn credit_channels(
        &mut self,
        s: &mut Session,
        channel_input: Option<Timestamp>,
        output: Option<Timestamp>,
    ) {
        if let Some(at) = channel_input {
            s.last_activity = s.last_activity.max(at);
        }
        if let (true, Some(at)) = (s.limits.count_output, output) {
            s.last_activity = s.last_activity.max(at);
        }
    }
}
