//! A stand-in Terraform provider registry (Provider Registry Protocol) with generated
//! provider zips and SHA256SUMS signed by a test OpenPGP key, plus fault knobs: a bad
//! signature, a wrong checksum, a tampered zip, a key the registry does not offer, zips
//! with directory entries, hostile zips ([`HostileZip`]); and, through [`Site`], latency,
//! bodies cut off mid-way and other hostile behaviours.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::pgpkey::{PgpError, TestKey};
use crate::server::{RunningServer, Site};

/// Errors building the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Key generation or signing failed.
    #[error(transparent)]
    Pgp(#[from] PgpError),
    /// Building a zip or starting the server failed.
    #[error("test registry: {0}")]
    Io(#[from] std::io::Error),
}

/// What can be wrong with a provider's packages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// SHA256SUMS.sig does not verify (it signs other bytes).
    pub bad_signature: bool,
    /// SHA256SUMS lists a different sha256 than the download endpoint's `shasum`.
    pub wrong_checksum: bool,
    /// The served zip differs from the one SHA256SUMS and `shasum` describe.
    pub tampered_zip: bool,
    /// SHA256SUMS is signed by a key the registry does not offer.
    pub unknown_key: bool,
    /// Zips contain a directory entry.
    pub directory_entries: bool,
    /// The zip (correctly signed and listed) is hostile in this way.
    pub hostile_zip: Option<HostileZip>,
}

/// Ways a provider zip can be hostile even when its checksums are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostileZip {
    /// An entry named `../x`.
    ParentDir,
    /// An entry named `/tmp/x`.
    Absolute,
    /// A symlink entry (zip external attributes) pointing at `/etc/passwd`.
    Symlink,
    /// No `terraform-provider-NAME` executable at all.
    NoExecutable,
    /// An entry of 32 MiB of zeros that deflates to a few KiB.
    Bomb,
}

/// A provider the registry publishes.
#[derive(Debug, Clone)]
pub struct ProviderFixture {
    /// Namespace.
    pub namespace: String,
    /// Type.
    pub name: String,
    /// Published versions.
    pub versions: Vec<String>,
    /// Published platforms (`linux_amd64`).
    pub platforms: Vec<String>,
    /// Incompressible bytes added to each zip (to make large archives).
    pub padding: usize,
    /// What is wrong with it.
    pub faults: Faults,
}

impl ProviderFixture {
    /// A healthy provider with the given versions and platforms.
    pub fn new(namespace: &str, name: &str, versions: &[&str], platforms: &[&str]) -> Self {
        ProviderFixture {
            namespace: namespace.to_string(),
            name: name.to_string(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
            platforms: platforms.iter().map(|p| p.to_string()).collect(),
            padding: 0,
            faults: Faults::default(),
        }
    }
}

/// One published package.
#[derive(Debug, Clone)]
pub struct Package {
    /// Namespace.
    pub namespace: String,
    /// Type.
    pub name: String,
    /// Version.
    pub version: String,
    /// Platform.
    pub platform: String,
    /// Zip file name.
    pub filename: String,
    /// The genuine zip.
    pub zip: Bytes,
    /// Hex sha256 of the genuine zip.
    pub sha256: String,
}

/// A running stand-in registry.
#[derive(Debug)]
pub struct Registry {
    /// The server (its `site` has the latency and cut-off knobs and the request log).
    pub server: RunningServer,
    /// The key that signs SHA256SUMS and that the registry offers.
    pub key: &'static TestKey,
    /// Every package published.
    pub packages: Vec<Package>,
}

impl Registry {
    /// Starts a registry for `providers` on 127.0.0.1, over TLS if `tls` is given.
    pub fn start(
        providers: &[ProviderFixture],
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Self, RegistryError> {
        let site = Site::new();
        let packages = publish(&site, providers)?;
        let server = RunningServer::start(site, tls)?;
        Ok(Registry {
            server,
            key: signing_key(),
            packages,
        })
    }

    /// The discovery URL (`…/.well-known/terraform.json`).
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/terraform.json", self.server.base_url())
    }

    /// The content and knobs.
    pub fn site(&self) -> &Arc<Site> {
        &self.server.site
    }

