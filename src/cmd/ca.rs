//! `coder-airgap ca` subcommands.

use clap::Subcommand;

/// The `ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Placeholder until the ca issue lands.
    Todo,
}

/// Runs a `ca` subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Todo => anyhow::bail!("not implemented yet"),
    }
}
