//! Root-only tests: they are marked `#[ignore = "needs root: ..."]` so that a run as an
//! ordinary user lists them as ignored (never a green pass that did nothing), and they call
//! [`require_root`] first so that `--include-ignored` as an ordinary user fails loudly.
//! `scripts/test` passes `--include-ignored` when it runs as root (CI does).

/// Whether this process runs with effective uid 0 (read from `/proc/self/status`, so the
/// tests need no libc bindings for it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Panics with a clear message unless this process runs as root: the first line of every
/// root-only test.
pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root (it is #[ignore]d for that reason); \
         run it as root, as CI does (scripts/test passes --include-ignored as root)"
    );
}