    /// The package for one version and platform.
    pub fn package(&self, name: &str, version: &str, platform: &str) -> Option<&Package> {
        self.packages
            .iter()
            .find(|p| p.name == name && p.version == version && p.platform == platform)
    }
}

/// The registry's signing key (RSA 2048), generated once per process.
pub fn signing_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| generate("Test Registry <registry@example.test>"))
}

/// A second key that the registry never offers (for the unknown-key fault).
pub fn stranger_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| generate("Stranger <stranger@example.test>"))
}

#[allow(clippy::panic)]
fn generate(uid: &str) -> TestKey {
    TestKey::generate_rsa(uid, 2048).unwrap_or_else(|e| panic!("cannot generate test key: {e}"))
}

/// Puts the discovery document and every provider's endpoints and files on `site`.
pub fn publish(site: &Site, providers: &[ProviderFixture]) -> Result<Vec<Package>, RegistryError> {
    site.insert(
        "/.well-known/terraform.json",
        json!({"providers.v1": "/v1/providers/"}).to_string(),
        "application/json",
    );
    let mut all = Vec::new();
    for provider in providers {
        all.extend(publish_provider(site, provider)?);
    }
    Ok(all)
}

fn publish_provider(site: &Site, p: &ProviderFixture) -> Result<Vec<Package>, RegistryError> {
    let platforms: Vec<_> = p
        .platforms
        .iter()
        .filter_map(|pl| pl.split_once('_'))
        .map(|(os, arch)| json!({"os": os, "arch": arch}))
        .collect();
    let versions: Vec<_> = p
        .versions
        .iter()
        .map(|v| json!({"version": v, "protocols": ["5.0"], "platforms": platforms}))
        .collect();
    let base = format!("/v1/providers/{}/{}", p.namespace, p.name);
    site.insert(
        &format!("{base}/versions"),
        json!({"id": format!("{}/{}", p.namespace, p.name), "versions": versions}).to_string(),
        "application/json",
    );
    let mut packages = Vec::new();
    for version in &p.versions {
        packages.extend(publish_version(site, p, version)?);
    }
    Ok(packages)
}

fn publish_version(
    site: &Site,
    p: &ProviderFixture,
    version: &str,
) -> Result<Vec<Package>, RegistryError> {
    let files = format!("/files/{}/{}/{}", p.namespace, p.name, version);
    let mut packages = Vec::new();
    let mut sums = String::new();
    for platform in &p.platforms {
        let filename = format!("terraform-provider-{}_{}_{}.zip", p.name, version, platform);
        let zip = Bytes::from(match p.faults.hostile_zip {
            Some(how) => hostile_zip(&p.name, version, how)?,
            None => provider_zip(
                &p.name,
                version,
                platform,
                p.padding,
                p.faults.directory_entries,
            )?,
        });
        let sha256 = hex::encode(Sha256::digest(&zip));
        let listed = if p.faults.wrong_checksum {
            hex::encode(Sha256::digest(b"something else"))
        } else {
            sha256.clone()
        };
        sums.push_str(&format!("{listed}  {filename}\n"));
        let served = if p.faults.tampered_zip {
            tamper(&zip)
        } else {
            zip.clone()
        };
        site.insert(&format!("{files}/{filename}"), served, "application/zip");
        packages.push(Package {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            version: version.to_string(),
            platform: platform.clone(),
            filename,
            zip,
            sha256,
        });
    }
    let sums_name = format!("terraform-provider-{}_{}_SHA256SUMS", p.name, version);
    let signer = if p.faults.unknown_key {
        stranger_key()
    } else {
        signing_key()
    };
    let signed = if p.faults.bad_signature {
        format!("{sums}# altered\n")
    } else {
        sums.clone()
    };
    site.insert(&format!("{files}/{sums_name}"), sums.clone(), "text/plain");
    site.insert(
        &format!("{files}/{sums_name}.sig"),
        signer.sign_detached(signed.as_bytes())?,
        "application/octet-stream",
    );
    for pkg in &packages {
        site.insert(
            &download_path(p, version, &pkg.platform),
            download_json(p, pkg, &files, &sums_name).to_string(),
            "application/json",
        );
    }
    Ok(packages)
}

