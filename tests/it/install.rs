//! `coder-airgap install` on its own (no `up`): atomic switching under SIGKILL, the
//! rollback-attack and expiry refusals, the disk check, and what it writes.

use crate::support;

use crate::forge;

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use airgap_appliance::install::Step;

use support::appliance::{bundle, Site};
use support::{fails, ok};

fn release_complete(root: &Path, name: &str) -> bool {
    let dir = root.join("releases").join(name);
    dir.join(".manifest.json").is_file() && dir.join("bin/coder").is_file()
}

#[test]
fn install_writes_the_appliance_tree_with_private_secrets() {
    let site = Site::new();
    let (v1, key) = bundle("1.0.0", 1);
    let out = ok(&mut site.install(&v1, &key));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("installed test-appliance 1.0.0 sequence 1"),
        "{stdout}"
    );
    assert_eq!(site.current(), "1.0.0-1");
    let root = &site.root;
    for file in [
        "etc/ca-bundle.pem",
        "etc/terraformrc",
        "etc/coder-airgap.toml",
        "etc/systemd/coder-airgap.service",
        "etc/tls/coderd.crt",
        "etc/tls/mirror.crt",
        "bin/coder-airgap",
    ] {
        assert!(root.join(file).exists(), "{file} missing");
    }
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .expect(p)
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("etc/coderd.env"), 0o600);
    assert_eq!(mode("data/secrets"), 0o700);
    let env = std::fs::read_to_string(root.join("etc/coderd.env")).expect("env");
    for line in [
        "CODER_TELEMETRY_ENABLE=\"false\"",
        "CODER_BLOCK_DIRECT=\"true\"",
        "CODER_DERP_SERVER_STUN_ADDRESSES=\"disable\"",
        &format!("CODER_ACCESS_URL=\"{}\"", site.access_url()),
    ] {
        assert!(env.contains(line), "{line} not in coderd.env");
    }
    assert!(env.contains(&format!("@127.0.0.1:{}/coder", site.pg_port)));
    let rc = std::fs::read_to_string(root.join("etc/terraformrc")).expect("rc");
    assert!(
        rc.contains(&format!("https://127.0.0.1:{}/", site.mirror_port)),
        "{rc}"
    );
    assert!(!rc.contains("direct"), "{rc}");
    let unit =
        std::fs::read_to_string(root.join("etc/systemd/coder-airgap.service")).expect("unit");
    assert!(
        unit.contains("User=airgap-svc") && unit.contains("NoNewPrivileges=yes"),
        "{unit}"
    );
    // The certificate chains to the CA and names the access host.
    let verify = support::tools::clean_command("openssl")
        .args(["verify", "-CAfile"])
        .arg(root.join("etc/ca-bundle.pem"))
        .arg("-untrusted")
        .arg(root.join("etc/tls/coderd.crt"))
        .arg(root.join("etc/tls/coderd.crt"))
        .output()
        .expect("openssl");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn a_lower_sequence_is_refused_unless_allowed() {
    let site = Site::new();
    let (v1, key) = bundle("1.0.0", 1);
    let (v2, _) = bundle("1.1.0", 2);
    ok(&mut site.install(&v2, &key));
    let err = fails(&mut site.install(&v1, &key));
    assert!(
        err.contains("sequence 1, lower than the installed"),
        "{err}"
    );
    assert!(err.contains("--allow-downgrade"), "{err}");
    assert_eq!(site.current(), "1.1.0-2");
    assert!(
        !site.root.join("releases/1.0.0-1").exists(),
        "nothing unpacked"
    );
    ok(site.install(&v1, &key).arg("--allow-downgrade"));
    assert_eq!(site.current(), "1.0.0-1");
}

