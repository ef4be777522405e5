//! The stage contract, checked on a verified, unpacked release before it may become
//! `current`: the bundle is for this host's platform, and everything the appliance runs
//! is where the release's lock file (`appliance.lock.json`) says, as a regular file inside
//! the release: coderd (`bin/coder`), Terraform (`bin/terraform`), the Postgres tools in
//! the lock's bindir, and every locked provider's mirror files. A validly signed bundle
//! that is incomplete or built for another machine is refused here, with its reason.

use std::fs::Metadata;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use airgap_bundle::names::{self, NameError};
use airgap_bundle::Manifest;
use airgap_mirror::{Mirror, Platform, ProviderAddr, Version};

use crate::release::{self, CODER_BIN, PROVIDERS_DIR, TERRAFORM_BIN};
use airgap_stage::{Component, Lock};

/// Why a verified release does not meet the contract.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The bundle was made for another platform.
    #[error("the bundle is for {bundle}, but this host is {host}: use a bundle synced for {host} (bundle.platforms in the spec)")]
    ForeignPlatform {
        /// The manifest's platform.
        bundle: String,
        /// This host's.
        host: String,
    },
    /// The lock and the signed manifest disagree on the platform.
    #[error("the bundle's lock is for {lock} but its manifest says {manifest}: pack the stage without --platform, or sync it for {manifest}")]
    PlatformMismatch {
        /// The lock's `bundle.platform`.
        lock: String,
        /// The manifest's platform.
        manifest: String,
    },
    /// The lock file is missing or unreadable.
    #[error("{0} (the bundle is incomplete: re-run `coder-airgap sync` and `pack`)")]
    Lock(String),
    /// A name or path in the lock may not become part of a path.
    #[error("the bundle's lock: {0}")]
    Name(NameError),
    /// Something the appliance runs is not in the release.
    #[error(
        "incomplete bundle: {what} ({path}) is missing; re-run `coder-airgap sync` and `pack`"
    )]
    Missing {
        /// What it is (`Terraform`, `Postgres tool pg_dump`).
        what: String,
        /// Release-relative path.
        path: String,
    },
    /// It is there, but not as it must be.
    #[error("bundle refused: {what} ({path}) is {problem}; re-run `coder-airgap sync` and `pack`")]
    Wrong {
        /// What it is.
        what: String,
        /// Release-relative path.
        path: String,
        /// What is wrong (`not executable`, `a symlink`, …).
        problem: &'static str,
    },
    /// The lock places a component where this program does not look for it.
    #[error("the bundle's lock places {what} at {paths:?}, but coder-airgap runs it from {expected}: re-run sync with this coder-airgap")]
    Elsewhere {
        /// The component.
        what: &'static str,
        /// The lock's paths.
        paths: Vec<String>,
        /// Where this program expects it.
        expected: String,
    },
}

/// This host's platform, spelled as Go and Terraform do (`linux_amd64`).
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{}_{arch}", std::env::consts::OS)
}

/// Checks the unpacked release in `dir` against its verified `manifest` and this host.
pub fn check(dir: &Path, manifest: &Manifest) -> Result<(), ContractError> {
    let host = host_platform();
    if manifest.platform != host {
        return Err(ContractError::ForeignPlatform {
            bundle: manifest.platform.clone(),
            host,
        });
    }
    let lock = read_lock(dir)?;
    if lock.bundle.platform != manifest.platform {
        return Err(ContractError::PlatformMismatch {
            lock: lock.bundle.platform.clone(),
            manifest: manifest.platform.clone(),
        });
    }
    check_lock_paths(&lock)?;
    let c = &lock.components;
    located("coderd", &c.coderd, CODER_BIN)?;
    located("Terraform", &c.terraform, TERRAFORM_BIN)?;
    located("the provider mirror", &c.providers, PROVIDERS_DIR)?;
    executable(dir, "coderd", CODER_BIN)?;
    executable(dir, "Terraform", TERRAFORM_BIN)?;
    let bindir = release::postgres_bindir(&lock);
    if !c.postgres.paths.iter().any(|p| within(bindir, p)) {
        return Err(ContractError::Elsewhere {
            what: "the Postgres bindir",
            paths: c.postgres.paths.clone(),
            expected: bindir.to_string(),
        });
    }
    for tool in crate::postgres::REQUIRED_TOOLS {
        executable(
            dir,
            &format!("Postgres tool {tool}"),
            &format!("{bindir}/{tool}"),
        )?;
    }
    check_providers(dir, &lock, &host)?;
    for component in [&c.coderd, &c.terraform, &c.postgres, &c.providers]
        .into_iter()
        .chain(c.docs.as_ref())
    {
        for path in &component.paths {
            inside(dir, "a component path", path)?;
        }
    }
    Ok(())
}

fn read_lock(dir: &Path) -> Result<Lock, ContractError> {
    Lock::read(dir).map_err(|e| ContractError::Lock(e.to_string()))
}

/// Every lock field that becomes part of a path: component paths and the bindir.
fn check_lock_paths(lock: &Lock) -> Result<(), ContractError> {
    let c = &lock.components;
    let named = [
        ("coderd", &c.coderd),
        ("terraform", &c.terraform),
        ("postgres", &c.postgres),
        ("providers", &c.providers),
    ];
    for (name, component) in named
        .into_iter()
        .chain(c.docs.as_ref().map(|d| ("docs", d)))
    {
        for path in &component.paths {
            names::check_rel_path(&format!("component {name} path"), path)
                .map_err(ContractError::Name)?;
        }
    }
    names::check_rel_path("postgres bindir", release::postgres_bindir(lock))
        .map_err(ContractError::Name)
}

