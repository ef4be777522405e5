//! OpenPGP test keys and detached signatures (RSA, as real provider registries use and as
//! Terraform 1.0's verifier requires).

use pgp::composed::{
    ArmorOptions, DetachedSignature, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password};

/// Errors making keys or signatures.
#[derive(Debug, thiserror::Error)]
#[error("test OpenPGP key: {0}")]
pub struct PgpError(String);

fn pgp_err(e: impl std::fmt::Display) -> PgpError {
    PgpError(e.to_string())
}

/// A signing key pair.
#[derive(Debug, Clone)]
pub struct TestKey {
    secret: SignedSecretKey,
    /// The armored public key, as a registry offers it in `ascii_armor`.
    pub public_armored: String,
    /// Upper-case hex fingerprint.
    pub fingerprint: String,
    /// Long key ID (last 16 hex digits).
    pub key_id: String,
}

impl TestKey {
    /// Generates an RSA key (primary key signs; no subkeys) for user ID `uid`.
    pub fn generate_rsa(uid: &str, bits: u32) -> Result<Self, PgpError> {
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Rsa(bits))
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(uid.into());
        let params = params.build().map_err(pgp_err)?;
        let secret = params.generate(rand::thread_rng()).map_err(pgp_err)?;
        let public = SignedPublicKey::from(secret.clone());
        let public_armored = public
            .to_armored_string(ArmorOptions::default())
            .map_err(pgp_err)?;
        let fingerprint = hex::encode_upper(public.fingerprint().as_bytes());
        let key_id = fingerprint[fingerprint.len().saturating_sub(16)..].to_string();
        Ok(TestKey {
            secret,
            public_armored,
            fingerprint,
            key_id,
        })
    }

    /// A binary detached signature over `data` (SHA-256), like `gpg --detach-sign`.
    pub fn sign_detached(&self, data: &[u8]) -> Result<Vec<u8>, PgpError> {
        let sig = DetachedSignature::sign_binary_data(
            rand::thread_rng(),
            &self.secret.primary_key,
            &Password::empty(),
            HashAlgorithm::Sha256,
            data,
        )
        .map_err(pgp_err)?;
        sig.to_bytes().map_err(pgp_err)
    }

    /// An ASCII-armored detached signature over `data`, like `gpg --armor --detach-sign`.
    pub fn sign_detached_armored(&self, data: &[u8]) -> Result<String, PgpError> {
        let sig = DetachedSignature::sign_binary_data(
            rand::thread_rng(),
            &self.secret.primary_key,
            &Password::empty(),
            HashAlgorithm::Sha256,
            data,
        )
        .map_err(pgp_err)?;
        sig.to_armored_string(ArmorOptions::default())
            .map_err(pgp_err)
    }
}
