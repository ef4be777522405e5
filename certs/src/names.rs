//! Names a certificate may carry: DNS names (optionally a leftmost `*` wildcard label), IP
//! addresses and IP ranges, and the name constraints that limit them.
//!
//! Matching follows RFC 5280 §4.2.1.10 as OpenSSL and webpki apply it: a DNS constraint
//! `example.com` permits `example.com` and every name ending in `.example.com`; one written
//! `.example.com` permits only the subdomains; an IP constraint is an address and prefix.
//! A name form with no permitted subtree is unconstrained unless a subtree excludes it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use x509_parser::extensions::{GeneralName, NameConstraints};

use crate::error::{CertsError, Result};

/// Validates and lowercases a DNS name for a certificate (`*.apps.example.com` allowed).
pub(crate) fn dns_name(name: &str) -> Result<String> {
    let lower = name.trim().to_ascii_lowercase();
    let bad = |why: &str| CertsError::invalid("DNS name", name, why);
    let rest = match lower.strip_prefix("*.") {
        Some(rest) if rest.split('.').count() < 2 => {
            return Err(bad(
                "a wildcard needs at least two labels after `*.` (like *.apps.example.com)",
            ))
        }
        Some(rest) => rest,
        None => &lower,
    };
    check_labels(rest).map_err(bad)?;
    Ok(lower)
}

/// Validates a permitted DNS suffix (`example.com`, or `.example.com` for subdomains only).
pub(crate) fn dns_suffix(suffix: &str) -> Result<String> {
    let lower = suffix.trim().to_ascii_lowercase();
    let rest = lower.strip_prefix('.').unwrap_or(&lower);
    check_labels(rest).map_err(|why| CertsError::invalid("DNS suffix", suffix, why))?;
    Ok(lower)
}

/// Checks LDH labels: 1–63 of `a-z0-9-`, no leading or trailing `-`, 253 in all.
fn check_labels(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("a DNS name has 1 to 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label has 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(
                "use letters, digits and '-' only (write internationalised names in punycode)",
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label cannot start or end with '-'");
        }
    }
    Ok(())
}

/// An IP address range: an address and a prefix length (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// The range of `addr` with `prefix` bits fixed; the host bits of `addr` are cleared.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CertsError::invalid(
                "CIDR",
                format!("{addr}/{prefix}"),
                format!("the prefix length is at most {max}"),
            ));
        }
        let masked = mask_bytes(&octets(addr), prefix);
        Ok(IpRange {
            addr: addr_from(&masked).unwrap_or(addr),
            prefix,
        })
    }

    /// Whether `ip` is inside this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && mask_bytes(&octets(ip), self.prefix) == octets(self.addr)
    }

    /// This range as rcgen writes it into a certificate.
    pub(crate) fn to_rcgen(self) -> rcgen::CidrSubnet {
        rcgen::CidrSubnet::from_addr_prefix(self.addr, self.prefix)
    }

    /// Reads the `address || mask` bytes of a name-constraint subtree.
    fn from_constraint_bytes(bytes: &[u8]) -> Option<Self> {
        let (addr, mask) = bytes.split_at(bytes.len() / 2);
        let prefix = mask.iter().map(|b| b.count_ones()).sum::<u32>();
        IpRange::new(addr_from(addr)?, u8::try_from(prefix).ok()?).ok()
    }
}

impl FromStr for IpRange {
    type Err = CertsError;
    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            CertsError::invalid(
                "CIDR",
                text,
                "expected ADDRESS/PREFIX, like 10.20.0.0/16 or fd00::/8",
            )
        };
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let full = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => full,
        };
        IpRange::new(addr, prefix)
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn addr_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn mask_bytes(bytes: &[u8], prefix: u8) -> Vec<u8> {
    let mut left = u32::from(prefix);
    bytes
        .iter()
        .map(|b| {
            let keep = left.min(8);
            left -= keep;
            let mask = if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
            b & mask
        })
        .collect()
}

/// Whether DNS `name` is inside DNS constraint `base` (see the module docs).
fn dns_matches(name: &str, base: &str) -> bool {
    let base = base.to_ascii_lowercase();
    if base.is_empty() {
        return true;
    }
    if base.starts_with('.') {
        return name.ends_with(&base);
    }
    name == base
        || name
            .strip_suffix(&base)
            .is_some_and(|head| head.ends_with('.'))
}

/// The name constraints of one CA certificate, for the DNS and IP name forms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constraints {
    /// Permitted DNS suffixes (empty: DNS names unconstrained unless excluded).
    pub permitted_dns: Vec<String>,
    /// Excluded DNS suffixes (`""` excludes every DNS name).
    pub excluded_dns: Vec<String>,
    /// Permitted IP ranges (empty: addresses unconstrained unless excluded).
    pub permitted_ip: Vec<IpRange>,
    /// Excluded IP ranges.
    pub excluded_ip: Vec<IpRange>,
}

impl Constraints {
    /// The constraints of a new root: the permitted suffixes and ranges, and, when only one
    /// form is permitted, the other excluded entirely, so a verifier enforces what `issue`
    /// enforces. No permits at all means no constraints.
    pub(crate) fn for_new_root(dns: Vec<String>, ip: Vec<IpRange>) -> Self {
        let mut c = Constraints {
            permitted_dns: dns,
            permitted_ip: ip,
            ..Default::default()
        };
        if !c.permitted_dns.is_empty() && c.permitted_ip.is_empty() {
            c.excluded_ip = vec![
                IpRange {
                    addr: IpAddr::from([0u8; 4]),
                    prefix: 0,
                },
                IpRange {
                    addr: IpAddr::from([0u8; 16]),
                    prefix: 0,
                },
            ];
        }
        if c.permitted_dns.is_empty() && !c.permitted_ip.is_empty() {
            c.excluded_dns = vec![String::new()];
        }
        c
    }

