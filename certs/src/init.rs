//! Creating a new CA: a root that carries the name constraints and an intermediate that
//! issues leaves, so the root key can be moved offline once `init` is done.

use std::fmt;
use std::str::FromStr;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::error::{CertsError, Result};
use crate::names::{self, Constraints, IpRange};
use crate::serial::Serial;

/// Default lifetime of a new root and intermediate, in days (10 years).
pub const DEFAULT_CA_DAYS: u32 = 3650;

/// How far back `not_before` is set, so clients with a slightly slow clock accept a
/// certificate issued a moment ago.
pub(crate) const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Now, whole seconds: certificates carry no fractions, and the ledger should match them.
pub(crate) fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// The key algorithm of the CA and of the leaves it issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// ECDSA on NIST P-256 with SHA-256: accepted everywhere, browsers included.
    #[default]
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519: fine for curl, OpenSSL, Go and rustls clients, but browsers reject it.
    Ed25519,
}

impl Algorithm {
    /// Every algorithm with its command-line name.
    pub const ALL: [(&'static str, Algorithm); 3] = [
        ("ecdsa-p256", Algorithm::EcdsaP256),
        ("ecdsa-p384", Algorithm::EcdsaP384),
        ("ed25519", Algorithm::Ed25519),
    ];

    /// The command-line name (`ecdsa-p256`, ...).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map(|(n, _)| *n)
            .unwrap_or("ecdsa-p256")
    }

    /// A fresh key pair of this algorithm.
    pub(crate) fn generate(self) -> Result<KeyPair> {
        let alg = match self {
            Algorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Algorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Algorithm::Ed25519 => &rcgen::PKCS_ED25519,
        };
        KeyPair::generate_for(alg).map_err(CertsError::crypto("generate a key pair"))
    }
}

impl FromStr for Algorithm {
    type Err = CertsError;
    fn from_str(text: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(text.trim()))
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                CertsError::invalid("algorithm", text, "use ecdsa-p256, ecdsa-p384 or ed25519")
            })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `CertificateAuthority::init` needs to create a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    /// The root's common name ("Example Corp Internal CA").
    pub name: String,
    /// Permitted DNS suffixes (`example.com` permits it and every subdomain).
    pub permitted_dns: Vec<String>,
    /// Permitted IP ranges.
    pub permitted_ip: Vec<IpRange>,
    /// Key algorithm of the root, the intermediate and the leaves.
    pub algorithm: Algorithm,
    /// Lifetime of the root and the intermediate, in days.
    pub days: u32,
}

impl InitOptions {
    /// Options for a CA named `name` with no constraints, ECDSA P-256, [`DEFAULT_CA_DAYS`].
    pub fn new(name: impl Into<String>) -> Self {
        InitOptions {
            name: name.into(),
            permitted_dns: Vec::new(),
            permitted_ip: Vec::new(),
            algorithm: Algorithm::default(),
            days: DEFAULT_CA_DAYS,
        }
    }

    /// The validated name constraints for the root.
    pub(crate) fn constraints(&self) -> Result<Constraints> {
        let dns = self
            .permitted_dns
            .iter()
            .map(|d| names::dns_suffix(d))
            .collect::<Result<Vec<_>>>()?;
        Ok(Constraints::for_new_root(dns, self.permitted_ip.clone()))
    }

    fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(CertsError::invalid(
                "--name",
                &self.name,
                "give the CA a name, like \"Example Corp Internal CA\"",
            ));
        }
        check_days(self.days, "--days")
    }
}

/// Fails unless `days` is at least 1 and at most 100 years.
pub(crate) fn check_days(days: u32, what: &'static str) -> Result<()> {
    if days == 0 || days > 36_500 {
        return Err(CertsError::invalid(
            what,
            days.to_string(),
            "give a number of days from 1 to 36500",
        ));
    }
    Ok(())
}

/// A freshly made root and intermediate, as PEM.
pub(crate) struct NewCa {
    pub root_cert: String,
    pub root_key: String,
    pub ca_cert: String,
    pub ca_key: String,
}

/// Makes the root and the intermediate described by `options`.
pub(crate) fn make_ca(options: &InitOptions) -> Result<NewCa> {
    options.validate()?;
    let constraints = options.constraints()?;
    let now = now();
    let not_after = now + Duration::days(i64::from(options.days));

    let root_key = options.algorithm.generate()?;
    let mut root = ca_params(options.name.trim(), now, not_after, 1)?;
    root.name_constraints = constraints.to_rcgen();
    let root_cert = root
        .self_signed(&root_key)
        .map_err(CertsError::crypto("sign the root certificate"))?;

    let ca_key = options.algorithm.generate()?;
    let mut ca = ca_params(
        &format!("{} Issuing CA", options.name.trim()),
        now,
        not_after,
        0,
    )?;
    // The same constraints again, so a client that trusts only the intermediate (or that
    // only checks the certificates it is sent) enforces them too.
    ca.name_constraints = constraints.to_rcgen();
    ca.use_authority_key_identifier_extension = true;
    let root_issuer = rcgen::Issuer::new(root, &root_key);
    let ca_cert = ca
        .signed_by(&ca_key, &root_issuer)
        .map_err(CertsError::crypto("sign the intermediate certificate"))?;

    Ok(NewCa {
        root_cert: root_cert.pem(),
        root_key: root_key.serialize_pem(),
        ca_cert: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
    })
}

/// Parameters of a CA certificate named `name` allowing `path_len` CAs below it.
fn ca_params(
    name: &str,
    now: OffsetDateTime,
    not_after: OffsetDateTime,
    path_len: u8,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - CLOCK_SKEW;
    params.not_after = not_after;
    params.serial_number = Some(Serial::random()?.to_rcgen());
    Ok(params)
}
