//! Tests that run a real PostgreSQL from a tree (Debian's `/usr/lib/postgresql/15/bin`,
//! or `CODER_AIRGAP_PG_BINDIR`).
//!
//! PostgreSQL refuses root and the test binary usually runs as root, so each server test
//! re-runs itself (`--exact NAME`) as the unprivileged user `coder-airgap-test`, through
//! the same `privilege::command_as` that `install`/`up` use, and asserts that exactly one
//! test passed in the child. The child does the work in a temp dir it owns under /tmp.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::ledger::{self, NewBackup, NewInstall, NewUpgrade, Outcome};
use super::*;
use crate::privilege;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

const TEST_USER: &str = "coder-airgap-test";
const MARKER: &str = "CODER_AIRGAP_TEST_DROPPED";

/// When root: runs `test` again as the test user and asserts it passed; returns false.
/// When not root: returns true, and the caller does the work.
fn run_unprivileged(test: &str) -> std::result::Result<bool, Box<dyn std::error::Error>> {
    if !privilege::is_root() {
        return Ok(true);
    }
    assert!(
        std::env::var_os(MARKER).is_none(),
        "still root after dropping"
    );
    // Concurrent useradd runs can corrupt each other (seen: two uids for one name).
    static CREATE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let user = {
        let _guard = CREATE.lock().unwrap_or_else(|p| p.into_inner());
        privilege::ensure_service_user(TEST_USER)?
    };
    let exe = std::env::current_exe()?;
    let args = ["--exact", test, "--nocapture", "--test-threads=1"];
    let out = privilege::command_as(&user, &exe, args, MARKER)
        .current_dir("/")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("--- {test} as {TEST_USER} ---\n{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{test} failed as {TEST_USER}");
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run in the child"
    );
    Ok(false)
}

fn block_on<F: Future<Output = TestResult>>(fut: F) -> TestResult {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(fut)
}

fn tree() -> Result<Tree> {
    let dir = std::env::var_os("CODER_AIRGAP_PG_BINDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    Tree::from_bindir(dir)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn settings(dir: &Path) -> std::result::Result<EmbeddedSettings, Box<dyn std::error::Error>> {
    Ok(EmbeddedSettings {
        tree: tree()?,
        data_dir: dir.join("data"),
        socket_dir: dir.join("sock"),
        port: free_port()?,
        secrets_dir: dir.join("secrets"),
    })
}

fn work_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("cagpg").tempdir_in("/tmp")
}

async fn show(conn: &mut PgConnection, setting: &str) -> Result<String> {
    let sql = format!("SHOW {setting}");
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await?)
}

async fn count_rows(url: &str) -> Result<i64> {
    let mut conn = PgConnection::connect(url).await?;
    let n = sqlx::query_scalar("SELECT count(*) FROM public.survivors")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(n)
}

#[test]
fn embedded_lifecycle() -> TestResult {
    if run_unprivileged("postgres::tests::embedded_lifecycle")? {
        block_on(lifecycle())?;
    }
    Ok(())
}

async fn lifecycle() -> TestResult {
    let dir = work_dir()?;
    let settings = settings(dir.path())?;
    println!(
        "tree {} version {}",
        settings.tree.bin_dir().display(),
        settings.tree.version().await?
    );

    let clock = Instant::now();
    let pg = Embedded::start(settings.clone()).await?;
    println!(
        "timing: first start (initdb + start + role/db) {:?}",
        clock.elapsed()
    );
    assert!(pg.initialized());
    assert_first_start(&pg, &settings).await?;

    let clock = Instant::now();
    pg.stop().await?;
    println!("timing: stop {:?}", clock.elapsed());
    assert!(!settings.data_dir.join("postmaster.pid").exists());

    let clock = Instant::now();
    let pg = Embedded::start(settings.clone()).await?;
    println!("timing: start (existing cluster) {:?}", clock.elapsed());
    assert!(!pg.initialized(), "second start must not initdb");
    assert_eq!(
        count_rows(pg.coder_url()?.expose()).await?,
        1,
        "data survives stop/start"
    );
    match Embedded::start(settings.clone()).await {
        Err(e @ PgError::AlreadyRunning { .. }) => println!("double start: {e}"),
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }

    crash_and_recover(pg, &settings).await
}

