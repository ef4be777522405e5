//! Secrets: random passwords stored 0600 in the secrets directory and re-used, and
//! [`SecretUrl`], a database URL whose `Debug` and `Display` never show its password.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions as _;

use super::error::one_line;
use super::{PgError, Result};

/// A `postgres://` URL that may carry a password, parsed and checked once where it
/// enters (the command line, the secrets file, coderd's env file).
///
/// `Debug` and `Display` show it with the password as `***` (in the user part and in a
/// `password=` query parameter), so it can be logged and put in errors. The text with the
/// password is reachable only through [`SecretUrl::expose`], for the places that must
/// hand it on: coderd's env file, the secrets file and install's database step report.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    /// Exactly as given, so the files install writes keep the operator's spelling.
    text: String,
    url: url::Url,
}

impl SecretUrl {
    /// Parses and checks a PostgreSQL URL (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`,
    /// or `postgresql://`). The error never contains the password.
    pub fn parse(text: &str) -> Result<SecretUrl> {
        let bad = |reason: String| PgError::InvalidUrl {
            reason: hide(reason, text),
        };
        let url = url::Url::parse(text).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(bad(format!(
                "the scheme is {:?}, not postgres:// or postgresql://",
                url.scheme()
            )));
        }
        PgConnectOptions::from_url(&url).map_err(|e| bad(one_line(&e.to_string())))?;
        Ok(SecretUrl {
            text: text.to_string(),
            url,
        })
    }

    /// The whole URL, password included, exactly as given: only for what must carry it
    /// on (coderd's `CODER_PG_CONNECTION_URL`, the 0600 secrets file).
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The parsed URL, password included (for the connection options and pg_dump).
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The connection options sqlx uses (checked when the URL was parsed).
    pub fn connect_options(&self) -> Result<PgConnectOptions> {
        PgConnectOptions::from_url(&self.url).map_err(|e| PgError::InvalidUrl {
            reason: hide(one_line(&e.to_string()), &self.text),
        })
    }

    /// The URL with every password replaced by `***`.
    pub fn redacted(&self) -> String {
        let mut url = self.url.clone();
        if url.password().is_some() && url.set_password(Some(REDACTED)).is_err() {
            return "<PostgreSQL URL>".into();
        }
        if url.query_pairs().any(|(k, _)| k == "password") {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| match k == "password" {
                    true => (k.into_owned(), REDACTED.to_string()),
                    false => (k.into_owned(), v.into_owned()),
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string()
    }
}

/// `reason` with any copy of the URL's text replaced by `<url>`.
fn hide(reason: String, text: &str) -> String {
    match text.is_empty() {
        true => reason,
        false => reason.replace(text, "<url>"),
    }
}

/// What [`SecretUrl`] shows instead of a password.
const REDACTED: &str = "***";

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SecretUrl").field(&self.redacted()).finish()
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl FromStr for SecretUrl {
    type Err = PgError;

    fn from_str(text: &str) -> Result<SecretUrl> {
        SecretUrl::parse(text)
    }
}

/// As its full text: install's database step hands it to the root install this way.
impl serde::Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for SecretUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SecretUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Reads the secret in `path`, or creates it (random, 0600) when it does not exist.
/// Returns the secret and whether it was created now. A file readable by others is
/// tightened to 0600.
pub fn load_or_create(path: &Path) -> Result<(String, bool)> {
    if let Some(secret) = load(path)? {
        return Ok((secret, false));
    }
    let secret = random_hex(24)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| PgError::io("cannot create", path, e))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| PgError::io("cannot write", path, e))?;
    Ok((secret, true))
}

/// Reads the secret in `path` if the file exists.
pub fn load(path: &Path) -> Result<Option<String>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PgError::io("cannot read", path, e)),
    };
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "{} was readable by others; setting it to 0600",
            path.display()
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| PgError::io("cannot chmod", path, e))?;
    }
    let text = std::fs::read_to_string(path).map_err(|e| PgError::io("cannot read", path, e))?;
    let secret = text.trim().to_string();
    if secret.is_empty() {
        return Err(PgError::io(
            "empty password file",
            path,
            std::io::Error::from(std::io::ErrorKind::InvalidData),
        ));
    }
    Ok(Some(secret))
}

/// `bytes` random bytes from the kernel, hex-encoded (safe in URLs and SQL literals).
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| PgError::io("cannot read", "/dev/urandom", e))?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_url_never_shows_its_password() -> Result<()> {
        let text = "postgres://coder:s3cr%40t@db.example.internal:5432/coder?sslmode=require";
        let url = SecretUrl::parse(text)?;
        for shown in [format!("{url:?}"), url.to_string(), url.redacted()] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(
                shown.contains("coder:***@db.example.internal:5432"),
                "{shown}"
            );
        }
        assert_eq!(url.expose(), text, "the real text is kept exactly");
        let query =
            SecretUrl::parse("postgresql://coder@db/coder?password=hunter2&sslmode=disable")?;
        for shown in [format!("{query:?}"), query.to_string()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains("password=***") && shown.contains("sslmode=disable"),
                "{shown}"
            );
        }
        let bare = SecretUrl::parse("postgres://coder@127.0.0.1:5433/coder")?;
        assert_eq!(bare.to_string(), "postgres://coder@127.0.0.1:5433/coder");
        Ok(())
    }

    #[test]
    fn secret_url_parse_errors_say_what_to_write_and_hide_the_password() {
        for (bad, why) in [
            ("postgres://u:secretpw@host:notaport/db", "invalid port"),
            (
                "mysql://u:secretpw@host/db",
                "not postgres:// or postgresql://",
            ),
            ("secretpw@host/db", "relative URL"),
        ] {
            let msg = match SecretUrl::parse(bad) {
                Err(e) => e.to_string(),
                Ok(u) => format!("parsed as {u}"),
            };
            assert!(msg.starts_with("invalid PostgreSQL URL"), "{msg}");
            assert!(msg.contains(why), "{bad}: {msg}");
            assert!(
                msg.contains("expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
                "{msg}"
            );
            assert!(!msg.contains("secretpw"), "{msg}");
        }
    }

    #[test]
    fn secret_url_serializes_as_its_full_text() -> Result<()> {
        let url = SecretUrl::parse("postgres://coder:pw@127.0.0.1:5433/coder?sslmode=disable")?;
        let json = serde_json::to_string(&url).map_err(|e| PgError::Sql(e.to_string()))?;
        assert_eq!(
            json,
            "\"postgres://coder:pw@127.0.0.1:5433/coder?sslmode=disable\""
        );
        let back: SecretUrl =
            serde_json::from_str(&json).map_err(|e| PgError::Sql(e.to_string()))?;
        assert_eq!(back, url);
        Ok(())
    }

    #[test]
    fn created_once_then_reused_with_0600() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| PgError::io("tempdir", "/tmp", e))?;
        let path = dir.path().join("x.password");
        let (first, created) = load_or_create(&path)?;
        assert!(created);
        assert_eq!(first.len(), 48);
        let mode = std::fs::metadata(&path).map_err(|e| PgError::io("stat", &path, e))?;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        let (second, created) = load_or_create(&path)?;
        assert!(!created);
        assert_eq!(first, second);
        Ok(())
    }
}
