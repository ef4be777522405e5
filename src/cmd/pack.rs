//! `coder-airgap pack`.

/// Arguments of `coder-airgap pack`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `coder-airgap pack`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
