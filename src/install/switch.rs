//! The atomic release switch: `current` and `previous` are symlinks replaced by one
//! `rename(2)` each, so a reader (or an install killed at any instant) always sees a
//! complete old or complete new release, never a missing or half-written link.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::appliance::layout::Layout;

/// Points `link` at `target` (relative to the link's directory) atomically.
pub fn point(link: &Path, target: &Path) -> anyhow::Result<()> {
    let name = link
        .file_name()
        .with_context(|| format!("{} has no file name", link.display()))?;
    let tmp = link.with_file_name(format!(".{}.new", name.to_string_lossy()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("creating symlink {}", tmp.display()))?;
    std::fs::rename(&tmp, link).with_context(|| format!("switching {}", link.display()))?;
    sync_parent(link)
}

/// Makes `name` the current release; the release it replaces (if different) becomes
/// `previous`. `previous` is updated first, so a kill between the two renames leaves
/// `current` on the old release and `previous` naming the same one.
pub fn switch_to(layout: &Layout, name: &str) -> anyhow::Result<()> {
    let new = release_target(name);
    if let Ok(old) = std::fs::read_link(layout.current()) {
        if old != new {
            point(&layout.previous(), &old)?;
        }
    }
    point(&layout.current(), &new)
}

/// Points `current` back at `previous` and removes `previous` (a second rollback would
/// need the database of the release being left, which is not kept).
pub fn roll_back(layout: &Layout) -> anyhow::Result<()> {
    let previous = std::fs::read_link(layout.previous())
        .with_context(|| format!("{}: no previous release", layout.previous().display()))?;
    point(&layout.current(), &previous)?;
    std::fs::remove_file(layout.previous())
        .with_context(|| format!("removing {}", layout.previous().display()))?;
    sync_parent(&layout.previous())
}

/// The link target for release `name`, relative to ROOT so the tree can be moved.
fn release_target(name: &str) -> PathBuf {
    Path::new("releases").join(name)
}

fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switching_keeps_the_replaced_release_as_previous() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let layout = Layout::new(dir.path());
        switch_to(&layout, "1.0-1")?;
        assert!(std::fs::read_link(layout.previous()).is_err());
        switch_to(&layout, "1.0-2")?;
        assert_eq!(
            std::fs::read_link(layout.current())?,
            release_target("1.0-2")
        );
        assert_eq!(
            std::fs::read_link(layout.previous())?,
            release_target("1.0-1")
        );
        switch_to(&layout, "1.0-2")?;
        assert_eq!(
            std::fs::read_link(layout.previous())?,
            release_target("1.0-1")
        );
        roll_back(&layout)?;
        assert_eq!(
            std::fs::read_link(layout.current())?,
            release_target("1.0-1")
        );
        assert!(std::fs::symlink_metadata(layout.previous()).is_err());
        Ok(())
    }
}
