//! A throwaway PostgreSQL 15 cluster from Debian's binaries (`/usr/lib/postgresql/15/bin`),
//! for tests that need a real external Postgres (the stand-in `coder server`, the
//! appliance's external-Postgres mode).
//!
//! Tests run as root and Postgres refuses to run as root, so the cluster runs as an
//! unprivileged system user ([`OS_USER`], created with `useradd --system` when missing) via
//! std's `CommandExt::uid/gid`. Everything lives under the directory given to
//! [`PgCluster::start`]: `data/` (owned by that user, 0700) and `run/` (its unix socket and
//! `postgres.log`). The server listens on 127.0.0.1 on a free port, with `trust`
//! authentication (fine for throwaway test data, never for anything real) and `fsync=off`.
//! Dropping a [`PgCluster`] stops it (`pg_ctl stop -m immediate`).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::tools::{clean_command, postgres_tree};

/// The unprivileged system user the cluster runs as.
pub const OS_USER: &str = "airgap-test";

/// The database superuser `initdb` creates (trust auth, no password).
pub const SUPERUSER: &str = "postgres";

/// Errors starting, querying or stopping a test cluster.
#[derive(Debug, thiserror::Error)]
pub enum PgClusterError {
    /// A file-system step failed.
    #[error("pgcluster: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: io::Error,
    },
    /// A program (initdb, pg_ctl, psql, useradd, kill) failed.
    #[error("pgcluster: {command} failed ({status}): {output}")]
    Command {
        /// The program and its main arguments.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr and stdout (and the server log for start failures).
        output: String,
    },
    /// The unprivileged user is missing or unusable, or the directory is not traversable.
    #[error("pgcluster: {0}")]
    Setup(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> PgClusterError {
    let what = what.into();
    move |source| PgClusterError::Io { what, source }
}

/// An OS user's name and numeric ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Looks `name` up in /etc/passwd.
pub fn lookup_user(name: &str) -> Result<Option<OsUser>, PgClusterError> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(io_err("read /etc/passwd"))?;
    Ok(passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [n, _, uid, gid, ..] if *n == name => Some(OsUser {
                name: name.to_string(),
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
            }),
            _ => None,
        }
    }))
}

