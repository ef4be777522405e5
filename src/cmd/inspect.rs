//! `coder-airgap inspect`.

/// Arguments of `coder-airgap inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `coder-airgap inspect`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
