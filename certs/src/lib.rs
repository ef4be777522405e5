//! The appliance's internal certificate authority.
//!
//! A disconnected network has no public CA, so every TLS endpoint of the appliance (coderd's
//! access URL and its wildcard app domain, the provider mirror) and the operators' other
//! internal hosts get certificates from a CA the site controls. [`CertificateAuthority::init`]
//! makes a root whose certificate carries critical name constraints (the DNS suffixes and IP
//! ranges the site owns) and an intermediate that issues the leaves, so the root key can go
//! offline. [`CertificateAuthority::import`] uses an enterprise CA instead.
//!
//! ```no_run
//! use airgap_certs::{CertificateAuthority, InitOptions, LeafRequest};
//! # fn main() -> Result<(), airgap_certs::CertsError> {
//! let mut options = InitOptions::new("Example Corp Internal CA");
//! options.permitted_dns.push("example.com".into());
//! let ca = CertificateAuthority::init("/var/lib/coder-airgap/ca".as_ref(), &options)?;
//! let request = LeafRequest::server(["coder.example.com", "*.apps.example.com"], []);
//! ca.issue_to_files(&request, "/etc/coder-airgap/tls/coderd".as_ref())?;
//! # Ok(()) }
//! ```
//!
//! # The CA directory
//!
//! ```text
//! DIR/                mode 0700
//!   ca.json           kind (generated | imported), name, leaf key algorithm, creation time
//!   root.crt          root certificate, with the name constraints (generated CAs only)
//!   root.key          root private key, 0600: move it offline after `init`, nothing needs it
//!   ca.crt            issuing CA certificate: our intermediate, or the imported CA
//!   ca.key            issuing CA private key, 0600 (loading refuses a key others can read)
//!   chain.pem         imported CAs only: the certificates that followed the CA in the import
//!   ledger.json       every issued leaf (serial, names, validity, files, revocation), CRL number
//!   .lock             held while a command updates the ledger
//! ```
//!
//! Every file is written to a temporary name and renamed into place; `init` and `import`
//! build the whole directory under a temporary name and rename it, so a failure leaves
//! nothing behind. Where leaves go on disk, and how renewal swaps them, is described in
//! [`CertificateAuthority::issue_to_files`] and the `leaf_files` module.
//!
//! Clients trust [`CertificateAuthority::trust_bundle_pem`]: the root of a generated CA, or
//! the imported certificate(s).

#![deny(missing_docs)]

mod authority;
mod error;
mod files;
mod init;
mod leaf;
mod leaf_files;
mod ledger;
mod names;
mod revocation;
mod serial;
mod x509;

pub use authority::{CaKind, CertificateAuthority, TrustAnchor};
pub use error::{CertsError, Result};
pub use init::{Algorithm, InitOptions, DEFAULT_CA_DAYS};
pub use leaf::{IssuedLeaf, LeafRequest, PrivateKeyPem, DEFAULT_LEAF_DAYS};
pub use leaf_files::{read_leaf_files, IssuedFiles, Renewal};
pub use ledger::{LeafStatus, LeafUsage, Ledger, LedgerEntry, Revocation, RevocationReason};
pub use names::{Constraints, IpRange};
pub use revocation::{Crl, DEFAULT_CRL_DAYS};
pub use serial::Serial;
