//! `coder-airgap sync`: one spec pins coderd, Terraform, PostgreSQL and the providers;
//! everything is fetched in parallel, checked against its upstream signature and checksums,
//! and staged for `pack` with a lock file that records exactly what was staged.
//!
//! The stage layout and [`airgap_stage::Lock`] are a contract with `pack` and `install`.

#![deny(missing_docs)]

mod archive;
mod coder;
mod error;
mod fetch;
mod local;

mod postgres;
mod providers;
pub mod spec;
mod stagefs;
mod terraform;

use std::path::{Path, PathBuf};

use airgap_mirror::fetch::{FetchOptions, Fetcher};
use indicatif::{MultiProgress, ProgressDrawTarget};

use airgap_stage::{BundleInfo, Components, Lock};
pub use error::SyncError;
use fetch::{Ctx, Prepared};
use spec::ApplianceSpec;

/// Everything one run needs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The spec file.
    pub spec: PathBuf,
    /// `section.key=value` overrides.
    pub sets: Vec<String>,
    /// The stage directory.
    pub out: PathBuf,
    /// Re-fetch exactly what the lock names; fail on any drift.
    pub locked: bool,
    /// The lock file kept beside the spec (default: `SPEC.lock.json`, e.g.
    /// `bundle/appliance.lock.json`), committable like Cargo.lock.
    pub lock_file: Option<PathBuf>,
    /// Where downloads are kept between runs (default: `OUT.downloads` beside the stage).
    pub cache_dir: Option<PathBuf>,
    /// Local inputs in place of upstreams.
    pub coder_from: Option<PathBuf>,
    /// `--terraform-from`.
    pub terraform_from: Option<PathBuf>,
    /// `--postgres-from`.
    pub postgres_from: Option<PathBuf>,
    /// `--providers-from`.
    pub providers_from: Option<PathBuf>,
    /// Network settings (extra CA, retries, concurrency).
    pub fetch: FetchOptions,
    /// No progress bars.
    pub quiet: bool,
}

/// What a run staged.
#[derive(Debug)]
pub struct Report {
    /// The lock file written.
    pub lock: Lock,
    /// Warnings for the operator.
    pub warnings: Vec<String>,
}

/// Runs a sync into `opts.out`. On success the lock is written into the stage (pack's
/// copy) and beside the spec (the committable one). `--locked` reads the one beside the
/// spec (or, for stages made before it existed, the stage's), so a fresh stage on another
/// host reproduces the committed lock with nothing copied in first. A failed sync removes
/// the stage directory again when this run created it.
pub async fn run(opts: &Options) -> Result<Report, SyncError> {
    let spec = ApplianceSpec::load(&opts.spec, &opts.sets)?;
    let lock_file = lock_path(opts);
    let previous = if opts.locked {
        Some(read_previous(&lock_file, &opts.out)?)
    } else {
        None
    };
    let created = !opts.out.exists();
    let result = sync_into(opts, &spec, previous.as_ref()).await;
    if result.is_err() && created {
        // This run made the directory and wrote no lock into it: it is not a stage, and
        // must not be left for `pack` to sign (the providers it gained are re-fetched).
        let _ = std::fs::remove_dir_all(&opts.out);
    }
    let report = result?;
    if !opts.locked {
        report
            .lock
            .write_file(&lock_file)
            .map_err(SyncError::Lock)?;
    }
    Ok(report)
}

async fn sync_into(
    opts: &Options,
    spec: &ApplianceSpec,
    previous: Option<&Lock>,
) -> Result<Report, SyncError> {
    let tmp = opts.out.join(stagefs::TMP_DIR);
    stagefs::clean_tmp(&opts.out);
    std::fs::create_dir_all(&tmp).map_err(error::io_at(&tmp))?;
    let cache = opts
        .cache_dir
        .clone()
        .unwrap_or_else(|| default_cache(&opts.out));
    std::fs::create_dir_all(&cache).map_err(error::io_at(&cache))?;
    let result = stage(opts, spec, previous, cache, tmp).await;
    stagefs::clean_tmp(&opts.out);
    result
}

/// The lock beside the spec: `--lock`, else `SPEC` with its extension replaced by
/// `lock.json` (`bundle/appliance.toml` → `bundle/appliance.lock.json`).
pub fn lock_path(opts: &Options) -> PathBuf {
    opts.lock_file
        .clone()
        .unwrap_or_else(|| opts.spec.with_extension("lock.json"))
}

