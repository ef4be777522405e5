//! Connected side: fetch the providers a spec asks for from their registries, verify each
//! exactly as Terraform does (signed SHA256SUMS, its line for the file, the zip's sha256),
//! and add them to the mirror. Everything is downloaded and verified in a staging directory
//! first; the tree changes only if every archive verified, so a failed sync leaves the mirror
//! as it was (and the staging directory keeps partial downloads for the next run to resume).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::future::join_all;
use tokio::sync::{Mutex, OnceCell};

use crate::archive::{self, ZipCheckError, ZipLimits};
use crate::fetch::{FetchError, Fetcher, Url};
use crate::hash::ZipHashes;
use crate::layout::{hashes_match, LayoutError, Mirror, Platform, ProviderAddr, Staged};
use crate::maintain::directory_warning;
use crate::openpgp::{self, VerifyError};
use crate::registry::{Package, RegistryClient, RegistryError, VersionEntry};
use crate::spec::{MirrorSpec, ProviderSpec};
use crate::version::Version;

/// The staging directory inside the mirror root (ignored by the server and by Terraform).
pub const STAGING_DIR: &str = ".airgap-partial";

/// Size cap of one provider zip (the registry declares no size; the largest providers are
/// a few hundred MiB).
pub const MAX_PROVIDER_ZIP_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Resolving a provider's versions failed.
    #[error("{provider}: {cause}")]
    Registry {
        /// The provider.
        provider: ProviderAddr,
        /// The cause (printed in the message; not a `source`).
        cause: Box<RegistryError>,
    },
    /// No published version satisfies the constraint.
    #[error("{provider}: no published version matches {constraint:?} (published: {published})")]
    NoMatchingVersion {
        /// The provider.
        provider: ProviderAddr,
        /// The constraint.
        constraint: String,
        /// What the registry lists.
        published: String,
    },
    /// One or more archives failed; the mirror was not changed.
    #[error("{} archive(s) failed, the mirror was not changed:\n  {}", .0.len(), join_lines(.0))]
    Archives(Vec<ArchiveError>),
    /// Reading or writing the mirror failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

fn join_lines(errors: &[ArchiveError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// One archive that could not be mirrored, naming provider, version and platform.
#[derive(Debug, thiserror::Error)]
#[error("{provider} {version} {platform}: {reason}")]
pub struct ArchiveError {
    /// The provider.
    pub provider: ProviderAddr,
    /// The version.
    pub version: Version,
    /// The platform.
    pub platform: Platform,
    /// What went wrong.
    pub reason: ArchiveFailure,
}

/// What went wrong with one archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveFailure {
    /// The registry does not publish this platform for the version.
    #[error("not published for this platform (published: {0})")]
    NoSuchPlatform(String),
    /// A registry request failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A download failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The SHA256SUMS signature did not verify.
    #[error("SHA256SUMS signature rejected: {0}")]
    Signature(VerifyError),
    /// The signing key is valid but not one the spec pins for this namespace.
    #[error("SHA256SUMS is signed by key {fingerprint}, which is not pinned for this namespace (pinned: {pinned}); if the key change is expected, add it to [trusted_keys]")]
    KeyNotPinned {
        /// The signer.
        fingerprint: String,
        /// The pinned fingerprints.
        pinned: String,
    },
    /// SHA256SUMS has no line for the file.
    #[error("SHA256SUMS has no line for {0}")]
    NotInShasums(String),
    /// SHA256SUMS disagrees with the registry's `shasum`.
    #[error(
        "checksum mismatch: SHA256SUMS says {listed} for {filename} but the registry says {shasum}"
    )]
    ShasumMismatch {
        /// The file.
        filename: String,
        /// The signed value.
        listed: String,
        /// The registry's value.
        shasum: String,
    },
    /// The registry response is unusable.
    #[error("bad download response: {0}")]
    BadResponse(String),
    /// The zip is not a safe provider package (unsafe names, links, bombs, no executable).
    #[error(transparent)]
    Unsafe(#[from] ZipCheckError),
    /// The downloaded zip cannot be hashed as a provider package.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// What a sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Archives added, as `HOST/NS/TYPE VERSION OS_ARCH`.
    pub added: Vec<String>,
    /// Archives already present and verified, so skipped.
    pub skipped: usize,
    /// Warnings to show the operator (unpinned keys, zips with directory entries).
    pub warnings: Vec<String>,
}

