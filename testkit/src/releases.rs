//! Stand-in release sites (HashiCorp releases, Coder GitHub releases, Postgres archives),
//! laid out exactly as the real ones so `coder-airgap sync` can be pointed at them:
//!
//! - HashiCorp: `/terraform/V/terraform_V_OS_ARCH.zip`, `terraform_V_SHA256SUMS`,
//!   `terraform_V_SHA256SUMS.72D7468F.sig` (and the legacy `.sig`).
//! - Coder: `/vV/coder_V_linux_ARCH.tar.gz`, `coder_V_checksums.txt`, its `.asc`,
//!   `coder_docs_V.tgz`.
//! - Postgres (theseus-rs/postgresql-binaries, as postgresql_embedded downloads them):
//!   `/V/postgresql-V-TRIPLE.tar.gz` and its `.sha256`.
//!
//! The programs inside are small shell scripts that answer `version` the way the real
//! ones do. Checksums are signed with [`release_key`].

use std::io::Write;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use crate::pgpkey::{PgpError, TestKey};
use crate::server::{RunningServer, Site};

/// Errors building a release site.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// Signing failed.
    #[error(transparent)]
    Pgp(#[from] PgpError),
    /// Building an archive or starting a server failed.
    #[error("test release site: {0}")]
    Io(#[from] std::io::Error),
}

/// What can be wrong with a published release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReleaseFaults {
    /// The checksum file's signature signs other bytes.
    pub bad_signature: bool,
    /// The checksum file lists a wrong sha256 for the archive.
    pub wrong_checksum: bool,
    /// Only the legacy `terraform_V_SHA256SUMS.sig` is published (HashiCorp site).
    pub legacy_signature_only: bool,
}

/// The versions the three sites publish.
#[derive(Debug, Clone)]
pub struct ReleaseVersions {
    /// Terraform version, e.g. `1.15.5`.
    pub terraform: String,
    /// Coder version without a leading `v`, e.g. `2.35.3`.
    pub coder: String,
    /// Postgres archive version, e.g. `15.18.0`.
    pub postgres: String,
    /// Platforms (`linux_amd64`, `linux_arm64`).
    pub platforms: Vec<String>,
}

impl Default for ReleaseVersions {
    fn default() -> Self {
        ReleaseVersions {
            terraform: "1.15.5".into(),
            coder: "2.35.3".into(),
            postgres: "15.18.0".into(),
            platforms: vec!["linux_amd64".into(), "linux_arm64".into()],
        }
    }
}

/// The three running release sites.
#[derive(Debug)]
pub struct ReleaseSites {
    /// HashiCorp releases (`base_url()` is `terraform.base_url`).
    pub hashicorp: RunningServer,
    /// Coder releases (`base_url()` is `coder.base_url`).
    pub coder: RunningServer,
    /// Postgres archives (`base_url()` is `postgres.base_url`).
    pub postgres: RunningServer,
    /// What they publish.
    pub versions: ReleaseVersions,
}

impl ReleaseSites {
    /// Publishes healthy releases of `versions` and starts the three sites on 127.0.0.1.
    pub fn start(
        versions: &ReleaseVersions,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Self, ReleaseError> {
        let key = release_key();
        let hashicorp = Site::new();
        publish_terraform(&hashicorp, versions, key, ReleaseFaults::default())?;
        let coder = Site::new();
        publish_coder(&coder, versions, key, ReleaseFaults::default(), "")?;
        let postgres = Site::new();
        publish_postgres(&postgres, versions, ReleaseFaults::default())?;
        Ok(ReleaseSites {
            hashicorp: RunningServer::start(hashicorp, tls.clone())?,
            coder: RunningServer::start(coder, tls.clone())?,
            postgres: RunningServer::start(postgres, tls)?,
            versions: versions.clone(),
        })
    }
}

/// The key that signs the stand-in checksum files (RSA 2048), generated once per process.
#[allow(clippy::panic)]
pub fn release_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        TestKey::generate_rsa("Test Releases <releases@example.test>", 2048)
            .unwrap_or_else(|e| panic!("cannot generate test key: {e}"))
    })
}

