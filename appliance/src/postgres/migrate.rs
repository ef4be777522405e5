//! [`migrate`]: the appliance's ledger schema, applied with sqlx's migrator.
//!
//! Everything, including sqlx's own `_sqlx_migrations` bookkeeping table, lives in schema
//! `coder_airgap`, so the appliance never touches coderd's `public` schema.

use sqlx::Connection;

use super::{external, PgError, Result, SecretUrl};

/// The schema that holds the appliance's ledger.
pub const SCHEMA: &str = "coder_airgap";

/// Applies the migrations in `migrations/` (compiled in) to schema `coder_airgap` of the
/// database at `url`, creating the schema when missing. Idempotent; concurrent runs are
/// serialised by sqlx's advisory lock.
pub async fn migrate(url: &SecretUrl) -> Result<()> {
    let mut migrator = sqlx::migrate!("../migrations");
    migrator.create_schema(SCHEMA);
    migrator.dangerous_set_table_name(format!("{SCHEMA}._sqlx_migrations"));
    let mut conn = external::connect_once(url).await?;
    // The migration SQL qualifies every name; this is a second guard for anything it
    // might create unqualified.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET search_path TO {SCHEMA}")))
        .execute(&mut conn)
        .await?;
    let result = migrator.run(&mut conn).await;
    conn.close().await?;
    result.map_err(|e| PgError::Migrate(super::error::one_line(&e.to_string())))
}
