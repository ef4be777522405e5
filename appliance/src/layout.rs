//! Where everything lives under an appliance root. `install` writes this tree, `up` runs
//! from it and `status`/`doctor` read it; naming every path in one place keeps the three in
//! agreement.

use std::path::{Path, PathBuf};

/// Name of the install/rollback lock directly under ROOT.
pub const INSTALL_LOCK: &str = ".install.lock";
/// Name of the external database URL file under `etc/`.
pub const EXTERNAL_URL_FILE: &str = "external-postgres.url";
/// Name of coderd's environment file under `etc/`.
pub const CODERD_ENV: &str = "coderd.env";
/// Name of the program copy under `bin/`.
pub const PROGRAM: &str = "coder-airgap";

/// The directory tree under `ROOT`, and who owns each part.
///
/// ```text
/// ROOT/releases/VERSION-SEQUENCE/   one unpacked bundle per install
/// ROOT/current -> releases/…        the release that runs (switched atomically)
/// ROOT/previous -> releases/…       the release `rollback` returns to
/// ROOT/.install.lock                held by install and rollback
/// ROOT/bin/coder-airgap             the copy of this program the unit starts
/// ROOT/ca/                          the internal CA (unless --ca-dir names another)
/// ROOT/etc/                         generated configuration, certificates, trust bundle
/// ROOT/data/                        Postgres data, secrets, coderd's cache
/// ROOT/backups/                     pg_dump files taken before upgrades
/// ROOT/run/                         the Postgres socket and the supervisor's state
/// ```
///
/// # Ownership
///
/// `install`, `rollback` and `up` run as root, so nothing root writes may sit in a
/// directory the service user can change: it could plant a link there and make root write
/// through it. The tree is split in two, and root reaches both only through directory
/// handles ([`crate::rootdir`]), never following a link:
///
/// | path | owner:group, mode | who writes it |
/// |------|-------------------|---------------|
/// | `ROOT`, `current`, `previous`, `.install.lock` | root:root 0755 (links, lock 0600) | install, rollback |
/// | `releases/` and everything in it | root:root 0755 (files as in the bundle) | install |
/// | `bin/`, `bin/coder-airgap` | root:root 0755 | install |
/// | `etc/`, `etc/systemd/`, `etc/tls/` | root:root 0755 | install, `up` before it drops root |
/// | `etc/coder-airgap.toml`, `terraformrc`, `ca-bundle.pem`, the unit, `tls/*.crt` | root:root 0644 | install |
/// | `etc/coderd.env`, `etc/external-postgres.url`, the TLS keys | **service user**, 0600 | install (root) |
/// | `ca/` (the CA's private key, ledger) | root:root 0700 | install, `up` before it drops root |
/// | `data/` (postgres, secrets, coder-cache, home, started) | service user 0700 | Postgres, install-db, `up` |
/// | `backups/` | service user 0700 | pg_dump in install-db |
/// | `run/` (pg socket, `state.json`, `up.lock`) | service user 0700 | `up`, Postgres |
///
/// Secrets the service user must read (coderd's environment with the database password,
/// the external database URL, the TLS keys coderd and the mirror load) are files the
/// service user owns, mode 0600, inside directories root owns: the service user can read
/// them (and rewrite their content, which it controls anyway: it runs the processes that
/// use them) but cannot remove, rename or replace them with a link, and root only ever
/// replaces them with a new file it created and renamed in. This keeps them 0600 (no
/// group needed) and out of reach of every other user.
///
/// Root creates `data/`, `data/secrets/`, `backups/` and `run/` and gives them to the
/// service user; it never writes inside them: what lives there is written by the
/// service user (the database step and `up` run as that user). The CA key is root's
/// alone, so certificates are issued and renewed as root: by install, and by `up` at
/// start before it drops privileges (under systemd, the unit's `ExecStartPre=+`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root` (not created here).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    /// The appliance root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All installed releases.
    pub fn releases(&self) -> PathBuf {
        self.root.join("releases")
    }

    /// The directory of the release named `name` (`VERSION-SEQUENCE`).
    pub fn release(&self, name: &str) -> PathBuf {
        self.releases().join(name)
    }

    /// The symlink to the running release.
    pub fn current(&self) -> PathBuf {
        self.root.join("current")
    }

    /// The symlink to the release before the current one.
    pub fn previous(&self) -> PathBuf {
        self.root.join("previous")
    }

    /// The internal CA created by `install` when no `--ca-dir` is given.
    pub fn default_ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }

    /// Generated configuration.
    pub fn etc(&self) -> PathBuf {
        self.root.join("etc")
    }

    /// The appliance's own settings (`coder-airgap.toml`).
    pub fn config_file(&self) -> PathBuf {
        self.etc().join("coder-airgap.toml")
    }

    /// The exact environment `coder server` runs with (0600, the service user's: it holds the database URL).
    pub fn coderd_env(&self) -> PathBuf {
        self.etc().join(CODERD_ENV)
    }

    /// The Terraform CLI configuration: the network mirror only, no `direct` fallback.
    pub fn terraformrc(&self) -> PathBuf {
        self.etc().join("terraformrc")
    }

    /// The internal CA's trust bundle (root first), for coderd, Terraform and workspaces.
    pub fn ca_bundle(&self) -> PathBuf {
        self.etc().join("ca-bundle.pem")
    }

    /// The certificate prefix (`.crt`/`.key`) of coderd's TLS listener.
    pub fn coderd_tls_prefix(&self) -> PathBuf {
        self.etc().join("tls").join("coderd")
    }

    /// The certificate prefix (`.crt`/`.key`) of the provider mirror.
    pub fn mirror_tls_prefix(&self) -> PathBuf {
        self.etc().join("tls").join("mirror")
    }

    /// The generated systemd unit.
    pub fn systemd_unit(&self) -> PathBuf {
        self.etc().join("systemd").join("coder-airgap.service")
    }

    /// The embedded Postgres data directory.
    pub fn postgres_data(&self) -> PathBuf {
        self.root.join("data").join("postgres")
    }

    /// Passwords (0700 directory, 0600 files).
    pub fn secrets(&self) -> PathBuf {
        self.root.join("data").join("secrets")
    }

    /// coderd's cache directory (`CODER_CACHE_DIRECTORY`), never shared between replicas.
    pub fn coderd_cache(&self) -> PathBuf {
        self.root.join("data").join("coder-cache")
    }

    /// The home directory given to coderd and Terraform.
    pub fn home(&self) -> PathBuf {
        self.root.join("data").join("home")
    }

    /// Database backups.
    pub fn backups(&self) -> PathBuf {
        self.root.join("backups")
    }

    /// Runtime files: the Postgres socket directory and the supervisor state.
    pub fn run(&self) -> PathBuf {
        self.root.join("run")
    }

    /// The external database URL (`etc/external-postgres.url`, 0600, the service user's).
    pub fn external_url_file(&self) -> PathBuf {
        self.etc().join(EXTERNAL_URL_FILE)
    }

    /// The program copy the unit starts (`ROOT/bin/coder-airgap`).
    pub fn installed_exe(&self) -> PathBuf {
        self.root.join("bin").join(PROGRAM)
    }

    /// The supervisor's state (`run/state.json`), written by `up`, read by `status`.
    pub fn state_file(&self) -> PathBuf {
        self.run().join("state.json")
    }

    /// The lock `up` holds (flock) while it runs; it holds `up`'s pid. `install` sends that
    /// pid SIGHUP after switching releases.
    pub fn up_lock(&self) -> PathBuf {
        self.run().join("up.lock")
    }

    /// The embedded Postgres socket directory.
    pub fn pg_socket_dir(&self) -> PathBuf {
        self.run().join("pg")
    }

    /// A marker `up` writes before it first starts coderd of release `name`: from then on
    /// the database may carry that release's migrations, so `rollback` restores the backup.
    pub fn started_marker(&self, name: &str) -> PathBuf {
        self.root.join("data").join("started").join(name)
    }

    /// Bundled binaries of the current release (first on coderd's PATH).
    pub fn current_bin(&self) -> PathBuf {
        self.current().join("bin")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sit_where_the_documented_tree_says() {
        let l = Layout::new("/srv/coder");
        assert_eq!(
            l.release("2.35.3-7"),
            Path::new("/srv/coder/releases/2.35.3-7")
        );
        assert_eq!(l.coderd_env(), Path::new("/srv/coder/etc/coderd.env"));
        assert_eq!(l.current_bin(), Path::new("/srv/coder/current/bin"));
        assert_eq!(
            l.systemd_unit(),
            Path::new("/srv/coder/etc/systemd/coder-airgap.service")
        );
    }
}
