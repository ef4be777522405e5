//! `coder-airgap doctor`: check the running appliance's posture and health; one line and a fix per problem.

/// Check the running appliance's posture and health; one line and a fix per problem.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `coder-airgap doctor`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`coder-airgap doctor` is not implemented yet")
}
