//! Providers: synced into `STAGE/providers` by the mirror crate (verified exactly as
//! Terraform verifies them), or `--providers-from DIR`, a whole network-mirror tree taken
//! as it is after re-hashing every archive.

use std::path::{Path, PathBuf};

use airgap_mirror::fetch::Fetcher;
use airgap_mirror::spec::MirrorSpec;
use airgap_mirror::{Constraint, Mirror, ProviderAddr, Version};
use sha2::{Digest, Sha256};

use super::error::SyncError;
use super::fetch::Prepared;
use super::stagefs::{self, Move};
use airgap_stage::{Artifact, Component, Lock, LockedProvider};

const NAME: &str = "providers";

/// Syncs the spec's providers into `stage/providers` (in place: the mirror only ever gains
/// verified archives), or prepares a copy of `from`.
pub async fn prepare(
    fetcher: &Fetcher,
    spec: &MirrorSpec,
    stage: &Path,
    tmp: &Path,
    from: Option<&Path>,
    locked: Option<&Lock>,
) -> Result<Prepared, SyncError> {
    let locked = locked.map(|l| &l.components.providers);
    if let Some(dir) = from {
        return local(dir, tmp, locked);
    }
    let spec = match locked {
        Some(c) => exact_spec(spec, c)?,
        None => spec.clone(),
    };
    let mirror = Mirror::new(stage.join("providers"));
    std::fs::create_dir_all(mirror.root()).map_err(super::error::io_at(mirror.root()))?;
    let report = airgap_mirror::sync::sync(&spec, &mirror, fetcher)
        .await
        .map_err(|e| SyncError::Providers(Box::new(e)))?;
    let listed = list(&mirror, Some(&spec))?;
    let component = component(&mirror, listed)?;
    check_locked(locked, &component)?;
    Ok(Prepared {
        component,
        moves: Vec::new(),
        warnings: report.warnings,
    })
}

/// The spec with every provider pinned to the exact versions and platforms of the lock.
fn exact_spec(spec: &MirrorSpec, locked: &Component) -> Result<MirrorSpec, SyncError> {
    let mut exact = spec.clone();
    exact.providers = Vec::new();
    for p in &locked.providers {
        let text = format!(
            "[[providers]]\nsource = {:?}\nversions = {:?}\nplatforms = {:?}\n",
            p.source,
            format!("= {}", p.version),
            p.platforms
        );
        let one =
            MirrorSpec::from_toml(&text, Path::new(airgap_stage::LOCK_FILE)).map_err(|e| {
                SyncError::Drift {
                    component: NAME.into(),
                    detail: format!(
                        "lock entry {} {} cannot be re-fetched: {e}",
                        p.source, p.version
                    ),
                }
            })?;
        exact.providers.extend(one.providers);
    }
    Ok(exact)
}

fn check_locked(locked: Option<&Component>, now: &Component) -> Result<(), SyncError> {
    let Some(locked) = locked else {
        return Ok(());
    };
    if locked.providers == now.providers {
        return Ok(());
    }
    let detail = now
        .providers
        .iter()
        .find(|p| !locked.providers.contains(p))
        .map(|p| format!("{} {} now has hashes {:?}", p.source, p.version, p.hashes))
        .unwrap_or_else(|| "the provider list differs from the lock file".into());
    Err(SyncError::Drift {
        component: NAME.into(),
        detail,
    })
}

/// `--providers-from DIR`: re-hash the tree, then stage a copy of it.
fn local(dir: &Path, tmp: &Path, locked: Option<&Component>) -> Result<Prepared, SyncError> {
    let bad = |message: String| SyncError::ProvidersFrom {
        path: dir.to_path_buf(),
        message,
    };
    let source = Mirror::new(dir);
    let report = airgap_mirror::maintain::verify(&source).map_err(|e| bad(e.to_string()))?;
    if !report.problems.is_empty() {
        return Err(bad(format!(
            "archives do not match the tree's JSON: {}",
            report.problems.join("; ")
        )));
    }
    if report.providers == 0 {
        return Err(bad(
            "holds no providers (expected HOST/NS/TYPE/index.json)".into()
        ));
    }
    let staged = tmp.join("providers");
    stagefs::copy_tree(dir, &staged)?;
    let _ = std::fs::remove_dir_all(airgap_mirror::sync::staging_dir(&staged));
    let mirror = Mirror::new(&staged);
    let component = component(&mirror, list(&mirror, None)?)?;
    check_locked(locked, &component)?;
    Ok(Prepared {
        component,
        moves: vec![Move {
            from: staged,
            to: "providers".into(),
        }],
        warnings: report.warnings,
    })
}

