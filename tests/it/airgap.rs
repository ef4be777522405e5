//! The air-gap proof: the whole disconnected journey inside a network namespace that has
//! only loopback. verify → install → up → coderd (stand-in) healthy over TLS → the real
//! Terraform 1.0.3, with exactly the environment coderd hands it, runs `terraform init`
//! for a template whose providers come only through the appliance's mirror, and its lock
//! file's hashes are the bundle's → status and doctor report healthy → SIGTERM stops all.
//! Any attempt to reach another address fails in the namespace, so a hidden download
//! anywhere breaks this test. On top of that, `up` (and so Postgres, the mirror and
//! coderd, which it starts) and the `terraform init` run under `strace -f -e
//! trace=connect`, and every connect() they make must go to loopback (127.0.0.0/8, ::1)
//! or a Unix socket: an attempt that the namespace merely made fail is caught too.

use crate::support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use support::appliance::{bundle, signal, Site, SERVICE_USER};
use support::ok;

/// `strace -f` recording every connect() of `program` and its descendants in `trace`.
fn traced(site: &Site, trace: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = site.command("strace");
    cmd.args([
        "-f",
        "-qq",
        "-e",
        "trace=connect",
        "-e",
        "signal=none",
        "-o",
    ])
    .arg(trace)
    .arg(program);
    cmd
}

/// One connect() destination outside loopback, as strace printed it; `None` when it is
/// loopback, a Unix socket, or not an address at all (AF_UNSPEC disconnects a socket).
fn outside_loopback(line: &str) -> Option<String> {
    let quoted = |after: &str| {
        line.split_once(after)
            .and_then(|(_, rest)| rest.split('"').nth(1))
            .map(str::to_string)
    };
    if line.contains("sa_family=AF_INET6") {
        let addr = quoted("inet_pton(AF_INET6, ").unwrap_or_default();
        let v4 = addr.strip_prefix("::ffff:").unwrap_or(&addr);
        let loopback = addr == "::1" || (v4 != addr && v4.starts_with("127."));
        return (!loopback).then(|| line.to_string());
    }
    if line.contains("sa_family=AF_INET") {
        let addr = quoted("sin_addr=inet_addr(").unwrap_or_default();
        return (!addr.starts_with("127.")).then(|| line.to_string());
    }
    None
}

/// Every connect() line in `trace`, and those that leave loopback.
fn connects(trace: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(trace).expect("strace output");
    let all: Vec<String> = text
        .lines()
        .filter(|l| l.contains("connect(") && l.contains("sa_family="))
        .map(str::to_string)
        .collect();
    let outside = all.iter().filter_map(|l| outside_loopback(l)).collect();
    (all, outside)
}

/// SIGTERM to the traced `up` (its pid from the state file), then strace's exit.
fn stop_traced(site: &Site, mut strace: Child) -> std::process::ExitStatus {
    let pid = site.state()["up_pid"].as_u64().expect("up_pid");
    signal(u32::try_from(pid).expect("pid"), "TERM");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = strace.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "up did not stop within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn strace_lines_are_classified_by_destination() {
    let v4 = |a: &str| {
        format!("12 connect(7, {{sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr(\"{a}\")}}, 16) = -1 ENETUNREACH")
    };
    let v6 = |a: &str| {
        format!("12 connect(7, {{sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, \"{a}\", &sin6_addr), sin6_scope_id=0}}, 28) = 0")
    };
    assert!(outside_loopback(&v4("127.0.0.1")).is_none());
    assert!(outside_loopback(&v4("127.3.2.1")).is_none());
    assert!(outside_loopback(&v4("1.1.1.1")).is_some());
    assert!(outside_loopback(&v4("10.0.0.2")).is_some());
    assert!(outside_loopback(&v6("::1")).is_none());
    assert!(outside_loopback(&v6("::ffff:127.0.0.1")).is_none());
    assert!(outside_loopback(&v6("2606:4700::1111")).is_some());
    assert!(outside_loopback(&v6("::ffff:8.8.8.8")).is_some());
    let unix = r#"12 connect(3, {sa_family=AF_UNIX, sun_path="/run/x.sock"}, 110) = 0"#;
    assert!(outside_loopback(unix).is_none());
    let unspec = "12 connect(5, {sa_family=AF_UNSPEC, sa_data=\"\"}, 16) = 0";
    assert!(outside_loopback(unspec).is_none());
}

/// A network namespace with only `lo` up, removed on drop.
struct Netns(String);

impl Netns {
    fn create() -> Netns {
        let name = format!("airgap-proof-{}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "ip netns add {name} failed (root and iproute2 needed)"
        );
        let ns = Netns(name);
        ok(Command::new("ip").args(["netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"]));
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `KEY="value"` lines of the generated env file, minus `CODER_*` (coder strips those
/// before it starts Terraform).
fn terraform_env(site: &Site) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(site.root.join("etc/coderd.env")).expect("coderd.env");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches('"')
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\"),
            )
        })
        .filter(|(k, _)| !k.starts_with("CODER_"))
        .collect()
}

