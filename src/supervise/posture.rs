//! The air-gap posture of the coderd that actually runs, read from its environment
//! (`/proc/PID/environ`) rather than from the files install wrote: an edited env file, a
//! coderd started by hand or an old process still running would all show up here. `status`
//! prints it; `doctor` checks it.

use std::path::PathBuf;

use serde::Serialize;

/// The settings that decide whether coderd stays inside the air gap. `None` means the
/// variable is not set at all (coder's default applies). No secret is kept: the database
/// URL is never read into it. Serialised with the variables' own names as keys (and
/// `PATH_FIRST` for the first `PATH` entry), so JSON readers need no mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Posture {
    /// `CODER_ACCESS_URL`: empty makes coderd open a public tunnel.
    #[serde(rename = "CODER_ACCESS_URL")]
    pub access_url: Option<String>,
    /// `CODER_TELEMETRY_ENABLE`: should be `false`.
    #[serde(rename = "CODER_TELEMETRY_ENABLE")]
    pub telemetry_enable: Option<String>,
    /// `CODER_UPDATE_CHECK`: should be `false`.
    #[serde(rename = "CODER_UPDATE_CHECK")]
    pub update_check: Option<String>,
    /// `CODER_DERP_SERVER_ENABLE`: the built-in relay, should be `true`.
    #[serde(rename = "CODER_DERP_SERVER_ENABLE")]
    pub derp_server_enable: Option<String>,
    /// `CODER_BLOCK_DIRECT`: `true` forces every connection through the relay.
    #[serde(rename = "CODER_BLOCK_DIRECT")]
    pub block_direct: Option<String>,
    /// `CODER_DERP_SERVER_STUN_ADDRESSES`: should be `disable` (default: Google's STUN).
    #[serde(rename = "CODER_DERP_SERVER_STUN_ADDRESSES")]
    pub derp_server_stun_addresses: Option<String>,
    /// `TF_CLI_CONFIG_FILE`: Terraform's configuration (the network mirror only).
    #[serde(rename = "TF_CLI_CONFIG_FILE")]
    pub tf_cli_config_file: Option<String>,
    /// `SSL_CERT_FILE`: coderd and Terraform must trust the internal CA.
    #[serde(rename = "SSL_CERT_FILE")]
    pub ssl_cert_file: Option<String>,
    /// The first entry of `PATH`: where coderd finds `terraform` (the bundled one first).
    #[serde(rename = "PATH_FIRST")]
    pub path_first: Option<String>,
}

/// Why the environment could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostureError {
    /// `/proc/PID/environ` could not be read.
    #[error("cannot read {path}: {source} (run this as root or as the service user, while coderd runs)", path = .path.display())]
    Read {
        /// The environ file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Reads the posture of process `pid` from `/proc/PID/environ`.
pub(crate) fn read(pid: u32) -> Result<Posture, PostureError> {
    let path = PathBuf::from(format!("/proc/{pid}/environ"));
    let bytes = std::fs::read(&path).map_err(|source| PostureError::Read { path, source })?;
    Ok(parse(&bytes))
}

/// Every variable of an environ block (`KEY=VALUE` entries separated by NUL bytes), in
/// order; entries without `=` are skipped. Secrets included (coderd's database URL): for
/// checks that need more than [`Posture`], never for printing as a whole.
pub(crate) fn vars(environ: &[u8]) -> Vec<(String, String)> {
    environ
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (key, value) = text.split_once('=')?;
            Some((key.to_string(), value.to_string()))
        })
        .collect()
}

