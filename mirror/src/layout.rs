//! The mirror tree: the Network Mirror Protocol layout under `DIR/HOST/NS/TYPE/`, which is
//! also a valid packed filesystem mirror. Zips are moved in before the JSON that names them,
//! and JSON is written to a temporary file and renamed, so readers never see half a state.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::hash::{self, HashError, ZipHashes};
use crate::version::{Version, VersionError};

/// The hostname Terraform assumes for a source written as `NS/TYPE`.
pub const DEFAULT_HOST: &str = "registry.terraform.io";

/// Errors reading or changing the mirror tree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// A file or directory could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause (printed in the message; not a `source`).
        cause: io::Error,
    },
    /// A mirror JSON file does not parse.
    #[error("{path} is not valid mirror JSON ({message}); fix it or delete it and sync again")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        message: String,
    },
    /// A provider source address is malformed.
    #[error("invalid provider source {input:?}: {reason} (expected HOST/NAMESPACE/TYPE, e.g. registry.terraform.io/coder/coder)")]
    Address {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A platform is malformed.
    #[error("invalid platform {0:?} (expected OS_ARCH, e.g. linux_amd64)")]
    Platform(String),
    /// A version is malformed.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// Hashing an archive failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// An import would silently replace a different archive.
    #[error("{slot}: {path} already holds a different archive ({existing}); pass --replace to overwrite it")]
    Exists {
        /// The provider, version and platform (`HOST/NS/TYPE VERSION OS_ARCH`).
        slot: String,
        /// The archive already in the mirror.
        path: PathBuf,
        /// Its recorded hashes.
        existing: String,
    },
    /// A file could not be put in place durably (names the path and the step).
    #[error(transparent)]
    Write(#[from] airgap_fsutil::WriteError),
}

/// A fully qualified provider source address: HOST/NAMESPACE/TYPE (all lower case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderAddr {
    /// Registry hostname, with `:port` if it has one.
    pub host: String,
    /// Namespace (organisation), e.g. `coder`.
    pub namespace: String,
    /// Provider type, e.g. `coder`.
    pub name: String,
}

impl ProviderAddr {
    /// The provider's directory relative to the mirror root.
    pub fn rel_dir(&self) -> PathBuf {
        PathBuf::from(&self.host)
            .join(&self.namespace)
            .join(&self.name)
    }

    /// The archive file name Terraform uses for this provider.
    pub fn archive_name(&self, version: &Version, platform: &Platform) -> String {
        format!(
            "terraform-provider-{}_{}_{}.zip",
            self.name, version, platform
        )
    }
}

impl FromStr for ProviderAddr {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| LayoutError::Address {
            input: s.to_string(),
            reason,
        };
        let parts: Vec<&str> = s.trim().split('/').collect();
        let (host, namespace, name) = match parts.as_slice() {
            [ns, ty] => (DEFAULT_HOST, *ns, *ty),
            [host, ns, ty] => (*host, *ns, *ty),
            _ => return Err(bad("wrong number of parts")),
        };
        for part in [host, namespace, name] {
            check_segment(part).map_err(bad)?;
        }
        if !namespace
            .chars()
            .chain(name.chars())
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(
                "namespace and type may hold only letters, digits, '-' and '_'",
            ));
        }
        Ok(ProviderAddr {
            host: host.to_ascii_lowercase(),
            namespace: namespace.to_ascii_lowercase(),
            name: name.to_ascii_lowercase(),
        })
    }
}

/// Refuses path segments that could escape or hide in the tree.
fn check_segment(part: &str) -> Result<(), &'static str> {
    if part.is_empty() {
        return Err("empty part");
    }
    if part.starts_with('.') {
        return Err("a part may not start with '.'");
    }
    let ok = part
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if !ok {
        return Err("only letters, digits, '-', '_', '.' and ':' are allowed");
    }
    Ok(())
}

