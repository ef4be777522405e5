//! The appliance's ledger in schema `coder_airgap`: what was installed, which
//! certificates were issued, upgrades and the backups taken for them.
//!
//! Typed inserts and reads over runtime-checked `sqlx::query` (no `DATABASE_URL` at build
//! time). Every function takes any executor — a pool, a connection or a transaction — so
//! install can group writes. Timestamps cross the wire as Unix microseconds, so no sqlx
//! time feature is needed; they come back as [`OffsetDateTime`] in UTC.

#[cfg(test)]
use sqlx::postgres::PgRow;
use sqlx::PgExecutor;
#[cfg(test)]
use sqlx::Row;
use time::OffsetDateTime;

use super::{PgError, Result};

/// How an install or upgrade ended (stored as text, checked by the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Started, not finished (or the process died before it could say).
    InProgress,
    /// Completed.
    Succeeded,
    /// Failed; nothing was switched.
    Failed,
    /// Failed after switching, and the previous release was put back.
    RolledBack,
}

impl Outcome {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InProgress => "in_progress",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled_back",
        }
    }

    #[cfg(test)] // The read side: tests check what install and rollback record.
    fn parse(text: &str) -> Result<Outcome> {
        Ok(match text {
            "in_progress" => Outcome::InProgress,
            "succeeded" => Outcome::Succeeded,
            "failed" => Outcome::Failed,
            "rolled_back" => Outcome::RolledBack,
            other => return Err(PgError::Ledger(format!("unknown outcome {other:?}"))),
        })
    }
}

/// A release being installed (what [`record_install`] stores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstall {
    /// The bundle's name from its manifest.
    pub bundle: String,
    /// The bundle's version.
    pub version: String,
    /// The bundle's sequence number (monotonic; guards against replaying old bundles).
    pub sequence: i64,
    /// The release directory it was unpacked into.
    pub release_dir: String,
    /// Who ran the install (user name, or `root via sudo`).
    pub installed_by: String,
    /// The release directory that was current before, if any.
    pub previous_release: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
}

#[cfg(test)] // The read side: tests check what install and rollback record.
/// A recorded install (a row of `installs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// Row id.
    pub id: i64,
    /// When it was recorded.
    pub installed_at: OffsetDateTime,
    /// The recorded fields.
    pub record: NewInstall,
}

/// An issued certificate (a row of `certificates`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Serial number, hex.
    pub serial: String,
    /// Subject alternative names.
    pub names: Vec<String>,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// What it is for, e.g. `coderd-tls`, `mirror-tls`.
    pub purpose: String,
}

/// An upgrade being started (what [`record_upgrade`] stores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpgrade {
    /// The version upgraded from.
    pub from_version: String,
    /// The version upgraded to.
    pub to_version: String,
    /// The backup taken before it, if any.
    pub backup_id: Option<i64>,
    /// How it ended so far (usually [`Outcome::InProgress`]; see [`finish_upgrade`]).
    pub outcome: Outcome,
}

/// A backup taken (what [`record_backup`] stores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBackup {
    /// Where the dump file is.
    pub path: String,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// The release that was running when it was taken.
    pub release: String,
    /// Why, e.g. `pre-upgrade`, `manual`.
    pub reason: String,
}

#[cfg(test)] // The read side: tests check what install and rollback record.
/// A recorded backup (a row of `backups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Row id (what upgrades refer to).
    pub id: i64,
    /// When it was recorded.
    pub taken_at: OffsetDateTime,
    /// The recorded fields.
    pub record: NewBackup,
}

/// Records an install; returns its id.
pub async fn record_install<'e>(db: impl PgExecutor<'e>, rec: &NewInstall) -> Result<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO coder_airgap.installs
           (bundle, version, sequence, release_dir, installed_by, previous_release, outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&rec.bundle)
    .bind(&rec.version)
    .bind(rec.sequence)
    .bind(&rec.release_dir)
    .bind(&rec.installed_by)
    .bind(&rec.previous_release)
    .bind(rec.outcome.as_str())
    .fetch_one(db)
    .await?;
    Ok(id)
}

#[cfg(test)] // The read side: tests check what install and rollback record.
/// Every recorded install, oldest first.
pub async fn list_installs<'e>(db: impl PgExecutor<'e>) -> Result<Vec<Install>> {
    let rows = sqlx::query(
        "SELECT id, bundle, version, sequence, release_dir, installed_by, previous_release,
                outcome, (extract(epoch FROM installed_at) * 1000000)::bigint AS at_us
         FROM coder_airgap.installs ORDER BY id",
    )
    .fetch_all(db)
    .await?;
    rows.iter().map(install_from_row).collect()
}

