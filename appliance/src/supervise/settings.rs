//! What `up` runs, read from the appliance root: the settings install chose, coderd's exact
//! environment and the current release. Read at start and again on every SIGHUP.

use crate::config::{Config, Database, PostgresMode};
use crate::env::read_env_file;
use crate::layout::Layout;
use crate::postgres::SecretUrl;
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
    /// The database: the embedded server's port, or the external server's URL as
    /// coderd gets it (`CODER_PG_CONNECTION_URL` in the env file).
    pub database: Database,
}

impl Settings {
    /// Reads the three from `layout`.
    pub fn load(layout: &Layout) -> Result<Settings, SuperviseError> {
        let config = Config::read(&layout.config_file())?;
        let env = read_env_file(&layout.coderd_env())?;
        let release = Release::current(layout)?;
        let database = match config.postgres {
            PostgresMode::Embedded { port } => Database::Embedded { port },
            PostgresMode::External => Database::External(pg_url(&env, layout)?),
        };
        Ok(Settings {
            config,
            env,
            release,
            database,
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

/// The database URL coderd gets (`CODER_PG_CONNECTION_URL` in the env file), parsed.
fn pg_url(env: &[(String, String)], layout: &Layout) -> Result<SecretUrl, SuperviseError> {
    let setting = |message: String| SuperviseError::Setting {
        path: layout.coderd_env(),
        message,
    };
    let text = env
        .iter()
        .find(|(k, _)| k == "CODER_PG_CONNECTION_URL")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            setting(
                "CODER_PG_CONNECTION_URL is missing or empty (coderd would download its own \
                 PostgreSQL); re-run install"
                    .into(),
            )
        })?;
    SecretUrl::parse(text)
        .map_err(|e| setting(format!("CODER_PG_CONNECTION_URL: {e}; re-run install")))
}
