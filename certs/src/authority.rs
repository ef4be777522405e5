//! [`CertificateAuthority`]: creating, importing and loading the CA directory, and what
//! clients must trust. Issuing, renewal and revocation live in `leaf`, `leaf_files` and
//! `revocation`.

use std::path::{Path, PathBuf};

use rcgen::{Issuer, KeyPair};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{CertsError, Result};
use crate::files;
use crate::init::{self, Algorithm, InitOptions};
use crate::ledger::Ledger;
use crate::names::Constraints;
use crate::x509::{self, CertInfo};

const CONFIG_FILE: &str = "ca.json";
const ROOT_CERT: &str = "root.crt";
const ROOT_KEY: &str = "root.key";
const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const CHAIN_FILE: &str = "chain.pem";

/// Where the issuing CA came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaKind {
    /// Made by `ca init`: our root plus our intermediate.
    Generated,
    /// An enterprise CA given to `ca import`.
    Imported,
}

/// `DIR/ca.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CaConfig {
    /// Layout version of the directory.
    format: u32,
    kind: CaKind,
    /// Common name of the root (generated) or subject of the imported CA.
    name: String,
    /// Key algorithm of new leaves.
    algorithm: Algorithm,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
}

/// One certificate clients must trust, with the fingerprint to read out over the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    /// The certificate's subject.
    pub subject: String,
    /// SHA-256 of its DER, colon-separated uppercase hex (as `openssl x509 -fingerprint
    /// -sha256` prints it).
    pub sha256_fingerprint: String,
}

