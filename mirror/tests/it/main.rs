//! The mirror crate's integration tests, one binary with one module per area.

mod fetch;
mod hostile;
mod listener;
mod openpgp;
mod serve;
mod sync;
