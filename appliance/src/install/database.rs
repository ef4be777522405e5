//! The database step of install and rollback, run as the service user (PostgreSQL
//! refuses root): start the embedded server (or use the running one, or the external
//! one), apply the appliance's migrations, take the pre-upgrade backup, record the
//! install, and write coderd's environment file with the database URL in it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{InstallError, Result};
use crate::config::{self, Config};
use crate::env::{coderd_env, write_env_file, CoderdSettings};
use crate::layout::Layout;
use crate::layout::CODERD_ENV;
use crate::postgres::{self, ledger, Embedded, EmbeddedSettings, SecretUrl, Tree};
use crate::release::Release;
use crate::rootdir::{Dir, Owner};

/// File in a release directory naming the backup taken before switching to it.
pub const UPGRADE_FILE: &str = ".upgrade.json";

/// What the database step reports to the root install, which writes it where the
/// service user cannot: the URL coderd gets (into `etc/coderd.env`) and the upgrade
/// record (into the release directory).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    /// coderd's database URL (serialized with its password: install reads it from
    /// the step's stdout; `Debug` hides it).
    pub pg_url: SecretUrl,
    /// The backup taken before switching, when this install is an upgrade.
    pub upgrade: Option<UpgradeRecord>,
}

/// What an upgrade left behind for `rollback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpgradeRecord {
    /// The release that was current before.
    pub from: String,
    /// The pg_dump file taken before switching.
    pub backup: PathBuf,
    /// Its sha256.
    pub sha256: String,
}

impl UpgradeRecord {
    /// Reads the record of the release in `dir`, if it was installed as an upgrade.
    pub fn read(dir: &Path) -> Result<Option<UpgradeRecord>> {
        let path = dir.join(UPGRADE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(InstallError::io("reading", &path))?;
        let record = serde_json::from_str(&text)
            .map_err(InstallError::json(format!("parsing {}", path.display())))?;
        Ok(Some(record))
    }
}

/// A database the step can use: the URLs, and the embedded server if this step started it.
pub struct Database {
    /// The URL coderd gets.
    pub coder_url: SecretUrl,
    /// The tree whose pg_dump/pg_restore to use.
    pub tree: Tree,
    started: Option<Embedded>,
}

impl Database {
    /// Opens the database for `release`: the running embedded server (started by `up`),
    /// a new embedded server from the release's tree, or the external server.
    pub async fn open(layout: &Layout, config: &Config, release: &Release) -> Result<Database> {
        let tree = release.postgres_tree()?;
        match config::Database::load(config, layout)? {
            config::Database::Embedded { port } => Self::embedded(layout, tree, port).await,
            config::Database::External(url) => {
                let facts = postgres::check_external(&url).await?;
                tracing::info!("external PostgreSQL {} as {}", facts.version, facts.role);
                Ok(Database {
                    coder_url: url,
                    tree,
                    started: None,
                })
            }
        }
    }

    async fn embedded(layout: &Layout, tree: Tree, port: u16) -> Result<Database> {
        check_major(&layout.postgres_data(), &tree).await?;
        let settings = EmbeddedSettings {
            tree: tree.clone(),
            data_dir: layout.postgres_data(),
            socket_dir: layout.pg_socket_dir(),
            port,
            secrets_dir: layout.secrets(),
        };
        if let Some((_, coder_url)) = Embedded::running_urls(&settings)? {
            return Ok(Database {
                coder_url,
                tree,
                started: None,
            });
        }
        let pg = Embedded::start(settings).await?;
        if pg.initialized() {
            eprintln!(
                "created the PostgreSQL cluster in {}",
                layout.postgres_data().display()
            );
        }
        Ok(Database {
            coder_url: pg.coder_url()?,
            tree,
            started: Some(pg),
        })
    }

    /// Stops the server if this step started it.
    pub async fn close(self) -> Result<()> {
        if let Some(pg) = self.started {
            pg.stop().await?;
        }
        Ok(())
    }
}

/// Refuses a release whose Postgres major version differs from the existing cluster's:
/// the data directory would not start (pg_upgrade is not automated).
async fn check_major(data_dir: &Path, tree: &Tree) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(data_dir.join("PG_VERSION")) else {
        return Ok(());
    };
    let cluster: u32 = text.trim().parse().unwrap_or(0);
    let bundled = tree.major_version().await?;
    if cluster != 0 && cluster != bundled {
        return Err(InstallError::MajorVersion {
            data_dir: data_dir.to_path_buf(),
            cluster,
            bundled,
        });
    }
    Ok(())
}

/// Who ran install, for the ledger.
pub struct Installer {
    /// The operator (SUDO_USER or USER).
    pub name: String,
}

