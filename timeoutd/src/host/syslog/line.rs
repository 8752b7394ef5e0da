//! One syslog line: `<PRI>Mmm dd hh:mm:ss timeoutd[PID]: MESSAGE` (RFC 3164),
//! facility authpriv, PRI = 10*8 + severity. The timestamp is local time
//! (`localtime_r`), UTC if that fails. Control characters in a message are
//! escaped (`\xNN`, `\u{..}`), so a message is always a single line, and it
//! is cut at [`MAX_MESSAGE`] bytes.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use crate::core::audit::event::Severity;

/// Syslog facility authpriv.
pub(crate) const FACILITY_AUTHPRIV: u8 = 10;
/// Program name in every line.
pub(crate) const IDENT: &str = "timeoutd";
/// Longest message (after escaping) sent, in bytes.
pub(crate) const MAX_MESSAGE: usize = 8 * 1024;

/// Builds `<PRI>STAMP timeoutd[PID]: BODY`.
pub(super) fn format_line(severity: Severity, stamp: &str, pid: u32, body: &str) -> String {
    let pri = u32::from(FACILITY_AUTHPRIV) * 8 + u32::from(severity.code());
    format!("<{pri}>{stamp} {IDENT}[{pid}]: {body}")
}

/// Escapes every control character (including newline and tab) and cuts
/// the result at [`MAX_MESSAGE`] bytes on a character boundary.
pub(super) fn one_line(msg: &str) -> Cow<'_, str> {
    // Most lines have nothing to escape and fit: used as they are. A
    // control character is a C0 byte, DEL, or a C1 character (U+0080 to
    // U+009F, encoded 0xC2 0x80..0x9F): lines with none of those bytes are
    // passed without decoding them.
    let may_have_control = msg.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2);
    if msg.len() <= MAX_MESSAGE && !(may_have_control && msg.chars().any(char::is_control)) {
        return Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len().min(MAX_MESSAGE));
    let mut piece = String::with_capacity(12);
    for c in msg.chars() {
        piece.clear();
        if c.is_control() {
            crate::core::audit::escape::push_escape(&mut piece, c);
        } else {
            piece.push(c);
        }
        if out.len() + piece.len() > MAX_MESSAGE {
            break;
        }
        out.push_str(&piece);
    }
    Cow::Owned(out)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Broken-down time: month 0..=11, day 1..=31, hour, minute, second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    month: usize,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
}

/// `Mmm dd hh:mm:ss` (day space-padded) for unix time `t`, in local time.
pub(super) fn timestamp(t: i64) -> String {
    let c = local_civil(t).unwrap_or_else(|| utc_civil(t));
    format_civil(c)
}

fn format_civil(c: Civil) -> String {
    let mon = MONTHS.get(c.month).copied().unwrap_or("Jan");
    format!("{mon} {:>2} {:02}:{:02}:{:02}", c.day, c.hour, c.min, c.sec)
}

/// UTC broken-down time (days-from-civil inverse, H. Hinnant's algorithm).
fn utc_civil(t: i64) -> Civil {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // 1..=12
    Civil {
        month: usize::try_from(month - 1).unwrap_or(0),
        day: u32::try_from(day).unwrap_or(1),
        hour: u32::try_from(secs / 3600).unwrap_or(0),
        min: u32::try_from(secs % 3600 / 60).unwrap_or(0),
        sec: u32::try_from(secs % 60).unwrap_or(0),
    }
}

/// Local broken-down time through `localtime_r(3)`.
fn local_civil(t: i64) -> Option<Civil> {
    let tt: libc::time_t = t;
    let mut tm = MaybeUninit::<libc::tm>::uninit();
    // SAFETY: `tt` is a valid time_t and `tm` points to writable storage for
    // one `struct tm`; localtime_r writes only into it and returns either that
    // pointer (fully initialised) or NULL on failure.
    let tm = unsafe {
        if libc::localtime_r(&tt, tm.as_mut_ptr()).is_null() {
            return None;
        }
        tm.assume_init()
    };
    Some(Civil {
        month: usize::try_from(tm.tm_mon).ok().filter(|m| *m < 12)?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: u32::try_from(tm.tm_hour).ok()?,
        min: u32::try_from(tm.tm_min).ok()?,
        sec: u32::try_from(tm.tm_sec).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_format() {
        // 2024-03-05 07:08:09 UTC
        let c = utc_civil(1_709_622_489);
        assert_eq!(format_civil(c), "Mar  5 07:08:09");
        // 2000-12-31 23:59:59 UTC
        assert_eq!(format_civil(utc_civil(978_307_199)), "Dec 31 23:59:59");
        assert_eq!(format_civil(utc_civil(0)), "Jan  1 00:00:00");
        // 2024-02-29 (leap day)
        assert_eq!(format_civil(utc_civil(1_709_208_000)), "Feb 29 12:00:00");
        // Before the epoch does not panic.
        assert_eq!(format_civil(utc_civil(-1)), "Dec 31 23:59:59");
        assert_eq!(timestamp(1_709_622_489).len(), 15);
    }

    #[test]
    fn local_time_matches_utc_offset_shape() {
        let s = timestamp(1_709_622_489);
        let b = s.as_bytes();
        assert_eq!(b[3], b' ');
        assert_eq!(b[9], b':');
        assert_eq!(b[12], b':');
    }

    #[test]
    fn line_format_and_priority() {
        let l = format_line(Severity::Info, "Mar  5 07:08:09", 42, "hi");
        assert_eq!(l, "<86>Mar  5 07:08:09 timeoutd[42]: hi");
        let l = format_line(Severity::Err, "Mar  5 07:08:09", 42, "x");
        assert!(l.starts_with("<83>"));
        assert!(format_line(Severity::Warning, "", 1, "").starts_with("<84>"));
        assert!(format_line(Severity::Notice, "", 1, "").starts_with("<85>"));
    }

    #[test]
    fn one_line_escapes_and_truncates() {
        assert_eq!(one_line("a\nb\tc\u{1b}\u{9b}"), "a\\x0ab\\x09c\\x1b\\u{9b}");
        let long = "é".repeat(10_000);
        let cut = one_line(&long);
        assert!(cut.len() <= MAX_MESSAGE);
        assert!(cut.len() > MAX_MESSAGE - 4);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
