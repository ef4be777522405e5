//! `coder-standin`: a STAND-IN for the real `coder` binary, for tests and the demo only.
//! It is not Coder and runs no workspaces; it imitates the small surface the appliance uses,
//! and fails the way real coder fails offline. Never ship it.
//!
//! # `coder version [--output text|json]`
//! Text: `Coder VERSION Mon Jan  1 00:00:00 UTC 2024`, a blank line,
//! `https://github.com/coder/coder/commit/SHA`, a blank line, `Full build of Coder, supports
//! the server subcommand.` and a last line saying it is the stand-in. JSON:
//! `{"version":VERSION,"build_time":"2024-01-01T00:00:00Z","external_url":…,"slim":false,"agpl":true}`.
//! VERSION is `v2.24.1-standin+0000000`; the TEST-ONLY knob `CODER_STANDIN_VERSION`
//! replaces it verbatim (so tests make "v1" and "v2" bundles from one binary). SHA is what
//! follows `+` in VERSION (`0000000` if none).
//!
//! # `coder server`
//! Any `CODER_*` variable that coder v2.35.3 does not define (testkit/data/coder-vars-v2.35.3.txt,
//! from scripts/gen-coder-vars) → exits 1, and so does a `CODER_EXTERNAL_AUTH_*` whose
//! first part is not a number (`parse number: …`, as coder's env reader); the default
//! GitHub external auth is the flag `--external-auth-github-default-provider-enable`.
//! Configuration comes from `CODER_*` env vars; the real flags `--access-url`,
//! `--http-address`, `--tls-enable`, `--tls-address`, `--tls-cert-file`, `--tls-key-file`,
//! `--postgres-url` and `--cache-dir` are also accepted and win over the env, as in coder.
//! - `CODER_ACCESS_URL`: required. Empty → exits 1: real coder would open a public tunnel.
//! - `CODER_PG_CONNECTION_URL`: required. Empty → exits 1: real coder would download
//!   PostgreSQL from Maven Central for its built-in database.
//! - `CODER_TLS_ENABLE` (default false), `CODER_TLS_ADDRESS` (default 127.0.0.1:3443),
//!   `CODER_TLS_CERT_FILE` (leaf then chain, PEM), `CODER_TLS_KEY_FILE`.
//! - `CODER_HTTP_ADDRESS`: unset → 127.0.0.1:3000 (coder's default); empty → no plain HTTP.
//!   With TLS on, plain HTTP answers 307 to the access URL; with TLS off it serves the API.
//!   TLS off and no HTTP address → exits 1, as coder does.
//! - `CODER_CACHE_DIRECTORY` (default `$XDG_CACHE_HOME/coder` or `~/.cache/coder`): created.
//! - Logged, not acted on: `CODER_TELEMETRY_ENABLE`, `CODER_UPDATE_CHECK`,
//!   `CODER_DERP_SERVER_ENABLE`, `CODER_BLOCK_DIRECT`, `CODER_DERP_SERVER_STUN_ADDRESSES`,
//!   `CODER_WILDCARD_ACCESS_URL`, `CODER_DOCS_URL`. Telemetry (default true) shows in buildinfo.
//!
//! Start-up, in order: check settings; find `terraform` on PATH and run
//! `terraform version -json` with the environment minus `CODER_*` (missing or failing →
//! exits 1: real coder would download it from releases.hashicorp.com; the 1.1.0 minimum is
//! NOT enforced because tests use Terraform 1.0.3); listen, then print
//! `View the Web UI: ACCESS_URL` on stdout (coder prints it before it is ready, too);
//! connect to Postgres (retrying for 30 s), create table `standin_boots` in the default
//! schema if missing and insert one row (version, pid); only then are the bound listeners
//! served, as coderd serves only after its migrations; `/healthz` is then a constant `OK`
//! with no database check, as coderd's. Then one HTTPS `GET ACCESS_URL/healthz`, trusting `SSL_CERT_FILE`
//! (else /etc/ssl/certs/ca-certificates.crt), logged as `access URL healthy` or
//! `access URL not trusted: …`/`access URL health check failed: …` (never fatal).
//! `SELECT 1` every 2 s: a lost database → exits 1. SIGTERM/SIGINT → graceful stop, exit 0.
//!
//! Endpoints: `GET /healthz` (`OK`, text/plain), `GET /api/v2/buildinfo` (coder's fields,
//! `deployment_id: "standin"`), and the test aid `GET /api/v2/standin/env`: the `CODER_*`,
//! `TF_*`, `SSL_CERT_FILE`, `SSL_CERT_DIR`, `PATH` and `CHECKPOINT_DISABLE` variables it was
//! started with (the password in `CODER_PG_CONNECTION_URL` shown as `***`).
//!
//! Logs go to stderr, one line each, prefixed `coder-standin:`; failures exit 1 (clap usage
//! errors exit 2).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use clap::{Parser, Subcommand};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::ConnectOptions;

