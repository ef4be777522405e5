//! The supervisor's restart policy with fake children and a paused clock: restarts after
//! growing, capped delays; the delay starting over after a healthy minute; reloads that
//! are not crashes; shutdown in reverse order; stale exit reports ignored (generations);
//! coderd stopped with a dead database and started after it.
//!
//! The fakes record what the supervisor asked of them, with the (virtual) time, on a
//! channel the test reads; the test plays the children's side (a crash, a late exit
//! report, health) through the shared [`World`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::children::{HealthCheck, Launcher, Plan, Started};
use super::error::SuperviseError;
use super::state::{Phase, State};
use super::supervisor::run_with;
use crate::config::PostgresMode;
use crate::layout::Layout;

/// What the supervisor asked of a fake child (coderd numbered from 1 in start order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Did {
    StartDb,
    StartMirror,
    StartCoderd(u32),
    StopCoderd(u32),
    StopMirror,
    StopDb,
}

/// A coderd's exit report, as the supervisor handed it to the launcher.
type ExitReport = Box<dyn FnOnce(String) + Send>;

/// The children's side, shared by the fakes and the test.
#[derive(Default)]
struct World {
    /// The exit report of every coderd started, by number; taken when fired.
    coderd_exits: Vec<Option<ExitReport>>,
    /// Whether coderd answers its health probe.
    healthy: bool,
    /// Whether a stopped coderd's exit report is held for the test to fire (late).
    hold_exits: bool,
    /// The release `ROOT/current` points at.
    release: String,
    /// Whether the database died (a start brings up a new one).
    db_down: bool,
}

/// The fake launcher.
struct Fake {
    world: Arc<Mutex<World>>,
    news: mpsc::UnboundedSender<(Instant, Did)>,
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Fake {
    fn did(&self, what: Did) {
        let _ = self.news.send((Instant::now(), what));
    }
}

struct FakeDb;
struct FakeMirror;
struct FakeCoderd(u32);

struct FakeProbe(Arc<Mutex<World>>);

impl HealthCheck for FakeProbe {
    async fn check(&self) -> Result<(), String> {
        let healthy = lock(&self.0).healthy;
        healthy.then_some(()).ok_or_else(|| "not yet".to_string())
    }
}

impl Launcher for Fake {
    type Db = FakeDb;
    type Mirror = FakeMirror;
    type Coderd = FakeCoderd;
    type Probe = FakeProbe;

    fn plan(&self) -> Plan {
        Plan {
            release: lock(&self.world).release.clone(),
            coderd_version: "2.99.0".into(),
            postgres: PostgresMode::Embedded { port: 5432 },
            mirror_listen: SocketAddr::from(([127, 0, 0, 1], 8444)),
            access_url: "https://coder.test".into(),
        }
    }

    fn reload(&mut self) -> Result<(), SuperviseError> {
        Ok(())
    }

    async fn start_db(&self) -> Result<Started<FakeDb>, SuperviseError> {
        lock(&self.world).db_down = false;
        self.did(Did::StartDb);
        Ok(Started {
            child: FakeDb,
            process: None,
        })
    }

    fn db_version(&self, _: &FakeDb) -> String {
        "15.0".into()
    }

    fn db_running(&self, _: &FakeDb) -> bool {
        !lock(&self.world).db_down
    }

    async fn stop_db(&self, _: FakeDb) -> Result<(), SuperviseError> {
        self.did(Did::StopDb);
        Ok(())
    }

    fn start_mirror(
        &self,
        _on_exit: impl FnOnce(Option<String>) + Send + 'static,
    ) -> Result<FakeMirror, SuperviseError> {
        self.did(Did::StartMirror);
        Ok(FakeMirror)
    }

    async fn stop_mirror(&self, _: FakeMirror) {
        self.did(Did::StopMirror);
    }

    fn start_coderd(
        &self,
        on_exit: impl FnOnce(String) + Send + 'static,
    ) -> Result<Started<FakeCoderd>, SuperviseError> {
        let n = {
            let mut world = lock(&self.world);
            world.coderd_exits.push(Some(Box::new(on_exit)));
            u32::try_from(world.coderd_exits.len()).unwrap_or(u32::MAX)
        };
        self.did(Did::StartCoderd(n));
        Ok(Started {
            child: FakeCoderd(n),
            process: None,
        })
    }

    async fn stop_coderd(&self, coderd: FakeCoderd) {
        self.did(Did::StopCoderd(coderd.0));
        let mut world = lock(&self.world);
        if !world.hold_exits {
            // A stopped coderd reports its exit like any other.
            if let Some(report) = take_exit(&mut world, coderd.0) {
                drop(world);
                report("signal: 15 (SIGTERM)".into());
            }
        }
    }

    fn probe(&self) -> Result<FakeProbe, String> {
        Ok(FakeProbe(self.world.clone()))
    }

