//! `coder-airgap verify`.

/// Arguments of `coder-airgap verify`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `coder-airgap verify`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
