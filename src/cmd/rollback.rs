//! `coder-airgap rollback`: return to the previous release, restoring the pre-upgrade
//! database backup when the newer release had run.

use std::path::PathBuf;

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

/// Runs `coder-airgap rollback`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let layout = super::as_service_user(&args.root)?;
    let outcome = crate::runtime::block_on(crate::install::rollback::rollback(&layout))??;
    match &outcome.restored {
        Some(r) => println!(
            "restored the database from {} (taken before leaving {})",
            r.backup.display(),
            r.from
        ),
        None => println!(
            "the database was not touched by {}; nothing restored",
            outcome.from
        ),
    }
    println!("current release: {} (was {})", outcome.to, outcome.from);
    Ok(())
}