    async fn renew(&self) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

fn take_exit(world: &mut World, n: u32) -> Option<ExitReport> {
    let index = usize::try_from(n).ok()?.checked_sub(1)?;
    world.coderd_exits.get_mut(index)?.take()
}

/// The test's side: what the fakes did, the children's world, and the caller's requests.
struct Harness {
    world: Arc<Mutex<World>>,
    news: mpsc::UnboundedReceiver<(Instant, Did)>,
    stop: Option<oneshot::Sender<()>>,
    reload: mpsc::Sender<&'static str>,
    layout: Layout,
    _dir: tempfile::TempDir,
}

/// Longer than any wait the supervisor makes: a missing step fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(600);

impl Harness {
    /// The harness and the supervisor to run next to it (with `tokio::join!`).
    fn new() -> (
        Harness,
        impl std::future::Future<Output = Result<(), SuperviseError>>,
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(layout.run()).expect("run dir");
        let world = Arc::new(Mutex::new(World {
            release: "1.0.0-1".into(),
            ..World::default()
        }));
        let (news_tx, news) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let (reload, reloads) = mpsc::channel(1);
        let fake = Fake {
            world: world.clone(),
            news: news_tx,
        };
        let shutdown = async move {
            let _ = stopped.await;
            "SIGTERM"
        };
        let sup = run_with(layout.clone(), fake, shutdown, reloads);
        let harness = Harness {
            world,
            news,
            stop: Some(stop),
            reload,
            layout,
            _dir: dir,
        };
        (harness, sup)
    }

    /// The next thing a fake was asked to do, and when.
    async fn next(&mut self) -> (Instant, Did) {
        match tokio::time::timeout(PATIENCE, self.news.recv()).await {
            Ok(Some(news)) => news,
            Ok(None) => panic!("the supervisor ended"),
            Err(_) => panic!("nothing happened for {PATIENCE:?}"),
        }
    }

    /// Asserts the next steps are `expected`, all at the same instant; returns it.
    async fn expect(&mut self, expected: &[Did]) -> Instant {
        let mut at = None;
        for want in expected {
            let (when, did) = self.next().await;
            assert_eq!(did, *want, "expected {expected:?}");
            assert!(at.is_none_or(|at| at == when), "{did:?} came later");
            at = Some(when);
        }
        at.expect("at least one step")
    }

    /// Waits through the start: Postgres, the mirror, coderd 1.
    async fn started(&mut self) {
        self.expect(&[Did::StartDb, Did::StartMirror, Did::StartCoderd(1)])
            .await;
    }

    /// Coderd `n` exits by itself now (or reports a stop late); returns when.
    fn exit(&self, n: u32, how: &str) -> Instant {
        let report = take_exit(&mut lock(&self.world), n).expect("coderd n has not exited");
        report(how.into());
        Instant::now()
    }

    /// Crashes coderd `n` and returns the delay until coderd `n + 1` starts.
    async fn crash(&mut self, n: u32) -> Duration {
        let crashed = self.exit(n, "exit status: 1");
        let (at, did) = self.next().await;
        assert_eq!(did, Did::StartCoderd(n + 1));
        at - crashed
    }

    fn set_healthy(&self, healthy: bool) {
        lock(&self.world).healthy = healthy;
    }

    /// The state file as the supervisor last wrote it.
    fn state(&self) -> State {
        State::read(&self.layout.state_file()).expect("state file")
    }

