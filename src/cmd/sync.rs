//! `coder-airgap sync`: fetch and check every pinned component (coderd, Terraform, Postgres, providers) into a stage directory.

use crate::out::outln;
use std::path::PathBuf;

use anyhow::Context;

use airgap_sync as sync;

/// Fetch and check every pinned component (coderd, Terraform, Postgres, providers) into a stage directory.
///
/// Reads the spec (bundle/appliance.toml), downloads in parallel with resume, verifies every
/// upstream signature and checksum, and writes the lock file twice: STAGE/appliance.lock.json
/// for `pack`, and beside the spec (bundle/appliance.lock.json; commit it like Cargo.lock).
/// `--locked` reproduces that committed lock exactly, into a fresh stage on any connected
/// host. The stage changes only when everything verified; a failed sync into a directory
/// that did not exist removes it again.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The appliance spec (e.g. bundle/appliance.toml).
    #[arg(long, value_name = "FILE")]
    spec: PathBuf,
    /// The stage directory to fill.
    #[arg(long, value_name = "STAGE")]
    out: PathBuf,
    /// Re-fetch exactly what the lock beside the spec names (falling back to
    /// STAGE/appliance.lock.json); fail on any drift. The lock is not rewritten.
    #[arg(long)]
    locked: bool,
    /// The lock file kept beside the spec [default: SPEC with .lock.json for .toml].
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// Override a spec field: section.key=value (split at the first dot; repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    sets: Vec<String>,
    /// Take coderd from a release tarball or the bare binary instead of the upstream.
    #[arg(long, value_name = "FILE")]
    coder_from: Option<PathBuf>,
    /// Take Terraform from a release zip or the bare binary instead of the upstream.
    #[arg(long, value_name = "FILE")]
    terraform_from: Option<PathBuf>,
    /// Take PostgreSQL from a local installation tree (e.g. /usr/lib/postgresql/15).
    #[arg(long, value_name = "DIR")]
    postgres_from: Option<PathBuf>,
    /// Take a whole network-mirror tree as the bundle's providers (instead of the spec's list).
    #[arg(long, value_name = "DIR")]
    providers_from: Option<PathBuf>,
    /// Where downloads are kept for incremental runs [default: STAGE.downloads beside STAGE].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    fetch: super::fetch::FetchArgs,
}

/// Runs `coder-airgap sync`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = options(args);
    let report = airgap_appliance::runtime::block_on(sync::run(&opts))?
        .with_context(|| format!("sync into {}", opts.out.display()))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    print_summary(&opts, &report.lock)?;
    Ok(())
}

fn options(args: Args) -> sync::Options {
    let fetch = args.fetch.options();
    sync::Options {
        spec: args.spec,
        sets: args.sets,
        out: args.out,
        locked: args.locked,
        lock_file: args.lock,
        cache_dir: args.cache_dir,
        coder_from: args.coder_from,
        terraform_from: args.terraform_from,
        postgres_from: args.postgres_from,
        providers_from: args.providers_from,
        fetch,
        quiet: args.quiet,
    }
}

fn print_summary(opts: &sync::Options, lock: &airgap_stage::Lock) -> anyhow::Result<()> {
    let c = &lock.components;
    outln!("stage      {}", opts.out.display())?;
    outln!("coderd     {}", c.coderd.version)?;
    outln!("terraform  {}", c.terraform.version)?;
    outln!(
        "postgres   {} (bindir {})",
        c.postgres.version,
        c.postgres.bindir.as_deref().unwrap_or("?")
    )?;
    outln!(
        "providers  {} ({} provider versions)",
        c.providers.version,
        c.providers.providers.len()
    )?;
    if let Some(docs) = &c.docs {
        outln!("docs       {}", docs.version)?;
    }
    outln!(
        "lock       {}",
        airgap_stage::Lock::path(&opts.out).display()
    )?;
    if !opts.locked {
        outln!("spec lock  {} (commit it)", sync::lock_path(opts).display())?;
    }
    Ok(())
}