#[cfg(test)] // The read side: tests check what install and rollback record.
fn install_from_row(row: &PgRow) -> Result<Install> {
    Ok(Install {
        id: row.try_get("id")?,
        installed_at: from_micros(row.try_get("at_us")?)?,
        record: NewInstall {
            bundle: row.try_get("bundle")?,
            version: row.try_get("version")?,
            sequence: row.try_get("sequence")?,
            release_dir: row.try_get("release_dir")?,
            installed_by: row.try_get("installed_by")?,
            previous_release: row.try_get("previous_release")?,
            outcome: Outcome::parse(row.try_get("outcome")?)?,
        },
    })
}

/// Records an issued certificate. Recording the same serial again is a no-op (retries
/// are safe).
pub async fn record_certificate<'e>(db: impl PgExecutor<'e>, cert: &Certificate) -> Result<()> {
    sqlx::query(
        "INSERT INTO coder_airgap.certificates (serial, names, not_after, purpose)
         VALUES ($1, $2, timestamptz 'epoch' + $3 * interval '1 microsecond', $4)
         ON CONFLICT (serial) DO NOTHING",
    )
    .bind(&cert.serial)
    .bind(&cert.names)
    .bind(to_micros(cert.not_after)?)
    .bind(&cert.purpose)
    .execute(db)
    .await?;
    Ok(())
}

/// Records the start of an upgrade; returns its id for [`finish_upgrade`].
pub async fn record_upgrade<'e>(db: impl PgExecutor<'e>, up: &NewUpgrade) -> Result<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO coder_airgap.upgrades (from_version, to_version, backup_id, outcome)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(&up.from_version)
    .bind(&up.to_version)
    .bind(up.backup_id)
    .bind(up.outcome.as_str())
    .fetch_one(db)
    .await?;
    Ok(id)
}

/// Marks upgrade `id` finished now with `outcome`.
pub async fn finish_upgrade<'e>(db: impl PgExecutor<'e>, id: i64, outcome: Outcome) -> Result<()> {
    let done = sqlx::query(
        "UPDATE coder_airgap.upgrades SET finished_at = now(), outcome = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(outcome.as_str())
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(PgError::Ledger(format!("no upgrade with id {id}")));
    }
    Ok(())
}

/// Links upgrade `id` to the backup taken for it.
pub async fn attach_backup<'e>(db: impl PgExecutor<'e>, id: i64, backup_id: i64) -> Result<()> {
    sqlx::query("UPDATE coder_airgap.upgrades SET backup_id = $2 WHERE id = $1")
        .bind(id)
        .bind(backup_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Records a backup; returns its id.
pub async fn record_backup<'e>(db: impl PgExecutor<'e>, b: &NewBackup) -> Result<i64> {
    let bytes = i64::try_from(b.bytes).map_err(|_| PgError::Ledger("backup too large".into()))?;
    let id = sqlx::query_scalar(
        "INSERT INTO coder_airgap.backups (path, sha256, bytes, release, reason)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(&b.path)
    .bind(&b.sha256)
    .bind(bytes)
    .bind(&b.release)
    .bind(&b.reason)
    .fetch_one(db)
    .await?;
    Ok(id)
}

#[cfg(test)] // The read side: tests check what install and rollback record.
/// The most recent backup, if any (what rollback restores).
pub async fn latest_backup<'e>(db: impl PgExecutor<'e>) -> Result<Option<Backup>> {
    let row = sqlx::query(
        "SELECT id, path, sha256, bytes, release, reason,
                (extract(epoch FROM taken_at) * 1000000)::bigint AS at_us
         FROM coder_airgap.backups ORDER BY taken_at DESC, id DESC LIMIT 1",
    )
    .fetch_optional(db)
    .await?;
    row.as_ref().map(backup_from_row).transpose()
}

#[cfg(test)] // The read side: tests check what install and rollback record.
fn backup_from_row(row: &PgRow) -> Result<Backup> {
    let bytes: i64 = row.try_get("bytes")?;
    Ok(Backup {
        id: row.try_get("id")?,
        taken_at: from_micros(row.try_get("at_us")?)?,
        record: NewBackup {
            path: row.try_get("path")?,
            sha256: row.try_get("sha256")?,
            bytes: u64::try_from(bytes).map_err(|_| PgError::Ledger("negative size".into()))?,
            release: row.try_get("release")?,
            reason: row.try_get("reason")?,
        },
    })
}

fn to_micros(t: OffsetDateTime) -> Result<i64> {
    i64::try_from(t.unix_timestamp_nanos() / 1000)
        .map_err(|_| PgError::Ledger(format!("timestamp out of range: {t}")))
}

#[cfg(test)] // The read side: tests check what install and rollback record.
fn from_micros(us: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|e| PgError::Ledger(format!("timestamp out of range: {e}")))
}
