//! The one error type of the bundle crate. Every variant names what failed and, where the
//! operator can do something, what to do; the CLI prints it as one line. A cause is kept in
//! a field named `cause` and printed in the message, never returned by `source()`
//! (docs/errors.md).

use std::path::PathBuf;

/// Everything that can go wrong while making, signing, verifying or unpacking a bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// A file or directory could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error (its text is part of this message; not a `source`).
        cause: std::io::Error,
    },
    /// A key file is missing, malformed, or its password is wrong.
    #[error("key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `keygen` would overwrite an existing key.
    #[error(
        "{path} already exists: refusing to overwrite a key (move it away or choose another --out)"
    )]
    KeyExists {
        /// The existing key file.
        path: PathBuf,
    },
    /// The stage directory cannot be packed as it is.
    #[error("stage {path}: {reason}")]
    Stage {
        /// The offending path in the stage.
        path: PathBuf,
        /// Why it cannot be packed.
        reason: String,
    },
    /// A stage file changed while it was being packed.
    #[error(
        "stage file {path} changed while packing: re-run pack once nothing writes to the stage"
    )]
    StageChanged {
        /// The file that changed.
        path: PathBuf,
    },
    /// The detached signature file next to the bundle is missing.
    #[error(
        "signature file {path} is missing: copy it next to the bundle (or name it with --sig)"
    )]
    MissingSignature {
        /// Where the signature was expected.
        path: PathBuf,
    },
    /// A signature is not in minisign format.
    #[error("{what} is not a valid minisign signature")]
    MalformedSignature {
        /// Which signature.
        what: String,
    },
    /// A legacy (non-prehashed, `Ed`) minisign signature: refused everywhere, so the
    /// detached signature and the manifest's are held to one scheme.
    #[error("{what} is a legacy (non-prehashed) minisign signature: re-sign with `coder-airgap pack` or `minisign -S` (prehashed)")]
    LegacySignature {
        /// Which signature.
        what: String,
    },
    /// A signature file is larger than any minisign signature.
    #[error("signature file {path} is {size} bytes, over the {limit}-byte limit: not a minisign signature")]
    SignatureTooLarge {
        /// The signature file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A bundle, signature or key given on the command line is not a regular file (a FIFO,
    /// a device such as `/dev/zero`, a directory): reading it could hang or never end.
    #[error("{path} is a {kind}, not a regular file: give the file itself (copy it off the medium first)")]
    NotRegularFile {
        /// The path given.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A name or path in the signed manifest may not become part of a path.
    #[error(transparent)]
    InvalidName(#[from] crate::names::NameError),
    /// A signature was made by another key than the trusted one.
    #[error("{what} was signed by key {signed_by}, but the trusted key is {trusted}: wrong --pubkey, or a bundle from someone else")]
    WrongKey {
        /// Which signature.
        what: String,
        /// Key ID found in the signature.
        signed_by: String,
        /// Key ID of the trusted public key.
        trusted: String,
    },
    /// A signature does not match the signed bytes.
    #[error("bad signature on {what}: the bundle was altered after signing")]
    BadSignature {
        /// Which signature.
        what: String,
    },
    /// The manifest has expired.
    #[error("bundle expired at {expires} (now {now}): ask for a fresh bundle, or pass --allow-expired on purpose")]
    Expired {
        /// The manifest's expiry, RFC 3339.
        expires: String,
        /// The time of the check, RFC 3339.
        now: String,
    },
    /// The manifest is not what this version of coder-airgap understands.
    #[error("manifest: {0}")]
    BadManifest(String),
    /// The manifest entry is larger than any real manifest.
    #[error("manifest.json is {size} bytes, over the {limit}-byte limit: not a coder-airgap bundle, or a hostile one")]
    ManifestTooLarge {
        /// Declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The archive does not start with the manifest and its signature.
    #[error("entry {index} is {found:?}, expected {expected:?}: not a coder-airgap bundle")]
    MisplacedEntry {
        /// 0-based position in the archive.
        index: usize,
        /// What was found there.
        found: String,
        /// What must be there.
        expected: String,
    },
    /// An entry path is absolute, climbs out with `..`, or is otherwise unsafe.
    #[error("unsafe path {path:?} in bundle: {reason}")]
    UnsafePath {
        /// The path as written in the archive or manifest.
        path: String,
        /// What makes it unsafe.
        reason: &'static str,
    },
    /// A symlink, hard link, device, FIFO or other non-regular entry.
    #[error("entry {path:?} is a {kind}: bundles hold only regular files and directories")]
    ForbiddenEntryType {
        /// The entry path.
        path: String,
        /// What kind of entry it is.
        kind: &'static str,
    },
    /// An archive entry that the signed manifest does not list.
    #[error("entry {path:?} is not listed in the signed manifest")]
    UnexpectedEntry {
        /// The entry path.
        path: String,
    },
    /// The same path appears twice in the archive.
    #[error("entry {path:?} appears more than once")]
    DuplicateEntry {
        /// The entry path.
        path: String,
    },
    /// A file the manifest lists is not in the archive.
    #[error("{path:?} is listed in the manifest but missing from the bundle")]
    MissingEntry {
        /// The missing path.
        path: String,
    },
    /// An entry's size differs from the manifest.
    #[error("{path:?}: size {actual} bytes, manifest says {expected}")]
    SizeMismatch {
        /// The entry path.
        path: String,
        /// Size in the manifest.
        expected: u64,
        /// Size in the archive.
        actual: u64,
    },
    /// An entry's content differs from the manifest.
    #[error("{path:?}: sha256 {actual}, manifest says {expected}")]
    HashMismatch {
        /// The entry path.
        path: String,
        /// sha256 in the manifest.
        expected: String,
        /// sha256 of the bytes read.
        actual: String,
    },
    /// The archive ends before its end marker.
    #[error("bundle is truncated ({detail}): copy it again")]
    Truncated {
        /// Where it ended.
        detail: String,
    },
    /// The gzip or tar structure is damaged.
    #[error("bundle is corrupt: {0}")]
    Corrupt(String),
    /// Bytes follow the end of the archive.
    #[error("bundle has data after the end of the archive ({0})")]
    TrailingData(String),
    /// The target directory for unpack already exists.
    #[error("{path} already exists: unpack into a new directory")]
    TargetExists {
        /// The target directory.
        path: PathBuf,
    },
    /// A file or directory could not be put in place durably (names the path and the step).
    #[error(transparent)]
    Write(#[from] airgap_fsutil::WriteError),
}

/// Result with [`BundleError`].
pub type Result<T, E = BundleError> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    /// Maps an `io::Error` into [`BundleError::Io`] naming `path`.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|cause| BundleError::Io {
            path: path.into(),
            cause,
        })
    }
}
