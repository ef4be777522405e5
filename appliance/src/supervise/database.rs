//! coderd's database as `up` sees it: the embedded server it runs from the release's
//! PostgreSQL tree, or an external server it only checks.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::backoff::Backoff;
use super::error::SuperviseError;
use super::process::{self, ProcessId};
use super::say;
use super::settings::Settings;
use crate::config;
use crate::layout::Layout;
use crate::postgres::{check_external, Embedded, EmbeddedSettings, PgError, SecretUrl};

/// How long a postmaster left behind by a killed `up` gets for its fast shutdown.
const ORPHAN_STOP: Duration = Duration::from_secs(60);

/// The running database.
#[derive(Debug)]
pub enum Database {
    /// Started and owned by `up`.
    Embedded(Box<Embedded>),
    /// Run by the site; `up` checked it once.
    External {
        /// The server's version.
        version: String,
    },
}

impl Database {
    /// Starts (embedded) or checks (external) the database of `settings`. An external
    /// server that cannot be reached is retried with backoff, each failure logged in one
    /// line; any other refusal (password, missing database, old server) is returned.
    pub async fn start(settings: &Settings, layout: &Layout) -> Result<Database, SuperviseError> {
        match &settings.database {
            config::Database::Embedded { port } => start_embedded(settings, layout, *port).await,
            config::Database::External(url) => start_external(url).await,
        }
    }

    /// The postmaster (embedded only).
    pub fn postmaster(&self) -> Option<ProcessId> {
        match self {
            Database::Embedded(pg) => pg.postmaster_pid().and_then(ProcessId::of),
            Database::External { .. } => None,
        }
    }

    /// False once the embedded postmaster died; an external server counts as up.
    pub fn is_running(&self) -> bool {
        match self {
            Database::Embedded(pg) => pg.is_running(),
            Database::External { .. } => true,
        }
    }

    /// The server version to report.
    pub fn version(&self, settings: &Settings) -> String {
        match self {
            Database::Embedded(_) => settings.postgres_version(),
            Database::External { version } => version.clone(),
        }
    }

    /// Stops an embedded server cleanly (fast shutdown); nothing to do for an external one.
    pub async fn stop(self) -> Result<(), SuperviseError> {
        match self {
            Database::Embedded(pg) => Ok((*pg).stop().await?),
            Database::External { .. } => Ok(()),
        }
    }
}

async fn start_embedded(
    settings: &Settings,
    layout: &Layout,
    port: u16,
) -> Result<Database, SuperviseError> {
    let embedded = EmbeddedSettings {
        tree: settings.release.postgres_tree()?,
        data_dir: layout.postgres_data(),
        socket_dir: layout.pg_socket_dir(),
        port,
        secrets_dir: layout.secrets(),
    };
    match Embedded::start(embedded.clone()).await {
        Err(PgError::AlreadyRunning { pid, .. }) => {
            // We hold the up lock, so no other up runs here: this postmaster was left
            // behind by an up that was killed. Stop it and start our own.
            say(&format!(
                "stopping PostgreSQL (pid {pid}) left running by an earlier `up`"
            ));
            stop_orphan(pid).await;
            Ok(Database::Embedded(Box::new(
                Embedded::start(embedded).await?,
            )))
        }
        other => Ok(Database::Embedded(Box::new(other?))),
    }
}

/// Fast shutdown (SIGINT) of a postmaster that is not ours, waiting for it to finish.
async fn stop_orphan(pid: u32) {
    let (Some(process), Ok(raw)) = (ProcessId::of(pid), i32::try_from(pid)) else {
        return;
    };
    if let Err(e) = kill(Pid::from_raw(raw), Signal::SIGINT) {
        tracing::debug!("kill -INT {pid}: {e}");
    }
    process::wait_gone(process, ORPHAN_STOP).await;
}

async fn start_external(url: &SecretUrl) -> Result<Database, SuperviseError> {
    let mut backoff = Backoff::default();
    loop {
        match check_external(url).await {
            Ok(facts) => {
                say(&format!("external PostgreSQL {} reachable", facts.version));
                return Ok(Database::External {
                    version: facts.version,
                });
            }
            Err(e @ PgError::Unreachable { .. }) => {
                let delay = backoff.after_exit(Duration::ZERO);
                say(&format!("postgres: {e}; retrying in {} s", delay.as_secs()));
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
