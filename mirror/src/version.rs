//! Provider versions and Terraform-style version constraints, from [`airgap_version`]
//! (the one version type of the workspace); re-exported so this crate's API is unchanged.

pub use airgap_version::{Constraint, Version, VersionError};
