//! OpenPGP detached-signature verification, as Terraform does it for registry SHA256SUMS and
//! as release checksums (HashiCorp's SHA256SUMS.sig, Coder's checksums .asc) need it.
//! Pure Rust (rpgp); RSA and EdDSA keys; keys armored or binary, signatures armored or binary.
//! Unlike Go's old openpgp package, this checks key and subkey expiry, revocation and the
//! signing capability of the key that made the signature.

use std::time::{Duration, SystemTime};

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey, SignedPublicSubKey};
use pgp::packet::{Signature, SignatureType};
use pgp::types::{KeyDetails, KeyId};

/// Why a detached signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A public key could not be parsed.
    #[error("cannot parse OpenPGP public key: {0}")]
    KeyParse(String),
    /// The signature could not be parsed.
    #[error("cannot parse OpenPGP signature: {0}")]
    SignatureParse(String),
    /// No keys were offered.
    #[error("no OpenPGP public keys to verify against")]
    NoKeys,
    /// The signature was made by a key that is not among those offered.
    #[error("signature made by unknown key {issuer}; offered keys: {offered}")]
    UnknownKey {
        /// The issuer key ID or fingerprint named by the signature.
        issuer: String,
        /// Fingerprints of the offered keys.
        offered: String,
    },
    /// The signature does not verify: the data or the signature was altered.
    #[error("BAD signature: does not verify with key {fingerprint} (the signed data or the signature was altered)")]
    BadSignature {
        /// Fingerprint of the primary key.
        fingerprint: String,
    },
    /// The signing key (or subkey) has expired.
    #[error("key {fingerprint} expired on {}; get a refreshed copy of the public key (same fingerprint, extended expiry)", crate::failure::date(*.expired_at))]
    Expired {
        /// Fingerprint of the primary key.
        fingerprint: String,
        /// Expiry, seconds since the Unix epoch.
        expired_at: u64,
    },
    /// The key or subkey has been revoked.
    #[error("key {fingerprint} has been revoked")]
    Revoked {
        /// Fingerprint of the primary key.
        fingerprint: String,
    },
    /// The key that made the signature is not marked as able to sign.
    #[error("key {fingerprint}: the (sub)key that made the signature is not a signing key")]
    NotSigningKey {
        /// Fingerprint of the primary key.
        fingerprint: String,
    },
}

/// The key that verified a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Fingerprint of the primary key, upper-case hex without spaces.
    pub fingerprint: String,
    /// Fingerprint of the (sub)key that made the signature.
    pub signer_fingerprint: String,
    /// Long key ID of the primary key (last 16 hex digits of the fingerprint).
    pub key_id: String,
    /// User IDs on the key.
    pub user_ids: Vec<String>,
}

/// Parses a public key, armored (`-----BEGIN PGP PUBLIC KEY BLOCK-----`) or binary.
pub fn parse_key(key: &[u8]) -> Result<SignedPublicKey, VerifyError> {
    let parsed = if is_armored(key) {
        SignedPublicKey::from_armor_single(key).map(|(k, _)| k)
    } else {
        SignedPublicKey::from_bytes(key)
    };
    let key = parsed.map_err(|e| VerifyError::KeyParse(e.to_string()))?;
    key.verify_bindings()
        .map_err(|e| VerifyError::KeyParse(format!("self-signatures do not verify: {e}")))?;
    Ok(key)
}

/// The primary-key fingerprint of a public key, upper-case hex.
pub fn fingerprint(key: &[u8]) -> Result<String, VerifyError> {
    Ok(hex_upper(parse_key(key)?.fingerprint().as_bytes()))
}

/// Verifies a detached signature over `data` with one key.
pub fn verify_detached(key: &[u8], signature: &[u8], data: &[u8]) -> Result<KeyInfo, VerifyError> {
    verify_detached_any(&[key], signature, data)
}

