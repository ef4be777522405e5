//! `ROOT/run/state.json`: what `up` is doing right now, rewritten atomically (temp file and
//! rename) at every change, so `status` and `doctor` never read half a file. It is a
//! report, not a lock: `status` checks every pid it names before believing it, since an
//! `up` that was SIGKILLed leaves its last state behind.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::SuperviseError;
use super::process::ProcessId;
use crate::config::DatabaseKind;

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

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a component is doing as `status` reports it: the [`Phase`] `up` recorded, unless
/// the processes say otherwise (a state file left by a killed `up` is not believed).
/// Serialized as its name: `running`, `starting`, `backoff`, `stopped`, `not running`,
/// `orphaned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// `up` runs, and this is the phase it recorded (checked against the process).
    Recorded(Phase),
    /// Not running: `up` is not running, never ran here, or the process is gone.
    NotRunning,
    /// The process runs, but the `up` that started it does not.
    Orphaned,
}

impl Observed {
    /// What a component is doing, given the phase the state file records, its process
    /// (when it has one) and whether `up` is alive.
    pub fn of(recorded: Option<Phase>, process: Option<ProcessId>, up_running: bool) -> Observed {
        let alive = process.map(|p| p.is_alive());
        match (up_running, recorded, alive) {
            (false, _, Some(true)) => Observed::Orphaned,
            (false, _, _) | (true, None, _) => Observed::NotRunning,
            (true, Some(Phase::Running), Some(false)) => Observed::NotRunning,
            (true, Some(phase), _) => Observed::Recorded(phase),
        }
    }

    /// True only for a running component.
    pub fn is_running(self) -> bool {
        self == Observed::Recorded(Phase::Running)
    }

    /// The name `status` prints and its JSON carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Observed::Recorded(phase) => phase.as_str(),
            Observed::NotRunning => "not running",
            Observed::Orphaned => "orphaned",
        }
    }
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Observed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
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
    pub mode: DatabaseKind,
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
    pub address: SocketAddr,
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
    pub fn new(postgres_mode: DatabaseKind, mirror_address: SocketAddr) -> State {
        State {
            up_pid: std::process::id(),
            release: None,
            ready: false,
            updated: now_rfc3339(),
            postgres: PostgresState {
                mode: postgres_mode,
                pid: None,
                pid_start: None,
                port: None,
                version: None,
                state: Phase::Stopped,
                restarts: 0,
            },
            mirror: MirrorState {
                address: mirror_address,
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

    /// Writes the state to `path` durably ([`airgap_fsutil::atomic_write`]), stamping
    /// `updated`.
    pub fn write(&mut self, path: &Path) -> Result<(), SuperviseError> {
        self.updated = now_rfc3339();
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| SuperviseError::StateFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        json.push(b'\n');
        Ok(airgap_fsutil::atomic_write(path, &json)?)
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
        let mut state = State::new(DatabaseKind::Embedded, ([0, 0, 0, 0], 8444).into());
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
        assert_eq!(json["postgres"]["state"], "running");
        assert_eq!(json["mirror"]["address"], "0.0.0.0:8444");
        assert!(
            !tmp.path().join(".state.json.tmp").exists(),
            "temp file renamed"
        );
        Ok(())
    }

    #[test]
    fn phases_round_trip_as_their_lowercase_names() {
        for phase in [
            Phase::Stopped,
            Phase::Starting,
            Phase::Running,
            Phase::Backoff,
        ] {
            let json = serde_json::to_string(&phase).expect("json");
            assert_eq!(json, format!("\"{}\"", phase.as_str()));
            assert_eq!(phase.to_string(), phase.as_str());
            let back: Phase = serde_json::from_str(&json).expect("back");
            assert_eq!(back, phase);
        }
        assert_eq!(Phase::Running.as_str(), "running");
        assert!(serde_json::from_str::<Phase>("\"Running\"").is_err());
    }

    #[test]
    fn a_stale_state_file_is_not_believed() {
        let me = ProcessId::of(std::process::id());
        let gone = me.map(|p| ProcessId {
            start: p.start + 1,
            ..p
        });
        let running = Some(Phase::Running);
        assert_eq!(Observed::of(running, gone, true).as_str(), "not running");
        assert_eq!(Observed::of(running, gone, false).as_str(), "not running");
        assert_eq!(Observed::of(running, me, false).as_str(), "orphaned");
        assert_eq!(Observed::of(running, me, true).as_str(), "running");
        assert_eq!(
            Observed::of(Some(Phase::Backoff), None, true).as_str(),
            "backoff"
        );
        assert_eq!(Observed::of(None, None, true).as_str(), "not running");
        assert!(Observed::of(running, me, true).is_running());
        assert!(!Observed::of(Some(Phase::Backoff), None, true).is_running());
    }

    #[test]
    fn observed_states_serialize_as_status_names() {
        let names = [
            (Observed::Recorded(Phase::Running), "running"),
            (Observed::NotRunning, "not running"),
            (Observed::Orphaned, "orphaned"),
        ];
        for (observed, name) in names {
            let json = serde_json::to_string(&observed).expect("json");
            assert_eq!(json, format!("\"{name}\""));
        }
    }
}
