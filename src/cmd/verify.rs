//! `coder-airgap verify`: prove a bundle is intact and signed by a trusted key.

use crate::out::outln;
use std::path::PathBuf;

use airgap_bundle::escape::Escaped;
use anyhow::Context;

use crate::progress::Bar;

/// Prove a bundle is intact and signed by a trusted key, without writing anything.
///
/// Checks the detached signature over the whole file,
/// the signed manifest, every entry's size and sha256, expiry, and a clean archive
/// structure. Exits 0 only if every check passes; otherwise prints what failed.
///
/// The stock tool checks the outer signature too: `minisign -Vm BUNDLE -p bundle.pub`.
#[derive(Debug, clap::Args)]
#[group(skip)]
pub struct Args {
    /// The bundle file.
    #[arg(value_name = "BUNDLE.tar.gz")]
    pub bundle: PathBuf,
    /// The trusted public key (bundle.pub).
    #[arg(long, value_name = "PUBFILE")]
    pub pubkey: PathBuf,
    /// The detached signature [default: BUNDLE.tar.gz.minisig].
    #[arg(long, value_name = "FILE")]
    pub sig: Option<PathBuf>,
    /// Accept a bundle past its expiry date (on purpose only).
    #[arg(long)]
    pub allow_expired: bool,
}

impl Args {
    /// The verification options these arguments ask for.
    pub fn options(&self) -> airgap_bundle::VerifyOptions {
        airgap_bundle::VerifyOptions {
            allow_expired: self.allow_expired,
            signature: self.sig.clone(),
            now: None,
        }
    }
}

/// Runs `coder-airgap verify`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let key = airgap_bundle::PublicKey::from_file(&args.pubkey)?;
    let bar = Bar::new();
    let verified = airgap_bundle::verify(&args.bundle, &key, &args.options(), &bar)
        .with_context(|| format!("verifying {}", args.bundle.display()))?;
    bar.finish();
    let m = &verified.manifest;
    outln!(
        "OK {}: {} {} sequence {}, {} files, signed by key {}",
        args.bundle.display(),
        Escaped(&m.name),
        Escaped(&m.version),
        m.sequence,
        m.files.len(),
        verified.key_id
    )?;
    Ok(())
}
