//! Regression (found by the fuzzer): a refused bundle must not leave the reader's file
//! thread running after `verify` returns. Alone in its own test binary so no other test's
//! threads are counted.

mod forge;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

#[test]
fn no_thread_outlives_a_refused_verify() {
    let keys = forge::keys();
    let dir = tempfile::tempdir().expect("tempdir");
    // A large garbage file: the reader thread is still busy when the first check fails.
    let garbage = forge::pseudo_random(64 << 20, 5);
    let path = forge::write_signed(dir.path(), "b.tar.gz", &garbage, &keys.secret);
    let before = threads();
    let opts = airgap_bundle::VerifyOptions::default();
    for _ in 0..3 {
        airgap_bundle::verify(&path, &keys.public, &opts, &()).expect_err("garbage is refused");
        assert_eq!(threads(), before, "a reader thread outlived verify");
    }
}
