//! `STAGE/appliance.lock.json`: what `sync` staged, exactly (versions, artifacts and their
//! sha256). `pack` copies `components.*.{version,paths}` into the signed manifest; `install`
//! reads `postgres.bindir`; `sync --locked` re-fetches exactly what it names.
//!
//! This layout is a contract with pack and install: add fields, never rename them. The
//! crate knows only serde: sync, pack and install each read it through these types.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lock file's name in the stage.
pub const LOCK_FILE: &str = "appliance.lock.json";

/// A lock file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StageError {
    /// The lock file.
    pub path: PathBuf,
    /// What is wrong and what to do.
    pub message: String,
}

/// The lock file format this build writes and reads.
pub const FORMAT: u32 = 1;

/// The whole lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Always [`FORMAT`].
    pub format: u32,
    /// Bundle identity from the spec (pack's defaults).
    pub bundle: BundleInfo,
    /// Every staged component.
    pub components: Components,
}

/// Bundle identity, copied from the spec's `[bundle]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleInfo {
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// Sequence number (None: pack uses the creation time).
    pub sequence: Option<u64>,
    /// Days until expiry.
    pub expires_in_days: u32,
    /// The appliance host's platform (`linux_amd64`).
    pub platform: String,
}

/// The components, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Components {
    /// `bin/coder`.
    pub coderd: Component,
    /// `bin/terraform`.
    pub terraform: Component,
    /// `postgres/` (see [`Component::bindir`]).
    pub postgres: Component,
    /// `providers/`, a network-mirror tree.
    pub providers: Component,
    /// `docs/`, Coder's offline docs, when the spec asks for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<Component>,
}

/// One component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Its version (for providers, a digest of the provider list).
    pub version: String,
    /// Stage-relative paths it occupies.
    pub paths: Vec<String>,
    /// Postgres only: stage-relative directory holding pg_ctl, postgres, initdb, pg_dump, psql.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindir: Option<String>,
    /// coderd only: the Terraform versions it accepts, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terraform_range: Option<VersionRange>,
    /// Providers only: each provider version staged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<LockedProvider>,
    /// The files it was made from.
    pub artifacts: Vec<Artifact>,
}

/// An inclusive version range of [`airgap_version::Version`]s, stored as
/// `{"min": "1.1.0", "max": "1.14.9"}` (the same strings as ever).
pub use airgap_version::VersionRange;

/// One provider version in the stage's mirror.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockedProvider {
    /// `HOST/NS/TYPE`.
    pub source: String,
    /// Exact version.
    pub version: String,
    /// Platforms staged.
    pub platforms: Vec<String>,
    /// Every `h1:`/`zh:` hash of its archives.
    pub hashes: Vec<String>,
}

/// A file a component was made from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Artifact {
    /// File name (or stage-relative path for provider zips).
    pub file: String,
    /// Where it came from (`https://…`, `file:///…`).
    pub url: String,
    /// Hex sha256 of the file (of the file list, for a local tree).
    pub sha256: String,
}

impl Component {
    /// A component with only the common fields set.
    pub fn new(version: impl Into<String>, path: &str, artifacts: Vec<Artifact>) -> Self {
        Component {
            version: version.into(),
            paths: vec![path.to_string()],
            bindir: None,
            terraform_range: None,
            providers: Vec::new(),
            artifacts,
        }
    }

    /// The recorded sha256 of the artifact named `file`.
    pub fn artifact_sha(&self, file: &str) -> Option<&str> {
        self.artifacts
            .iter()
            .find(|a| a.file == file)
            .map(|a| a.sha256.as_str())
    }
}

impl Lock {
    /// The lock file's path in `stage`.
    pub fn path(stage: &Path) -> PathBuf {
        stage.join(LOCK_FILE)
    }

    /// Reads and checks `stage/appliance.lock.json` (install calls this).
    pub fn read(stage: &Path) -> Result<Lock, StageError> {
        Self::read_file(&Self::path(stage))
    }

    /// Reads and checks a lock file at `path` (the stage's, or the one beside the spec).
    pub fn read_file(path: &Path) -> Result<Lock, StageError> {
        let path = path.to_path_buf();
        let bytes = std::fs::read(&path).map_err(|e| StageError {
            path: path.clone(),
            message: format!("{e} (run `coder-airgap sync` without --locked to make one)"),
        })?;
        let lock: Lock = serde_json::from_slice(&bytes).map_err(|e| StageError {
            path: path.clone(),
            message: format!("not a valid lock file: {e}"),
        })?;
        if lock.format != FORMAT {
            return Err(StageError {
                path,
                message: format!(
                    "format {} is not {FORMAT}: use the coder-airgap that wrote it",
                    lock.format
                ),
            });
        }
        Ok(lock)
    }

    /// Writes the lock into `stage` atomically (pretty JSON, fixed field order).
    pub fn write(&self, stage: &Path) -> Result<(), StageError> {
        self.write_file(&Self::path(stage))
    }

    /// Writes the lock to `path` atomically (a temporary file beside it, then rename).
    pub fn write_file(&self, path: &Path) -> Result<(), StageError> {
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| StageError {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        text.push(b'\n');
        airgap_fsutil::atomic_write(path, &text).map_err(|e| StageError {
            path: path.to_path_buf(),
            message: match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            },
        })
    }
}

