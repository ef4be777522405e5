//! The Terraform provider mirror: registry-protocol sync, mirror layout and hashes, and the
//! network-mirror HTTPS server.
//!
//! Reusable beyond providers: [`fetch`] (parallel, resumable, verified downloads) and
//! [`openpgp`] (detached-signature verification with expiry checks).

#![deny(missing_docs)]

pub mod archive;
pub mod failure;
pub mod fetch;
pub mod hash;
pub mod layout;
pub mod listener;
pub mod maintain;
pub mod module_archive;
pub mod module_store;
pub mod openpgp;
pub mod registry;
pub mod serve;
pub mod spec;
pub mod sync;
pub mod version;

pub use layout::{Mirror, Platform, ProviderAddr};
pub use module_store::{ModuleAddr, ModuleStore};
pub use version::{Constraint, Version};