/// The Go-style target triple theseus archives use for `linux_amd64` / `linux_arm64`.
pub fn target_triple(platform: &str) -> String {
    match platform {
        "linux_arm64" => "aarch64-unknown-linux-gnu".into(),
        _ => "x86_64-unknown-linux-gnu".into(),
    }
}

/// A shell script standing in for `terraform` (answers `version -json`).
pub fn terraform_script(version: &str, platform: &str) -> String {
    format!(
        "#!/bin/sh\nif [ \"$1\" = version ]; then\n  echo '{{\"terraform_version\":\"{version}\",\"platform\":\"{platform}\"}}'\nfi\n"
    )
}

/// A shell script standing in for `coder` (answers `version --output json`); `marker`
/// changes the bytes without changing the version.
pub fn coder_script(version: &str, marker: &str) -> String {
    format!(
        "#!/bin/sh\n# {marker}\nif [ \"$1\" = version ]; then\n  echo '{{\"version\":\"v{version}+0123abc\",\"slim\":false,\"agpl\":false}}'\nfi\n"
    )
}

/// Puts Terraform `versions.terraform` for every platform on `site`.
pub fn publish_terraform(
    site: &Site,
    v: &ReleaseVersions,
    key: &TestKey,
    faults: ReleaseFaults,
) -> Result<(), ReleaseError> {
    let version = &v.terraform;
    let dir = format!("/terraform/{version}");
    let mut sums = String::new();
    for platform in &v.platforms {
        let name = format!("terraform_{version}_{platform}.zip");
        let zip = zip_with("terraform", terraform_script(version, platform).as_bytes())?;
        sums.push_str(&sum_line(&zip, &name, faults.wrong_checksum));
        site.insert(&format!("{dir}/{name}"), zip, "application/zip");
    }
    let sums_name = format!("terraform_{version}_SHA256SUMS");
    let sig = signature(key, sums.as_bytes(), faults.bad_signature)?;
    let sig_name = if faults.legacy_signature_only {
        format!("{sums_name}.sig")
    } else {
        format!("{sums_name}.72D7468F.sig")
    };
    site.insert(
        &format!("{dir}/{sig_name}"),
        sig,
        "application/octet-stream",
    );
    site.insert(&format!("{dir}/{sums_name}"), sums, "text/plain");
    site.insert(
        "/hashicorp.asc",
        key.public_armored.clone(),
        "application/pgp-keys",
    );
    Ok(())
}

/// Puts Coder `versions.coder` (tarballs, checksums, `.asc`, docs) on `site`.
pub fn publish_coder(
    site: &Site,
    v: &ReleaseVersions,
    key: &TestKey,
    faults: ReleaseFaults,
    marker: &str,
) -> Result<(), ReleaseError> {
    let version = &v.coder;
    let dir = format!("/v{version}");
    let mut sums = String::new();
    for platform in &v.platforms {
        let arch = platform.trim_start_matches("linux_");
        let name = format!("coder_{version}_linux_{arch}.tar.gz");
        let script = coder_script(version, &format!("{marker} {platform}"));
        let tgz = tar_gz(&[
            ("coder", script.as_bytes(), 0o755),
            ("README.md", b"# Coder\n", 0o644),
            ("LICENSE", b"AGPL\n", 0o644),
        ])?;
        sums.push_str(&sum_line(&tgz, &name, faults.wrong_checksum));
        site.insert(&format!("{dir}/{name}"), tgz, "application/gzip");
    }
    let docs_name = format!("coder_docs_{version}.tgz");
    let docs = tar_gz(&[
        ("docs/README.md", b"# Coder docs\n", 0o644),
        ("docs/install/airgap.md", b"# Air-gapped\n", 0o644),
    ])?;
    sums.push_str(&sum_line(&docs, &docs_name, false));
    site.insert(&format!("{dir}/{docs_name}"), docs, "application/gzip");
    let sums_name = format!("coder_{version}_checksums.txt");
    let asc = if faults.bad_signature {
        key.sign_detached_armored(b"other bytes")?
    } else {
        key.sign_detached_armored(sums.as_bytes())?
    };
    site.insert(&format!("{dir}/{sums_name}.asc"), asc, "text/plain");
    site.insert(&format!("{dir}/{sums_name}"), sums, "text/plain");
    site.insert(
        "/coder.asc",
        key.public_armored.clone(),
        "application/pgp-keys",
    );
    Ok(())
}

