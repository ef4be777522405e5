//! `coder-airgap keygen`: a minisign key pair for signing bundles.

use crate::out::outln;
use std::path::PathBuf;

/// Create a bundle-signing key pair: DIR/bundle.key (secret, 0600, encrypted unless
/// --unencrypted) and DIR/bundle.pub (give this to every disconnected site).
///
/// Keep bundle.key on the connected side, ideally offline. Keys made by the stock
/// `minisign -G` work with coder-airgap too. Existing keys are never overwritten.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory for bundle.key and bundle.pub (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Store the secret key without a password (for automation; protect the file instead).
    #[arg(long, conflicts_with = "password_file")]
    unencrypted: bool,
    /// Read the password from the first line of FILE instead of asking.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

/// Runs `coder-airgap keygen`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let password = if args.unencrypted {
        None
    } else {
        Some(super::keys::password(
            args.password_file.as_deref(),
            "Password for the new key: ",
            true,
        )?)
    };
    let keys = airgap_bundle::keys::generate(&args.out, password)?;
    outln!("key ID      {}", keys.id)?;
    outln!("secret key  {} (keep offline)", keys.secret.display())?;
    outln!("public key  {} (copy to every site)", keys.public.display())?;
    Ok(())
}
