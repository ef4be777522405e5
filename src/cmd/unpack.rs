//! `coder-airgap unpack`.

/// Arguments of `coder-airgap unpack`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `coder-airgap unpack`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
