//! What the bytes of /proc mean: `stat`, the `Uid:` line of `status`, a
//! number file and a `tty-index:` line. Pure, so hostile content (a `comm`
//! with spaces, parentheses, newlines or invalid UTF-8) is tested directly.

/// The fields of `/proc/PID/stat` this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) pid: u32,
    pub(crate) comm: String,
    pub(crate) state: char,
    pub(crate) ppid: u32,
    pub(crate) pgrp: u32,
    /// Unix session id (`setsid`), not the audit session id.
    pub(crate) session: u32,
    pub(crate) tty_nr: u32,
    pub(crate) start_time: u64,
}

/// Parses the content of `/proc/PID/stat`.
///
/// `comm` is taken between the first `(` and the **last** `)`; the other
/// fields are split on whitespace after that. Returns `None` on anything
/// malformed.
pub(crate) fn parse_stat(buf: &[u8]) -> Option<Stat> {
    let open = buf.iter().position(|&b| b == b'(')?;
    let close = buf.iter().rposition(|&b| b == b')').filter(|c| *c > open)?;
    let pid = std::str::from_utf8(&buf[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let rest = std::str::from_utf8(&buf[close + 1..]).ok()?;
    // The fields after `comm`, read in order without collecting them (this
    // runs on every liveness look): field 3 (state) first.
    let mut f = rest.split_ascii_whitespace();
    let state = match f.next()?.as_bytes() {
        [c] => char::from(*c),
        _ => return None,
    };
    let mut num_u32 = || f.next()?.parse::<u32>().ok();
    let (ppid, pgrp, session) = (num_u32()?, num_u32()?, num_u32()?);
    // tty_nr (field 7) is printed as a signed int; keep its 32 bits.
    let tty = f.next()?;
    let tty_nr = tty
        .parse::<u32>()
        .ok()
        .or_else(|| tty.parse::<i32>().ok().map(|v| v as u32))?;
    // start_time is field 22: 14 fields after tty_nr.
    let start_time = f.nth(14)?.parse().ok()?;
    Some(Stat {
        pid,
        comm: String::from_utf8_lossy(&buf[open + 1..close]).into_owned(),
        state,
        ppid,
        pgrp,
        session,
        tty_nr,
        start_time,
    })
}

/// Parses the real and effective uid from the `Uid:` line of
/// `/proc/PID/status`.
pub(crate) fn parse_status_uids(buf: &[u8]) -> Option<(u32, u32)> {
    let text = String::from_utf8_lossy(buf);
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    let mut it = line.split_ascii_whitespace().skip(1);
    let ruid = it.next()?.parse().ok()?;
    let euid = it.next()?.parse().ok()?;
    Some((ruid, euid))
}

pub(crate) fn parse_u32_file(buf: &[u8]) -> Option<u32> {
    std::str::from_utf8(buf).ok()?.trim().parse().ok()
}

/// Parses `tty-index:` from a `/proc/PID/fdinfo/FD` file.
pub(crate) fn parse_tty_index(buf: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(buf).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("tty-index:"))
        .and_then(|v| v.trim().parse().ok())
}

// Only tests read the controlling tty from `stat` (the daemon finds
// terminals through pty master fds); these check what `tty_nr` means.

#[cfg(test)]
/// Splits a `tty_nr` (kernel `new_encode_dev`) into (major, minor).
pub(crate) fn decode_dev(tty_nr: u32) -> (u32, u32) {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    (major, minor)
}

#[cfg(test)]
/// The pts number N if the process's controlling tty is `/dev/pts/N`.
///
/// The kernel numbers pty slaves as `MKDEV(136, 0) + N` with 20 minor bits,
/// so N is the minor (pts/299 is 136:299, measured), and majors 137..=143
/// would only appear past N = 2^20.
pub(crate) fn controlling_pts(info: &super::ProcInfo) -> Option<u32> {
    if info.tty_nr == 0 {
        return None;
    }
    let (major, minor) = decode_dev(info.tty_nr);
    if !(super::PTS_MAJOR_FIRST..=super::PTS_MAJOR_LAST).contains(&major) {
        return None;
    }
    Some(((major - super::PTS_MAJOR_FIRST) << 20) | minor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::procfs::{ProcInfo, AUDIT_UNSET};

    const STAT: &[u8] = b"4360 (cat) R 4352 4352 3965 34817 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 30978 3133440 393 18446744073709551615 0 0";

    #[test]
    fn parse_plain_stat() {
        let want = Stat {
            pid: 4360,
            comm: "cat".into(),
            state: 'R',
            ppid: 4352,
            pgrp: 4352,
            session: 3965,
            tty_nr: 34817,
            start_time: 30978,
        };
        assert_eq!(parse_stat(STAT), Some(want));
    }

    #[test]
    fn parse_hostile_comm() {
        let s = parse_stat(b"7 (a) Z 1 2 (b\nc)) S 9 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0")
            .expect("parse");
        assert_eq!(s.comm, "a) Z 1 2 (b\nc)");
        assert_eq!((s.state, s.ppid, s.start_time), ('S', 9, 555));
        let s =
            parse_stat(b"8 () S 1 8 8 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0").expect("empty comm");
        assert_eq!(s.comm, "");
        let s =
            parse_stat(b"9 (\xff\xfe) S 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0").expect("bytes");
        assert_eq!(s.comm, "\u{fffd}\u{fffd}");
        // Negative tty_nr keeps its bits.
        let s = parse_stat(b"9 (x) S 1 9 9 -2 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0").expect("neg");
        assert_eq!(s.tty_nr, u32::MAX - 1);
    }

    #[test]
    fn parse_garbage_is_none() {
        for bad in [
            &b""[..],
            b"1 (x",
            b"1 x) S 1",
            b") 1 (",
            b"1 (x) S 1 1 1 0",
            b"x (y) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0",
            b"1 (y) SS 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0",
            b"1 (y) S -1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0",
            b"1 (y) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 0",
        ] {
            assert_eq!(parse_stat(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            parse_status_uids(b"Name:\tx\nUid:\t1\t2\t3\t4\n"),
            Some((1, 2))
        );
        assert_eq!(parse_status_uids(b"Uid:\tx\t2\n"), None);
        assert_eq!(parse_status_uids(b""), None);
        assert_eq!(parse_tty_index(b"pos:\t0\ntty-index:\t17\n"), Some(17));
        assert_eq!(parse_tty_index(b"pos:\t0\n"), None);
    }

    fn mock(pid: u32, ppid: u32, start: u64, sid: u32, state: char) -> ProcInfo {
        ProcInfo {
            pid,
            ppid,
            state,
            tty_nr: 0,
            start_time: start,
            comm: format!("p{pid}"),
            ruid: 1000,
            euid: 1000,
            sessionid: sid,
        }
    }

    #[test]
    fn tty_nr_decoding() {
        let with = |tty_nr| ProcInfo {
            tty_nr,
            ..mock(5, 1, 1, AUDIT_UNSET, 'S')
        };
        assert_eq!(controlling_pts(&with(0)), None);
        assert_eq!(controlling_pts(&with(136 << 8)), Some(0));
        assert_eq!(controlling_pts(&with((136 << 8) | 5)), Some(5));
        // Measured: /dev/pts/299 is 136:299, tty_nr 1083435.
        assert_eq!(decode_dev(1_083_435), (136, 299));
        assert_eq!(controlling_pts(&with(1_083_435)), Some(299));
        assert_eq!(controlling_pts(&with((4 << 8) | 1)), None); // tty1
        assert_eq!(controlling_pts(&with((5 << 8) | 1)), None); // console
        assert_eq!(controlling_pts(&with(u32::MAX)), None);
    }
}
