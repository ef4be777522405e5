//! What `up` runs, read from the appliance root: the settings install chose, coderd's exact
//! environment and the current release. Read at start and again on every SIGHUP.

use crate::config::{Config, PostgresMode};
use crate::env::read_env_file;
use crate::layout::Layout;
use crate::release::Release;

use super::error::SuperviseError;

/// Everything `up` reads from disk before starting its children.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ROOT/etc/coder-airgap.toml`.
    pub config: Config,
    /// `ROOT/etc/coderd.env`: coderd's whole environment.
    pub env: Vec<(String, String)>,
    /// The release `ROOT/current` points at.
    pub release: Release,
}

impl Settings {
    /// Reads the three from `layout`.
    pub fn load(layout: &Layout) -> Result<Settings, SuperviseError> {
        let config = Config::read(&layout.config_file())?;
        let env = read_env_file(&layout.coderd_env())?;
        let release = Release::current(layout)?;
        Ok(Settings {
            config,
            env,
            release,
        })
    }

    /// `embedded` or `external`.
    pub fn postgres_mode(&self) -> &'static str {
        match self.config.postgres {
            PostgresMode::Embedded { .. } => "embedded",
            PostgresMode::External => "external",
        }
    }

    /// The database URL coderd gets (`CODER_PG_CONNECTION_URL` in the env file).
    pub fn pg_url(&self, layout: &Layout) -> Result<&str, SuperviseError> {
        self.env
            .iter()
            .find(|(k, _)| k == "CODER_PG_CONNECTION_URL")
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SuperviseError::Setting {
                path: layout.coderd_env(),
                message: "CODER_PG_CONNECTION_URL is missing or empty (coderd would download \
                          its own PostgreSQL); re-run install"
                    .into(),
            })
    }

    /// coderd's version in this release.
    pub fn coderd_version(&self) -> String {
        self.release.lock.components.coderd.version.clone()
    }

    /// The bundled PostgreSQL version in this release.
    pub fn postgres_version(&self) -> String {
        self.release.lock.components.postgres.version.clone()
    }
}