impl TryFrom<String> for ProviderAddr {
    type Error = LayoutError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ProviderAddr> for String {
    fn from(a: ProviderAddr) -> String {
        a.to_string()
    }
}

impl fmt::Display for ProviderAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.host, self.namespace, self.name)
    }
}

/// A target platform, `OS_ARCH` (e.g. `linux_amd64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Architecture, e.g. `amd64`.
    pub arch: String,
}

impl FromStr for Platform {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (os, arch) = s
            .split_once('_')
            .ok_or_else(|| LayoutError::Platform(s.to_string()))?;
        let valid = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        };
        if !valid(os) || !valid(arch) {
            return Err(LayoutError::Platform(s.to_string()));
        }
        Ok(Platform {
            os: os.to_string(),
            arch: arch.to_string(),
        })
    }
}

impl TryFrom<String> for Platform {
    type Error = LayoutError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Platform> for String {
    fn from(p: Platform) -> String {
        p.to_string()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.os, self.arch)
    }
}

/// `index.json`: the versions the mirror holds for one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexJson {
    /// Version → `{}` (reserved for future metadata by the protocol).
    pub versions: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

/// `VERSION.json`: the archives of one provider version, by platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionJson {
    /// Platform (`linux_amd64`) → archive.
    pub archives: BTreeMap<String, ArchiveEntry>,
}

/// One archive in `VERSION.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveEntry {
    /// The zip, relative to the `VERSION.json` URL (a bare file name in our trees).
    pub url: String,
    /// Acceptable hashes (`h1:…`, `zh:…`); Terraform requires the zip to match one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<String>,
}

/// A verified zip waiting (in the same filesystem as the mirror) to be moved into the tree.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The provider.
    pub provider: ProviderAddr,
    /// Its version.
    pub version: Version,
    /// Its platform.
    pub platform: Platform,
    /// Where the verified zip is now.
    pub path: PathBuf,
    /// Its hashes.
    pub hashes: ZipHashes,
}

/// A provider mirror tree rooted at a directory.
#[derive(Debug, Clone)]
pub struct Mirror {
    root: PathBuf,
}

impl Mirror {
    /// The mirror rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Mirror { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one provider.
    pub fn provider_dir(&self, provider: &ProviderAddr) -> PathBuf {
        self.root.join(provider.rel_dir())
    }

    /// Where an archive lives in the tree.
    pub fn archive_path(&self, p: &ProviderAddr, v: &Version, platform: &Platform) -> PathBuf {
        self.provider_dir(p).join(p.archive_name(v, platform))
    }

    /// The provider's `index.json` (empty if there is none yet).
    pub fn read_index(&self, provider: &ProviderAddr) -> Result<IndexJson, LayoutError> {
        read_json_or_default(&self.provider_dir(provider).join("index.json"))
    }

    /// A version's `VERSION.json` (empty if there is none yet).
    pub fn read_version(&self, p: &ProviderAddr, v: &Version) -> Result<VersionJson, LayoutError> {
        read_json_or_default(&self.provider_dir(p).join(format!("{v}.json")))
    }

    /// The recorded entry for one archive, if the mirror lists it.
    pub fn entry(
        &self,
        p: &ProviderAddr,
        v: &Version,
        platform: &Platform,
    ) -> Result<Option<ArchiveEntry>, LayoutError> {
        let listed = self.read_index(p)?.versions.contains_key(&v.to_string());
        if !listed {
            return Ok(None);
        }
        Ok(self
            .read_version(p, v)?
            .archives
            .remove(&platform.to_string()))
    }