async fn assert_first_start(pg: &Embedded, settings: &EmbeddedSettings) -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    for name in ["postgres.password", "coder.password"] {
        let mode = std::fs::metadata(settings.secrets_dir.join(name))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    assert!(pg.is_running());
    assert!(pg.postmaster_pid().is_some());

    let mut conn = PgConnection::connect(pg.coder_url()?.expose()).await?;
    assert_eq!(show(&mut conn, "fsync").await?, "on");
    assert_eq!(show(&mut conn, "listen_addresses").await?, "127.0.0.1");
    assert_eq!(
        show(&mut conn, "password_encryption").await?,
        "scram-sha-256"
    );
    let db: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(db, "coder");
    sqlx::raw_sql("CREATE TABLE public.survivors (x int); INSERT INTO public.survivors VALUES (1)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;

    let mut admin = PgConnection::connect(pg.admin_url()?.expose()).await?;
    let methods: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT auth_method FROM pg_hba_file_rules")
            .fetch_all(&mut admin)
            .await?;
    assert_eq!(methods, ["scram-sha-256"]);
    let scram: bool = sqlx::query_scalar(
        "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'coder'",
    )
    .fetch_one(&mut admin)
    .await?;
    assert!(scram, "coder's password is stored as SCRAM");
    let owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = 'coder'",
    )
    .fetch_one(&mut admin)
    .await?;
    assert_eq!(owner, "coder");
    admin.close().await?;

    // The socket works too (scram as well), and a wrong password fails.
    let password = std::fs::read_to_string(settings.secrets_dir.join("coder.password"))?;
    let via_socket = sqlx::postgres::PgConnectOptions::new()
        .socket(&settings.socket_dir)
        .port(settings.port)
        .username("coder")
        .password(password.trim())
        .database("coder");
    PgConnection::connect_with(&via_socket)
        .await?
        .close()
        .await?;
    let wrong = SecretUrl::parse(&pg.coder_url()?.expose().replace(password.trim(), "wrong"))?;
    match check_external(&wrong).await {
        Err(e @ PgError::BadPassword { .. }) => println!("wrong password: {e}"),
        other => panic!("expected BadPassword, got {other:?}"),
    }
    Ok(())
}

async fn crash_and_recover(pg: Embedded, settings: &EmbeddedSettings) -> TestResult {
    let mut conn = PgConnection::connect(pg.coder_url()?.expose()).await?;
    sqlx::query("INSERT INTO public.survivors VALUES (2)")
        .execute(&mut conn)
        .await?;
    let pid = pg.postmaster_pid().ok_or("no postmaster pid")?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL)?;
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(5);
    while pg.is_running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!pg.is_running(), "postmaster survived SIGKILL");
    assert!(
        settings.data_dir.join("postmaster.pid").exists(),
        "pid file should be stale"
    );
    drop(pg);

    let clock = Instant::now();
    let pg = Embedded::start(settings.clone()).await?;
    println!("timing: start after kill -9 {:?}", clock.elapsed());
    assert_eq!(
        count_rows(pg.coder_url()?.expose()).await?,
        2,
        "committed rows survive a crash"
    );
    pg.stop().await?;
    Ok(())
}

#[test]
fn schema_ledger_dump_and_checks() -> TestResult {
    if run_unprivileged("postgres::tests::schema_ledger_dump_and_checks")? {
        block_on(schema_ledger_dump())?;
    }
    Ok(())
}

async fn schema_ledger_dump() -> TestResult {
    let dir = work_dir()?;
    let mut settings = settings(dir.path())?;
    // A busy port fails in one line after initdb; the next start finishes the setup.
    let busy = std::net::TcpListener::bind(("127.0.0.1", settings.port))?;
    match Embedded::start(settings.clone()).await {
        Err(e @ PgError::Tool { .. }) => {
            println!("busy port: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains("Address already in use") && !msg.contains('\n'),
                "{msg}"
            );
        }
        other => panic!("expected a start failure, got {other:?}"),
    }
    drop(busy);
    settings.port = free_port()?;
    let pg = Embedded::start(settings.clone()).await?;
    assert!(!pg.initialized());
    let url = pg.coder_url()?;

    migrate(&url).await?;
    migrate(&url).await?;
    assert_tables_in_ledger_schema(&url).await?;
    ledger_round_trip(&url).await?;
    dump_drop_restore(&settings.tree, &url, dir.path()).await?;
    external_checks(&pg).await?;
    pg.stop().await?;
    Ok(())
}

