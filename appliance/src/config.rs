//! `ROOT/etc/coder-airgap.toml`: the choices made at install time (access URL, listeners,
//! Postgres mode, CA, service user), which `up`, `status` and `doctor` read back. Secrets
//! never go here: the database URL lives in the 0600 env file and the secrets directory.
//!
//! Values are parsed once, where they enter (this file, or install's flags), into types:
//! [`AccessUrl`], [`SocketAddr`] listeners, [`PostgresMode`], and [`Database`] once the
//! external server's URL is read. The file keeps its string forms.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use super::layout::Layout;
use super::postgres::{PgError, SecretUrl};
use super::rootdir::Dir;

/// The appliance's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The URL users and agents reach coderd at (`https://coder.example.internal`).
    #[serde(deserialize_with = "de_access_url")]
    pub access_url: AccessUrl,
    /// The wildcard app domain (`*.apps.example.internal`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wildcard_url: Option<String>,
    /// coderd's TLS listener (`0.0.0.0:443`).
    #[serde(deserialize_with = "de_listen")]
    pub listen: SocketAddr,
    /// The provider mirror's TLS listener (`0.0.0.0:8444`).
    #[serde(deserialize_with = "de_mirror_listen")]
    pub mirror_listen: SocketAddr,
    /// The user Postgres and coderd run as.
    pub service_user: String,
    /// The internal CA's directory.
    pub ca_dir: PathBuf,
    /// Embedded or external Postgres.
    pub postgres: PostgresMode,
    /// The operator opted in to Coder's AI Gateway (`install --ai-gateway`); off otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ai_gateway: bool,
}

/// Where coderd's database lives, as the settings file records it (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum PostgresMode {
    /// Started by `up` from the bundle's Postgres tree, data under `ROOT/data/postgres`.
    Embedded {
        /// The TCP port on 127.0.0.1.
        port: u16,
    },
    /// A server the site runs; its URL is in the secrets directory.
    External,
}

impl PostgresMode {
    /// Embedded or external, without the details.
    pub fn kind(&self) -> DatabaseKind {
        match self {
            PostgresMode::Embedded { .. } => DatabaseKind::Embedded,
            PostgresMode::External => DatabaseKind::External,
        }
    }
}

/// Embedded or external: what `status` and the state file show (`"embedded"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    /// The server `up` runs from the bundle.
    Embedded,
    /// A server the site runs.
    External,
}

impl DatabaseKind {
    /// The name used in the JSON and by `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseKind::Embedded => "embedded",
            DatabaseKind::External => "external",
        }
    }
}

impl std::fmt::Display for DatabaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// coderd's database, resolved: the embedded server's port, or the external server's URL.
/// `Debug` shows the URL with its password as `***` (see [`SecretUrl`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// The server `up` runs from the bundle, on 127.0.0.1.
    Embedded {
        /// The TCP port on 127.0.0.1.
        port: u16,
    },
    /// A server the site runs, at this URL.
    External(SecretUrl),
}

impl Database {
    /// The database of `config`: for an external server, its URL is read from the
    /// secrets file install wrote (`ROOT/etc/external-postgres.url`).
    pub fn load(config: &Config, layout: &Layout) -> Result<Database, ConfigError> {
        match config.postgres {
            PostgresMode::Embedded { port } => Ok(Database::Embedded { port }),
            PostgresMode::External => {
                let path = layout.external_url_file();
                let text = std::fs::read_to_string(&path).map_err(|cause| {
                    ConfigError::ExternalUrlFile {
                        path: path.clone(),
                        cause,
                    }
                })?;
                let url = SecretUrl::parse(text.trim())
                    .map_err(|cause| ConfigError::ExternalUrl { path, cause })?;
                Ok(Database::External(url))
            }
        }
    }

    /// Embedded or external.
    pub fn kind(&self) -> DatabaseKind {
        match self {
            Database::Embedded { .. } => DatabaseKind::Embedded,
            Database::External(_) => DatabaseKind::External,
        }
    }
}

/// Errors reading the settings or the access URL.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {cause} (is this an appliance root made by `coder-airgap install`?)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {message} (re-run install to regenerate it)")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The external server's URL file could not be read.
    #[error("reading {path} (re-run install with --postgres-url): {cause}", path = .path.display())]
    ExternalUrlFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The external server's URL file does not hold a PostgreSQL URL.
    #[error("{path}: {cause} (re-run install with --postgres-url)", path = .path.display())]
    ExternalUrl {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the password).
        cause: PgError,
    },
}

/// Why a text is not a valid value for a setting; the message says what to write instead.
/// Where it came from (a flag, a field of the file) is added by whoever read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(&'static str);

