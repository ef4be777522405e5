//! `unpack`: verified extraction into a new directory. Everything is written into a
//! staging directory beside the target and renamed into place only after the last check
//! (including the detached signature over the whole file) has passed; on any failure the
//! staging directory is removed, so the target either appears complete or not at all.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{BundleError, IoContext, Result};
use crate::keys::PublicKey;
use crate::manifest::{DirEntry, FileEntry};
use crate::read::{read_bundle, Sink, Verified, VerifyOptions};
use crate::Progress;

/// Prefix of staging directories, so leftovers of a killed run are recognisable. No name
/// taken from a bundle may start with it ([`crate::names::RESERVED_PREFIXES`]).
pub const STAGING_PREFIX: &str = ".coder-airgap-unpack-";

/// A verified bundle unpacked into a staging directory `PARENT/.coder-airgap-unpack-XXXXXX`
/// whose name comes from this crate, never from the bundle. Removed when dropped, unless
/// [`Staged::persist`] moved it into place.
#[derive(Debug)]
pub struct Staged {
    dir: tempfile::TempDir,
    verified: Verified,
}

impl Staged {
    /// The staging directory, complete and verified.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What was verified.
    pub fn verified(&self) -> &Verified {
        &self.verified
    }

    /// Renames the staging directory to `into` (which must not exist, in the same parent)
    /// and syncs the parent. On failure the staging directory is removed.
    pub fn persist(self, into: &Path) -> Result<Verified> {
        let staged = self.dir.keep();
        if let Err(e) = airgap_fsutil::rename(&staged, into) {
            if e.step() == airgap_fsutil::Step::Rename {
                let _ = std::fs::remove_dir_all(&staged);
            }
            return Err(e.into());
        }
        Ok(self.verified)
    }
}

/// Verifies `bundle` against `key` and extracts its stage tree as the new directory `into`.
pub fn unpack(
    bundle: &Path,
    key: &PublicKey,
    into: &Path,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Verified> {
    if into.exists() {
        return Err(BundleError::TargetExists {
            path: into.to_path_buf(),
        });
    }
    unpack_staged(bundle, key, &parent_of(into), opts, progress)?.persist(into)
}

/// Verifies `bundle` against `key` and extracts its stage tree into a new staging
/// directory in `parent`; every check, including the detached signature over the whole
/// file, has passed when this returns. The caller decides, from the verified manifest,
/// where it goes ([`Staged::persist`]); on any failure nothing is left in `parent`.
pub fn unpack_staged(
    bundle: &Path,
    key: &PublicKey,
    parent: &Path,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Staged> {
    let staging = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(parent)
        .at(parent)?;
    let mut sink = DirSink {
        root: staging.path().to_path_buf(),
        dirs: Vec::new(),
    };
    let verified = read_bundle(bundle, key, opts, progress, &mut sink)?;
    sink.apply_dir_modes()?;
    std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
        .at(staging.path())?;
    Ok(Staged {
        dir: staging,
        verified,
    })
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes entries under `root`; directory modes are applied last so a read-only
/// directory can still be filled.
struct DirSink {
    root: PathBuf,
    dirs: Vec<DirEntry>,
}

impl DirSink {
    fn apply_dir_modes(&self) -> Result<()> {
        for dir in self.dirs.iter().rev() {
            let path = self.root.join(&dir.path);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(dir.mode)).at(&path)?;
        }
        Ok(())
    }
}

impl Sink for DirSink {
    fn dir(&mut self, entry: &DirEntry) -> Result<()> {
        let path = self.root.join(&entry.path);
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&path)
            .at(&path)?;
        self.dirs.push(entry.clone());
        Ok(())
    }

    fn file(&mut self, entry: &FileEntry, content: &mut dyn Read) -> Result<()> {
        let path = self.root.join(&entry.path);
        if let Some(parent) = path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .at(parent)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(entry.mode)
            .open(&path)
            .at(&path)?;
        io::copy(content, &mut file).at(&path)?;
        file.sync_all().at(&path)
    }
}
