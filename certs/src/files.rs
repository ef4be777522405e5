//! File-system steps that never leave a half-written file behind: every file is replaced
//! through [`airgap_fsutil`] (a temporary name in its final directory, synced, renamed into
//! place, the directory synced), private keys are created with mode 0600 from their first
//! byte, and symlinks are swapped by rename with the directory synced.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{CertsError, Result};

/// Mode of private key files.
pub(crate) const PRIVATE: u32 = 0o600;
/// Mode of certificates, CRLs and other public files.
pub(crate) const PUBLIC: u32 = 0o644;

/// Random lowercase hex, `bytes` bytes long, for temporary names.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| CertsError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// A sibling of `path` named `.NAME.tmp-RANDOM`, for writing before a rename.
pub(crate) fn temp_sibling(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    Ok(path.with_file_name(format!(".{name}.tmp-{}", random_hex(6)?)))
}

/// Replaces `path` with `bytes` durably ([`airgap_fsutil::atomic_write_mode`]): a new
/// file with `mode` from its first byte, synced, renamed into place, the directory synced.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    Ok(airgap_fsutil::atomic_write_mode(path, bytes, mode)?)
}

/// Creates directory `path` with mode 0700 (its parents with the default mode).
pub(crate) fn create_private_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(CertsError::io("create directory", path))
}

/// Reads `path` as UTF-8 text.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(CertsError::io("read", path))
}

/// Fails unless `path` is readable only by its owner (like ssh does for keys).
pub(crate) fn check_private(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(CertsError::io("inspect", path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CertsError::InsecureKeyFile {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Points the symlink `link` at `target`, replacing any file there in one rename.
pub(crate) fn replace_symlink(target: &Path, link: &Path) -> Result<()> {
    let tmp = temp_sibling(link)?;
    std::os::unix::fs::symlink(target, &tmp).map_err(CertsError::io("create symlink", &tmp))?;
    std::fs::rename(&tmp, link).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CertsError::io("rename symlink into place", link)(e)
    })?;
    match link.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// Syncs directory `dir`, so renames in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    Ok(airgap_fsutil::sync_dir(dir)?)
}

/// An exclusive lock on `DIR/.lock`, held until the returned file is dropped, so two
/// `ca` commands never interleave ledger updates.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(PRIVATE)
        .open(&path)
        .map_err(CertsError::io("open lock file", &path))?;
    file.lock().map_err(CertsError::io("lock", &path))?;
    Ok(file)
}
