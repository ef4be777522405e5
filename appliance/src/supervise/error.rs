//! [`SuperviseError`]: why `up` could not start or keep running, each one line naming the
//! file or address involved and the fix.

use std::path::{Path, PathBuf};

use crate::config::ConfigError;
use crate::env::EnvError;
use crate::postgres::PgError;
use crate::release::ReleaseError;

/// A failure of the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// Another `up` holds the lock.
    #[error("another `coder-airgap up` is already running for {root} (pid {pid}): stop it first (systemctl stop coder-airgap, or kill {pid})", root = .root.display())]
    AlreadyRunning {
        /// The appliance root.
        root: PathBuf,
        /// The holder's pid (0 if it could not be read).
        pid: u32,
    },
    /// A file could not be read or written.
    #[error("{what} {path}: {cause} (the service user must own everything under the appliance root; re-run install as root to fix ownership)", path = .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The state file does not parse.
    #[error("{path}: {message} (written by `coder-airgap up`; it is rewritten when up starts)", path = .path.display())]
    StateFile {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `ROOT/run/up.lock` could not be opened for lack of permission.
    #[error("cannot open {path}: {cause}; {facts}", path = .path.display())]
    LockDenied {
        /// The lock file.
        path: PathBuf,
        /// The owners and modes of run/ and the lock, and our uid and gid.
        facts: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// The appliance settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// coderd's environment file.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The installed release.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// The database.
    #[error("postgres: {0}")]
    Postgres(PgError),
    /// A setting that `up` cannot use.
    #[error("{path}: {message}", path = .path.display())]
    Setting {
        /// The file holding the setting.
        path: PathBuf,
        /// What is wrong, with the fix.
        message: String,
    },
    /// The provider mirror could not start.
    #[error("provider mirror: {0}")]
    Mirror(String),
    /// coderd could not be started.
    #[error("cannot start {path}: {cause} (re-install the release)", path = .path.display())]
    Spawn {
        /// The coder binary.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A file could not be replaced durably (names the path and the step).
    #[error(transparent)]
    Write(#[from] airgap_fsutil::WriteError),
}

/// `?` on a [`PgError`]: the message says it came from Postgres and carries its text (the
/// cause is not a `source()`: docs/errors.md).
impl From<PgError> for SuperviseError {
    fn from(cause: PgError) -> Self {
        SuperviseError::Postgres(cause)
    }
}

impl SuperviseError {
    /// A closure making [`SuperviseError::Io`] for `path`.
    pub fn io(
        what: &'static str,
        path: impl AsRef<Path>,
    ) -> impl FnOnce(std::io::Error) -> SuperviseError {
        let path = path.as_ref().to_path_buf();
        move |cause| SuperviseError::Io { what, path, cause }
    }
}