#[test]
fn an_expired_bundle_is_refused_unless_allowed() {
    let site = Site::new();
    let (_, key) = bundle("1.0.0", 1);
    let expired = site.dir.path().join("expired.tar.gz");
    let ten_days_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 10 * 86_400;
    let kit_stage = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("appliance-kit/appliance-1.0.0-1.stage");
    ok(site
        .airgap()
        .arg("pack")
        .arg(&kit_stage)
        .arg("--key")
        .arg(key.with_file_name("bundle.key"))
        .arg("--out")
        .arg(&expired)
        .args(["--expires-in-days", "1", "--sequence", "3"])
        .args(["--source-date-epoch", &ten_days_ago.to_string()]));
    let err = fails(&mut site.install(&expired, &key));
    assert!(err.contains("expired"), "{err}");
    assert!(!site.root.join("current").exists());
    ok(site.install(&expired, &key).arg("--allow-expired"));
    assert_eq!(site.current(), "1.0.0-3");
}

#[test]
fn sigkill_at_any_point_leaves_current_on_the_old_or_the_new_release() {
    let site = Site::new();
    let (v1, key) = bundle("1.0.0", 1);
    let (v2, _) = bundle("1.1.0", 2);
    ok(&mut site.install(&v1, &key));
    // One run per step of the install plan, killed as it announces that step.
    for step in Step::ALL {
        let mut cmd = site.install(&v2, &key);
        let mut child = cmd
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn install");
        let stderr = child.stderr.take().expect("stderr");
        let mut said = Vec::new();
        let reached = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .inspect(|line| said.push(line.clone()))
            .any(|line| line == step.line());
        // The whole group: install, its database step and a Postgres it started.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status();
        let _ = child.wait();
        let step = step.name();
        assert!(
            reached,
            "install never entered step {step}; it said:\n{}",
            said.join("\n")
        );
        let current = site.current();
        assert!(
            current == "1.0.0-1" || current == "1.1.0-2",
            "after SIGKILL at step {step} current is {current}"
        );
        assert!(
            release_complete(&site.root, &current),
            "{current} incomplete after kill at step {step}"
        );
    }
    // Whatever was left, a new run completes.
    ok(&mut site.install(&v2, &key));
    assert_eq!(site.current(), "1.1.0-2");
    let previous = std::fs::read_link(site.root.join("previous")).expect("previous");
    assert!(previous.ends_with("1.0.0-1"), "{previous:?}");
}

#[test]
#[ignore = "needs root: mounts a small tmpfs"]
fn too_little_disk_is_refused_with_the_figures() {
    airgap_testkit::root::require_root();
    let site = Site::new();
    let (v1, key) = bundle("1.0.0", 1);
    let small = site.dir.path().join("small");
    std::fs::create_dir(&small).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "cannot mount a tmpfs at {}", small.display());
    let mut elsewhere = Site::new();
    elsewhere.root = small.join("root");
    let mut cmd = elsewhere.install(&v1, &key);
    let err = fails(&mut cmd);
    let _ = std::process::Command::new("umount").arg(&small).status();
    assert!(err.contains("not enough free disk"), "{err}");
    assert!(err.contains("MiB free"), "{err}");
}

