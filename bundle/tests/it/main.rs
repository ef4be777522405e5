//! The bundle crate's integration tests, one binary with one module per area.
//! (`threads.rs` stays its own binary: it counts the process's threads, which other tests
//! running in parallel would change.)

#[path = "../forge/mod.rs"]
mod forge;

mod hostile;
mod roundtrip;