/// The lock must name `expected` among the component's paths (or a directory above it).
fn located(what: &'static str, component: &Component, expected: &str) -> Result<(), ContractError> {
    if component.paths.iter().any(|p| within(expected, p)) {
        return Ok(());
    }
    Err(ContractError::Elsewhere {
        what,
        paths: component.paths.clone(),
        expected: expected.to_string(),
    })
}

/// True when `path` is `dir` or lies below it (both release-relative, checked).
fn within(path: &str, dir: &str) -> bool {
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Every locked provider, for this host's platform among others: its `index.json`, its
/// `VERSION.json` and one archive per locked platform, as regular files.
fn check_providers(dir: &Path, lock: &Lock, host: &str) -> Result<(), ContractError> {
    let mirror = Mirror::new(PROVIDERS_DIR);
    let bad_name = |field: &str, value: &str, reason: &'static str| {
        ContractError::Name(NameError {
            field: field.to_string(),
            value: value.to_string(),
            reason,
        })
    };
    for p in &lock.components.providers.providers {
        let addr: ProviderAddr = p
            .source
            .parse()
            .map_err(|_| bad_name("provider source", &p.source, "not HOST/NAMESPACE/TYPE"))?;
        let version: Version = p
            .version
            .parse()
            .map_err(|_| bad_name("provider version", &p.version, "not a version"))?;
        let what = format!("provider {} {}", p.source, p.version);
        if !p.platforms.iter().any(|pl| pl == host) {
            return Err(ContractError::Missing {
                what: format!("{what} for {host}"),
                path: mirror.provider_dir(&addr).display().to_string(),
            });
        }
        let provider_dir = mirror.provider_dir(&addr);
        let mut files = vec![
            provider_dir.join("index.json"),
            provider_dir.join(format!("{version}.json")),
        ];
        for platform in &p.platforms {
            let platform: Platform = platform
                .parse()
                .map_err(|_| bad_name("provider platform", platform, "not OS_ARCH"))?;
            files.push(mirror.archive_path(&addr, &version, &platform));
        }
        for file in files {
            let rel = file.to_string_lossy();
            let meta = inside(dir, &what, &rel)?;
            if !meta.is_file() {
                return Err(wrong(&what, &rel, "not a regular file"));
            }
        }
    }
    Ok(())
}

/// `rel` must be a regular, executable file inside the release.
fn executable(dir: &Path, what: &str, rel: &str) -> Result<(), ContractError> {
    let meta = inside(dir, what, rel)?;
    if !meta.is_file() {
        return Err(wrong(what, rel, "not a regular file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(wrong(what, rel, "not executable"));
    }
    Ok(())
}

/// Walks `rel` from `dir` one segment at a time without following links: every step must
/// exist, the ones above must be directories, none may be a symlink. Returns the metadata
/// of the last step.
fn inside(dir: &Path, what: &str, rel: &str) -> Result<Metadata, ContractError> {
    let mut at = dir.to_path_buf();
    let mut meta = None;
    for segment in rel.split('/') {
        if let Some(m) = &meta {
            if !Metadata::is_dir(m) {
                return Err(wrong(what, rel, "below something that is not a directory"));
            }
        }
        at.push(segment);
        let m = std::fs::symlink_metadata(&at).map_err(|_| ContractError::Missing {
            what: what.to_string(),
            path: rel.to_string(),
        })?;
        if m.file_type().is_symlink() {
            return Err(wrong(what, rel, "a symlink"));
        }
        meta = Some(m);
    }
    meta.ok_or_else(|| ContractError::Missing {
        what: what.to_string(),
        path: rel.to_string(),
    })
}

fn wrong(what: &str, rel: &str, problem: &'static str) -> ContractError {
    ContractError::Wrong {
        what: what.to_string(),
        path: rel.to_string(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_means_below_at_a_separator() {
        assert!(within("postgres/bin", "postgres"));
        assert!(within("bin/coder", "bin/coder"));
        assert!(!within("postgresql/bin", "postgres"));
        assert!(!within("bin", "bin/coder"));
    }

    #[test]
    fn inside_refuses_links_and_missing_steps() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("bin")).expect("mkdir");
        std::fs::write(dir.path().join("bin/tool"), b"x").expect("write");
        std::os::unix::fs::symlink("/etc", dir.path().join("etc")).expect("symlink");
        inside(dir.path(), "tool", "bin/tool").expect("present");
        assert!(matches!(
            inside(dir.path(), "x", "etc/passwd"),
            Err(ContractError::Wrong {
                problem: "a symlink",
                ..
            })
        ));
        assert!(matches!(
            inside(dir.path(), "x", "bin/tool/x"),
            Err(ContractError::Wrong { .. })
        ));
        assert!(matches!(
            inside(dir.path(), "x", "bin/none"),
            Err(ContractError::Missing { .. })
        ));
        assert!(matches!(
            executable(dir.path(), "tool", "bin/tool"),
            Err(ContractError::Wrong {
                problem: "not executable",
                ..
            })
        ));
    }
}
