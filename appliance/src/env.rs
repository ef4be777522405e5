//! The environment `coder server` runs with: the air-gap posture. It is written once by
//! `install` to `ROOT/etc/coderd.env` (systemd `EnvironmentFile` syntax, 0600) and read back
//! by `up`, so the file an operator inspects is exactly what coderd gets. Terraform, which
//! coderd starts, inherits everything but the `CODER_*` variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::config::AccessUrl;
use super::layout::Layout;
use super::postgres::SecretUrl;
use super::posture::{Site, Value, POSTURE};
use super::rootdir::{Dir, Owner, RootDirError};

/// What varies between sites; everything else in the posture is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoderdSettings {
    /// `CODER_ACCESS_URL`: always set, since an empty one makes coderd open a public tunnel.
    pub access_url: AccessUrl,
    /// `CODER_WILDCARD_ACCESS_URL` (`*.apps.example.internal`), if subdomain apps are used.
    pub wildcard_url: Option<String>,
    /// `CODER_TLS_ADDRESS`, e.g. `0.0.0.0:443`.
    pub tls_address: SocketAddr,
    /// `CODER_PG_CONNECTION_URL`: never empty, since coderd's built-in Postgres downloads.
    pub pg_url: SecretUrl,
    /// `CODER_DOCS_URL`, when the bundle carries Coder's offline docs.
    pub docs_url: Option<String>,
    /// `CODER_AI_GATEWAY_ENABLED`: true only when the operator opted in at install.
    pub ai_gateway: bool,
}

