//! The module store: Terraform modules kept in the mirror directory beside the providers,
//! served by [`crate::serve`] with the Module Registry Protocol.
//!
//! ```text
//! MIRROR/modules/HOST/NAMESPACE/NAME/PROVIDER/index.json      {"versions":{"1.0.0":{"sha256":"…"}}}
//! MIRROR/modules/HOST/NAMESPACE/NAME/PROVIDER/1.0.0.tar.gz    normalized archive (module_archive)
//! ```
//!
//! Every part of an address is checked with Terraform's own rules before it becomes a path
//! or a URL, and stored in lower case (registry addresses compare case-insensitively).
//! Archives are written before the index that names them, each by rename, so a reader sees
//! either the old state or the new one.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layout::DEFAULT_HOST;
use crate::module_archive::{self, ArchiveError, Packed};
use crate::version::{Version, VersionError};

/// The store's directory inside the mirror directory.
pub const MODULES_DIR: &str = "modules";

/// Errors reading or changing the module store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// A module address or one of its parts is malformed.
    #[error("invalid module source {input:?}: {reason} (expected HOST/NAMESPACE/NAME/PROVIDER, e.g. registry.coder.com/coder/code-server/coder)")]
    Address {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A version is malformed.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// A file or directory could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause (printed in the message, not returned by `source()`: docs/errors.md).
        cause: io::Error,
    },
    /// An index does not parse.
    #[error(
        "{path} is not a valid module index ({message}); fix it or delete it and import again"
    )]
    Json {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        message: String,
    },
    /// The module directory or archive is unusable.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A file could not be replaced durably (names the path and the step).
    #[error(transparent)]
    Write(#[from] airgap_fsutil::WriteError),
    /// An import would silently replace a different archive.
    #[error("{slot}: {path} already holds a different archive (sha256 {existing}); pass --replace to overwrite it")]
    Exists {
        /// The module and version (`HOST/NS/NAME/PROVIDER VERSION`).
        slot: String,
        /// The archive already there.
        path: PathBuf,
        /// Its recorded sha256.
        existing: String,
    },
}

fn io_err(path: &Path, cause: io::Error) -> ModuleError {
    ModuleError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// A module registry address, HOST/NAMESPACE/NAME/PROVIDER, all in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleAddr {
    /// Registry hostname, with `:port` if it has one.
    pub host: String,
    /// Namespace, e.g. `coder`.
    pub namespace: String,
    /// Module name, e.g. `code-server`.
    pub name: String,
    /// Target system, e.g. `coder`.
    pub provider: String,
}

impl ModuleAddr {
    /// Builds an address from its parts, checking each (`what` names the input in errors).
    pub fn from_parts(
        host: &str,
        namespace: &str,
        name: &str,
        provider: &str,
    ) -> Result<Self, ModuleError> {
        let input = format!("{host}/{namespace}/{name}/{provider}");
        let bad = |reason| ModuleError::Address {
            input: input.clone(),
            reason,
        };
        check_host(host).map_err(bad)?;
        check_name(namespace).map_err(bad)?;
        check_name(name).map_err(bad)?;
        check_provider(provider).map_err(bad)?;
        Ok(ModuleAddr {
            host: host.to_ascii_lowercase(),
            namespace: namespace.to_ascii_lowercase(),
            name: name.to_ascii_lowercase(),
            provider: provider.to_ascii_lowercase(),
        })
    }

    /// The module's directory relative to the mirror root.
    pub fn rel_dir(&self) -> PathBuf {
        [
            MODULES_DIR,
            &self.host,
            &self.namespace,
            &self.name,
            &self.provider,
        ]
        .iter()
        .collect()
    }
}

impl FromStr for ModuleAddr {
    type Err = ModuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        match parts.as_slice() {
            [ns, name, provider] => Self::from_parts(DEFAULT_HOST, ns, name, provider),
            [host, ns, name, provider] => Self::from_parts(host, ns, name, provider),
            _ => Err(ModuleError::Address {
                input: s.to_string(),
                reason:
                    "wrong number of parts (a //subdir suffix is not part of a registry address)",
            }),
        }
    }
}

