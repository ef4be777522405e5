//! Shared download steps for the release components: the run context, optional files,
//! checksum-verified (and, under `--locked`, lock-checked) downloads into the cache.

use std::path::{Path, PathBuf};

use airgap_mirror::fetch::{FetchError, Fetcher, Url};

use super::error::SyncError;
use super::stagefs::Move;
use airgap_stage::{Artifact, Component, Lock};

/// What every component's preparation shares.
pub struct Ctx<'a> {
    /// Downloads (parallel, resumable, verified).
    pub fetcher: &'a Fetcher,
    /// Where downloaded archives are kept between runs (incremental syncs).
    pub cache: PathBuf,
    /// `STAGE/.sync-tmp`, where staged files are prepared.
    pub tmp: PathBuf,
    /// With `--locked`: the lock to hold upstream to.
    pub locked: Option<&'a Lock>,
}

/// A component ready to be committed to the stage.
#[derive(Debug)]
pub struct Prepared {
    /// Its lock entry.
    pub component: Component,
    /// Files and trees to rename into the stage.
    pub moves: Vec<Move>,
    /// Things the operator should know.
    pub warnings: Vec<String>,
}

/// Joins `rel` onto a base URL, keeping the base's path (`BASE/rel`).
pub fn join(base: &str, rel: &str) -> Result<Url, SyncError> {
    let text = format!("{}/{rel}", base.trim_end_matches('/'));
    Url::parse(&text).map_err(|e| SyncError::Missing {
        what: "url",
        message: format!("{text:?} is not a valid URL: {e}"),
    })
}

/// GETs `url`; `None` on 404 (an optional file that is not published).
pub async fn get_optional(fetcher: &Fetcher, url: &Url) -> Result<Option<Vec<u8>>, SyncError> {
    match fetcher.get_bytes(url).await {
        Ok((bytes, _)) => Ok(Some(bytes)),
        Err(FetchError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Under `--locked`, fails unless the spec's version is the locked one.
pub fn check_version(
    locked: Option<&Component>,
    name: &str,
    version: &str,
) -> Result<(), SyncError> {
    match locked {
        Some(c) if c.version != version => Err(SyncError::Drift {
            component: name.to_string(),
            detail: format!("the spec pins {version}, the lock file has {}", c.version),
        }),
        _ => Ok(()),
    }
}

/// Under `--locked`, fails unless `sha256` is what the lock recorded for `file`.
pub fn check_artifact(
    locked: Option<&Component>,
    name: &str,
    file: &str,
    sha256: &str,
) -> Result<(), SyncError> {
    let Some(component) = locked else {
        return Ok(());
    };
    match component.artifact_sha(file) {
        Some(want) if want.eq_ignore_ascii_case(sha256) => Ok(()),
        Some(want) => Err(SyncError::Drift {
            component: name.to_string(),
            detail: format!("{file} is now sha256 {sha256}, the lock file has {want}"),
        }),
        None => Err(SyncError::Drift {
            component: name.to_string(),
            detail: format!("{file} is not in the lock file"),
        }),
    }
}

/// Downloads `url` into the cache as `file`, requiring `sha256` (an already-cached file
/// with that hash is reused) and at most `max_bytes`; returns the cached path and its
/// artifact record.
pub async fn download_capped(
    ctx: &Ctx<'_>,
    url: &Url,
    file: &str,
    sha256: &str,
    max_bytes: u64,
) -> Result<(PathBuf, Artifact), SyncError> {
    let dest = ctx.cache.join(file);
    ctx.fetcher
        .download_capped(url, &dest, Some(sha256), max_bytes)
        .await?;
    let artifact = Artifact {
        file: file.to_string(),
        url: url.to_string(),
        sha256: sha256.to_ascii_lowercase(),
    };
    Ok((dest, artifact))
}

/// The artifact record for a local input file.
pub fn local_artifact(path: &Path) -> Result<Artifact, SyncError> {
    Ok(Artifact {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        url: super::stagefs::file_url(path),
        sha256: super::stagefs::sha256_file(path)?,
    })
}

/// Verifies a detached signature over `data` with a key that must have the pinned
/// fingerprint; expired keys and wrong keys get their own errors.
pub fn verify_signed(
    what: &'static str,
    key: (&[u8], &str),
    pinned: &str,
    field: &'static str,
    signature: (&[u8], &str),
    data: &[u8],
) -> Result<(), SyncError> {
    use airgap_mirror::openpgp::{fingerprint, normalize_fingerprint, verify_detached};
    let (key_bytes, origin) = key;
    let actual = fingerprint(key_bytes).map_err(|e| SyncError::Missing {
        what,
        message: format!("the key from {origin} is not an OpenPGP public key: {e}"),
    })?;
    let expected = normalize_fingerprint(pinned);
    if actual != expected {
        return Err(SyncError::WrongKey {
            what,
            origin: origin.to_string(),
            actual,
            expected,
            field,
        });
    }
    let (sig, sig_url) = signature;
    verify_detached(key_bytes, sig, data)
        .map(|_| ())
        .map_err(|e| super::error::signature_error(what, sig_url, field, e))
}

/// Runs archive work (decompression, extraction) off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, SyncError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SyncError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SyncError::Io {
            path: PathBuf::from("<archive worker>"),
            cause: std::io::Error::other(e.to_string()),
        })?
}
