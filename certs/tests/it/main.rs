//! The CA crate's integration tests, one binary with one module per area.

mod authority;
mod tls;