impl Config {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })
    }

    /// Reads `coder-airgap.toml` through the handle of `etc` (root's code path: a link
    /// or a special file in its place is refused, and at most 64 KiB is read). `path`
    /// names the file in messages.
    pub fn read_in(etc: &Dir, path: &Path) -> Result<Self, ConfigError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("coder-airgap.toml");
        let bytes = etc
            .read_file(name, 64 << 10)
            .map_err(|e| ConfigError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let text = String::from_utf8_lossy(&bytes);
        toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_default();
        format!("# Written by coder-airgap install; re-run install to change it.\n{body}")
    }
}

/// A field of the file parsed with `parse`; a failure names the field and its value.
fn field<'de, D, T>(
    d: D,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(d)?;
    parse(&text).map_err(|e| serde::de::Error::custom(format!("{name} = {text:?}: {e}")))
}

fn de_access_url<'de, D: Deserializer<'de>>(d: D) -> Result<AccessUrl, D::Error> {
    field(d, "access_url", AccessUrl::parse)
}

fn de_listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    field(d, "listen", listen_addr)
}

fn de_mirror_listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    field(d, "mirror_listen", listen_addr)
}

/// Parses a listen address, `IP:PORT` (`0.0.0.0:8444`, `[::]:443`). Host names are
/// refused: a listener binds an address, and a name would be resolved again at every
/// start.
pub fn listen_addr(text: &str) -> Result<SocketAddr, InvalidValue> {
    text.parse()
        .map_err(|_| InvalidValue("not IP:PORT; give an address and a port, like 0.0.0.0:8444"))
}

/// The listener on every address at `port` (`0.0.0.0:PORT`).
pub fn any_address(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}

/// An `https://HOST[:PORT]` access URL, checked once: https, a host, no path beyond `/`,
/// no query. It keeps the text it was given (without a trailing `/`), which is what the
/// settings file and `CODER_ACCESS_URL` carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUrl {
    text: String,
    url: url::Url,
    host: String,
}

impl AccessUrl {
    /// Parses and checks an access URL: https, a host, no path beyond `/`.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let url = url::Url::parse(text)
            .map_err(|_| InvalidValue("not a URL; give https://HOST[:PORT]"))?;
        if url.scheme() != "https" {
            return Err(InvalidValue(
                "must start with https:// (coderd serves TLS only)",
            ));
        }
        if url.path() != "/" || url.query().is_some() {
            return Err(InvalidValue(
                "must not have a path or query; give https://HOST[:PORT]",
            ));
        }
        let host = url
            .host_str()
            .ok_or(InvalidValue("has no host; give https://HOST[:PORT]"))?
            .trim_matches(['[', ']'])
            .to_string();
        Ok(AccessUrl {
            text: text.trim_end_matches('/').to_string(),
            url,
            host,
        })
    }

    /// The URL as given, without a trailing `/` (`https://coder.example.internal`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed URL.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The host name or IP address (an IPv6 address without its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (443 when the URL names none).
    pub fn port(&self) -> u16 {
        self.url.port().unwrap_or(443)
    }

    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The host as it is written in a URL: an IPv6 address in brackets.
    pub fn url_host(&self) -> String {
        match self.ip() {
            Some(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.host.clone(),
        }
    }

    /// The DNS suffix the default CA is constrained to: the parent domain of the host
    /// (`coder.example.internal` → `example.internal`), or the host itself when it has no
    /// parent worth constraining to (`localhost`, `coder.lan`'s parent would be a TLD).
    pub fn ca_domain(&self) -> Option<String> {
        if self.ip().is_some() {
            return None;
        }
        let labels: Vec<&str> = self.host.split('.').collect();
        if labels.len() >= 3 {
            Some(labels[1..].join("."))
        } else {
            Some(self.host.clone())
        }
    }
}

impl std::fmt::Display for AccessUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for AccessUrl {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        AccessUrl::parse(text)
    }
}