fn hashes_in(text: &str) -> BTreeSet<String> {
    text.split('"')
        .filter(|s| s.starts_with("h1:") || s.starts_with("zh:"))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root: network namespaces (ip netns)"]
fn the_disconnected_journey_runs_with_loopback_only() {
    airgap_testkit::root::require_root();
    let (v1, key) = bundle("1.0.0", 1);
    let netns = Netns::create();
    let mut site = Site::new();
    site.netns = Some(netns.0.clone());

    // Nothing but loopback: the outside world is unreachable in here.
    let out = site
        .command("curl")
        .args(["-sS", "--max-time", "5", "https://1.1.1.1/"])
        .output()
        .expect("curl");
    assert!(!out.status.success(), "the namespace reaches the internet");

    ok(site
        .airgap()
        .arg("verify")
        .arg(&v1)
        .arg("--pubkey")
        .arg(&key));
    ok(&mut site.install(&v1, &key));
    // up and everything it starts, with every connect() recorded.
    let up_trace = site.dir.path().join("up.connects");
    let up = traced(&site, &up_trace, env!("CARGO_BIN_EXE_coder-airgap"))
        .args(["up", "--root"])
        .arg(&site.root)
        .env("CODER_AIRGAP_LOG", "info")
        .spawn()
        .expect("spawn strace up (apt-get install strace; scripts/test-setup)");
    site.wait_healthy(Duration::from_secs(90));

    // terraform init as coderd would run it: its environment minus CODER_*, as the service user.
    let template = site.dir.path().join("template");
    std::fs::create_dir(&template).expect("template dir");
    std::fs::write(
        template.join("main.tf"),
        "terraform {\n  required_providers {\n    coder = {\n      source  = \"coder/coder\"\n      version = \"2.1.0\"\n    }\n  }\n}\n",
    )
    .expect("main.tf");
    std::fs::set_permissions(&template, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let as_coderd = |args: &[&str]| {
        let mut cmd = site.command("setpriv");
        cmd.args([
            "--reuid",
            SERVICE_USER,
            "--regid",
            SERVICE_USER,
            "--clear-groups",
        ])
        .args(["env", "-i"])
        .args(terraform_env(&site).iter().map(|(k, v)| format!("{k}={v}")))
        .args(args)
        .current_dir(&template);
        cmd
    };
    let which = ok(&mut as_coderd(&["sh", "-c", "command -v terraform"]));
    let bundled_tf = site.root.join("current/bin/terraform");
    assert_eq!(
        String::from_utf8_lossy(&which.stdout).trim(),
        bundled_tf.display().to_string()
    );
    let tf_trace = site.dir.path().join("terraform.connects");
    std::fs::write(&tf_trace, "").expect("trace file");
    std::fs::set_permissions(&tf_trace, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let tf_trace_arg = tf_trace.display().to_string();
    let out = ok(&mut as_coderd(&[
        "strace",
        "-f",
        "-qq",
        "-e",
        "trace=connect",
        "-e",
        "signal=none",
        "-o",
        &tf_trace_arg,
        "terraform",
        "init",
        "-input=false",
        "-no-color",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Installing coder/coder v2.1.0"), "{stdout}");

    let lock = std::fs::read_to_string(template.join(".terraform.lock.hcl")).expect("lock file");
    let got = hashes_in(&lock);
    let bundle_lock: serde_json::Value = serde_json::from_slice(
        &std::fs::read(site.root.join("current/appliance.lock.json")).expect("bundle lock"),
    )
    .expect("json");
    let bundled: BTreeSet<String> = bundle_lock["components"]["providers"]["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .flat_map(|p| p["hashes"].as_array().cloned().unwrap_or_default())
        .filter_map(|h| h.as_str().map(str::to_string))
        .collect();
    assert!(!got.is_empty(), "no hashes in {lock}");
    assert!(
        got.is_subset(&bundled),
        "lock hashes {got:?} not all in the bundle's {bundled:?}"
    );

    ok(site.airgap().args(["status", "--root"]).arg(&site.root));
    let doctor = ok(site.airgap().args(["doctor", "--root"]).arg(&site.root));
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(!report.contains("FAIL"), "{report}");

    assert!(report.contains("ok   posture-telemetry-url"), "{report}");
    assert!(
        report.contains("ok   posture-github-external-auth"),
        "{report}"
    );

    assert!(
        stop_traced(&site, up).success(),
        "up did not exit 0 on SIGTERM"
    );
    assert!(!site.root.join("data/postgres/postmaster.pid").exists());

    // The record: connections were made (the trace works), and none left loopback.
    for trace in [&up_trace, &tf_trace] {
        let (all, outside) = connects(trace);
        assert!(
            all.iter().any(|l| l.contains("inet_addr(\"127.")),
            "no loopback connect() recorded in {}: the trace is not working",
            trace.display()
        );
        assert!(
            outside.is_empty(),
            "connect() outside loopback in {}:\n{}",
            trace.display(),
            outside.join("\n")
        );
    }
}
