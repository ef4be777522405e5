//! Password files: random secrets stored 0600 in the secrets directory and re-used.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::{PgError, Result};

/// Reads the secret in `path`, or creates it (random, 0600) when it does not exist.
/// Returns the secret and whether it was created now. A file readable by others is
/// tightened to 0600.
pub fn load_or_create(path: &Path) -> Result<(String, bool)> {
    if let Some(secret) = load(path)? {
        return Ok((secret, false));
    }
    let secret = random_hex(24)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| PgError::io("cannot create", path, e))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| PgError::io("cannot write", path, e))?;
    Ok((secret, true))
}

/// Reads the secret in `path` if the file exists.
pub fn load(path: &Path) -> Result<Option<String>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PgError::io("cannot read", path, e)),
    };
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "{} was readable by others; setting it to 0600",
            path.display()
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| PgError::io("cannot chmod", path, e))?;
    }
    let text = std::fs::read_to_string(path).map_err(|e| PgError::io("cannot read", path, e))?;
    let secret = text.trim().to_string();
    if secret.is_empty() {
        return Err(PgError::io(
            "empty password file",
            path,
            std::io::Error::from(std::io::ErrorKind::InvalidData),
        ));
    }
    Ok(Some(secret))
}

/// `bytes` random bytes from the kernel, hex-encoded (safe in URLs and SQL literals).
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| PgError::io("cannot read", "/dev/urandom", e))?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused_with_0600() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| PgError::io("tempdir", "/tmp", e))?;
        let path = dir.path().join("x.password");
        let (first, created) = load_or_create(&path)?;
        assert!(created);
        assert_eq!(first.len(), 48);
        let mode = std::fs::metadata(&path).map_err(|e| PgError::io("stat", &path, e))?;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        let (second, created) = load_or_create(&path)?;
        assert!(!created);
        assert_eq!(first, second);
        Ok(())
    }
}
