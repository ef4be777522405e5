//! The supervisor loop: start Postgres, the mirror and coderd in that order, then react to
//! events (a child exited, a restart delay ran out, a health probe answered, a renewal is
//! due, a signal arrived) until SIGTERM, and stop them in the reverse order.
//!
//! Children report through one channel, each report tagged with the generation of the
//! child it is about, so the exit of a coderd that `up` itself stopped (reload, renewal,
//! shutdown) is never mistaken for a crash.

use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::coderd::Coderd;
use super::database::Database;
use super::error::SuperviseError;
use super::health::HealthProbe;
use super::lock::UpLock;
use super::mirror::MirrorServer;
use super::process;
use super::renew;
use super::say;
use super::settings::Settings;
use super::state::{Phase, State};
use crate::layout::Layout;

/// How long coderd gets to stop after SIGTERM before SIGKILL.
const CODERD_GRACE: Duration = Duration::from_secs(15);
/// How often the embedded postmaster is checked.
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

/// What a signal asks for.
enum Request {
    Stop(&'static str),
    Reload,
}

/// SIGTERM, SIGINT and SIGHUP, registered before anything starts so none is lost.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Registers the three handlers.
    fn new() -> Result<Signals, SuperviseError> {
        let make = |kind| signal(kind).map_err(SuperviseError::Signals);
        Ok(Signals {
            term: make(SignalKind::terminate())?,
            int: make(SignalKind::interrupt())?,
            hup: make(SignalKind::hangup())?,
        })
    }

    /// The next stop signal's name (a SIGHUP meanwhile is dropped: nothing to reload yet).
    async fn stop(&mut self) -> &'static str {
        loop {
            if let Request::Stop(name) = self.recv().await {
                return name;
            }
        }
    }

    /// The next signal.
    async fn recv(&mut self) -> Request {
        tokio::select! {
            _ = self.term.recv() => Request::Stop("SIGTERM"),
            _ = self.int.recv() => Request::Stop("SIGINT"),
            _ = self.hup.recv() => Request::Reload,
        }
    }
}

/// Runs the appliance of `layout` until SIGTERM or SIGINT (then returns `Ok`), or until it
/// cannot start (then stops what it started and returns the error).
pub async fn run(layout: Layout) -> Result<(), SuperviseError> {
    let _lock = UpLock::acquire(&layout)?;
    let mut signals = Signals::new()?;
    let settings = Settings::load(&layout)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut sup = Supervisor::new(layout, settings, tx);
    sup.stop_leftovers().await;
    sup.renew_certificates().await;
    let started = sup.start_all(&mut signals).await;
    let result = match started {
        Ok(true) => sup.event_loop(&mut signals, &mut rx).await,
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };
    sup.shutdown().await;
    result
}

/// The supervisor's whole state.
struct Supervisor {
    layout: Layout,
    settings: Settings,
    state: State,
    tx: mpsc::UnboundedSender<Event>,
    db: Option<Database>,
    mirror: Option<MirrorServer>,
    coderd: Option<Coderd>,
    /// Generation of the current coderd and mirror (reports of older ones are ignored).
    coderd_gen: u64,
    mirror_gen: u64,
    next_gen: u64,
    backoff: Backoffs,
    /// When to (re)start each child, if one is pending.
    db_at: Option<Instant>,
    mirror_at: Option<Instant>,
    coderd_at: Option<Instant>,
    /// Since when each child has run (healthy, for coderd).
    db_since: Option<Instant>,
    mirror_since: Option<Instant>,
    coderd_healthy_since: Option<Instant>,
    /// When the current coderd was started: older probe answers are about another one.
    coderd_started: Instant,
    health: Option<JoinHandle<()>>,
}

/// One restart delay per child.
#[derive(Default)]
struct Backoffs {
    db: Backoff,
    mirror: Backoff,
    coderd: Backoff,
}

/// `deadline`, or never.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Time since `since`, zero when it never happened.
fn elapsed(since: Option<Instant>) -> Duration {
    since.map_or(Duration::ZERO, |s| s.elapsed())
}

