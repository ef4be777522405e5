//! Where everything lives under an appliance root. `install` writes this tree, `up` runs
//! from it and `status`/`doctor` read it; naming every path in one place keeps the three in
//! agreement.

use std::path::{Path, PathBuf};

/// The directory tree under `ROOT`.
///
/// ```text
/// ROOT/releases/VERSION-SEQUENCE/   one unpacked bundle per install
/// ROOT/current -> releases/…        the release that runs (switched atomically)
/// ROOT/previous -> releases/…       the release `rollback` returns to
/// ROOT/ca/                          the internal CA (unless --ca-dir names another)
/// ROOT/etc/                         generated configuration, certificates, trust bundle
/// ROOT/data/                        Postgres data, secrets, coderd's cache
/// ROOT/backups/                     pg_dump files taken before upgrades
/// ROOT/run/                         the Postgres socket and the supervisor's state
/// ```
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

    /// The exact environment `coder server` runs with (0600: it holds the database URL).
    pub fn coderd_env(&self) -> PathBuf {
        self.etc().join("coderd.env")
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
