//! [`Embedded`]: the appliance's own PostgreSQL server, run from the bundle's tree with
//! `postgresql_embedded` (no downloads: `trust_installation_dir`).
//!
//! The library's defaults lose data, so every one that matters is overridden: the data
//! directory is persistent (`temporary: false`), fsync is on (it passes `-F` to the
//! server), the superuser password is stored once and re-used, and the server listens on
//! 127.0.0.1 and a private socket directory only. initdb's `password` auth is replaced by
//! a managed `pg_hba.conf` that requires SCRAM-SHA-256.

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airgap_tool::Tool;
use postgresql_embedded::{PostgreSQL, Settings, VersionReq};
use sqlx::Connection;

use super::error::one_line;
use super::{external, secret, PgError, Result, SecretUrl, Tree};

/// The bootstrap superuser initdb creates.
const SUPERUSER: &str = "postgres";
/// The role and database coderd uses.
const CODER: &str = "coder";
/// The superuser password file in the secrets directory.
const SUPERUSER_SECRET: &str = "postgres.password";
/// The `coder` role's password file in the secrets directory.
const CODER_SECRET: &str = "coder.password";
/// Longest Unix socket path Linux accepts (sun_path is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The `pg_hba.conf` the appliance manages: SCRAM for the socket and 127.0.0.1 only.
const PG_HBA: &str = "\
# Managed by coder-airgap: rewritten on every start.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
";

/// Where and how to run the embedded server.
#[derive(Debug, Clone)]
pub struct EmbeddedSettings {
    /// The PostgreSQL installation to run.
    pub tree: Tree,
    /// The cluster's data directory (created by initdb on first start; must be owned by
    /// the service user).
    pub data_dir: PathBuf,
    /// Directory for the Unix socket; short (a socket path is at most 107 bytes) and made
    /// of `[A-Za-z0-9/._+-]` (pg_ctl passes it through a shell).
    pub socket_dir: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Directory for `postgres.password` and `coder.password` (created 0700, files 0600).
    pub secrets_dir: PathBuf,
}

/// A running embedded server. Dropping it without [`Embedded::stop`] still stops the
/// server (fast shutdown, blocking), so a failed `install` does not leave it behind.
/// `Debug` leaves the passwords out.
pub struct Embedded {
    /// Never dropped: the library's `Drop` would signal whatever pid a stale
    /// postmaster.pid names. [`Embedded`]'s own `Drop` checks the pid first.
    pg: ManuallyDrop<PostgreSQL>,
    settings: EmbeddedSettings,
    superuser_password: String,
    coder_password: String,
    initialized: bool,
}

impl Embedded {
    /// Starts the server, initialising the cluster on first use: initdb with a random
    /// superuser password (stored in `secrets_dir/postgres.password`), then role `coder`
    /// (LOGIN, password in `secrets_dir/coder.password`) and database `coder` owned by
    /// it. Later starts re-use both passwords. A stale `postmaster.pid` left by a crash is
    /// cleared. Fails with [`PgError::RunningAsRoot`] as root and
    /// [`PgError::AlreadyRunning`] when a postmaster already serves `data_dir`.
    pub async fn start(settings: EmbeddedSettings) -> Result<Embedded> {
        if crate::privilege::is_root() {
            return Err(PgError::RunningAsRoot);
        }
        check_socket_dir(&settings.socket_dir, settings.port)?;
        if let Some(pid) = live_postmaster(&settings.data_dir) {
            return Err(PgError::AlreadyRunning {
                data_dir: settings.data_dir,
                pid,
            });
        }
        prepare_dirs(&settings)?;
        let fresh = !settings.data_dir.join("postgresql.conf").exists();
        let su_file = settings.secrets_dir.join(SUPERUSER_SECRET);
        let superuser_password = superuser_password(&settings, &su_file, fresh)?;
        let mut pg = PostgreSQL::new(library_settings(&settings, &superuser_password, su_file));
        let clock = Instant::now();
        pg.setup().await.map_err(|e| library_error("initdb", &e))?;
        if fresh {
            tracing::info!("initdb took {:?}", clock.elapsed());
        }
        write_hba(&settings.data_dir)?;
        let stale = remove_stale_locks(&settings)?;
        let mut embedded = Embedded {
            pg: ManuallyDrop::new(pg),
            settings,
            superuser_password,
            coder_password: String::new(),
            initialized: fresh,
        };
        embedded.start_server(stale).await?;
        embedded.coder_password = embedded.ensure_coder().await?;
        Ok(embedded)
    }