/// One archive to mirror.
#[derive(Debug, Clone)]
struct Job {
    provider: ProviderAddr,
    version: Version,
    platform: Platform,
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.provider, self.version, self.platform)
    }
}

/// Shared state of one sync run.
struct Run<'a> {
    spec: &'a MirrorSpec,
    mirror: &'a Mirror,
    fetcher: &'a Fetcher,
    registry: RegistryClient<'a>,
    staging: PathBuf,
    /// SHA256SUMS and signatures, fetched once per URL.
    blobs: Mutex<HashMap<Url, Arc<OnceCell<Vec<u8>>>>>,
}

/// Mirrors everything `spec` asks for into `mirror`, downloading through `fetcher`.
pub async fn sync(
    spec: &MirrorSpec,
    mirror: &Mirror,
    fetcher: &Fetcher,
) -> Result<SyncReport, SyncError> {
    let run = Run {
        spec,
        mirror,
        fetcher,
        registry: RegistryClient::new(fetcher, spec),
        staging: mirror.root().join(STAGING_DIR),
        blobs: Mutex::new(HashMap::new()),
    };
    let planned = join_all(spec.providers.iter().map(|p| run.plan(p))).await;
    let mut jobs = Vec::new();
    let mut failures = Vec::new();
    for plan in planned {
        let (provider_jobs, provider_failures) = plan?;
        jobs.extend(provider_jobs);
        failures.extend(provider_failures);
    }
    // A provider listed twice (or overlapping constraints) is fetched once.
    let mut seen = BTreeSet::new();
    jobs.retain(|j: &Job| seen.insert(j.to_string()));
    let mut report = SyncReport::default();
    let (todo, skipped) = run.skip_present(jobs).await?;
    report.skipped = skipped;
    let results = join_all(todo.iter().map(|job| run.fetch_one(job))).await;
    let mut staged = Vec::new();
    let mut warnings = BTreeSet::new();
    for (job, result) in todo.iter().zip(results) {
        match result {
            Ok((item, job_warnings)) => {
                warnings.extend(job_warnings);
                staged.push(item);
            }
            Err(reason) => failures.push(archive_error(job, reason)),
        }
    }
    fetcher.finish();
    if !failures.is_empty() {
        return Err(SyncError::Archives(failures));
    }
    mirror.install(&staged)?;
    report.added = todo.iter().map(ToString::to_string).collect();
    report.warnings = warnings.into_iter().collect();
    let _ = std::fs::remove_dir_all(&run.staging);
    Ok(report)
}

fn archive_error(job: &Job, reason: ArchiveFailure) -> ArchiveError {
    ArchiveError {
        provider: job.provider.clone(),
        version: job.version.clone(),
        platform: job.platform.clone(),
        reason,
    }
}

