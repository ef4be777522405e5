//! `coder-airgap up`: run the installed appliance in the foreground: Postgres, the provider mirror, coderd.

/// Run the installed appliance in the foreground: Postgres, the provider mirror, coderd.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `coder-airgap up`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`coder-airgap up` is not implemented yet")
}
