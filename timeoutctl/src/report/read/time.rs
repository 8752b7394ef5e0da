//! Timestamps as the log formats write them, to Unix seconds: RFC 3339
//! (with an offset), the `--from`/`--to` forms `YYYY-MM-DD[THH:MM[:SS]]`
//! (local time), and rsyslog's traditional `Mmm dd hh:mm:ss` (local time,
//! no year: the current one, or the previous one if that would be in the
//! future).

use std::mem::MaybeUninit;

/// A broken-down civil time, no zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
}

impl Civil {
    fn valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour < 24
            && self.min < 60
            && self.sec <= 60
            && (1970..=9999).contains(&self.year)
    }

    /// Seconds since the epoch if this civil time is UTC.
    pub fn as_utc(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour * 3600 + self.min * 60 + self.sec)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil UTC date of Unix seconds `t`.
pub fn civil_from_secs(t: i64) -> Civil {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let small = |v: i64| u32::try_from(v).unwrap_or(0);
    Civil {
        year,
        month: small(month),
        day: small(day),
        hour: small(secs / 3600),
        min: small(secs % 3600 / 60),
        sec: small(secs % 60),
    }
}

fn digits(s: &str, at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at + n)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// `YYYY-MM-DDTHH:MM:SS` (or a space for the `T`); the rest after it.
fn date_time(s: &str) -> Option<(Civil, &str)> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[10] != b'T' && b[10] != b' ' {
        return None;
    }
    let c = Civil {
        year: i64::from(digits(s, 0, 4)?),
        month: digits(s, 5, 2)?,
        day: digits(s, 8, 2)?,
        hour: digits(s, 11, 2)?,
        min: digits(s, 14, 2)?,
        sec: digits(s, 17, 2)?,
    };
    c.valid().then_some((c, &s[19..]))
}

/// RFC 3339 / ISO 8601 with an offset: `2026-12-01T23:30:30.123+00:00`,
/// `...Z`, `...+0000`. Fractions are dropped.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let (c, mut rest) = date_time(s)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest.as_bytes().first()? {
        b'Z' | b'z' if rest.len() == 1 => 0,
        sign @ (b'+' | b'-') => {
            let (h, m) = match rest.len() {
                6 if rest.as_bytes()[3] == b':' => (digits(rest, 1, 2)?, digits(rest, 4, 2)?),
                5 => (digits(rest, 1, 2)?, digits(rest, 3, 2)?),
                _ => return None,
            };
            let o = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    Some(c.as_utc() - offset)
}

