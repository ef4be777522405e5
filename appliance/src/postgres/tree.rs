//! [`Tree`]: a relocatable PostgreSQL installation (the bundle's copy, or any bin
//! directory laid out like one).

use std::path::{Path, PathBuf};

use airgap_tool::Tool;

use super::{PgError, Result};

/// The programs the appliance runs from the tree; [`Tree::from_bindir`] checks them all.
pub const REQUIRED: [&str; 7] = [
    "pg_ctl",
    "postgres",
    "initdb",
    "pg_dump",
    "pg_restore",
    "psql",
    "pg_config",
];

/// A PostgreSQL installation: its `bin` directory and the installation directory above
/// it (what `postgresql_embedded` calls `installation_dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    bin_dir: PathBuf,
    installation_dir: PathBuf,
}

impl Tree {
    /// Validates that `bin_dir` holds every program the appliance runs (pg_ctl, postgres,
    /// initdb, pg_dump, pg_restore, psql, pg_config) and returns the tree. The path is
    /// made absolute, because pg_ctl is run from other working directories.
    pub fn from_bindir(bin_dir: impl AsRef<Path>) -> Result<Tree> {
        let given = bin_dir.as_ref();
        let bin_dir = std::fs::canonicalize(given)
            .map_err(|e| PgError::io("cannot open PostgreSQL bin directory", given, e))?;
        for name in REQUIRED {
            if !bin_dir.join(name).is_file() {
                return Err(PgError::MissingBinary { dir: bin_dir, name });
            }
        }
        let installation_dir = bin_dir
            .parent()
            .ok_or_else(|| PgError::MissingBinary {
                dir: bin_dir.clone(),
                name: "parent installation directory",
            })?
            .to_path_buf();
        Ok(Tree {
            bin_dir,
            installation_dir,
        })
    }

    /// The `bin` directory.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The directory above `bin`, which `postgresql_embedded` uses as `installation_dir`.
    pub fn installation_dir(&self) -> &Path {
        &self.installation_dir
    }

    /// The path of program `name` in the tree.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The tree's PostgreSQL version, e.g. `15.14`, from `postgres --version` (run with an
    /// empty environment).
    pub async fn version(&self) -> Result<String> {
        const WHAT: &str = "postgres --version";
        let out = Tool::new(WHAT, self.bin("postgres"))
            .arg("--version")
            .timeout(std::time::Duration::from_secs(30))
            .output_async()
            .await?;
        let text = out.stdout_lossy();
        parse_version(&text).ok_or_else(|| PgError::tool(WHAT, &text))
    }

    /// The tree's major version (15 for `15.14`).
    pub async fn major_version(&self) -> Result<u32> {
        let version = self.version().await?;
        major_of(&version).ok_or_else(|| PgError::tool("postgres --version", &version))
    }
}

/// `postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)` → `15.14`.
fn parse_version(text: &str) -> Option<String> {
    let rest = text.split("(PostgreSQL)").nth(1)?;
    let word = rest.split_whitespace().next()?;
    word.chars()
        .next()?
        .is_ascii_digit()
        .then(|| word.to_string())
}

/// `15.14` → 15 (and `9.6.24` → 9).
pub fn major_of(version: &str) -> Option<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_version_lines() {
        let debian = "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n";
        assert_eq!(parse_version(debian).as_deref(), Some("15.14"));
        assert_eq!(
            parse_version("postgres (PostgreSQL) 17.2\n").as_deref(),
            Some("17.2")
        );
        assert_eq!(parse_version("garbage"), None);
        assert_eq!(major_of("15.14"), Some(15));
        assert_eq!(major_of("12beta1"), Some(12));
    }

    #[test]
    fn missing_binary_is_named() {
        let dir = std::env::temp_dir();
        match Tree::from_bindir(&dir) {
            Err(PgError::MissingBinary { name, .. }) => assert_eq!(name, "pg_ctl"),
            other => panic!("expected MissingBinary, got {other:?}"),
        }
    }
}
