//! Asking local programs their versions, for artifacts taken with `--*-from`.

use std::path::Path;
use std::time::Duration;

use airgap_tool::Tool;

use super::error::SyncError;

/// How long a local program may take to print its version.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `program args…` and returns its stdout. Its environment is only a fixed `PATH`
/// (pg_config and some wrappers are shell scripts) and `CHECKPOINT_DISABLE=1` (Terraform
/// must not phone home from the connected side either).
pub fn output(program: &Path, args: &[&str]) -> Result<String, SyncError> {
    let name = program.file_name().unwrap_or(program.as_os_str());
    let description = std::iter::once(name.to_string_lossy().into_owned())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Tool::new(description, program)
        .args(args)
        .env("PATH", "/usr/bin:/bin")
        .env("CHECKPOINT_DISABLE", "1")
        .timeout(TIMEOUT)
        .output()?;
    String::from_utf8(out.stdout).map_err(|e| SyncError::Program {
        program: program.to_path_buf(),
        message: e.to_string(),
    })
}

/// `terraform version -json` → `terraform_version`.
pub fn terraform_version(binary: &Path) -> Result<String, SyncError> {
    let text = output(binary, &["version", "-json"])?;
    json_field(binary, &text, "terraform_version")
}

/// `coder version --output json` → `version` without the `v` and `+build` parts.
pub fn coder_version(binary: &Path) -> Result<String, SyncError> {
    let text = output(binary, &["version", "--output", "json"])?;
    let v = json_field(binary, &text, "version")?;
    Ok(clean_version(&v))
}

/// `v2.35.3+0123abc` → `2.35.3`: the [`airgap_version::Version`] it names, printed
/// canonically. Text that names no version is kept (trimmed) for the check that reports it.
pub fn clean_version(v: &str) -> String {
    v.parse::<airgap_version::Version>()
        .map_or_else(|_| v.trim().to_string(), |v| v.to_string())
}

/// `pg_config --version` (`PostgreSQL 15.14 (Debian …)`) → `15.14`.
pub fn postgres_version(pg_config: &Path) -> Result<String, SyncError> {
    let text = output(pg_config, &["--version"])?;
    text.split_whitespace()
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| SyncError::Program {
            program: pg_config.to_path_buf(),
            message: format!("unexpected output {text:?}"),
        })
}

fn json_field(program: &Path, text: &str, field: &str) -> Result<String, SyncError> {
    let value: serde_json::Value =
        serde_json::from_str(text.trim()).map_err(|e| SyncError::Program {
            program: program.to_path_buf(),
            message: format!("not JSON ({e}): {text:?}"),
        })?;
    value[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| SyncError::Program {
            program: program.to_path_buf(),
            message: format!("no {field:?} in {text:?}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_coder_versions() {
        assert_eq!(clean_version("v2.35.3+0123abc"), "2.35.3");
        assert_eq!(clean_version("2.30.1"), "2.30.1");
    }
}