/// The lock `--locked` reproduces: beside the spec, else (older stages) the stage's own.
fn read_previous(lock_file: &Path, stage: &Path) -> Result<Lock, SyncError> {
    match Lock::read_file(lock_file) {
        Ok(lock) => Ok(lock),
        Err(e) if lock_file.exists() => Err(SyncError::Lock(e)),
        Err(e) => Lock::read(stage).map_err(|_| SyncError::Lock(e)),
    }
}

/// `STAGE.downloads` beside the stage (never inside it: pack takes the whole stage).
pub fn default_cache(out: &Path) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".downloads");
    out.with_file_name(name)
}

async fn stage(
    opts: &Options,
    spec: &ApplianceSpec,
    previous: Option<&Lock>,
    cache: PathBuf,
    tmp: PathBuf,
) -> Result<Report, SyncError> {
    let progress = if opts.quiet {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
    };
    let releases = Fetcher::with_progress(opts.fetch.clone(), progress.clone())?;
    let registry = Fetcher::with_progress(opts.fetch.clone(), progress)?;
    let ctx = Ctx {
        fetcher: &releases,
        cache,
        tmp: tmp.clone(),
        locked: previous,
    };
    let platform = spec.host_platform();
    let (c, t, p, pr) = tokio::join!(
        coder::prepare(&ctx, &spec.coder, platform, opts.coder_from.as_deref()),
        terraform::prepare(
            &ctx,
            &spec.terraform,
            platform,
            opts.terraform_from.as_deref()
        ),
        postgres::prepare(
            &ctx,
            &spec.postgres,
            platform,
            opts.postgres_from.as_deref()
        ),
        providers::prepare(
            &registry,
            &spec.mirror,
            &opts.out,
            &tmp,
            opts.providers_from.as_deref(),
            previous
        ),
    );
    releases.finish();
    let (coder, terraform, postgres, providers) = (c?, t?, p?, pr?);
    let mut warnings = Vec::new();
    warnings.extend(spec::pair_warning(
        &coder.coderd.component.version,
        &terraform.component.version,
    ));
    let mut parts = vec![coder.coderd, terraform, postgres, providers];
    if let Some(docs) = coder.docs {
        parts.push(docs);
    }
    let moves: Vec<_> = parts.iter().flat_map(|p| p.moves.clone()).collect();
    warnings.extend(parts.iter().flat_map(|p| p.warnings.clone()));
    let lock = make_lock(spec, parts);
    if let Some(old) = previous {
        check_no_drift(old, &lock)?;
    }
    stagefs::commit(&opts.out, &moves)?;
    lock.write(&opts.out).map_err(SyncError::Lock)?;
    Ok(Report { lock, warnings })
}

fn make_lock(spec: &ApplianceSpec, parts: Vec<Prepared>) -> Lock {
    let mut it = parts.into_iter().map(|p| p.component);
    let mut next = || {
        it.next()
            .unwrap_or_else(|| airgap_stage::Component::new("", "", Vec::new()))
    };
    let components = Components {
        coderd: next(),
        terraform: next(),
        postgres: next(),
        providers: next(),
        docs: it.next(),
    };
    Lock {
        format: airgap_stage::FORMAT,
        bundle: BundleInfo {
            name: spec.bundle.name.clone(),
            version: spec.bundle.version.clone(),
            sequence: spec.bundle.sequence,
            expires_in_days: spec.bundle.expires_in_days,
            platform: spec.host_platform().to_string(),
        },
        components,
    }
}

/// The per-artifact checks already refused changed hashes; this catches anything else
/// (a component added or dropped, a different provider list).
fn check_no_drift(old: &Lock, new: &Lock) -> Result<(), SyncError> {
    if old.components == new.components {
        return Ok(());
    }
    let pairs = [
        ("coderd", &old.components.coderd, &new.components.coderd),
        (
            "terraform",
            &old.components.terraform,
            &new.components.terraform,
        ),
        (
            "postgres",
            &old.components.postgres,
            &new.components.postgres,
        ),
        (
            "providers",
            &old.components.providers,
            &new.components.providers,
        ),
    ];
    let component = pairs
        .iter()
        .find(|(_, a, b)| a != b)
        .map(|(n, _, _)| (*n).to_string())
        .unwrap_or_else(|| "docs".into());
    Err(SyncError::Drift {
        component,
        detail: "what upstream serves now differs from the lock file".into(),
    })
}
