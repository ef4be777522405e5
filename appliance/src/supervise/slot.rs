//! [`Slot`]: everything the supervisor keeps about one child (Postgres, the mirror,
//! coderd): the running child, its generation, its restart delay and schedule, what it is
//! doing and how often it was restarted. The state file's phase and restart count of each
//! component are copied from here (see `Supervisor::save`), so they have one source.

use std::time::Duration;

use tokio::time::Instant;

use super::backoff::Backoff;
use super::process::ProcessId;
use super::state::Phase;

/// One supervised child of type `C`.
#[derive(Debug)]
pub struct Slot<C> {
    /// The running child, if any.
    pub child: Option<C>,
    /// Its process (for the state file), if it has one.
    pub process: Option<ProcessId>,
    /// The generation of the current (or last) child: reports about older ones are stale.
    pub generation: u64,
    /// The delay before the next restart.
    pub backoff: Backoff,
    /// When to (re)start it, if a start is pending.
    pub restart_at: Option<Instant>,
    /// When the current child started.
    pub started: Instant,
    /// Since when it has run well (running for Postgres and the mirror, healthy for
    /// coderd): a long enough run resets the backoff.
    pub well_since: Option<Instant>,
    /// What it is doing.
    pub phase: Phase,
    /// How often it was restarted after an unexpected exit.
    pub restarts: u32,
}

impl<C> Default for Slot<C> {
    /// Nothing started yet.
    fn default() -> Self {
        Slot {
            child: None,
            process: None,
            generation: 0,
            backoff: Backoff::default(),
            restart_at: None,
            started: Instant::now(),
            well_since: None,
            phase: Phase::Stopped,
            restarts: 0,
        }
    }
}

impl<C> Slot<C> {
    /// Records a child that just started as generation `generation`.
    pub fn started(&mut self, child: C, process: Option<ProcessId>, generation: u64) {
        self.child = Some(child);
        self.process = process;
        self.generation = generation;
        self.started = Instant::now();
        self.phase = Phase::Running;
    }

    /// Takes the child out (it stopped, or is being stopped), forgetting its process.
    pub fn take(&mut self) -> Option<C> {
        self.process = None;
        self.well_since = None;
        self.child.take()
    }

    /// The child exited by itself (or could not start): the backoff's next delay, the
    /// restart scheduled after it, and the phase [`Phase::Backoff`].
    pub fn schedule_restart(&mut self) -> Duration {
        let ran_well = self.well_since.map_or(Duration::ZERO, |s| s.elapsed());
        let delay = self.backoff.after_exit(ran_well);
        self.take();
        self.phase = Phase::Backoff;
        self.restart_at = Some(Instant::now() + delay);
        delay
    }
}
