//! The atomic release switch: `current` and `previous` are symlinks replaced by one
//! `rename(2)` each, so a reader (or an install killed at any instant) always sees a
//! complete old or complete new release, never a missing or half-written link. Every
//! step goes through the handle of ROOT (root's own directory): a link is read, created
//! and renamed relative to it, never resolved.

use std::path::{Path, PathBuf};

use super::error::{InstallError, Result};
use crate::rootdir::Dir;

/// The name of the link to the running release.
const CURRENT: &str = "current";
/// The name of the link to the release before it.
const PREVIOUS: &str = "previous";

/// Makes `name` the current release; the release it replaces (if different) becomes
/// `previous`. `previous` is updated first, so a kill between the two renames leaves
/// `current` on the old release and `previous` naming the same one.
pub fn switch_to(root: &Dir, name: &str) -> Result<()> {
    let new = release_target(name);
    if let Some(old) = root.read_link(CURRENT)? {
        if old != new {
            root.symlink(PREVIOUS, &old)?;
        }
    }
    root.symlink(CURRENT, &new)?;
    Ok(())
}

/// Points `current` back at `previous` and removes `previous` (a second rollback would
/// need the database of the release being left, which is not kept).
pub fn roll_back(root: &Dir) -> Result<()> {
    let previous = root
        .read_link(PREVIOUS)?
        .ok_or_else(|| InstallError::NoPrevious {
            path: root.path().join(PREVIOUS),
        })?;
    root.symlink(CURRENT, &previous)?;
    root.remove_file(PREVIOUS)?;
    Ok(())
}

/// The link target for release `name`, relative to ROOT so the tree can be moved.
fn release_target(name: &str) -> PathBuf {
    Path::new("releases").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switching_keeps_the_replaced_release_as_previous() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let layout = crate::layout::Layout::new(dir.path());
        let root = Dir::open_root(dir.path())?;
        switch_to(&root, "1.0-1")?;
        assert!(std::fs::read_link(layout.previous()).is_err());
        switch_to(&root, "1.0-2")?;
        assert_eq!(
            std::fs::read_link(layout.current())?,
            release_target("1.0-2")
        );
        assert_eq!(
            std::fs::read_link(layout.previous())?,
            release_target("1.0-1")
        );
        switch_to(&root, "1.0-2")?;
        assert_eq!(
            std::fs::read_link(layout.previous())?,
            release_target("1.0-1")
        );
        roll_back(&root)?;
        assert_eq!(
            std::fs::read_link(layout.current())?,
            release_target("1.0-1")
        );
        assert!(std::fs::symlink_metadata(layout.previous()).is_err());
        Ok(())
    }

    #[test]
    fn rolling_back_with_no_previous_release_is_refused() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let root = Dir::open_root(dir.path())?;
        switch_to(&root, "1.0-1")?;
        let err = roll_back(&root).expect_err("nothing to return to");
        assert!(
            matches!(&err, InstallError::NoPrevious { path } if path.ends_with(PREVIOUS)),
            "{err:?}"
        );
        Ok(())
    }
}