const DEFAULT_VERSION: &str = "v2.24.1-standin+0000000";
const BUILD_TIME: &str = "2024-01-01T00:00:00Z";
const BUILD_TIME_TEXT: &str = "Mon Jan  1 00:00:00 UTC 2024";
const POSTURE_VARS: [&str; 11] = [
    "CODER_TELEMETRY_ENABLE",
    "CODER_TELEMETRY_URL",
    "CODER_OAUTH2_GITHUB_DEFAULT_PROVIDER_ENABLE",
    "CODER_AI_GATEWAY_ENABLED",
    "CODER_DERP_CONFIG_URL",
    "CODER_UPDATE_CHECK",
    "CODER_DERP_SERVER_ENABLE",
    "CODER_BLOCK_DIRECT",
    "CODER_DERP_SERVER_STUN_ADDRESSES",
    "CODER_WILDCARD_ACCESS_URL",
    "CODER_DOCS_URL",
];
const DB_WAIT: Duration = Duration::from_secs(30);
const DB_PING_EVERY: Duration = Duration::from_secs(2);

type Res<T> = Result<T, String>;

/// A stand-in for `coder` (tests and demo only; not Coder).
#[derive(Debug, Parser)]
#[command(name = "coder", version = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show the (stand-in) version.
    Version {
        /// `text` or `json`.
        #[arg(short, long, default_value = "text", value_parser = ["text", "json"])]
        output: String,
    },
    /// Run the stand-in server.
    Server(ServerArgs),
}

/// Flags equivalent to the `CODER_*` variables (a flag wins over its variable).
#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// CODER_ACCESS_URL.
    #[arg(long)]
    access_url: Option<String>,
    /// CODER_HTTP_ADDRESS.
    #[arg(long)]
    http_address: Option<String>,
    /// CODER_TLS_ENABLE.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    tls_enable: Option<String>,
    /// CODER_TLS_ADDRESS.
    #[arg(long)]
    tls_address: Option<String>,
    /// CODER_TLS_CERT_FILE.
    #[arg(long)]
    tls_cert_file: Option<String>,
    /// CODER_TLS_KEY_FILE.
    #[arg(long)]
    tls_key_file: Option<String>,
    /// CODER_PG_CONNECTION_URL.
    #[arg(long)]
    postgres_url: Option<String>,
    /// CODER_CACHE_DIRECTORY.
    #[arg(long)]
    cache_dir: Option<String>,
    /// The default GitHub external-auth provider (coder's default: true). Its env form is
    /// refused, as coder's external-auth env reader does (see `check_coder_vars`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    external_auth_github_default_provider_enable: Option<String>,
}

/// The resolved server settings.
#[derive(Debug)]
struct Config {
    access_url: String,
    http_address: Option<String>,
    tls: Option<(String, PathBuf, PathBuf)>,
    pg_url: String,
    cache_dir: PathBuf,
    telemetry: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Version { output } => print_version(&output),
        Cmd::Server(args) => run_server(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(&e);
            ExitCode::FAILURE
        }
    }
}