    /// Runs `pg_ctl start -w`. After a crash the old backends may hold the shared
    /// memory for a moment, so a start after a stale pid file is retried for ~10 s.
    async fn start_server(&mut self, after_crash: bool) -> Result<()> {
        let clock = Instant::now();
        let attempts = if after_crash { 20 } else { 1 };
        for attempt in 1..=attempts {
            match self.pg.start().await {
                Ok(()) => {
                    tracing::info!("postgres started in {:?}", clock.elapsed());
                    return Ok(());
                }
                Err(e) if attempt == attempts => return Err(self.start_error(&e)),
                Err(e) => {
                    tracing::debug!("start attempt {attempt} failed: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        Ok(())
    }

    /// The most useful line for a failed start, from the server's own log.
    fn start_error(&self, e: &postgresql_embedded::Error) -> PgError {
        match startup_failure(&self.settings.data_dir) {
            Some(message) => PgError::Tool {
                tool: "postgres".into(),
                message,
            },
            None => library_error("pg_ctl start", e),
        }
    }

    /// Creates role `coder` and database `coder` when missing, and (re)sets the role's
    /// password from `coder.password` so the file is always the truth.
    async fn ensure_coder(&self) -> Result<String> {
        let path = self.settings.secrets_dir.join(CODER_SECRET);
        let (password, _) = secret::load_or_create(&path)?;
        let mut conn = external::connect_once(&self.admin_url()?).await?;
        let role_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(CODER)
                .fetch_one(&mut conn)
                .await?;
        let verb = if role_exists { "ALTER" } else { "CREATE" };
        let sql = format!(
            "{verb} ROLE {CODER} LOGIN PASSWORD {}",
            quote_literal(&password)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
        let db_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(CODER)
                .fetch_one(&mut conn)
                .await?;
        if !db_exists {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {CODER} OWNER {CODER}"
            )))
            .execute(&mut conn)
            .await?;
        }
        conn.close().await?;
        Ok(password)
    }

    /// The URL coderd uses (`CODER_PG_CONNECTION_URL`): role `coder` over TCP on
    /// 127.0.0.1, no TLS (loopback only).
    pub fn coder_url(&self) -> Result<SecretUrl> {
        self.url(CODER, &self.coder_password, CODER)
    }

    /// A superuser URL for the appliance's own maintenance (database `postgres`).
    pub fn admin_url(&self) -> Result<SecretUrl> {
        self.url(SUPERUSER, &self.superuser_password, SUPERUSER)
    }

    fn url(&self, user: &str, password: &str, database: &str) -> Result<SecretUrl> {
        local_url(self.settings.port, user, password, database)
    }

    /// The admin and coderd URLs of a server already running from `settings.data_dir`
    /// (started by `up`), read from the password files; `None` when no postmaster serves
    /// that directory. Lets `install` and `rollback` work beside a running appliance.
    pub fn running_urls(settings: &EmbeddedSettings) -> Result<Option<(SecretUrl, SecretUrl)>> {
        if live_postmaster(&settings.data_dir).is_none() {
            return Ok(None);
        }
        let read = |name: &str| {
            let path = settings.secrets_dir.join(name);
            secret::load(&path)?.ok_or_else(|| {
                PgError::io(
                    "missing password file",
                    &path,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )
            })
        };
        let port = settings.port;
        let admin = local_url(port, SUPERUSER, &read(SUPERUSER_SECRET)?, SUPERUSER)?;
        let coder = local_url(port, CODER, &read(CODER_SECRET)?, CODER)?;
        Ok(Some((admin, coder)))
    }

    /// True when this start ran initdb (a new cluster).
    pub fn initialized(&self) -> bool {
        self.initialized
    }

    /// The postmaster's pid from `data_dir/postmaster.pid`, if that process is alive and
    /// is a postgres serving this data directory.
    pub fn postmaster_pid(&self) -> Option<u32> {
        live_postmaster(&self.settings.data_dir)
    }

    /// True when the postmaster is alive.
    pub fn is_running(&self) -> bool {
        self.postmaster_pid().is_some()
    }

    /// Stops the server (`pg_ctl stop -m fast -w`: open sessions are rolled back, then a
    /// clean shutdown checkpoint). A server that is already gone is not an error.
    pub async fn stop(self) -> Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        let clock = Instant::now();
        self.pg
            .stop()
            .await
            .map_err(|e| library_error("pg_ctl stop", &e))?;
        tracing::info!("postgres stopped in {:?}", clock.elapsed());
        Ok(())
    }
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("settings", &self.settings)
            .field("initialized", &self.initialized)
            .finish_non_exhaustive()
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if !self.is_running() {
            return;
        }
        tracing::warn!("stopping PostgreSQL on drop");
        // pg_ctl needs nothing from the environment with -D; its own -w wait gives up
        // after 60 s, the deadline is a backstop.
        let stopped = Tool::new("pg_ctl stop", self.settings.tree.bin("pg_ctl"))
            .args(["stop", "-m", "fast", "-w", "-D"])
            .arg(&self.settings.data_dir)
            .timeout(Duration::from_secs(90))
            .run();
        if let Err(e) = stopped {
            tracing::warn!("{e}");
        }
    }
}

