//! The air-gap posture of the coderd that actually runs, read from its environment
//! (`/proc/PID/environ`) and command line (`/proc/PID/cmdline`) rather than from the files
//! install wrote: an edited env file, a coderd started by hand or an old process still
//! running would all show up here. `status` prints it; `doctor` checks it. Which variables
//! and flags make up the posture is [`crate::posture`]'s table, not this file's.

use std::path::PathBuf;

use serde::ser::SerializeMap as _;
use serde::Serialize;

use crate::posture::{FLAGS, POSTURE};

/// The live value of every posture row (`None`: not set, coder's default applies), then
/// each posture flag as found on the command line, then `PATH_FIRST`. No secret is kept:
/// the database URL is not a posture row. Serialised as one object keyed by the variables'
/// own names (flags by their `--name`), so JSON readers need no mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Posture {
    /// `(name, live value)` in the table's order.
    pub values: Vec<(&'static str, Option<String>)>,
}

impl Posture {
    /// The live value of `name` (a variable, a flag's `--name`, or `PATH_FIRST`).
    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// `(label, value)` pairs in a fixed order, for printing (`(unset)` when not set).
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        self.values
            .iter()
            .map(|(k, v)| {
                let label = if *k == "PATH_FIRST" {
                    "PATH (first entry)"
                } else {
                    k
                };
                (label, v.clone().unwrap_or_else(|| "(unset)".into()))
            })
            .collect()
    }
}

impl Serialize for Posture {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.values.len()))?;
        for (k, v) in &self.values {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Why the environment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PostureError {
    /// `/proc/PID/environ` or `cmdline` could not be read.
    #[error("cannot read {path}: {cause} (run this as root or as the service user, while coderd runs)", path = .path.display())]
    Read {
        /// The file under /proc.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
}

/// The environ block and argument list of process `pid`.
pub fn read_process(pid: u32) -> Result<(Vec<u8>, Vec<String>), PostureError> {
    let read = |name: &str| {
        let path = PathBuf::from(format!("/proc/{pid}/{name}"));
        std::fs::read(&path).map_err(|cause| PostureError::Read { path, cause })
    };
    let environ = read("environ")?;
    Ok((environ, args(&read("cmdline")?)))
}

/// Reads the posture of process `pid`.
pub fn read(pid: u32) -> Result<Posture, PostureError> {
    let (environ, argv) = read_process(pid)?;
    Ok(parse(&environ, &argv))
}

/// Every variable of an environ block (`KEY=VALUE` entries separated by NUL bytes), in
/// order; entries without `=` are skipped. Secrets included (coderd's database URL): for
/// checks that need more than [`Posture`], never for printing as a whole.
pub fn vars(environ: &[u8]) -> Vec<(String, String)> {
    environ
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (key, value) = text.split_once('=')?;
            Some((key.to_string(), value.to_string()))
        })
        .collect()
}

/// The arguments in a `/proc/PID/cmdline` block (NUL-separated).
pub fn args(cmdline: &[u8]) -> Vec<String> {
    cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The value given to flag `--name` on a command line (`--name=V` or `--name V`); the
/// last one wins, as in coder's flag parser.
pub fn flag_value(argv: &[String], name: &str) -> Option<String> {
    let mut found = None;
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        if let Some(v) = arg.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            found = Some(v.to_string());
        } else if arg == name {
            found = it.next().cloned();
        }
    }
    found
}

/// The name part (`--x`) of a posture flag argument (`--x=false`).
pub fn flag_name(arg: &'static str) -> &'static str {
    arg.split_once('=').map_or(arg, |(n, _)| n)
}

/// The posture in an environ block and argument list.
pub fn parse(environ: &[u8], argv: &[String]) -> Posture {
    let env = vars(environ);
    let live = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut values: Vec<(&'static str, Option<String>)> =
        POSTURE.iter().map(|row| (row.var, live(row.var))).collect();
    for flag in FLAGS {
        let name = flag_name(flag.arg);
        values.push((name, flag_value(argv, name)));
    }
    let first = live("PATH").and_then(|p| p.split(':').next().map(str::to_string));
    values.push(("PATH_FIRST", first));
    Posture { values }
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
        let argv = args(b"/srv/c/current/bin/coder\0server\0--external-auth-github-default-provider-enable=false\0");
        let p = parse(environ, &argv);
        assert_eq!(
            p.get("CODER_ACCESS_URL"),
            Some("https://coder.example.internal")
        );
        assert_eq!(p.get("CODER_TELEMETRY_ENABLE"), Some("false"));
        assert_eq!(p.get("CODER_UPDATE_CHECK"), Some("false"));
        assert_eq!(p.get("CODER_DERP_SERVER_ENABLE"), Some("true"));
        assert_eq!(p.get("CODER_BLOCK_DIRECT"), Some("true"));
        assert_eq!(p.get("CODER_DERP_SERVER_STUN_ADDRESSES"), Some("disable"));
        assert_eq!(p.get("TF_CLI_CONFIG_FILE"), Some("/srv/c/etc/terraformrc"));
        assert_eq!(p.get("PATH_FIRST"), Some("/srv/c/current/bin"));
        assert_eq!(
            p.get("--external-auth-github-default-provider-enable"),
            Some("false")
        );
        assert_eq!(p.get("SSL_CERT_FILE"), None);
        assert_eq!(vars(environ).len(), 10, "WEIRD has no '=' and is skipped");
        let json = serde_json::to_string(&p).unwrap_or_default();
        assert!(!json.contains("secret"), "{json}");
        assert!(
            json.contains(r#""CODER_TELEMETRY_ENABLE":"false""#),
            "keys are the variable names: {json}"
        );
        assert!(json.contains(r#""SSL_CERT_FILE":null"#), "{json}");
    }

    #[test]
    fn flag_values_take_both_forms_and_the_last_wins() {
        let argv: Vec<String> = ["coder", "server", "--x", "true", "--x=false"]
            .map(String::from)
            .to_vec();
        assert_eq!(flag_value(&argv, "--x"), Some("false".into()));
        assert_eq!(flag_value(&argv[..4], "--x"), Some("true".into()));
        assert_eq!(flag_value(&argv, "--xy"), None);
    }

    #[test]
    fn this_process_environment_can_be_read() -> Result<(), PostureError> {
        let p = read(std::process::id())?;
        assert!(p.get("PATH_FIRST").is_some(), "the test runner has a PATH");
        Ok(())
    }
}