async fn assert_tables_in_ledger_schema(url: &SecretUrl) -> TestResult {
    let mut conn = PgConnection::connect(url.expose()).await?;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables
         WHERE table_schema IN ('public', 'coder_airgap') ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await?;
    conn.close().await?;
    let expected: Vec<(String, String)> = [
        "_sqlx_migrations",
        "backups",
        "certificates",
        "installs",
        "upgrades",
    ]
    .iter()
    .map(|t| ("coder_airgap".to_string(), t.to_string()))
    .collect();
    assert_eq!(
        tables, expected,
        "everything in coder_airgap, nothing in public"
    );
    Ok(())
}

async fn ledger_round_trip(url: &SecretUrl) -> TestResult {
    let pool = connect(url).await?;
    let install = NewInstall {
        bundle: "coder-airgap".into(),
        version: "2.20.0".into(),
        sequence: 7,
        release_dir: "/opt/coder-airgap/releases/7".into(),
        installed_by: "root".into(),
        previous_release: None,
        outcome: Outcome::Succeeded,
    };
    let id = ledger::record_install(&pool, &install).await?;
    let installs = ledger::list_installs(&pool).await?;
    assert_eq!(installs.len(), 1);
    assert_eq!((installs[0].id, &installs[0].record), (id, &install));
    let age = time::OffsetDateTime::now_utc() - installs[0].installed_at;
    assert!(age.whole_seconds().abs() < 60, "installed_at is now");

    let cert = ledger::Certificate {
        serial: "0a1b2c".into(),
        names: vec!["coder.example.internal".into(), "10.0.0.5".into()],
        not_after: time::macros::datetime!(2027-01-01 00:00 UTC),
        purpose: "coderd-tls".into(),
    };
    ledger::record_certificate(&pool, &cert).await?;
    ledger::record_certificate(&pool, &cert).await?;

    assert_eq!(ledger::latest_backup(&pool).await?, None);
    let mut backup = NewBackup {
        path: "/var/lib/coder-airgap/backups/1.dump".into(),
        sha256: "a".repeat(64),
        bytes: 1234,
        release: "7".into(),
        reason: "pre-upgrade".into(),
    };
    ledger::record_backup(&pool, &backup).await?;
    backup.path = "/var/lib/coder-airgap/backups/2.dump".into();
    let second = ledger::record_backup(&pool, &backup).await?;
    let latest = ledger::latest_backup(&pool).await?.ok_or("no backup")?;
    assert_eq!((latest.id, &latest.record), (second, &backup));

    let upgrade = NewUpgrade {
        from_version: "2.20.0".into(),
        to_version: "2.21.0".into(),
        backup_id: Some(second),
        outcome: Outcome::InProgress,
    };
    let up = ledger::record_upgrade(&pool, &upgrade).await?;
    ledger::finish_upgrade(&pool, up, Outcome::RolledBack).await?;
    assert!(ledger::finish_upgrade(&pool, up + 100, Outcome::Failed)
        .await
        .is_err());
    let (outcome, finished): (String, bool) = sqlx::query_as(
        "SELECT outcome, finished_at IS NOT NULL FROM coder_airgap.upgrades WHERE id = $1",
    )
    .bind(up)
    .fetch_one(&pool)
    .await?;
    assert_eq!((outcome.as_str(), finished), ("rolled_back", true));
    pool.close().await;
    Ok(())
}

