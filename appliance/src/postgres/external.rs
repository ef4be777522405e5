//! Connecting, and [`check_external`]: is an operator's PostgreSQL fit for coderd?
//!
//! Connection failures are classified into [`PgError`] variants whose one-line message
//! names the fix (wrong password, unreachable host, missing database, old server, missing
//! privilege). Passwords never appear in messages.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Row};

use super::error::one_line;
use super::migrate::SCHEMA;
use super::{PgError, Result, SecretUrl};

/// How long a connection attempt may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The oldest server coderd supports (server_version_num).
const MIN_VERSION_NUM: u32 = 130_000;

/// What [`check_external`] learned about a server that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// The server's version, e.g. `15.14`.
    pub version: String,
    /// `server_version_num`, e.g. 150014.
    pub version_num: u32,
    /// The role we logged in as.
    pub role: String,
    /// The database we connected to.
    pub database: String,
    /// Whether the role is a superuser (works, but worth a warning: least privilege).
    pub superuser: bool,
}

/// Who and where a URL points at, for messages (never the password).
struct Target {
    addr: String,
    user: String,
    database: String,
}

fn target(url: &SecretUrl) -> Result<(PgConnectOptions, Target)> {
    let options = url.connect_options()?;
    let addr = match options.get_socket() {
        Some(dir) => format!("{}/.s.PGSQL.{}", dir.display(), options.get_port()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let user = options.get_username().to_string();
    let database = options.get_database().unwrap_or(&user).to_string();
    let target = Target {
        addr,
        user,
        database,
    };
    Ok((options, target))
}

/// Opens one connection to `url` with a 10 s limit, classifying failures.
pub async fn connect_once(url: &SecretUrl) -> Result<PgConnection> {
    let (options, target) = target(url)?;
    connect_options(&options, &target).await
}

async fn connect_options(options: &PgConnectOptions, target: &Target) -> Result<PgConnection> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(classify(e, target)),
        Err(_) => Err(PgError::Unreachable {
            addr: target.addr.clone(),
            reason: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        }),
    }
}

/// A small connection pool for `url` (the ledger's and the CLI's), after one checked
/// connection so a bad URL fails with a classified one-line error.
pub async fn connect(url: &SecretUrl) -> Result<PgPool> {
    let (options, target) = target(url)?;
    connect_options(&options, &target).await?.close().await?;
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| classify(e, &target))
}

fn classify(e: sqlx::Error, t: &Target) -> PgError {
    match e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01") => PgError::BadPassword {
                user: t.user.clone(),
            },
            Some("28000") => PgError::AuthRejected {
                user: t.user.clone(),
                reason: one_line(db.message()),
            },
            Some("3D000") => PgError::DatabaseMissing {
                database: t.database.clone(),
                user: t.user.clone(),
            },
            _ => PgError::Sql(one_line(db.message())),
        },
        sqlx::Error::Io(io) => PgError::Unreachable {
            addr: t.addr.clone(),
            reason: io.to_string(),
        },
        sqlx::Error::Tls(tls) => PgError::Unreachable {
            addr: t.addr.clone(),
            reason: format!(
                "TLS failed: {} (check sslmode in the URL)",
                one_line(&tls.to_string())
            ),
        },
        other => PgError::Sql(one_line(&other.to_string())),
    }
}

/// Checks that the server at `url` can host coderd: it answers within 10 s, accepts the
/// credentials, the database exists, it is PostgreSQL 13 or newer, and the role can
/// connect, create in schema `public` (coderd's migrations) and create schema
/// `coder_airgap` (the ledger) or already owns it. Each failure is one line with the fix.
pub async fn check_external(url: &SecretUrl) -> Result<ServerFacts> {
    let (options, target) = target(url)?;
    let mut conn = connect_options(&options, &target).await?;
    let row = sqlx::query(FACTS_SQL)
        .bind(SCHEMA)
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    let facts = ServerFacts {
        version: first_word(row.try_get("version")?),
        version_num: u32::try_from(row.try_get::<i32, _>("version_num")?).unwrap_or(0),
        role: row.try_get("role")?,
        database: row.try_get("database")?,
        superuser: row.try_get("superuser")?,
    };
    if facts.version_num < MIN_VERSION_NUM {
        return Err(PgError::TooOld {
            version: facts.version,
        });
    }
    let privileges = Privileges {
        connect: row.try_get("can_connect")?,
        create_db: row.try_get("can_create_db")?,
        owns_ledger: row
            .try_get::<Option<bool>, _>("owns_ledger")?
            .unwrap_or(false),
        public: row.try_get("public_create")?,
    };
    privileges.check(&facts)?;
    Ok(facts)
}

