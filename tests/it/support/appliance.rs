//! An appliance site for the install/up tests: a root directory, free ports, signed test
//! bundles (stand-in coder, Terraform 1.0.3, Debian's PostgreSQL) and the commands and
//! probes the tests drive.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use airgap_testkit::appliance::{standin_coder, BundleKit, BundleSpec};
use airgap_testkit::tools;

/// The service user the tests install for.
pub const SERVICE_USER: &str = "airgap-svc";

/// One shared bundle kit per test process (bundles are made once and reused).
fn kit() -> &'static Mutex<BundleKit> {
    static KIT: OnceLock<Mutex<BundleKit>> = OnceLock::new();
    KIT.get_or_init(|| {
        let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("appliance-kit");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).expect("kit dir");
        Mutex::new(BundleKit {
            airgap: PathBuf::from(env!("CARGO_BIN_EXE_coder-airgap")),
            work,
        })
    })
}

/// The signed bundle `version`/`sequence` and its public key.
pub fn bundle(version: &str, sequence: u64) -> (PathBuf, PathBuf) {
    let kit = kit().lock().unwrap_or_else(|e| e.into_inner());
    let coder = standin_coder().expect("stand-in coder");
    let terraform = tools::require_terraform();
    let spec = BundleSpec {
        version,
        sequence,
        coder: &coder,
        terraform: &terraform,
    };
    let path = kit.bundle(&spec).expect("bundle");
    (path, kit.pubkey())
}

/// A free TCP port on 127.0.0.1 (closed again; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One appliance root with its own ports.
pub struct Site {
    /// Holds everything; removed at the end.
    pub dir: tempfile::TempDir,
    /// The appliance root.
    pub root: PathBuf,
    /// coderd's port (access URL `https://localhost:PORT`).
    pub coderd_port: u16,
    /// The mirror's port.
    pub mirror_port: u16,
    /// The embedded Postgres port.
    pub pg_port: u16,
    /// The network namespace every command runs in (`ip netns exec`), if any.
    pub netns: Option<String>,
    up: Option<Child>,
}

impl Site {
    /// A new, empty site. The temp dir is made traversable: the service user must reach ROOT.
    pub fn new() -> Site {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let root = dir.path().join("root");
        Site {
            dir,
            root,
            coderd_port: free_port(),
            mirror_port: free_port(),
            pg_port: free_port(),
            netns: None,
            up: None,
        }
    }

    /// The access URL.
    pub fn access_url(&self) -> String {
        format!("https://localhost:{}", self.coderd_port)
    }

    /// `program` with a clean environment, inside the site's network namespace if any.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.netns {
            None => tools::clean_command(program),
            Some(ns) => {
                let mut cmd = tools::clean_command("ip");
                cmd.args(["netns", "exec", ns]).arg(program);
                cmd
            }
        }
    }

    /// `coder-airgap ARGS` with a clean environment.
    pub fn airgap(&self) -> Command {
        self.command(env!("CARGO_BIN_EXE_coder-airgap"))
    }

    /// `install BUNDLE` with this site's root, ports and service user.
    pub fn install(&self, bundle: &Path, pubkey: &Path) -> Command {
        let mut cmd = self.airgap();
        cmd.arg("install")
            .arg(bundle)
            .arg("--pubkey")
            .arg(pubkey)
            .arg("--root")
            .arg(&self.root)
            .args(["--access-url", &self.access_url()])
            .args(["--listen", &format!("127.0.0.1:{}", self.coderd_port)])
            .args([
                "--mirror-listen",
                &format!("127.0.0.1:{}", self.mirror_port),
            ])
            .args(["--postgres-port", &self.pg_port.to_string()])
            .args(["--service-user", SERVICE_USER]);
        cmd
    }

    /// Starts `up` in the background (stopped with SIGTERM when the site is dropped).
    pub fn start_up(&mut self) {
        self.start_up_with(&[]);
    }

    /// Starts `up` with extra environment variables (such as `NOTIFY_SOCKET`).
    pub fn start_up_with(&mut self, env: &[(&str, &str)]) {
        let mut cmd = self.airgap();
        cmd.args(["up", "--root"])
            .arg(&self.root)
            .env("CODER_AIRGAP_LOG", "info");
        for (key, value) in env {
            cmd.env(key, value);
        }
        self.up = Some(cmd.spawn().expect("spawn up"));
    }

    /// Sends SIGTERM to `up` and returns its exit status (waits up to 60 s).
    pub fn stop_up(&mut self) -> std::process::ExitStatus {
        let mut child = self.up.take().expect("up running");
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "up did not stop within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `curl --cacert ROOT/etc/ca-bundle.pem https://localhost:PORT/PATH` (clean env).
    pub fn curl(&self, port: u16, path: &str) -> Output {
        self.command("curl")
            .args(["-sS", "--fail", "--max-time", "5", "--cacert"])
            .arg(self.root.join("etc/ca-bundle.pem"))
            .arg(format!("https://localhost:{port}{path}"))
            .output()
            .expect("curl")
    }

    /// Waits until coderd answers `/healthz` through curl with the CA bundle.
    pub fn wait_healthy(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.curl(self.coderd_port, "/healthz").status.success() {
                return;
            }
            if let Some(child) = self.up.as_mut() {
                if let Some(status) = child.try_wait().expect("wait") {
                    panic!("up exited with {status} before coderd was healthy");
                }
            }
            assert!(
                Instant::now() < deadline,
                "coderd not healthy within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The supervisor's state file.
    pub fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.root.join("run/state.json")).expect("state.json");
        serde_json::from_str(&text).expect("state json")
    }

    /// Runs `sql` in the `coder` database of the embedded server as role `coder`.
    pub fn psql(&self, sql: &str) -> String {
        let password = std::fs::read_to_string(self.root.join("data/secrets/coder.password"))
            .expect("password");
        let out = self
            .command(tools::postgres_tree().join("bin/psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.pg_port.to_string(),
                "-U",
                "coder",
                "-d",
                "coder",
            ])
            .args(["-c", sql])
            .env("PGPASSWORD", password.trim())
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The release `ROOT/current` points at.
    pub fn current(&self) -> String {
        let target = std::fs::read_link(self.root.join("current")).expect("current link");
        target
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(mut child) = self.up.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
        }
    }
}

/// `kill -SIG PID`.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Waits until `check` returns Some, or panics naming `what`.
pub fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
