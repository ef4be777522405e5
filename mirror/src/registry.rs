//! A client for the Provider Registry Protocol: service discovery, the versions endpoint and
//! the download endpoint. Relative URLs resolve against the response they came in.

use std::collections::HashMap;

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::fetch::{FetchError, Fetcher, Url};
use crate::layout::{Platform, ProviderAddr};
use crate::spec::{MirrorSpec, SpecError};
use crate::version::Version;

/// Errors talking to a provider registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A request failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The spec names a bad registry URL.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The host does not offer the provider registry service.
    #[error("{host}: {url} offers no \"providers.v1\" service; is this a Terraform registry? (set [registries] {host:?} to its discovery URL)")]
    NoProviderService {
        /// The registry host.
        host: String,
        /// The discovery URL.
        url: String,
    },
    /// A response served over https points at another scheme (e.g. plain http).
    #[error("{url}: refusing {value:?} in the response: it leaves https for {scheme}, which would let anyone on the path change what is fetched")]
    Downgrade {
        /// The response URL.
        url: String,
        /// The offending value.
        value: String,
        /// The scheme it names.
        scheme: String,
    },
    /// A URL in a response does not resolve.
    #[error("{url}: bad URL {value:?} in the response")]
    BadUrl {
        /// The response URL.
        url: String,
        /// The offending value.
        value: String,
    },
}

/// `GET …/versions`: one published version.
#[derive(Debug, Clone, Deserialize)]
pub struct VersionEntry {
    /// The version string.
    pub version: String,
    /// Plugin protocol versions.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// Platforms it is published for.
    #[serde(default)]
    pub platforms: Vec<PlatformEntry>,
}

/// A platform in the versions response.
#[derive(Debug, Clone, Deserialize)]
pub struct PlatformEntry {
    /// Operating system.
    pub os: String,
    /// Architecture.
    pub arch: String,
}

#[derive(Debug, Deserialize)]
struct VersionsResponse {
    versions: Vec<VersionEntry>,
}

/// `GET …/VERSION/download/OS/ARCH`: where the package is and how to check it.
#[derive(Debug, Clone, Deserialize)]
pub struct DownloadInfo {
    /// The zip's file name, as listed in SHA256SUMS.
    pub filename: String,
    /// The zip.
    pub download_url: String,
    /// The SHA256SUMS file.
    pub shasums_url: String,
    /// The detached OpenPGP signature over SHA256SUMS.
    pub shasums_signature_url: String,
    /// Hex sha256 of the zip.
    pub shasum: String,
    /// Keys that may have signed SHA256SUMS.
    #[serde(default)]
    pub signing_keys: SigningKeys,
}

/// The `signing_keys` object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SigningKeys {
    /// OpenPGP public keys.
    #[serde(default)]
    pub gpg_public_keys: Vec<GpgPublicKey>,
}

/// One offered OpenPGP key.
#[derive(Debug, Clone, Deserialize)]
pub struct GpgPublicKey {
    /// Key ID as the registry states it.
    #[serde(default)]
    pub key_id: String,
    /// The armored public key.
    pub ascii_armor: String,
}

/// A download endpoint response with its URLs resolved.
#[derive(Debug, Clone)]
pub struct Package {
    /// The response as sent.
    pub info: DownloadInfo,
    /// Resolved zip URL.
    pub download_url: Url,
    /// Resolved SHA256SUMS URL.
    pub shasums_url: Url,
    /// Resolved signature URL.
    pub signature_url: Url,
}

/// A registry client over a [`Fetcher`], caching service discovery per host.
#[derive(Debug)]
pub struct RegistryClient<'a> {
    fetcher: &'a Fetcher,
    spec: &'a MirrorSpec,
    bases: Mutex<HashMap<String, Url>>,
}

impl<'a> RegistryClient<'a> {
    /// A client that resolves hosts through `spec.registries`.
    pub fn new(fetcher: &'a Fetcher, spec: &'a MirrorSpec) -> Self {
        RegistryClient {
            fetcher,
            spec,
            bases: Mutex::new(HashMap::new()),
        }
    }

    /// The `providers.v1` base URL of a host (discovered once, then cached).
    pub async fn providers_base(&self, host: &str) -> Result<Url, RegistryError> {
        let mut bases = self.bases.lock().await;
        if let Some(base) = bases.get(host) {
            return Ok(base.clone());
        }
        let url = self.spec.discovery_url(host)?;
        let (doc, final_url) = self.fetcher.get_json::<serde_json::Value>(&url).await?;
        let no_service = || RegistryError::NoProviderService {
            host: host.to_string(),
            url: url.to_string(),
        };
        let value = doc
            .get("providers.v1")
            .and_then(|v| v.as_str())
            .ok_or_else(no_service)?;
        let mut base = resolve(&final_url, value)?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        bases.insert(host.to_string(), base.clone());
        Ok(base)
    }

    /// Every published version of a provider.
    pub async fn versions(
        &self,
        provider: &ProviderAddr,
    ) -> Result<Vec<VersionEntry>, RegistryError> {
        let base = self.providers_base(&provider.host).await?;
        let url = resolve(
            &base,
            &format!("{}/{}/versions", provider.namespace, provider.name),
        )?;
        let (resp, _) = self.fetcher.get_json::<VersionsResponse>(&url).await?;
        Ok(resp.versions)
    }

    /// Where one package is and how to verify it.
    pub async fn package(
        &self,
        provider: &ProviderAddr,
        version: &Version,
        platform: &Platform,
    ) -> Result<Package, RegistryError> {
        let base = self.providers_base(&provider.host).await?;
        let path = format!(
            "{}/{}/{}/download/{}/{}",
            provider.namespace, provider.name, version, platform.os, platform.arch
        );
        let url = resolve(&base, &path)?;
        let (info, final_url) = self.fetcher.get_json::<DownloadInfo>(&url).await?;
        Ok(Package {
            download_url: resolve(&final_url, &info.download_url)?,
            shasums_url: resolve(&final_url, &info.shasums_url)?,
            signature_url: resolve(&final_url, &info.shasums_signature_url)?,
            info,
        })
    }
}

/// Resolves `value` against the response URL `base`; an https response may only point at
/// https URLs.
fn resolve(base: &Url, value: &str) -> Result<Url, RegistryError> {
    let url = base.join(value).map_err(|_| RegistryError::BadUrl {
        url: base.to_string(),
        value: value.to_string(),
    })?;
    if base.scheme() == "https" && url.scheme() != "https" {
        return Err(RegistryError::Downgrade {
            url: base.to_string(),
            value: value.to_string(),
            scheme: url.scheme().to_string(),
        });
    }
    Ok(url)
}
