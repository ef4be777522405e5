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

/// Prefix of staging directories, so leftovers of a killed run are recognisable.
pub const STAGING_PREFIX: &str = ".coder-airgap-unpack-";

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
    let parent = match into.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(&parent)
        .at(&parent)?;
    let mut sink = DirSink {
        root: staging.path().to_path_buf(),
        dirs: Vec::new(),
    };
    let verified = read_bundle(bundle, key, opts, progress, &mut sink)?;
    sink.apply_dir_modes()?;
    std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
        .at(staging.path())?;
    let staged = staging.keep();
    std::fs::rename(&staged, into).map_err(|source| {
        let _ = std::fs::remove_dir_all(&staged);
        BundleError::Io {
            path: into.to_path_buf(),
            source,
        }
    })?;
    sync_dir(&parent)?;
    Ok(verified)
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

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}
