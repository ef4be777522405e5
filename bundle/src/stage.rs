//! Reading a stage directory into a sorted list of entries, refusing what a bundle cannot
//! carry. Symlinks to files inside the stage are stored as the files they point to (a
//! bundle holds no links); anything else that is not a file or directory is refused.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{BundleError, IoContext, Result};
use crate::manifest::{check_path, RESERVED_NAMES};

/// One file or directory of the stage.
#[derive(Debug, Clone)]
pub(crate) struct StageEntry {
    /// Stage-relative, `/`-separated path.
    pub rel: String,
    /// Where to read it (a symlink's path is read through the link).
    pub abs: PathBuf,
    /// `None` for a directory, the size for a file.
    pub size: Option<u64>,
    /// Normalised permission bits: 0o755 for directories and executables, else 0o644.
    pub mode: u32,
    /// Modification time at scan, to notice a file rewritten while packing.
    pub modified: Option<SystemTime>,
}

/// Everything in `root`, sorted by path, and the newest modification time seen.
pub(crate) fn scan(root: &Path) -> Result<(Vec<StageEntry>, SystemTime)> {
    let canonical_root = root.canonicalize().at(root)?;
    if !canonical_root.is_dir() {
        return Err(stage_err(root, "is not a directory"));
    }
    let mut entries = Vec::new();
    let mut newest = SystemTime::UNIX_EPOCH;
    walk(&canonical_root, &canonical_root, &mut entries, &mut newest)?;
    entries.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok((entries, newest))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<StageEntry>, newest: &mut SystemTime) -> Result<()> {
    for item in std::fs::read_dir(dir).at(dir)? {
        let item = item.at(dir)?;
        let abs = item.path();
        let rel = relative(root, &abs)?;
        let meta = std::fs::symlink_metadata(&abs).at(&abs)?;
        if let Ok(modified) = meta.modified() {
            *newest = (*newest).max(modified);
        }
        let kind = meta.file_type();
        if kind.is_dir() {
            out.push(StageEntry {
                rel,
                abs: abs.clone(),
                size: None,
                mode: 0o755,
                modified: None,
            });
            walk(root, &abs, out, newest)?;
        } else if kind.is_file() {
            out.push(file_entry(rel, abs, &meta));
        } else if kind.is_symlink() {
            let target = resolve_link(root, &abs)?;
            let meta = std::fs::metadata(&target).at(&target)?;
            out.push(file_entry(rel, abs, &meta));
        } else {
            return Err(stage_err(
                &abs,
                "is a device, FIFO or socket: remove it from the stage",
            ));
        }
    }
    Ok(())
}

/// Whether `meta` still describes the file as scanned (size and modification time).
pub(crate) fn unchanged(entry: &StageEntry, meta: &std::fs::Metadata) -> bool {
    Some(meta.len()) == entry.size && meta.modified().ok() == entry.modified
}

fn file_entry(rel: String, abs: PathBuf, meta: &std::fs::Metadata) -> StageEntry {
    use std::os::unix::fs::PermissionsExt;
    let mode = if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    };
    StageEntry {
        rel,
        abs,
        size: Some(meta.len()),
        mode,
        modified: meta.modified().ok(),
    }
}

/// A symlink may only point at a regular file inside the stage.
fn resolve_link(root: &Path, link: &Path) -> Result<PathBuf> {
    let target = link.canonicalize().at(link)?;
    if !target.starts_with(root) {
        return Err(stage_err(
            link,
            "is a symlink that points outside the stage: copy the file in instead",
        ));
    }
    if !target.is_file() {
        return Err(stage_err(
            link,
            "is a symlink to a directory: bundles hold no links, copy the tree instead",
        ));
    }
    Ok(target)
}

fn relative(root: &Path, abs: &Path) -> Result<String> {
    let rel = abs
        .strip_prefix(root)
        .map_err(|_| stage_err(abs, "is outside the stage"))?;
    let rel = rel
        .to_str()
        .ok_or_else(|| stage_err(abs, "has a name that is not UTF-8: rename it"))?;
    if rel.chars().any(char::is_control) {
        return Err(stage_err(
            abs,
            "has a control character in its name: rename it",
        ));
    }
    if RESERVED_NAMES.contains(&rel) {
        return Err(stage_err(
            abs,
            "uses a name reserved for the bundle's own metadata: rename it",
        ));
    }
    check_path(rel).map_err(|e| stage_err(abs, &e.to_string()))?;
    Ok(rel.to_string())
}

fn stage_err(path: &Path, reason: &str) -> BundleError {
    BundleError::Stage {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}
