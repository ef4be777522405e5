//! The one error type of this crate: each variant is one way a CA operation fails, and its
//! message names the file or value involved and what to do about it, and carries its
//! cause's text (`source()` is `None`: see docs/errors.md).

use std::path::PathBuf;

/// Everything that can go wrong creating, loading or using the CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertsError {
    /// Reading, writing, renaming or locking a file failed.
    #[error("could not {action} {}: {cause}", path.display())]
    Io {
        /// What was being done ("read", "write", "create directory", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error (printed in the message; not a `source`).
        cause: std::io::Error,
    },

    /// `init` or `import` found a CA already in the directory.
    #[error(
        "a CA already exists in {}; refusing to overwrite it (choose another --dir, or move the old CA away first)",
        .0.display()
    )]
    CaExists(PathBuf),

    /// `init` or `import` was pointed at a directory that holds other files.
    #[error(
        "{} is not empty; refusing to create a CA among other files (choose a new or empty --dir)",
        .0.display()
    )]
    DirNotEmpty(PathBuf),

    /// There is no CA in the directory, or one of its files is missing.
    #[error(
        "no CA in {}: {missing} is missing (create one with `coder-airgap ca init --dir {}` or `ca import`)",
        dir.display(), dir.display()
    )]
    NoCa {
        /// The CA directory.
        dir: PathBuf,
        /// The missing file, relative to `dir`.
        missing: &'static str,
    },

    /// A file of the CA directory, or one given to `import`, cannot be understood.
    #[error("{} is not valid: {detail}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        detail: String,
    },

    /// A private key file can be read by other users.
    #[error(
        "{} can be read by other users (mode {mode:o}); run `chmod 600 {}` and check who copied it",
        path.display(), path.display()
    )]
    InsecureKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The imported private key does not belong to the imported certificate.
    #[error(
        "the key in {} does not match the certificate in {} (pass the key that signed that CA certificate)",
        key.display(), cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },

    /// An option value is out of range or malformed (a name, days, a CIDR, a serial...).
    #[error("invalid {what} {value:?}: {fix}")]
    InvalidInput {
        /// Which input ("DNS name", "--days", "CIDR", ...).
        what: &'static str,
        /// The value given.
        value: String,
        /// What a valid value looks like.
        fix: String,
    },

    /// A leaf request has no DNS name and no IP address.
    #[error(
        "a certificate needs at least one subject alternative name: pass --dns NAME or --ip ADDR"
    )]
    NoSubjectAltName,

    /// A requested name or address is outside the CA's name constraints.
    #[error(
        "{name} is outside this CA's name constraints ({constraints}); clients would reject the certificate. Request a name inside them, or create a CA that permits it"
    )]
    OutsideConstraints {
        /// The refused DNS name or IP address.
        name: String,
        /// The constraints, as `permitted: ...; excluded: ...`.
        constraints: String,
    },

    /// An output file of `issue` already exists.
    #[error(
        "{} already exists; refusing to overwrite it (renew it with `coder-airgap ca renew`, or choose another --out)",
        .0.display()
    )]
    OutputExists(PathBuf),

    /// The serial is not in the ledger.
    #[error("serial {0} was not issued by this CA (see `coder-airgap ca list`)")]
    UnknownSerial(String),

    /// The serial is already revoked.
    #[error("serial {0} is already revoked; run `coder-airgap ca crl` to publish the CRL")]
    AlreadyRevoked(String),

    /// rcgen refused to build or sign a certificate or CRL.
    #[error("could not {action}: {cause}")]
    Crypto {
        /// What was being built or signed.
        action: &'static str,
        /// rcgen's error (printed in the message; not a `source`).
        cause: rcgen::Error,
    },

    /// The system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),

    /// A file could not be replaced durably (names the path and the step).
    #[error(transparent)]
    Write(#[from] airgap_fsutil::WriteError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = CertsError> = std::result::Result<T, E>;

impl CertsError {
    /// An [`CertsError::Io`] for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |cause| CertsError::Io {
            action,
            path,
            cause,
        }
    }

    /// A [`CertsError::Crypto`] for `action`.
    pub(crate) fn crypto(action: &'static str) -> impl FnOnce(rcgen::Error) -> Self {
        move |cause| CertsError::Crypto { action, cause }
    }

    /// A [`CertsError::BadFile`] for `path`.
    pub(crate) fn bad_file(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        CertsError::BadFile {
            path: path.into(),
            detail: detail.into(),
        }
    }

    /// A [`CertsError::InvalidInput`].
    pub(crate) fn invalid(
        what: &'static str,
        value: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        CertsError::InvalidInput {
            what,
            value: value.into(),
            fix: fix.into(),
        }
    }
}
