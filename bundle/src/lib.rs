//! The coder-airgap bundle: one `.tar.gz` that carries a whole appliance across an air gap.
//!
//! - [`pack`] turns a stage directory into a reproducible bundle and a detached minisign
//!   signature over the whole file.
//! - [`verify`] and [`unpack`] read a bundle once, in bounded memory, and refuse anything
//!   that is not exactly what the signed manifest describes.
//! - [`keys`] makes and loads minisign keys; the stock `minisign` tool interoperates.
//! - [`names`] checks every manifest name that becomes part of a path; [`escape`] shows
//!   untrusted text on a terminal without letting it control the terminal.
//!
//! The format is written down in `docs/bundle-format.md`.

#![deny(missing_docs)]

mod error;
pub mod escape;
mod hashing;
pub mod keys;
pub mod manifest;
pub mod names;
mod open;
mod pack;
mod parallel_gzip;
mod read;
pub mod signature;
mod stage;
mod tar_reader;
mod unpack;

pub use error::{BundleError, Result};
pub use keys::{PublicKey, SecretKey};
pub use manifest::Manifest;
pub use pack::{pack, signature_path, PackOptions, PackSummary};
pub use parallel_gzip::ParallelGzWriter;
pub use read::{read_manifest_unverified, verify, Verified, VerifyOptions};
pub use unpack::{unpack, unpack_staged, Staged, STAGING_PREFIX};

/// Progress reporting for long operations; the CLI draws bars, libraries and tests pass `&()`.
pub trait Progress: Sync {
    /// A new phase (`hashing`, `packing`, `verifying`) over `total` bytes begins.
    fn phase(&self, name: &'static str, total: u64);
    /// `bytes` more bytes of the current phase are done.
    fn advance(&self, bytes: u64);
}

impl Progress for () {
    fn phase(&self, _: &'static str, _: u64) {}
    fn advance(&self, _: u64) {}
}
