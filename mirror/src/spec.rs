//! The providers file: which providers to mirror, from which registries, with which keys.
//!
//! ```toml
//! [[providers]]
//! source = "coder/coder"            # HOST/NS/TYPE; NS/TYPE means registry.terraform.io
//! versions = "~> 2.2"               # Terraform constraint syntax
//! platforms = ["linux_amd64", "linux_arm64"]
//! # all_versions = true             # every matching version, not just the newest
//!
//! [registries]                      # hostname -> discovery URL (Artifactory, test registries)
//! "registry.terraform.io" = "https://artifactory.corp/api/terraform/.well-known/terraform.json"
//!
//! [trusted_keys]                    # namespace ("NS" or "HOST/NS") -> pinned fingerprints
//! coder = ["1234 5678 …"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::fetch::Url;
use crate::layout::{Platform, ProviderAddr};
use crate::openpgp::normalize_fingerprint;
use crate::version::Constraint;

/// A providers file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read providers file {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (printed in the message; not a `source`).
        cause: std::io::Error,
    },
    /// The file is not valid TOML for a providers spec.
    #[error("providers file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        message: String,
    },
    /// A registry discovery URL is not a valid http(s) URL.
    #[error("registries.{host:?}: {url:?} is not a valid http(s) URL")]
    BadRegistry {
        /// The hostname.
        host: String,
        /// The given URL.
        url: String,
    },
    /// A provider lists no platforms.
    #[error("provider {0}: list at least one platform (e.g. platforms = [\"linux_amd64\"])")]
    NoPlatforms(ProviderAddr),
}

/// What to mirror, and how to reach and trust the registries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSpec {
    /// The providers to mirror.
    #[serde(default)]
    pub providers: Vec<ProviderSpec>,
    /// Hostname → discovery URL (`https://…/.well-known/terraform.json`), overriding
    /// `https://HOST/.well-known/terraform.json`.
    #[serde(default)]
    pub registries: BTreeMap<String, String>,
    /// Namespace (`NS` or `HOST/NS`) → fingerprints of the keys allowed to sign its providers.
    #[serde(default)]
    pub trusted_keys: BTreeMap<String, Vec<String>>,
}

/// One provider to mirror.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Source address.
    pub source: ProviderAddr,
    /// Version constraint.
    pub versions: Constraint,
    /// Platforms to fetch.
    pub platforms: Vec<Platform>,
    /// Mirror every matching version instead of only the newest.
    #[serde(default)]
    pub all_versions: bool,
}

impl MirrorSpec {
    /// Reads and checks a providers file.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|cause| SpecError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and checks providers TOML (`origin` names it in errors).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, SpecError> {
        let spec: MirrorSpec = toml::from_str(text).map_err(|e| SpecError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> Result<(), SpecError> {
        for (host, url) in &self.registries {
            let ok = Url::parse(url).is_ok_and(|u| u.scheme() == "https" || u.scheme() == "http");
            if !ok {
                return Err(SpecError::BadRegistry {
                    host: host.clone(),
                    url: url.clone(),
                });
            }
        }
        for p in &self.providers {
            if p.platforms.is_empty() {
                return Err(SpecError::NoPlatforms(p.source.clone()));
            }
        }
        Ok(())
    }

    /// The discovery URL for a registry host.
    pub fn discovery_url(&self, host: &str) -> Result<Url, SpecError> {
        let text = match self.registries.get(host) {
            Some(url) => url.clone(),
            None => format!("https://{host}/.well-known/terraform.json"),
        };
        Url::parse(&text).map_err(|_| SpecError::BadRegistry {
            host: host.to_string(),
            url: text,
        })
    }

    /// Pinned fingerprints (normalised) for a provider's namespace, if the spec pins any.
    pub fn pinned_keys(&self, provider: &ProviderAddr) -> Option<Vec<String>> {
        let full = format!("{}/{}", provider.host, provider.namespace);
        let keys = self
            .trusted_keys
            .get(&full)
            .or_else(|| self.trusted_keys.get(&provider.namespace))?;
        Some(keys.iter().map(|k| normalize_fingerprint(k)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let text = r#"
            [[providers]]
            source = "coder/coder"
            versions = "~> 2.2"
            platforms = ["linux_amd64", "linux_arm64"]

            [registries]
            "registry.example.test" = "https://127.0.0.1:9/.well-known/terraform.json"

            [trusted_keys]
            coder = ["aaaa bbbb"]
        "#;
        let spec = MirrorSpec::from_toml(text, Path::new("p.toml")).expect("parse");
        let p = &spec.providers[0];
        assert_eq!(p.source.to_string(), "registry.terraform.io/coder/coder");
        assert_eq!(p.platforms.len(), 2);
        assert_eq!(
            spec.pinned_keys(&p.source),
            Some(vec!["AAAABBBB".to_string()])
        );
        let url = spec.discovery_url("registry.example.test").expect("url");
        assert_eq!(url.port(), Some(9));
        assert_eq!(
            spec.discovery_url("x.test").expect("url").as_str(),
            "https://x.test/.well-known/terraform.json"
        );
    }

    #[test]
    fn rejects_typos_and_bad_values() {
        let typo =
            "[[providers]]\nsource = \"a/b\"\nversion = \"1.0.0\"\nplatforms = [\"linux_amd64\"]\n";
        assert!(MirrorSpec::from_toml(typo, Path::new("p")).is_err());
        let bad_platform =
            "[[providers]]\nsource = \"a/b\"\nversions = \"1.0.0\"\nplatforms = [\"linux\"]\n";
        assert!(MirrorSpec::from_toml(bad_platform, Path::new("p")).is_err());
        let no_platforms =
            "[[providers]]\nsource = \"a/b\"\nversions = \"1.0.0\"\nplatforms = []\n";
        assert!(MirrorSpec::from_toml(no_platforms, Path::new("p")).is_err());
    }
}
