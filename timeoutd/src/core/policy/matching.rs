//! Pattern matching for rule criteria: globs, CIDRs and `!` exclusions. Pure.

use std::net::IpAddr;

/// Shell-style glob with `*` (any run) and `?` (one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
    /// `Ok(None)`: not an address at all (so a host glob). `Err`: looks like a
    /// CIDR but is malformed.
    pub fn parse(s: &str) -> Result<Option<Cidr>, String> {
        let (addr_part, prefix_part) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = match addr_part.parse() {
            Ok(a) => a,
            Err(_) if prefix_part.is_some() => {
                return Err(format!(
                    "malformed CIDR {s:?}: {addr_part:?} is not an IP address"
                ))
            }
            Err(_) => return Ok(None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_part {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(format!(
                        "malformed CIDR {s:?}: prefix must be a number from 0 to {max}"
                    ))
                }
            },
        };
        Ok(Some(Cidr { addr, prefix }))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// One entry of an `rhosts` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    pub exclude: bool,
    pub text: String,
    cidr: Option<Cidr>,
}

impl HostPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (exclude, body) = match s.strip_prefix('!') {
            Some(b) => (true, b),
            None => (false, s),
        };
        if body.is_empty() {
            return Err("empty rhosts pattern".into());
        }
        Ok(Self {
            exclude,
            text: body.to_owned(),
            cidr: Cidr::parse(body)?,
        })
    }

    fn matches(&self, rhost: &str) -> bool {
        match (&self.cidr, rhost.parse::<IpAddr>()) {
            (Some(c), Ok(ip)) => c.contains(ip),
            (Some(_), Err(_)) => false,
            (None, _) => glob(&self.text.to_ascii_lowercase(), &rhost.to_ascii_lowercase()),
        }
    }
}

/// Evaluates an `rhosts` list: the first pattern that matches decides; a `!`
/// pattern excludes. A login without a remote host matches no list.
pub fn rhost_matches(patterns: &[HostPattern], rhost: &str) -> bool {
    if rhost.is_empty() {
        return false;
    }
    patterns
        .iter()
        .find(|p| p.matches(rhost))
        .is_some_and(|p| !p.exclude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("deploy-*", "deploy-web"));
        assert!(glob("deploy-*", "deploy-"));
        assert!(!glob("deploy-*", "xdeploy-web"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*", ""));
        assert!(glob("sshd*", "sshd-stt1"));
        assert!(glob("*a*b*", "xxaxxbxx"));
        assert!(!glob("*a*b", "xxaxxbxxc"));
        assert!(glob("backup", "backup"));
        assert!(!glob("backup", "backup2"));
    }

    #[test]
    fn cidrs_v4_and_v6() {
        let net = Cidr::parse("10.0.0.0/8").unwrap().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.9.9.9".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let odd = Cidr::parse("192.168.4.0/22").unwrap().unwrap();
        assert!(odd.contains("192.168.7.255".parse().unwrap()));
        assert!(!odd.contains("192.168.8.0".parse().unwrap()));
        let host = Cidr::parse("127.0.0.1").unwrap().unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn malformed_cidrs_are_errors_and_names_are_globs() {
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
        assert!(Cidr::parse("fe80::/129").is_err());
        assert!(Cidr::parse("10.0.0.0/x").is_err());
        assert_eq!(Cidr::parse("*.example.com"), Ok(None));
    }

    #[test]
    fn exclusions_and_first_match() {
        let list: Vec<HostPattern> = ["!10.0.0.0/8", "*"]
            .iter()
            .map(|s| HostPattern::parse(s).unwrap())
            .collect();
        assert!(!rhost_matches(&list, "10.1.2.3"));
        assert!(rhost_matches(&list, "192.0.2.1"));
        assert!(rhost_matches(&list, "2001:db8::1"));
        assert!(rhost_matches(&list, "host.example.com"));
        assert!(
            !rhost_matches(&list, ""),
            "local logins match no rhosts list"
        );
        let names: Vec<HostPattern> = ["*.corp.example", "!bad.corp.example"]
            .iter()
            .map(|s| HostPattern::parse(s).unwrap())
            .collect();
        assert!(rhost_matches(&names, "GOOD.corp.example"));
        assert!(
            rhost_matches(&names, "bad.corp.example"),
            "the first match decides"
        );
        assert!(HostPattern::parse("!").is_err());
    }
}
