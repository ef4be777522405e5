//! Filesystem work for the stage: everything is built under `STAGE/.sync-tmp/` and renamed
//! into place only when every component succeeded, so a failed sync never leaves a
//! half-written binary or a stage that disagrees with its lock file.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{io_at, SyncError};

/// Where work in progress lives inside the stage (removed at the start and end of a run).
pub(crate) const TMP_DIR: &str = ".sync-tmp";

/// A prepared file or tree waiting to be renamed to a stage-relative path.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    /// Where it is now (under [`TMP_DIR`]).
    pub from: PathBuf,
    /// Stage-relative destination.
    pub to: String,
}

/// Renames every prepared item into the stage, replacing what was there.
pub(crate) fn commit(stage: &Path, moves: &[Move]) -> Result<(), SyncError> {
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
        std::fs::rename(&m.from, &dest).map_err(io_at(&dest))?;
    }
    Ok(())
}

/// Removes the work-in-progress directory.
pub(crate) fn clean_tmp(stage: &Path) {
    let _ = std::fs::remove_dir_all(stage.join(TMP_DIR));
}

/// Writes `bytes` to `path` with mode 0755.
pub(crate) fn write_executable(path: &Path, bytes: &[u8]) -> Result<(), SyncError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_at(parent))?;
    }
    std::fs::write(path, bytes).map_err(io_at(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io_at(path))
}

/// Hex sha256 of a file.
pub(crate) fn sha256_file(path: &Path) -> Result<String, SyncError> {
    let file = std::fs::File::open(path).map_err(io_at(path))?;
    airgap_mirror::hash::sha256_reader(file).map_err(io_at(path))
}

/// The bytes of the zip member whose file name is `name` (at any depth).
pub(crate) fn zip_member(archive: &Path, name: &str) -> Result<Vec<u8>, SyncError> {
    let bad = |message: String| SyncError::Archive {
        path: archive.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(archive).map_err(io_at(archive))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a zip: {e}")))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
        let entry_name = entry.name().map(|n| n.to_string()).unwrap_or_default();
        if entry.is_file() && base_name(&entry_name) == name {
            let mut out = Vec::new();
            entry
                .read_to_end(&mut out)
                .map_err(|e| bad(e.to_string()))?;
            return Ok(out);
        }
    }
    Err(bad(format!("has no file named {name}")))
}

/// The bytes of the tar.gz member whose file name is `name` (at any depth).
pub(crate) fn tar_member(archive: &Path, name: &str) -> Result<Vec<u8>, SyncError> {
    let bad = |message: String| SyncError::Archive {
        path: archive.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(archive).map_err(io_at(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = tar.entries().map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a .tar.gz: {e}")))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?;
        let matches =
            entry.header().entry_type().is_file() && path.file_name().is_some_and(|n| n == name);
        if matches {
            let mut out = Vec::new();
            entry
                .read_to_end(&mut out)
                .map_err(|e| bad(e.to_string()))?;
            return Ok(out);
        }
    }
    Err(bad(format!("has no file named {name}")))
}

/// Unpacks a tar.gz into the new directory `dest`; with `strip_top`, an archive holding
/// one top directory gives that directory's contents.
pub(crate) fn unpack_tar_gz(archive: &Path, dest: &Path, strip_top: bool) -> Result<(), SyncError> {
    let bad = |message: String| SyncError::Archive {
        path: archive.to_path_buf(),
        message,
    };
    let unpacked = dest.with_extension("unpack");
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked).map_err(io_at(&unpacked))?;
    let file = std::fs::File::open(archive).map_err(io_at(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.set_preserve_permissions(true);
    tar.unpack(&unpacked)
        .map_err(|e| bad(format!("cannot unpack: {e}")))?;
    let top = only_subdir(&unpacked)?;
    let source = match (strip_top, top) {
        (true, Some(top)) => top,
        _ => unpacked.clone(),
    };
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&source, dest).map_err(io_at(dest))?;
    let _ = std::fs::remove_dir_all(&unpacked);
    Ok(())
}

fn only_subdir(dir: &Path) -> Result<Option<PathBuf>, SyncError> {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_at(dir))?
        .filter_map(Result::ok)
        .collect();
    match entries.as_slice() {
        [one] if one.path().is_dir() => Ok(Some(one.path())),
        _ => Ok(None),
    }
}

/// Copies the tree `from` to `to`, following symlinks (the stage holds real files) and
/// keeping the executable bit.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<(), SyncError> {
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
pub(crate) fn tree_digest(root: &Path) -> Result<String, SyncError> {
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

/// The last `/`-separated part of a path in an archive.
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether `path` starts with the given magic bytes.
pub(crate) fn has_magic(path: &Path, magic: &[u8]) -> Result<bool, SyncError> {
    let mut head = vec![0u8; magic.len()];
    let mut file = std::fs::File::open(path).map_err(io_at(path))?;
    let n = file.read(&mut head).map_err(io_at(path))?;
    Ok(n == magic.len() && head == magic)
}

/// `file:///abs/path` for a local artifact.
pub(crate) fn file_url(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    url::Url::from_file_path(&abs)
        .map(|u| u.to_string())
        .unwrap_or_else(|()| format!("file://{}", abs.display()))
}
