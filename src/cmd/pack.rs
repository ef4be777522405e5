//! `coder-airgap pack`: a stage directory becomes one signed bundle.

use std::path::PathBuf;

use anyhow::Context;

use crate::progress::Bar;

/// Pack a stage directory (made by `sync`) into BUNDLE.tar.gz plus BUNDLE.tar.gz.minisig.
///
/// The bundle is a standard .tar.gz (GNU tar and `sha256sum -c SHA256SUMS` work on it);
/// the same stage and key always give byte-identical output. Components are copied from
/// the stage's appliance.lock.json. The output appears only when complete.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stage directory.
    #[arg(value_name = "STAGE_DIR")]
    stage: PathBuf,
    /// Secret key (bundle.key from `keygen`, or a `minisign -G` key).
    #[arg(long, value_name = "KEYFILE")]
    key: PathBuf,
    /// Read the key's password from the first line of FILE instead of asking.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Where to write the bundle.
    #[arg(long, value_name = "BUNDLE.tar.gz")]
    out: PathBuf,
    /// Bundle name recorded in the manifest.
    #[arg(long, default_value = "coder-airgap")]
    name: String,
    /// Bundle version [default: the creation date, YYYY.MM.DD].
    #[arg(long, value_name = "V")]
    version: Option<String>,
    /// Sequence number; installs refuse a lower one [default: creation time in Unix seconds].
    #[arg(long, value_name = "N")]
    sequence: Option<u64>,
    /// Days until the bundle expires and installs refuse it.
    #[arg(long, value_name = "D", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
    expires_in_days: u32,
    /// Target platform recorded in the manifest.
    #[arg(long, value_name = "OS_ARCH", default_value = "linux_amd64")]
    platform: String,
    /// Creation time in Unix seconds [default: the newest file time in the stage].
    #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    source_date_epoch: Option<i64>,
    /// Compression threads [default: all cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

/// Runs `coder-airgap pack`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let key = super::keys::secret_key(&args.key, args.password_file.as_ref())?;
    let created = args
        .source_date_epoch
        .map(time::OffsetDateTime::from_unix_timestamp)
        .transpose()
        .context("SOURCE_DATE_EPOCH is out of range")?;
    let opts = airgap_bundle::PackOptions {
        name: args.name,
        version: args.version,
        sequence: args.sequence,
        expires_in_days: args.expires_in_days,
        platform: Some(args.platform),
        created,
        threads: args.threads,
    };
    let bar = Bar::new();
    let summary = airgap_bundle::pack(&args.stage, &key, &args.out, &opts, &bar)
        .with_context(|| format!("packing {}", args.stage.display()))?;
    bar.finish();
    let m = &summary.manifest;
    println!(
        "bundle     {} ({} bytes)",
        summary.bundle.display(),
        summary.bundle_bytes
    );
    println!("signature  {}", summary.signature.display());
    println!(
        "contents   {} {} sequence {}, {} files, {} bytes",
        m.name,
        m.version,
        m.sequence,
        m.files.len(),
        m.total_bytes()
    );
    println!("key ID     {}", key.id());
    Ok(())
}
