//! `coder-airgap rollback`: return to the previous installed release (restoring its database backup if needed).

/// Return to the previous installed release (restoring its database backup if needed).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `coder-airgap rollback`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`coder-airgap rollback` is not implemented yet")
}
