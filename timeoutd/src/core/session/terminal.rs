//! A terminal as the daemon measures it: the three timestamps of its device
//! node, and how a look at them is read as input, as nothing, or as
//! timestamps set by hand. Where the login's connection can be read, the
//! client's last packet is the witness: input the client never sent (TIOCSTI,
//! or anything else faked from inside) gains nothing. Pure: the timestamps
//! come in as values.

use std::time::Duration;

use crate::core::time::clock::Timestamp;

/// The three timestamps of a terminal device, in wall-clock milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtyTimes {
    /// Last read that returned data: user input (8-second steps).
    pub atime: Timestamp,
    /// Last write: output.
    pub mtime: Timestamp,
    /// Last metadata change: chmod, chown, or `touch`. tty I/O never moves it.
    pub ctime: Timestamp,
    /// Owner of the device node.
    pub owner: u32,
}

/// What one look at a tty told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The kernel recorded input; credit it at this time.
    Input(Timestamp),
    /// No input since the last metadata change.
    Nothing,
    /// The timestamps were set by hand (ctime moved, or atime is in the future).
    Tampered,
    /// The kernel recorded input again and again with no client data since
    /// before its window: credited only at the client's last packet (which
    /// gains nothing), and worth a `tamper_suspected reason=no_client_input`.
    Unwitnessed(Timestamp),
}

/// This many atime moves in a row without client data make [`Observation::Unwitnessed`];
/// one alone is a late read of type-ahead.
pub const UNWITNESSED_STREAK: u32 = 2;

/// The kernel stores a new atime only when it enters a new 8-second window,
/// so input may have gone on until the end of the window that atime opened.
pub const KERNEL_TTY_STEP_SECS: i64 = 8;

/// Tolerance for clock granularity before an atime counts as "in the future".
const FUTURE_SLACK: Duration = Duration::from_secs(2);

/// A terminal measured for a session, with what we saw of it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtyWatch {
    /// Device name relative to /dev, e.g. "pts/3".
    pub name: String,
    last_ctime: Option<Timestamp>,
    /// (atime, mtime) as they were when hand-set timestamps were seen: those
    /// values are never credited; only a later move by the kernel is.
    tainted: Option<(Timestamp, Timestamp)>,
    /// Until then, ctime changes are sshd still setting the new pty up
    /// (chown, chmod), not tampering.
    settle_until: Timestamp,
    /// The atime of the last look, to tell a move from a re-read.
    last_atime: Option<Timestamp>,
    /// Consecutive atime moves with no client data in their window.
    unwitnessed_streak: u32,
}

/// How long after a terminal is found its metadata may still change legitimately.
pub const TTY_SETTLE: Duration = Duration::from_secs(10);

impl TtyWatch {
    /// A terminal first seen at `found_at`.
    pub fn new(name: String, found_at: Timestamp) -> Self {
        Self {
            name,
            last_ctime: None,
            tainted: None,
            settle_until: found_at + TTY_SETTLE,
            last_atime: None,
            unwitnessed_streak: 0,
        }
    }

    /// Credits the kernel's input timestamp (and output, with `count_output`)
    /// unless the timestamps were set by hand:
    /// - `touch` moves ctime; tty I/O never does. A look that finds ctime
    ///   moved credits nothing, and the timestamps it found stay uncredited
    ///   until the kernel moves them again.
    /// - a timestamp in the future is refused the same way.
    ///
    /// A credited timestamp counts at the end of its 8-second window, since
    /// the kernel only records the first read of each window. That includes
    /// a fresh pty's creation time: reads in its first window move nothing.
    /// In the first [`TTY_SETTLE`] after the terminal is found, ctime changes
    /// are sshd's own set-up and are not held against the session.
    ///
    /// `client_last` is when data last arrived from the client on the login's
    /// connection, if it can be read. Input then counts at the earlier of its
    /// window's end and that packet: never early, and exact to the second when
    /// nothing else flows. An atime move with no client data since before its
    /// window gains nothing.
    pub fn observe(
        &mut self,
        t: TtyTimes,
        now: Timestamp,
        count_output: bool,
        client_last: Option<Timestamp>,
    ) -> Observation {
        let settling = now < self.settle_until;
        let ctime_moved = !settling && self.last_ctime.is_some_and(|c| c != t.ctime);
        self.last_ctime = Some(t.ctime);
        let newest = if count_output {
            t.atime.max(t.mtime)
        } else {
            t.atime
        };
        if ctime_moved || newest > now + FUTURE_SLACK {
            self.tainted = Some((t.atime, t.mtime));
            return Observation::Tampered;
        }
        let (taint_a, taint_m) = match self.tainted {
            Some((a, m)) => (Some(a), Some(m)),
            None => (None, None),
        };
        let mut credited = None;
        let mut unwitnessed = false;
        if Some(t.atime) != taint_a {
            let (start, end) = window_of(t.atime);
            credited = Some(client_last.map_or(end, |c| c.min(end)));
            unwitnessed = self.note_move(t.atime, start, client_last);
        }
        if count_output && Some(t.mtime) != taint_m {
            credited = credited.max(Some(window_of(t.mtime).1));
        }
        match credited {
            Some(at) if unwitnessed => Observation::Unwitnessed(at),
            Some(at) => Observation::Input(at),
            None => Observation::Nothing,
        }
    }

