//! The command line: one subcommand per operator task. Each subcommand's arguments and its
//! `run` live in `cmd::<name>`.

use clap::{Parser, Subcommand};

use crate::cmd;

/// Build, carry and run a Coder appliance on a network with no internet.
///
/// Connected side: `sync` the pinned components, then `pack` them into one signed bundle.
/// Disconnected side: `verify` the bundle, `install` it, and `up` runs the appliance.
/// `ca` issues certificates from the appliance's internal CA; `mirror` serves and maintains
/// the Terraform provider mirror.
#[derive(Debug, Parser)]
#[command(name = "coder-airgap", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug). CODER_AIRGAP_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand of `coder-airgap`. Variants taking `Args` carry no doc comment of
/// their own: clap would let it replace the long `--help` text written on the `Args`.
#[derive(Debug, Subcommand)]
#[allow(missing_docs)]
pub enum Command {
    Keygen(cmd::keygen::Args),
    Sync(cmd::sync::Args),
    Pack(cmd::pack::Args),
    Verify(cmd::verify::Args),
    Inspect(cmd::inspect::Args),
    Unpack(cmd::unpack::Args),
    Install(cmd::install::Args),
    Up(cmd::up::Args),
    Status(cmd::status::Args),
    Doctor(cmd::doctor::Args),
    Rollback(cmd::rollback::Args),
    /// Internal: install's database step, run as the service user.
    #[command(hide = true)]
    InstallDb(cmd::install::DbArgs),
    /// Internal: rollback's restore step, run as the service user.
    #[command(hide = true)]
    RollbackDb(cmd::rollback::DbArgs),
    /// The internal certificate authority: init, issue, list, renew, revoke, crl, export-trust.
    #[command(subcommand)]
    Ca(cmd::ca::Command),
    /// The Terraform provider mirror: sync, serve, import, verify, terraformrc.
    #[command(subcommand)]
    Mirror(cmd::mirror::Command),
}

impl Command {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Keygen(args) => cmd::keygen::run(args),
            Command::Sync(args) => cmd::sync::run(args),
            Command::Pack(args) => cmd::pack::run(args),
            Command::Verify(args) => cmd::verify::run(args),
            Command::Inspect(args) => cmd::inspect::run(args),
            Command::Unpack(args) => cmd::unpack::run(args),
            Command::Install(args) => cmd::install::run(args),
            Command::Up(args) => cmd::up::run(args),
            Command::Status(args) => cmd::status::run(args),
            Command::Doctor(args) => cmd::doctor::run(args),
            Command::Rollback(args) => cmd::rollback::run(args),
            Command::InstallDb(args) => cmd::install::run_db(args),
            Command::RollbackDb(args) => cmd::rollback::run_db(args),
            Command::Ca(command) => cmd::ca::run(command),
            Command::Mirror(command) => cmd::mirror::run(command),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_subcommand_definition_is_consistent() {
        // clap checks names, conflicts and defaults of the whole tree only when asked.
        super::Cli::command().debug_assert();
    }
}