fn log(msg: &str) {
    eprintln!("coder-standin: {msg}");
}

fn version() -> String {
    std::env::var("CODER_STANDIN_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_VERSION.to_string())
}

fn external_url(version: &str) -> String {
    let sha = version.split_once('+').map_or("0000000", |(_, s)| s);
    format!("https://github.com/coder/coder/commit/{sha}")
}

fn print_version(output: &str) -> Res<()> {
    let v = version();
    if output == "json" {
        let json = serde_json::json!({
            "version": v, "build_time": BUILD_TIME, "external_url": external_url(&v),
            "slim": false, "agpl": true,
        });
        println!("{json}");
    } else {
        println!("Coder {v} {BUILD_TIME_TEXT}\n\n{}\n", external_url(&v));
        println!("Full build of Coder, supports the server subcommand.");
        println!("(coder-standin: a test stand-in, not Coder.)");
    }
    Ok(())
}

// ---- configuration ----

/// The `CODER_*` variables coder server defines at the pinned release, one a line
/// (generated by scripts/gen-coder-vars; see the file's header for its provenance).
const KNOWN_VARS: &str = include_str!("../../data/coder-vars-v2.35.3.txt");

/// Refuses what the pinned coder would refuse or silently ignore: a `CODER_*` variable it
/// does not define (a typo, or a setting of another release), and any
/// `CODER_EXTERNAL_AUTH_*` / `CODER_GITAUTH_*` whose first part is not a provider number,
/// which coder's ReadExternalAuthProvidersFromEnv (cli/server.go) rejects with `parse
/// number: …` at start-up. `CODER_STANDIN_*` are the stand-in's own test knobs.
fn check_coder_vars(names: &[String]) -> Res<()> {
    for name in names {
        for prefix in ["CODER_EXTERNAL_AUTH_", "CODER_GITAUTH_"] {
            if let Some(rest) = name.strip_prefix(prefix) {
                let number = rest.split('_').next().unwrap_or_default();
                if number.parse::<u32>().is_err() {
                    return Err(format!(
                        "read external auth providers from env: parse number: {rest} ({name}: coder reads every {prefix}* variable as {prefix}<N>_<KEY>; use the flag form for defaults)"
                    ));
                }
            }
        }
    }
    let known: Vec<&str> = KNOWN_VARS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let unknown: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("CODER_") && !n.starts_with("CODER_STANDIN_"))
        .filter(|n| !n.starts_with("CODER_EXTERNAL_AUTH_") && !n.starts_with("CODER_GITAUTH_"))
        .filter(|n| !known.contains(n))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(format!(
        "unknown CODER_* variable(s) for coder v2.35.3: {} (not in testkit/data/coder-vars-v2.35.3.txt, generated from Coder's source by scripts/gen-coder-vars): a typo, or a setting this release does not have",
        unknown.join(", ")
    ))
}

fn setting(flag: Option<String>, env: &str) -> Option<String> {
    flag.or_else(|| std::env::var(env).ok())
}

fn parse_bool(name: &str, value: Option<String>, default: bool) -> Res<bool> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(format!("{name}: invalid boolean {other:?}")),
    }
}

