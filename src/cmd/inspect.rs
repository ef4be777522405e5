//! `coder-airgap inspect`: what a bundle holds.

use std::path::PathBuf;

use anyhow::Context;
use time::format_description::well_known::Rfc3339;

/// Show a bundle's name, version, sequence, expiry, components and files.
///
/// Without --pubkey only the manifest is read and nothing is verified (the output says
/// so); with --pubkey the whole bundle is verified first.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file.
    #[arg(value_name = "BUNDLE.tar.gz")]
    bundle: PathBuf,
    /// Verify with this public key before showing anything.
    #[arg(long, value_name = "PUBFILE")]
    pubkey: Option<PathBuf>,
    /// Print JSON (the manifest plus summary fields) instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `coder-airgap inspect`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (manifest, verified_by) = match &args.pubkey {
        Some(pubkey) => {
            let key = airgap_bundle::PublicKey::from_file(pubkey)?;
            let v = airgap_bundle::verify(&args.bundle, &key, &Default::default(), &())
                .with_context(|| format!("verifying {}", args.bundle.display()))?;
            (v.manifest, Some(v.key_id.to_string()))
        }
        None => (
            airgap_bundle::read_manifest_unverified(&args.bundle)
                .with_context(|| format!("reading {}", args.bundle.display()))?,
            None,
        ),
    };
    let bundle_bytes = std::fs::metadata(&args.bundle)
        .map(|m| m.len())
        .unwrap_or(0);
    if args.json {
        let value = serde_json::json!({
            "bundle": args.bundle,
            "bundle_bytes": bundle_bytes,
            "verified_by_key": verified_by,
            "file_count": manifest.files.len(),
            "total_bytes": manifest.total_bytes(),
            "manifest": manifest,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print_text(&manifest, bundle_bytes, verified_by.as_deref());
    Ok(())
}

fn print_text(m: &airgap_bundle::Manifest, bundle_bytes: u64, verified_by: Option<&str>) {
    let date = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    println!("name        {}", m.name);
    println!("version     {}", m.version);
    println!("sequence    {}", m.sequence);
    println!("platform    {}", m.platform);
    println!("created     {}", date(m.created));
    println!("expires     {}", date(m.expires));
    println!(
        "files       {} ({} bytes unpacked, {} bytes packed)",
        m.files.len(),
        m.total_bytes(),
        bundle_bytes
    );
    match verified_by {
        Some(key) => println!("signature   verified, key {key}"),
        None => println!("signature   NOT CHECKED (pass --pubkey to verify)"),
    }
    if m.components.is_empty() {
        println!("components  (none recorded)");
    }
    for (name, c) in &m.components {
        let bytes: u64 = m
            .files
            .iter()
            .filter(|f| {
                c.paths
                    .iter()
                    .any(|p| f.path == *p || f.path.starts_with(&format!("{p}/")))
            })
            .map(|f| f.size)
            .sum();
        println!(
            "component   {name} {} ({} paths, {bytes} bytes)",
            c.version,
            c.paths.len()
        );
    }
}
