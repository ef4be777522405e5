//! `coder-airgap install`: verify a bundle and install it atomically under ROOT, with certificates and configuration.

/// Verify a bundle and install it atomically under ROOT, with certificates and configuration.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `coder-airgap install`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`coder-airgap install` is not implemented yet")
}