fn resolve(args: ServerArgs) -> Res<Config> {
    let access_url = setting(args.access_url, "CODER_ACCESS_URL").unwrap_or_default();
    if access_url.trim().is_empty() {
        return Err(
            "CODER_ACCESS_URL is empty: real coder would open a public tunnel \
             (*.try.coder.app) here, which cannot work offline; set CODER_ACCESS_URL"
                .into(),
        );
    }
    if !(access_url.starts_with("https://") || access_url.starts_with("http://")) {
        return Err(format!(
            "CODER_ACCESS_URL {access_url:?} must start with https:// or http://"
        ));
    }
    let pg_url = setting(args.postgres_url, "CODER_PG_CONNECTION_URL").unwrap_or_default();
    if pg_url.trim().is_empty() {
        return Err(
            "CODER_PG_CONNECTION_URL is empty: real coder would start its built-in \
             PostgreSQL, downloading it from Maven Central (fails offline; it also refuses to \
             run as root); set CODER_PG_CONNECTION_URL"
                .into(),
        );
    }
    let http_address =
        setting(args.http_address, "CODER_HTTP_ADDRESS").unwrap_or_else(|| "127.0.0.1:3000".into());
    let http_address = Some(http_address).filter(|a| !a.trim().is_empty());
    let tls_enable = parse_bool(
        "CODER_TLS_ENABLE",
        setting(args.tls_enable, "CODER_TLS_ENABLE"),
        false,
    )?;
    let tls = if tls_enable {
        Some(tls_settings(
            args.tls_address,
            args.tls_cert_file,
            args.tls_key_file,
        )?)
    } else if http_address.is_none() {
        return Err("TLS is disabled. Enable with --tls-enable or specify a HTTP address".into());
    } else {
        None
    };
    let telemetry = parse_bool(
        "CODER_TELEMETRY_ENABLE",
        std::env::var("CODER_TELEMETRY_ENABLE").ok(),
        true,
    )?;
    Ok(Config {
        access_url: access_url.trim_end_matches('/').to_string(),
        http_address,
        tls,
        pg_url,
        cache_dir: cache_dir(args.cache_dir),
        telemetry,
    })
}

fn tls_settings(
    address: Option<String>,
    cert: Option<String>,
    key: Option<String>,
) -> Res<(String, PathBuf, PathBuf)> {
    let address = setting(address, "CODER_TLS_ADDRESS")
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "127.0.0.1:3443".into());
    let cert = setting(cert, "CODER_TLS_CERT_FILE").filter(|c| !c.is_empty());
    let key = setting(key, "CODER_TLS_KEY_FILE").filter(|k| !k.is_empty());
    match (cert, key) {
        (Some(c), Some(k)) => Ok((address, c.into(), k.into())),
        _ => Err("TLS is enabled but CODER_TLS_CERT_FILE or CODER_TLS_KEY_FILE is empty".into()),
    }
}

fn cache_dir(flag: Option<String>) -> PathBuf {
    if let Some(dir) = setting(flag, "CODER_CACHE_DIRECTORY").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("coder")
}

fn log_posture() {
    for name in POSTURE_VARS {
        match std::env::var(name) {
            Ok(v) => log(&format!("{name}={v}")),
            Err(_) => log(&format!("{name} is unset (coder's default applies)")),
        }
    }
}

// ---- terraform ----

fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Finds Terraform as coderd does; returns its path and version.
fn check_terraform() -> Res<(PathBuf, String)> {
    let download = "real coder would download Terraform from releases.hashicorp.com, \
                    which fails offline, and the server would stop";
    let path = find_on_path("terraform")
        .ok_or_else(|| format!("terraform not found on PATH: {download}"))?;
    let version = terraform_version(&path).map_err(|e| {
        format!(
            "{}: `terraform version -json` failed ({e}): {download}",
            path.display()
        )
    })?;
    Ok((path, version))
}

fn terraform_version(path: &Path) -> Res<String> {
    let mut cmd = std::process::Command::new(path);
    cmd.args(["version", "-json"]).env_clear();
    cmd.envs(std::env::vars_os().filter(|(k, _)| !k.to_string_lossy().starts_with("CODER_")));
    let output = cmd.output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("exit {}", output.status));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("bad JSON: {e}"))?;
    json["terraform_version"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no terraform_version in its JSON".to_string())
}

// ---- server ----

