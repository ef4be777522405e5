//! Regression (found by the fuzzer): a refused bundle must not leave the reader's file
//! thread running after `verify` returns. Alone in its own test binary so no other test's
//! threads are counted.

use std::collections::BTreeSet;

mod forge;

/// `PF_EXITING` in the `flags` field of `/proc/<pid>/task/<tid>/stat` (include/linux/sched.h).
const PF_EXITING: u64 = 0x4;

/// The ids of this process's threads that are still running.
///
/// A joined thread is not counted even if `/proc/self/task` still lists it: `join`
/// (pthread_join) returns as soon as the kernel clears the thread's tid, early in
/// `do_exit`, and the thread is unlisted only at the end of `do_exit`; on a loaded host
/// the listing lags by milliseconds. `do_exit` sets `PF_EXITING` before it clears the
/// tid, so a thread that has been joined always carries it, and one still running never
/// does: the count is exact, with no sleeps.
fn running_threads() -> BTreeSet<u32> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    tasks
        .map(|task| task.expect("/proc/self/task entry"))
        .filter(|task| !exiting(&task.path()))
        .map(|task| {
            let name = task.file_name();
            let tid = name.to_str().expect("a tid is ASCII");
            tid.parse().expect("a tid is a number")
        })
        .collect()
}

/// Whether the thread at `task` (a `/proc/self/task/<tid>` directory) is exiting or gone.
fn exiting(task: &std::path::Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(task.join("stat")) else {
        return true; // reaped between the listing and this read
    };
    // `tid (comm) state ppid pgrp session tty_nr tpgid flags ...`; comm may hold spaces.
    let after_comm = stat.rsplit_once(')').expect("stat has (comm)").1;
    let flags: u64 = after_comm
        .split_whitespace()
        .nth(6)
        .expect("stat has flags")
        .parse()
        .expect("flags is a number");
    flags & PF_EXITING != 0
}

#[test]
fn no_thread_outlives_a_refused_verify() {
    measurement_sees_a_live_thread();
    let keys = forge::keys();
    let dir = tempfile::tempdir().expect("tempdir");
    // A large garbage file: the reader thread is still busy when the first check fails.
    let garbage = forge::pseudo_random(64 << 20, 5);
    let path = forge::write_signed(dir.path(), "b.tar.gz", &garbage, &keys.secret);
    let before = running_threads();
    let opts = airgap_bundle::VerifyOptions::default();
    for _ in 0..3 {
        airgap_bundle::verify(&path, &keys.public, &opts, &()).expect_err("garbage is refused");
        assert_eq!(running_threads(), before, "a reader thread outlived verify");
    }
}

/// The measurement can fail: a thread that has not been joined is counted. (Part of the
/// one test, not a test of its own, so that no other test's thread runs alongside.)
fn measurement_sees_a_live_thread() {
    let before = running_threads();
    let (stop, wait) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || wait.recv().ok());
    let during = running_threads();
    drop(stop);
    thread.join().expect("thread");
    assert_eq!(during.len(), before.len() + 1, "a live thread is counted");
    assert!(during.is_superset(&before), "{during:?} ⊉ {before:?}");
}
