//! Test support for coder-airgap: locating the real programs the tests drive (Terraform,
//! PostgreSQL, minisign, openssl), starting them with a clean environment, and local
//! stand-ins for internet upstreams. Used by tests and by `scripts/demo`; never shipped.

pub mod abuse;
pub mod appliance;
pub mod hostile;
pub mod pgcluster;
pub mod pgpkey;
pub mod pki;
pub mod registry;
pub mod releases;
pub mod root;
pub mod server;
pub mod tools;