/// The CA in one directory: signs leaves with the issuing CA's key and records them in the
/// ledger. See the crate docs for the directory layout.
pub struct CertificateAuthority {
    pub(crate) dir: PathBuf,
    config: CaConfig,
    pub(crate) issuer: Issuer<'static, KeyPair>,
    /// The issuing CA certificate (intermediate or imported CA).
    pub(crate) issuing: CertInfo,
    /// Certificates sent after a leaf: the issuing CA and any intermediates above it, never
    /// a self-issued root.
    pub(crate) chain: Vec<CertInfo>,
    /// What clients must trust.
    trust: Vec<CertInfo>,
    /// Constraints of every CA certificate above a leaf; a name must satisfy all of them.
    pub(crate) constraints: Vec<Constraints>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("dir", &self.dir)
            .field("kind", &self.config.kind)
            .field("issuing", &self.issuing.subject)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Creates a new root and intermediate in `dir` (created mode 0700, or an empty
    /// existing directory) and loads the result. Refuses to overwrite anything.
    pub fn init(dir: &Path, options: &InitOptions) -> Result<Self> {
        let made = init::make_ca(options)?;
        let config = new_config(CaKind::Generated, options.name.trim(), options.algorithm);
        create_dir_atomically(dir, |staging| {
            files::write_atomic(
                &staging.join(ROOT_KEY),
                made.root_key.as_bytes(),
                files::PRIVATE,
            )?;
            files::write_atomic(
                &staging.join(ROOT_CERT),
                made.root_cert.as_bytes(),
                files::PUBLIC,
            )?;
            files::write_atomic(
                &staging.join(CA_KEY),
                made.ca_key.as_bytes(),
                files::PRIVATE,
            )?;
            files::write_atomic(
                &staging.join(CA_CERT),
                made.ca_cert.as_bytes(),
                files::PUBLIC,
            )?;
            write_config_and_ledger(staging, &config)
        })?;
        Self::load(dir)
    }

    /// Sets up `dir` to issue from an existing enterprise CA: `cert_pem` holds its
    /// certificate first, optionally followed by the certificates above it; `key` is its
    /// unencrypted PKCS#8 private key. Name constraints in those certificates are honoured
    /// when issuing (none can be added to a CA someone else signed).
    pub fn import(dir: &Path, cert_pem: &Path, key: &Path) -> Result<Self> {
        let certs = x509::read_certs(cert_pem)?;
        let issuing = check_importable(&certs, cert_pem)?;
        let key_pair = read_key(key)?;
        if key_pair.public_key_raw() != issuing.public_key.as_slice() {
            return Err(CertsError::KeyMismatch {
                cert: cert_pem.to_path_buf(),
                key: key.to_path_buf(),
            });
        }
        let config = new_config(CaKind::Imported, &issuing.subject, Algorithm::EcdsaP256);
        create_dir_atomically(dir, |staging| {
            files::write_atomic(
                &staging.join(CA_KEY),
                key_pair.serialize_pem().as_bytes(),
                files::PRIVATE,
            )?;
            files::write_atomic(
                &staging.join(CA_CERT),
                issuing.pem().as_bytes(),
                files::PUBLIC,
            )?;
            if certs.len() > 1 {
                let rest: String = certs.iter().skip(1).map(CertInfo::pem).collect();
                files::write_atomic(&staging.join(CHAIN_FILE), rest.as_bytes(), files::PUBLIC)?;
            }
            write_config_and_ledger(staging, &config)
        })?;
        Self::load(dir)
    }

    /// Loads the CA in `dir`. Needs `ca.json`, `ca.crt`, `ca.key` (mode 0600) and, for a
    /// generated CA, `root.crt`; `root.key` may have been moved offline.
    pub fn load(dir: &Path) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        for (name, path) in [
            (CONFIG_FILE, &config_path),
            (CA_CERT, &dir.join(CA_CERT)),
            (CA_KEY, &dir.join(CA_KEY)),
        ] {
            if !path.exists() {
                return Err(CertsError::NoCa {
                    dir: dir.to_path_buf(),
                    missing: name,
                });
            }
        }
        let config: CaConfig =
            serde_json::from_str(&files::read_text(&config_path)?).map_err(|e| {
                CertsError::bad_file(&config_path, format!("{e} (restore it from a backup)"))
            })?;
        let key_path = dir.join(CA_KEY);
        files::check_private(&key_path)?;
        let key = read_key(&key_path)?;
        let mut certs = x509::read_certs(&dir.join(CA_CERT))?;
        let issuing = certs.remove(0);
        let above = match config.kind {
            CaKind::Generated => {
                let root_path = dir.join(ROOT_CERT);
                if !root_path.exists() {
                    return Err(CertsError::NoCa {
                        dir: dir.to_path_buf(),
                        missing: ROOT_CERT,
                    });
                }
                x509::read_certs(&root_path)?
            }
            CaKind::Imported if dir.join(CHAIN_FILE).exists() => {
                x509::read_certs(&dir.join(CHAIN_FILE))?
            }
            CaKind::Imported => Vec::new(),
        };
        let issuer = Issuer::from_ca_cert_der(&issuing.der.clone().into(), key)
            .map_err(CertsError::crypto("use the issuing CA certificate"))?;
        let all: Vec<CertInfo> = std::iter::once(issuing.clone())
            .chain(above.iter().cloned())
            .collect();
        let trust = match config.kind {
            CaKind::Generated => above,
            CaKind::Imported => all.clone(),
        };
        Ok(CertificateAuthority {
            dir: dir.to_path_buf(),
            constraints: all.iter().filter_map(|c| c.constraints.clone()).collect(),
            chain: all.into_iter().filter(|c| !c.self_issued).collect(),
            config,
            issuer,
            issuing,
            trust,
        })
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Generated by `init` or imported.
    pub fn kind(&self) -> CaKind {
        self.config.kind
    }

    /// The CA's name (the root's common name, or the imported CA's subject).
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Key algorithm of the leaves this CA issues.
    pub fn leaf_algorithm(&self) -> Algorithm {
        self.config.algorithm
    }

    /// When the issuing CA certificate expires; no leaf outlives it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.issuing.not_after
    }

    /// The name constraints a requested name must satisfy (one set per CA certificate
    /// that carries any).
    pub fn constraints(&self) -> &[Constraints] {
        &self.constraints
    }

    /// The PEM certificates clients must trust: the root for a generated CA, the
    /// imported certificate(s) for an imported one.
    pub fn trust_bundle_pem(&self) -> String {
        self.trust.iter().map(CertInfo::pem).collect()
    }

    /// The certificates of [`Self::trust_bundle_pem`] with their SHA-256 fingerprints.
    pub fn trust_anchors(&self) -> Vec<TrustAnchor> {
        self.trust
            .iter()
            .map(|c| TrustAnchor {
                subject: c.subject.clone(),
                sha256_fingerprint: c.sha256_fingerprint(),
            })
            .collect()
    }

