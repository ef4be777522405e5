//! [`PgError`]: every failure of the Postgres layer, each displayed as one line that an
//! operator can act on.

use std::path::PathBuf;

/// A failure in the Postgres layer. `Display` is always one line and, where there is an
/// obvious fix, ends with it.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// PostgreSQL refuses to run as root; callers must drop to the service user first.
    #[error("PostgreSQL cannot run as root: run this as the service user (install and up re-execute themselves as it)")]
    RunningAsRoot,
    /// The PostgreSQL tree lacks a program we need.
    #[error("PostgreSQL tree {dir} has no {name}: the bundle's PostgreSQL install is incomplete; reinstall the release")]
    MissingBinary {
        /// The bin directory looked in.
        dir: PathBuf,
        /// The missing program.
        name: &'static str,
    },
    /// A file-system operation failed.
    #[error("{what} {path}: {cause}")]
    Io {
        /// What we were doing, e.g. "cannot create".
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
    /// A PostgreSQL program (initdb, pg_ctl, pg_dump, ...) failed.
    #[error("{tool} failed: {message}")]
    Tool {
        /// The program.
        tool: String,
        /// The first meaningful line of its error output.
        message: String,
    },
    /// The socket directory cannot be used (too long for a Unix socket, or characters
    /// pg_ctl cannot pass through its shell).
    #[error("socket directory {path} {reason}")]
    SocketDir {
        /// The directory.
        path: PathBuf,
        /// Why it cannot be used, with the fix.
        reason: &'static str,
    },
    /// The data directory is initialised but its superuser password file is gone.
    #[error("data directory {data_dir} is initialised but {secret} is missing: restore the file from backup (the superuser password cannot be recovered)")]
    SecretMissing {
        /// The data directory.
        data_dir: PathBuf,
        /// The missing password file.
        secret: PathBuf,
    },
    /// A postmaster for this data directory is already running.
    #[error("PostgreSQL is already running on {data_dir} (pid {pid}): stop it first (pg_ctl stop -D {data_dir})", data_dir = .data_dir.display())]
    AlreadyRunning {
        /// The data directory.
        data_dir: PathBuf,
        /// The running postmaster's pid.
        pid: u32,
    },
    /// The connection URL does not parse.
    #[error(
        "invalid PostgreSQL URL: {reason} (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
    )]
    InvalidUrl {
        /// Why it was rejected (never includes the password).
        reason: String,
    },
    /// No server answered at the address.
    #[error("cannot reach PostgreSQL at {addr}: {reason} (is the server running and listening there? check host, port and firewall)")]
    Unreachable {
        /// host:port or socket path.
        addr: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The server rejected the password.
    #[error("PostgreSQL rejected the password for role {user}: fix the password in the URL (or ALTER ROLE {user} PASSWORD '...')")]
    BadPassword {
        /// The role.
        user: String,
    },
    /// The server refused the login for another reason (pg_hba.conf, missing role, ...).
    #[error("PostgreSQL refused login for role {user}: {reason} (check pg_hba.conf and that the role exists with LOGIN)")]
    AuthRejected {
        /// The role.
        user: String,
        /// The server's message.
        reason: String,
    },
    /// The database in the URL does not exist.
    #[error("database {database} does not exist: CREATE DATABASE {database} OWNER {user}")]
    DatabaseMissing {
        /// The database name.
        database: String,
        /// The role that should own it.
        user: String,
    },
    /// The server is older than coderd supports.
    #[error(
        "server is {version}; coderd needs 13 or newer: upgrade PostgreSQL or use the bundled one"
    )]
    TooOld {
        /// The server's version string, e.g. "12.17".
        version: String,
    },
    /// The role lacks a privilege coderd or the ledger needs.
    #[error("role {role} lacks {what}: {fix}")]
    MissingPrivilege {
        /// The role.
        role: String,
        /// The privilege, e.g. "CREATE on database coder".
        what: String,
        /// The SQL that grants it.
        fix: String,
    },
    /// Applying the ledger migrations failed.
    #[error("cannot migrate schema coder_airgap: {0}")]
    Migrate(String),
    /// Any other database error.
    #[error("PostgreSQL error: {0}")]
    Sql(String),
    /// A stored record could not be read back (corrupt ledger row).
    #[error("ledger row is invalid: {0}")]
    Ledger(String),
    /// A file could not be put in place durably (names the path and the step).
    #[error(transparent)]
    Write(#[from] airgap_fsutil::WriteError),
}

impl PgError {
    /// An [`PgError::Io`] for `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        PgError::Io {
            what,
            path: path.into(),
            cause,
        }
    }

    /// A [`PgError::Tool`] from a program's output, keeping one meaningful line.
    pub fn tool(tool: impl Into<String>, output: &str) -> Self {
        PgError::Tool {
            tool: tool.into(),
            message: one_line(output),
        }
    }
}

impl From<airgap_tool::ToolError> for PgError {
    /// A [`PgError::Tool`] named by the tool's description (its message says what failed).
    fn from(e: airgap_tool::ToolError) -> Self {
        PgError::Tool {
            tool: e.description,
            message: e.failure.to_string(),
        }
    }
}

impl From<sqlx::Error> for PgError {
    fn from(e: sqlx::Error) -> Self {
        PgError::Sql(one_line(&e.to_string()))
    }
}

/// The most useful single line of a (possibly multi-line) message: the first line that
/// mentions an error or fatal condition, else the first non-empty line.
pub fn one_line(text: &str) -> String {
    let lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let pick = lines
        .clone()
        .find(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("error") || l.contains("fatal") || l.contains("could not")
        })
        .or_else(|| lines.clone().next())
        .unwrap_or("no output");
    pick.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_prefers_the_error_line() {
        let out =
            "waiting for server....\npg_ctl: could not start server\nExamine the log output.\n";
        assert_eq!(one_line(out), "pg_ctl: could not start server");
        assert_eq!(one_line("\n\n"), "no output");
    }
}
