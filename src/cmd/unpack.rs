//! `coder-airgap unpack`: verified extraction.

use crate::out::outln;
use std::path::PathBuf;

use anyhow::Context;

use crate::progress::Bar;

/// Verify a bundle and extract its stage tree into DIR, which must not exist yet.
///
/// Files are written into a staging directory beside DIR and renamed into place only after
/// every check passed; on failure nothing is left behind.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    verify: super::verify::Args,
    /// The new directory to create.
    #[arg(long, value_name = "DIR")]
    into: PathBuf,
}

/// Runs `coder-airgap unpack`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let key = airgap_bundle::PublicKey::from_file(&args.verify.pubkey)?;
    let bar = Bar::new();
    let verified = airgap_bundle::unpack(
        &args.verify.bundle,
        &key,
        &args.into,
        &args.verify.options(),
        &bar,
    )
    .with_context(|| format!("unpacking {}", args.verify.bundle.display()))?;
    bar.finish();
    outln!(
        "unpacked {} files into {}",
        verified.manifest.files.len(),
        args.into.display()
    )?;
    Ok(())
}
