//! Versions, Terraform-style version constraints (`~> 2.2`, `>= 1.0, < 2.0`) and inclusive
//! version ranges: the one version type of the workspace. Provider versions in the mirror,
//! the Terraform range a Coder release accepts (sync's table, the stage lock, doctor) and
//! the versions programs print are all compared as [`Version`]s, never as strings.

#![deny(missing_docs)]

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A bad version or version constraint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {input:?}: {reason}")]
pub struct VersionError {
    /// What was given.
    pub input: String,
    /// Why it was refused.
    pub reason: &'static str,
}

/// A version: MAJOR.MINOR.PATCH with an optional pre-release suffix (a leading `v` and
/// `+build` metadata are accepted and dropped).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Patch number.
    pub patch: u64,
    /// Pre-release label after `-` (e.g. `beta1`), if any.
    pub pre: Option<String>,
}

impl Version {
    fn triple(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.triple()
            .cmp(&other.triple())
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (version, parts) = parse_parts(s)?;
        if parts != 3 {
            return Err(err(s, "expected MAJOR.MINOR.PATCH"));
        }
        Ok(version)
    }
}

/// Parses 1 to 3 numeric parts (missing ones are 0); returns how many were given.
fn parse_parts(s: &str) -> Result<(Version, usize), VersionError> {
    let s = s.trim();
    let s = s.strip_prefix('v').unwrap_or(s);
    // `+build` metadata (`v2.35.3+0123abc`, `2.36.0-devel+abc`) takes no part in ordering.
    let without_build = s.split_once('+').map_or(s, |(v, _)| v);
    let (core, pre) = match without_build.split_once('-') {
        Some((core, pre)) if !pre.is_empty() && valid_label(pre) => (core, Some(pre.to_string())),
        Some(_) => return Err(err(s, "bad pre-release label")),
        None => (without_build, None),
    };
    let mut nums = [0u64; 3];
    let mut count = 0;
    for part in core.split('.') {
        if count == 3 {
            return Err(err(s, "too many parts"));
        }
        nums[count] = part.parse().map_err(|_| err(s, "parts must be numbers"))?;
        count += 1;
    }
    let version = Version {
        major: nums[0],
        minor: nums[1],
        patch: nums[2],
        pre,
    };
    Ok((version, count))
}

fn valid_label(label: &str) -> bool {
    label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn err(input: &str, reason: &'static str) -> VersionError {
    VersionError {
        input: input.to_string(),
        reason,
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An inclusive version range `min..=max`, stored (in the stage lock) as
/// `{"min": "1.1.0", "max": "1.14.9"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VersionRange {
    /// Lowest accepted.
    pub min: Version,
    /// Highest accepted.
    pub max: Version,
}

/// Where a version sits against a [`VersionRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Lower than the range's minimum.
    Below,
    /// Within the range, both ends included.
    Inside,
    /// Higher than the range's maximum.
    Above,
}

impl VersionRange {
    /// Where `v` sits against the range.
    pub fn place(&self, v: &Version) -> Place {
        if v < &self.min {
            Place::Below
        } else if v > &self.max {
            Place::Above
        } else {
            Place::Inside
        }
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.min, self.max)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Pessimistic,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    op: Op,
    version: Version,
    parts: usize,
}

/// A Terraform version constraint: comma-separated clauses that must all hold.
/// Pre-releases match only an exact `= V-pre` clause, as in Terraform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    text: String,
    clauses: Vec<Clause>,
}

impl FromStr for Constraint {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut clauses = Vec::new();
        for raw in s.split(',') {
            let raw = raw.trim();
            if raw.is_empty() {
                return Err(err(s, "empty clause in constraint"));
            }
            let (op, rest) = split_op(raw);
            let (version, parts) = parse_parts(rest)?;
            clauses.push(Clause { op, version, parts });
        }
        Ok(Constraint {
            text: s.trim().to_string(),
            clauses,
        })
    }
}

fn split_op(raw: &str) -> (Op, &str) {
    const OPS: [(&str, Op); 7] = [
        ("~>", Op::Pessimistic),
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("!=", Op::Ne),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
    ];
    for (prefix, op) in OPS {
        if let Some(rest) = raw.strip_prefix(prefix) {
            return (op, rest.trim());
        }
    }
    (Op::Eq, raw)
}

impl Constraint {
    /// Whether `v` satisfies every clause.
    pub fn matches(&self, v: &Version) -> bool {
        if v.pre.is_some() {
            let exact = self
                .clauses
                .iter()
                .any(|c| c.op == Op::Eq && &c.version == v);
            if !exact {
                return false;
            }
        }
        self.clauses.iter().all(|c| c.matches(v))
    }

