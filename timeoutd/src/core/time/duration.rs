//! Human durations: `90s`, `15m`, `1h30m`, `2d`. A bare number is an error,
//! because "15" could mean seconds or minutes and an admin must not guess.

use std::fmt;
use std::time::Duration;

/// Parses `1h30m`, `90s`, `15m`, `2d`, `1h 30m`. Units: d, h, m, s.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"15m\", \"90s\" or \"1h30m\"".into());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut saw_unit = false;
    for c in s.chars() {
        match c {
            '0'..='9' => number.push(c),
            ' ' if number.is_empty() => {}
            'd' | 'h' | 'm' | 's' => {
                if number.is_empty() {
                    return Err(format!("{text:?}: unit '{c}' has no number before it"));
                }
                let n: u64 = number
                    .parse()
                    .map_err(|_| format!("{text:?}: number too large"))?;
                let unit = match c {
                    'd' => 86_400,
                    'h' => 3_600,
                    'm' => 60,
                    _ => 1,
                };
                total = n
                    .checked_mul(unit)
                    .and_then(|v| total.checked_add(v))
                    .ok_or_else(|| format!("{text:?}: duration too large"))?;
                number.clear();
                saw_unit = true;
            }
            _ => {
                return Err(format!(
                    "{text:?}: unexpected '{c}'; write e.g. \"15m\", \"90s\" or \"1h30m\" (units d, h, m, s)"
                ))
            }
        }
    }
    if !number.is_empty() {
        return Err(if saw_unit {
            format!("{text:?}: trailing number {number} has no unit")
        } else {
            format!("{text:?}: a bare number is ambiguous; add a unit, e.g. \"{number}m\" or \"{number}s\"")
        });
    }
    // Ten years is far beyond any session; larger values are surely typos.
    if total > 10 * 365 * 86_400 {
        return Err(format!("{text:?}: longer than ten years"));
    }
    Ok(Duration::from_secs(total))
}

/// Parses a limit that may be `"off"`.
pub fn parse_limit(text: &str) -> Result<Option<Duration>, String> {
    if text.trim() == "off" {
        return Ok(None);
    }
    let d = parse(text)?;
    if d.is_zero() {
        return Err(format!(
            "{text:?}: a zero limit would end every session at once; use \"off\" to disable"
        ));
    }
    Ok(Some(d))
}

/// Formats like the config language: `1h30m`, `15m`, `45s`, `0s`.
pub struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

/// Formats an optional limit: `off` for none.
pub(crate) fn limit(d: Option<Duration>) -> String {
    d.map_or_else(|| "off".to_owned(), |d| Human(d).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_limit("off"), Ok(None));
    }

    #[test]
    fn rejects_bare_numbers_and_junk() {
        assert!(parse("15").unwrap_err().contains("bare number"));
        assert!(parse("").is_err());
        assert!(parse("m").is_err());
        assert!(parse("5x").is_err());
        assert!(parse("1h5").unwrap_err().contains("no unit"));
        assert!(parse("-5m").is_err());
        assert!(parse("99999999999999999999s").is_err());
        assert!(parse("20000d").is_err());
        assert!(parse_limit("0s").unwrap_err().contains("off"));
    }

    #[test]
    fn formats_round_trip() {
        for s in ["1h30m", "15m", "45s", "2d3h", "1m1s"] {
            assert_eq!(Human(parse(s).unwrap()).to_string(), s);
        }
        assert_eq!(limit(None), "off");
    }
}
