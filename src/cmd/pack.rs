//! `coder-airgap pack`: a stage directory becomes one signed bundle.

use crate::out::outln;
use std::path::PathBuf;

use anyhow::Context;

use crate::progress::Bar;

/// Pack a stage directory (made by `sync`) into BUNDLE.tar.gz plus BUNDLE.tar.gz.minisig.
///
/// The bundle is a standard .tar.gz (GNU tar and `sha256sum -c SHA256SUMS` work on it);
/// the same stage and key always give byte-identical output. Components are copied from
/// the stage's appliance.lock.json. The output appears only when complete.
///
/// Refused: a directory without appliance.lock.json or without files (not a stage made
/// by `sync`), and a bundle that would already be expired when its creation time comes
/// from the stage's files (re-run sync; an explicit --source-date-epoch only warns).
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
    /// Bundle name recorded in the manifest [default: the lock's bundle.name, else coder-airgap].
    #[arg(long)]
    name: Option<String>,
    /// Bundle version [default: the lock's bundle.version, else the creation date, YYYY.MM.DD].
    #[arg(long, value_name = "V")]
    version: Option<String>,
    /// Sequence number; installs refuse a lower one [default: the lock's bundle.sequence, else
    /// creation time in Unix seconds].
    #[arg(long, value_name = "N")]
    sequence: Option<u64>,
    /// Days until the bundle expires and installs refuse it [default: the lock's
    /// bundle.expires_in_days, else 90].
    #[arg(long, value_name = "D", value_parser = clap::value_parser!(u32).range(1..=3650))]
    expires_in_days: Option<u32>,
    /// Target platform recorded in the manifest [default: the lock's bundle.platform, else linux_amd64].
    #[arg(long, value_name = "OS_ARCH")]
    platform: Option<String>,
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
    let view = airgap_stage::PackView::read(&args.stage)?;
    let lock = view.bundle;
    let components = view
        .components
        .into_iter()
        .map(|(name, c)| {
            let component = airgap_bundle::manifest::Component {
                version: c.version,
                paths: c.paths,
            };
            (name, component)
        })
        .collect();
    let opts = airgap_bundle::PackOptions {
        name: args
            .name
            .or(lock.name)
            .unwrap_or_else(|| "coder-airgap".into()),
        version: args.version.or(lock.version),
        sequence: args.sequence.or(lock.sequence),
        expires_in_days: args.expires_in_days.or(lock.expires_in_days).unwrap_or(90),
        platform: Some(
            args.platform
                .or(lock.platform)
                .unwrap_or_else(|| "linux_amd64".into()),
        ),
        created,
        threads: args.threads,
        components,
    };
    if let Some(created) = created {
        let expires = created + time::Duration::days(i64::from(opts.expires_in_days));
        if expires <= time::OffsetDateTime::now_utc() {
            eprintln!(
                "warning: with the given creation time this bundle expired on {}: installs will refuse it",
                expires.date()
            );
        }
    }
    let bar = Bar::new();
    let summary = airgap_bundle::pack(&args.stage, &key, &args.out, &opts, &bar)
        .with_context(|| format!("packing {}", args.stage.display()))?;
    bar.finish();
    let m = &summary.manifest;
    outln!(
        "bundle     {} ({} bytes)",
        summary.bundle.display(),
        summary.bundle_bytes
    )?;
    outln!("signature  {}", summary.signature.display())?;
    outln!(
        "contents   {} {} sequence {}, {} files, {} bytes",
        m.name,
        m.version,
        m.sequence,
        m.files.len(),
        m.total_bytes()
    )?;
    outln!("key ID     {}", key.id())?;
    Ok(())
}