    /// The newest of `versions` that satisfies the constraint.
    pub fn newest<'a>(
        &self,
        versions: impl IntoIterator<Item = &'a Version>,
    ) -> Option<&'a Version> {
        versions.into_iter().filter(|v| self.matches(v)).max()
    }
}

impl Clause {
    fn matches(&self, v: &Version) -> bool {
        let c = &self.version;
        match self.op {
            Op::Eq => v == c,
            Op::Ne => v != c,
            Op::Gt => v > c,
            Op::Ge => v >= c,
            Op::Lt => v < c,
            Op::Le => v <= c,
            Op::Pessimistic => v >= c && v.triple() < self.pessimistic_upper(),
        }
    }

    /// `~> 2.2` allows < 3.0.0; `~> 2.2.1` allows < 2.3.0; `~> 2` allows < 3.0.0.
    fn pessimistic_upper(&self) -> (u64, u64, u64) {
        let c = &self.version;
        match self.parts {
            3 => (c.major, c.minor + 1, 0),
            _ => (c.major + 1, 0, 0),
        }
    }
}

impl TryFrom<String> for Constraint {
    type Error = VersionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl<'de> serde::Deserialize<'de> for Constraint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().expect("version")
    }

    fn c(s: &str) -> Constraint {
        s.parse().expect("constraint")
    }

    #[test]
    fn pessimistic_two_and_three_parts() {
        assert!(c("~> 2.2").matches(&v("2.9.0")));
        assert!(!c("~> 2.2").matches(&v("3.0.0")));
        assert!(!c("~> 2.2").matches(&v("2.1.9")));
        assert!(c("~> 2.2.1").matches(&v("2.2.7")));
        assert!(!c("~> 2.2.1").matches(&v("2.3.0")));
    }

    #[test]
    fn ranges_and_prereleases() {
        let range = c(">= 1.0, < 2.0");
        assert!(range.matches(&v("1.5.0")));
        assert!(!range.matches(&v("2.0.0")));
        assert!(!range.matches(&v("1.5.0-beta1")));
        assert!(c("= 1.5.0-beta1").matches(&v("1.5.0-beta1")));
        assert!(c("1.2.3").matches(&v("1.2.3")));
        assert!(!c("!= 1.2.3").matches(&v("1.2.3")));
    }

    #[test]
    fn newest_and_ordering() {
        let all = [v("2.2.0"), v("2.10.0"), v("2.3.0-rc1"), v("3.0.0")];
        assert_eq!(c("~> 2.2").newest(&all), Some(&v("2.10.0")));
        assert!(v("1.0.0-rc1") < v("1.0.0"));
        assert!("1.x.0".parse::<Version>().is_err());
        assert!("~>".parse::<Constraint>().is_err());
    }

    #[test]
    fn build_metadata_is_dropped_and_a_prefix_v_accepted() {
        assert_eq!(v("v2.35.3+0123abc").to_string(), "2.35.3");
        assert_eq!(v("v2.36.0-devel+abc").to_string(), "2.36.0-devel");
        assert!("2.35".parse::<Version>().is_err());
        assert!("1.0.0-".parse::<Version>().is_err());
    }

    #[test]
    fn a_range_places_versions_with_both_ends_included() {
        let range = VersionRange {
            min: v("1.1.0"),
            max: v("1.14.9"),
        };
        assert_eq!(range.place(&v("1.0.9")), Place::Below);
        assert_eq!(range.place(&v("1.1.0")), Place::Inside);
        assert_eq!(range.place(&v("1.14.9")), Place::Inside);
        // Numeric, not textual: 1.9.0 < 1.14.9 < 1.15.0.
        assert_eq!(range.place(&v("1.9.0")), Place::Inside);
        assert_eq!(range.place(&v("1.15.0")), Place::Above);
        assert_eq!(range.place(&v("1.1.0-rc1")), Place::Below);
        assert_eq!(range.to_string(), "1.1.0..=1.14.9");
    }

    #[test]
    fn a_range_is_stored_as_two_strings() {
        let range = VersionRange {
            min: v("1.1.0"),
            max: v("1.14.9"),
        };
        let json = serde_json::to_string(&range).expect("serialize");
        assert_eq!(json, r#"{"min":"1.1.0","max":"1.14.9"}"#);
        let back: VersionRange = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, range);
        let bad = serde_json::from_str::<VersionRange>(r#"{"min":"1.x","max":"1.14.9"}"#);
        assert!(bad.is_err());
    }
}
