//! `ROOT/etc/coder-airgap.toml`: the choices made at install time (access URL, listeners,
//! Postgres mode, CA, service user), which `up`, `status` and `doctor` read back. Secrets
//! never go here: the database URL lives in the 0600 env file and the secrets directory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::rootdir::Dir;

/// The appliance's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The URL users and agents reach coderd at (`https://coder.example.internal`).
    pub access_url: String,
    /// The wildcard app domain (`*.apps.example.internal`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wildcard_url: Option<String>,
    /// coderd's TLS listener (`0.0.0.0:443`).
    pub listen: String,
    /// The provider mirror's TLS listener (`0.0.0.0:8444`).
    pub mirror_listen: String,
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

/// Where coderd's database lives.
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

/// Errors reading the settings or the access URL.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source} (is this an appliance root made by `coder-airgap install`?)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {message} (re-run install to regenerate it)")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The access URL is not `https://HOST[:PORT]`.
    #[error("access URL {url:?}: {reason}")]
    AccessUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl Config {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
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

/// The host and port of an `https://` access URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUrl {
    /// The host name or IP address.
    pub host: String,
    /// The port (443 when the URL names none).
    pub port: u16,
}

impl AccessUrl {
    /// Parses and checks an access URL: https, a host, no path beyond `/`.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError::AccessUrl {
            url: url.to_string(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|_| bad("not a URL"))?;
        if parsed.scheme() != "https" {
            return Err(bad("must start with https:// (coderd serves TLS only)"));
        }
        if parsed.path() != "/" || parsed.query().is_some() {
            return Err(bad("must not have a path or query"));
        }
        let host = parsed.host_str().ok_or_else(|| bad("has no host"))?;
        Ok(AccessUrl {
            host: host.trim_matches(['[', ']']).to_string(),
            port: parsed.port().unwrap_or(443),
        })
    }

    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_url_parsing_and_ca_domain() {
        let a = AccessUrl::parse("https://coder.example.internal").expect("ok");
        assert_eq!((a.host.as_str(), a.port), ("coder.example.internal", 443));
        assert_eq!(a.ca_domain().as_deref(), Some("example.internal"));
        let b = AccessUrl::parse("https://localhost:8443/").expect("ok");
        assert_eq!(
            (b.port, b.ca_domain().as_deref()),
            (8443, Some("localhost"))
        );
        let c = AccessUrl::parse("https://127.0.0.1:9443").expect("ok");
        assert_eq!((c.ip().is_some(), c.ca_domain()), (true, None));
        for bad in ["http://coder.example", "https://coder.example/x", "coder"] {
            assert!(AccessUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn config_round_trips_and_rejects_unknown_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coder-airgap.toml");
        let config = Config {
            access_url: "https://coder.example.internal".into(),
            wildcard_url: None,
            listen: "0.0.0.0:443".into(),
            mirror_listen: "0.0.0.0:8444".into(),
            service_user: "coder".into(),
            ca_dir: "/srv/c/ca".into(),
            postgres: PostgresMode::Embedded { port: 5433 },
            ai_gateway: false,
        };
        std::fs::write(&path, config.to_toml()).expect("write");
        assert_eq!(Config::read(&path).expect("read"), config);
        std::fs::write(&path, config.to_toml() + "telemetry = true\n").expect("write");
        assert!(matches!(
            Config::read(&path),
            Err(ConfigError::Invalid { .. })
        ));
    }
}
