//! [`dump`] and [`restore`]: the tree's `pg_dump -Fc` / `pg_restore`, as upgrade and
//! rollback use them.
//!
//! The tools run with a clean environment (only `PATH` and `PGPASSWORD`), so a stray
//! `PGHOST` or `PGOPTIONS` in the operator's shell cannot redirect them, and the password
//! never appears on a command line. A dump is written to a temporary name beside the
//! target, synced, and renamed into place: a half-written dump never has the real name.

use std::io::Write;
use std::path::{Path, PathBuf};

use airgap_tool::Tool;
use sha2::{Digest, Sha256};

use super::{PgError, Result, SecretUrl, Tree};

/// A dump file, as written or restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpInfo {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, lower-case hex (what the ledger records).
    pub sha256: String,
}

/// Dumps the database at `url` with the tree's `pg_dump -Fc` into `out` (replacing it
/// atomically) and returns its size and SHA-256. The tree's pg_dump must be at least the
/// server's major version.
pub async fn dump(tree: &Tree, url: &SecretUrl, out: &Path) -> Result<DumpInfo> {
    let (conninfo, password) = split_password(url)?;
    let name = out.file_name().ok_or_else(|| PgError::InvalidUrl {
        reason: format!("dump target {} has no file name", out.display()),
    })?;
    let tmp = out.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let cmd = tool(tree, "pg_dump", &password)
        .args(["--format=custom", "--no-password", "--file"])
        .arg(&tmp)
        .arg("--dbname")
        .arg(&conninfo);
    if let Err(e) = cmd.run_async().await {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    let info = blocking(move_into_place(tmp, out.to_path_buf())).await?;
    Ok(info)
}

/// Restores `file` (a `pg_dump -Fc` archive) into the database at `url` with
/// `pg_restore --clean --if-exists --no-owner --single-transaction`: objects in the dump
/// are dropped and recreated, all or nothing. Returns the file's size and SHA-256.
pub async fn restore(tree: &Tree, url: &SecretUrl, file: &Path) -> Result<DumpInfo> {
    let (conninfo, password) = split_password(url)?;
    let path = file.to_path_buf();
    let info = blocking(move || hash_file(&path)).await?;
    let cmd = tool(tree, "pg_restore", &password)
        .args([
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--no-password",
            "--dbname",
        ])
        .arg(&conninfo)
        .arg(file);
    cmd.run_async().await?;
    Ok(info)
}

/// One of the tree's tools with nothing but PATH and PGPASSWORD in its environment, and
/// no deadline (a dump or restore takes as long as the database is large).
fn tool(tree: &Tree, name: &str, password: &Option<String>) -> Tool {
    let path = format!("{}:/usr/bin:/bin", tree.bin_dir().display());
    let tool = Tool::new(name, tree.bin(name)).env("PATH", path);
    match password {
        Some(pw) => tool.env("PGPASSWORD", pw),
        None => tool,
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PgError::Sql(format!("background task failed: {e}")))?
}

/// Hashes `tmp`, then syncs it, renames it to `out` and syncs the directory
/// ([`airgap_fsutil::persist`]).
fn move_into_place(tmp: PathBuf, out: PathBuf) -> impl FnOnce() -> Result<DumpInfo> {
    move || {
        let mut info = hash_file(&tmp)?;
        airgap_fsutil::persist(&tmp, &out)?;
        info.path = out;
        Ok(info)
    }
}

/// The size and SHA-256 of a dump file (read in a blocking context).
pub fn hash_file(path: &Path) -> Result<DumpInfo> {
    let mut file = std::fs::File::open(path).map_err(|e| PgError::io("cannot open", path, e))?;
    let mut hasher = Sha256::new();
    let bytes =
        std::io::copy(&mut file, &mut hasher).map_err(|e| PgError::io("cannot read", path, e))?;
    hasher
        .flush()
        .map_err(|e| PgError::io("cannot hash", path, e))?;
    Ok(DumpInfo {
        path: path.to_path_buf(),
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Splits the password out of a `postgres://` URL: the URL without it (safe on a command
/// line) and the decoded password (for PGPASSWORD).
fn split_password(url: &SecretUrl) -> Result<(String, Option<String>)> {
    let mut parsed = url.url().clone();
    let password = parsed.password().map(percent_decode);
    parsed
        .set_password(None)
        .map_err(|()| PgError::InvalidUrl {
            reason: "cannot remove the password from the URL".into(),
        })?;
    Ok((parsed.to_string(), password))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_leaves_the_url() -> Result<()> {
        let url = SecretUrl::parse("postgres://coder:p%40ss@127.0.0.1:5432/coder?sslmode=disable")?;
        let (conninfo, pw) = split_password(&url)?;
        assert_eq!(
            conninfo,
            "postgres://coder@127.0.0.1:5432/coder?sslmode=disable"
        );
        assert_eq!(pw.as_deref(), Some("p@ss"));
        Ok(())
    }
}
