//! `ROOT/run/state.json`: what `up` is doing right now, rewritten atomically (temp file and
//! rename) at every change, so `status` and `doctor` never read half a file. It is a
//! report, not a lock: `status` checks every pid it names before believing it, since an
//! `up` that was SIGKILLed leaves its last state behind.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::SuperviseError;
use super::process::ProcessId;

/// What a component is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Not started yet, or stopped by `up` on shutdown.
    Stopped,
    /// Being started.
    Starting,
    /// Up (for coderd: the process runs; see `healthy` for readiness).
    Running,
    /// Exited unexpectedly; restarting after a delay.
    Backoff,
}

impl Phase {
    /// The name used in the JSON and by `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Stopped => "stopped",
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Backoff => "backoff",
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The `up` process that wrote it.
    pub up_pid: u32,
    /// The release (`VERSION-SEQUENCE`) coderd runs from.
    pub release: Option<String>,
    /// True once coderd first answered `/healthz` (systemd was told READY=1).
    pub ready: bool,
    /// When the file was written (RFC 3339, UTC).
    pub updated: String,
    /// The database.
    pub postgres: PostgresState,
    /// The provider mirror.
    pub mirror: MirrorState,
    /// coderd.
    pub coderd: CoderdState,
}

/// The database, embedded or external.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresState {
    /// `embedded` or `external`.
    pub mode: String,
    /// The postmaster's pid (embedded only).
    pub pid: Option<u32>,
    /// The postmaster's start time in clock ticks after boot, to recognise the process.
    pub pid_start: Option<u64>,
    /// The TCP port on 127.0.0.1 (embedded only).
    pub port: Option<u16>,
    /// The server version (the bundle's, or what the external server reported).
    pub version: Option<String>,
    /// What it is doing.
    pub state: Phase,
    /// How often `up` restarted it.
    pub restarts: u32,
}

/// The provider mirror (runs inside `up`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorState {
    /// The listen address (`mirror_listen`).
    pub address: String,
    /// What it is doing.
    pub state: Phase,
    /// How often `up` restarted it.
    pub restarts: u32,
}

/// coderd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoderdState {
    /// Its pid (it leads its own process group).
    pub pid: Option<u32>,
    /// Its start time in clock ticks after boot, to recognise the process.
    pub pid_start: Option<u64>,
    /// The coderd version of the release.
    pub version: Option<String>,
    /// What it is doing.
    pub state: Phase,
    /// How often `up` restarted it after an unexpected exit.
    pub restarts: u32,
    /// Whether its last `/healthz` over TLS answered 200.
    pub healthy: bool,
    /// How it last exited, e.g. `exit status: 1 at 2026-11-23T10:00:00Z`.
    pub last_exit: Option<String>,
}

impl State {
    /// The state of a fresh `up` with nothing started yet.
    pub fn new(postgres_mode: &str, mirror_address: &str) -> State {
        State {
            up_pid: std::process::id(),
            release: None,
            ready: false,
            updated: now_rfc3339(),
            postgres: PostgresState {
                mode: postgres_mode.to_string(),
                pid: None,
                pid_start: None,
                port: None,
                version: None,
                state: Phase::Stopped,
                restarts: 0,
            },
            mirror: MirrorState {
                address: mirror_address.to_string(),
                state: Phase::Stopped,
                restarts: 0,
            },
            coderd: CoderdState {
                pid: None,
                pid_start: None,
                version: None,
                state: Phase::Stopped,
                restarts: 0,
                healthy: false,
                last_exit: None,
            },
        }
    }

    /// Reads a state file.
    pub fn read(path: &Path) -> Result<State, SuperviseError> {
        let text =
            std::fs::read_to_string(path).map_err(SuperviseError::io("cannot read", path))?;
        serde_json::from_str(&text).map_err(|e| SuperviseError::StateFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Writes the state to `path` atomically (temp file, then rename), stamping `updated`.
    pub fn write(&mut self, path: &Path) -> Result<(), SuperviseError> {
        self.updated = now_rfc3339();
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| SuperviseError::StateFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        json.push(b'\n');
        let tmp = temp_sibling(path);
        let io = SuperviseError::io("cannot write", path);
        let mut file =
            std::fs::File::create(&tmp).map_err(SuperviseError::io("cannot write", &tmp))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(io)
    }

    /// The recorded coderd process, if any.
    pub fn coderd_process(&self) -> Option<ProcessId> {
        process_id(self.coderd.pid, self.coderd.pid_start)
    }

    /// The recorded postmaster, if any.
    pub fn postgres_process(&self) -> Option<ProcessId> {
        process_id(self.postgres.pid, self.postgres.pid_start)
    }
}

fn process_id(pid: Option<u32>, start: Option<u64>) -> Option<ProcessId> {
    Some(ProcessId {
        pid: pid?,
        start: start?,
    })
}

/// `state.json` → `.state.json.tmp` in the same directory (same file system for rename).
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Now, as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_the_file_with_stable_names() -> Result<(), SuperviseError> {
        let tmp = tempfile::tempdir().map_err(SuperviseError::io("tempdir", "/tmp"))?;
        let path = tmp.path().join("state.json");
        let mut state = State::new("embedded", "0.0.0.0:8444");
        state.release = Some("2.24.1-3".into());
        state.postgres.pid = Some(42);
        state.postgres.pid_start = Some(7);
        state.postgres.state = Phase::Running;
        state.coderd.state = Phase::Backoff;
        state.coderd.last_exit = Some("exit status: 1 at 2026-11-23T10:00:00Z".into());
        state.write(&path)?;
        let back = State::read(&path)?;
        assert_eq!(back, state);
        assert_eq!(
            back.postgres_process(),
            Some(ProcessId { pid: 42, start: 7 })
        );
        assert_eq!(back.coderd_process(), None);
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&path).map_err(SuperviseError::io("read", &path))?,
        )
        .map_err(|e| SuperviseError::StateFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        assert_eq!(json["coderd"]["state"], "backoff");
        assert_eq!(json["postgres"]["mode"], "embedded");
        assert!(
            !tmp.path().join(".state.json.tmp").exists(),
            "temp file renamed"
        );
        Ok(())
    }
}
