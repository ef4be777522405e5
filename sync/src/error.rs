//! Why a sync failed. Every message names the file or URL involved and what to do about it,
//! and carries its cause's text: causes are fields named `cause`, never a `source()`
//! (docs/errors.md).

use std::path::PathBuf;

use airgap_mirror::fetch::FetchError;
use airgap_mirror::openpgp::VerifyError;

/// A sync that cannot go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The spec file could not be read.
    #[error("cannot read spec {path}: {cause}")]
    SpecIo {
        /// The spec file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The spec (after `--set` overrides) is not valid.
    #[error("spec {path}: {message}")]
    Spec {
        /// The spec file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// A `--set` argument is malformed.
    #[error("--set {arg:?}: {message} (expected section.key=value, e.g. coder.version=2.35.3)")]
    BadSet {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        message: String,
    },
    /// A download failed (status, transport, checksum mismatch).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A checksum file's signature does not verify.
    #[error("{what}: the signature {url} does not verify: {cause}. The release or its checksum file was altered, or {field}.key_url / {field}.key_file name the wrong key")]
    Signature {
        /// The component.
        what: &'static str,
        /// The signature URL.
        url: String,
        /// Why it failed.
        cause: VerifyError,
        /// The spec section that names the key (`terraform`, `coder`).
        field: &'static str,
    },
    /// The signing key has expired.
    #[error("{what}: the signing key {fingerprint} EXPIRED on {date}; this copy of the public key is stale: fetch a refreshed copy (same fingerprint, extended expiry) and point {field}.key_url or {field}.key_file at it")]
    KeyExpired {
        /// The component.
        what: &'static str,
        /// The key's fingerprint.
        fingerprint: String,
        /// When it expired (YYYY-MM-DD).
        date: String,
        /// The spec section that names the key (`terraform`, `coder`).
        field: &'static str,
    },
    /// The configured key is not the pinned one.
    #[error("{what}: the key from {origin} has fingerprint {actual}, but {field}.key_fingerprint pins {expected}: refusing it (check {field}.key_url / {field}.key_file, or the pinned fingerprint)")]
    WrongKey {
        /// The component.
        what: &'static str,
        /// Where the key came from.
        origin: String,
        /// The key's fingerprint.
        actual: String,
        /// The pinned fingerprint.
        expected: String,
        /// The spec section that pins it.
        field: &'static str,
    },
    /// A key or signature that must exist is missing.
    #[error("{what}: {message}")]
    Missing {
        /// The component.
        what: &'static str,
        /// What is missing and how to fix it.
        message: String,
    },
    /// The checksum file has no line for an archive.
    #[error("{sums_url} lists no checksum for {file}: the version or platform is not published there (check the version and base URL)")]
    NoChecksum {
        /// The archive file name.
        file: String,
        /// The checksum file URL.
        sums_url: String,
    },
    /// `--locked` found a difference between upstream and the lock file.
    #[error("--locked: {component} drifted: {detail}. Nothing was changed; run sync without --locked to accept it, after checking why upstream changed")]
    Drift {
        /// The component.
        component: String,
        /// What differs.
        detail: String,
    },
    /// The lock file is missing, unreadable or of another format.
    #[error("lock file {0}")]
    Lock(airgap_stage::StageError),
    /// A tar.gz failed the archive checks (names, links, modes, sizes).
    #[error(transparent)]
    Tar(#[from] super::archive::TarError),
    /// A zip failed the archive checks (names, links, sizes, the executable).
    #[error(transparent)]
    Zip(#[from] airgap_mirror::archive::ZipCheckError),
    /// An archive could not be read or unpacked.
    #[error("{path}: {message}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A local program (pg_config, terraform version) printed something unexpected.
    #[error("running {program}: {message}")]
    Program {
        /// The program.
        program: PathBuf,
        /// What happened.
        message: String,
    },
    /// A local program (pg_config, terraform version) could not be run or failed.
    #[error(transparent)]
    Tool(#[from] airgap_tool::ToolError),
    /// The provider sync failed.
    #[error("providers: {0}")]
    Providers(Box<airgap_mirror::sync::SyncError>),
    /// A local providers tree is not a valid mirror.
    #[error("--providers-from {path}: {message}")]
    ProvidersFrom {
        /// The tree.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A file or directory could not be put in place durably (names the path and the step).
    #[error(transparent)]
    Write(#[from] airgap_fsutil::WriteError),
}

/// `map_err` helper: an io::Error at `path`.
pub fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SyncError {
    let path = path.into();
    move |cause| SyncError::Io { path, cause }
}

/// Turns a signature failure into the error that says what to do (expired keys by name).
pub fn signature_error(
    what: &'static str,
    url: &str,
    field: &'static str,
    source: VerifyError,
) -> SyncError {
    match source {
        VerifyError::Expired {
            fingerprint,
            expired_at,
        } => SyncError::KeyExpired {
            what,
            fingerprint,
            date: airgap_mirror::failure::date(expired_at),
            field,
        },
        cause => SyncError::Signature {
            what,
            url: url.to_string(),
            cause,
            field,
        },
    }
}
