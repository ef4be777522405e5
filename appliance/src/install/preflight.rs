//! Checks made before anything is written: the bundle's sequence against the installed
//! release (a lower one is a rollback attack unless asked for), and free disk space.
//!
//! Before verification they see the bundle's claimed, unverified manifest: they may only
//! refuse on it, never take a path from it, and print its strings escaped.

use std::path::Path;

use airgap_bundle::escape::Escaped;
use airgap_bundle::Manifest;
use anyhow::bail;

use crate::layout::Layout;
use crate::release::Release;

/// Room kept free beyond the release itself, for the backup, Postgres WAL and logs.
const HEADROOM: u64 = 256 << 20;

/// Refuses `new` when its sequence is lower than the installed release's, unless
/// `allow_downgrade`. Install calls it on the claimed manifest first and again on the
/// verified one.
pub fn check_sequence(
    layout: &Layout,
    new: &Manifest,
    allow_downgrade: bool,
) -> anyhow::Result<()> {
    let Ok(current) = Release::current(layout) else {
        return Ok(());
    };
    let installed = &current.manifest;
    if new.sequence < installed.sequence && !allow_downgrade {
        bail!(
            "bundle {} {} has sequence {}, lower than the installed {} {} (sequence {}): \
             refusing a downgrade, which is how a replayed old bundle would look; \
             pass --allow-downgrade if this is on purpose",
            Escaped(&new.name),
            Escaped(&new.version),
            new.sequence,
            installed.name,
            installed.version,
            installed.sequence
        );
    }
    Ok(())
}

/// Fails when the filesystem holding `root` has less room than the unpacked release plus
/// headroom, naming both figures.
pub fn check_disk(root: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let release = manifest.total_bytes();
    let need = release.saturating_add(HEADROOM);
    let probe = existing_ancestor(root);
    let stat = nix::sys::statvfs::statvfs(probe)
        .map_err(|e| anyhow::anyhow!("{}: cannot read free space: {e}", probe.display()))?;
    let free = stat.blocks_available() * stat.fragment_size();
    if free < need {
        bail!(
            "not enough free disk for {}: the release needs {} MiB plus {} MiB headroom, \
             the filesystem of {} has {} MiB free; free {} MiB or choose another --root",
            root.display(),
            release >> 20,
            HEADROOM >> 20,
            probe.display(),
            free >> 20,
            (need - free).div_ceil(1 << 20)
        );
    }
    Ok(())
}

fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
}
