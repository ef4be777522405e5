//! `coder-airgap sync`: fetch and check every pinned component (coderd, Terraform, Postgres, providers) into a stage directory.

/// Fetch and check every pinned component (coderd, Terraform, Postgres, providers) into a stage directory.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `coder-airgap sync`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`coder-airgap sync` is not implemented yet")
}
