//! Filesystem work for the stage: everything is built under `STAGE/.sync-tmp/` and renamed
//! into place only when every component succeeded, so a failed sync never leaves a
//! half-written binary or a stage that disagrees with its lock file.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{io_at, SyncError};

/// Where work in progress lives inside the stage (removed at the start and end of a run).
pub const TMP_DIR: &str = ".sync-tmp";

/// A prepared file or tree waiting to be renamed to a stage-relative path.
#[derive(Debug, Clone)]
pub struct Move {
    /// Where it is now (under [`TMP_DIR`]).
    pub from: PathBuf,
    /// Stage-relative destination.
    pub to: String,
}

/// Renames every prepared item into the stage, replacing what was there: a file is synced
/// first ([`airgap_fsutil::persist`]), and each rename's directories are fsynced.
pub fn commit(stage: &Path, moves: &[Move]) -> Result<(), SyncError> {
    let trash = stage.join(TMP_DIR).join("replaced");
    std::fs::create_dir_all(&trash).map_err(io_at(&trash))?;
    for (i, m) in moves.iter().enumerate() {
        let dest = stage.join(&m.to);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        if dest.is_dir() {
            let old = trash.join(i.to_string());
            std::fs::rename(&dest, &old).map_err(io_at(&dest))?;
        }
        if m.from.is_file() {
            airgap_fsutil::persist(&m.from, &dest)?;
        } else {
            airgap_fsutil::rename(&m.from, &dest)?;
        }
    }
    Ok(())
}

/// Removes the work-in-progress directory.
pub fn clean_tmp(stage: &Path) {
    let _ = std::fs::remove_dir_all(stage.join(TMP_DIR));
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, SyncError> {
    let file = std::fs::File::open(path).map_err(io_at(path))?;
    airgap_mirror::hash::sha256_reader(file).map_err(io_at(path))
}

/// Creates the new file `path` (and its parents) with mode 0755, for a member to be
/// streamed into.
pub fn create_executable(path: &Path) -> Result<std::fs::File, SyncError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_at(parent))?;
    }
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(path)
        .map_err(io_at(path))
}

/// Copies the bare binary `from` to `to` with mode 0755, streaming.
pub fn copy_executable(from: &Path, to: &Path) -> Result<(), SyncError> {
    let mut input = std::fs::File::open(from).map_err(io_at(from))?;
    let mut out = create_executable(to)?;
    std::io::copy(&mut input, &mut out).map_err(io_at(to))?;
    Ok(())
}

/// Streams the executable `name` of the zip `archive` to `to` (mode 0755) after the zip
/// checks ([`airgap_mirror::archive::check_zip`]); on failure `to` does not exist.
pub fn extract_zip_executable(archive: &Path, name: &str, to: &Path) -> Result<(), SyncError> {
    let limits = airgap_mirror::archive::ZipLimits::default();
    let mut out = std::io::BufWriter::new(create_executable(to)?);
    let result = airgap_mirror::archive::extract_member(archive, name, &limits, &mut out)
        .map_err(SyncError::from)
        .and_then(|_| std::io::Write::flush(&mut out).map_err(io_at(to)));
    if result.is_err() {
        let _ = std::fs::remove_file(to);
    }
    result
}

/// Copies the tree `from` to `to`, following symlinks (the stage holds real files) and
/// keeping the executable bit.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), SyncError> {
    std::fs::create_dir_all(to).map_err(io_at(to))?;
    for entry in std::fs::read_dir(from).map_err(io_at(from))? {
        let entry = entry.map_err(io_at(from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::metadata(&src).map_err(io_at(&src))?;
        if meta.is_dir() {
            copy_tree(&src, &dst)?;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst).map_err(io_at(&src))?;
        }
    }
    Ok(())
}

/// A digest of a tree: sha256 over sorted `<sha256>  <path>` lines of its files.
pub fn tree_digest(root: &Path) -> Result<String, SyncError> {
    let mut lines = Vec::new();
    collect_lines(root, root, &mut lines)?;
    lines.sort();
    Ok(hex::encode(Sha256::digest(lines.concat().as_bytes())))
}

fn collect_lines(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), SyncError> {
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let path = entry.map_err(io_at(dir))?.path();
        if path.is_dir() {
            collect_lines(root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            out.push(format!("{}  {rel}\n", sha256_file(&path)?));
        }
    }
    Ok(())
}

/// Whether `path` starts with the given magic bytes.
pub fn has_magic(path: &Path, magic: &[u8]) -> Result<bool, SyncError> {
    let mut head = vec![0u8; magic.len()];
    let mut file = std::fs::File::open(path).map_err(io_at(path))?;
    let n = file.read(&mut head).map_err(io_at(path))?;
    Ok(n == magic.len() && head == magic)
}

/// `file:///abs/path` for a local artifact.
pub fn file_url(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    url::Url::from_file_path(&abs)
        .map(|u| u.to_string())
        .unwrap_or_else(|()| format!("file://{}", abs.display()))
}