/// The superuser password: created on a fresh cluster, required on an existing one.
fn superuser_password(settings: &EmbeddedSettings, file: &Path, fresh: bool) -> Result<String> {
    if fresh {
        return Ok(secret::load_or_create(file)?.0);
    }
    secret::load(file)?.ok_or_else(|| PgError::SecretMissing {
        data_dir: settings.data_dir.clone(),
        secret: file.to_path_buf(),
    })
}

/// The `postgresql_embedded` settings, built in full (its `Settings::new()` leaves temp
/// directories behind).
fn library_settings(s: &EmbeddedSettings, password: &str, password_file: PathBuf) -> Settings {
    Settings {
        releases_url: String::new(),
        version: VersionReq::STAR,
        installation_dir: s.tree.installation_dir().to_path_buf(),
        password_file,
        data_dir: s.data_dir.clone(),
        host: "127.0.0.1".into(),
        port: s.port,
        username: SUPERUSER.into(),
        password: password.into(),
        temporary: false,
        timeout: Some(Duration::from_secs(120)),
        configuration: server_configuration(),
        trust_installation_dir: true,
        socket_dir: Some(s.socket_dir.clone()),
    }
}

/// Server settings passed as `-c` options (they override postgresql.conf).
fn server_configuration() -> HashMap<String, String> {
    [
        // The library passes -F (fsync off); a later -c wins.
        ("fsync", "on"),
        ("listen_addresses", "127.0.0.1"),
        ("password_encryption", "scram-sha-256"),
        // Logs rotate daily into data_dir/log, one file per weekday, overwritten weekly.
        ("logging_collector", "on"),
        ("log_filename", "postgresql-%a.log"),
        ("log_truncate_on_rotation", "on"),
        ("log_rotation_age", "1d"),
        ("log_rotation_size", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Rejects a socket directory pg_ctl or the kernel cannot use.
fn check_socket_dir(dir: &Path, port: u16) -> Result<()> {
    let text = dir.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._+-".contains(c);
    if !dir.is_absolute() || !text.chars().all(safe) {
        return Err(PgError::SocketDir {
            path: dir.into(),
            reason: "must be an absolute path of letters, digits and / . _ + -",
        });
    }
    let socket_len = text.len() + format!("/.s.PGSQL.{port}").len();
    if socket_len > MAX_SOCKET_PATH {
        return Err(PgError::SocketDir {
            path: dir.into(),
            reason:
                "is too long for a Unix socket (107 bytes with the socket name): use a shorter path",
        });
    }
    Ok(())
}

/// Creates the secrets (0700), socket (0700) and data directories' parents.
fn prepare_dirs(s: &EmbeddedSettings) -> Result<()> {
    for dir in [&s.secrets_dir, &s.socket_dir] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| PgError::io("cannot create", dir, e))?;
    }
    if let Some(parent) = s.data_dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| PgError::io("cannot create", parent, e))?;
    }
    if s.data_dir.exists() {
        // initdb makes it 0700; a restored or hand-made one may be looser, and postgres
        // refuses anything but 0700/0750.
        let mode = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(&s.data_dir, mode)
            .map_err(|e| PgError::io("cannot chmod", &s.data_dir, e))?;
    }
    Ok(())
}

/// Writes the managed pg_hba.conf (mode 0600) when it differs, durably.
fn write_hba(data_dir: &Path) -> Result<()> {
    let path = data_dir.join("pg_hba.conf");
    if std::fs::read_to_string(&path).is_ok_and(|c| c == PG_HBA) {
        return Ok(());
    }
    Ok(airgap_fsutil::atomic_write_mode(
        &path,
        PG_HBA.as_bytes(),
        0o600,
    )?)
}

/// The pid in `data_dir/postmaster.pid` when that process is alive and is a postgres
/// serving `data_dir` (its working directory), so a recycled pid is not mistaken for it.
/// A URL for `user` on the loopback listener (no TLS: loopback only).
fn local_url(port: u16, user: &str, password: &str, database: &str) -> Result<SecretUrl> {
    SecretUrl::parse(&format!(
        "postgres://{user}:{password}@127.0.0.1:{port}/{database}?sslmode=disable"
    ))
}

