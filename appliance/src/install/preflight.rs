//! Checks made before anything is written: the bundle's sequence against the installed
//! release (a lower one is a rollback attack unless asked for), and free disk space.
//!
//! Before verification they see the bundle's claimed, unverified manifest: they may only
//! refuse on it, never take a path from it, and print its strings escaped.

use std::path::Path;

use airgap_bundle::escape::Escaped;
use airgap_bundle::Manifest;

use super::error::{InstallError, Result};

use crate::layout::Layout;
use crate::release::Release;

/// Room kept free beyond the release itself, for the backup, Postgres WAL and logs.
const HEADROOM: u64 = 256 << 20;

/// Refuses `new` when its sequence is lower than the installed release's, unless
/// `allow_downgrade`. Install calls it on the claimed manifest first and again on the
/// verified one.
pub fn check_sequence(layout: &Layout, new: &Manifest, allow_downgrade: bool) -> Result<()> {
    let Ok(current) = Release::current(layout) else {
        return Ok(());
    };
    let installed = &current.manifest;
    if new.sequence < installed.sequence && !allow_downgrade {
        return Err(InstallError::Downgrade {
            bundle: format!("{} {}", Escaped(&new.name), Escaped(&new.version)),
            sequence: new.sequence,
            installed: format!("{} {}", installed.name, installed.version),
            installed_sequence: installed.sequence,
        });
    }
    Ok(())
}

/// Fails when the filesystem holding `root` has less room than the unpacked release plus
/// headroom, naming both figures.
pub fn check_disk(root: &Path, manifest: &Manifest) -> Result<()> {
    let release = manifest.total_bytes();
    let need = release.saturating_add(HEADROOM);
    let probe = existing_ancestor(root);
    let stat = nix::sys::statvfs::statvfs(probe).map_err(|cause| InstallError::FreeSpace {
        path: probe.to_path_buf(),
        cause,
    })?;
    let free = stat.blocks_available() * stat.fragment_size();
    if free < need {
        return Err(InstallError::Disk {
            root: root.to_path_buf(),
            probe: probe.to_path_buf(),
            release_mib: release >> 20,
            headroom_mib: HEADROOM >> 20,
            free_mib: free >> 20,
            short_mib: (need - free).div_ceil(1 << 20),
        });
    }
    Ok(())
}

fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
}