impl Run<'_> {
    /// The archives one provider spec calls for, and platforms the registry does not publish.
    async fn plan(&self, p: &ProviderSpec) -> Result<(Vec<Job>, Vec<ArchiveError>), SyncError> {
        let registry_err = |cause| SyncError::Registry {
            provider: p.source.clone(),
            cause: Box::new(cause),
        };
        let published = self
            .registry
            .versions(&p.source)
            .await
            .map_err(registry_err)?;
        let selected = select_versions(p, &published)?;
        let mut jobs = Vec::new();
        let mut failures = Vec::new();
        for (version, entry) in selected {
            for platform in &p.platforms {
                let job = Job {
                    provider: p.source.clone(),
                    version: version.clone(),
                    platform: platform.clone(),
                };
                let offered = entry
                    .platforms
                    .iter()
                    .any(|e| e.os == platform.os && e.arch == platform.arch);
                if offered || entry.platforms.is_empty() {
                    jobs.push(job);
                } else {
                    let list = entry
                        .platforms
                        .iter()
                        .map(|e| format!("{}_{}", e.os, e.arch))
                        .collect::<Vec<_>>()
                        .join(", ");
                    failures.push(archive_error(&job, ArchiveFailure::NoSuchPlatform(list)));
                }
            }
        }
        Ok((jobs, failures))
    }

    /// Splits jobs into those to fetch and the number already present and verified.
    async fn skip_present(&self, jobs: Vec<Job>) -> Result<(Vec<Job>, usize), SyncError> {
        let checks = join_all(jobs.iter().map(|job| self.is_present(job))).await;
        let mut todo = Vec::new();
        let mut skipped = 0;
        for (job, present) in jobs.into_iter().zip(checks) {
            if present? {
                skipped += 1;
            } else {
                todo.push(job);
            }
        }
        Ok((todo, skipped))
    }

    async fn is_present(&self, job: &Job) -> Result<bool, SyncError> {
        let Some(entry) = self
            .mirror
            .entry(&job.provider, &job.version, &job.platform)?
        else {
            return Ok(false);
        };
        let path = self
            .mirror
            .archive_path(&job.provider, &job.version, &job.platform);
        if !path.is_file() {
            return Ok(false);
        }
        match hash_blocking(path).await {
            Ok(actual) => Ok(hashes_match(&entry.hashes, &actual)),
            Err(_) => Ok(false),
        }
    }

    /// Resolves, verifies and downloads one archive into staging.
    async fn fetch_one(&self, job: &Job) -> Result<(Staged, Vec<String>), ArchiveFailure> {
        let package = self
            .registry
            .package(&job.provider, &job.version, &job.platform)
            .await?;
        let filename = &package.info.filename;
        if filename.contains(['/', '\\']) || filename.starts_with('.') {
            return Err(ArchiveFailure::BadResponse(format!(
                "unsafe filename {filename:?}"
            )));
        }
        let mut warnings = self.verify_shasums(job, &package).await?;
        let dest = self.staging_path(job)?;
        let shasum = package.info.shasum.to_ascii_lowercase();
        self.fetcher
            .download_capped(
                &package.download_url,
                &dest,
                Some(&shasum),
                MAX_PROVIDER_ZIP_BYTES,
            )
            .await?;
        check_package(&dest, &job.provider).await?;
        let hashes = hash_blocking(dest.clone()).await?;
        warnings.extend(directory_warning(&job.to_string(), &hashes));
        let staged = Staged {
            provider: job.provider.clone(),
            version: job.version.clone(),
            platform: job.platform.clone(),
            path: dest,
            hashes,
        };
        Ok((staged, warnings))
    }

    /// Checks the signed SHA256SUMS and its line for this file; returns warnings.
    async fn verify_shasums(
        &self,
        job: &Job,
        package: &Package,
    ) -> Result<Vec<String>, ArchiveFailure> {
        let sums = self.blob(&package.shasums_url).await?;
        let signature = self.blob(&package.signature_url).await?;
        let keys: Vec<&[u8]> = package
            .info
            .signing_keys
            .gpg_public_keys
            .iter()
            .map(|k| k.ascii_armor.as_bytes())
            .collect();
        let signer = openpgp::verify_detached_any(&keys, &signature, &sums)
            .map_err(ArchiveFailure::Signature)?;
        let warnings = self.check_pinned(job, &signer)?;
        let filename = &package.info.filename;
        let listed = shasums_line(&sums, filename)
            .ok_or_else(|| ArchiveFailure::NotInShasums(filename.clone()))?;
        if !listed.eq_ignore_ascii_case(&package.info.shasum) {
            return Err(ArchiveFailure::ShasumMismatch {
                filename: filename.clone(),
                listed,
                shasum: package.info.shasum.clone(),
            });
        }
        Ok(warnings)
    }

    fn check_pinned(
        &self,
        job: &Job,
        signer: &openpgp::KeyInfo,
    ) -> Result<Vec<String>, ArchiveFailure> {
        match self.spec.pinned_keys(&job.provider) {
            Some(pinned) if pinned.contains(&signer.fingerprint) || pinned.contains(&signer.signer_fingerprint) => Ok(Vec::new()),
            Some(pinned) => Err(ArchiveFailure::KeyNotPinned { fingerprint: signer.fingerprint.clone(), pinned: pinned.join(", ") }),
            None => Ok(vec![format!(
                "{}/{}: accepted signing key {} ({}) that is not pinned; to pin it add to the providers file:\n    [trusted_keys]\n    {:?} = [{:?}]",
                job.provider.host,
                job.provider.namespace,
                signer.fingerprint,
                signer.user_ids.join(", "),
                job.provider.namespace,
                signer.fingerprint
            )]),
        }
    }

    async fn blob(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let cell = {
            let mut blobs = self.blobs.lock().await;
            blobs.entry(url.clone()).or_default().clone()
        };
        let bytes = cell
            .get_or_try_init(|| async { self.fetcher.get_bytes(url).await.map(|(b, _)| b) })
            .await?;
        Ok(bytes.clone())
    }

    fn staging_path(&self, job: &Job) -> Result<PathBuf, LayoutError> {
        let dir = self.staging.join(job.provider.rel_dir());
        std::fs::create_dir_all(&dir).map_err(|source| crate::layout::io_err(&dir, source))?;
        Ok(dir.join(job.provider.archive_name(&job.version, &job.platform)))
    }
}