fn run_server(args: ServerArgs) -> Res<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    check_coder_vars(&names)?;
    let github_external_auth = parse_bool(
        "--external-auth-github-default-provider-enable",
        args.external_auth_github_default_provider_enable.clone(),
        true,
    )?;
    log(&format!(
        "external auth: default GitHub provider {}",
        if github_external_auth {
            "ENABLED (device flow to github.com)"
        } else {
            "disabled"
        }
    ));
    let config = resolve(args)?;
    log(&format!("stand-in for coder {} (not Coder)", version()));
    log_posture();
    std::fs::create_dir_all(&config.cache_dir).map_err(|e| {
        format!(
            "cannot create cache directory {}: {e}",
            config.cache_dir.display()
        )
    })?;
    log(&format!("cache directory {}", config.cache_dir.display()));
    let (tf_path, tf_version) = check_terraform()?;
    log(&format!(
        "terraform {tf_version} at {} (coder's 1.1.0 minimum is not enforced by the stand-in)",
        tf_path.display()
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(serve(config))
}

/// What the handlers share.
struct App {
    access_url: String,
    version: String,
    telemetry: bool,
    env: serde_json::Value,
}

async fn serve(config: Config) -> Res<()> {
    let mut signals = Signals::new()?;
    let app = Arc::new(App {
        access_url: config.access_url.clone(),
        version: version(),
        telemetry: config.telemetry,
        env: env_snapshot(),
    });
    let handle = axum_server::Handle::new();
    // Bound now, served only once the database is up: like coderd, which opens its
    // listeners and prints the URL before migrations but installs its handler (and so
    // answers /healthz at all) only after them.
    let tls = match &config.tls {
        Some((address, cert, key)) => Some((bind(address, "TLS")?, server_tls(cert, key)?)),
        None => None,
    };
    let http = match &config.http_address {
        Some(address) => Some(bind(address, "HTTP")?),
        None => None,
    };
    println!("View the Web UI: {}", config.access_url);
    let _ = std::io::stdout().flush();
    let mut conn = tokio::select! {
        r = boot(&config, &app) => r?,
        name = signals.recv() => {
            log(&format!("{name}: shutting down before the database was up"));
            return Ok(());
        }
    };
    let mut listeners = Vec::new();
    if let Some((listener, tls)) = tls {
        listeners.push(spawn_tls(listener, tls, api(app.clone()), &handle)?);
    }
    if let Some(listener) = http {
        let router = match config.tls {
            Some(_) => redirect(app.clone()),
            None => api(app.clone()),
        };
        listeners.push(spawn_http(listener, router, &handle)?);
    }
    log("serving; /healthz answers OK");
    let access_url = config.access_url.clone();
    tokio::task::spawn_blocking(move || log(&access_url_check(&access_url)));
    let result = tokio::select! {
        r = watch_db(&mut conn) => r,
        r = first_exit(listeners) => Err(format!("listener stopped: {r}")),
        name = signals.recv() => {
            log(&format!("{name}: shutting down gracefully"));
            Ok(())
        }
    };
    handle.graceful_shutdown(Some(Duration::from_secs(5)));
    result
}

fn bind(address: &str, what: &str) -> Res<std::net::TcpListener> {
    let address = match address.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => address.to_string(),
    };
    let listener = std::net::TcpListener::bind(&address)
        .map_err(|e| format!("cannot listen for {what} on {address}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{what} listener: {e}"))?;
    log(&format!("{what} listening on {address}"));
    Ok(listener)
}

type Served = tokio::task::JoinHandle<std::io::Result<()>>;

fn spawn_tls(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    handle: &axum_server::Handle<std::net::SocketAddr>,
) -> Res<Served> {
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    let server = axum_server::tls_rustls::from_tcp_rustls(listener, config)
        .map_err(|e| format!("TLS listener: {e}"))?
        .handle(handle.clone());
    Ok(tokio::spawn(server.serve(router.into_make_service())))
}

fn spawn_http(
    listener: std::net::TcpListener,
    router: Router,
    handle: &axum_server::Handle<std::net::SocketAddr>,
) -> Res<Served> {
    let server = axum_server::from_tcp(listener)
        .map_err(|e| format!("HTTP listener: {e}"))?
        .handle(handle.clone());
    Ok(tokio::spawn(server.serve(router.into_make_service())))
}

