//! coderd as a child of `up`: `ROOT/releases/NAME/bin/coder server` with exactly the
//! environment in `ROOT/etc/coderd.env` (nothing inherited), in its own process group so
//! a stop reaches the Terraform processes it started, its output going to `up`'s own
//! stdout and stderr (the journal, under systemd).

use std::time::Duration;

use airgap_tool::Tool;
use nix::sys::signal::Signal;
use tokio::sync::watch;

use super::error::SuperviseError;
use super::process::{self, ProcessId};
use super::settings::Settings;
use super::state::now_rfc3339;
use crate::layout::Layout;

/// A running coderd.
#[derive(Debug)]
pub struct Coderd {
    /// The process (leader of its own group).
    pub process: ProcessId,
    /// How it exited, once it has.
    exited: watch::Receiver<Option<String>>,
}

impl Coderd {
    /// Starts `coder server` of the release in `settings`, after writing the release's
    /// started marker (from now on the database may carry this release's migrations,
    /// which `rollback` must know). `on_exit` gets a description of how it exited
    /// (`exit status: 1 at …`), whether or not the exit was asked for.
    pub fn spawn(
        layout: &Layout,
        settings: &Settings,
        on_exit: impl FnOnce(String) + Send + 'static,
    ) -> Result<Coderd, SuperviseError> {
        mark_started(layout, &settings.release.name)?;
        let bin = settings.release.coder_bin();
        // Exactly coderd.env's variables; stdin closed. `up` manages its lifetime itself,
        // so no deadline: it only takes the configured command.
        let mut child = Tool::new("coderd", &bin)
            .arg("server")
            // Settings whose env form is unsafe (see appliance::posture::FLAGS).
            .args(crate::posture::server_args())
            .envs(settings.env.iter().map(|(k, v)| (k, v)))
            .current_dir(layout.root())
            .tokio_command()
            .process_group(0)
            .spawn()
            .map_err(|cause| SuperviseError::Spawn {
                path: bin.clone(),
                cause,
            })?;
        let pid = child.id().unwrap_or_default();
        let process = ProcessId::of(pid).unwrap_or(ProcessId { pid, start: 0 });
        let (tell, exited) = watch::channel(None);
        tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => format!("{status} at {}", now_rfc3339()),
                Err(e) => format!("lost track of it ({e}) at {}", now_rfc3339()),
            };
            let _ = tell.send(Some(how.clone()));
            on_exit(how);
        });
        Ok(Coderd { process, exited })
    }

    /// SIGTERM to its process group, then SIGKILL if it has not exited after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        process::signal_group(self.process, Signal::SIGTERM);
        if !self.wait_exit(grace).await {
            tracing::warn!("coderd did not stop within {grace:?}; killing it");
            process::signal_group(self.process, Signal::SIGKILL);
            self.wait_exit(Duration::from_secs(5)).await;
        }
    }

    /// Waits up to `limit` for the exit; true if it exited.
    async fn wait_exit(&mut self, limit: Duration) -> bool {
        let exited = self.exited.wait_for(Option::is_some);
        matches!(tokio::time::timeout(limit, exited).await, Ok(Ok(_)))
    }
}

/// Creates the empty marker `ROOT/data/started/NAME`.
fn mark_started(layout: &Layout, release: &str) -> Result<(), SuperviseError> {
    let marker = layout.started_marker(release);
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir).map_err(SuperviseError::io("cannot create", dir))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&marker)
        .map(drop)
        .map_err(SuperviseError::io("cannot create", &marker))
}