/// Verifies a detached signature over `data` with the first of `keys` that made it
/// (Terraform tries the offered keys in order).
pub fn verify_detached_any(
    keys: &[&[u8]],
    signature: &[u8],
    data: &[u8],
) -> Result<KeyInfo, VerifyError> {
    verify_detached_at(keys, signature, data, SystemTime::now())
}

/// [`verify_detached_any`] with expiry judged at `now`.
pub fn verify_detached_at(
    keys: &[&[u8]],
    signature: &[u8],
    data: &[u8],
    now: SystemTime,
) -> Result<KeyInfo, VerifyError> {
    if keys.is_empty() {
        return Err(VerifyError::NoKeys);
    }
    let sig = parse_signature(signature)?;
    let parsed: Vec<SignedPublicKey> = keys
        .iter()
        .map(|k| parse_key(k))
        .collect::<Result<_, _>>()?;
    let mut bad = None;
    for key in &parsed {
        for candidate in candidates(key, &sig.signature) {
            if candidate.verifies(&sig, data) {
                return check_validity(key, &candidate, now).map(|()| key_info(key, &candidate));
            }
            bad = Some(VerifyError::BadSignature {
                fingerprint: hex_upper(key.fingerprint().as_bytes()),
            });
        }
    }
    Err(bad.unwrap_or_else(|| VerifyError::UnknownKey {
        issuer: issuer_text(&sig.signature),
        offered: parsed
            .iter()
            .map(|k| hex_upper(k.fingerprint().as_bytes()))
            .collect::<Vec<_>>()
            .join(", "),
    }))
}

fn parse_signature(signature: &[u8]) -> Result<DetachedSignature, VerifyError> {
    let parsed = if is_armored(signature) {
        DetachedSignature::from_armor_single(signature).map(|(s, _)| s)
    } else {
        DetachedSignature::from_bytes(signature)
    };
    parsed.map_err(|e| VerifyError::SignatureParse(e.to_string()))
}

fn is_armored(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    bytes[start..].starts_with(b"-----BEGIN PGP")
}

/// The primary key or one subkey of a key.
enum Component<'a> {
    Primary(&'a SignedPublicKey),
    Subkey(&'a SignedPublicSubKey),
}

impl Component<'_> {
    fn key_id(&self) -> KeyId {
        match self {
            Component::Primary(k) => k.legacy_key_id(),
            Component::Subkey(k) => k.legacy_key_id(),
        }
    }

    fn fingerprint(&self) -> Vec<u8> {
        match self {
            Component::Primary(k) => k.fingerprint().as_bytes().to_vec(),
            Component::Subkey(k) => k.fingerprint().as_bytes().to_vec(),
        }
    }

    fn verifies(&self, sig: &DetachedSignature, data: &[u8]) -> bool {
        let result = match self {
            Component::Primary(k) => sig.verify(&k.primary_key, data),
            Component::Subkey(k) => sig.verify(&k.key, data),
        };
        result.is_ok()
    }
}

/// Components of `key` the signature names as issuer (all of them if it names none).
fn candidates<'a>(key: &'a SignedPublicKey, sig: &Signature) -> Vec<Component<'a>> {
    let all = std::iter::once(Component::Primary(key))
        .chain(key.public_subkeys.iter().map(Component::Subkey));
    let ids: Vec<Vec<u8>> = sig
        .issuer_key_id()
        .iter()
        .map(|id| id.as_ref().to_vec())
        .collect();
    let fprs: Vec<Vec<u8>> = sig
        .issuer_fingerprint()
        .iter()
        .map(|f| f.as_bytes().to_vec())
        .collect();
    if ids.is_empty() && fprs.is_empty() {
        return all.collect();
    }
    all.filter(|c| fprs.contains(&c.fingerprint()) || ids.contains(&c.key_id().as_ref().to_vec()))
        .collect()
}

fn issuer_text(sig: &Signature) -> String {
    if let Some(fpr) = sig.issuer_fingerprint().first() {
        return hex_upper(fpr.as_bytes());
    }
    sig.issuer_key_id()
        .first()
        .map_or_else(|| "(not named)".to_string(), |id| hex_upper(id.as_ref()))
}