/// What `pack` takes from a stage's lock: the bundle defaults and each component's version
/// and stage paths. Lenient on purpose: every bundle field is optional and components keep
/// only what the manifest records, so a lock written by hand (or by an older sync) packs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PackView {
    /// Defaults for the bundle's identity (flags on the command line win).
    #[serde(default)]
    pub bundle: BundleDefaults,
    /// Each component by name (`coderd`, `terraform`, …).
    #[serde(default)]
    pub components: std::collections::BTreeMap<String, ComponentPaths>,
}

/// The `bundle` section as pack reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BundleDefaults {
    /// Bundle name.
    pub name: Option<String>,
    /// Bundle version.
    pub version: Option<String>,
    /// Sequence number.
    pub sequence: Option<u64>,
    /// Days until expiry (1..=3650).
    pub expires_in_days: Option<u32>,
    /// The appliance host's platform.
    pub platform: Option<String>,
}

/// A component as the signed manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ComponentPaths {
    /// Its version.
    pub version: String,
    /// Stage-relative paths it occupies.
    #[serde(default)]
    pub paths: Vec<String>,
}

impl PackView {
    /// Reads pack's view of `stage/appliance.lock.json`; a stage without one is refused
    /// with the command that makes one.
    pub fn read(stage: &Path) -> Result<PackView, StageError> {
        let path = Lock::path(stage);
        let bytes = std::fs::read(&path).map_err(|e| StageError {
            path: path.clone(),
            message: format!(
                "{e}: {} is not a stage (make one with `coder-airgap sync --spec bundle/appliance.toml --out {}`)",
                stage.display(),
                stage.display()
            ),
        })?;
        let view: PackView = serde_json::from_slice(&bytes).map_err(|e| StageError {
            path: path.clone(),
            message: format!("not a valid lock file ({e}): re-run sync"),
        })?;
        if view
            .bundle
            .expires_in_days
            .is_some_and(|d| !(1..=3650).contains(&d))
        {
            return Err(StageError {
                path,
                message: "bundle.expires_in_days must be 1..=3650".into(),
            });
        }
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        let art = |f: &str| Artifact {
            file: f.into(),
            url: format!("https://example.test/{f}"),
            sha256: "ab".repeat(32),
        };
        let mut postgres = Component::new("15.18.0", "postgres", vec![art("pg.tar.gz")]);
        postgres.bindir = Some("postgres/bin".into());
        Lock {
            format: FORMAT,
            bundle: BundleInfo {
                name: "coder-appliance".into(),
                version: "1".into(),
                sequence: None,
                expires_in_days: 90,
                platform: "linux_amd64".into(),
            },
            components: Components {
                coderd: Component::new("2.35.3", "bin/coder", vec![art("c.tar.gz")]),
                terraform: Component::new("1.15.5", "bin/terraform", vec![art("t.zip")]),
                postgres,
                providers: Component::new("p0", "providers", vec![]),
                docs: None,
            },
        }
    }

    #[test]
    fn round_trips_and_keeps_the_contract_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = sample();
        lock.write(dir.path()).expect("write");
        assert_eq!(Lock::read(dir.path()).expect("read"), lock);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(Lock::path(dir.path())).expect("read"))
                .expect("json");
        assert_eq!(json["components"]["postgres"]["bindir"], "postgres/bin");
        assert_eq!(json["bundle"]["sequence"], serde_json::Value::Null);
        assert!(json["components"].get("docs").is_none());
        assert_eq!(
            lock.components.coderd.artifact_sha("c.tar.gz"),
            Some("ab".repeat(32).as_str())
        );
    }

    #[test]
    fn pack_reads_a_partial_lock_and_refuses_a_missing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = PackView::read(dir.path()).expect_err("no lock");
        assert!(err.message.contains("is not a stage"), "{err}");
        std::fs::write(
            Lock::path(dir.path()),
            br#"{"components":{"coderd":{"version":"2.24.1","paths":["bin/coder"],"source":"x"}}}"#,
        )
        .expect("write");
        let view = PackView::read(dir.path()).expect("partial lock");
        assert_eq!(
            view.components["coderd"].paths,
            vec!["bin/coder".to_string()]
        );
        assert_eq!(view.bundle, BundleDefaults::default());
        sample().write(dir.path()).expect("write");
        let view = PackView::read(dir.path()).expect("full lock");
        assert_eq!(view.bundle.expires_in_days, Some(90));
        assert_eq!(view.components["postgres"].version, "15.18.0");
    }

    #[test]
    fn the_terraform_range_is_stored_as_two_version_strings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lock = sample();
        lock.components.coderd.terraform_range = Some(VersionRange {
            min: "1.1.0".parse().expect("min"),
            max: "1.14.9".parse().expect("max"),
        });
        lock.write(dir.path()).expect("write");
        let text = std::fs::read_to_string(Lock::path(dir.path())).expect("read");
        let stored = "\"terraform_range\": {\n        \"min\": \"1.1.0\",\n        \"max\": \"1.14.9\"\n      }";
        assert!(text.contains(stored), "{text}");
        assert_eq!(Lock::read(dir.path()).expect("read back"), lock);
        std::fs::write(
            Lock::path(dir.path()),
            text.replace("\"1.14.9\"", "\"1.x\""),
        )
        .expect("corrupt");
        let err = Lock::read(dir.path()).expect_err("not a version");
        assert!(err.message.contains("not a valid lock file"), "{err}");
    }

    #[test]
    fn refuses_other_formats_and_missing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Lock::read(dir.path()).is_err());
        let mut lock = sample();
        lock.format = 2;
        lock.write(dir.path()).expect("write");
        let err = Lock::read(dir.path()).expect_err("format 2");
        assert!(err.to_string().contains("format 2"), "{err}");
    }
}
