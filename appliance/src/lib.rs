//! The disconnected side of coder-airgap: everything that runs on the appliance host.
//!
//! - the installed appliance as files: where everything lives under ROOT ([`layout`],
//!   [`rootdir`]), its settings ([`config`]), the environment coderd runs with ([`env`],
//!   built from the one air-gap [`posture`] table), the systemd unit ([`systemd`]) and the
//!   releases ([`release`]);
//! - [`install`] and rollback: from a verified bundle to a configured root, atomically;
//! - [`postgres`]: the embedded server from the bundle's binaries, or an external one;
//! - [`supervise`]: `up`'s supervisor of Postgres, the mirror and coderd;
//! - [`doctor`]: every property the air gap depends on, checked on the running appliance;
//! - [`privilege`]: the service user and dropping root to it.

#![deny(missing_docs)]

pub mod config;
pub mod doctor;
pub mod env;
pub mod install;
pub mod layout;
pub mod postgres;
pub mod posture;
pub mod privilege;
pub mod release;
pub mod rootdir;
pub mod runtime;
pub mod supervise;
pub mod systemd;