/// A provider to record, and which of its versions and platforms.
struct Wanted {
    addr: ProviderAddr,
    /// None: every version in the tree.
    constraint: Option<Constraint>,
    /// Empty: every platform in the tree.
    platforms: Vec<String>,
    all_versions: bool,
}

/// One provider version to record.
struct Listed {
    addr: ProviderAddr,
    version: Version,
    platforms: Vec<String>,
}

fn layout_err(mirror: &Mirror) -> impl Fn(airgap_mirror::layout::LayoutError) -> SyncError + '_ {
    move |e| SyncError::ProvidersFrom {
        path: mirror.root().to_path_buf(),
        message: e.to_string(),
    }
}

/// With a spec, its providers (constraint, platforms); without, everything in the tree.
fn wanted(mirror: &Mirror, spec: Option<&MirrorSpec>) -> Result<Vec<Wanted>, SyncError> {
    let Some(spec) = spec else {
        let all = mirror.providers().map_err(layout_err(mirror))?;
        return Ok(all
            .into_iter()
            .map(|addr| Wanted {
                addr,
                constraint: None,
                platforms: Vec::new(),
                all_versions: true,
            })
            .collect());
    };
    Ok(spec
        .providers
        .iter()
        .map(|p| Wanted {
            addr: p.source.clone(),
            constraint: Some(p.versions.clone()),
            platforms: p.platforms.iter().map(ToString::to_string).collect(),
            all_versions: p.all_versions,
        })
        .collect())
}

/// Provider versions to record: the newest matching version of each wanted provider
/// (every match with `all_versions`).
fn list(mirror: &Mirror, spec: Option<&MirrorSpec>) -> Result<Vec<Listed>, SyncError> {
    let mut out = Vec::new();
    for w in wanted(mirror, spec)? {
        let index = mirror.read_index(&w.addr).map_err(layout_err(mirror))?;
        let mut versions: Vec<Version> = index
            .versions
            .keys()
            .filter_map(|v| v.parse().ok())
            .filter(|v| w.constraint.as_ref().is_none_or(|c| c.matches(v)))
            .collect();
        versions.sort();
        if !w.all_versions {
            versions = versions.pop().into_iter().collect();
        }
        out.extend(versions.into_iter().map(|version| Listed {
            addr: w.addr.clone(),
            version,
            platforms: w.platforms.clone(),
        }));
    }
    out.sort_by(|a, b| (a.addr.to_string(), &a.version).cmp(&(b.addr.to_string(), &b.version)));
    out.dedup_by(|a, b| a.addr == b.addr && a.version == b.version);
    Ok(out)
}

fn component(mirror: &Mirror, listed: Vec<Listed>) -> Result<Component, SyncError> {
    let mut providers = Vec::new();
    let mut artifacts = Vec::new();
    for Listed {
        addr,
        version,
        platforms,
    } in listed
    {
        let json = mirror
            .read_version(&addr, &version)
            .map_err(layout_err(mirror))?;
        let mut staged_platforms = Vec::new();
        let mut hashes = Vec::new();
        for (platform, entry) in &json.archives {
            if !platforms.is_empty() && !platforms.contains(platform) {
                continue;
            }
            staged_platforms.push(platform.clone());
            hashes.extend(entry.hashes.iter().cloned());
            artifacts.push(zip_artifact(
                &addr,
                &version,
                platform,
                &entry.url,
                &entry.hashes,
            ));
        }
        hashes.sort();
        hashes.dedup();
        providers.push(LockedProvider {
            source: addr.to_string(),
            version: version.to_string(),
            platforms: staged_platforms,
            hashes,
        });
    }
    let version = digest(&providers);
    let mut component = Component::new(version, "providers", artifacts);
    component.providers = providers;
    Ok(component)
}

fn zip_artifact(
    addr: &ProviderAddr,
    version: &Version,
    platform: &str,
    url: &str,
    hashes: &[String],
) -> Artifact {
    let rel: PathBuf = PathBuf::from("providers").join(addr.rel_dir()).join(url);
    Artifact {
        file: rel.display().to_string(),
        url: format!("registry+https://{addr}/{version}/{platform}"),
        sha256: hashes
            .iter()
            .find_map(|h| h.strip_prefix("zh:"))
            .unwrap_or_default()
            .to_string(),
    }
}

/// `N-<first 12 hex of sha256 over the provider list>`: changes whenever any provider does.
fn digest(providers: &[LockedProvider]) -> String {
    let mut h = Sha256::new();
    for p in providers {
        h.update(format!(
            "{} {} {} {}\n",
            p.source,
            p.version,
            p.platforms.join(","),
            p.hashes.join(",")
        ));
    }
    let hex = hex::encode(h.finalize());
    format!("{}-{}", providers.len(), &hex[..12])
}
