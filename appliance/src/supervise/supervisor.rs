//! The supervisor loop: start Postgres, the mirror and coderd in that order, then react to
//! events (a child exited, a restart delay ran out, a health probe answered, a renewal is
//! due, the caller asked for a reload) until the caller asks it to stop, and stop them in
//! the reverse order.
//!
//! The caller owns the signals: `up` maps SIGTERM and SIGINT onto the shutdown future and
//! SIGHUP onto the reload channel, and tests drive both directly. Children report through
//! one channel, each report tagged with the generation of the child it is about, so the
//! exit of a coderd that `up` itself stopped (reload, renewal, shutdown) is never mistaken
//! for a crash.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::children::{HealthCheck, Launcher, Plan, Real, Started, CODERD_GRACE};
use super::error::SuperviseError;
use super::lock::UpLock;
use super::process;
use super::renew;
use super::say;
use super::slot::Slot;
use super::state::{Phase, State};
use crate::config::{DatabaseKind, PostgresMode};
use crate::layout::Layout;

/// How often the database is checked.
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// Probe interval while coderd is not (yet) healthy, and once it is.
const PROBE_UNHEALTHY: Duration = Duration::from_millis(500);
const PROBE_HEALTHY: Duration = Duration::from_secs(5);

/// What the children and probes report.
#[derive(Debug)]
enum Event {
    /// coderd of `generation` exited.
    CoderdExited { generation: u64, how: String },
    /// The mirror of `generation` stopped by itself.
    MirrorStopped {
        generation: u64,
        error: Option<String>,
    },
    /// A health probe's answer, to a request sent at `sent`.
    Health {
        sent: Instant,
        result: Result<(), String>,
    },
}

/// What the caller asks for, named by what asked (`SIGTERM`, `SIGHUP`).
enum Request {
    Stop(&'static str),
    Reload(&'static str),
}

/// The caller's stop and reload requests.
struct Requests<S> {
    shutdown: Pin<Box<S>>,
    reload: mpsc::Receiver<&'static str>,
}

impl<S: Future<Output = &'static str>> Requests<S> {
    /// The next stop request's name (reloads meanwhile are dropped: nothing to reload yet).
    async fn stop(&mut self) -> &'static str {
        loop {
            if let Request::Stop(name) = self.recv().await {
                return name;
            }
        }
    }

    /// The next request. A closed reload channel leaves only the shutdown.
    async fn recv(&mut self) -> Request {
        tokio::select! {
            name = &mut self.shutdown => Request::Stop(name),
            Some(name) = self.reload.recv() => Request::Reload(name),
        }
    }
}

/// Runs the appliance of `layout` until `shutdown` resolves (to the name of what asked,
/// e.g. `SIGTERM`; then it stops everything and returns `Ok`), or until it cannot start
/// (then it stops what it started and returns the error). Every message on `reload` (the
/// name of what asked, e.g. `SIGHUP`) re-reads the settings and the current release and
/// restarts the mirror and coderd on them.
pub async fn run(
    layout: Layout,
    shutdown: impl Future<Output = &'static str>,
    reload: mpsc::Receiver<&'static str>,
) -> Result<(), SuperviseError> {
    let _lock = UpLock::acquire(&layout)?;
    let launcher = Real::new(layout.clone())?;
    run_with(layout, launcher, shutdown, reload).await
}