    /// Writes [`Self::trust_bundle_pem`] to `out` atomically (mode 0644).
    pub fn write_trust_bundle(&self, out: &Path) -> Result<Vec<TrustAnchor>> {
        files::write_atomic(out, self.trust_bundle_pem().as_bytes(), files::PUBLIC)?;
        Ok(self.trust_anchors())
    }

    /// The ledger of issued certificates, as on disk now.
    pub fn ledger(&self) -> Result<Ledger> {
        Ledger::load(&self.dir)
    }
}

fn new_config(kind: CaKind, name: &str, algorithm: Algorithm) -> CaConfig {
    CaConfig {
        format: 1,
        kind,
        name: name.to_owned(),
        algorithm,
        created: OffsetDateTime::now_utc(),
    }
}

fn write_config_and_ledger(staging: &Path, config: &CaConfig) -> Result<()> {
    let path = staging.join(CONFIG_FILE);
    let mut json = serde_json::to_vec_pretty(config)
        .map_err(|e| CertsError::bad_file(&path, format!("cannot serialise the CA config: {e}")))?;
    json.push(b'\n');
    files::write_atomic(&path, &json, files::PUBLIC)?;
    Ledger::default().save(staging)
}

/// Checks that the first certificate of an import can issue leaves now.
fn check_importable<'a>(certs: &'a [CertInfo], path: &Path) -> Result<&'a CertInfo> {
    let issuing = certs
        .first()
        .ok_or_else(|| CertsError::bad_file(path, "no certificate in the file"))?;
    if !issuing.is_ca || !issuing.can_sign_certs {
        return Err(CertsError::bad_file(
            path,
            format!(
                "{} is not a CA certificate (it needs basicConstraints CA:TRUE and, if it lists key usages, keyCertSign); put the CA certificate first in the file",
                issuing.subject
            ),
        ));
    }
    if issuing.not_after <= OffsetDateTime::now_utc() {
        return Err(CertsError::bad_file(
            path,
            format!(
                "{} expired on {}; import a current CA",
                issuing.subject, issuing.not_after
            ),
        ));
    }
    Ok(issuing)
}

/// Reads an unencrypted PKCS#8 private key, explaining how to convert other formats.
fn read_key(path: &Path) -> Result<KeyPair> {
    let text = files::read_text(path)?;
    let convert = format!(
        "convert it with `openssl pkcs8 -topk8 -nocrypt -in {} -out ca-pkcs8.key` and pass that",
        path.display()
    );
    if text.contains("ENCRYPTED PRIVATE KEY")
        || text.contains("RSA PRIVATE KEY")
        || text.contains("EC PRIVATE KEY")
    {
        return Err(CertsError::bad_file(
            path,
            format!("only unencrypted PKCS#8 keys (`BEGIN PRIVATE KEY`) are supported; {convert}"),
        ));
    }
    KeyPair::from_pem(&text).map_err(|e| {
        CertsError::bad_file(path, format!("not a usable private key ({e}); {convert}"))
    })
}

/// Fails unless `dir` is absent or an empty directory without a CA in it.
fn check_free(dir: &Path) -> Result<()> {
    if dir.join(CONFIG_FILE).exists() || dir.join(CA_CERT).exists() {
        return Err(CertsError::CaExists(dir.to_path_buf()));
    }
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(CertsError::DirNotEmpty(dir.to_path_buf())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CertsError::io("read directory", dir)(e)),
    }
}

/// Fills a new 0700 directory next to `dir` with `fill`, then renames it to `dir`, so a
/// failure leaves no partial CA behind.
fn create_dir_atomically(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    check_free(dir)?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(CertsError::io("create directory", &parent))?;
    let staging = files::temp_sibling(dir)?;
    files::create_private_dir(&staging)?;
    let result = fill(&staging).and_then(|()| {
        // rename(2) replaces an empty directory, and fails if another CA appeared meanwhile.
        std::fs::rename(&staging, dir).map_err(|e| match dir.join(CONFIG_FILE).exists() {
            true => CertsError::CaExists(dir.to_path_buf()),
            false => CertsError::io("rename the new CA directory to", dir)(e),
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        return result;
    }
    files::sync_dir(&parent)
}
