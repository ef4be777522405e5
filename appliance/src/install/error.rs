//! [`InstallError`]: every way `install` and `rollback` fail. Each message is complete on
//! its own (it carries its cause's text, so `source()` is `None`: see docs/errors.md) and
//! names the file, release or user involved and, where there is one, the fix.

use std::path::PathBuf;

use airgap_bundle::names::NameError;
use airgap_bundle::BundleError;
use airgap_certs::CertsError;

use super::contract::ContractError;
use crate::config::ConfigError;
use crate::env::EnvError;
use crate::postgres::PgError;
use crate::privilege::PrivilegeError;
use crate::release::ReleaseError;
use crate::rootdir::RootDirError;

/// Why an install or a rollback stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    // ---- the service user and ROOT ----
    /// Looking up or creating the service user failed.
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
    /// Not root, and not the service user either.
    #[error(
        "install as root (it creates files for --service-user {name}), or run it as {name}, \
         or pass --service-user with your own user name"
    )]
    NotServiceUser {
        /// The service user asked for.
        name: String,
    },
    /// A directory above ROOT belongs to the service user.
    #[error(
        "{} belongs to the service user {user}, who could move ROOT ({}) away under root; \
         chown root:root {} or choose another --root (like /srv/coder)",
        dir.display(), root.display(), dir.display()
    )]
    AncestorOwnedByServiceUser {
        /// The directory.
        dir: PathBuf,
        /// The service user.
        user: String,
        /// The appliance root.
        root: PathBuf,
    },
    /// A directory above ROOT keeps the service user out.
    #[error(
        "the service user {user} cannot reach {}: {} is mode {mode:o}; chmod o+x {} or \
         choose another --root (like /srv/coder)",
        root.display(), dir.display(), dir.display()
    )]
    Unreachable {
        /// The service user.
        user: String,
        /// The appliance root.
        root: PathBuf,
        /// The directory without search permission for others.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A directory handle operation under ROOT failed, or the tree is unsafe.
    #[error(transparent)]
    RootDir(#[from] RootDirError),
    /// Another install or rollback holds the install lock.
    #[error(
        "{}: another install or rollback is running on this root; wait for it to finish",
        path.display()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A file or directory could not be read, written or removed.
    #[error("{action} {}: {cause}", path.display())]
    Io {
        /// What was being done (`reading`, `removing`, ...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        cause: std::io::Error,
    },
    /// This program's own path could not be found (it copies itself under ROOT/bin).
    #[error("locating this program: {cause}")]
    OwnExe {
        /// The operating system's error.
        cause: std::io::Error,
    },
    /// A record could not be written or read as JSON.
    #[error("{what}: {cause}")]
    Json {
        /// What was being written or read.
        what: String,
        /// The parser's error.
        cause: serde_json::Error,
    },
    /// The async runtime for the database step could not start.
    #[error("{cause}")]
    Runtime {
        /// The operating system's error.
        cause: std::io::Error,
    },

    // ---- preflight ----
    /// The bundle's sequence is lower than the installed release's.
    #[error(
        "bundle {bundle} has sequence {sequence}, lower than the installed {installed} \
         (sequence {installed_sequence}): refusing a downgrade, which is how a replayed old \
         bundle would look; pass --allow-downgrade if this is on purpose"
    )]
    Downgrade {
        /// The bundle's name and version, escaped for the terminal.
        bundle: String,
        /// Its sequence.
        sequence: u64,
        /// The installed release's name and version.
        installed: String,
        /// The installed release's sequence.
        installed_sequence: u64,
    },
    /// The free space of ROOT's filesystem could not be read.
    #[error("{}: cannot read free space: {cause}", path.display())]
    FreeSpace {
        /// The directory probed.
        path: PathBuf,
        /// The system call's error.
        cause: nix::errno::Errno,
    },
    /// ROOT's filesystem has too little room for the release.
    #[error(
        "not enough free disk for {}: the release needs {release_mib} MiB plus {headroom_mib} \
         MiB headroom, the filesystem of {} has {free_mib} MiB free; free {short_mib} MiB or \
         choose another --root",
        root.display(), probe.display()
    )]
    Disk {
        /// The appliance root.
        root: PathBuf,
        /// The directory probed (ROOT or its nearest existing ancestor).
        probe: PathBuf,
        /// The unpacked release, MiB.
        release_mib: u64,
        /// The headroom kept, MiB.
        headroom_mib: u64,
        /// Free, MiB.
        free_mib: u64,
        /// Missing, MiB (rounded up).
        short_mib: u64,
    },

    // ---- verification ----
    /// The trusted key could not be read, or another bundle-crate failure with its own
    /// complete message.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The bundle's claimed manifest could not be read.
    #[error("reading {}: {cause}", bundle.display())]
    ReadBundle {
        /// The bundle.
        bundle: PathBuf,
        /// Why.
        cause: BundleError,
    },
    /// The bundle failed verification (signature, hashes, archive checks).
    #[error("verifying {}: {cause}", bundle.display())]
    Verification {
        /// The bundle.
        bundle: PathBuf,
        /// Why.
        cause: BundleError,
    },
    /// The verified manifest's name or version may not become a directory name.
    #[error("{}: refused: {cause}", bundle.display())]
    BadName {
        /// The bundle.
        bundle: PathBuf,
        /// The refused name.
        cause: NameError,
    },
    /// The verified release does not meet the stage contract.
    #[error("{}: refused: {cause}", bundle.display())]
    Contract {
        /// The bundle.
        bundle: PathBuf,
        /// What is missing or wrong.
        cause: ContractError,
    },
    /// The bundle holds a name install reserves for its own record.
    #[error(
        "{}: the bundle holds {name}, a name reserved for install's own record",
        bundle.display()
    )]
    ReservedName {
        /// The bundle.
        bundle: PathBuf,
        /// The reserved name.
        name: String,
    },
    /// The same version and sequence is installed from a different bundle.
    #[error(
        "{} is already installed from a different bundle with the same version and sequence; \
         give each bundle its own sequence (pack --sequence)",
        dir.display()
    )]
    Conflict {
        /// The release directory.
        dir: PathBuf,
    },
    /// The verified staging directory could not be moved into place.
    #[error("moving the verified release to {}: {cause}", dir.display())]
    Persist {
        /// The release directory.
        dir: PathBuf,
        /// Why.
        cause: BundleError,
    },

    // ---- configuration and TLS ----
    /// The settings could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The release directory could not be opened.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// The CA refused (uncontextualised: its message names the file or value).
    #[error(transparent)]
    Certs(#[from] CertsError),
    /// Loading or creating the CA, issuing a certificate or writing the trust bundle failed.
    #[error("{what}: {cause}")]
    Tls {
        /// What was being done (`loading the CA in /srv/coder/ca`, `issuing ...`).
        what: String,
        /// The CA's error.
        cause: CertsError,
    },
    /// A certificate store under `etc/tls` is not as install left it.
    #[error("{}: {problem}", path.display())]
    TlsStore {
        /// The store or certificate prefix.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A certificate install just issued cannot be read back.
    #[error("{0}")]
    Certificate(String),
    /// The Terraform CLI configuration could not be made.
    #[error(transparent)]
    Mirror(#[from] airgap_mirror::layout::LayoutError),
    /// The release's module store could not be read (its message names the file).
    #[error(transparent)]
    Modules(#[from] airgap_mirror::module_store::ModuleError),
    /// coderd's environment file could not be written.
    #[error("writing {}: {cause}", path.display())]
    Env {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: EnvError,
    },

    // ---- database ----
    /// A PostgreSQL operation (start, migrations, ledger, backup, restore) failed.
    #[error(transparent)]
    Postgres(#[from] PgError),
    /// A file could not be replaced durably (names the path and the step).
    #[error(transparent)]
    Write(#[from] airgap_fsutil::WriteError),
    /// A SQL statement of install or rollback itself failed.
    #[error("{what}: {cause}")]
    Sql {
        /// What the statement does.
        what: &'static str,
        /// The driver's error.
        cause: sqlx::Error,
    },
    /// The existing cluster's major version differs from the bundle's.
    #[error(
        "{}: the cluster is PostgreSQL {cluster} but this bundle carries {bundled}; keep the \
         Postgres major version in appliance.toml, or move to an external server \
         (--postgres-url) and upgrade it with pg_upgrade",
        data_dir.display()
    )]
    MajorVersion {
        /// The data directory.
        data_dir: PathBuf,
        /// The cluster's major version.
        cluster: u32,
        /// The bundle's.
        bundled: u32,
    },
    /// A step run as the service user could not be started.
    #[error("running {step} as {user}: {cause}")]
    Spawn {
        /// The step (`the database step`, `the restore`).
        step: &'static str,
        /// The service user.
        user: String,
        /// The operating system's error.
        cause: std::io::Error,
    },
    /// A step run as the service user failed (it printed its error itself).
    #[error("{step} (run as {user}) failed; its error is above")]
    StepFailed {
        /// The step.
        step: &'static str,
        /// The service user.
        user: String,
    },
    /// The database step printed no report.
    #[error("the database step (run as {user}) reported no result: {cause}")]
    NoReport {
        /// The service user.
        user: String,
        /// Why its output did not parse.
        cause: serde_json::Error,
    },
    /// A blocking task of the restore did not finish.
    #[error("{what}: {cause}")]
    Task {
        /// What the task did.
        what: &'static str,
        /// Why it did not finish.
        cause: tokio::task::JoinError,
    },

    // ---- switch and rollback ----
    /// A running `up` could not be told to reload.
    #[error("telling the running `up` (pid {pid}) to reload: {cause}")]
    Reload {
        /// Its pid.
        pid: u32,
        /// The system call's error.
        cause: nix::errno::Errno,
    },
    /// `up` runs, so rollback may not restore the database.
    #[error(
        "the appliance is running (up, pid {pid}): stop it first (systemctl stop coder-airgap, \
         or Ctrl-C), then roll back"
    )]
    UpRunning {
        /// Its pid.
        pid: u32,
    },
    /// There is no previous release.
    #[error(
        "{}: there is no previous release to return to (only one release was installed, or a \
         rollback already happened)",
        path.display()
    )]
    NoPrevious {
        /// The `previous` link.
        path: PathBuf,
    },
    /// The release being left was started but install recorded no backup for it.
    #[error(
        "{release} was started but has no pre-upgrade backup record ({}): refusing to roll \
         back a database that may hold its migrations",
        path.display()
    )]
    StartedWithoutBackup {
        /// The current release.
        release: String,
        /// Where the record should be.
        path: PathBuf,
    },
    /// The restore step found no backup record.
    #[error("{}: no pre-upgrade backup record", path.display())]
    NoBackupRecord {
        /// Where the record should be.
        path: PathBuf,
    },
    /// The backup file is not the one recorded.
    #[error(
        "{}: sha256 {actual} differs from {recorded} recorded when the backup was taken; the \
         file changed, so it is not restored",
        path.display()
    )]
    BackupChanged {
        /// The backup file.
        path: PathBuf,
        /// Its sha256 now.
        actual: String,
        /// Its sha256 when taken.
        recorded: String,
    },
}

impl InstallError {
    /// `map_err` helper: an [`InstallError::Io`] for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |cause| InstallError::Io {
            action,
            path,
            cause,
        }
    }

    /// `map_err` helper: an [`InstallError::Tls`] saying what was being done.
    pub(crate) fn tls(what: impl Into<String>) -> impl FnOnce(CertsError) -> Self {
        let what = what.into();
        move |cause| InstallError::Tls { what, cause }
    }

    /// `map_err` helper: an [`InstallError::Json`] saying what was being done.
    pub(crate) fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Self {
        let what = what.into();
        move |cause| InstallError::Json { what, cause }
    }
}

/// Result with [`InstallError`].
pub type Result<T, E = InstallError> = std::result::Result<T, E>;
