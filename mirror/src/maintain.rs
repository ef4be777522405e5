//! Disconnected-side maintenance: importing a zip carried in by hand, re-verifying the
//! tree, and the Terraform CLI configuration that points at the mirror.

use std::path::{Path, PathBuf};

use crate::hash::ZipHashes;
use crate::layout::{
    self, hashes_match, io_err, LayoutError, Mirror, Platform, ProviderAddr, Staged,
};
use crate::version::Version;

/// What an import did.
#[derive(Debug, Clone)]
pub struct Imported {
    /// Where the archive now lives.
    pub path: PathBuf,
    /// Its hashes, as recorded in `VERSION.json`.
    pub hashes: ZipHashes,
    /// Whether the identical archive was already there (nothing changed).
    pub unchanged: bool,
}

/// Adds the provider zip at `zip` to the mirror as `provider` `version` `platform`.
/// The zip is copied beside its destination and hashed there, so what was hashed is what is
/// installed. A different archive already recorded for the same slot is an error unless
/// `replace` is set.
pub fn import(
    mirror: &Mirror,
    provider: &ProviderAddr,
    version: &Version,
    platform: &Platform,
    zip: &Path,
    replace: bool,
) -> Result<Imported, LayoutError> {
    let dir = mirror.provider_dir(provider);
    std::fs::create_dir_all(&dir).map_err(|source| io_err(&dir, source))?;
    let tmp = tempfile::Builder::new()
        .prefix(".import-")
        .tempfile_in(&dir)
        .map_err(|source| io_err(&dir, source))?;
    std::fs::copy(zip, tmp.path()).map_err(|source| io_err(zip, source))?;
    layout::set_public_mode(tmp.path())?;
    let hashes = layout::hash_archive(tmp.path())?;
    let dest = mirror.archive_path(provider, version, platform);
    if let Some(existing) = mirror.entry(provider, version, platform)? {
        if dest.is_file() && hashes_match(&existing.hashes, &hashes) {
            return Ok(Imported {
                path: dest,
                hashes,
                unchanged: true,
            });
        }
        if dest.is_file() && !replace {
            return Err(LayoutError::Exists {
                slot: format!("{provider} {version} {platform}"),
                path: dest,
                existing: existing.hashes.join(", "),
            });
        }
    }
    let (_file, tmp_path) = tmp.keep().map_err(|e| io_err(&dir, e.error))?;
    let staged = Staged {
        provider: provider.clone(),
        version: version.clone(),
        platform: platform.clone(),
        path: tmp_path,
        hashes: hashes.clone(),
    };
    mirror.install(std::slice::from_ref(&staged))?;
    Ok(Imported {
        path: dest,
        hashes,
        unchanged: false,
    })
}

/// The result of re-hashing a mirror tree.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Archives hashed.
    pub archives: usize,
    /// Providers seen.
    pub providers: usize,
    /// Failures: each names the file and what is wrong. Non-empty means the tree is unusable.
    pub problems: Vec<String>,
    /// Things Terraform would trip over later (e.g. zips with directory entries).
    pub warnings: Vec<String>,
}

/// Re-hashes every archive listed in the tree against its `VERSION.json`.
pub fn verify(mirror: &Mirror) -> Result<VerifyReport, LayoutError> {
    let mut report = VerifyReport::default();
    let mut jobs = Vec::new();
    for provider in mirror.providers()? {
        report.providers += 1;
        collect_jobs(mirror, &provider, &mut jobs, &mut report)?;
    }
    report.archives = jobs.len();
    for outcome in hash_in_parallel(&jobs) {
        match outcome {
            Ok(Some(warning)) => report.warnings.push(warning),
            Ok(None) => {}
            Err(problem) => report.problems.push(problem),
        }
    }
    Ok(report)
}

/// One archive to check: label, path, recorded hashes.
struct Job {
    label: String,
    path: PathBuf,
    hashes: Vec<String>,
}

