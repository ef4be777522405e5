//! Fuzzes the provider zip checks (`airgap_mirror::archive`): any bytes as a zip. The
//! checks must never panic or hang, and a zip they accept must stream its executable
//! within its declared size (what `sync` and `mirror import` rely on).
//!
//! Run: `cd mirror/fuzz && cargo +nightly fuzz run zip_check corpus/zip_check seeds/zip_check -- -max_total_time=1800`
#![no_main]

use std::io::{Cursor, Write};
use std::sync::OnceLock;

use airgap_mirror::archive::{check_zip, extract_member, provider_executable, ZipLimits};
use libfuzzer_sys::fuzz_target;

/// Small bounds keep each run fast; the checks are the same code at any bound.
const LIMITS: ZipLimits = ZipLimits {
    max_entries: 64,
    max_entry_bytes: 8 * 1024 * 1024,
    max_total_bytes: 16 * 1024 * 1024,
    max_ratio: 100,
};

fn scratch() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
}

/// Counts bytes and asserts the bound the checks promise.
struct Bounded(u64);

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        assert!(self.0 <= LIMITS.max_entry_bytes + 1, "member streamed past its bound");
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let exe = provider_executable("x");
    let Ok(summary) = check_zip("fuzz.zip", Cursor::new(data), &exe, &LIMITS) else {
        return;
    };
    assert!(summary.entries <= LIMITS.max_entries);
    assert!(summary.total_bytes <= LIMITS.max_total_bytes);
    assert!(summary.executable.starts_with(&exe));
    let path = scratch().path().join("input.zip");
    if std::fs::write(&path, data).is_ok() {
        let _ = extract_member(&path, &exe, &LIMITS, &mut Bounded(0));
    }
});