impl Supervisor {
    /// Nothing started yet; children report on `tx`.
    fn new(layout: Layout, settings: Settings, tx: mpsc::UnboundedSender<Event>) -> Self {
        let mut state = State::new(settings.database.kind(), settings.config.mirror_listen);
        state.release = Some(settings.release.name.clone());
        state.coderd.version = Some(settings.coderd_version());
        Supervisor {
            layout,
            settings,
            state,
            tx,
            db: None,
            mirror: None,
            coderd: None,
            coderd_gen: 0,
            mirror_gen: 0,
            next_gen: 0,
            backoff: Backoffs::default(),
            db_at: None,
            mirror_at: None,
            coderd_at: None,
            db_since: None,
            mirror_since: None,
            coderd_healthy_since: None,
            coderd_started: Instant::now(),
            health: None,
        }
    }

    /// Writes the state file; a failure is reported, not fatal.
    fn save(&mut self) {
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
        let (layout, ca_dir) = (self.layout.clone(), self.settings.config.ca_dir.clone());
        let outcome = tokio::task::spawn_blocking(move || renew::renew_due(&layout, &ca_dir)).await;
        match outcome {
            Ok(Ok(lines)) => {
                lines.iter().for_each(|line| say(line));
                !lines.is_empty()
            }
            Ok(Err(e)) => {
                say(&format!("certificate renewal failed: {e}"));
                false
            }
            Err(e) => {
                say(&format!("certificate renewal failed: {e}"));
                false
            }
        }
    }