/// Expiry, revocation and signing capability of the primary key and the signing component.
fn check_validity(
    key: &SignedPublicKey,
    signer: &Component<'_>,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let fingerprint = hex_upper(key.fingerprint().as_bytes());
    if !key.details.revocation_signatures.is_empty() {
        return Err(VerifyError::Revoked { fingerprint });
    }
    let primary_sig = primary_self_signature(key);
    let created = u64::from(key.primary_key.created_at().as_secs());
    check_expiry(&fingerprint, created, primary_sig, now)?;
    match signer {
        Component::Primary(_) => {
            let flags_given = primary_sig.is_some_and(has_key_flags);
            if flags_given && !primary_sig.is_some_and(|s| s.key_flags().sign()) {
                return Err(VerifyError::NotSigningKey { fingerprint });
            }
        }
        Component::Subkey(sub) => {
            let revoked = sub
                .signatures
                .iter()
                .any(|s| s.typ() == Some(SignatureType::SubkeyRevocation));
            if revoked {
                return Err(VerifyError::Revoked { fingerprint });
            }
            let binding = latest(
                sub.signatures
                    .iter()
                    .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding)),
            );
            if !binding.is_some_and(|s| s.key_flags().sign()) {
                return Err(VerifyError::NotSigningKey { fingerprint });
            }
            check_expiry(
                &fingerprint,
                u64::from(sub.key.created_at().as_secs()),
                binding,
                now,
            )?;
        }
    }
    Ok(())
}

fn has_key_flags(sig: &Signature) -> bool {
    let flags = sig.key_flags();
    flags.sign()
        || flags.certify()
        || flags.encrypt_comms()
        || flags.encrypt_storage()
        || flags.authentication()
}

/// The newest self-signature carrying key metadata: a direct-key signature or a user
/// certification (primary user ID preferred).
fn primary_self_signature(key: &SignedPublicKey) -> Option<&Signature> {
    let user_sigs = key.details.users.iter().flat_map(|u| u.signatures.iter());
    let certs: Vec<&Signature> = user_sigs.filter(|s| s.is_certification()).collect();
    let primary: Vec<&Signature> = certs.iter().copied().filter(|s| s.is_primary()).collect();
    let pool = if primary.is_empty() { certs } else { primary };
    latest(pool.into_iter().chain(key.details.direct_signatures.iter()))
}

fn latest<'a>(sigs: impl Iterator<Item = &'a Signature>) -> Option<&'a Signature> {
    sigs.max_by_key(|s| s.created().map_or(0, |t| t.as_secs()))
}

fn check_expiry(
    fingerprint: &str,
    created: u64,
    sig: Option<&Signature>,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let Some(validity) = sig.and_then(|s| s.key_expiration_time()) else {
        return Ok(());
    };
    if validity.as_secs() == 0 {
        return Ok(());
    }
    let expired_at = created + u64::from(validity.as_secs());
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    if now_secs >= expired_at {
        return Err(VerifyError::Expired {
            fingerprint: fingerprint.to_string(),
            expired_at,
        });
    }
    Ok(())
}

fn key_info(key: &SignedPublicKey, signer: &Component<'_>) -> KeyInfo {
    let fingerprint = hex_upper(key.fingerprint().as_bytes());
    let key_id = fingerprint
        .chars()
        .skip(fingerprint.len().saturating_sub(16))
        .collect();
    let user_ids = key
        .details
        .users
        .iter()
        .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
        .collect();
    KeyInfo {
        signer_fingerprint: hex_upper(&signer.fingerprint()),
        fingerprint,
        key_id,
        user_ids,
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

/// Normalises a fingerprint as people write it (spaces, lower case, `0x`) for comparison.
pub fn normalize_fingerprint(text: &str) -> String {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    t.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase()
}
