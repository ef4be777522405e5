//! The root package's integration tests, one binary (linked once) with one module per area.
//! They drive the `coder-airgap` binary and real programs (minisign, openssl, curl, tar,
//! psql, PostgreSQL 15, Terraform 1.0.3); the root-only ones run as root (CI does).
//! (`tests/abuse.rs` stays its own binary: it floods a server against deadlines, which
//! other tests running in the same process would turn into a measure of the machine.)

mod support;

/// The bundle crate's test forger: validly signed bundles with one planted defect.
#[path = "../../bundle/tests/forge/mod.rs"]
mod forge;

mod airgap;
mod appliance;
mod bundle_cli;
mod ca;
mod errors;
mod install;
mod mirror;
mod sync;
