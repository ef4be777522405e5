//! `coder-airgap rollback`: return to the previous release, restoring the pre-upgrade
//! database backup when the newer release had run.

use crate::out::outln;
use std::path::PathBuf;

use anyhow::Context;

/// Return to the release that was current before the last install.
///
/// If the release being left was ever started (its coderd may have migrated the
/// database), the pg_dump backup install took before the upgrade is restored first. The
/// appliance must be stopped; start it again with `coder-airgap up` afterwards. Run as
/// root or as the service user.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The appliance root.
    #[arg(long, value_name = "ROOT")]
    root: PathBuf,
}

/// Internal: the restore step of a root rollback, run as the service user.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// The appliance root.
    #[arg(long)]
    root: PathBuf,
    /// The release returned to.
    #[arg(long)]
    release: String,
}

/// Runs `coder-airgap rollback-db`.
pub fn run_db(args: DbArgs) -> anyhow::Result<()> {
    let layout = airgap_appliance::layout::Layout::new(args.root);
    airgap_appliance::runtime::block_on(airgap_appliance::install::rollback::restore_step(
        &layout,
        &args.release,
    ))??;
    Ok(())
}

/// Runs `coder-airgap rollback`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let root = std::path::absolute(&args.root).context("--root")?;
    let layout = airgap_appliance::layout::Layout::new(&root);
    let user = match airgap_appliance::privilege::is_root() {
        true => Some(super::service_user_of(&layout)?),
        false => None,
    };
    let outcome = airgap_appliance::install::rollback::rollback(&layout, user.as_ref())?;
    match &outcome.restored {
        Some(r) => outln!(
            "restored the database from {} (taken before leaving {})",
            r.backup.display(),
            r.from
        )?,
        None => outln!(
            "the database was not touched by {}; nothing restored",
            outcome.from
        )?,
    }
    outln!("current release: {} (was {})", outcome.to, outcome.from)?;
    Ok(())
}