/// `--from` / `--to`: RFC 3339 with an offset, or `YYYY-MM-DD[THH:MM[:SS]]`
/// in local time.
pub fn parse_arg(text: &str) -> Result<i64, String> {
    let s = text.trim();
    if let Some(t) = parse_rfc3339(s) {
        return Ok(t);
    }
    let padded = match s.len() {
        10 => format!("{s}T00:00:00"),
        16 => format!("{s}:00"),
        _ => s.to_owned(),
    };
    match date_time(&padded) {
        Some((c, "")) => local_to_utc(&c).ok_or_else(|| format!("{text:?}: not a local time")),
        _ => Err(format!(
            "{text:?}: write YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or RFC 3339 with an offset"
        )),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// rsyslog's traditional `Mmm dd hh:mm:ss` (the first 15 bytes of `s`),
/// local time; the year is `now`'s, or the previous one if the date would be
/// more than a day in the future.
pub fn parse_traditional(s: &str, now: i64, local: &mut LocalZone) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 15 || b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let month = MONTHS.iter().position(|m| s.get(0..3) == Some(m))?;
    let day_text = s.get(4..6)?.trim_start();
    let mut c = Civil {
        year: civil_from_secs(now).year,
        month: u32::try_from(month + 1).ok()?,
        day: digits(day_text, 0, day_text.len())?,
        hour: digits(s, 7, 2)?,
        min: digits(s, 10, 2)?,
        sec: digits(s, 13, 2)?,
    };
    if !c.valid() {
        return None;
    }
    let t = local.utc_of(&c)?;
    if t <= now + 86_400 {
        return Some(t);
    }
    c.year -= 1;
    local.utc_of(&c)
}

/// Local civil time to Unix seconds through `mktime(3)`, remembering the
/// last hour converted (log lines come in order, so most lines hit it).
#[derive(Debug, Default)]
pub struct LocalZone {
    last: Option<((i64, u32, u32, u32), i64)>,
}

impl LocalZone {
    pub fn utc_of(&mut self, c: &Civil) -> Option<i64> {
        let key = (c.year, c.month, c.day, c.hour);
        let hour_start = match self.last {
            Some((k, t)) if k == key => t,
            _ => {
                let t = local_to_utc(&Civil {
                    min: 0,
                    sec: 0,
                    ..*c
                })?;
                self.last = Some((key, t));
                t
            }
        };
        Some(hour_start + i64::from(c.min * 60 + c.sec))
    }
}

/// One local civil time to Unix seconds (`mktime`, DST chosen by the zone).
fn local_to_utc(c: &Civil) -> Option<i64> {
    let tm = MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: zeroed() gives a valid `struct tm` (plain integers and a null
    // tm_zone pointer, which mktime does not read).
    let mut tm = unsafe { tm.assume_init() };
    tm.tm_year = i32::try_from(c.year - 1900).ok()?;
    tm.tm_mon = i32::try_from(c.month).ok()? - 1;
    tm.tm_mday = i32::try_from(c.day).ok()?;
    tm.tm_hour = i32::try_from(c.hour).ok()?;
    tm.tm_min = i32::try_from(c.min).ok()?;
    tm.tm_sec = i32::try_from(c.sec).ok()?;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a live, initialised `struct tm`; mktime only reads and
    // normalises it in place.
    let t = unsafe { libc::mktime(&mut tm) };
    (t != -1).then_some(t)
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for t in [0, 951_782_400, 1_796_160_630, 4_102_444_799] {
            assert_eq!(civil_from_secs(t).as_utc(), t);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn rfc3339_forms() {
        let t = 1_796_167_830; // 2026-12-01T23:30:30Z
        assert_eq!(parse_rfc3339("2026-12-01T23:30:30Z"), Some(t));
        assert_eq!(parse_rfc3339("2026-12-01T23:30:30.123456+00:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-12-02T00:30:30+0100"), Some(t));
        assert_eq!(parse_rfc3339("2026-12-01T18:30:30-05:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-12-01T23:30:30"), None);
        assert_eq!(parse_rfc3339("2026-13-01T23:30:30Z"), None);
        assert_eq!(parse_rfc3339("2026-12-01T23:30:30.Z"), None);
        assert_eq!(parse_rfc3339("2026-12-01T23:30:30+01"), None);
        assert_eq!(parse_rfc3339("2026-12-01"), None);
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_arg("2026-12-01T23:30:30Z"), Ok(1_796_167_830));
        let local_day = parse_arg("2026-12-01").unwrap();
        assert_eq!(parse_arg("2026-12-01T00:00").unwrap(), local_day);
        assert_eq!(parse_arg("2026-12-01T00:00:10").unwrap(), local_day + 10);
        assert!(parse_arg("yesterday").is_err());
        assert!(parse_arg("2026-12-01T25:00").is_err());
    }

    #[test]
    fn traditional_year_inference() {
        let mut z = LocalZone::default();
        let now = parse_arg("2026-03-01T12:00:00").unwrap();
        let dec = parse_traditional("Dec  1 23:30:30", now, &mut z).unwrap();
        assert_eq!(dec, parse_arg("2025-12-01T23:30:30").unwrap());
        let feb = parse_traditional("Feb 28 10:00:00 host", now, &mut z).unwrap();
        assert_eq!(feb, parse_arg("2026-02-28T10:00:00").unwrap());
        assert_eq!(parse_traditional("Foo  1 23:30:30", now, &mut z), None);
        assert_eq!(parse_traditional("Dec 1 23:30:30 ", now, &mut z), None);
        assert_eq!(parse_traditional("Dec  1 23:3", now, &mut z), None);
    }
}
