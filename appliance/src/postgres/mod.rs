//! The appliance's PostgreSQL layer.
//!
//! coderd needs a PostgreSQL database. The appliance either runs one itself from the
//! relocatable PostgreSQL tree shipped in the bundle ([`Embedded`], via
//! `postgresql_embedded` with downloads compiled out), or checks an operator's external
//! server ([`check_external`]). On top of either it keeps its own small ledger
//! (installs, certificates, upgrades, backups) in schema `coder_airgap` ([`migrate`],
//! [`ledger`]) and takes and restores `pg_dump` backups for upgrade and rollback
//! ([`dump`], [`restore`]).
//!
//! Everything here runs as the unprivileged service user (see `crate::privilege`):
//! PostgreSQL refuses root, and [`Embedded::start`] says so in one line. Every error is a
//! [`PgError`] whose `Display` is a single line that names the fix where there is one.

mod dump;
mod embedded;
mod error;
mod external;
pub mod ledger;
mod migrate;
mod secret;
mod tree;

#[cfg(test)]
mod tests;

pub use dump::{dump, hash_file, restore};
pub use embedded::{Embedded, EmbeddedSettings};
pub use error::PgError;
pub use external::{check_external, connect};
pub use migrate::migrate;
pub use secret::SecretUrl;
pub use tree::Tree;
pub use tree::REQUIRED as REQUIRED_TOOLS;

/// Result type of this module.
pub type Result<T, E = PgError> = std::result::Result<T, E>;