/// Picks the newest matching version (or all matching ones) with its registry entry.
fn select_versions<'a>(
    p: &ProviderSpec,
    published: &'a [VersionEntry],
) -> Result<Vec<(Version, &'a VersionEntry)>, SyncError> {
    let mut matching: Vec<(Version, &VersionEntry)> = published
        .iter()
        .filter_map(|e| e.version.parse::<Version>().ok().map(|v| (v, e)))
        .filter(|(v, _)| p.versions.matches(v))
        .collect();
    matching.sort_by(|a, b| b.0.cmp(&a.0));
    if matching.is_empty() {
        return Err(SyncError::NoMatchingVersion {
            provider: p.source.clone(),
            constraint: p.versions.to_string(),
            published: published
                .iter()
                .map(|e| e.version.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if !p.all_versions {
        matching.truncate(1);
    }
    Ok(matching)
}

/// The hash listed for `filename` in a SHA256SUMS file (`<hex>  <name>` lines).
pub fn shasums_line(sums: &[u8], filename: &str) -> Option<String> {
    let text = String::from_utf8_lossy(sums);
    text.lines().find_map(|line| {
        let (hash, name) = line.split_once(char::is_whitespace)?;
        let name = name.trim_start().trim_start_matches('*');
        (name == filename).then(|| hash.to_ascii_lowercase())
    })
}

/// Checks a downloaded provider zip; an unsafe one is deleted from staging.
async fn check_package(zip: &Path, provider: &ProviderAddr) -> Result<(), ArchiveFailure> {
    let path = zip.to_path_buf();
    let executable = archive::provider_executable(&provider.name);
    let checked = tokio::task::spawn_blocking(move || {
        archive::check_zip_file(&path, &executable, &ZipLimits::default())
    })
    .await
    .map_err(|e| ArchiveFailure::BadResponse(e.to_string()))?;
    if let Err(e) = checked {
        let _ = std::fs::remove_file(zip);
        return Err(e.into());
    }
    Ok(())
}

async fn hash_blocking(path: PathBuf) -> Result<ZipHashes, LayoutError> {
    let shown = path.clone();
    tokio::task::spawn_blocking(move || crate::layout::hash_archive(&path))
        .await
        .map_err(|e| crate::layout::io_err(&shown, std::io::Error::other(e.to_string())))?
}

/// The staging directory for a mirror root.
pub fn staging_dir(root: &Path) -> PathBuf {
    root.join(STAGING_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_shasums_lines() {
        let sums = b"abc  terraform-provider-x_1.0.0_linux_amd64.zip\nDEF *terraform-provider-x_1.0.0_linux_arm64.zip\n";
        assert_eq!(
            shasums_line(sums, "terraform-provider-x_1.0.0_linux_amd64.zip").as_deref(),
            Some("abc")
        );
        assert_eq!(
            shasums_line(sums, "terraform-provider-x_1.0.0_linux_arm64.zip").as_deref(),
            Some("def")
        );
        assert_eq!(
            shasums_line(sums, "terraform-provider-x_1.0.0_darwin_arm64.zip"),
            None
        );
    }
}
