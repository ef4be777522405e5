//! The ledger (`DIR/ledger.json`): every certificate the CA issued, where its files went,
//! whether it was revoked or renewed, and the number of the last CRL.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{CertsError, Result};
use crate::files;
use crate::serial::Serial;

/// File name of the ledger inside the CA directory.
pub(crate) const LEDGER_FILE: &str = "ledger.json";

/// What a leaf certificate is for: its extended key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeafUsage {
    /// A TLS server (EKU serverAuth).
    #[default]
    Server,
    /// A TLS client (EKU clientAuth).
    Client,
}

/// Why a certificate was revoked (RFC 5280 §5.3.1 reason codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// No reason given.
    #[default]
    Unspecified,
    /// The private key leaked or may have.
    KeyCompromise,
    /// The CA's key leaked or may have.
    CaCompromise,
    /// The subject's name or affiliation changed.
    AffiliationChanged,
    /// Replaced by a newer certificate.
    Superseded,
    /// The host or service is gone.
    CessationOfOperation,
    /// Temporarily on hold.
    CertificateHold,
    /// The holder is no longer allowed to use it.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// Every reason, with its kebab-case name.
    pub const ALL: [(&'static str, RevocationReason); 8] = [
        ("unspecified", RevocationReason::Unspecified),
        ("key-compromise", RevocationReason::KeyCompromise),
        ("ca-compromise", RevocationReason::CaCompromise),
        ("affiliation-changed", RevocationReason::AffiliationChanged),
        ("superseded", RevocationReason::Superseded),
        (
            "cessation-of-operation",
            RevocationReason::CessationOfOperation,
        ),
        ("certificate-hold", RevocationReason::CertificateHold),
        ("privilege-withdrawn", RevocationReason::PrivilegeWithdrawn),
    ];

    /// The reason as rcgen writes it into a CRL.
    pub(crate) fn to_rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            RevocationReason::Unspecified => R::Unspecified,
            RevocationReason::KeyCompromise => R::KeyCompromise,
            RevocationReason::CaCompromise => R::CaCompromise,
            RevocationReason::AffiliationChanged => R::AffiliationChanged,
            RevocationReason::Superseded => R::Superseded,
            RevocationReason::CessationOfOperation => R::CessationOfOperation,
            RevocationReason::CertificateHold => R::CertificateHold,
            RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        }
    }
}

impl FromStr for RevocationReason {
    type Err = CertsError;
    /// Accepts the kebab-case names and OpenSSL's camelCase ones (`keyCompromise`).
    fn from_str(text: &str) -> Result<Self> {
        let wanted: String = text.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        Self::ALL
            .iter()
            .find(|(name, _)| name.replace('-', "").eq_ignore_ascii_case(&wanted))
            .map(|(_, reason)| *reason)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                CertsError::invalid(
                    "revocation reason",
                    text,
                    format!("use one of {}", names.join(", ")),
                )
            })
    }
}

/// A revocation recorded in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When the CA revoked it.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
}

/// Where a leaf stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeafStatus {
    /// Within its validity period and not revoked.
    Valid,
    /// Past its not-after date.
    Expired,
    /// Revoked; listed in the next CRL.
    Revoked,
    /// Renewed: a newer certificate replaced it at the same paths.
    Superseded,
}

impl LeafStatus {
    /// The lowercase name shown by `ca list`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeafStatus::Valid => "valid",
            LeafStatus::Expired => "expired",
            LeafStatus::Revoked => "revoked",
            LeafStatus::Superseded => "superseded",
        }
    }
}

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Serial number.
    pub serial: Serial,
    /// Subject common name (the first DNS name; empty for address-only certificates).
    pub subject: String,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Server or client certificate.
    pub usage: LeafUsage,
    /// Requested lifetime in days (renewals ask for the same).
    pub days: u32,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The `--out` prefix the certificate and key were written to, if any.
    pub out: Option<PathBuf>,
    /// Set once revoked.
    pub revoked: Option<Revocation>,
    /// The serial that replaced this one at the same paths.
    pub superseded_by: Option<Serial>,
}

impl LedgerEntry {
    /// Subject alternative names as `DNS:name` / `IP:addr`, the way OpenSSL prints them.
    pub fn sans(&self) -> Vec<String> {
        let dns = self.dns_names.iter().map(|d| format!("DNS:{d}"));
        dns.chain(self.ip_addresses.iter().map(|ip| format!("IP:{ip}")))
            .collect()
    }

    /// The status at `now`.
    pub fn status(&self, now: OffsetDateTime) -> LeafStatus {
        if self.revoked.is_some() {
            LeafStatus::Revoked
        } else if self.superseded_by.is_some() {
            LeafStatus::Superseded
        } else if self.not_after <= now {
            LeafStatus::Expired
        } else {
            LeafStatus::Valid
        }
    }
}

/// The whole ledger file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Number of the last CRL published (0: none yet).
    pub crl_number: u64,
    /// Every issued certificate, oldest first.
    pub entries: Vec<LedgerEntry>,
}

impl Ledger {
    /// Reads `DIR/ledger.json`.
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(LEDGER_FILE);
        let text = files::read_text(&path)?;
        serde_json::from_str(&text).map_err(|e| {
            CertsError::bad_file(
                &path,
                format!(
                    "{e} (restore it from a backup; it is the CA's record of issued certificates)"
                ),
            )
        })
    }

    /// Writes `DIR/ledger.json` atomically.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(LEDGER_FILE);
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| {
            CertsError::bad_file(&path, format!("cannot serialise the ledger: {e}"))
        })?;
        json.push(b'\n');
        files::write_atomic(&path, &json, files::PUBLIC)
    }

    /// The entry for `serial`.
    pub(crate) fn find_mut(&mut self, serial: &Serial) -> Result<&mut LedgerEntry> {
        self.entries
            .iter_mut()
            .find(|e| &e.serial == serial)
            .ok_or_else(|| CertsError::UnknownSerial(serial.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_in_both_spellings() {
        assert_eq!(
            "key-compromise".parse::<RevocationReason>().ok(),
            Some(RevocationReason::KeyCompromise)
        );
        assert_eq!(
            "keyCompromise".parse::<RevocationReason>().ok(),
            Some(RevocationReason::KeyCompromise)
        );
        assert!("stolen".parse::<RevocationReason>().is_err());
    }
}
