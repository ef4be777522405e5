//! Reading passwords and keys for the bundle subcommands.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// A password from `file` (first line), or asked on the terminal (`confirm`: twice).
pub fn password(file: Option<&Path>, prompt: &str, confirm: bool) -> anyhow::Result<String> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading password file {}", file.display()))?;
        let pw = text.lines().next().unwrap_or("").to_string();
        if pw.is_empty() {
            bail!("password file {} is empty", file.display());
        }
        return Ok(pw);
    }
    if !std::io::stdin().is_terminal() {
        bail!("a password is needed and there is no terminal to ask on: pass --password-file FILE");
    }
    let pw = rpassword::prompt_password(prompt).context("reading password")?;
    if confirm && rpassword::prompt_password("Repeat it: ").context("reading password")? != pw {
        bail!("the two passwords differ");
    }
    if pw.is_empty() {
        bail!("empty password: use --unencrypted if you really want no password");
    }
    Ok(pw)
}

/// Loads the secret key at `path`, asking for its password if it is encrypted.
pub fn secret_key(
    path: &Path,
    password_file: Option<&PathBuf>,
) -> anyhow::Result<airgap_bundle::SecretKey> {
    let encrypted = airgap_bundle::SecretKey::file_is_encrypted(path)?;
    let pw = if encrypted {
        Some(password(
            password_file.map(PathBuf::as_path),
            &format!("Password for {}: ", path.display()),
            false,
        )?)
    } else {
        None
    };
    Ok(airgap_bundle::SecretKey::from_file(path, pw)?)
}