/// Puts the Postgres archives (theseus layout) for every platform on `site`.
pub fn publish_postgres(
    site: &Site,
    v: &ReleaseVersions,
    faults: ReleaseFaults,
) -> Result<(), ReleaseError> {
    let version = &v.postgres;
    for platform in &v.platforms {
        let top = format!("postgresql-{version}-{}", target_triple(platform));
        let name = format!("{top}.tar.gz");
        let tool = format!("#!/bin/sh\necho 'postgres (PostgreSQL) {version}'\n");
        let mut files: Vec<(String, Vec<u8>, u32)> =
            ["pg_ctl", "postgres", "initdb", "pg_dump", "psql"]
                .iter()
                .map(|t| (format!("{top}/bin/{t}"), tool.clone().into_bytes(), 0o755))
                .collect();
        files.push((format!("{top}/lib/libpq.so.5"), vec![7u8; 4096], 0o644));
        files.push((
            format!("{top}/share/postgresql/postgres.bki"),
            b"bki\n".to_vec(),
            0o644,
        ));
        let refs: Vec<(&str, &[u8], u32)> = files
            .iter()
            .map(|(p, b, m)| (p.as_str(), b.as_slice(), *m))
            .collect();
        let tgz = tar_gz(&refs)?;
        let sha = if faults.wrong_checksum {
            hex::encode(Sha256::digest(b"something else"))
        } else {
            hex::encode(Sha256::digest(&tgz))
        };
        site.insert(
            &format!("/{version}/{name}.sha256"),
            format!("{sha}  {name}\n"),
            "text/plain",
        );
        site.insert(&format!("/{version}/{name}"), tgz, "application/gzip");
    }
    Ok(())
}

fn sum_line(bytes: &[u8], name: &str, wrong: bool) -> String {
    let sha = if wrong {
        hex::encode(Sha256::digest([bytes, b"x"].concat()))
    } else {
        hex::encode(Sha256::digest(bytes))
    };
    format!("{sha}  {name}\n")
}

fn signature(key: &TestKey, data: &[u8], bad: bool) -> Result<Vec<u8>, PgpError> {
    if bad {
        key.sign_detached(b"not the checksum file")
    } else {
        key.sign_detached(data)
    }
}

/// A zip holding one executable file.
pub fn zip_with(name: &str, contents: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        zip.start_file(name, opts).map_err(std::io::Error::other)?;
        zip.write_all(contents)?;
        zip.finish().map_err(std::io::Error::other)?;
    }
    Ok(out.into_inner())
}

/// A gzip-compressed tar of `(path, contents, mode)` files (parents added as needed).
pub fn tar_gz(files: &[(&str, &[u8], u32)]) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut dirs = std::collections::BTreeSet::new();
    for (path, contents, mode) in files {
        let parts: Vec<&str> = path.split('/').collect();
        for i in 1..parts.len() {
            let dir = parts[..i].join("/");
            if dirs.insert(dir.clone()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                tar.append_data(&mut h, format!("{dir}/"), std::io::empty())?;
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(*mode);
        h.set_size(contents.len() as u64);
        tar.append_data(&mut h, path, *contents)?;
    }
    tar.into_inner()?.finish()
}
