//! Disconnected-side maintenance: importing a zip carried in by hand, re-verifying the
//! tree, and the Terraform CLI configuration that points at the mirror.

use std::path::{Path, PathBuf};

use crate::archive::{self, ZipCheckError, ZipLimits};
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

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The zip is not a safe provider package (no executable, unsafe names, links, bombs).
    #[error(transparent)]
    Unsafe(#[from] ZipCheckError),
    /// Reading or writing the mirror failed, or the slot holds a different archive.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// Adds the provider zip at `zip` to the mirror as `provider` `version` `platform`.
/// The zip is copied beside its destination and hashed there, so what was hashed is what is
/// installed. A different archive already recorded for the same slot is an error unless
/// `replace` is set. The zip must pass the provider package checks ([`archive::check_zip`]),
/// including holding `terraform-provider-TYPE`.
pub fn import(
    mirror: &Mirror,
    provider: &ProviderAddr,
    version: &Version,
    platform: &Platform,
    zip: &Path,
    replace: bool,
) -> Result<Imported, ImportError> {
    let dir = mirror.provider_dir(provider);
    std::fs::create_dir_all(&dir).map_err(|source| io_err(&dir, source))?;
    let tmp = tempfile::Builder::new()
        .prefix(".import-")
        .tempfile_in(&dir)
        .map_err(|source| io_err(&dir, source))?;
    std::fs::copy(zip, tmp.path()).map_err(|source| io_err(zip, source))?;
    layout::set_public_mode(tmp.path())?;
    archive::check_zip_file(
        tmp.path(),
        &archive::provider_executable(&provider.name),
        &ZipLimits::default(),
    )
    .map_err(|e| ZipCheckError {
        archive: zip.display().to_string(),
        problem: e.problem,
    })?;
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
            }
            .into());
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
    /// Module versions re-hashed (the module store, [`crate::module_store`]).
    pub module_versions: usize,
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
    verify_modules(mirror, &mut report);
    Ok(report)
}

/// Re-hashes only the module store's archives against its `index.json`, as [`verify`]
/// does (for `doctor`, which checks the providers by asking the running mirror).
pub fn verify_module_store(mirror: &Mirror) -> VerifyReport {
    let mut report = VerifyReport::default();
    verify_modules(mirror, &mut report);
    report
}

