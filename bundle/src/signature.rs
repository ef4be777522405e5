//! Minisign signatures, made and checked in minisign's own file format so the stock
//! `minisign -V` verifies ours. Signing is deterministic (Ed25519 without added noise), so
//! the same stage and key always give the same bytes: reproducible bundles.

use std::io::Read;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use blake2::{Blake2b512, Digest};

use crate::error::{BundleError, Result};
use crate::keys::{key_id, KeyId, PublicKey, SecretKey};

/// Signature algorithm tag of prehashed (BLAKE2b-512) signatures.
const PREHASHED: &[u8; 2] = b"ED";
/// Tag of legacy signatures over the raw data: parsed so the refusal can name it, never accepted.
const LEGACY: &[u8; 2] = b"Ed";

/// A parsed minisign signature.
#[derive(Debug, Clone)]
pub struct Signature {
    algorithm: [u8; 2],
    /// ID of the key that made it.
    pub key_id: KeyId,
    sig: [u8; 64],
    /// The signed trusted comment.
    pub trusted_comment: String,
    global: [u8; 64],
}

/// The BLAKE2b-512 prehash that minisign signs; feed data in any number of pieces.
#[derive(Default, Clone)]
pub struct Prehash(Blake2b512);

impl Prehash {
    /// The prehash of `bytes`.
    pub fn of(bytes: &[u8]) -> Prehash {
        let mut hash = Prehash::default();
        hash.update(bytes);
        hash
    }
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(self) -> [u8; 64] {
        self.0.finalize().into()
    }
}

/// Signs everything `reader` yields; `trusted_comment` is signed too. Returns the text of
/// a `.minisig` file.
pub fn sign_reader(
    key: &SecretKey,
    mut reader: impl Read,
    trusted_comment: &str,
) -> std::io::Result<String> {
    let mut hash = Prehash::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(sign_prehash(key, hash, trusted_comment))
}

/// Signs a finished prehash; see [`sign_reader`].
pub fn sign_prehash(key: &SecretKey, hash: Prehash, trusted_comment: &str) -> String {
    let sig = key.key.sign(hash.finish(), None);
    let mut global_msg = sig.to_vec();
    global_msg.extend_from_slice(trusted_comment.as_bytes());
    let global = key.key.sign(&global_msg, None);
    let mut line = PREHASHED.to_vec();
    line.extend_from_slice(&key.id.0);
    line.extend_from_slice(sig.as_ref());
    format!(
        "untrusted comment: signature from coder-airgap secret key {}\n{}\ntrusted comment: {}\n{}\n",
        key.id,
        B64.encode(line),
        trusted_comment,
        B64.encode(global.as_ref())
    )
}

impl Signature {
    /// Parses `.minisig` text; `what` names the signature in errors.
    pub fn parse(text: &str, what: &str) -> Result<Signature> {
        let bad = || BundleError::MalformedSignature {
            what: what.to_string(),
        };
        let mut lines = text.lines();
        let _untrusted = lines
            .next()
            .filter(|l| l.starts_with("untrusted comment:"))
            .ok_or_else(bad)?;
        let raw = lines
            .next()
            .and_then(|l| B64.decode(l.trim()).ok())
            .ok_or_else(bad)?;
        let trusted = lines
            .next()
            .and_then(|l| l.strip_prefix("trusted comment: "))
            .ok_or_else(bad)?;
        let global_raw = lines
            .next()
            .and_then(|l| B64.decode(l.trim()).ok())
            .ok_or_else(bad)?;
        if raw.len() != 74 || global_raw.len() != 64 {
            return Err(bad());
        }
        let algorithm = [raw[0], raw[1]];
        if &algorithm != PREHASHED && &algorithm != LEGACY {
            return Err(bad());
        }
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&raw[10..]);
        let mut global = [0u8; 64];
        global.copy_from_slice(&global_raw);
        Ok(Signature {
            algorithm,
            key_id: key_id(&raw[2..10]),
            sig,
            trusted_comment: trusted.to_string(),
            global,
        })
    }

    /// The one check every signature passes, the detached one over the whole bundle and
    /// the manifest's inside it alike: made by `key`, prehashed (legacy `Ed` signatures are
    /// refused on both), the signature over `hash` and the global signature over the
    /// trusted comment both valid.
    pub fn verify(&self, key: &PublicKey, hash: Prehash, what: &str) -> Result<()> {
        self.check_key(key, what)?;
        if &self.algorithm != PREHASHED {
            return Err(BundleError::LegacySignature {
                what: what.to_string(),
            });
        }
        let bad = || BundleError::BadSignature {
            what: what.to_string(),
        };
        let sig = ed25519_compact::Signature::from_slice(&self.sig).map_err(|_| bad())?;
        key.key.verify(hash.finish(), &sig).map_err(|_| bad())?;
        let mut global_msg = self.sig.to_vec();
        global_msg.extend_from_slice(self.trusted_comment.as_bytes());
        let global = ed25519_compact::Signature::from_slice(&self.global).map_err(|_| bad())?;
        key.key.verify(&global_msg, &global).map_err(|_| bad())
    }

    /// Fails with [`BundleError::WrongKey`] unless this signature was made by `key`.
    pub fn check_key(&self, key: &PublicKey, what: &str) -> Result<()> {
        if self.key_id != key.id {
            return Err(BundleError::WrongKey {
                what: what.to_string(),
                signed_by: self.key_id.to_string(),
                trusted: key.id.to_string(),
            });
        }
        Ok(())
    }
}