/// Returns the user `name`, creating it as a system user (own group, no home, no login
/// shell) if it does not exist. Safe against concurrent callers in this process (a mutex;
/// `cargo test` runs one test binary at a time). Not against other processes: `useradd`
/// checks for the name before it locks the user database, so two concurrent runs both
/// succeed and the later one redefines the user with a new uid (the product's
/// `ensure_service_user` takes /etc/.pwd.lock for that reason). A `useradd` that finds
/// /etc/passwd locked is retried for up to 10 s.
pub fn ensure_os_user(name: &str) -> Result<OsUser, PgClusterError> {
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = CREATING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(user) = lookup_user(name)? {
            return Ok(user);
        }
        let output = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args([
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .output()
            .map_err(io_err("run useradd"))?;
        if !output.status.success() && Instant::now() >= deadline {
            return Err(command_failed(&format!("useradd {name}"), &output));
        }
        if !output.status.success() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn command_failed(command: &str, output: &Output) -> PgClusterError {
    PgClusterError::Command {
        command: command.to_string(),
        status: output.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        ),
    }
}

/// A running throwaway cluster. Stopped on drop.
#[derive(Debug)]
pub struct PgCluster {
    data_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    user: OsUser,
    running: bool,
}

impl PgCluster {
    /// Creates and starts a cluster under `dir` (which must exist; it is made 0755 so the
    /// unprivileged user can reach `data/` and `run/` inside it, and every parent must
    /// already be traversable by others, as /tmp is). Returns once it accepts connections.
    pub fn start(dir: &Path) -> Result<Self, PgClusterError> {
        let user = ensure_os_user(OS_USER)?;
        prepare_dir(dir)?;
        let data_dir = dir.join("data");
        let socket_dir = dir.join("run");
        for sub in [&data_dir, &socket_dir] {
            make_owned_dir(sub, &user)?;
        }
        let mut cluster = PgCluster {
            data_dir,
            socket_dir,
            port: 0,
            user,
            running: false,
        };
        cluster.initdb()?;
        cluster.start_on_free_port()?;
        Ok(cluster)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://USER@127.0.0.1:PORT/DB?sslmode=disable` (trust auth: no password).
    pub fn url(&self, db: &str, user: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// The database superuser's name ([`SUPERUSER`]).
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// The directory holding the unix socket (`.s.PGSQL.PORT`) and `postgres.log`.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The cluster's data directory (owned by [`OS_USER`]).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The OS user the server runs as.
    pub fn os_user(&self) -> &OsUser {
        &self.user
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.socket_dir.join("postgres.log")).unwrap_or_default()
    }

    /// Runs `sql` with psql as the superuser in database `db` (unaligned, tuples only, stops
    /// on the first error) and returns its stdout.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, PgClusterError> {
        let output = clean_command(bin("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, "-d", db, "-c", sql])
            .output()
            .map_err(io_err("run psql"))?;
        if !output.status.success() {
            return Err(command_failed(&format!("psql -c {sql:?}"), &output));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`). A no-op once stopped or killed.
    pub fn stop(&mut self) -> Result<(), PgClusterError> {
        if !self.running {
            return Ok(());
        }
        self.pg_ctl(&["stop", "-m", "fast", "-w"])?;
        self.running = false;
        Ok(())
    }

    /// Kills the postmaster with SIGKILL (a crash, as when a database host dies) and waits
    /// up to 10 s for it to be gone. Its backends notice and exit on their own.
    pub fn kill9(&mut self) -> Result<(), PgClusterError> {
        let pid = self.postmaster_pid()?;
        let output = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .output()
            .map_err(io_err("run kill"))?;
        if !output.status.success() {
            return Err(command_failed(&format!("kill -KILL {pid}"), &output));
        }
        self.running = false;
        wait_gone(pid, Duration::from_secs(10))
    }

    /// The postmaster's pid, from `data/postmaster.pid`.
    pub fn postmaster_pid(&self) -> Result<u32, PgClusterError> {
        let path = self.data_dir.join("postmaster.pid");
        let text = std::fs::read_to_string(&path).map_err(io_err("read postmaster.pid"))?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| PgClusterError::Setup(format!("no pid in {}", path.display())))
    }

    fn initdb(&self) -> Result<(), PgClusterError> {
        let data = self.data_dir.to_string_lossy().into_owned();
        let output = self
            .as_user(bin("initdb"))
            .args(["-D", &data, "-U", SUPERUSER, "--auth=trust"])
            .args(["--encoding=UTF8", "--locale=C", "--no-sync"])
            .output()
            .map_err(io_err("run initdb"))?;
        if !output.status.success() {
            return Err(command_failed("initdb", &output));
        }
        Ok(())
    }

    /// Picks a free port and starts; retries on a new port if another process took it.
    fn start_on_free_port(&mut self) -> Result<(), PgClusterError> {
        let mut last = None;
        for _ in 0..3 {
            self.port = free_port()?;
            self.write_settings()?;
            match self.pg_ctl(&["start", "-w", "-t", "30"]) {
                Ok(()) => {
                    self.running = true;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| PgClusterError::Setup("pg_ctl start never ran".into())))
    }

    /// Appends this start's settings to postgresql.conf (the last setting wins).
    fn write_settings(&self) -> Result<(), PgClusterError> {
        use std::io::Write;
        let conf = self.data_dir.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(io_err("open postgresql.conf"))?;
        writeln!(
            file,
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nfsync = off\nmax_connections = 50",
            self.port,
            self.socket_dir.display()
        )
        .map_err(io_err("write postgresql.conf"))
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), PgClusterError> {
        let log = self.socket_dir.join("postgres.log");
        let output = self
            .as_user(bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&log)
            .args(args)
            .output()
            .map_err(io_err("run pg_ctl"))?;
        if output.status.success() {
            return Ok(());
        }
        let mut err = command_failed(&format!("pg_ctl {}", args.join(" ")), &output);
        if let PgClusterError::Command { output, .. } = &mut err {
            output.push_str("\n--- postgres.log ---\n");
            output.push_str(&self.log());
        }
        Err(err)
    }

    /// A clean-env command that runs as the unprivileged user, in the socket directory.
    fn as_user(&self, program: PathBuf) -> Command {
        let mut cmd = clean_command(program);
        cmd.uid(self.user.uid)
            .gid(self.user.gid)
            .current_dir(&self.socket_dir);
        cmd
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        }
    }
}

fn bin(name: &str) -> PathBuf {
    postgres_tree().join("bin").join(name)
}

/// Makes `dir` 0755 and checks every parent lets others through.
fn prepare_dir(dir: &Path) -> Result<(), PgClusterError> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err(format!("chmod 0755 {}", dir.display())))?;
    let abs = std::fs::canonicalize(dir).map_err(io_err(format!("resolve {}", dir.display())))?;
    for parent in abs.ancestors().skip(1) {
        let mode = std::fs::metadata(parent)
            .map_err(io_err(format!("stat {}", parent.display())))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(PgClusterError::Setup(format!(
                "{} is not traversable by {OS_USER} (mode {mode:o}); use a directory under /tmp",
                parent.display()
            )));
        }
    }
    Ok(())
}

fn make_owned_dir(path: &Path, user: &OsUser) -> Result<(), PgClusterError> {
    std::fs::create_dir_all(path).map_err(io_err(format!("create {}", path.display())))?;
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
        .map_err(io_err(format!("chown {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("chmod {}", path.display())))
}

fn free_port() -> Result<u16, PgClusterError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(io_err("find a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_err("find a free port"))?
        .port();
    Ok(port)
}

/// Waits until `pid` no longer runs (gone, or a zombie nobody reaps).
fn wait_gone(pid: u32, timeout: Duration) -> Result<(), PgClusterError> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return Ok(()),
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z')) =>
            {
                return Ok(())
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    Err(PgClusterError::Setup(format!(
        "postmaster {pid} still running after SIGKILL"
    )))
}