/// Everything in one round trip; `$1` is the ledger schema name.
const FACTS_SQL: &str = "\
SELECT current_setting('server_version') AS version,
       current_setting('server_version_num')::int AS version_num,
       current_user::text AS role,
       current_database()::text AS database,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       has_database_privilege(current_database(), 'CONNECT') AS can_connect,
       has_database_privilege(current_database(), 'CREATE') AS can_create_db,
       (SELECT pg_has_role(nspowner, 'USAGE') FROM pg_namespace WHERE nspname = $1) AS owns_ledger,
       (SELECT has_schema_privilege(oid, 'CREATE') FROM pg_namespace WHERE nspname = 'public')
           AS public_create";

/// The privilege answers from [`FACTS_SQL`].
struct Privileges {
    connect: bool,
    create_db: bool,
    owns_ledger: bool,
    /// `None`: there is no schema public.
    public: Option<bool>,
}

impl Privileges {
    fn check(&self, f: &ServerFacts) -> Result<()> {
        let (role, db) = (ident(&f.role), ident(&f.database));
        let missing = |what: String, fix: String| PgError::MissingPrivilege {
            role: role.clone(),
            what,
            fix,
        };
        if !self.connect {
            return Err(missing(
                format!("CONNECT on database {db}"),
                format!("GRANT CONNECT ON DATABASE {db} TO {role}"),
            ));
        }
        if !self.create_db && !self.owns_ledger {
            return Err(missing(
                format!("CREATE on database {db}"),
                format!("GRANT CREATE ON DATABASE {db} TO {role}"),
            ));
        }
        match self.public {
            Some(true) => Ok(()),
            Some(false) => Err(missing(
                format!("CREATE on schema public in database {db}"),
                format!("GRANT CREATE ON SCHEMA public TO {role} (run it connected to {db})"),
            )),
            None => Err(missing(
                format!("a schema public in database {db} (there is none)"),
                format!("CREATE SCHEMA public AUTHORIZATION {role} (run it connected to {db})"),
            )),
        }
    }
}

/// `15.14 (Debian 15.14-1)` → `15.14`.
fn first_word(text: String) -> String {
    text.split_whitespace().next().unwrap_or(&text).to_string()
}

/// An identifier as it must be written in SQL: bare when plain lower case, else quoted.
pub fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        assert_eq!(ident("coder"), "coder");
        assert_eq!(ident("Coder-App"), "\"Coder-App\"");
    }

    #[test]
    fn bad_url_does_not_echo_the_password() {
        let msg = match SecretUrl::parse("postgres://u:secretpw@host:notaport/db") {
            Err(e) => e.to_string(),
            Ok(_) => String::from("parsed"),
        };
        assert!(msg.starts_with("invalid PostgreSQL URL"), "{msg}");
        assert!(!msg.contains("secretpw"), "{msg}");
    }

    #[tokio::test]
    async fn closed_port_fails_with_one_line() {
        // Bind then drop: the port is (almost certainly) closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let url = format!("postgres://coder:pw@127.0.0.1:{port}/coder?sslmode=disable");
        let url = SecretUrl::parse(&url).expect("a valid URL");
        match check_external(&url).await {
            Err(e @ PgError::Unreachable { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
                assert!(!msg.contains('\n') && !msg.contains("pw@"), "{msg}");
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
}
