//! The manifest: the signed description of everything a bundle holds. It is the first
//! entry of the archive, so a reader knows every path, size and hash before it sees data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{BundleError, Result};

/// The manifest format this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Archive name of the manifest (first entry).
pub const MANIFEST_NAME: &str = "manifest.json";
/// Archive name of the manifest's minisign signature (second entry).
pub const MANIFEST_SIG_NAME: &str = "manifest.json.minisig";
/// Archive name of the coreutils checksum file (third entry).
pub const SHA256SUMS_NAME: &str = "SHA256SUMS";
/// Top-level names a stage may not use, because the bundle's own metadata lives there.
pub const RESERVED_NAMES: [&str; 3] = [MANIFEST_NAME, MANIFEST_SIG_NAME, SHA256SUMS_NAME];
/// Largest manifest a reader accepts (a stage of ~100k files fits easily).
pub const MAX_MANIFEST_BYTES: u64 = 32 * 1024 * 1024;
/// Longest path a bundle may contain.
pub const MAX_PATH_BYTES: usize = 4096;

/// Everything a bundle holds and who it is for. Signed with minisign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// Bundle name, e.g. `coder-appliance`.
    pub name: String,
    /// Bundle version chosen by whoever packs it.
    pub version: String,
    /// Monotonically increasing number; installs refuse a lower one (rollback protection).
    pub sequence: u64,
    /// When the bundle's content was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// After this instant, verify and install refuse the bundle.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// Target platform, `OS_ARCH` as Terraform and Go spell it (`linux_amd64`).
    pub platform: String,
    /// Named components (coderd, terraform, postgres, providers...) and their paths.
    pub components: BTreeMap<String, Component>,
    /// Every directory, so empty ones survive and modes are known.
    pub directories: Vec<DirEntry>,
    /// Every regular file, sorted by path.
    pub files: Vec<FileEntry>,
}

/// One component of the appliance, as recorded by `sync` in the stage's lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Resolved version.
    pub version: String,
    /// Stage-relative paths (files or directories) that belong to it.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// A directory in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirEntry {
    /// Stage-relative path, `/`-separated, no trailing slash.
    pub path: String,
    /// Permission bits (0o755 or narrower).
    pub mode: u32,
}

/// A regular file in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Stage-relative path, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the content.
    pub sha256: String,
    /// Permission bits (0o755 or 0o644).
    pub mode: u32,
}

impl Manifest {
    /// Total size of all files in bytes.
    pub fn total_bytes(&self) -> u64 {
        // Saturating: an unverified manifest may claim sizes that overflow.
        self.files
            .iter()
            .fold(0u64, |sum, f| sum.saturating_add(f.size))
    }

    /// The SHA256SUMS file content (coreutils format) that matches this manifest.
    pub fn sha256sums(&self) -> String {
        self.files
            .iter()
            .map(|f| format!("{}  {}\n", f.sha256, f.path))
            .collect()
    }

    /// Serialises the manifest; the exact bytes that get signed.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| BundleError::BadManifest(format!("cannot serialise: {e}")))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Parses and checks a manifest: format version, safe unique paths, well-formed hashes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Manifest> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            BundleError::BadManifest(format!("not valid JSON for format {FORMAT_VERSION}: {e}"))
        })?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Checks the invariants a reader relies on.
    fn check(&self) -> Result<()> {
        if self.format != FORMAT_VERSION {
            return Err(BundleError::BadManifest(format!(
                "format {} is not supported (this coder-airgap reads format {FORMAT_VERSION}): upgrade coder-airgap",
                self.format
            )));
        }
        let mut seen = std::collections::HashSet::new();
        let paths = self.directories.iter().map(|d| (&d.path, d.mode));
        for (path, mode) in paths.chain(self.files.iter().map(|f| (&f.path, f.mode))) {
            check_path(path)?;
            if !seen.insert(path.as_str()) {
                return Err(BundleError::BadManifest(format!(
                    "{path:?} is listed twice"
                )));
            }
            if mode & !0o777 != 0 {
                return Err(BundleError::BadManifest(format!(
                    "{path:?} has mode {mode:o}"
                )));
            }
        }
        for f in &self.files {
            if f.sha256.len() != 64
                || !f
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(BundleError::BadManifest(format!(
                    "{:?} has a malformed sha256",
                    f.path
                )));
            }
        }
        Ok(())
    }
}

/// Checks that `path` is a safe, normalised, relative bundle path.
pub fn check_path(path: &str) -> Result<()> {
    let unsafe_path = |reason| BundleError::UnsafePath {
        path: path.to_string(),
        reason,
    };
    if path.is_empty() {
        return Err(unsafe_path("empty path"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(unsafe_path("longer than 4096 bytes"));
    }
    if path.starts_with('/') {
        return Err(unsafe_path("absolute path"));
    }
    if path.contains('\0') || path.contains('\\') {
        return Err(unsafe_path("NUL or backslash in path"));
    }
    if path.chars().any(crate::escape::needs_escape) {
        return Err(unsafe_path("control or bidirectional character in path"));
    }
    for part in path.split('/') {
        match part {
            ".." => return Err(unsafe_path("parent-directory component")),
            "" | "." => return Err(unsafe_path("empty or '.' component")),
            _ => {}
        }
    }
    if RESERVED_NAMES.contains(&path) {
        return Err(unsafe_path("reserved for the bundle's own metadata"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unsafe_paths() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a//b",
            "./a",
            "a/",
            "manifest.json",
            "a\\b",
            "a\u{1b}[2J",
            "a\u{202e}b",
            "a\nb",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "bin/coder",
            "a..b",
            "postgres/lib/x.so.1",
            "docs/manifest.json",
        ] {
            check_path(good).expect(good);
        }
    }
}