async fn first_exit(listeners: Vec<Served>) -> String {
    if listeners.is_empty() {
        return std::future::pending().await;
    }
    let (result, _, _) = futures_util::future::select_all(listeners).await;
    match result {
        Ok(Ok(())) => "stopped".into(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    }
}

fn server_tls(cert: &Path, key: &Path) -> Res<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("CODER_TLS_CERT_FILE {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "CODER_TLS_CERT_FILE {}: no certificate",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("CODER_TLS_KEY_FILE {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// SIGTERM and SIGINT, registered before listening so none is missed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Res<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let err = |e: std::io::Error| format!("signal handler: {e}");
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(err)?,
            int: signal(SignalKind::interrupt()).map_err(err)?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

// ---- HTTP handlers ----

fn api(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v2/buildinfo", get(buildinfo))
        .route("/api/v2/standin/env", get(env_info))
        .with_state(app)
}

fn redirect(app: Arc<App>) -> Router {
    Router::new()
        .fallback(redirect_to_access_url)
        .with_state(app)
}

/// coderd's `/healthz`: a constant `OK` with no database check (no auth, body `OK`:
/// /work/shared/reference/coder-facts.md; issue 14); it is simply not served before the
/// database is up.
async fn healthz() -> impl IntoResponse {
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    (StatusCode::OK, text, "OK")
}

fn json(value: &serde_json::Value) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
}

async fn buildinfo(State(app): State<Arc<App>>) -> impl IntoResponse {
    json(&serde_json::json!({
        "external_url": external_url(&app.version),
        "version": app.version,
        "dashboard_url": app.access_url,
        "telemetry": app.telemetry,
        "workspace_proxy": false,
        "agent_api_version": "2.0",
        "deployment_id": "standin",
    }))
}

async fn env_info(State(app): State<Arc<App>>) -> impl IntoResponse {
    json(&app.env)
}

async fn redirect_to_access_url(State(app): State<Arc<App>>, uri: Uri) -> impl IntoResponse {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("{}{path}", app.access_url);
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
}

fn env_snapshot() -> serde_json::Value {
    let shown = |k: &str| {
        k.starts_with("CODER_")
            || k.starts_with("TF_")
            || matches!(
                k,
                "SSL_CERT_FILE" | "SSL_CERT_DIR" | "PATH" | "CHECKPOINT_DISABLE"
            )
    };
    let map = std::env::vars()
        .filter(|(k, _)| shown(k))
        .map(|(k, v)| {
            let v = if k == "CODER_PG_CONNECTION_URL" {
                redact_password(&v)
            } else {
                v
            };
            (k, serde_json::Value::String(v))
        })
        .collect();
    serde_json::Value::Object(map)
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_string(),
    }
}

// ---- database ----

/// Connects and records this boot; the caller then serves and watches the connection.
async fn boot(config: &Config, app: &App) -> Res<PgConnection> {
    let mut conn = connect_db(&config.pg_url).await?;
    record_boot(&mut conn, &app.version).await?;
    log("database ready; standin_boots row written");
    Ok(conn)
}

async fn connect_db(url: &str) -> Res<PgConnection> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| format!("CODER_PG_CONNECTION_URL is not a valid Postgres URL: {e}"))?
        .application_name("coder-standin");
    let deadline = Instant::now() + DB_WAIT;
    loop {
        let last = match tokio::time::timeout(Duration::from_secs(5), options.connect()).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connect timed out".to_string(),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "cannot connect to Postgres within {DB_WAIT:?}: {last}"
            ));
        }
        log(&format!("waiting for Postgres: {last}"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn record_boot(conn: &mut PgConnection, version: &str) -> Res<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS standin_boots (id bigserial PRIMARY KEY, \
         booted_at timestamptz DEFAULT now(), version text, pid int)",
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| format!("create table standin_boots: {e}"))?;
    let pid = i32::try_from(std::process::id()).map_err(|e| format!("pid: {e}"))?;
    sqlx::query("INSERT INTO standin_boots (version, pid) VALUES ($1, $2)")
        .bind(version)
        .bind(pid)
        .execute(&mut *conn)
        .await
        .map_err(|e| format!("insert into standin_boots: {e}"))?;
    Ok(())
}