    /// Database, mirror, coderd. `Ok(false)`: a stop signal came while waiting for an
    /// external database.
    async fn start_all(&mut self, signals: &mut Signals) -> Result<bool, SuperviseError> {
        self.state.postgres.state = Phase::Starting;
        self.save();
        // Only the wait for an external server may be abandoned: an embedded start is
        // let finish (a stop signal waits in the queue), so no postmaster is left behind.
        let external = self.settings.database.kind() == crate::config::DatabaseKind::External;
        let db = tokio::select! {
            db = Database::start(&self.settings, &self.layout) => db?,
            name = signals.stop(), if external => {
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
    fn db_running(&mut self, db: Database) {
        let postmaster = db.postmaster();
        self.state.postgres.pid = postmaster.map(|p| p.pid);
        self.state.postgres.pid_start = postmaster.map(|p| p.start);
        self.state.postgres.version = Some(db.version(&self.settings));
        if let crate::config::PostgresMode::Embedded { port } = self.settings.config.postgres {
            self.state.postgres.port = Some(port);
        }
        self.state.postgres.state = Phase::Running;
        say(&format!(
            "PostgreSQL {} ({}) running{}",
            db.version(&self.settings),
            self.settings.database.kind(),
            postmaster.map_or_else(String::new, |p| format!(", pid {}", p.pid))
        ));
        self.db = Some(db);
        self.db_since = Some(Instant::now());
        self.save();
    }

    /// Starts the mirror server (a new generation) and records it.
    fn start_mirror(&mut self) -> Result<(), SuperviseError> {
        let generation = self.generation();
        let tx = self.tx.clone();
        let on_exit = move |error| drop(tx.send(Event::MirrorStopped { generation, error }));
        let mirror = MirrorServer::start(&self.layout, &self.settings, on_exit)?;
        say(&format!(
            "provider mirror serving {} on https://{}",
            self.settings.release.providers_dir().display(),
            self.settings.config.mirror_listen
        ));
        self.mirror = Some(mirror);
        self.mirror_gen = generation;
        self.mirror_since = Some(Instant::now());
        self.state.mirror.address = self.settings.config.mirror_listen;
        self.state.mirror.state = Phase::Running;
        self.save();
        Ok(())
    }

    /// Spawns coderd (a new generation) and records it; health is probed separately.
    fn start_coderd(&mut self) -> Result<(), SuperviseError> {
        let generation = self.generation();
        let tx = self.tx.clone();
        let on_exit = move |how| drop(tx.send(Event::CoderdExited { generation, how }));
        let coderd = Coderd::spawn(&self.layout, &self.settings, on_exit)?;
        say(&format!(
            "coderd {} of release {} started (pid {})",
            self.settings.coderd_version(),
            self.settings.release.name,
            coderd.process.pid
        ));
        self.state.coderd.pid = Some(coderd.process.pid);
        self.state.coderd.pid_start = Some(coderd.process.start);
        self.state.coderd.state = Phase::Running;
        self.state.coderd.healthy = false;
        self.coderd = Some(coderd);
        self.coderd_gen = generation;
        self.coderd_started = Instant::now();
        self.coderd_healthy_since = None;
        self.save();
        Ok(())
    }

    /// Starts the loop that probes coderd's `/healthz` (replacing an earlier one).
    fn spawn_health_probe(&mut self) {
        if let Some(old) = self.health.take() {
            old.abort();
        }
        let config = &self.settings.config;
        let probe =
            match HealthProbe::new(&self.layout.ca_bundle(), &config.access_url, config.listen) {
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
                let result = probe.check().await.map_err(|e| e.to_string());
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

    /// Reacts to events until a stop signal.
    async fn event_loop(
        &mut self,
        signals: &mut Signals,
        rx: &mut mpsc::UnboundedReceiver<Event>,
    ) -> Result<(), SuperviseError> {
        let mut watch = tokio::time::interval(WATCH_EVERY);
        let period = renew::interval();
        let mut renewal = tokio::time::interval_at(Instant::now() + period, period);
        loop {
            tokio::select! {
                request = signals.recv() => match request {
                    Request::Stop(name) => {
                        say(&format!("{name}: stopping coderd, then the mirror, then PostgreSQL"));
                        return Ok(());
                    }
                    Request::Reload => self.reload().await,
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
                _ = sleep_until(self.db_at) => self.restart_db().await,
                _ = sleep_until(self.mirror_at) => {
                    self.mirror_at = None;
                    self.try_start_mirror(true);
                }
                _ = sleep_until(self.coderd_at) => {
                    self.coderd_at = None;
                    self.try_start_coderd(true);
                }
            }
        }
    }

    /// Dispatches a report; those about an earlier generation are dropped.
    fn on_event(&mut self, event: Event) {
        match event {
            Event::CoderdExited { generation, how } if generation == self.coderd_gen => {
                self.coderd_exited(how);
            }
            Event::MirrorStopped { generation, error } if generation == self.mirror_gen => {
                self.mirror_stopped(error);
            }
            Event::Health { sent, result } => self.health_report(sent, result),
            // A report about a child `up` stopped on purpose.
            Event::CoderdExited { .. } | Event::MirrorStopped { .. } => {}
        }
    }

    /// coderd died on its own: record how and schedule a restart after the backoff.
    fn coderd_exited(&mut self, how: String) {
        if self.coderd.take().is_none() {
            return;
        }
        let delay = self
            .backoff
            .coderd
            .after_exit(elapsed(self.coderd_healthy_since));
        say(&format!(
            "coderd exited unexpectedly ({how}); restarting in {} s",
            delay.as_secs()
        ));
        self.coderd_healthy_since = None;
        let c = &mut self.state.coderd;
        (c.pid, c.pid_start, c.healthy) = (None, None, false);
        c.state = Phase::Backoff;
        c.last_exit = Some(how);
        self.coderd_at = Some(Instant::now() + delay);
        self.save();
    }

    /// The mirror server stopped on its own: schedule a restart after the backoff.
    fn mirror_stopped(&mut self, error: Option<String>) {
        if self.mirror.take().is_none() {
            return;
        }
        let delay = self.backoff.mirror.after_exit(elapsed(self.mirror_since));
        let why = error.unwrap_or_else(|| "stopped".into());
        say(&format!(
            "provider mirror failed ({why}); restarting in {} s",
            delay.as_secs()
        ));
        self.state.mirror.state = Phase::Backoff;
        self.mirror_at = Some(Instant::now() + delay);
        self.save();
    }

    /// Records a probe answer about the current coderd; the first 200 makes the
    /// appliance ready.
    fn health_report(&mut self, sent: Instant, result: Result<(), String>) {
        if self.coderd.is_none() || sent < self.coderd_started {
            return;
        }
        match result {
            Ok(()) if !self.state.coderd.healthy => {
                self.state.coderd.healthy = true;
                self.coderd_healthy_since = Some(Instant::now());
                if !self.state.ready {
                    self.state.ready = true;
                    self.notify_ready();
                }
                self.save();
            }
            Err(e) if self.state.coderd.healthy => {
                say(&format!("coderd is unhealthy: {e}"));
                self.state.coderd.healthy = false;
                self.coderd_healthy_since = None;
                self.save();
            }
            _ => {}
        }
    }

    /// Tells systemd (when it started us with Type=notify) and the log.
    fn notify_ready(&self) {
        let line = format!("appliance healthy at {}", self.settings.config.access_url);
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
        if self.db.as_ref().is_none_or(Database::is_running) {
            return;
        }
        self.db = None;
        let delay = self.backoff.db.after_exit(elapsed(self.db_since));
        say(&format!(
            "PostgreSQL (pid {}) exited unexpectedly; restarting in {} s, coderd after it",
            self.state.postgres.pid.unwrap_or_default(),
            delay.as_secs()
        ));
        let pg = &mut self.state.postgres;
        (pg.pid, pg.pid_start, pg.state) = (None, None, Phase::Backoff);
        self.db_at = Some(Instant::now() + delay);
        self.coderd_at = None;
        self.stop_coderd().await;
        self.state.coderd.state = Phase::Backoff;
        self.save();
    }

    /// Restarts the database after a crash; coderd follows once it is up.
    async fn restart_db(&mut self) {
        self.db_at = None;
        self.state.postgres.state = Phase::Starting;
        self.save();
        match Database::start(&self.settings, &self.layout).await {
            Ok(db) => {
                self.state.postgres.restarts += 1;
                self.db_running(db);
                if self.coderd.is_none() {
                    self.coderd_at = Some(Instant::now());
                }
            }
            Err(e) => {
                let delay = self.backoff.db.after_exit(Duration::ZERO);
                say(&format!("{e}; retrying in {} s", delay.as_secs()));
                self.state.postgres.state = Phase::Backoff;
                self.db_at = Some(Instant::now() + delay);
                self.save();
            }
        }
    }

    /// Starts the mirror, scheduling another try on failure.
    fn try_start_mirror(&mut self, restart: bool) {
        match self.start_mirror() {
            Ok(()) if restart => {
                self.state.mirror.restarts += 1;
                self.save();
            }
            Ok(()) => {}
            Err(e) => {
                let delay = self.backoff.mirror.after_exit(Duration::ZERO);
                say(&format!("{e}; retrying in {} s", delay.as_secs()));
                self.state.mirror.state = Phase::Backoff;
                self.mirror_at = Some(Instant::now() + delay);
                self.save();
            }
        }
    }

    /// Starts coderd when the database is up (else the database's restart will), and
    /// schedules another try on failure.
    fn try_start_coderd(&mut self, restart: bool) {
        if !self.db.as_ref().is_some_and(Database::is_running) {
            return;
        }
        match self.start_coderd() {
            Ok(()) if restart => {
                self.state.coderd.restarts += 1;
                self.save();
            }
            Ok(()) => {}
            Err(e) => {
                let delay = self.backoff.coderd.after_exit(Duration::ZERO);
                say(&format!("{e}; retrying in {} s", delay.as_secs()));
                self.state.coderd.state = Phase::Backoff;
                self.coderd_at = Some(Instant::now() + delay);
                self.save();
            }
        }
    }

    /// Stops and starts the mirror (new release, new certificate).
    async fn restart_mirror(&mut self) {
        self.mirror_at = None;
        if let Some(mirror) = self.mirror.take() {
            mirror.stop().await;
        }
        self.try_start_mirror(false);
    }

    /// Stops and starts coderd (new release, new certificate).
    async fn restart_coderd(&mut self) {
        self.coderd_at = None;
        self.stop_coderd().await;
        self.try_start_coderd(false);
    }

    async fn stop_coderd(&mut self) {
        if let Some(coderd) = self.coderd.take() {
            coderd.stop(CODERD_GRACE).await;
        }
        let c = &mut self.state.coderd;
        (c.pid, c.pid_start, c.healthy, c.state) = (None, None, false, Phase::Stopped);
        self.coderd_healthy_since = None;
        self.save();
    }

    /// SIGHUP: re-reads the settings and the current release, restarts the mirror and
    /// coderd on them. PostgreSQL keeps running.
    async fn reload(&mut self) {
        say("SIGHUP: reloading the settings and the current release");
        let settings = match Settings::load(&self.layout) {
            Ok(settings) => settings,
            Err(e) => {
                say(&format!("reload failed, keeping the running release: {e}"));
                return;
            }
        };
        if settings.config.postgres != self.settings.config.postgres {
            say("the PostgreSQL settings changed: they apply when `up` restarts");
        }
        self.settings = settings;
        self.state.release = Some(self.settings.release.name.clone());
        self.state.coderd.version = Some(self.settings.coderd_version());
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
            mirror.stop().await;
        }
        self.state.mirror.state = Phase::Stopped;
        self.save();
        if let Some(db) = self.db.take() {
            if let Err(e) = db.stop().await {
                say(&format!("stopping PostgreSQL failed: {e}"));
            }
        }
        let pg = &mut self.state.postgres;
        (pg.pid, pg.pid_start, pg.state) = (None, None, Phase::Stopped);
        self.state.ready = false;
        self.save();
        say("stopped");
    }
}