/// Errors reading or writing the env file.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// Reading or writing failed.
    #[error("{path}: {cause}")]
    Io {
        /// The env file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A line is not `KEY="value"`.
    #[error("{path}:{line}: not KEY=\"value\" (re-run install to regenerate this file)")]
    Syntax {
        /// The env file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// Writing through the directory handle failed.
    #[error(transparent)]
    Write(#[from] RootDirError),
    /// A value holds a newline, which the file format cannot carry.
    #[error("{key}: a value may not contain a newline")]
    Newline {
        /// The variable.
        key: String,
    },
}

/// The full environment of `coder server`, in a stable order: every row of
/// [`POSTURE`](super::posture::POSTURE) (fixed values as the table gives them, site values
/// computed here), then the site-only variables that are not part of the air-gap posture.
pub fn coderd_env(settings: &CoderdSettings, layout: &Layout) -> Vec<(String, String)> {
    let path = |p: PathBuf| p.display().to_string();
    let mut vars: Vec<(String, String)> = Vec::new();
    for row in POSTURE {
        let value = match row.value {
            Value::Fixed(v) => v.to_string(),
            Value::Site(site) => match site {
                Site::AccessUrl => settings.access_url.to_string(),
                Site::AiGateway => settings.ai_gateway.to_string(),
                Site::TerraformRc => path(layout.terraformrc()),
                // coderd's health check calls its own access URL, so it must trust the CA.
                Site::CaBundle => path(layout.ca_bundle()),
            },
        };
        vars.push((row.var.to_string(), value));
    }
    let mut site = vec![
        ("CODER_TLS_ADDRESS", settings.tls_address.to_string()),
        (
            "CODER_TLS_CERT_FILE",
            path(layout.coderd_tls_prefix().with_extension("crt")),
        ),
        (
            "CODER_TLS_KEY_FILE",
            path(layout.coderd_tls_prefix().with_extension("key")),
        ),
        (
            "CODER_PG_CONNECTION_URL",
            settings.pg_url.expose().to_string(),
        ),
        ("CODER_CACHE_DIRECTORY", path(layout.coderd_cache())),
    ];
    if let Some(wildcard) = &settings.wildcard_url {
        site.push(("CODER_WILDCARD_ACCESS_URL", wildcard.clone()));
    }
    if let Some(docs) = &settings.docs_url {
        site.push(("CODER_DOCS_URL", docs.clone()));
    }
    site.extend([
        // The bundled terraform first: coderd downloads one if it finds none in range.
        (
            "PATH",
            format!(
                "{}:/usr/local/bin:/usr/bin:/bin",
                layout.current_bin().display()
            ),
        ),
        ("HOME", path(layout.home())),
    ]);
    vars.extend(site.into_iter().map(|(k, v)| (k.to_string(), v)));
    vars
}

/// Writes `vars` as `KEY="value"` lines to the file `name` in `dir`, mode 0600 (given to
/// `owner` when set), replacing it atomically through the directory handle.
pub fn write_env_file(
    dir: &Dir,
    name: &str,
    owner: Option<Owner>,
    vars: &[(String, String)],
) -> Result<(), EnvError> {
    let mut text =
        String::from("# Written by coder-airgap install: the environment of `coder server`.\n");
    for (key, value) in vars {
        if value.contains('\n') {
            return Err(EnvError::Newline { key: key.clone() });
        }
        let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
        text.push_str(&format!("{key}=\"{quoted}\"\n"));
    }
    dir.write_file(name, text.as_bytes(), 0o600, owner)?;
    Ok(())
}

/// Reads a file written by [`write_env_file`].
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, EnvError> {
    let text = std::fs::read_to_string(path).map_err(|cause| EnvError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let syntax = || EnvError::Syntax {
            path: path.to_path_buf(),
            line: n + 1,
        };
        let (key, rest) = line.split_once('=').ok_or_else(syntax)?;
        let inner = rest
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .ok_or_else(syntax)?;
        vars.push((key.to_string(), unescape(inner).ok_or_else(syntax)?));
    }
    Ok(vars)
}

fn unescape(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CoderdSettings {
        CoderdSettings {
            access_url: "https://coder.example.internal"
                .parse()
                .expect("access URL"),
            wildcard_url: Some("*.apps.example.internal".into()),
            tls_address: "0.0.0.0:443".parse().expect("address"),
            pg_url: SecretUrl::parse(r#"postgres://coder:p"w\d@127.0.0.1:5433/coder"#)
                .expect("URL"),
            docs_url: None,
            ai_gateway: false,
        }
    }

    #[test]
    fn posture_is_complete() {
        let vars = coderd_env(&settings(), &Layout::new("/srv/c"));
        let get = |k: &str| {
            vars.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("CODER_TELEMETRY_ENABLE"), Some("false"));
        assert_eq!(get("CODER_UPDATE_CHECK"), Some("false"));
        assert_eq!(get("CODER_DERP_SERVER_ENABLE"), Some("true"));
        assert_eq!(get("CODER_BLOCK_DIRECT"), Some("true"));
        assert_eq!(get("CODER_DERP_SERVER_STUN_ADDRESSES"), Some("disable"));
        assert_eq!(get("CODER_HTTP_ADDRESS"), Some(""));
        assert_eq!(get("CHECKPOINT_DISABLE"), Some("1"));
        assert_eq!(get("TF_CLI_CONFIG_FILE"), Some("/srv/c/etc/terraformrc"));
        assert!(get("PATH").is_some_and(|p| p.starts_with("/srv/c/current/bin:")));
        assert_eq!(get("CODER_DOCS_URL"), None);
        assert_eq!(get("CODER_TELEMETRY_URL"), Some("http://127.0.0.1:1"));
        assert_eq!(
            get("CODER_OAUTH2_GITHUB_DEFAULT_PROVIDER_ENABLE"),
            Some("false")
        );
        assert_eq!(get("CODER_AI_GATEWAY_ENABLED"), Some("false"));
        assert_eq!(get("CODER_DERP_CONFIG_URL"), Some(""));
        assert_eq!(
            get("CODER_EXTERNAL_AUTH_GITHUB_DEFAULT_PROVIDER_ENABLE"),
            None
        );
        assert!(
            !vars
                .iter()
                .any(|(k, _)| k.starts_with("CODER_EXTERNAL_AUTH_")),
            "coderd parses every CODER_EXTERNAL_AUTH_* as an indexed provider"
        );
        assert!(!vars
            .iter()
            .any(|(k, _)| k.to_ascii_lowercase().contains("proxy")));
    }

    #[test]
    fn every_posture_row_is_written_with_its_value() {
        let mut s = settings();
        s.ai_gateway = true;
        let vars = coderd_env(&s, &Layout::new("/srv/c"));
        for row in POSTURE {
            let (_, got) = vars.iter().find(|(k, _)| k == row.var).expect(row.var);
            match row.value {
                Value::Fixed(want) => assert_eq!(got, want, "{}", row.var),
                Value::Site(_) => assert!(!got.is_empty(), "{} not computed", row.var),
            }
        }
        let ai = vars.iter().find(|(k, _)| k == "CODER_AI_GATEWAY_ENABLED");
        assert_eq!(ai.map(|(_, v)| v.as_str()), Some("true"), "opt-in honoured");
        let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "no variable twice: {names:?}");
    }

    #[test]
    fn env_file_round_trips_quotes_and_backslashes_with_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coderd.env");
        let vars = coderd_env(&settings(), &Layout::new("/srv/c"));
        let handle = Dir::open_root(dir.path()).expect("open");
        write_env_file(&handle, "coderd.env", None, &vars).expect("write");
        assert_eq!(read_env_file(&path).expect("read"), vars);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn newline_in_a_value_is_refused_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coderd.env");
        let bad = vec![("A".to_string(), "x\ny".to_string())];
        let handle = Dir::open_root(dir.path()).expect("open");
        assert!(matches!(
            write_env_file(&handle, "coderd.env", None, &bad),
            Err(EnvError::Newline { .. })
        ));
        std::fs::write(&path, "A=\"ok\"\nB=unquoted\n").expect("write");
        let err = read_env_file(&path).expect_err("syntax");
        assert!(err
            .to_string()
            .ends_with(":2: not KEY=\"value\" (re-run install to regenerate this file)"));
    }
}