async fn dump_drop_restore(tree: &Tree, url: &SecretUrl, dir: &Path) -> TestResult {
    let out = dir.join("backup.dump");
    let clock = Instant::now();
    let info = dump(tree, url, &out).await?;
    println!("timing: dump {:?} ({} bytes)", clock.elapsed(), info.bytes);
    assert_eq!(info.path, out);
    assert_eq!(info.bytes, std::fs::metadata(&out)?.len());
    assert!(!dir.join(".backup.dump.partial").exists());
    assert_eq!(info.sha256.len(), 64);

    let mut conn = PgConnection::connect(url.expose()).await?;
    sqlx::raw_sql("DROP TABLE coder_airgap.installs")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let pool = connect(url).await?;
    assert!(ledger::list_installs(&pool).await.is_err(), "table is gone");

    let clock = Instant::now();
    let restored = restore(tree, url, &out).await?;
    println!("timing: restore {:?}", clock.elapsed());
    assert_eq!(restored.sha256, info.sha256);
    assert_eq!(
        ledger::list_installs(&pool).await?.len(),
        1,
        "restore brings it back"
    );
    pool.close().await;

    let bad = SecretUrl::parse(&url.expose().replace("@127.0.0.1", "x@127.0.0.1"))?;
    match dump(tree, &bad, &dir.join("bad.dump")).await {
        Err(e @ PgError::Tool { .. }) => assert!(!e.to_string().contains('\n'), "{e}"),
        other => panic!("expected pg_dump to fail, got {other:?}"),
    }
    assert!(!dir.join(".bad.dump.partial").exists());
    Ok(())
}

async fn external_checks(pg: &Embedded) -> TestResult {
    let facts = check_external(&pg.coder_url()?).await?;
    assert_eq!(
        (facts.role.as_str(), facts.database.as_str()),
        ("coder", "coder")
    );
    assert!(
        facts.version_num >= 130_000 && !facts.superuser,
        "{facts:?}"
    );

    let mut admin = PgConnection::connect(pg.admin_url()?.expose()).await?;
    sqlx::raw_sql("CREATE ROLE weak LOGIN PASSWORD 'weakpw'")
        .execute(&mut admin)
        .await?;
    let weak = pg
        .coder_url()?
        .expose()
        .replace(&format!("coder:{}", coder_password(pg)?), "weak:weakpw");
    let weak = SecretUrl::parse(&weak)?;
    let err = check_external(&weak)
        .await
        .err()
        .ok_or("weak role passed")?;
    println!("weak role: {err}");
    assert!(
        err.to_string()
            .ends_with("GRANT CREATE ON DATABASE coder TO weak"),
        "{err}"
    );

    sqlx::raw_sql("GRANT CREATE ON DATABASE coder TO weak")
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let err = check_external(&weak)
        .await
        .err()
        .ok_or("weak role passed")?;
    println!("weak role, CREATE granted: {err}");
    assert!(
        err.to_string()
            .contains("GRANT CREATE ON SCHEMA public TO weak"),
        "{err}"
    );

    let missing = SecretUrl::parse(&pg.coder_url()?.expose().replace("/coder?", "/nosuchdb?"))?;
    match check_external(&missing).await {
        Err(e @ PgError::DatabaseMissing { .. }) => println!("missing db: {e}"),
        other => panic!("expected DatabaseMissing, got {other:?}"),
    }
    Ok(())
}

fn coder_password(pg: &Embedded) -> Result<String> {
    Ok(pg
        .coder_url()?
        .url()
        .password()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test]
#[ignore = "needs root: asserts that the embedded Postgres refuses to start as root"]
async fn root_refusal() -> TestResult {
    airgap_testkit::root::require_root();
    let dir = work_dir()?;
    match Embedded::start(settings(dir.path())?).await {
        Err(e @ PgError::RunningAsRoot) => {
            let msg = e.to_string();
            assert!(
                msg.contains("cannot run as root") && !msg.contains('\n'),
                "{msg}"
            );
        }
        other => panic!("expected RunningAsRoot, got {other:?}"),
    }
    assert!(!dir.path().join("data").exists(), "nothing created as root");
    Ok(())
}

#[test]
fn too_old_message() {
    let msg = PgError::TooOld {
        version: "12.17".into(),
    }
    .to_string();
    assert!(
        msg.starts_with("server is 12.17; coderd needs 13 or newer"),
        "{msg}"
    );
}
