//! Minisign keys: generating a pair for `keygen`, loading a secret key to sign with and a
//! public key to trust. Files are in minisign's own format, so keys made by the stock
//! `minisign -G` work here and ours work there.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::error::{BundleError, IoContext, Result};

/// File name of the secret key written by [`generate`].
pub const SECRET_KEY_FILE: &str = "bundle.key";
/// File name of the public key written by [`generate`].
pub const PUBLIC_KEY_FILE: &str = "bundle.pub";

/// A minisign key ID, shown as minisign shows it (16 upper-case hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId(pub [u8; 8]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

/// A trusted public key: what `verify` and `unpack` check signatures against.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The key's ID, also carried by every signature it made.
    pub id: KeyId,
    pub(crate) key: ed25519_compact::PublicKey,
}

/// An unlocked secret key, ready to sign.
pub struct SecretKey {
    pub(crate) id: KeyId,
    pub(crate) key: ed25519_compact::SecretKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

impl SecretKey {
    /// The key's ID.
    pub fn id(&self) -> KeyId {
        self.id
    }
}

/// Paths written by [`generate`].
#[derive(Debug)]
pub struct GeneratedKeys {
    /// The secret key (mode 0600).
    pub secret: PathBuf,
    /// The public key to hand to every disconnected site.
    pub public: PathBuf,
    /// The new key's ID.
    pub id: KeyId,
}

/// Writes a new key pair as `dir/bundle.key` (0600) and `dir/bundle.pub`. With a password
/// the secret key is encrypted with minisign's scrypt scheme. Refuses to overwrite.
pub fn generate(dir: &Path, password: Option<String>) -> Result<GeneratedKeys> {
    let secret = dir.join(SECRET_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    for path in [&secret, &public] {
        if path.exists() {
            return Err(BundleError::KeyExists { path: path.clone() });
        }
    }
    std::fs::create_dir_all(dir).at(dir)?;
    let key_err = |path: &Path, e: minisign::PError| BundleError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let pair = match password {
        Some(pw) => minisign::KeyPair::generate_encrypted_keypair(Some(pw)),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| key_err(&secret, e))?;
    let sk_text = pair
        .sk
        .to_box(None)
        .map_err(|e| key_err(&secret, e))?
        .into_string();
    let pk_box = pair.pk.to_box().map_err(|e| key_err(&public, e))?;
    let pk_text = pk_box.into_string();
    write_new(&secret, sk_text.as_bytes(), 0o600)?;
    write_new(&public, pk_text.as_bytes(), 0o644)?;
    let id = PublicKey::from_text(&pk_text, &public)?.id;
    Ok(GeneratedKeys { secret, public, id })
}

/// Creates `path` with `mode` from the start (never widened, never overwritten).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .at(path)?;
    file.write_all(bytes).at(path)?;
    file.sync_all().at(path)
}

impl PublicKey {
    /// Reads a minisign public key file (`untrusted comment:` line, then the key).
    pub fn from_file(path: &Path) -> Result<PublicKey> {
        let text = read_key_file(path)?;
        PublicKey::from_text(&text, path)
    }