fn live_postmaster(data_dir: &Path) -> Option<u32> {
    let pid = recorded_pid(&data_dir.join("postmaster.pid"))?;
    let proc_dir = live_postgres(pid)?;
    match (
        std::fs::read_link(proc_dir.join("cwd")),
        data_dir.canonicalize(),
    ) {
        (Ok(cwd), Ok(dir)) => (cwd == dir).then_some(pid),
        // Not ours to inspect (another user): a live postgres with this pid, assume yes.
        _ => Some(pid),
    }
}

/// False for a zombie or dead process (`Z`/`X` in /proc/PID/stat): a killed postmaster
/// whose parent has not reaped it yet still has a /proc entry.
fn alive_state(proc_dir: &Path) -> bool {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

/// `/proc/PID` when `pid` is a live (not zombie) process named postgres.
fn live_postgres(pid: u32) -> Option<PathBuf> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let comm = std::fs::read_to_string(proc_dir.join("comm")).ok()?;
    (comm.trim() == "postgres" && alive_state(&proc_dir)).then_some(proc_dir)
}

/// The pid on the first line of a postgres lock file (postmaster.pid, .s.PGSQL.N.lock).
fn recorded_pid(lock_file: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(lock_file).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// After a crash: removes `postmaster.pid` when its process is gone, and the socket's
/// lock file when its process is gone (postgres itself treats an unreaped zombie as
/// alive and refuses to start). Returns whether there was a stale postmaster.pid.
fn remove_stale_locks(s: &EmbeddedSettings) -> Result<bool> {
    let pid_file = s.data_dir.join("postmaster.pid");
    let socket_lock = s.socket_dir.join(format!(".s.PGSQL.{}.lock", s.port));
    let stale = pid_file.exists() && live_postmaster(&s.data_dir).is_none();
    for lock in [&pid_file, &socket_lock] {
        if !lock.exists() || recorded_pid(lock).and_then(live_postgres).is_some() {
            continue;
        }
        tracing::warn!(
            "removing stale {} (pid {:?} is not running): the server did not shut down cleanly",
            lock.display(),
            recorded_pid(lock)
        );
        std::fs::remove_file(lock).map_err(|e| PgError::io("cannot remove", lock, e))?;
    }
    Ok(stale)
}

/// Why the last start failed: from `start.log`, or — when the logging collector had
/// taken over — from the newest file in `log/`.
fn startup_failure(data_dir: &Path) -> Option<String> {
    let start_log = tail(&data_dir.join("start.log"));
    let before_collector = start_log.rsplit("redirecting log output").next()?;
    if let Some(found) = failure_in(before_collector) {
        return Some(found);
    }
    let newest_log = std::fs::read_dir(data_dir.join("log"))
        .ok()?
        .filter_map(|e| e.ok())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?
        .path();
    let text = tail(&newest_log);
    failure_in(text.rsplit("starting PostgreSQL").next()?)
}

/// The FATAL/PANIC line of one server run, preceded by a bind error if there is one
/// (the FATAL alone only says "could not create any TCP/IP sockets").
fn failure_in(run: &str) -> Option<String> {
    let message = |l: &str| {
        let m = l.split_once(']').map_or(l, |(_, m)| m).trim();
        m.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let fatal = run
        .lines()
        .rev()
        .find(|l| l.contains("FATAL:") || l.contains("PANIC:"))?;
    match run.lines().find(|l| l.contains("could not bind")) {
        Some(bind) => Some(format!("{} ({})", message(bind), message(fatal))),
        None => Some(message(fatal)),
    }
}

/// The last 64 KiB of a log file (logs rotate daily but can still be large).
fn tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// One line from a `postgresql_embedded` error: its stderr part when there is one.
fn library_error(tool: &str, e: &postgresql_embedded::Error) -> PgError {
    let text = e.to_string();
    let stderr = text.split_once("stderr=").map(|(_, s)| s.trim());
    let message = match stderr {
        Some(s) if !s.is_empty() => one_line(s),
        _ => one_line(&text),
    };
    PgError::Tool {
        tool: tool.into(),
        message,
    }
}

/// A SQL string literal (`'it''s'`).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_dir_rules() {
        assert!(check_socket_dir(Path::new("/run/coder-airgap/pg"), 5432).is_ok());
        assert!(check_socket_dir(Path::new("relative"), 5432).is_err());
        assert!(check_socket_dir(Path::new("/tmp/with space"), 5432).is_err());
        let long = format!("/{}", "a".repeat(100));
        let msg = check_socket_dir(Path::new(&long), 5432)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("too long"), "{msg}");
    }

    #[test]
    fn literal_quoting() {
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
