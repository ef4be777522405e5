//! `coder-airgap status`: show each component's state, version, pid, health and certificate expiry.

/// Show each component's state, version, pid, health and certificate expiry.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `coder-airgap status`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`coder-airgap status` is not implemented yet")
}
