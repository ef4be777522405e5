//! `coder-airgap mirror` subcommands.

use clap::Subcommand;

/// The `mirror` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Placeholder until the mirror issue lands.
    Todo,
}

/// Runs a `mirror` subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Todo => anyhow::bail!("not implemented yet"),
    }
}