/// The database step of `install` for the release `name`: migrations, the pre-upgrade
/// backup when another release is current and the ledger row. Returns what install
/// writes afterwards (it writes nothing outside the service user's directories).
pub async fn install_step(
    layout: &Layout,
    name: &str,
    installer: &Installer,
) -> Result<StepReport> {
    let config = Config::read(&layout.config_file())?;
    let release = Release::open(layout.release(name))?;
    let current = Release::current(layout)
        .ok()
        .filter(|c| c.name != release.name);
    let db = Database::open(layout, &config, &release).await?;
    let result = record(layout, &release, current.as_ref(), &db, installer).await;
    let pg_url = db.coder_url.clone();
    let closed = db.close().await;
    let upgrade = result?;
    closed?;
    Ok(StepReport { pg_url, upgrade })
}

async fn record(
    layout: &Layout,
    release: &Release,
    current: Option<&Release>,
    db: &Database,
    installer: &Installer,
) -> Result<Option<UpgradeRecord>> {
    postgres::migrate(&db.coder_url).await?;
    let pool = postgres::connect(&db.coder_url).await?;
    let upgrade = match current {
        Some(from) => Some(backup_before_upgrade(layout, release, from, db, &pool).await?),
        None => None,
    };
    let row = ledger::NewInstall {
        bundle: release.manifest.name.clone(),
        version: release.manifest.version.clone(),
        sequence: i64::try_from(release.manifest.sequence).unwrap_or(i64::MAX),
        release_dir: release.dir.display().to_string(),
        installed_by: installer.name.clone(),
        previous_release: current.map(|c| c.name.clone()),
        outcome: ledger::Outcome::Succeeded,
    };
    ledger::record_install(&pool, &row).await?;
    record_certificates(layout, &pool).await?;
    pool.close().await;
    Ok(upgrade)
}

/// Records the certificates coderd and the mirror serve (renewals re-issue the same names).
async fn record_certificates(layout: &Layout, pool: &sqlx::PgPool) -> Result<()> {
    let leaves = [
        (layout.coderd_tls_prefix(), "coderd-tls"),
        (layout.mirror_tls_prefix(), "mirror-tls"),
    ];
    for (prefix, purpose) in leaves {
        let facts = crate::supervise::certificates::leaf(&prefix.with_extension("crt"))
            .map_err(InstallError::Certificate)?;
        let row = ledger::Certificate {
            serial: facts.serial,
            names: facts.names,
            not_after: facts.not_after,
            purpose: purpose.into(),
        };
        ledger::record_certificate(pool, &row).await?;
    }
    Ok(())
}

/// Dumps coderd's database before the switch and returns the [`UpgradeRecord`] install
/// leaves in the new release for `rollback`.
async fn backup_before_upgrade(
    layout: &Layout,
    release: &Release,
    from: &Release,
    db: &Database,
    pool: &sqlx::PgPool,
) -> Result<UpgradeRecord> {
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let file = layout.backups().join(format!(
        "{}-before-{}-{stamp}.dump",
        from.name, release.name
    ));
    eprintln!("backing up the database to {}", file.display());
    let upgrade = ledger::record_upgrade(
        pool,
        &ledger::NewUpgrade {
            from_version: from.name.clone(),
            to_version: release.name.clone(),
            backup_id: None,
            outcome: ledger::Outcome::InProgress,
        },
    )
    .await?;
    let info = match postgres::dump(&db.tree, &db.coder_url, &file).await {
        Ok(info) => info,
        Err(e) => {
            ledger::finish_upgrade(pool, upgrade, ledger::Outcome::Failed).await?;
            return Err(e.into());
        }
    };
    let backup_id = ledger::record_backup(
        pool,
        &ledger::NewBackup {
            path: info.path.display().to_string(),
            sha256: info.sha256.clone(),
            bytes: info.bytes,
            release: from.name.clone(),
            reason: format!("before upgrade to {}", release.name),
        },
    )
    .await?;
    ledger::attach_backup(pool, upgrade, backup_id).await?;
    ledger::finish_upgrade(pool, upgrade, ledger::Outcome::Succeeded).await?;
    Ok(UpgradeRecord {
        from: from.name.clone(),
        backup: info.path,
        sha256: info.sha256,
    })
}

/// Writes `ROOT/etc/coderd.env` for `release` with the database URL, through the handle
/// of `etc`, given to `owner` (the service user) when root writes it.
pub fn write_coderd_env(
    layout: &Layout,
    etc: &Dir,
    owner: Option<Owner>,
    config: &Config,
    release: &Release,
    pg_url: &SecretUrl,
) -> Result<()> {
    let settings = CoderdSettings {
        access_url: config.access_url.clone(),
        wildcard_url: config.wildcard_url.clone(),
        tls_address: config.listen,
        pg_url: pg_url.clone(),
        docs_url: release.docs_dir().map(|_| docs_url(config)),
        ai_gateway: config.ai_gateway,
    };
    let vars = coderd_env(&settings, layout);
    write_env_file(etc, CODERD_ENV, owner, &vars).map_err(|cause| InstallError::Env {
        path: layout.coderd_env(),
        cause,
    })
}

/// Where the bundled docs are served: the mirror's `/docs/` path.
fn docs_url(config: &Config) -> String {
    let host = config.access_url.url_host();
    let port = config.mirror_listen.port();
    format!("https://{host}:{port}/docs/")
}
