//! Shared helpers for the integration tests: the binary under test and temp dirs.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub use airgap_testkit::tools;

/// A `Command` for the coder-airgap binary under test, with a clean environment.
pub fn airgap() -> Command {
    tools::clean_command(env!("CARGO_BIN_EXE_coder-airgap"))
}

/// Runs `cmd`, panicking with its output if it did not exit 0.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`, panicking if it exited 0; returns its stderr.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        !out.status.success(),
        "{cmd:?} unexpectedly succeeded\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes `contents` to `dir/rel`, creating parents.
pub fn write(dir: &Path, rel: &str, contents: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, contents).expect("write");
}
pub mod appliance;
