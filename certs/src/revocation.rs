//! Revoking leaves and publishing the certificate revocation list, signed by the issuing
//! CA (the key that signed the leaves, which is what `openssl verify -crl_check` expects).

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use time::{Duration, OffsetDateTime};

use crate::authority::CertificateAuthority;
use crate::error::{CertsError, Result};
use crate::files;
use crate::ledger::{Ledger, LedgerEntry, Revocation, RevocationReason};
use crate::serial::Serial;

/// Default time until the next CRL is due, in days.
pub const DEFAULT_CRL_DAYS: u32 = 30;

/// A signed CRL.
#[derive(Debug, Clone)]
pub struct Crl {
    /// The CRL, PEM (`BEGIN X509 CRL`).
    pub pem: String,
    /// Its CRL number (one more than the previous CRL's).
    pub number: u64,
    /// The serials it lists.
    pub revoked: Vec<Serial>,
    /// When clients should expect a newer CRL; OpenSSL rejects it after this.
    pub next_update: OffsetDateTime,
}

impl Crl {
    /// Writes the PEM to `path` atomically (mode 0644).
    pub fn write_to(&self, path: &std::path::Path) -> Result<()> {
        files::write_atomic(path, self.pem.as_bytes(), files::PUBLIC)
    }
}

impl CertificateAuthority {
    /// Marks `serial` revoked in the ledger; the next [`Self::crl`] lists it.
    pub fn revoke(&self, serial: &Serial, reason: RevocationReason) -> Result<LedgerEntry> {
        let _lock = files::lock_dir(&self.dir)?;
        let mut ledger = Ledger::load(&self.dir)?;
        let entry = ledger.find_mut(serial)?;
        if entry.revoked.is_some() {
            return Err(CertsError::AlreadyRevoked(serial.to_string()));
        }
        entry.revoked = Some(Revocation {
            at: crate::init::now(),
            reason,
        });
        let entry = entry.clone();
        ledger.save(&self.dir)?;
        Ok(entry)
    }

    /// Signs a CRL of every revoked serial, valid for `valid_for`, with the next CRL number.
    pub fn crl(&self, valid_for: Duration) -> Result<Crl> {
        if valid_for <= Duration::ZERO {
            return Err(CertsError::invalid(
                "--days",
                valid_for.whole_days().to_string(),
                "a CRL must be valid for at least one day",
            ));
        }
        let _lock = files::lock_dir(&self.dir)?;
        let mut ledger = Ledger::load(&self.dir)?;
        let number = ledger.crl_number + 1;
        let now = crate::init::now();
        let revoked: Vec<&LedgerEntry> = ledger
            .entries
            .iter()
            .filter(|e| e.revoked.is_some())
            .collect();
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + valid_for,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked.iter().filter_map(|e| revoked_params(e)).collect(),
            // The CRL's authority key identifier must equal the issuing CA's subject key
            // identifier, whatever method made that (imported CAs often use SHA-1).
            key_identifier_method: match &self.issuing.key_id {
                Some(id) => KeyIdMethod::PreSpecified(id.clone()),
                None => KeyIdMethod::Sha256,
            },
        };
        let serials = revoked.iter().map(|e| e.serial.clone()).collect();
        let crl = params.signed_by(&self.issuer).map_err(CertsError::crypto(
            "sign the CRL (the issuing CA needs the cRLSign key usage)",
        ))?;
        let pem = crl.pem().map_err(CertsError::crypto("encode the CRL"))?;
        ledger.crl_number = number;
        ledger.save(&self.dir)?;
        Ok(Crl {
            pem,
            number,
            revoked: serials,
            next_update: now + valid_for,
        })
    }
}

fn revoked_params(entry: &LedgerEntry) -> Option<RevokedCertParams> {
    let revocation = entry.revoked.as_ref()?;
    Some(RevokedCertParams {
        serial_number: entry.serial.to_rcgen(),
        revocation_time: revocation.at,
        // RFC 5280 §5.3.1: leave the reason out rather than write `unspecified`.
        reason_code: (revocation.reason != RevocationReason::Unspecified)
            .then(|| revocation.reason.to_rcgen()),
        invalidity_date: None,
    })
}
