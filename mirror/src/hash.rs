//! Provider package hashes as Terraform computes them: `zh:` (sha256 of the zip) and `h1:`
//! (Go's dirhash "Hash1" over the files in a package).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Errors while hashing a provider package.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The file could not be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (printed in the message; not a `source`).
        cause: io::Error,
    },
    /// The file is not a readable zip archive.
    #[error("{path} is not a valid zip archive ({message}); re-download or re-export the provider package")]
    Zip {
        /// The file.
        path: PathBuf,
        /// What the zip reader reported.
        message: String,
    },
    /// A file name inside the package contains a newline, which Hash1 cannot represent.
    #[error("{path}: entry name {name:?} contains a newline; Terraform cannot hash this package")]
    BadName {
        /// The archive.
        path: PathBuf,
        /// The entry name.
        name: String,
    },
}

/// Both hashes of a provider zip, plus what Terraform would trip over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipHashes {
    /// `zh:` + hex sha256 of the zip bytes.
    pub zh: String,
    /// `h1:` over every entry of the zip (what Terraform checks a downloaded zip against).
    pub h1: String,
    /// Directory entries in the zip. Non-empty means the `h1:` of the zip differs from the
    /// `h1:` of the unpacked directory that Terraform writes into lock files.
    pub directory_entries: Vec<String>,
}

impl ZipHashes {
    /// Both hashes in the order Terraform lists them: `h1:` first, then `zh:`.
    pub fn as_list(&self) -> Vec<String> {
        vec![self.h1.clone(), self.zh.clone()]
    }
}

/// `h1:` from `(name, hex sha256 of contents)` pairs, in any order.
pub fn h1_from_digests<I, S>(entries: I) -> String
where
    I: IntoIterator<Item = (S, String)>,
    S: Into<String>,
{
    let mut lines: Vec<(String, String)> = entries
        .into_iter()
        .map(|(name, digest)| (name.into(), digest))
        .collect();
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let mut summary = Sha256::new();
    for (name, digest) in &lines {
        summary.update(format!("{digest}  {name}\n").as_bytes());
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(summary.finalize());
    format!("h1:{b64}")
}

/// Hex sha256 of everything `reader` yields, read in 64 KiB chunks.
pub fn sha256_reader(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, HashError> {
    let file = std::fs::File::open(path).map_err(|source| io_err(path, source))?;
    sha256_reader(file).map_err(|source| io_err(path, source))
}

/// Both hashes of the provider zip at `path` (blocking: call from `spawn_blocking`).
pub fn zip_hashes(path: &Path) -> Result<ZipHashes, HashError> {
    let zh = format!("zh:{}", sha256_file(path)?);
    let file = std::fs::File::open(path).map_err(|source| io_err(path, source))?;
    let mut archive =
        zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| zip_err(path, e))?;
    let mut digests = Vec::with_capacity(archive.len());
    let mut directory_entries = Vec::new();
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(|e| zip_err(path, e))?;
        let name = entry.name().map_err(|e| zip_err(path, e))?.into_owned();
        if name.contains('\n') {
            return Err(HashError::BadName {
                path: path.to_path_buf(),
                name,
            });
        }
        if entry.is_dir() {
            directory_entries.push(name.clone());
        }
        let digest = sha256_reader(entry).map_err(|source| io_err(path, source))?;
        digests.push((name, digest));
    }
    Ok(ZipHashes {
        zh,
        h1: h1_from_digests(digests),
        directory_entries,
    })
}

/// `h1:` of an unpacked provider directory, as Terraform writes it into lock files:
/// regular files only (directories skipped), names relative with `/` separators.
pub fn h1_dir(dir: &Path) -> Result<String, HashError> {
    let mut digests = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = std::fs::read_dir(&current).map_err(|source| io_err(&current, source))?;
        for entry in entries {
            let entry = entry.map_err(|source| io_err(&current, source))?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(dir).unwrap_or(&path);
            let name = rel.to_string_lossy().replace('\\', "/");
            digests.push((name, sha256_file(&path)?));
        }
    }
    Ok(h1_from_digests(digests))
}

fn io_err(path: &Path, cause: io::Error) -> HashError {
    HashError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

fn zip_err(path: &Path, e: zip::result::ZipError) -> HashError {
    HashError::Zip {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example from Terraform's own lock file (terraform-facts.md).
    #[test]
    fn h1_matches_terraforms_worked_example() {
        let h1 = h1_from_digests([(
            "terraform-provider-dummy_v1.0.0",
            "047f82ae8c93ab7a4951a833e62349bfad2abb93d063aea2d98819d52de2b90a".to_string(),
        )]);
        assert_eq!(h1, "h1:S8xZPgfONhoutWIVsQ5qDaZtQDnCXehOauz5ifGoZ3U=");
    }

    #[test]
    fn h1_sorts_names() {
        let a = h1_from_digests([("b", "1".to_string()), ("a", "2".to_string())]);
        let b = h1_from_digests([("a", "2".to_string()), ("b", "1".to_string())]);
        assert_eq!(a, b);
        assert_ne!(
            a,
            h1_from_digests([("a", "1".to_string()), ("b", "2".to_string())])
        );
    }
}