impl fmt::Display for ModuleAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.host, self.namespace, self.name, self.provider
        )
    }
}

/// A registry hostname: DNS labels of letters, digits and `-` (not at a label's ends),
/// at most 253 characters, optionally `:PORT` (1-65535).
pub fn check_host(host: &str) -> Result<(), &'static str> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !ok {
            return Err("the host's port must be a number from 1 to 65535");
        }
    }
    if name.is_empty() || name.len() > 253 {
        return Err("the host must be 1 to 253 characters");
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err("the host must be DNS labels of letters, digits and '-' joined by '.'");
        }
    }
    Ok(())
}

/// A namespace or module name as the registry allows them: 1-64 letters, digits, `-` and
/// `_`, starting and ending with a letter or digit.
fn check_name(part: &str) -> Result<(), &'static str> {
    let bytes = part.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    let ok = (1..=64).contains(&bytes.len())
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    ok.then_some(()).ok_or(
        "namespace and name must be 1-64 letters, digits, '-' or '_', starting and ending with a letter or digit",
    )
}

/// A module's target system: 1-64 lower-case letters and digits.
fn check_provider(part: &str) -> Result<(), &'static str> {
    let ok = (1..=64).contains(&part.len())
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    ok.then_some(())
        .ok_or("the provider part must be 1-64 lower-case letters and digits")
}

/// `index.json`: the versions the store holds for one module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleIndex {
    /// Version → its archive's record.
    pub versions: BTreeMap<String, ModuleVersionEntry>,
}

/// One stored version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleVersionEntry {
    /// Hex sha256 of `VERSION.tar.gz`.
    pub sha256: String,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ModuleImported {
    /// Where the archive now lives.
    pub path: PathBuf,
    /// Its sha256, as recorded in `index.json`.
    pub sha256: String,
    /// Whether the identical archive was already there (nothing changed).
    pub unchanged: bool,
    /// What packing found (entries, skipped directories, a descended top directory).
    pub packed: Packed,
}

/// The module store of a mirror directory.
#[derive(Debug, Clone)]
pub struct ModuleStore {
    root: PathBuf,
}

impl ModuleStore {
    /// The store of the mirror rooted at `mirror_root`.
    pub fn new(mirror_root: impl Into<PathBuf>) -> Self {
        ModuleStore {
            root: mirror_root.into(),
        }
    }

    /// One module's directory.
    pub fn module_dir(&self, addr: &ModuleAddr) -> PathBuf {
        self.root.join(addr.rel_dir())
    }

    /// Where a version's archive lives.
    pub fn archive_path(&self, addr: &ModuleAddr, version: &Version) -> PathBuf {
        self.module_dir(addr).join(format!("{version}.tar.gz"))
    }