    /// Asks the supervisor to stop (as SIGTERM does).
    fn shut_down(&mut self) {
        drop(self.stop.take());
    }
}

/// Asserts `delay` is `secs` seconds (the paused clock fires timers on the millisecond).
fn assert_delay(delay: Duration, secs: u64) {
    let want = Duration::from_secs(secs);
    assert!(
        delay >= want && delay < want + Duration::from_millis(10),
        "restarted after {delay:?}, expected {want:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_crashing_coderd_is_restarted_after_growing_capped_delays() {
    let (mut h, sup) = Harness::new();
    let test = async move {
        h.started().await;
        let mut delays = Vec::new();
        for n in 1..=8 {
            delays.push(h.crash(n).await);
        }
        for (delay, secs) in delays.iter().zip([1, 2, 4, 8, 16, 30, 30, 30]) {
            assert_delay(*delay, secs);
        }
        let state = h.state();
        assert_eq!(state.coderd.restarts, 8);
        assert_eq!(state.coderd.state, Phase::Running);
        assert_eq!(state.coderd.last_exit.as_deref(), Some("exit status: 1"));
        h.shut_down();
        h
    };
    let (result, _h) = tokio::join!(sup, test);
    result.expect("supervisor");
}

#[tokio::test(start_paused = true)]
async fn the_backoff_starts_over_after_a_healthy_minute_only() {
    let (mut h, sup) = Harness::new();
    let test = async move {
        h.started().await;
        for (n, secs) in [(1, 1), (2, 2), (3, 4)] {
            assert_delay(h.crash(n).await, secs);
        }
        // Healthy for half a minute: not long enough to forget the crashes.
        h.set_healthy(true);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(h.state().coderd.healthy, "the probe did not report healthy");
        assert_delay(h.crash(4).await, 8);
        // Healthy for over a minute: the next crash is restarted after the first delay,
        // and the doubling starts over.
        tokio::time::sleep(Duration::from_secs(70)).await;
        assert_delay(h.crash(5).await, 1);
        assert_delay(h.crash(6).await, 2);
        h.shut_down();
        h
    };
    let (result, _h) = tokio::join!(sup, test);
    result.expect("supervisor");
}

#[tokio::test(start_paused = true)]
async fn a_reload_restarts_coderd_at_once_without_counting_a_crash() {
    let (mut h, sup) = Harness::new();
    let test = async move {
        h.started().await;
        assert_delay(h.crash(1).await, 1);
        lock(&h.world).release = "1.1.0-2".into();
        h.reload.send("SIGHUP").await.expect("reload");
        let asked = Instant::now();
        let at = h
            .expect(&[
                Did::StopMirror,
                Did::StartMirror,
                Did::StopCoderd(2),
                Did::StartCoderd(3),
            ])
            .await;
        assert!(at - asked < Duration::from_millis(10), "reload waited");
        let state = h.state();
        assert_eq!(state.coderd.restarts, 1, "the reload counted as a restart");
        assert_eq!(state.coderd.state, Phase::Running);
        assert_eq!(state.release.as_deref(), Some("1.1.0-2"));
        assert_eq!(state.mirror.restarts, 0);
        // The backoff neither started over nor grew: the next crash waits 2 s.
        assert_delay(h.crash(3).await, 2);
        h.shut_down();
        h
    };
    let (result, _h) = tokio::join!(sup, test);
    result.expect("supervisor");
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_coderd_then_the_mirror_then_postgres() {
    let (mut h, sup) = Harness::new();
    let test = async move {
        h.started().await;
        h.set_healthy(true);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(h.state().ready, "never ready");
        h.shut_down();
        h
    };
    let (result, mut h) = tokio::join!(sup, test);
    result.expect("supervisor");
    h.expect(&[Did::StopCoderd(1), Did::StopMirror, Did::StopDb])
        .await;
    let state = h.state();
    for phase in [state.coderd.state, state.mirror.state, state.postgres.state] {
        assert_eq!(phase, Phase::Stopped);
    }
    assert!(!state.ready);
    assert_eq!(state.coderd.pid, None);
}

#[tokio::test(start_paused = true)]
async fn the_late_exit_of_a_coderd_up_stopped_is_not_a_crash() {
    let (mut h, sup) = Harness::new();
    let test = async move {
        lock(&h.world).hold_exits = true;
        h.started().await;
        h.reload.send("SIGHUP").await.expect("reload");
        h.expect(&[
            Did::StopMirror,
            Did::StartMirror,
            Did::StopCoderd(1),
            Did::StartCoderd(2),
        ])
        .await;
        // coderd 1 reports its exit only now, while coderd 2 runs.
        h.exit(1, "signal: 15 (SIGTERM)");
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(
            h.news.try_recv().is_err(),
            "coderd 2 was stopped or restarted"
        );
        let state = h.state();
        assert_eq!(state.coderd.state, Phase::Running);
        assert_eq!(state.coderd.restarts, 0);
        assert_eq!(state.coderd.last_exit, None);
        // coderd 2's own exit is a crash.
        assert_delay(h.crash(2).await, 1);
        assert_eq!(h.state().coderd.restarts, 1);
        h.shut_down();
        h
    };
    let (result, _h) = tokio::join!(sup, test);
    result.expect("supervisor");
}

#[tokio::test(start_paused = true)]
async fn coderd_stops_with_a_dead_database_and_starts_after_it() {
    let (mut h, sup) = Harness::new();
    let test = async move {
        h.started().await;
        lock(&h.world).db_down = true;
        let died = Instant::now();
        let noticed = h.expect(&[Did::StopCoderd(1)]).await;
        assert!(noticed - died <= Duration::from_millis(510), "noticed late");
        let back = h.expect(&[Did::StartDb, Did::StartCoderd(2)]).await;
        assert_delay(back - noticed, 1);
        let state = h.state();
        assert_eq!(state.postgres.restarts, 1);
        assert_eq!(state.postgres.state, Phase::Running);
        assert_eq!(state.coderd.state, Phase::Running);
        h.shut_down();
        h
    };
    let (result, _h) = tokio::join!(sup, test);
    result.expect("supervisor");
}
