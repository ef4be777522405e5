//! The air-gap proof: the whole disconnected journey inside a network namespace that has
//! only loopback. verify → install → up → coderd (stand-in) healthy over TLS → the real
//! Terraform 1.0.3, with exactly the environment coderd hands it, runs `terraform init`
//! for a template whose providers come only through the appliance's mirror, and its lock
//! file's hashes are the bundle's → status and doctor report healthy → SIGTERM stops all.
//! Any attempt to reach another address fails in the namespace, so a hidden download
//! anywhere breaks this test.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use support::appliance::{bundle, Site, SERVICE_USER};
use support::ok;

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
fn the_disconnected_journey_runs_with_loopback_only() {
    if !nix_is_root() {
        eprintln!("\n\n*** SKIPPED the air-gap proof: it needs root (network namespaces). CI runs it as root. ***\n");
        return;
    }
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
    site.start_up();
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
    let out = ok(&mut as_coderd(&[
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

    assert!(site.stop_up().success(), "up did not exit 0 on SIGTERM");
    assert!(!site.root.join("data/postgres/postmaster.pid").exists());
}

fn nix_is_root() -> bool {
    // The effective uid, from /proc (the tests do not link nix).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