    /// Whether there is nothing to enforce.
    pub fn is_empty(&self) -> bool {
        self == &Constraints::default()
    }

    /// The rcgen extension value, `None` when there is nothing to constrain.
    pub(crate) fn to_rcgen(&self) -> Option<rcgen::NameConstraints> {
        if self.is_empty() {
            return None;
        }
        let tree = |dns: &[String], ip: &[IpRange]| {
            let dns = dns
                .iter()
                .map(|d| rcgen::GeneralSubtree::DnsName(d.clone()));
            dns.chain(
                ip.iter()
                    .map(|r| rcgen::GeneralSubtree::IpAddress(r.to_rcgen())),
            )
            .collect()
        };
        Some(rcgen::NameConstraints {
            permitted_subtrees: tree(&self.permitted_dns, &self.permitted_ip),
            excluded_subtrees: tree(&self.excluded_dns, &self.excluded_ip),
        })
    }

    /// Reads the DNS and IP subtrees of a parsed name-constraints extension.
    pub(crate) fn from_x509(nc: &NameConstraints<'_>) -> Self {
        let mut c = Constraints::default();
        for subtree in nc.permitted_subtrees.iter().flatten() {
            match &subtree.base {
                GeneralName::DNSName(d) => c.permitted_dns.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => {
                    c.permitted_ip.extend(IpRange::from_constraint_bytes(b))
                }
                _ => {}
            }
        }
        for subtree in nc.excluded_subtrees.iter().flatten() {
            match &subtree.base {
                GeneralName::DNSName(d) => c.excluded_dns.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => {
                    c.excluded_ip.extend(IpRange::from_constraint_bytes(b))
                }
                _ => {}
            }
        }
        c
    }

    /// Whether DNS `name` (already validated) satisfies these constraints.
    pub fn permits_dns(&self, name: &str) -> bool {
        !self.excluded_dns.iter().any(|b| dns_matches(name, b))
            && (self.permitted_dns.is_empty()
                || self.permitted_dns.iter().any(|b| dns_matches(name, b)))
    }

    /// Whether `ip` satisfies these constraints.
    pub fn permits_ip(&self, ip: IpAddr) -> bool {
        !self.excluded_ip.iter().any(|r| r.contains(ip))
            && (self.permitted_ip.is_empty() || self.permitted_ip.iter().any(|r| r.contains(ip)))
    }
}

impl fmt::Display for Constraints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |dns: &[String], ip: &[IpRange]| {
            let dns = dns.iter().map(|d| {
                if d.is_empty() {
                    "DNS:(all)".to_owned()
                } else {
                    format!("DNS:{d}")
                }
            });
            let all: Vec<String> = dns.chain(ip.iter().map(|r| format!("IP:{r}"))).collect();
            if all.is_empty() {
                "none".to_owned()
            } else {
                all.join(", ")
            }
        };
        write!(
            f,
            "permitted: {}; excluded: {}",
            list(&self.permitted_dns, &self.permitted_ip),
            list(&self.excluded_dns, &self.excluded_ip)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn dns_names_are_validated_and_lowercased() {
        assert_eq!(
            dns_name("Coder.Example.COM").expect("ok"),
            "coder.example.com"
        );
        assert_eq!(
            dns_name("*.apps.example.com").expect("ok"),
            "*.apps.example.com"
        );
        for bad in [
            "",
            "-a.example.com",
            "a..b",
            "*.com",
            "a.*.example.com",
            "under_score.example.com",
        ] {
            assert!(dns_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn dns_constraints_match_on_label_boundaries() {
        let c = Constraints::for_new_root(vec!["example.com".into()], vec![]);
        assert!(c.permits_dns("example.com"));
        assert!(c.permits_dns("a.b.example.com"));
        assert!(c.permits_dns("*.apps.example.com"));
        assert!(!c.permits_dns("badexample.com"));
        assert!(!c.permits_dns("example.org"));
        assert!(
            !c.permits_ip(ip("10.0.0.1")),
            "IPs must be excluded when only DNS is permitted"
        );
        let sub = Constraints {
            permitted_dns: vec![".example.com".into()],
            ..Default::default()
        };
        assert!(!sub.permits_dns("example.com"));
        assert!(sub.permits_dns("a.example.com"));
    }

    #[test]
    fn ip_ranges_parse_and_match() {
        let r: IpRange = "10.20.30.40/16".parse().expect("cidr");
        assert_eq!(r.to_string(), "10.20.0.0/16");
        assert!(r.contains(ip("10.20.255.1")));
        assert!(!r.contains(ip("10.21.0.1")));
        assert!(!r.contains(ip("::1")));
        let single: IpRange = "127.0.0.1".parse().expect("single");
        assert!(single.contains(ip("127.0.0.1")) && !single.contains(ip("127.0.0.2")));
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
        assert!("fd00::/8"
            .parse::<IpRange>()
            .expect("v6")
            .contains(ip("fd12::1")));
        let c = Constraints::for_new_root(vec![], vec![r]);
        assert!(c.permits_ip(ip("10.20.1.1")) && !c.permits_ip(ip("192.0.2.1")));
        assert!(
            !c.permits_dns("anything.example"),
            "DNS must be excluded when only IPs are permitted"
        );
    }

    #[test]
    fn constraint_bytes_round_trip() {
        let r: IpRange = "192.168.0.0/20".parse().expect("cidr");
        let mut bytes = octets(r.addr);
        bytes.extend(mask_bytes(&[0xff; 4], 20));
        assert_eq!(IpRange::from_constraint_bytes(&bytes), Some(r));
    }
}
