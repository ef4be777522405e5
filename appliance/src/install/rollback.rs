//! `rollback`: back to the previous release. When the release being left had been
//! started (coderd may have migrated the database), the backup install took before the
//! upgrade is restored first, into a database emptied of everything the role owns. The
//! switch is root's (ROOT is root's own directory); the restore is the service user's.

use super::database::{Database, UpgradeRecord};
use super::error::{InstallError, Result};
use super::switch;
use crate::config::Config;
use crate::layout::Layout;
use crate::postgres::{self, ledger};
use crate::privilege::{self, ServiceUser};
use crate::release::Release;
use crate::rootdir::Dir;

/// The restore step's name in messages.
const RESTORE_STEP: &str = "the restore";

/// What rollback did.
#[derive(Debug)]
pub struct Outcome {
    /// The release left.
    pub from: String,
    /// The release now current.
    pub to: String,
    /// The backup restored, if the database had been touched.
    pub restored: Option<UpgradeRecord>,
}

/// Returns to the previous release. Refuses while `up` runs: coderd must not be using the
/// database while it is restored. As root (`user` given), the lock and the switch are
/// done here through ROOT's handle and the restore runs as the service user
/// (`rollback-db`); otherwise everything runs in this process.
pub fn rollback(layout: &Layout, user: Option<&ServiceUser>) -> Result<Outcome> {
    if let Some(pid) = crate::supervise::running_up(layout) {
        return Err(InstallError::UpRunning { pid });
    }
    let root = Dir::open_root(layout.root())?;
    let _lock = super::lock_install(&root)?;
    let current = Release::current(layout)?;
    let Some(previous) = Release::previous(layout)? else {
        return Err(InstallError::NoPrevious {
            path: layout.previous(),
        });
    };
    let touched = layout.started_marker(&current.name).exists();
    let record = UpgradeRecord::read(&current.dir)?;
    let restored = match (touched, record) {
        (true, Some(record)) => {
            match user {
                Some(user) => restore_as(layout, user, &previous.name)?,
                None => crate::runtime::block_on(restore(layout, &previous, &record))
                    .map_err(|cause| InstallError::Runtime { cause })??,
            }
            Some(record)
        }
        (true, None) => {
            return Err(InstallError::StartedWithoutBackup {
                release: current.name,
                path: current.dir.join(super::database::UPGRADE_FILE),
            })
        }
        (false, _) => None,
    };
    switch::roll_back(&root)?;
    Ok(Outcome {
        from: current.name,
        to: previous.name,
        restored,
    })
}

/// The restore step of a root rollback, run as the service user (`rollback-db`): restores
/// the backup recorded in the current release into the database of release `previous`.
pub async fn restore_step(layout: &Layout, previous: &str) -> Result<()> {
    let current = Release::current(layout)?;
    let previous = Release::open(layout.release(previous))?;
    let record =
        UpgradeRecord::read(&current.dir)?.ok_or_else(|| InstallError::NoBackupRecord {
            path: current.dir.join(super::database::UPGRADE_FILE),
        })?;
    restore(layout, &previous, &record).await
}

/// Runs [`restore_step`] as `user` in a child process (PostgreSQL refuses root).
fn restore_as(layout: &Layout, user: &ServiceUser, previous: &str) -> Result<()> {
    let args: Vec<std::ffi::OsString> = vec![
        "rollback-db".into(),
        "--root".into(),
        layout.root().as_os_str().to_owned(),
        "--release".into(),
        previous.into(),
    ];
    let exe = layout.installed_exe();
    let status = privilege::command_as(user, &exe, args, privilege::DROPPED_MARKER)
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|cause| InstallError::Spawn {
            step: RESTORE_STEP,
            user: user.name.clone(),
            cause,
        })?;
    if !status.success() {
        return Err(InstallError::StepFailed {
            step: RESTORE_STEP,
            user: user.name.clone(),
        });
    }
    Ok(())
}

async fn restore(layout: &Layout, previous: &Release, record: &UpgradeRecord) -> Result<()> {
    let config = Config::read(&layout.config_file())?;
    let db = Database::open(layout, &config, previous).await?;
    let result = reset_and_restore(&db, record).await;
    let closed = db.close().await;
    result.and(closed)
}

async fn reset_and_restore(db: &Database, record: &UpgradeRecord) -> Result<()> {
    eprintln!("restoring {}", record.backup.display());
    let path = record.backup.clone();
    let info = tokio::task::spawn_blocking(move || postgres::hash_file(&path))
        .await
        .map_err(|cause| InstallError::Task {
            what: "hashing the backup",
            cause,
        })??;
    if info.sha256 != record.sha256 {
        return Err(InstallError::BackupChanged {
            path: record.backup.clone(),
            actual: info.sha256,
            recorded: record.sha256.clone(),
        });
    }
    let pool = postgres::connect(&db.coder_url).await?;
    sqlx::raw_sql("DROP OWNED BY CURRENT_USER CASCADE")
        .execute(&pool)
        .await
        .map_err(|cause| InstallError::Sql {
            what: "emptying the database before the restore",
            cause,
        })?;
    pool.close().await;
    postgres::restore(&db.tree, &db.coder_url, &record.backup).await?;
    let pool = postgres::connect(&db.coder_url).await?;
    ledger::record_upgrade(
        &pool,
        &ledger::NewUpgrade {
            from_version: "rollback".into(),
            to_version: record.from.clone(),
            backup_id: None,
            outcome: ledger::Outcome::RolledBack,
        },
    )
    .await?;
    pool.close().await;
    Ok(())
}