/// [`run`] with the children `launcher` starts (the lock is the caller's).
pub(super) async fn run_with<L: Launcher>(
    layout: Layout,
    launcher: L,
    shutdown: impl Future<Output = &'static str>,
    reload: mpsc::Receiver<&'static str>,
) -> Result<(), SuperviseError> {
    let mut requests = Requests {
        shutdown: Box::pin(shutdown),
        reload,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut sup = Supervisor::new(layout, launcher, tx);
    sup.stop_leftovers().await;
    sup.renew_certificates().await;
    let started = sup.start_all(&mut requests).await;
    let result = match started {
        Ok(true) => sup.event_loop(&mut requests, &mut rx).await,
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };
    sup.shutdown().await;
    result
}

/// The supervisor's whole state.
struct Supervisor<L: Launcher> {
    layout: Layout,
    launcher: L,
    plan: Plan,
    state: State,
    tx: mpsc::UnboundedSender<Event>,
    db: Slot<L::Db>,
    mirror: Slot<L::Mirror>,
    coderd: Slot<L::Coderd>,
    /// The last generation number handed out.
    next_gen: u64,
    health: Option<JoinHandle<()>>,
}

/// `deadline`, or never.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl<L: Launcher> Supervisor<L> {
    /// Nothing started yet; children report on `tx`.
    fn new(layout: Layout, launcher: L, tx: mpsc::UnboundedSender<Event>) -> Self {
        let plan = launcher.plan();
        let mut state = State::new(plan.postgres.kind(), plan.mirror_listen);
        state.release = Some(plan.release.clone());
        state.coderd.version = Some(plan.coderd_version.clone());
        Supervisor {
            layout,
            launcher,
            plan,
            state,
            tx,
            db: Slot::default(),
            mirror: Slot::default(),
            coderd: Slot::default(),
            next_gen: 0,
            health: None,
        }
    }

    /// Writes the state file (each component's phase, restarts and process from its
    /// slot); a failure is reported, not fatal.
    fn save(&mut self) {
        let s = &mut self.state;
        (s.postgres.state, s.postgres.restarts) = (self.db.phase, self.db.restarts);
        s.postgres.pid = self.db.process.map(|p| p.pid);
        s.postgres.pid_start = self.db.process.map(|p| p.start);
        (s.mirror.state, s.mirror.restarts) = (self.mirror.phase, self.mirror.restarts);
        (s.coderd.state, s.coderd.restarts) = (self.coderd.phase, self.coderd.restarts);
        s.coderd.pid = self.coderd.process.map(|p| p.pid);
        s.coderd.pid_start = self.coderd.process.map(|p| p.start);
        if let Err(e) = self.state.write(&self.layout.state_file()) {
            say(&format!("cannot record state: {e}"));
        }
    }

    /// A new generation number for a child about to start.
    fn generation(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    /// Stops a coderd left running by an `up` that was killed (its state file names it).
    async fn stop_leftovers(&mut self) {
        let old = State::read(&self.layout.state_file()).ok();
        if let Some(coderd) = old.and_then(|s| s.coderd_process()) {
            if coderd.is_alive() {
                say(&format!(
                    "stopping coderd (pid {}) left running by an earlier `up`",
                    coderd.pid
                ));
                process::stop_group(coderd, CODERD_GRACE).await;
            }
        }
        self.save();
    }

    /// Renews the coderd and mirror certificates when due; true if any was renewed.
    async fn renew_certificates(&mut self) -> bool {
        match self.launcher.renew().await {
            Ok(lines) => {
                lines.iter().for_each(|line| say(line));
                !lines.is_empty()
            }
            Err(e) => {
                say(&format!("certificate renewal failed: {e}"));
                false
            }
        }
    }

    /// Database, mirror, coderd. `Ok(false)`: a stop request came while waiting for an
    /// external database.
    async fn start_all<S: Future<Output = &'static str>>(
        &mut self,
        requests: &mut Requests<S>,
    ) -> Result<bool, SuperviseError> {
        self.db.phase = Phase::Starting;
        self.save();
        // Only the wait for an external server may be abandoned: an embedded start is
        // let finish (a stop request waits), so no postmaster is left behind.
        let external = self.plan.postgres.kind() == DatabaseKind::External;
        let db = tokio::select! {
            db = self.launcher.start_db() => db?,
            name = requests.stop(), if external => {
                say(&format!("{name} while waiting for PostgreSQL: stopping"));
                return Ok(false);
            }
        };
        self.db_running(db);
        self.start_mirror()?;
        self.start_coderd()?;
        self.spawn_health_probe();
        Ok(true)
    }

    /// Records a database that just started.
    fn db_running(&mut self, db: Started<L::Db>) {
        let version = self.launcher.db_version(&db.child);
        self.state.postgres.version = Some(version.clone());
        if let PostgresMode::Embedded { port } = self.plan.postgres {
            self.state.postgres.port = Some(port);
        }
        say(&format!(
            "PostgreSQL {version} ({}) running{}",
            self.plan.postgres.kind(),
            db.process
                .map_or_else(String::new, |p| format!(", pid {}", p.pid))
        ));
        let generation = self.generation();
        self.db.started(db.child, db.process, generation);
        self.db.well_since = Some(Instant::now());
        self.save();
    }

    /// Starts the mirror server (a new generation) and records it.
    fn start_mirror(&mut self) -> Result<(), SuperviseError> {
        let generation = self.generation();
        let tx = self.tx.clone();
        let on_exit = move |error| drop(tx.send(Event::MirrorStopped { generation, error }));
        let mirror = self.launcher.start_mirror(on_exit)?;
        self.mirror.started(mirror, None, generation);
        self.mirror.well_since = Some(Instant::now());
        self.state.mirror.address = self.plan.mirror_listen;
        self.save();
        Ok(())
    }

    /// Spawns coderd (a new generation) and records it; health is probed separately.
    fn start_coderd(&mut self) -> Result<(), SuperviseError> {
        let generation = self.generation();
        let tx = self.tx.clone();
        let on_exit = move |how| drop(tx.send(Event::CoderdExited { generation, how }));
        let coderd = self.launcher.start_coderd(on_exit)?;
        say(&format!(
            "coderd {} of release {} started (pid {})",
            self.plan.coderd_version,
            self.plan.release,
            coderd.process.map_or(0, |p| p.pid)
        ));
        self.coderd
            .started(coderd.child, coderd.process, generation);
        self.coderd.well_since = None;
        self.state.coderd.healthy = false;
        self.save();
        Ok(())
    }

    /// Starts the loop that probes coderd's health (replacing an earlier one).
    fn spawn_health_probe(&mut self) {
        if let Some(old) = self.health.take() {
            old.abort();
        }
        let probe = match self.launcher.probe() {
            Ok(probe) => probe,
            Err(e) => {
                say(&format!("cannot probe coderd's health: {e}"));
                return;
            }
        };
        let tx = self.tx.clone();
        self.health = Some(tokio::spawn(async move {
            loop {
                let sent = Instant::now();
                let result = probe.check().await;
                let pause = if result.is_ok() {
                    PROBE_HEALTHY
                } else {
                    PROBE_UNHEALTHY
                };
                if tx.send(Event::Health { sent, result }).is_err() {
                    return;
                }
                tokio::time::sleep(pause).await;
            }
        }));
    }

    /// Reacts to events until a stop request.
    async fn event_loop<S: Future<Output = &'static str>>(
        &mut self,
        requests: &mut Requests<S>,
        rx: &mut mpsc::UnboundedReceiver<Event>,
    ) -> Result<(), SuperviseError> {
        let mut watch = tokio::time::interval(WATCH_EVERY);
        let period = renew::interval();
        let mut renewal = tokio::time::interval_at(Instant::now() + period, period);
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Request::Stop(name) => {
                        say(&format!("{name}: stopping coderd, then the mirror, then PostgreSQL"));
                        return Ok(());
                    }
                    Request::Reload(name) => self.reload(name).await,
                },
                Some(event) = rx.recv() => self.on_event(event),
                _ = watch.tick() => self.watch_db().await,
                _ = renewal.tick() => {
                    if self.renew_certificates().await {
                        say("restarting the mirror and coderd to load the renewed certificates");
                        self.restart_mirror().await;
                        self.restart_coderd().await;
                    }
                }
                _ = sleep_until(self.db.restart_at) => self.restart_db().await,
                _ = sleep_until(self.mirror.restart_at) => {
                    self.mirror.restart_at = None;
                    self.try_start_mirror(true);
                }
                _ = sleep_until(self.coderd.restart_at) => {
                    self.coderd.restart_at = None;
                    self.try_start_coderd(true);
                }
            }
        }
    }

    /// Dispatches a report; those about an earlier generation are dropped.
    fn on_event(&mut self, event: Event) {
        match event {
            Event::CoderdExited { generation, how } if generation == self.coderd.generation => {
                self.coderd_exited(how);
            }
            Event::MirrorStopped { generation, error } if generation == self.mirror.generation => {
                self.mirror_stopped(error);
            }
            Event::Health { sent, result } => self.health_report(sent, result),
            // A report about a child `up` stopped on purpose.
            Event::CoderdExited { .. } | Event::MirrorStopped { .. } => {}
        }
    }

    /// coderd died on its own: record how and schedule a restart after the backoff.
    fn coderd_exited(&mut self, how: String) {
        if self.coderd.child.is_none() {
            return;
        }
        let delay = self.coderd.schedule_restart();
        say(&format!(
            "coderd exited unexpectedly ({how}); restarting in {} s",
            delay.as_secs()
        ));
        self.state.coderd.healthy = false;
        self.state.coderd.last_exit = Some(how);
        self.save();
    }

    /// The mirror server stopped on its own: schedule a restart after the backoff.
    fn mirror_stopped(&mut self, error: Option<String>) {
        if self.mirror.child.is_none() {
            return;
        }
        let delay = self.mirror.schedule_restart();
        let why = error.unwrap_or_else(|| "stopped".into());
        say(&format!(
            "provider mirror failed ({why}); restarting in {} s",
            delay.as_secs()
        ));
        self.save();
    }

    /// Records a probe answer about the current coderd; the first healthy answer makes
    /// the appliance ready.
    fn health_report(&mut self, sent: Instant, result: Result<(), String>) {
        if self.coderd.child.is_none() || sent < self.coderd.started {
            return;
        }
        match result {
            Ok(()) if !self.state.coderd.healthy => {
                self.state.coderd.healthy = true;
                self.coderd.well_since = Some(Instant::now());
                if !self.state.ready {
                    self.state.ready = true;
                    self.notify_ready();
                }
                self.save();
            }
            Err(e) if self.state.coderd.healthy => {
                say(&format!("coderd is unhealthy: {e}"));
                self.state.coderd.healthy = false;
                self.coderd.well_since = None;
                self.save();
            }
            _ => {}
        }
    }

    /// Tells systemd (when it started us with Type=notify) and the log.
    fn notify_ready(&self) {
        let line = format!("appliance healthy at {}", self.plan.access_url);
        say(&line);
        let states = [
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&line),
        ];
        if let Err(e) = sd_notify::notify(&states) {
            say(&format!("cannot notify systemd (NOTIFY_SOCKET): {e}"));
        }
    }

    /// Notices a dead embedded postmaster and schedules its restart. coderd is stopped
    /// with it (its connections died with the server) and started again once the
    /// database is back, so it never runs against a database that is not there.
    async fn watch_db(&mut self) {
        match &self.db.child {
            Some(db) if !self.launcher.db_running(db) => {}
            _ => return,
        }
        let pid = self.db.process.map_or(0, |p| p.pid);
        let delay = self.db.schedule_restart();
        say(&format!(
            "PostgreSQL (pid {pid}) exited unexpectedly; restarting in {} s, coderd after it",
            delay.as_secs()
        ));
        self.coderd.restart_at = None;
        self.stop_coderd().await;
        self.coderd.phase = Phase::Backoff;
        self.save();
    }

    /// Restarts the database after a crash; coderd follows once it is up.
    async fn restart_db(&mut self) {
        self.db.restart_at = None;
        self.db.phase = Phase::Starting;
        self.save();
        match self.launcher.start_db().await {
            Ok(db) => {
                self.db.restarts += 1;
                self.db_running(db);
                if self.coderd.child.is_none() {
                    self.coderd.restart_at = Some(Instant::now());
                }
            }
            Err(e) => {
                let delay = self.db.schedule_restart();
                say(&format!("{e}; retrying in {} s", delay.as_secs()));
                self.save();
            }
        }
    }

    /// Starts the mirror, scheduling another try on failure.
    fn try_start_mirror(&mut self, restart: bool) {
        match self.start_mirror() {
            Ok(()) if restart => {
                self.mirror.restarts += 1;
                self.save();
            }
            Ok(()) => {}
            Err(e) => {
                let delay = self.mirror.schedule_restart();
                say(&format!("{e}; retrying in {} s", delay.as_secs()));
                self.save();
            }
        }
    }

    /// Starts coderd when the database is up (else the database's restart will), and
    /// schedules another try on failure.
    fn try_start_coderd(&mut self, restart: bool) {
        let db_up = self
            .db
            .child
            .as_ref()
            .is_some_and(|db| self.launcher.db_running(db));
        if !db_up {
            return;
        }
        match self.start_coderd() {
            Ok(()) if restart => {
                self.coderd.restarts += 1;
                self.save();
            }
            Ok(()) => {}
            Err(e) => {
                let delay = self.coderd.schedule_restart();
                say(&format!("{e}; retrying in {} s", delay.as_secs()));
                self.save();
            }
        }
    }

    /// Stops and starts the mirror (new release, new certificate).
    async fn restart_mirror(&mut self) {
        self.mirror.restart_at = None;
        if let Some(mirror) = self.mirror.take() {
            self.launcher.stop_mirror(mirror).await;
        }
        self.try_start_mirror(false);
    }

    /// Stops and starts coderd (new release, new certificate).
    async fn restart_coderd(&mut self) {
        self.coderd.restart_at = None;
        self.stop_coderd().await;
        self.try_start_coderd(false);
    }

    /// Stops coderd, if it runs, and records it stopped.
    async fn stop_coderd(&mut self) {
        if let Some(coderd) = self.coderd.take() {
            self.launcher.stop_coderd(coderd).await;
        }
        self.coderd.phase = Phase::Stopped;
        self.state.coderd.healthy = false;
        self.save();
    }

    /// A reload request (SIGHUP): re-reads the settings and the current release, restarts
    /// the mirror and coderd on them. PostgreSQL keeps running.
    async fn reload(&mut self, name: &str) {
        say(&format!(
            "{name}: reloading the settings and the current release"
        ));
        if let Err(e) = self.launcher.reload() {
            say(&format!("reload failed, keeping the running release: {e}"));
            return;
        }
        let plan = self.launcher.plan();
        if plan.postgres != self.plan.postgres {
            say("the PostgreSQL settings changed: they apply when `up` restarts");
        }
        self.state.release = Some(plan.release.clone());
        self.state.coderd.version = Some(plan.coderd_version.clone());
        self.plan = plan;
        self.restart_mirror().await;
        self.restart_coderd().await;
        self.spawn_health_probe();
    }

    /// coderd, then the mirror, then PostgreSQL; the state file ends with all stopped.
    async fn shutdown(&mut self) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        if let Some(health) = self.health.take() {
            health.abort();
        }
        self.stop_coderd().await;
        if let Some(mirror) = self.mirror.take() {
            self.launcher.stop_mirror(mirror).await;
        }
        self.mirror.phase = Phase::Stopped;
        self.save();
        if let Some(db) = self.db.take() {
            if let Err(e) = self.launcher.stop_db(db).await {
                say(&format!("stopping PostgreSQL failed: {e}"));
            }
        }
        self.db.phase = Phase::Stopped;
        self.state.ready = false;
        self.save();
        say("stopped");
    }
}