fn collect_jobs(
    mirror: &Mirror,
    provider: &ProviderAddr,
    jobs: &mut Vec<Job>,
    report: &mut VerifyReport,
) -> Result<(), LayoutError> {
    let dir = mirror.provider_dir(provider);
    let index = mirror.read_index(provider)?;
    for version_text in index.versions.keys() {
        let Ok(version) = version_text.parse::<Version>() else {
            report.problems.push(format!(
                "{provider}: index.json lists invalid version {version_text:?}"
            ));
            continue;
        };
        let json_path = dir.join(format!("{version}.json"));
        if !json_path.is_file() {
            report.problems.push(format!(
                "{provider} {version}: {} is missing; sync or import this version again",
                json_path.display()
            ));
            continue;
        }
        for (platform, entry) in mirror.read_version(provider, &version)?.archives {
            let label = format!("{provider} {version} {platform}");
            if entry.url.contains('/') || entry.url.starts_with('.') {
                report.warnings.push(format!(
                    "{label}: url {:?} is not a file in this tree; not checked",
                    entry.url
                ));
                continue;
            }
            jobs.push(Job {
                label,
                path: dir.join(&entry.url),
                hashes: entry.hashes,
            });
        }
    }
    Ok(())
}

/// Hashes jobs on all cores; each result is a warning, nothing, or a problem.
fn hash_in_parallel(jobs: &[Job]) -> Vec<Result<Option<String>, String>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(jobs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let outcome = check_one(job);
                if let Ok(mut all) = results.lock() {
                    all.push((i, outcome));
                }
            });
        }
    });
    let mut all = results.into_inner().unwrap_or_default();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

fn check_one(job: &Job) -> Result<Option<String>, String> {
    if !job.path.is_file() {
        return Err(format!(
            "{}: {} is missing; sync or import it again",
            job.label,
            job.path.display()
        ));
    }
    let actual = layout::hash_archive(&job.path).map_err(|e| format!("{}: {e}", job.label))?;
    if job.hashes.is_empty() {
        return Ok(Some(format!(
            "{}: VERSION.json records no hashes; Terraform will accept any file",
            job.label
        )));
    }
    if !hashes_match(&job.hashes, &actual) {
        return Err(format!(
            "{}: {} does not match VERSION.json (recorded {}, file has {} {}); replace it with the original archive or re-import it with --replace",
            job.label,
            job.path.display(),
            job.hashes.join(", "),
            actual.h1,
            actual.zh
        ));
    }
    Ok(directory_warning(&job.label, &actual))
}

/// The loud warning for zips whose entries include directories.
pub fn directory_warning(label: &str, hashes: &ZipHashes) -> Option<String> {
    if hashes.directory_entries.is_empty() {
        return None;
    }
    Some(format!(
        "{label}: the zip contains directory entries ({}); Terraform installs it once and then \
         fails every later `terraform init` against its lock file (the lock file's h1: skips \
         directories). Repack the zip without directory entries (zip -D).",
        hashes.directory_entries.join(", ")
    ))
}

/// The Terraform CLI configuration for hosts that install providers from the mirror at
/// `url` (`https://HOST:PORT`, with or without `/providers/`). With an explicit
/// `provider_installation` block and no `direct` block, Terraform never falls back to the
/// internet.
pub fn terraformrc(url: &str) -> Result<String, LayoutError> {
    let base = mirror_url(url)?;
    Ok(format!(
        "# Terraform CLI configuration: install every provider from the air-gapped mirror.\n\
         # Use with TF_CLI_CONFIG_FILE=/path/to/this/file (or save as ~/.terraformrc).\n\
         provider_installation {{\n  network_mirror {{\n    url = \"{base}\"\n  }}\n}}\n"
    ))
}

/// Normalises a mirror URL to `https://HOST[:PORT]/…/providers/`.
pub fn mirror_url(url: &str) -> Result<String, LayoutError> {
    let bad = |reason| LayoutError::Address {
        input: url.to_string(),
        reason,
    };
    let trimmed = url.trim();
    if !trimmed.starts_with("https://") {
        return Err(bad(
            "the mirror URL must start with https:// (Terraform refuses plain HTTP mirrors)",
        ));
    }
    if trimmed.contains(['"', '\\', ' ', '\n']) {
        return Err(bad(
            "the mirror URL may not contain quotes, spaces or backslashes",
        ));
    }
    let without = trimmed.trim_end_matches('/');
    if without.len() <= "https://".len() {
        return Err(bad("the mirror URL has no host"));
    }
    if without.ends_with("/providers") {
        return Ok(format!("{without}/"));
    }
    Ok(format!("{without}/providers/"))
}