/// The posture in an environ block (`KEY=VALUE` entries separated by NUL bytes).
pub(crate) fn parse(environ: &[u8]) -> Posture {
    let mut posture = Posture::default();
    for (key, value) in vars(environ) {
        let value = Some(value);
        match key.as_str() {
            "CODER_ACCESS_URL" => posture.access_url = value,
            "CODER_TELEMETRY_ENABLE" => posture.telemetry_enable = value,
            "CODER_UPDATE_CHECK" => posture.update_check = value,
            "CODER_DERP_SERVER_ENABLE" => posture.derp_server_enable = value,
            "CODER_BLOCK_DIRECT" => posture.block_direct = value,
            "CODER_DERP_SERVER_STUN_ADDRESSES" => posture.derp_server_stun_addresses = value,
            "TF_CLI_CONFIG_FILE" => posture.tf_cli_config_file = value,
            "SSL_CERT_FILE" => posture.ssl_cert_file = value,
            "PATH" => posture.path_first = value.and_then(first_path_entry),
            _ => {}
        }
    }
    posture
}

fn first_path_entry(path: String) -> Option<String> {
    path.split(':').next().map(str::to_string)
}

impl Posture {
    /// `(variable, value)` pairs in a fixed order, for printing (`(unset)` when not set).
    pub(crate) fn lines(&self) -> Vec<(&'static str, String)> {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        vec![
            ("CODER_ACCESS_URL", show(&self.access_url)),
            ("CODER_TELEMETRY_ENABLE", show(&self.telemetry_enable)),
            ("CODER_UPDATE_CHECK", show(&self.update_check)),
            ("CODER_DERP_SERVER_ENABLE", show(&self.derp_server_enable)),
            ("CODER_BLOCK_DIRECT", show(&self.block_direct)),
            (
                "CODER_DERP_SERVER_STUN_ADDRESSES",
                show(&self.derp_server_stun_addresses),
            ),
            ("TF_CLI_CONFIG_FILE", show(&self.tf_cli_config_file)),
            ("SSL_CERT_FILE", show(&self.ssl_cert_file)),
            ("PATH (first entry)", show(&self.path_first)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posture_is_parsed_from_an_environ_block_without_secrets() {
        let environ = b"CODER_ACCESS_URL=https://coder.example.internal\0\
CODER_TELEMETRY_ENABLE=false\0CODER_UPDATE_CHECK=false\0CODER_DERP_SERVER_ENABLE=true\0\
CODER_BLOCK_DIRECT=true\0CODER_DERP_SERVER_STUN_ADDRESSES=disable\0\
CODER_PG_CONNECTION_URL=postgres://coder:secret@127.0.0.1:5433/coder\0\
TF_CLI_CONFIG_FILE=/srv/c/etc/terraformrc\0PATH=/srv/c/current/bin:/usr/bin:/bin\0\
WEIRD\0EMPTY=\0";
        let p = parse(environ);
        assert_eq!(
            p.access_url.as_deref(),
            Some("https://coder.example.internal")
        );
        assert_eq!(p.telemetry_enable.as_deref(), Some("false"));
        assert_eq!(p.update_check.as_deref(), Some("false"));
        assert_eq!(p.derp_server_enable.as_deref(), Some("true"));
        assert_eq!(p.block_direct.as_deref(), Some("true"));
        assert_eq!(p.derp_server_stun_addresses.as_deref(), Some("disable"));
        assert_eq!(
            p.tf_cli_config_file.as_deref(),
            Some("/srv/c/etc/terraformrc")
        );
        assert_eq!(p.path_first.as_deref(), Some("/srv/c/current/bin"));
        assert_eq!(p.ssl_cert_file, None);
        assert_eq!(vars(environ).len(), 10, "WEIRD has no '=' and is skipped");
        let json = serde_json::to_string(&p).unwrap_or_default();
        assert!(!json.contains("secret"), "{json}");
        assert!(
            json.contains(r#""CODER_TELEMETRY_ENABLE":"false""#),
            "keys are the variable names: {json}"
        );
    }

    #[test]
    fn this_process_environment_can_be_read() -> Result<(), PostureError> {
        let p = read(std::process::id())?;
        assert!(p.path_first.is_some(), "the test runner has a PATH");
        Ok(())
    }
}