    /// Moves verified zips into the tree, then records them in `VERSION.json` and
    /// `index.json`. Versions accumulate: nothing already listed is dropped.
    pub fn install(&self, staged: &[Staged]) -> Result<(), LayoutError> {
        let mut by_version: BTreeMap<(ProviderAddr, Version), Vec<&Staged>> = BTreeMap::new();
        for item in staged {
            by_version
                .entry((item.provider.clone(), item.version.clone()))
                .or_default()
                .push(item);
        }
        for ((provider, version), items) in by_version {
            let dir = self.provider_dir(&provider);
            std::fs::create_dir_all(&dir).map_err(|source| io_err(&dir, source))?;
            let mut version_json = self.read_version(&provider, &version)?;
            for item in items {
                let dest = self.archive_path(&provider, &version, &item.platform);
                // Synced again here: an imported zip was copied, not written durably.
                airgap_fsutil::persist(&item.path, &dest)?;
                let url = provider.archive_name(&version, &item.platform);
                let entry = ArchiveEntry {
                    url,
                    hashes: item.hashes.as_list(),
                };
                version_json
                    .archives
                    .insert(item.platform.to_string(), entry);
            }
            write_json_atomic(&dir.join(format!("{version}.json")), &version_json)?;
            let mut index = self.read_index(&provider)?;
            index.versions.entry(version.to_string()).or_default();
            write_json_atomic(&dir.join("index.json"), &index)?;
        }
        Ok(())
    }

    /// Every provider in the tree (directories `HOST/NS/TYPE` holding an `index.json`).
    pub fn providers(&self) -> Result<Vec<ProviderAddr>, LayoutError> {
        let mut found = Vec::new();
        for host in subdirs(&self.root)? {
            for ns in subdirs(&self.root.join(&host))? {
                for ty in subdirs(&self.root.join(&host).join(&ns))? {
                    let addr = format!("{host}/{ns}/{ty}");
                    let Ok(addr) = addr.parse::<ProviderAddr>() else {
                        continue;
                    };
                    if self.provider_dir(&addr).join("index.json").is_file() {
                        found.push(addr);
                    }
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

/// Names of the visible subdirectories of `dir` (none if it does not exist).
fn subdirs(dir: &Path) -> Result<Vec<String>, LayoutError> {
    visible_subdirs(dir).map_err(|source| io_err(dir, source))
}

/// Names of the visible (not dot-named) subdirectories of `dir`; none if `dir` does not
/// exist. Shared by the provider layout and the module store, which walk the same way.
pub(crate) fn visible_subdirs(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Reads JSON, or the default value if the file does not exist.
pub(crate) fn read_json_or_default<T: for<'de> Deserialize<'de> + Default>(
    path: &Path,
) -> Result<T, LayoutError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(T::default()),
        Err(source) => return Err(io_err(path, source)),
    };
    serde_json::from_slice(&bytes).map_err(|e| LayoutError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Replaces `path` with pretty JSON (mode 0644), durably.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), LayoutError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| LayoutError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    Ok(airgap_fsutil::atomic_write(path, &bytes)?)
}

/// Makes a file world-readable (0644): temp files start 0600, but web servers must read them.
pub(crate) fn set_public_mode(path: &Path) -> Result<(), LayoutError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .map_err(|source| io_err(path, source))?;
    }
    Ok(())
}

pub(crate) fn io_err(path: &Path, cause: io::Error) -> LayoutError {
    LayoutError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// Whether a recorded hash list accepts these hashes: for each kind present (`h1:`, `zh:`)
/// one recorded hash of that kind must match, and at least one kind must be present.
pub fn hashes_match(recorded: &[String], actual: &ZipHashes) -> bool {
    let kind_ok = |prefix: &str, ours: &str| {
        let of_kind: Vec<&String> = recorded.iter().filter(|h| h.starts_with(prefix)).collect();
        (
            of_kind.is_empty() || of_kind.iter().any(|h| h.as_str() == ours),
            !of_kind.is_empty(),
        )
    };
    let (h1_ok, has_h1) = kind_ok("h1:", &actual.h1);
    let (zh_ok, has_zh) = kind_ok("zh:", &actual.zh);
    h1_ok && zh_ok && (has_h1 || has_zh)
}

/// Hashes the zip at `path` and checks it is a usable provider archive.
pub fn hash_archive(path: &Path) -> Result<ZipHashes, LayoutError> {
    Ok(hash::zip_hashes(path)?)
}