/// Re-hashes every module archive against the store's `index.json`.
fn verify_modules(mirror: &Mirror, report: &mut VerifyReport) {
    let store = crate::ModuleStore::new(mirror.root());
    let modules = match store.modules() {
        Ok(modules) => modules,
        Err(e) => return report.problems.push(format!("module store: {e}")),
    };
    for module in modules {
        let index = match store.read_index(&module) {
            Ok(index) => index,
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        for (version_text, entry) in index.versions {
            report.module_versions += 1;
            let Ok(version) = version_text.parse::<Version>() else {
                report.problems.push(format!(
                    "module {module}: index.json lists invalid version {version_text:?}"
                ));
                continue;
            };
            let path = store.archive_path(&module, &version);
            match crate::hash::sha256_file(&path) {
                Ok(actual) if actual == entry.sha256 => {}
                Ok(actual) => report.problems.push(format!(
                    "module {module} {version}: {} has sha256 {actual}, index.json records {}; \
                     re-import it with `mirror import-module --replace`",
                    path.display(),
                    entry.sha256
                )),
                Err(e) => report
                    .problems
                    .push(format!("module {module} {version}: {e}")),
            }
        }
    }
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

/// The module registry hosts every generated terraformrc sends to the mirror, whether or
/// not the mirror carries modules of them yet: the hosts Coder's templates use. Listing them
/// always keeps the file the same for a given URL (install writes it before any bundle
/// with modules arrives), and a module the mirror lacks then fails with the mirror's 404
/// ("module not found") instead of a DNS lookup that leaks the name off the network.
pub const MODULE_HOSTS: [&str; 2] = ["registry.coder.com", "registry.terraform.io"];

/// The Terraform CLI configuration for hosts that install providers from the mirror at
/// `url` (`https://HOST:PORT`, with or without `/providers/`). With an explicit
/// `provider_installation` block and no `direct` block, Terraform never falls back to the
/// internet. Module sources on the [`MODULE_HOSTS`] resolve to the mirror's module
/// registry (see [`terraformrc_with_hosts`]).
pub fn terraformrc(url: &str) -> Result<String, LayoutError> {
    terraformrc_with_hosts(url, &[])
}

/// [`terraformrc`] plus a `host` block for each of `extra_hosts` (e.g. the hosts of
/// [`crate::ModuleStore::hosts`]). A `host` block gives Terraform the host's services
/// outright (`modules.v1` → `https://MIRROR/…/modules/v1/HOST/`), so it never looks the
/// host up in DNS or fetches its `/.well-known/terraform.json`, and templates keep their
/// module sources unchanged. Providers still come only from the `network_mirror`: that
/// method does not use service discovery.
pub fn terraformrc_with_hosts(url: &str, extra_hosts: &[String]) -> Result<String, LayoutError> {
    let base = mirror_url(url)?;
    let mut text = format!(
        "# Terraform CLI configuration: install every provider from the air-gapped mirror.\n\
         # Use with TF_CLI_CONFIG_FILE=/path/to/this/file (or save as ~/.terraformrc).\n\
         provider_installation {{\n  network_mirror {{\n    url = \"{base}\"\n  }}\n}}\n"
    );
    let modules = format!(
        "{}modules/v1/",
        base.strip_suffix("providers/").unwrap_or(&base)
    );
    let mut hosts: Vec<String> = MODULE_HOSTS.iter().map(|h| h.to_string()).collect();
    for host in extra_hosts {
        crate::module_store::check_host(host).map_err(|reason| LayoutError::Address {
            input: host.clone(),
            reason,
        })?;
        hosts.push(host.to_ascii_lowercase());
    }
    hosts.sort();
    hosts.dedup();
    text.push_str(
        "\n# Module registries served by the mirror (Module Registry Protocol): Terraform takes\n\
         # these services as given instead of discovering them, so module sources stay as published.\n",
    );
    for host in hosts {
        text.push_str(&format!(
            "host \"{host}\" {{\n  services = {{\n    \"modules.v1\" = \"{modules}{host}/\"\n  }}\n}}\n"
        ));
    }
    Ok(text)
}

/// Normalises a mirror URL to `https://HOST[:PORT]/…/providers/`, parsed as a URL: the
/// path is joined with `providers/` (once), and a query or fragment, which Terraform would
/// drop when it resolves package URLs against the mirror, is refused.
pub fn mirror_url(url: &str) -> Result<String, LayoutError> {
    let bad = |reason| LayoutError::Address {
        input: url.to_string(),
        reason,
    };
    let trimmed = url.trim();
    if trimmed.contains(['"', '\\', ' ', '\n']) {
        return Err(bad(
            "the mirror URL may not contain quotes, spaces or backslashes",
        ));
    }
    let mut parsed = crate::fetch::Url::parse(trimmed)
        .map_err(|_| bad("not a URL (expected https://HOST[:PORT][/PATH])"))?;
    if parsed.scheme() != "https" {
        return Err(bad(
            "the mirror URL must start with https:// (Terraform refuses plain HTTP mirrors)",
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("the mirror URL has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad(
            "the mirror URL may not have a query (?…) or fragment (#…): Terraform drops them",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("the mirror URL may not carry a user name or password"));
    }
    let path = parsed.path().trim_end_matches('/').to_string();
    let path = if path.ends_with("/providers") {
        format!("{path}/")
    } else {
        format!("{path}/providers/")
    };
    parsed.set_path(&path);
    Ok(parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_urls_are_joined_as_urls() {
        let ok = |u: &str| mirror_url(u).expect(u);
        assert_eq!(
            ok("https://m.internal:8444"),
            "https://m.internal:8444/providers/"
        );
        assert_eq!(
            ok("https://m.internal:8444/"),
            "https://m.internal:8444/providers/"
        );
        assert_eq!(
            ok("https://m.internal/base/"),
            "https://m.internal/base/providers/"
        );
        assert_eq!(
            ok("https://m.internal/providers"),
            "https://m.internal/providers/"
        );
        assert_eq!(
            ok("https://M.Internal/a/providers/"),
            "https://m.internal/a/providers/"
        );
        assert!(mirror_url("https://m.internal/?x=1").is_err());
        assert!(mirror_url("https://m.internal/#top").is_err());
        assert!(mirror_url("http://m.internal").is_err());
        assert!(mirror_url("https://").is_err());
        assert!(mirror_url("https://u:p@m.internal").is_err());
    }

    #[test]
    fn terraformrc_sends_module_hosts_to_the_mirror() {
        let rc = terraformrc_with_hosts(
            "https://m.internal:8444/base/",
            &[
                "Git.Example.Internal:8443".to_string(),
                "registry.coder.com".to_string(),
            ],
        )
        .expect("rc");
        let providers = "provider_installation {\n  network_mirror {\n    url = \"https://m.internal:8444/base/providers/\"\n  }\n}\n";
        assert!(rc.contains(providers), "{rc}");
        for host in [
            "git.example.internal:8443",
            "registry.coder.com",
            "registry.terraform.io",
        ] {
            let block = format!(
                "host \"{host}\" {{\n  services = {{\n    \"modules.v1\" = \"https://m.internal:8444/base/modules/v1/{host}/\"\n  }}\n}}\n"
            );
            assert_eq!(rc.matches(&block).count(), 1, "{host}: {rc}");
        }
        assert_eq!(
            terraformrc("https://m.internal")
                .expect("rc")
                .matches("host \"")
                .count(),
            2
        );
        assert!(terraformrc_with_hosts("https://m.internal", &["a\"b".to_string()]).is_err());
    }
}
