//! An installed release: one unpacked bundle under `ROOT/releases/VERSION-SEQUENCE/`, with
//! the stage's lock file (what is inside, and where the Postgres tree sits) and the signed
//! manifest `install` saved beside it. `current` and `previous` are symlinks to releases.

use std::path::{Path, PathBuf};

use airgap_bundle::names::{self, NameError};
use airgap_bundle::Manifest;

use super::layout::Layout;
use crate::postgres::Tree;
use airgap_stage::Lock;

/// File in a release directory holding the verified manifest, written by `install`.
pub const MANIFEST_FILE: &str = ".manifest.json";
/// Where a release holds coderd.
pub const CODER_BIN: &str = "bin/coder";
/// Where a release holds Terraform (first on coderd's PATH through `current/bin`).
pub const TERRAFORM_BIN: &str = "bin/terraform";
/// Where a release holds the provider mirror tree.
pub const PROVIDERS_DIR: &str = "providers";
/// The Postgres bindir when the lock names none.
const DEFAULT_POSTGRES_BINDIR: &str = "postgres/bin";

/// The release-relative Postgres bin directory the lock names.
pub fn postgres_bindir(lock: &Lock) -> &str {
    lock.components
        .postgres
        .bindir
        .as_deref()
        .unwrap_or(DEFAULT_POSTGRES_BINDIR)
}

/// Errors reading an installed release.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// `ROOT/current` (or `previous`) is missing.
    #[error("{link}: no release installed there (run `coder-airgap install` first)")]
    NotInstalled {
        /// The symlink.
        link: PathBuf,
    },
    /// A file of the release could not be read.
    #[error("{path}: {message} (re-install the bundle)")]
    Broken {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One installed release.
#[derive(Debug, Clone)]
pub struct Release {
    /// `VERSION-SEQUENCE`, the directory name under `releases/`.
    pub name: String,
    /// `ROOT/releases/NAME`.
    pub dir: PathBuf,
    /// The verified manifest saved at install.
    pub manifest: Manifest,
    /// The stage's lock file (components, Postgres bindir).
    pub lock: Lock,
}

impl Release {
    /// The release directory name for a verified manifest: `VERSION-SEQUENCE`, refused
    /// when a field it is made of could leave `releases/` or collide with a staging name.
    pub fn dir_name(manifest: &Manifest) -> Result<String, NameError> {
        names::release_name(manifest)
    }

    /// The release `ROOT/current` points at.
    pub fn current(layout: &Layout) -> Result<Release, ReleaseError> {
        Self::from_link(layout, &layout.current())
    }

    /// The release `ROOT/previous` points at, if any.
    pub fn previous(layout: &Layout) -> Result<Option<Release>, ReleaseError> {
        match Self::from_link(layout, &layout.previous()) {
            Ok(r) => Ok(Some(r)),
            Err(ReleaseError::NotInstalled { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The release a symlink under ROOT points at.
    pub fn from_link(layout: &Layout, link: &Path) -> Result<Release, ReleaseError> {
        let target = std::fs::read_link(link).map_err(|_| ReleaseError::NotInstalled {
            link: link.to_path_buf(),
        })?;
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| names::check_name("release", n).is_ok())
            .ok_or_else(|| ReleaseError::Broken {
                path: link.to_path_buf(),
                message: format!("points at {}, not a release", target.display()),
            })?
            .to_string();
        Self::open(layout.release(&name))
    }

    /// Reads the release in `dir`.
    pub fn open(dir: PathBuf) -> Result<Release, ReleaseError> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let manifest_path = dir.join(MANIFEST_FILE);
        let broken = |message: String| ReleaseError::Broken {
            path: manifest_path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| broken(e.to_string()))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| broken(e.to_string()))?;
        let lock = Lock::read(&dir).map_err(|e| ReleaseError::Broken {
            path: Lock::path(&dir),
            message: e.to_string(),
        })?;
        Ok(Release {
            name,
            dir,
            manifest,
            lock,
        })
    }

    /// The release's Postgres tree (the lock's `bindir`).
    pub fn postgres_tree(&self) -> Result<Tree, ReleaseError> {
        let bindir = postgres_bindir(&self.lock);
        names::check_rel_path("postgres bindir", bindir).map_err(|e| ReleaseError::Broken {
            path: Lock::path(&self.dir),
            message: e.to_string(),
        })?;
        let dir = self.dir.join(bindir);
        Tree::from_bindir(&dir).map_err(|e| ReleaseError::Broken {
            path: dir,
            message: e.to_string(),
        })
    }

    /// The bundled `coder` binary.
    pub fn coder_bin(&self) -> PathBuf {
        self.dir.join(CODER_BIN)
    }

    /// The bundled provider mirror tree.
    pub fn providers_dir(&self) -> PathBuf {
        self.dir.join(PROVIDERS_DIR)
    }

    /// The bundled offline docs, when present.
    pub fn docs_dir(&self) -> Option<PathBuf> {
        Some(self.dir.join("docs")).filter(|d| d.is_dir())
    }
}
