//! Issuing leaf certificates: checking a request against the CA's name constraints,
//! signing it with the issuing CA and recording it in the ledger.

use std::fmt;
use std::net::IpAddr;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};
use time::{Duration, OffsetDateTime};

use crate::authority::CertificateAuthority;
use crate::error::{CertsError, Result};
use crate::files;
use crate::init::{check_days, CLOCK_SKEW};
use crate::ledger::{LeafUsage, Ledger, LedgerEntry};
use crate::names;
use crate::serial::Serial;

/// Default lifetime of a leaf certificate, in days.
pub const DEFAULT_LEAF_DAYS: u32 = 90;

/// A request for a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRequest {
    /// DNS names (`coder.example.com`, `*.apps.example.com`); the first is the subject CN.
    pub dns_names: Vec<String>,
    /// IP addresses.
    pub ip_addresses: Vec<IpAddr>,
    /// Lifetime in days (cut short to the issuing CA's own expiry).
    pub days: u32,
    /// Server (serverAuth) or client (clientAuth) certificate.
    pub usage: LeafUsage,
}

impl LeafRequest {
    /// A server certificate for `dns_names` and `ip_addresses`, valid [`DEFAULT_LEAF_DAYS`].
    pub fn server(
        dns_names: impl IntoIterator<Item = impl Into<String>>,
        ip_addresses: impl IntoIterator<Item = IpAddr>,
    ) -> Self {
        LeafRequest {
            dns_names: dns_names.into_iter().map(Into::into).collect(),
            ip_addresses: ip_addresses.into_iter().collect(),
            days: DEFAULT_LEAF_DAYS,
            usage: LeafUsage::Server,
        }
    }
}

/// A private key in PEM (PKCS#8). Its `Debug` output does not show the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(pub(crate) String);

impl PrivateKeyPem {
    /// The PEM text, to write to a 0600 file or hand to a TLS library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem([redacted])")
    }
}

/// A newly issued leaf certificate and its key.
#[derive(Debug, Clone)]
pub struct IssuedLeaf {
    /// Serial number.
    pub serial: Serial,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The leaf certificate alone, PEM.
    pub cert_pem: String,
    /// The leaf followed by the intermediates up to (not including) the root: what a
    /// server sends.
    pub chain_pem: String,
    /// The leaf's private key.
    pub key: PrivateKeyPem,
}

/// A request whose names are validated, lowercased and within the constraints.
#[derive(Debug, Clone)]
pub(crate) struct CheckedRequest {
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub days: u32,
    pub usage: LeafUsage,
}

impl CheckedRequest {
    /// The request that would issue the same certificate as `entry` again.
    pub fn from_entry(entry: &LedgerEntry) -> Self {
        CheckedRequest {
            dns_names: entry.dns_names.clone(),
            ip_addresses: entry.ip_addresses.clone(),
            days: entry.days,
            usage: entry.usage,
        }
    }
}

impl CertificateAuthority {
    /// Issues a leaf for `request` and records it in the ledger. Fails with
    /// [`CertsError::OutsideConstraints`] for any name the CA may not certify and
    /// [`CertsError::NoSubjectAltName`] for a request without names.
    pub fn issue(&self, request: &LeafRequest) -> Result<IssuedLeaf> {
        let checked = self.check_request(request)?;
        let _lock = files::lock_dir(&self.dir)?;
        let mut ledger = Ledger::load(&self.dir)?;
        let (leaf, entry) = self.sign_leaf(&checked)?;
        ledger.entries.push(entry);
        ledger.save(&self.dir)?;
        Ok(leaf)
    }

    /// Validates `request` and checks every name against every constraint of the CA.
    pub(crate) fn check_request(&self, request: &LeafRequest) -> Result<CheckedRequest> {
        check_days(request.days, "--days")?;
        let mut dns_names: Vec<String> = Vec::new();
        for name in &request.dns_names {
            let name = names::dns_name(name)?;
            if !dns_names.contains(&name) {
                dns_names.push(name);
            }
        }
        let mut ip_addresses: Vec<IpAddr> = Vec::new();
        for ip in &request.ip_addresses {
            if !ip_addresses.contains(ip) {
                ip_addresses.push(*ip);
            }
        }
        if dns_names.is_empty() && ip_addresses.is_empty() {
            return Err(CertsError::NoSubjectAltName);
        }
        for c in &self.constraints {
            let refused = |name: String| CertsError::OutsideConstraints {
                name,
                constraints: c.to_string(),
            };
            if let Some(name) = dns_names.iter().find(|n| !c.permits_dns(n)) {
                return Err(refused(name.clone()));
            }
            if let Some(ip) = ip_addresses.iter().find(|ip| !c.permits_ip(**ip)) {
                return Err(refused(ip.to_string()));
            }
        }
        Ok(CheckedRequest {
            dns_names,
            ip_addresses,
            days: request.days,
            usage: request.usage,
        })
    }

    /// Makes and signs the leaf for a checked request; the caller records the entry.
    pub(crate) fn sign_leaf(&self, request: &CheckedRequest) -> Result<(IssuedLeaf, LedgerEntry)> {
        let serial = Serial::random()?;
        let now = crate::init::now();
        let not_after = (now + Duration::days(i64::from(request.days))).min(self.issuing.not_after);
        let params = leaf_params(request, &serial, now - CLOCK_SKEW, not_after)?;
        let key = self.leaf_algorithm().generate()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(CertsError::crypto("sign the certificate"))?;
        let cert_pem = cert.pem();
        let chain_pem = std::iter::once(cert_pem.clone())
            .chain(self.chain.iter().map(|c| c.pem()))
            .collect();
        let entry = LedgerEntry {
            serial: serial.clone(),
            subject: request.dns_names.first().cloned().unwrap_or_default(),
            dns_names: request.dns_names.clone(),
            ip_addresses: request.ip_addresses.clone(),
            usage: request.usage,
            days: request.days,
            not_before: params.not_before,
            not_after,
            out: None,
            revoked: None,
            superseded_by: None,
        };
        let leaf = IssuedLeaf {
            serial,
            not_before: params.not_before,
            not_after,
            cert_pem,
            chain_pem,
            key: PrivateKeyPem(key.serialize_pem()),
        };
        Ok((leaf, entry))
    }
}

/// Certificate parameters of a leaf. The subject is `CN=<first DNS name>`; an address-only
/// leaf gets an empty subject (and a critical SAN), because OpenSSL checks a hostname-like
/// CN against DNS name constraints when a leaf has no DNS SAN.
fn leaf_params(
    request: &CheckedRequest,
    serial: &Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(first) = request.dns_names.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    for name in &request.dns_names {
        let ia5 = name
            .clone()
            .try_into()
            .map_err(CertsError::crypto("encode a DNS name"))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params.subject_alt_names.extend(
        request
            .ip_addresses
            .iter()
            .map(|ip| SanType::IpAddress(*ip)),
    );
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match request.usage {
        LeafUsage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        LeafUsage::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial.to_rcgen());
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(params)
}