/// Every path under `dir` with its kind and size, sorted: what "unchanged" means here.
fn snapshot(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let rel = path
                .strip_prefix(base)
                .expect("prefix")
                .display()
                .to_string();
            out.push(format!("{rel} {:?} {}", meta.file_type(), meta.len()));
            if meta.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A one-file bundle forged as `version`/`sequence` and signed (manifest and file) with
/// the secret key `key`: `pack` refuses such names itself, so the test forges it with the
/// bundle crate's own forger.
fn tiny_bundle(site: &Site, key: &Path, version: &str, sequence: u64) -> std::path::PathBuf {
    let secret = airgap_bundle::SecretKey::from_file(key, None).expect("secret key");
    let coder: &[u8] = b"#!/bin/sh\n";
    let mut manifest = forge::manifest_for(&[("bin/coder", coder)], &["bin"]);
    manifest.version = version.into();
    manifest.sequence = sequence;
    let mut members = forge::metadata(&manifest, &secret);
    members.extend([forge::Raw::dir("bin"), forge::Raw::file("bin/coder", coder)]);
    let gz = forge::gzip(&forge::tar_bytes(&members));
    forge::write_signed(
        site.dir.path(),
        &format!("tiny-{sequence}.tar.gz"),
        &gz,
        &secret,
    )
}

#[test]
fn a_hostile_version_never_names_a_path_outside_root() {
    let site = Site::new();
    let (v1, key) = bundle("1.0.0", 1);
    ok(&mut site.install(&v1, &key));
    // Old installs removed ROOT/releases/VERSION-SEQUENCE before the signature check:
    // with this version that is site.dir/victim-5, outside ROOT.
    let victim = site.dir.path().join("victim-5");
    std::fs::create_dir(&victim).expect("mkdir");
    std::fs::write(victim.join("precious"), b"keep me").expect("write");
    let before = snapshot(&site.root);

    let other = site.dir.path().join("other-key");
    ok(site
        .airgap()
        .args(["keygen", "--unencrypted", "--out"])
        .arg(&other));
    let wrongly_signed = tiny_bundle(&site, &other.join("bundle.key"), "../../victim", 5);
    let err = fails(&mut site.install(&wrongly_signed, &key));
    assert!(err.contains("signed by key"), "{err}");

    let signed = tiny_bundle(&site, &key.with_file_name("bundle.key"), "../../victim", 6);
    std::fs::create_dir(site.dir.path().join("victim-6")).expect("mkdir");
    let err = fails(&mut site.install(&signed, &key));
    assert!(err.contains("version \"../../victim\" is refused"), "{err}");

    assert_eq!(
        std::fs::read(victim.join("precious")).expect("victim"),
        b"keep me"
    );
    assert!(site.dir.path().join("victim-6").is_dir());
    assert_eq!(snapshot(&site.root), before, "ROOT changed");
    assert_eq!(site.current(), "1.0.0-1");
}

/// The kit's 1.0.0-1 stage copied (hard links) with `remove` deleted, packed as
/// `version`-`sequence` with the kit key and `extra` pack arguments.
fn altered_bundle(
    site: &Site,
    key: &Path,
    remove: &str,
    sequence: u64,
    extra: &[&str],
) -> std::path::PathBuf {
    let tmp = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let kit_stage = tmp.join("appliance-kit/appliance-1.0.0-1.stage");
    // Beside the kit's stage, so hard links work (the site may be on another filesystem).
    let copy = tempfile::tempdir_in(&tmp).expect("tempdir");
    let stage = copy.path().join("stage");
    let copied = std::process::Command::new("cp")
        .arg("-al")
        .arg(&kit_stage)
        .arg(&stage)
        .status()
        .expect("cp");
    assert!(copied.success());
    if !remove.is_empty() {
        let target = stage.join(remove);
        assert!(target.exists(), "{remove} not in the kit stage");
        std::fs::remove_file(&target).expect("rm");
    }
    let out = site.dir.path().join(format!("altered-{sequence}.tar.gz"));
    ok(site
        .airgap()
        .arg("pack")
        .arg(&stage)
        .arg("--key")
        .arg(key.with_file_name("bundle.key"))
        .arg("--out")
        .arg(&out)
        .args(["--version", "2.0.0", "--sequence", &sequence.to_string()])
        .args(extra));
    out
}

#[test]
fn incomplete_or_foreign_bundles_are_refused_and_current_stays() {
    let site = Site::new();
    let (v1, key) = bundle("1.0.0", 1);
    ok(&mut site.install(&v1, &key));
    let before = snapshot(&site.root.join("releases"));
    let lock: serde_json::Value = serde_json::from_slice(
        &std::fs::read(site.root.join("current/appliance.lock.json")).expect("lock"),
    )
    .expect("lock json");
    let pg_dump = format!(
        "{}/pg_dump",
        lock["components"]["postgres"]["bindir"]
            .as_str()
            .expect("bindir")
    );
    let provider_zip = format!(
        "providers/registry.terraform.io/coder/coder/terraform-provider-coder_{}_linux_amd64.zip",
        airgap_testkit::appliance::PROVIDERS[0].2
    );
    let cases: [(&str, &[&str], String); 4] = [
        (
            "bin/terraform",
            &[],
            "Terraform (bin/terraform) is missing".to_string(),
        ),
        (
            pg_dump.as_str(),
            &[],
            format!("Postgres tool pg_dump ({pg_dump}) is missing"),
        ),
        (
            provider_zip.as_str(),
            &[],
            format!("({provider_zip}) is missing"),
        ),
        (
            "",
            &["--platform", "linux_arm64"],
            "the bundle is for linux_arm64, but this host is linux_amd64".to_string(),
        ),
    ];
    for (i, (remove, extra, expected)) in cases.iter().enumerate() {
        let altered = altered_bundle(&site, &key, remove, 10 + i as u64, extra);
        let err = fails(&mut site.install(&altered, &key));
        assert!(err.contains(expected.as_str()), "{remove}: {err}");
        assert_eq!(site.current(), "1.0.0-1", "{remove}: current moved");
        assert_eq!(
            snapshot(&site.root.join("releases")),
            before,
            "{remove}: a release or staging directory was left"
        );
    }
}
/// Runs `script` with `sh -c` as the service user (`runuser`), as the hostile user would.
fn as_service_user(script: &str) -> std::process::Output {
    std::process::Command::new("/usr/sbin/runuser")
        .args([
            "-u",
            support::appliance::SERVICE_USER,
            "--",
            "sh",
            "-c",
            script,
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("runuser")
}

/// Asserts the service user's `script` fails with "Permission denied" (EACCES).
fn service_user_is_denied(script: &str) {
    let out = as_service_user(script);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("Permission denied"),
        "the service user could run {script:?}: {stderr}"
    );
}

/// Asserts the service user's `script` succeeds (a plant it can make).
fn service_user_plants(script: &str) {
    let out = as_service_user(script);
    assert!(
        out.status.success(),
        "{script:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Files outside ROOT the plants point at, and a check that none of them changed.
struct Outside {
    dir: std::path::PathBuf,
}

impl Outside {
    const NAMES: [&'static str; 7] = [
        "coder-airgap.toml",
        "terraformrc",
        "ca-bundle.pem",
        "coderd.env",
        "external-postgres.url",
        "coder-airgap",
        "up.lock",
    ];

    fn new(site: &Site) -> Outside {
        let dir = site.dir.path().join("outside");
        std::fs::create_dir_all(dir.join("releases")).expect("mkdir");
        for name in Self::NAMES {
            std::fs::write(dir.join(name), format!("outside {name}\n")).expect("write");
        }
        Outside { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn assert_unchanged(&self) {
        for name in Self::NAMES {
            let text = std::fs::read_to_string(self.dir.join(name)).expect("outside file");
            assert_eq!(
                text,
                format!("outside {name}\n"),
                "{name} outside ROOT changed"
            );
        }
        let planted: Vec<_> = std::fs::read_dir(self.dir.join("releases"))
            .expect("outside dir")
            .collect();
        assert!(planted.is_empty(), "written outside ROOT: {planted:?}");
    }
}

#[test]
#[ignore = "needs root: plants files as the service user"]
fn links_and_swaps_planted_by_the_service_user_are_never_followed_by_root() {
    use std::os::unix::fs::MetadataExt;
    airgap_testkit::root::require_root();
    let mut site = Site::new();
    let (v1, key) = bundle("1.0.0", 1);
    let (v2, _) = bundle("1.1.0", 2);
    ok(&mut site.install(&v1, &key));
    let outside = Outside::new(&site);
    let root = site.root.display().to_string();

    // Under the new ownership the service user cannot plant anything root writes through.
    for file in [
        "coder-airgap.toml",
        "terraformrc",
        "ca-bundle.pem",
        "coderd.env",
    ] {
        service_user_is_denied(&format!("ln -sfn {} {root}/etc/{file}", outside.path(file)));
    }
    service_user_is_denied(&format!("mv {root}/releases {root}/releases.old"));
    service_user_is_denied(&format!(
        "ln -s {} {root}/releases.new",
        outside.path("releases")
    ));
    service_user_is_denied(&format!("mv {root}/etc {root}/etc.old"));
    service_user_is_denied(&format!(
        "ln -sfn {} {root}/bin/coder-airgap",
        outside.path("coder-airgap")
    ));
    service_user_is_denied(&format!(
        "ln -s {} {root}/bin/evil",
        outside.path("coder-airgap")
    ));
    service_user_is_denied(&format!(
        "ln -sfn {} {root}/previous",
        outside.path("releases")
    ));
    service_user_is_denied(&format!("touch {root}/etc/tls/planted"));
    // The service user's own directories: it can plant there, and root does not follow.
    service_user_plants(&format!(
        "ln -sfn {} {root}/run/up.lock && ln -s {} {root}/run/planted && \
         ln -s {} {root}/run/state.json",
        outside.path("up.lock"),
        outside.path("releases"),
        outside.path("terraformrc"),
    ));
    ok(&mut site.install(&v2, &key));
    assert_eq!(site.current(), "1.1.0-2");
    outside.assert_unchanged();

    // `up` started as root after the plants, then a rollback.
    site.start_up();
    site.wait_healthy(Duration::from_secs(90));
    assert!(site.stop_up().success());
    outside.assert_unchanged();
    service_user_plants(&format!(
        "ln -sfn {} {root}/run/up.lock",
        outside.path("up.lock")
    ));
    let rolled = ok(site.airgap().args(["rollback", "--root"]).arg(&site.root));
    assert!(
        String::from_utf8_lossy(&rolled.stdout).contains("current release: 1.0.0-1"),
        "{}",
        String::from_utf8_lossy(&rolled.stdout)
    );
    assert_eq!(site.current(), "1.0.0-1");
    outside.assert_unchanged();

    // A tree left with the old ownership (the service user owned everything): root meets
    // the plants, and install refuses with the path and the fix.
    let chown = |path: &str, owner: &str| {
        let status = std::process::Command::new("chown")
            .arg(owner)
            .arg(format!("{root}/{path}"))
            .status()
            .expect("chown");
        assert!(status.success());
    };
    let refused = |what: &str, dir: &str| {
        let err = fails(&mut site.install(&v2, &key));
        let path = if dir.is_empty() {
            root.clone()
        } else {
            format!("{root}/{dir}")
        };
        assert!(
            err.contains(&format!("{path} is owned by uid"))
                && err.contains(&format!("chown root:root {path} && chmod 755 {path}")),
            "{what}: {err}"
        );
        outside.assert_unchanged();
    };
    let svc = support::appliance::SERVICE_USER;
    chown("etc", svc);
    service_user_plants(&format!(
        "for f in coder-airgap.toml terraformrc ca-bundle.pem coderd.env; do \
         ln -sfn {}/$f {root}/etc/$f || exit 1; done",
        outside.dir.display()
    ));
    refused("links in etc", "etc");
    chown("etc", "root:root");
    // Fixed as the message says, the settings link is still refused, not read; removed,
    // install replaces the other links without following them.
    let err = fails(&mut site.install(&v2, &key));
    assert!(
        err.contains(&format!(
            "{root}/etc/coder-airgap.toml is a symbolic link or not a regular file"
        )),
        "{err}"
    );
    outside.assert_unchanged();
    std::fs::remove_file(site.root.join("etc/coder-airgap.toml")).expect("rm link");
    ok(&mut site.install(&v2, &key));
    outside.assert_unchanged();
    let meta = std::fs::symlink_metadata(site.root.join("etc/terraformrc")).expect("rc");
    assert!(
        meta.is_file() && meta.uid() == 0,
        "terraformrc replaced by root's file"
    );

    chown("bin", svc);
    service_user_plants(&format!(
        "ln -sfn {} {root}/bin/coder-airgap",
        outside.path("coder-airgap")
    ));
    refused("a link in bin", "bin");
    chown("bin", "root:root");

    chown("", svc);
    service_user_plants(&format!(
        "mv {root}/releases {root}/releases.old && ln -s {} {root}/releases && \
         mv {root}/etc {root}/etc.old && ln -s {} {root}/etc",
        outside.path("releases"),
        outside.dir.display()
    ));
    refused("releases and etc swapped for links", "");
    outside.assert_unchanged();
}
