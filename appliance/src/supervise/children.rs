//! How the supervisor starts and stops its children: the [`Launcher`] seam. [`Real`]
//! starts the real ones (the embedded or external PostgreSQL, the provider mirror, `coder
//! server`, the `/healthz` probe, certificate renewal) from the settings on disk; the
//! supervisor's tests put fake children behind the same trait, so the restart policy and
//! the backoff are tested in-process with a paused clock.

use std::future::Future;
use std::net::SocketAddr;

use super::coderd::Coderd;
use super::database::Database;
use super::error::SuperviseError;
use super::health::HealthProbe;
use super::mirror::MirrorServer;
use super::process::ProcessId;
use super::renew;
use super::say;
use super::settings::Settings;
use crate::config::PostgresMode;
use crate::layout::Layout;

/// How long coderd gets to stop after SIGTERM before SIGKILL.
pub const CODERD_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// What the supervisor itself needs to know of the settings (the launcher keeps the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The release (`VERSION-SEQUENCE`) `ROOT/current` points at.
    pub release: String,
    /// coderd's version in that release.
    pub coderd_version: String,
    /// Embedded (and its port) or external PostgreSQL.
    pub postgres: PostgresMode,
    /// The mirror's listen address.
    pub mirror_listen: SocketAddr,
    /// The access URL, for the ready line.
    pub access_url: String,
}

/// A started child and its process, if it has one of its own.
#[derive(Debug)]
pub struct Started<C> {
    /// The handle the launcher stops it with.
    pub child: C,
    /// Its process (Postgres' postmaster, coderd; the mirror runs inside `up`).
    pub process: Option<ProcessId>,
}

/// coderd's `/healthz`, asked over and over by a task of its own.
pub trait HealthCheck: Send + Sync + 'static {
    /// One probe: `Ok` when coderd answered healthy, else why not.
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// Starts and stops the supervisor's children. A child that stops by itself reports
/// through the `on_exit` it was started with; so does one that the supervisor stopped
/// (the supervisor tells them apart by generation).
pub trait Launcher {
    /// The running database.
    type Db;
    /// The running mirror.
    type Mirror;
    /// The running coderd.
    type Coderd;
    /// The health probe of coderd.
    type Probe: HealthCheck;

    /// What the settings in force say.
    fn plan(&self) -> Plan;
    /// Re-reads the settings; when that fails the previous ones stay in force.
    fn reload(&mut self) -> Result<(), SuperviseError>;

    /// Starts the embedded database, or waits until the external one answers.
    async fn start_db(&self) -> Result<Started<Self::Db>, SuperviseError>;
    /// The server version to report.
    fn db_version(&self, db: &Self::Db) -> String;
    /// False once the database died.
    fn db_running(&self, db: &Self::Db) -> bool;
    /// Stops the database (nothing to do for an external one).
    async fn stop_db(&self, db: Self::Db) -> Result<(), SuperviseError>;

    /// Starts the mirror; `on_exit` gets its error (`None`: it stopped cleanly).
    fn start_mirror(
        &self,
        on_exit: impl FnOnce(Option<String>) + Send + 'static,
    ) -> Result<Self::Mirror, SuperviseError>;
    /// Stops the mirror and waits for it.
    async fn stop_mirror(&self, mirror: Self::Mirror);

    /// Starts coderd; `on_exit` gets how it exited.
    fn start_coderd(
        &self,
        on_exit: impl FnOnce(String) + Send + 'static,
    ) -> Result<Started<Self::Coderd>, SuperviseError>;
    /// Stops coderd (SIGTERM, SIGKILL after [`CODERD_GRACE`]) and waits for it.
    async fn stop_coderd(&self, coderd: Self::Coderd);

    /// A probe of the current coderd's health.
    fn probe(&self) -> Result<Self::Probe, String>;

    /// Renews the certificates when due; one line per renewed certificate.
    async fn renew(&self) -> Result<Vec<String>, String>;
}

/// The real children, from the settings of an appliance root.
#[derive(Debug)]
pub struct Real {
    layout: Layout,
    settings: Settings,
}

impl Real {
    /// The launcher for `layout`, reading its settings.
    pub fn new(layout: Layout) -> Result<Real, SuperviseError> {
        let settings = Settings::load(&layout)?;
        Ok(Real { layout, settings })
    }
}

impl Launcher for Real {
    type Db = Database;
    type Mirror = MirrorServer;
    type Coderd = Coderd;
    type Probe = HealthProbe;

    fn plan(&self) -> Plan {
        let s = &self.settings;
        Plan {
            release: s.release.name.clone(),
            coderd_version: s.coderd_version(),
            postgres: s.config.postgres.clone(),
            mirror_listen: s.config.mirror_listen,
            access_url: s.config.access_url.to_string(),
        }
    }

    fn reload(&mut self) -> Result<(), SuperviseError> {
        self.settings = Settings::load(&self.layout)?;
        Ok(())
    }

    async fn start_db(&self) -> Result<Started<Database>, SuperviseError> {
        let db = Database::start(&self.settings, &self.layout).await?;
        let process = db.postmaster();
        Ok(Started { child: db, process })
    }

    fn db_version(&self, db: &Database) -> String {
        db.version(&self.settings)
    }

    fn db_running(&self, db: &Database) -> bool {
        db.is_running()
    }

    async fn stop_db(&self, db: Database) -> Result<(), SuperviseError> {
        db.stop().await
    }

    fn start_mirror(
        &self,
        on_exit: impl FnOnce(Option<String>) + Send + 'static,
    ) -> Result<MirrorServer, SuperviseError> {
        let mirror = MirrorServer::start(&self.layout, &self.settings, on_exit)?;
        say(&format!(
            "provider mirror serving {} on https://{}",
            self.settings.release.providers_dir().display(),
            self.settings.config.mirror_listen
        ));
        Ok(mirror)
    }

    async fn stop_mirror(&self, mirror: MirrorServer) {
        mirror.stop().await;
    }

    fn start_coderd(
        &self,
        on_exit: impl FnOnce(String) + Send + 'static,
    ) -> Result<Started<Coderd>, SuperviseError> {
        let coderd = Coderd::spawn(&self.layout, &self.settings, on_exit)?;
        let process = Some(coderd.process);
        Ok(Started {
            child: coderd,
            process,
        })
    }

    async fn stop_coderd(&self, coderd: Coderd) {
        coderd.stop(CODERD_GRACE).await;
    }

    fn probe(&self) -> Result<HealthProbe, String> {
        let config = &self.settings.config;
        HealthProbe::new(&self.layout.ca_bundle(), &config.access_url, config.listen)
            .map_err(|e| e.to_string())
    }

    async fn renew(&self) -> Result<Vec<String>, String> {
        let (layout, ca_dir) = (self.layout.clone(), self.settings.config.ca_dir.clone());
        match tokio::task::spawn_blocking(move || renew::renew_due(&layout, &ca_dir)).await {
            Ok(Ok(lines)) => Ok(lines),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl HealthCheck for HealthProbe {
    async fn check(&self) -> Result<(), String> {
        HealthProbe::check(self).await.map_err(|e| e.to_string())
    }
}