    /// Whether the last atime move had no client data since before its window
    /// (TIOCSTI, or type-ahead read late: one alone cannot tell which).
    pub fn last_move_unwitnessed(&self) -> bool {
        self.unwitnessed_streak > 0
    }

    /// Counts atime moves that no client data can explain; true once they
    /// keep happening.
    fn note_move(&mut self, atime: Timestamp, start: Timestamp, client: Option<Timestamp>) -> bool {
        let moved = self.last_atime.is_some_and(|a| a != atime);
        self.last_atime = Some(atime);
        if !moved {
            return false;
        }
        if client.is_some_and(|c| c < start) {
            self.unwitnessed_streak = self.unwitnessed_streak.saturating_add(1);
        } else {
            self.unwitnessed_streak = 0;
        }
        self.unwitnessed_streak >= UNWITNESSED_STREAK
    }
}

/// The 8-second window a kernel tty timestamp opened: `[start, end)`.
fn window_of(stamp: Timestamp) -> (Timestamp, Timestamp) {
    let start = stamp.secs() - stamp.secs().rem_euclid(KERNEL_TTY_STEP_SECS);
    (
        Timestamp::from_secs(start),
        Timestamp::from_secs(start + KERNEL_TTY_STEP_SECS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(a_ms: i64, m_ms: i64, c_ms: i64) -> TtyTimes {
        TtyTimes {
            atime: Timestamp(a_ms),
            mtime: Timestamp(m_ms),
            ctime: Timestamp(c_ms),
            owner: 0,
        }
    }

    #[test]
    fn output_counts_only_when_asked() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        let now = Timestamp::from_secs(1000);
        let t = at(950_000, 990_000, 900_500);
        assert_eq!(
            w.observe(t, now, false, None),
            Observation::Input(Timestamp::from_secs(952))
        );
        assert_eq!(
            w.observe(t, now, true, None),
            Observation::Input(Timestamp::from_secs(992))
        );
    }

    #[test]
    fn kernel_input_is_credited_at_the_end_of_its_window() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        let now = Timestamp::from_secs(1000);
        // atime 981 lies in the window [976, 984).
        assert_eq!(
            w.observe(at(981_000, 0, 900_500), now, false, None),
            Observation::Input(Timestamp::from_secs(984))
        );
        assert_eq!(
            w.observe(at(984_000, 0, 900_500), now, false, None),
            Observation::Input(Timestamp::from_secs(992))
        );
    }

    #[test]
    fn a_fresh_ptys_first_window_counts() {
        // Created at 990.2 (all three times), chowned at 990.3: reads until 992
        // (the end of the window [984, 992)) cannot move atime, yet are input.
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        let t = at(990_200, 990_200, 990_300);
        assert_eq!(
            w.observe(t, Timestamp::from_secs(991), false, None),
            Observation::Input(Timestamp::from_secs(992))
        );
        // Input in the same second as the chown moves atime to 990.000 < ctime: still counted.
        let mut w = TtyWatch::new("pts/2".into(), Timestamp(0));
        assert_eq!(
            w.observe(
                at(993_000, 993_000, 993_400),
                Timestamp::from_secs(994),
                false,
                None
            ),
            Observation::Input(Timestamp::from_secs(1000))
        );
    }

    #[test]
    fn touch_is_never_credited_even_on_a_later_look() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        let now = Timestamp::from_secs(1000);
        assert_eq!(
            w.observe(at(950_000, 950_000, 900_500), now, false, None),
            Observation::Input(Timestamp::from_secs(952))
        );
        // `touch -a` sets atime and ctime to now.
        let touched = at(995_123, 950_000, 995_123);
        assert_eq!(w.observe(touched, now, false, None), Observation::Tampered);
        // Looked at again with nothing new: the touched atime stays uncredited.
        assert_eq!(
            w.observe(touched, Timestamp::from_secs(1005), false, None),
            Observation::Nothing
        );
        // The kernel moves atime on real input later: credited again.
        assert_eq!(
            w.observe(
                at(1_008_000, 950_000, 995_123),
                Timestamp::from_secs(1010),
                false,
                None
            ),
            Observation::Input(Timestamp::from_secs(1016))
        );
    }

    #[test]
    fn set_up_changes_right_after_discovery_are_not_tampering() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp::from_secs(990));
        // First look before sshd's chown, then the chown: still settling.
        assert_eq!(
            w.observe(
                at(990_200, 990_200, 990_200),
                Timestamp::from_secs(990),
                false,
                None
            ),
            Observation::Input(Timestamp::from_secs(992))
        );
        assert_eq!(
            w.observe(
                at(990_200, 990_200, 990_700),
                Timestamp::from_secs(991),
                false,
                None
            ),
            Observation::Input(Timestamp::from_secs(992))
        );
        // After the settle time a ctime change is tampering again.
        assert_eq!(
            w.observe(
                at(1_001_000, 0, 1_001_000),
                Timestamp::from_secs(1002),
                false,
                None
            ),
            Observation::Tampered
        );
    }

    #[test]
    fn future_atime_is_refused_until_the_kernel_moves_it() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        let now = Timestamp::from_secs(1000);
        // touch -a -d 2030-01-01 before the first look (ctime = now, too).
        let future = at(1_893_456_000_000, 0, 999_500);
        assert_eq!(w.observe(future, now, false, None), Observation::Tampered);
        assert_eq!(
            w.observe(future, Timestamp::from_secs(1001), false, None),
            Observation::Tampered
        );
        // Real input: the kernel replaces the future atime with now.
        assert_eq!(
            w.observe(
                at(1_002_000, 0, 999_500),
                Timestamp::from_secs(1003),
                false,
                None
            ),
            Observation::Input(Timestamp::from_secs(1008))
        );
    }

    #[test]
    fn with_a_witness_input_counts_at_the_last_client_packet() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        let now = Timestamp::from_secs(1000);
        // atime 981 opened [976, 984); the client's last packet came at 981.4.
        let client = Some(Timestamp(981_400));
        assert_eq!(
            w.observe(at(981_000, 0, 900_500), now, false, client),
            Observation::Input(Timestamp(981_400))
        );
        // Client data after the window (a keepalive) cannot push it past the window's end.
        assert_eq!(
            w.observe(
                at(981_000, 0, 900_500),
                now,
                false,
                Some(Timestamp(999_000))
            ),
            Observation::Input(Timestamp::from_secs(984))
        );
    }

    #[test]
    fn input_the_client_never_sent_gains_nothing_and_is_reported_when_it_repeats() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        // Real typing at 950, credited at the packet.
        let typed = Some(Timestamp(950_300));
        assert_eq!(
            w.observe(
                at(950_000, 0, 900_500),
                Timestamp::from_secs(955),
                false,
                typed
            ),
            Observation::Input(Timestamp(950_300))
        );
        // TIOCSTI moves atime every window; the client sends nothing.
        assert_eq!(
            w.observe(
                at(961_000, 0, 900_500),
                Timestamp::from_secs(962),
                false,
                typed
            ),
            Observation::Input(Timestamp(950_300)),
            "one late read (type-ahead) is credited at its packet, not reported"
        );
        assert_eq!(
            w.observe(
                at(969_000, 0, 900_500),
                Timestamp::from_secs(970),
                false,
                typed
            ),
            Observation::Unwitnessed(Timestamp(950_300)),
            "it keeps happening"
        );
        // A real keystroke again resets the streak.
        let typed = Some(Timestamp(977_100));
        assert_eq!(
            w.observe(
                at(977_000, 0, 900_500),
                Timestamp::from_secs(978),
                false,
                typed
            ),
            Observation::Input(Timestamp(977_100))
        );
    }

    #[test]
    fn without_a_witness_the_rule_is_the_kernel_window() {
        let mut w = TtyWatch::new("pts/1".into(), Timestamp(0));
        for (a, look) in [(961_000, 962), (969_000, 970), (977_000, 978)] {
            assert_eq!(
                w.observe(at(a, 0, 900_500), Timestamp::from_secs(look), false, None),
                Observation::Input(window_of(Timestamp(a)).1)
            );
        }
    }
}