    /// The module's index (empty if it has none).
    pub fn read_index(&self, addr: &ModuleAddr) -> Result<ModuleIndex, ModuleError> {
        let path = self.module_dir(addr).join("index.json");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ModuleIndex::default()),
            Err(source) => return Err(io_err(&path, source)),
        };
        serde_json::from_slice(&bytes).map_err(|e| ModuleError::Json {
            path,
            message: e.to_string(),
        })
    }

    /// The versions stored for a module, oldest first (invalid index keys are skipped).
    pub fn versions(&self, addr: &ModuleAddr) -> Result<Vec<Version>, ModuleError> {
        let mut versions: Vec<Version> = self
            .read_index(addr)?
            .versions
            .keys()
            .filter_map(|v| v.parse().ok())
            .collect();
        versions.sort();
        Ok(versions)
    }

    /// Every module in the store (directories holding an `index.json`), sorted.
    pub fn modules(&self) -> Result<Vec<ModuleAddr>, ModuleError> {
        let base = self.root.join(MODULES_DIR);
        let mut found = Vec::new();
        for host in subdirs(&base)? {
            for ns in subdirs(&base.join(&host))? {
                for name in subdirs(&base.join(&host).join(&ns))? {
                    for provider in subdirs(&base.join(&host).join(&ns).join(&name))? {
                        let Ok(addr) = ModuleAddr::from_parts(&host, &ns, &name, &provider) else {
                            continue;
                        };
                        if self.module_dir(&addr).join("index.json").is_file() {
                            found.push(addr);
                        }
                    }
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// The hosts the store carries modules of, sorted and without duplicates.
    pub fn hosts(&self) -> Result<Vec<String>, ModuleError> {
        let mut hosts: Vec<String> = self.modules()?.into_iter().map(|m| m.host).collect();
        hosts.dedup();
        Ok(hosts)
    }

    /// Adds the module at `input` (a directory, a `.tar.gz` or a `.zip`) as `addr`
    /// `version`, normalized (see [`module_archive`]). A different archive already stored
    /// for the version is an error unless `replace` is set.
    pub fn import(
        &self,
        addr: &ModuleAddr,
        version: &Version,
        input: &Path,
        replace: bool,
    ) -> Result<ModuleImported, ModuleError> {
        let dir = self.module_dir(addr);
        std::fs::create_dir_all(&dir).map_err(|source| io_err(&dir, source))?;
        let limits = module_archive::module_limits();
        let meta = std::fs::metadata(input).map_err(|source| io_err(input, source))?;
        let scratch = tempfile::Builder::new()
            .prefix(".unpack-")
            .tempdir_in(&dir)
            .map_err(|source| io_err(&dir, source))?;
        let source_dir = if meta.is_dir() {
            input.to_path_buf()
        } else {
            module_archive::unpack(input, scratch.path(), &limits)?;
            scratch.path().to_path_buf()
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".import-")
            .tempfile_in(&dir)
            .map_err(|source| io_err(&dir, source))?;
        let (packed, sha256) = pack_hashed(&source_dir, tmp.as_file_mut(), &limits, input, &dir)?;
        let dest = self.archive_path(addr, version);
        let mut index = self.read_index(addr)?;
        if let Some(existing) = index.versions.get(&version.to_string()) {
            if dest.is_file() && existing.sha256 == sha256 {
                return Ok(ModuleImported {
                    path: dest,
                    sha256,
                    unchanged: true,
                    packed,
                });
            }
            if dest.is_file() && !replace {
                return Err(ModuleError::Exists {
                    slot: format!("{addr} {version}"),
                    path: dest,
                    existing: existing.sha256.clone(),
                });
            }
        }
        publish(tmp, &dest)?;
        index.versions.insert(
            version.to_string(),
            ModuleVersionEntry {
                sha256: sha256.clone(),
            },
        );
        let mut json = serde_json::to_vec_pretty(&index).map_err(|e| ModuleError::Json {
            path: dir.join("index.json"),
            message: e.to_string(),
        })?;
        json.push(b'\n');
        let index_path = dir.join("index.json");
        airgap_fsutil::atomic_write(&index_path, &json)?;
        Ok(ModuleImported {
            path: dest,
            sha256,
            unchanged: false,
            packed,
        })
    }
}

/// Packs `source_dir` into `file`, returning what was packed and the sha256 of the bytes.
fn pack_hashed(
    source_dir: &Path,
    file: &mut std::fs::File,
    limits: &crate::archive::ZipLimits,
    input: &Path,
    dir: &Path,
) -> Result<(Packed, String), ModuleError> {
    let mut hashing = HashingWriter {
        inner: io::BufWriter::new(file),
        hasher: Sha256::new(),
    };
    let packed = module_archive::pack_dir(source_dir, &mut hashing, limits).map_err(|mut e| {
        e.input = input.display().to_string();
        e
    })?;
    hashing
        .inner
        .flush()
        .map_err(|source| io_err(dir, source))?;
    Ok((packed, hex::encode(hashing.hasher.finalize())))
}

/// Makes a packed temporary file world-readable and durable, then renames it to `dest`.
fn publish(tmp: tempfile::NamedTempFile, dest: &Path) -> Result<(), ModuleError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|source| io_err(tmp.path(), source))?;
    }
    airgap_fsutil::persist(tmp.path(), dest)?;
    Ok(())
}

/// Hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Names of the visible subdirectories of `dir` (none if it does not exist).
fn subdirs(dir: &Path) -> Result<Vec<String>, ModuleError> {
    crate::layout::visible_subdirs(dir).map_err(|cause| io_err(dir, cause))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_part_by_part() {
        let ok: ModuleAddr = "registry.coder.com/coder/code-server/coder"
            .parse()
            .expect("valid");
        assert_eq!(
            ok.rel_dir(),
            PathBuf::from("modules/registry.coder.com/coder/code-server/coder")
        );
        let short: ModuleAddr = "Hashicorp/Consul/aws".parse().expect("short");
        assert_eq!(
            short.to_string(),
            "registry.terraform.io/hashicorp/consul/aws"
        );
        let port: ModuleAddr = "localhost:8443/a_b/n-1/x9".parse().expect("port");
        assert_eq!(port.host, "localhost:8443");
        for bad in [
            "registry.coder.com/coder/code-server",
            "registry.coder.com/coder/code-server/coder//sub",
            "../coder/x/coder",
            "registry.coder.com/../x/coder",
            "registry.coder.com/coder/../coder",
            "registry.coder.com/coder/x/Coder",
            "registry.coder.com/coder/x/co-der",
            "registry.coder.com/-coder/x/coder",
            "registry.coder.com/coder_/x/coder",
            "registry.coder.com/co.der/x/coder",
            "reg istry.com/coder/x/coder",
            "registry.coder.com:0/coder/x/coder",
            "registry.coder.com:99999/coder/x/coder",
            "registry..com/coder/x/coder",
            "-r.com/coder/x/coder",
            "r.com/coder/x%2f/coder",
            "r.com/coder//coder",
            "r.com/coder/x/",
        ] {
            assert!(bad.parse::<ModuleAddr>().is_err(), "{bad} accepted");
        }
    }

    fn module(root: &Path, value: u32) -> PathBuf {
        let dir = root.join(format!("src{value}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("main.tf"),
            format!("output \"v\" {{ value = {value} }}\n"),
        )
        .expect("tf");
        dir
    }

    #[test]
    fn the_layout_holds_archives_and_an_index_with_their_hashes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = ModuleStore::new(tmp.path().join("mirror"));
        let addr: ModuleAddr = "registry.coder.com/coder/demo/coder".parse().expect("addr");
        let v1: Version = "1.0.0".parse().expect("v");
        let v2: Version = "1.2.0".parse().expect("v");
        let first = store
            .import(&addr, &v1, &module(tmp.path(), 1), false)
            .expect("import");
        assert_eq!(
            first.path,
            tmp.path()
                .join("mirror/modules/registry.coder.com/coder/demo/coder/1.0.0.tar.gz")
        );
        let on_disk = crate::hash::sha256_file(&first.path).expect("sha");
        assert_eq!(first.sha256, on_disk);
        store
            .import(&addr, &v2, &module(tmp.path(), 2), false)
            .expect("import");
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(store.module_dir(&addr).join("index.json")).expect("index"),
        )
        .expect("json");
        assert_eq!(index["versions"]["1.0.0"]["sha256"], on_disk.as_str());
        assert_eq!(
            store.versions(&addr).expect("versions"),
            vec![v1.clone(), v2]
        );
        assert_eq!(store.modules().expect("modules"), vec![addr.clone()]);
        assert_eq!(store.hosts().expect("hosts"), vec!["registry.coder.com"]);

        // The same module again changes nothing; a different one needs replace.
        let again = store
            .import(&addr, &v1, &module(tmp.path(), 1), false)
            .expect("again");
        assert!(again.unchanged);
        let other = module(tmp.path(), 3);
        let err = store.import(&addr, &v1, &other, false).expect_err("exists");
        assert!(err.to_string().contains("--replace"), "{err}");
        let replaced = store.import(&addr, &v1, &other, true).expect("replace");
        assert_ne!(replaced.sha256, first.sha256);
        // No scratch files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(store.module_dir(&addr))
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