async fn watch_db(conn: &mut PgConnection) -> Res<()> {
    loop {
        tokio::time::sleep(DB_PING_EVERY).await;
        let ping = sqlx::query("SELECT 1").execute(&mut *conn);
        match tokio::time::timeout(Duration::from_secs(5), ping).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("lost the database connection: {e}")),
            Err(_) => return Err("lost the database connection: SELECT 1 timed out".into()),
        }
    }
}

// ---- the access-URL self check (blocking, rustls directly) ----

/// One GET of ACCESS_URL/healthz, described in one line.
fn access_url_check(access_url: &str) -> String {
    let target = format!("{access_url}/healthz");
    match get_status(&target) {
        Ok(status) if status.contains(" 200") => {
            format!("access URL healthy: GET {target}: {status}")
        }
        Ok(status) => format!("access URL health check failed: GET {target}: {status}"),
        Err(Check::Untrusted(e)) => format!("access URL not trusted: GET {target}: {e}"),
        Err(Check::Failed(e)) => format!("access URL health check failed: GET {target}: {e}"),
    }
}

enum Check {
    Untrusted(String),
    Failed(String),
}

/// A parsed `http(s)://host[:port]/path`.
struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_target(url: &str) -> Result<Target, Check> {
    let bad = || Check::Failed(format!("cannot parse URL {url:?}"));
    let (tls, rest) = match url.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        _ => return Err(bad()),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad())?,
        None => default_port,
    };
    let path = if path.is_empty() { "/" } else { path };
    Ok(Target {
        tls,
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

fn get_status(url: &str) -> Result<String, Check> {
    let target = parse_target(url)?;
    let failed = |e: std::io::Error| Check::Failed(e.to_string());
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(failed)?
        .next()
        .ok_or_else(|| Check::Failed(format!("{} does not resolve", target.host)))?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(failed)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(failed)?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(failed)?;
    if !target.tls {
        let mut tcp = tcp;
        return request(&mut tcp, &target).map_err(failed);
    }
    let name = ServerName::try_from(target.host.clone())
        .map_err(|e| Check::Failed(format!("server name {}: {e}", target.host)))?;
    let conn = rustls::ClientConnection::new(client_tls()?, name)
        .map_err(|e| Check::Failed(e.to_string()))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    request(&mut stream, &target).map_err(classify_tls)
}

/// Certificate errors mean "not trusted"; anything else is a plain failure.
fn classify_tls(e: std::io::Error) -> Check {
    let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(c)) => Check::Untrusted(format!("{c:?}")),
        _ => Check::Failed(e.to_string()),
    }
}

/// Roots from SSL_CERT_FILE, else Debian's bundle (as Go's crypto/x509 reads on Linux).
fn client_tls() -> Result<Arc<rustls::ClientConfig>, Check> {
    let file = std::env::var_os("SSL_CERT_FILE")
        .filter(|f| !f.is_empty())
        .map_or_else(
            || PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            PathBuf::from,
        );
    let certs = CertificateDer::pem_file_iter(&file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Check::Untrusted(format!("cannot read trust store {}: {e}", file.display()))
        })?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(Check::Untrusted(format!(
            "no usable CA in {}",
            file.display()
        )));
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Sends a GET and returns the status line.
fn request(stream: &mut (impl Read + Write), target: &Target) -> std::io::Result<String> {
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: coder-standin\r\nConnection: close\r\n\r\n",
        target.path, target.host, target.port
    )?;
    stream.flush()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    Ok(text
        .lines()
        .next()
        .unwrap_or("no response")
        .trim()
        .to_string())
}
