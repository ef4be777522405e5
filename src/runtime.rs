//! The one place the binary builds a tokio runtime, for subcommands that do network or
//! process work. Bundle and CA work is plain blocking code and never needs it.

use std::future::Future;

/// Runs `fut` to completion on a multi-threaded runtime.
pub fn block_on<F: Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    Ok(rt.block_on(fut))
}
