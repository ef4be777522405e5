//! `coder-airgap keygen`.

/// Arguments of `coder-airgap keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `coder-airgap keygen`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