impl Serialize for AccessUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for AccessUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        field(d, "access URL", AccessUrl::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_url_parsing_and_ca_domain() {
        let a = AccessUrl::parse("https://coder.example.internal").expect("ok");
        assert_eq!((a.host(), a.port()), ("coder.example.internal", 443));
        assert_eq!(a.ca_domain().as_deref(), Some("example.internal"));
        let b = AccessUrl::parse("https://localhost:8443/").expect("ok");
        assert_eq!(
            (b.port(), b.ca_domain().as_deref()),
            (8443, Some("localhost"))
        );
        let c = AccessUrl::parse("https://127.0.0.1:9443").expect("ok");
        assert_eq!((c.ip().is_some(), c.ca_domain()), (true, None));
        for bad in ["http://coder.example", "https://coder.example/x", "coder"] {
            assert!(AccessUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn access_url_keeps_its_text_and_brackets_ipv6() {
        let a = AccessUrl::parse("https://localhost:8443/").expect("ok");
        assert_eq!(
            (a.as_str(), a.to_string()),
            ("https://localhost:8443", "https://localhost:8443".into())
        );
        let v6 = AccessUrl::parse("https://[::1]:9443").expect("ok");
        assert_eq!((v6.host(), v6.url_host().as_str()), ("::1", "[::1]"));
    }

    #[test]
    fn access_url_errors_say_what_to_write() {
        let cases = [
            ("http://coder.example", "must start with https://"),
            ("https://coder.example/x", "give https://HOST[:PORT]"),
            ("coder", "not a URL; give https://HOST[:PORT]"),
        ];
        for (bad, fix) in cases {
            let e = AccessUrl::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(fix), "{bad}: {e}");
        }
    }

    #[test]
    fn listen_addresses_parse_or_say_the_form() {
        assert_eq!(listen_addr("0.0.0.0:8444").map(|a| a.port()), Ok(8444));
        assert!(listen_addr("[::]:443").is_ok_and(|a| a.is_ipv6()));
        for bad in ["0.0.0.0", "localhost:443", ":443", "0.0.0.0:99999"] {
            let e = listen_addr(bad).expect_err(bad);
            assert!(e.to_string().contains("like 0.0.0.0:8444"), "{bad}: {e}");
        }
        assert_eq!(any_address(443).to_string(), "0.0.0.0:443");
    }

    fn example() -> Config {
        Config {
            access_url: AccessUrl::parse("https://coder.example.internal").expect("url"),
            wildcard_url: None,
            listen: listen_addr("0.0.0.0:443").expect("listen"),
            mirror_listen: listen_addr("0.0.0.0:8444").expect("mirror"),
            service_user: "coder".into(),
            ca_dir: "/srv/c/ca".into(),
            postgres: PostgresMode::Embedded { port: 5433 },
            ai_gateway: false,
        }
    }

    #[test]
    fn config_round_trips_and_rejects_unknown_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coder-airgap.toml");
        let config = example();
        std::fs::write(&path, config.to_toml()).expect("write");
        assert_eq!(Config::read(&path).expect("read"), config);
        std::fs::write(&path, config.to_toml() + "telemetry = true\n").expect("write");
        assert!(matches!(
            Config::read(&path),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn the_file_keeps_its_string_forms() {
        let text = example().to_toml();
        for line in [
            "access_url = \"https://coder.example.internal\"",
            "listen = \"0.0.0.0:443\"",
            "mirror_listen = \"0.0.0.0:8444\"",
            "mode = \"embedded\"",
            "port = 5433",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn a_bad_value_in_the_file_names_the_field_and_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coder-airgap.toml");
        let good = example().to_toml();
        let cases = [
            (
                "listen = \"0.0.0.0:443\"",
                "listen = \"0.0.0.0\"",
                "listen = \"0.0.0.0\": not IP:PORT",
            ),
            (
                "mirror_listen = \"0.0.0.0:8444\"",
                "mirror_listen = \"mirror:8444\"",
                "mirror_listen = \"mirror:8444\": not IP:PORT",
            ),
            (
                "access_url = \"https://coder.example.internal\"",
                "access_url = \"http://coder.example.internal\"",
                "access_url = \"http://coder.example.internal\": must start with https://",
            ),
        ];
        for (from, to, want) in cases {
            std::fs::write(&path, good.replace(from, to)).expect("write");
            let msg = Config::read(&path).expect_err(to).to_string();
            assert!(msg.contains(want), "{msg}");
            assert!(msg.ends_with("(re-run install to regenerate it)"), "{msg}");
        }
    }

    #[test]
    fn the_external_database_is_read_from_the_secrets_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(layout.etc()).expect("etc");
        let mut config = example();
        assert_eq!(
            Database::load(&config, &layout).expect("embedded"),
            Database::Embedded { port: 5433 }
        );
        config.postgres = PostgresMode::External;
        let missing = Database::load(&config, &layout)
            .expect_err("no file")
            .to_string();
        assert!(
            missing.contains("re-run install with --postgres-url"),
            "{missing}"
        );
        let url = "postgres://coder:hunter2@db.example.internal/coder";
        std::fs::write(layout.external_url_file(), format!("{url}\n")).expect("write");
        let db = Database::load(&config, &layout).expect("external");
        assert_eq!(db.kind(), DatabaseKind::External);
        match &db {
            Database::External(secret) => assert_eq!(secret.expose(), url),
            other => panic!("expected external, got {other:?}"),
        }
        let shown = format!("{db:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("coder:***@"),
            "{shown}"
        );
        std::fs::write(layout.external_url_file(), "mysql://coder:hunter2@db/coder")
            .expect("write");
        let bad = Database::load(&config, &layout)
            .expect_err("mysql")
            .to_string();
        assert!(
            bad.contains("invalid PostgreSQL URL") && !bad.contains("hunter2"),
            "{bad}"
        );
    }

    #[test]
    fn database_kinds_have_stable_names() {
        for (kind, name) in [
            (DatabaseKind::Embedded, "embedded"),
            (DatabaseKind::External, "external"),
        ] {
            assert_eq!(kind.to_string(), name);
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<DatabaseKind>(&json).expect("back"),
                kind
            );
        }
        assert_eq!(PostgresMode::External.kind(), DatabaseKind::External);
    }
}
