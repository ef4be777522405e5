//! Reading certificates back: PEM blocks in and out, and the few facts about a CA
//! certificate this crate acts on (is it a CA, its key, its constraints, its expiry).

use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::pem::Pem;

use crate::error::{CertsError, Result};
use crate::names::Constraints;

/// One certificate: its DER and what this crate needs to know about it.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    /// The DER encoding.
    pub der: Vec<u8>,
    /// Subject, as OpenSSL-style text.
    pub subject: String,
    /// Subject equals issuer (a root, or a self-issued certificate).
    pub self_issued: bool,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// May sign certificates (no keyUsage, or keyUsage with keyCertSign).
    pub can_sign_certs: bool,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The raw public key bits, to compare with a private key.
    pub public_key: Vec<u8>,
    /// Subject key identifier, if present.
    pub key_id: Option<Vec<u8>>,
    /// Name constraints, if present.
    pub constraints: Option<Constraints>,
}

impl CertInfo {
    /// Parses DER `der`, read from `path` (for error messages).
    pub fn parse(der: Vec<u8>, path: &Path) -> Result<Self> {
        let bad = |what: String| CertsError::bad_file(path, what);
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
        let ext_err =
            |e: x509_parser::error::X509Error| bad(format!("bad certificate extension: {e}"));
        let is_ca = cert
            .basic_constraints()
            .map_err(ext_err)?
            .is_some_and(|bc| bc.value.ca);
        let can_sign_certs = cert
            .key_usage()
            .map_err(ext_err)?
            .is_none_or(|ku| ku.value.key_cert_sign());
        let constraints = cert
            .name_constraints()
            .map_err(ext_err)?
            .map(|nc| Constraints::from_x509(nc.value));
        let key_id = cert
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
        let info = CertInfo {
            subject: cert.subject().to_string(),
            self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
            is_ca,
            can_sign_certs,
            not_after: cert.validity().not_after.to_datetime(),
            public_key: cert.public_key().subject_public_key.data.to_vec(),
            key_id,
            constraints,
            der: Vec::new(),
        };
        Ok(CertInfo { der, ..info })
    }

    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        to_pem("CERTIFICATE", &self.der)
    }

    /// SHA-256 of the DER, as colon-separated uppercase hex (like `openssl x509 -fingerprint
    /// -sha256`).
    pub fn sha256_fingerprint(&self) -> String {
        let digest = Sha256::digest(&self.der);
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// Reads every `CERTIFICATE` block of the PEM file `path` (at least one).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertInfo>> {
    let bytes = std::fs::read(path).map_err(CertsError::io("read", path))?;
    let mut certs = Vec::new();
    for block in Pem::iter_from_buffer(&bytes) {
        let block = block.map_err(|e| CertsError::bad_file(path, format!("bad PEM block: {e}")))?;
        if block.label == "CERTIFICATE" {
            certs.push(CertInfo::parse(block.contents, path)?);
        }
    }
    if certs.is_empty() {
        return Err(CertsError::bad_file(
            path,
            "no `BEGIN CERTIFICATE` block (pass a PEM certificate file)",
        ));
    }
    Ok(certs)
}

/// PEM text for `der` under `label`, 64 characters a line.
pub(crate) fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
