//! Tests of the `coder-standin` binary: its `version` output, the offline failures it must
//! reproduce (no access URL, no Postgres URL, no Terraform), and full runs against a real
//! Debian PostgreSQL 15 cluster with a test CA, checked with the real curl and psql.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use airgap_testkit::pgcluster::PgCluster;
use airgap_testkit::pki::{PkiFiles, TestPki};
use airgap_testkit::tools::{clean_command, CLEAN_PATH};

const STANDIN: &str = env!("CARGO_BIN_EXE_coder-standin");

/// A directory under /tmp, removed on drop (0755 so the Postgres user can traverse it).
struct TmpDir(PathBuf);

impl TmpDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        let path = PathBuf::from(format!("/tmp/airgap-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        TmpDir(path)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn standin() -> Command {
    clean_command(STANDIN)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run coder-standin")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `terraform` that answers `version -json` like Terraform 1.0.3, in `dir/bin`.
fn fake_terraform(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("create bin");
    let script = bin.join("terraform");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf '{\"terraform_version\":\"1.0.3\",\"platform\":\"linux_amd64\",\"provider_selections\":{},\"terraform_outdated\":true}\\n'\n",
    )
    .expect("write fake terraform");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn version_text_has_coder_shape() {
    let out = run(standin().arg("version"));
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let first = lines.next().expect("first line");
    assert!(
        first.starts_with("Coder v2.24.1-standin+0000000 "),
        "{stdout}"
    );
    assert!(
        stdout.contains("https://github.com/coder/coder/commit/0000000"),
        "{stdout}"
    );
    assert!(stdout.contains("stand-in"), "{stdout}");
}

#[test]
fn version_json_has_coder_fields_and_honours_override() {
    let out = run(standin().args(["version", "--output", "json"]));
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["version"], "v2.24.1-standin+0000000");
    assert_eq!(json["slim"], false);
    assert_eq!(json["agpl"], true);
    assert!(json["build_time"].is_string(), "{json}");
    assert_eq!(
        json["external_url"],
        "https://github.com/coder/coder/commit/0000000"
    );

    let out = run(standin()
        .args(["version", "--output", "json"])
        .env("CODER_STANDIN_VERSION", "v2.25.0-standin+abcdef1"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["version"], "v2.25.0-standin+abcdef1");
    assert_eq!(
        json["external_url"],
        "https://github.com/coder/coder/commit/abcdef1"
    );
}

fn assert_fails_with(out: &Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "expected failure: {out:?}");
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    assert!(
        stderr.lines().all(|l| l.starts_with("coder-standin: ")),
        "{stderr}"
    );
}

#[test]
fn server_without_access_url_exits_with_tunnel_message() {
    let out = run(standin()
        .arg("server")
        .env("CODER_PG_CONNECTION_URL", "postgres://x@127.0.0.1:1/x"));
    assert_fails_with(&out, "public tunnel");
}

#[test]
fn server_without_pg_url_exits_with_maven_message() {
    let out = run(standin()
        .arg("server")
        .env("CODER_ACCESS_URL", "https://localhost:1"));
    assert_fails_with(&out, "Maven Central");
}

#[test]
fn server_without_terraform_exits_with_download_message() {
    let tmp = TmpDir::new("standin-notf");
    let empty = tmp.0.join("empty-bin");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = run(standin()
        .arg("server")
        .env("PATH", &empty)
        .env("CODER_ACCESS_URL", "https://localhost:1")
        .env("CODER_PG_CONNECTION_URL", "postgres://x@127.0.0.1:1/x")
        .env("CODER_HTTP_ADDRESS", "127.0.0.1:0")
        .env("CODER_CACHE_DIRECTORY", tmp.0.join("cache")));
    assert_fails_with(&out, "releases.hashicorp.com");
    assert!(tmp.0.join("cache").is_dir(), "cache directory not created");
}

/// A running stand-in with its stderr in a file.
struct Standin {
    child: Child,
    stderr: PathBuf,
    tls_port: u16,
    http_port: u16,
}

impl Standin {
    fn start(tmp: &Path, pki: &PkiFiles, pg_url: &str, trust_ca: bool) -> Self {
        let (tls_port, http_port) = (free_port(), free_port());
        let stderr = tmp.join("standin.stderr");
        let mut cmd = standin();
        cmd.arg("server")
            .env(
                "PATH",
                format!("{}:{CLEAN_PATH}", fake_terraform(tmp).display()),
            )
            .env("CODER_ACCESS_URL", format!("https://localhost:{tls_port}"))
            .env("CODER_TLS_ENABLE", "true")
            .env("CODER_TLS_ADDRESS", format!("127.0.0.1:{tls_port}"))
            .env("CODER_TLS_CERT_FILE", &pki.cert)
            .env("CODER_TLS_KEY_FILE", &pki.key)
            .env("CODER_HTTP_ADDRESS", format!("127.0.0.1:{http_port}"))
            .env("CODER_PG_CONNECTION_URL", pg_url)
            .env("CODER_CACHE_DIRECTORY", tmp.join("cache"))
            .env("CODER_TELEMETRY_ENABLE", "false")
            .env("CODER_DERP_SERVER_STUN_ADDRESSES", "disable")
            .stdout(File::create(tmp.join("standin.stdout")).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"));
        if trust_ca {
            cmd.env("SSL_CERT_FILE", &pki.ca);
        }
        let child = cmd.spawn().expect("start coder-standin");
        Standin {
            child,
            stderr,
            tls_port,
            http_port,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Polls `check` until it holds or `secs` pass, failing early if the stand-in exits.
    fn wait_until(&mut self, what: &str, secs: u64, check: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("stand-in exited ({status}) before {what}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what}:\n{}", self.log());
    }

    fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("stand-in still running after {secs} s:\n{}", self.log());
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `curl --cacert CA -sf URL` with a clean env; stdout if it succeeded.
fn curl(ca: &Path, url: &str) -> Option<String> {
    let out = clean_command("curl")
        .arg("--cacert")
        .arg(ca)
        .args(["-sf", "--max-time", "5", url])
        .output()
        .expect("run curl");
    out.status.success().then(|| text(&out.stdout))
}

/// A cluster with role and database `coder` (owner), plus the files it lives in.
fn cluster_with_coder_db(tmp: &Path) -> PgCluster {
    let pg_dir = tmp.join("pg");
    std::fs::create_dir_all(&pg_dir).expect("mkdir pg");
    let cluster = PgCluster::start(&pg_dir).expect("start Postgres 15 cluster");
    cluster
        .psql("postgres", "CREATE ROLE coder LOGIN")
        .expect("create role");
    cluster
        .psql("postgres", "CREATE DATABASE coder OWNER coder")
        .expect("create database");
    cluster
}

fn pki(tmp: &Path) -> PkiFiles {
    TestPki::new(&[])
        .expect("test PKI")
        .write_to(tmp)
        .expect("write PKI")
}

#[test]
fn full_run_serves_tls_writes_row_and_stops_on_sigterm() {
    let tmp = TmpDir::new("standin-full");
    let files = pki(&tmp.0);
    let mut cluster = cluster_with_coder_db(&tmp.0);
    let mut s = Standin::start(&tmp.0, &files, &cluster.url("coder", "coder"), true);
    let health = format!("https://127.0.0.1:{}/healthz", s.tls_port);
    s.wait_until("/healthz OK", 40, |_| {
        curl(&files.ca, &health).as_deref() == Some("OK")
    });

    let info = curl(
        &files.ca,
        &format!("https://127.0.0.1:{}/api/v2/buildinfo", s.tls_port),
    )
    .expect("buildinfo");
    let info: serde_json::Value = serde_json::from_str(&info).expect("buildinfo json");
    assert_eq!(info["version"], "v2.24.1-standin+0000000");
    assert_eq!(info["telemetry"], false);
    assert_eq!(
        info["dashboard_url"],
        format!("https://localhost:{}", s.tls_port)
    );
    assert_eq!(info["deployment_id"], "standin");

    let env = curl(
        &files.ca,
        &format!("https://127.0.0.1:{}/api/v2/standin/env", s.tls_port),
    )
    .expect("env");
    let env: serde_json::Value = serde_json::from_str(&env).expect("env json");
    assert_eq!(env["CODER_DERP_SERVER_STUN_ADDRESSES"], "disable");
    assert_eq!(env["SSL_CERT_FILE"], files.ca.to_string_lossy().as_ref());

    let redirect = clean_command("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg(format!("http://127.0.0.1:{}/healthz", s.http_port))
        .output()
        .expect("curl http");
    assert_eq!(
        text(&redirect.stdout),
        format!("307 https://localhost:{}/healthz", s.tls_port)
    );

    let rows = cluster
        .psql("coder", "SELECT version, pid FROM standin_boots")
        .expect("query standin_boots");
    assert_eq!(
        rows.trim(),
        format!("v2.24.1-standin+0000000|{}", s.child.id())
    );
    let stdout = std::fs::read_to_string(tmp.0.join("standin.stdout")).expect("stdout");
    assert!(
        stdout.contains("View the Web UI: https://localhost:"),
        "{stdout}"
    );
    s.wait_until("the access-URL self check", 10, |s| {
        s.log().contains("access URL healthy")
    });

    s.sigterm();
    let status = s.wait_exit(10);
    assert_eq!(status.code(), Some(0), "{}", s.log());
    cluster.stop().expect("stop cluster");
}

#[test]
fn losing_postgres_makes_standin_exit_nonzero() {
    let tmp = TmpDir::new("standin-pgdeath");
    let files = pki(&tmp.0);
    let mut cluster = cluster_with_coder_db(&tmp.0);
    // No SSL_CERT_FILE: the self check must report the access URL as not trusted.
    let mut s = Standin::start(&tmp.0, &files, &cluster.url("coder", "coder"), false);
    let health = format!("https://127.0.0.1:{}/healthz", s.tls_port);
    s.wait_until("/healthz OK", 40, |_| {
        curl(&files.ca, &health).as_deref() == Some("OK")
    });
    s.wait_until("the access-URL self check", 10, |s| {
        s.log().contains("access URL not trusted")
    });

    cluster.kill9().expect("kill Postgres");
    let status = s.wait_exit(10);
    assert!(!status.success(), "{status}: {}", s.log());
    assert!(
        s.log().contains("lost the database connection"),
        "{}",
        s.log()
    );
}
