//! Names and paths taken from a signed manifest or lock, checked before they become part of
//! a path or a command line.
//!
//! A signature proves who made a bundle, not that every string in it is safe to join onto
//! a directory: a signer's mistake (or a stolen key) must not turn `version = "../../etc"`
//! into a directory outside the appliance root. Everything that names a file system entry
//! goes through one of these checks first:
//!
//! - [`check_name`]: one path segment (the release version, a component name): a strict
//!   character set, no separators, no `.`/`..`, no leading dot (so no hidden names and no
//!   reserved staging prefixes), at most [`MAX_NAME_BYTES`].
//! - [`check_rel_path`]: a path relative to the release (component paths, the Postgres
//!   bindir): segments as [`check_name`] allows them, joined by `/`, no absolute path.
//! - [`check_manifest`]: every such field of a manifest. A checked component path stays
//!   inside the release, since unpack never creates links; whether it exists is the
//!   installer's stage contract.
//! - [`release_name`]: the release directory name `VERSION-SEQUENCE`, built only from a
//!   checked manifest.

use crate::manifest::Manifest;
use crate::unpack::STAGING_PREFIX;

/// Longest single name (version, component name, path segment).
pub const MAX_NAME_BYTES: usize = 128;
/// Longest relative path built from names (component paths, the Postgres bindir).
pub const MAX_REL_PATH_BYTES: usize = 1024;
/// Prefixes of the names this program creates for itself beside releases. A name taken
/// from a bundle may never start with one of them (the leading-dot rule already excludes
/// them; the list keeps the reason explicit should the character set ever widen).
pub const RESERVED_PREFIXES: [&str; 2] = [STAGING_PREFIX, ".coder-airgap-"];
/// The largest sequence accepted: the ledger stores it as a signed 64-bit integer.
pub const MAX_SEQUENCE: u64 = i64::MAX as u64;

/// A name or path from a manifest or lock that may not become part of a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value:?} is refused: {reason}")]
pub struct NameError {
    /// The field, e.g. `version` or `component coderd path`.
    pub field: String,
    /// The value as written (printed escaped, through `{:?}`).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn refuse(field: &str, value: &str, reason: &'static str) -> NameError {
    NameError {
        field: field.to_string(),
        // Bounded: an error message never carries a megabyte of hostile text.
        value: value.chars().take(2 * MAX_NAME_BYTES).collect(),
        reason,
    }
}

/// Checks one path segment: 1 to [`MAX_NAME_BYTES`] bytes of ASCII letters, digits and
/// `.`, `_`, `-`, `+`, starting with a letter or digit (so never `.`, `..`, a hidden name
/// or a reserved prefix).
pub fn check_name(field: &str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(refuse(field, value, "empty"));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(refuse(field, value, "longer than 128 bytes"));
    }
    if value == "." || value == ".." {
        return Err(refuse(field, value, "a dot name"));
    }
    if value.contains('/') || value.contains('\\') {
        return Err(refuse(field, value, "contains a path separator"));
    }
    if RESERVED_PREFIXES.iter().any(|p| value.starts_with(p)) {
        return Err(refuse(field, value, "uses a prefix reserved for staging"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
    {
        return Err(refuse(
            field,
            value,
            "only ASCII letters, digits, '.', '_', '+' and '-' are allowed",
        ));
    }
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(refuse(field, value, "must start with a letter or digit"));
    }
    Ok(())
}

/// Checks a release-relative path: `/`-separated segments that each pass [`check_name`],
/// not absolute, no trailing or doubled `/`, at most [`MAX_REL_PATH_BYTES`].
pub fn check_rel_path(field: &str, value: &str) -> Result<(), NameError> {
    if value.len() > MAX_REL_PATH_BYTES {
        return Err(refuse(field, value, "longer than 1024 bytes"));
    }
    if value.starts_with('/') {
        return Err(refuse(field, value, "an absolute path"));
    }
    for segment in value.split('/') {
        check_name(field, segment).map_err(|e| refuse(field, value, e.reason))?;
    }
    Ok(())
}

/// Checks the platform: `OS_ARCH`, both lower-case letters and digits (`linux_amd64`).
pub fn check_platform(value: &str) -> Result<(), NameError> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    match value.split_once('_') {
        Some((os, arch)) if part_ok(os) && part_ok(arch) && value.len() <= MAX_NAME_BYTES => Ok(()),
        _ => Err(refuse(
            "platform",
            value,
            "expected OS_ARCH in lower-case letters and digits, like linux_amd64",
        )),
    }
}

/// Checks the sequence (at most [`MAX_SEQUENCE`]).
pub fn check_sequence(sequence: u64) -> Result<(), NameError> {
    if sequence > MAX_SEQUENCE {
        return Err(refuse(
            "sequence",
            &sequence.to_string(),
            "larger than 9223372036854775807 (the ledger's 64-bit signed integer)",
        ));
    }
    Ok(())
}

/// Checks every manifest field that names something: bundle name, version, sequence,
/// platform, component names, versions and paths.
pub fn check_manifest(m: &Manifest) -> Result<(), NameError> {
    check_name("bundle name", &m.name)?;
    check_name("version", &m.version)?;
    check_sequence(m.sequence)?;
    check_platform(&m.platform)?;
    for (name, component) in &m.components {
        check_name("component name", name)?;
        check_name(&format!("component {name} version"), &component.version)?;
        let field = format!("component {name} path");
        for path in &component.paths {
            check_rel_path(&field, path)?;
        }
    }
    Ok(())
}

/// The release directory name of a manifest, `VERSION-SEQUENCE`, after [`check_manifest`].
pub fn release_name(m: &Manifest) -> Result<String, NameError> {
    check_manifest(m)?;
    let name = format!("{}-{}", m.version, m.sequence);
    check_name("release name", &name)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_plain_segments() {
        for good in ["1.0.0", "2.35.3-7", "2026.01.02", "v1+build_3", "a"] {
            check_name("version", good).expect(good);
        }
        let long = "a".repeat(MAX_NAME_BYTES + 1);
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            ".coder-airgap-unpack-x",
            "-rf",
            "a b",
            "a\u{1b}[2J",
            "a\u{202e}b",
            "é",
            long.as_str(),
        ] {
            assert!(check_name("version", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn relative_paths_stay_relative() {
        for good in ["bin/coder", "postgres/bin", "providers"] {
            check_rel_path("path", good).expect(good);
        }
        for bad in [
            "", "/bin", "bin/", "a//b", "a/../b", "./a", "a/.x", "..", "a\0b",
        ] {
            assert!(check_rel_path("path", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn platforms_and_sequences() {
        check_platform("linux_amd64").expect("linux_amd64");
        for bad in [
            "linux",
            "Linux_amd64",
            "linux_",
            "_amd64",
            "linux/amd64",
            "l_a_b",
        ] {
            assert!(check_platform(bad).is_err(), "{bad:?} accepted");
        }
        check_sequence(MAX_SEQUENCE).expect("max");
        assert!(check_sequence(u64::MAX).is_err());
    }
}