    /// Parses minisign public key text; `origin` names it in errors.
    pub fn from_text(text: &str, origin: &Path) -> Result<PublicKey> {
        let bad = |reason: &str| {
            BundleError::Key {
            path: origin.to_path_buf(),
            reason: format!("{reason}: expected a minisign public key (made by `coder-airgap keygen` or `minisign -G`)"),
        }
        };
        let line = key_line(text).ok_or_else(|| bad("no key line"))?;
        let raw = B64.decode(line).map_err(|_| bad("not base64"))?;
        if raw.len() != 42 || &raw[..2] != b"Ed" {
            return Err(bad("not an Ed25519 minisign key"));
        }
        let key = ed25519_compact::PublicKey::from_slice(&raw[10..])
            .map_err(|_| bad("invalid Ed25519 key"))?;
        Ok(PublicKey {
            id: key_id(&raw[2..10]),
            key,
        })
    }
}

impl SecretKey {
    /// Reads and, if it is encrypted, decrypts a minisign secret key file.
    pub fn from_file(path: &Path, password: Option<String>) -> Result<SecretKey> {
        let text = read_key_file(path)?;
        let bad = |reason: String| BundleError::Key {
            path: path.to_path_buf(),
            reason,
        };
        let sk = if is_encrypted(&text) {
            let sk_box =
                minisign::SecretKeyBox::from_string(&text).map_err(|e| bad(e.to_string()))?;
            let password = password.ok_or_else(|| {
                bad("is encrypted: give its password with --password-file FILE (or run interactively)".into())
            })?;
            minisign::SecretKey::from_box(sk_box, Some(password))
                .map_err(|e| bad(format!("cannot decrypt ({e}): wrong password?")))?
        } else {
            return unencrypted_key(&text).map_err(bad);
        };
        key_from_bytes(&sk.to_bytes()).map_err(bad)
    }

    /// Whether the secret key file at `path` needs a password.
    pub fn file_is_encrypted(path: &Path) -> Result<bool> {
        let text = read_key_file(path)?;
        Ok(is_encrypted(&text))
    }
}

/// Layout of a decrypted minisign secret key: algorithms and KDF parameters (54 bytes),
/// key ID (8), Ed25519 secret key (64), checksum (32).
fn key_from_bytes(bytes: &[u8]) -> std::result::Result<SecretKey, String> {
    let raw = bytes.get(54..126).ok_or("truncated secret key")?;
    let key = ed25519_compact::SecretKey::from_slice(&raw[8..])
        .map_err(|_| "invalid Ed25519 secret key")?;
    key.validate_public_key(&key.public_key())
        .map_err(|_| "its public half does not match its seed: corrupted key")?;
    Ok(SecretKey {
        id: key_id(&raw[..8]),
        key,
    })
}

/// An unencrypted key, parsed here because the stock `minisign -G -W` (0.11) leaves the
/// checksum zero, which the minisign crate rejects; the seed/public-half check above
/// still catches corruption.
fn unencrypted_key(text: &str) -> std::result::Result<SecretKey, String> {
    use blake2::digest::consts::U32;
    use blake2::{Blake2b, Digest};
    let raw = key_line(text)
        .and_then(|l| B64.decode(l).ok())
        .ok_or("not base64")?;
    if raw.len() != 158 || &raw[..2] != b"Ed" {
        return Err("not an Ed25519 minisign secret key".into());
    }
    let checksum = Blake2b::<U32>::new()
        .chain_update(&raw[..2])
        .chain_update(&raw[54..126])
        .finalize();
    let stored = &raw[126..158];
    if stored != checksum.as_slice() && stored.iter().any(|&b| b != 0) {
        return Err("checksum mismatch: corrupted key".into());
    }
    key_from_bytes(&raw)
}

/// Largest key file read (real ones are under 400 bytes).
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

/// Reads a key file: a regular file of at most [`MAX_KEY_FILE_BYTES`].
fn read_key_file(path: &Path) -> Result<String> {
    crate::open::read_text_limited(path, MAX_KEY_FILE_BYTES, |size| BundleError::Key {
        path: path.to_path_buf(),
        reason: format!(
            "is {size} bytes, over the {MAX_KEY_FILE_BYTES}-byte limit: not a minisign key"
        ),
    })
}

/// The base64 line of a minisign key or signature file (the first non-comment line).
fn key_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
}

/// A minisign secret key is encrypted unless its KDF algorithm bytes are zero.
fn is_encrypted(text: &str) -> bool {
    let raw = key_line(text).and_then(|l| B64.decode(l).ok());
    !matches!(raw.as_deref().and_then(|r| r.get(2..4)), Some([0, 0]))
}

pub(crate) fn key_id(bytes: &[u8]) -> KeyId {
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[..8]);
    KeyId(id)
}
