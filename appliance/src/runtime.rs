//! The one place a tokio runtime is built, for work that does network or process I/O from
//! blocking callers (install's database step, rollback's restore, the CLI's subcommands).
//! Bundle and CA work is plain blocking code and never needs it.

use std::future::Future;

/// Runs `fut` to completion on a multi-threaded runtime.
pub fn block_on<F: Future>(fut: F) -> std::io::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| std::io::Error::other(format!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(fut))
}