fn download_path(p: &ProviderFixture, version: &str, platform: &str) -> String {
    let (os, arch) = platform.split_once('_').unwrap_or((platform, ""));
    format!(
        "/v1/providers/{}/{}/{}/download/{}/{}",
        p.namespace, p.name, version, os, arch
    )
}

fn download_json(
    p: &ProviderFixture,
    pkg: &Package,
    files: &str,
    sums_name: &str,
) -> serde_json::Value {
    let key = signing_key();
    let (os, arch) = pkg.platform.split_once('_').unwrap_or((&pkg.platform, ""));
    json!({
        "protocols": ["5.0"],
        "os": os,
        "arch": arch,
        "filename": pkg.filename,
        // Relative URLs: clients must resolve them against this response's URL.
        "download_url": format!("{files}/{}", pkg.filename),
        "shasums_url": format!("{files}/{sums_name}"),
        "shasums_signature_url": format!("{files}/{sums_name}.sig"),
        "shasum": pkg.sha256,
        "signing_keys": {"gpg_public_keys": [{
            "key_id": key.key_id,
            "ascii_armor": key.public_armored,
            "trust_signature": "",
            "source": p.namespace,
            "source_url": null,
        }]},
    })
}

fn tamper(zip: &Bytes) -> Bytes {
    let mut bytes = zip.to_vec();
    if let Some(last) = bytes.last_mut() {
        *last ^= 0xff;
    }
    Bytes::from(bytes)
}

/// A provider zip: an executable shell script `terraform-provider-NAME_vVERSION` (Terraform's
/// `init` never runs it), `padding` incompressible bytes in `padding.bin` if non-zero, and a
/// directory entry if `with_dir` is set.
pub fn provider_zip(
    name: &str,
    version: &str,
    platform: &str,
    padding: usize,
    with_dir: bool,
) -> std::io::Result<Vec<u8>> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let exe = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    if with_dir {
        out.add_directory("docs/", zip::write::SimpleFileOptions::default())
            .map_err(std::io::Error::other)?;
    }
    out.start_file(format!("terraform-provider-{name}_v{version}"), exe)
        .map_err(std::io::Error::other)?;
    write!(out, "#!/bin/sh\n# stand-in provider {name} {version} {platform}\necho 'not a real provider' >&2\nexit 1\n")?;
    if padding > 0 {
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        out.start_file("padding.bin", stored)
            .map_err(std::io::Error::other)?;
        out.write_all(&noise(padding, name.len() as u64 ^ version.len() as u64))?;
    }
    Ok(out.finish().map_err(std::io::Error::other)?.into_inner())
}

/// A provider zip that is hostile as `how` says (with the executable unless `how` is
/// [`HostileZip::NoExecutable`]).
pub fn hostile_zip(name: &str, version: &str, how: HostileZip) -> std::io::Result<Vec<u8>> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    if how != HostileZip::NoExecutable {
        out.start_file(format!("terraform-provider-{name}_v{version}"), opts)
            .map_err(std::io::Error::other)?;
        out.write_all(b"#!/bin/sh\nexit 1\n")?;
    }
    match how {
        HostileZip::ParentDir => {
            out.start_file("../x", opts)
                .map_err(std::io::Error::other)?;
            out.write_all(b"escaped\n")?;
        }
        HostileZip::Absolute => {
            out.start_file("/tmp/x", opts)
                .map_err(std::io::Error::other)?;
            out.write_all(b"escaped\n")?;
        }
        HostileZip::Symlink => {
            out.add_symlink("passwd", "/etc/passwd", opts)
                .map_err(std::io::Error::other)?;
        }
        HostileZip::NoExecutable => {
            out.start_file("README.md", opts)
                .map_err(std::io::Error::other)?;
            out.write_all(b"# not a provider\n")?;
        }
        HostileZip::Bomb => {
            out.start_file("zeros.bin", opts)
                .map_err(std::io::Error::other)?;
            let block = vec![0u8; 1024 * 1024];
            for _ in 0..32 {
                out.write_all(&block)?;
            }
        }
    }
    Ok(out.finish().map_err(std::io::Error::other)?.into_inner())
}

/// Deterministic incompressible bytes (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
