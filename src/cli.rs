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

/// Every subcommand of `coder-airgap`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a minisign key pair for signing bundles (keep bundle.key offline).
    Keygen(cmd::keygen::Args),
    /// Fetch and check every pinned component into a stage directory (connected side).
    Sync(cmd::sync::Args),
    /// Turn a stage directory into one signed bundle (.tar.gz plus .minisig).
    Pack(cmd::pack::Args),
    /// Prove a bundle is intact and signed by a trusted key, without writing anything.
    Verify(cmd::verify::Args),
    /// Show what a bundle holds: versions, sequence, expiry, components, files.
    Inspect(cmd::inspect::Args),
    /// Verify a bundle and extract its stage tree into a new directory.
    Unpack(cmd::unpack::Args),
    /// Verify a bundle and install it atomically under ROOT (disconnected side).
    Install(cmd::install::Args),
    /// Run the installed appliance in the foreground: Postgres, provider mirror, coderd.
    Up(cmd::up::Args),
    /// Show each component's state, version, pid, health and certificate expiry.
    Status(cmd::status::Args),
    /// Check the running appliance's posture and health, with a fix for each problem.
    Doctor(cmd::doctor::Args),
    /// Return to the previously installed release.
    Rollback(cmd::rollback::Args),
    /// Internal: install's database step, run as the service user.
    #[command(hide = true)]
    InstallDb(cmd::install::DbArgs),
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
