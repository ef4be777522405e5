//! `coder-airgap sync` against local stand-ins for the HashiCorp releases site, Coder's
//! GitHub releases, the Postgres archives and a provider registry (all signed with keys
//! the tests make), then the whole journey: sync → pack → verify → inspect.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use airgap_testkit::hostile::{hostile_tar_gz, HostileTar, ALL_TARS};
use airgap_testkit::registry::{stranger_key, ProviderFixture, Registry};
use airgap_testkit::releases::{
    publish_coder, publish_postgres, publish_terraform, release_key, ReleaseFaults, ReleaseSites,
    ReleaseVersions,
};
use airgap_testkit::server::Hostile;
use serde_json::Value;
use support::{airgap, fails, ok, tools};

/// Stand-in upstreams, a spec pointing at them, and a place for the stage.
struct Env {
    dir: tempfile::TempDir,
    sites: ReleaseSites,
    _registry: Registry,
    spec: PathBuf,
}

impl Env {
    fn stage(&self) -> PathBuf {
        self.dir.path().join("stage")
    }

    fn downloads(&self) -> PathBuf {
        self.dir.path().join("stage.downloads")
    }

    fn sync(&self) -> Command {
        self.sync_into(&self.stage())
    }

    fn sync_into(&self, out: &Path) -> Command {
        let mut cmd = airgap();
        cmd.arg("sync")
            .arg("--spec")
            .arg(&self.spec)
            .arg("--out")
            .arg(out)
            .args(["--quiet", "--retries", "1"]);
        cmd
    }

    fn lock(&self) -> Value {
        let bytes = std::fs::read(self.stage().join("appliance.lock.json")).expect("lock file");
        serde_json::from_slice(&bytes).expect("lock json")
    }

    fn republish_terraform(&self, faults: ReleaseFaults) {
        let v = &self.sites.versions;
        publish_terraform(&self.sites.hashicorp.site, v, release_key(), faults).expect("publish");
    }
}

fn env() -> Env {
    env_with(None)
}

fn env_with(pki: Option<&airgap_testkit::pki::TestPki>) -> Env {
    let tls = pki.map(|p| p.server_config().expect("tls config"));
    let dir = tempfile::tempdir().expect("tempdir");
    let sites = ReleaseSites::start(&ReleaseVersions::default(), tls.clone()).expect("sites");
    let fixture = ProviderFixture::new("coder", "coder", &["2.1.0", "2.2.0"], &["linux_amd64"]);
    let registry = Registry::start(&[fixture], tls).expect("registry");
    let key_file = dir.path().join("release-key.asc");
    std::fs::write(&key_file, &release_key().public_armored).expect("key");
    let spec = dir.path().join("appliance.toml");
    std::fs::write(&spec, spec_text(&sites, &registry, true)).expect("spec");
    Env {
        dir,
        sites,
        _registry: registry,
        spec,
    }
}

fn spec_text(sites: &ReleaseSites, registry: &Registry, pin_terraform: bool) -> String {
    let fpr = &release_key().fingerprint;
    let tf_pin = if pin_terraform {
        format!("key_fingerprint = \"{fpr}\"")
    } else {
        String::new()
    };
    format!(
        r#"
[bundle]
name = "test-appliance"
version = "2026.11.23"
sequence = 7
expires_in_days = 30
platforms = ["linux_amd64"]

[coder]
version = "2.35.3"
base_url = "{coder}"
docs = true
key_file = "release-key.asc"
key_fingerprint = "{fpr}"

[terraform]
version = "1.15.5"
base_url = "{hashicorp}"
key_file = "release-key.asc"
{tf_pin}

[postgres]
version = "15.18.0"
base_url = "{postgres}"

[[providers]]
source = "coder/coder"
versions = "~> 2.0"
platforms = ["linux_amd64"]

[registries]
"registry.terraform.io" = "{discovery}"
"#,
        coder = sites.coder.base_url(),
        hashicorp = sites.hashicorp.base_url(),
        postgres = sites.postgres.base_url(),
        discovery = registry.discovery_url(),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn archive_gets(env: &Env) -> usize {
    [&env.sites.hashicorp, &env.sites.coder, &env.sites.postgres]
        .iter()
        .flat_map(|s| s.site.requests())
        .filter(|r| {
            r.path.ends_with(".zip") || r.path.ends_with(".tar.gz") || r.path.ends_with(".tgz")
        })
        .count()
}

fn clear_logs(env: &Env) {
    for s in [&env.sites.hashicorp, &env.sites.coder, &env.sites.postgres] {
        s.site.clear_requests();
    }
}

#[test]
fn good_run_stages_every_component_and_the_next_run_downloads_nothing() {
    let env = env();
    ok(&mut env.sync());
    let stage = env.stage();
    for exe in [
        "bin/coder",
        "bin/terraform",
        "postgres/bin/pg_ctl",
        "postgres/bin/psql",
    ] {
        assert_eq!(mode(&stage.join(exe)), 0o755, "{exe}");
    }
    let coder = std::fs::read_to_string(stage.join("bin/coder")).expect("coder");
    assert!(
        coder.contains("v2.35.3") && coder.contains("linux_amd64"),
        "{coder}"
    );
    assert!(stage.join("docs/README.md").is_file());
    assert!(stage
        .join("providers/registry.terraform.io/coder/coder/index.json")
        .is_file());
    assert!(!stage.join(".sync-tmp").exists());
    assert!(!stage.join("providers/.airgap-partial").exists());

    let lock = env.lock();
    assert_eq!(lock["format"], 1);
    assert_eq!(lock["bundle"]["name"], "test-appliance");
    assert_eq!(lock["bundle"]["sequence"], 7);
    assert_eq!(lock["bundle"]["platform"], "linux_amd64");
    let c = &lock["components"];
    assert_eq!(c["coderd"]["version"], "2.35.3");
    assert_eq!(c["coderd"]["paths"][0], "bin/coder");
    // maxTerraformVersion in provisioner/terraform/install.go at v2.35.x (src/sync/spec.rs).
    assert_eq!(c["coderd"]["terraform_range"]["min"], "1.1.0");
    assert_eq!(c["coderd"]["terraform_range"]["max"], "1.14.9");
    assert_eq!(c["terraform"]["version"], "1.15.5");
    assert_eq!(c["postgres"]["version"], "15.18.0");
    assert_eq!(c["postgres"]["bindir"], "postgres/bin");
    assert_eq!(c["docs"]["paths"][0], "docs");
    let providers = c["providers"]["providers"].as_array().expect("providers");
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["source"], "registry.terraform.io/coder/coder");
    assert_eq!(providers[0]["version"], "2.2.0");
    let hashes = providers[0]["hashes"].to_string();
    assert!(hashes.contains("h1:") && hashes.contains("zh:"), "{hashes}");
    let tf = &c["terraform"]["artifacts"][0];
    assert_eq!(tf["file"], "terraform_1.15.5_linux_amd64.zip");
    assert!(tf["url"]
        .as_str()
        .expect("url")
        .starts_with("http://127.0.0.1:"));
    assert_eq!(tf["sha256"].as_str().map(str::len), Some(64));

    // Incremental: everything is cached and verified, so no archive is fetched again.
    clear_logs(&env);
    let first = std::fs::read(stage.join("appliance.lock.json")).expect("lock");
    ok(&mut env.sync());
    assert_eq!(
        archive_gets(&env),
        0,
        "second run downloaded archives again"
    );
    let second = std::fs::read(stage.join("appliance.lock.json")).expect("lock");
    assert_eq!(first, second, "the lock is deterministic");
}

#[test]
fn bad_signature_is_refused_and_the_stage_is_untouched() {
    let env = env();
    env.republish_terraform(ReleaseFaults {
        bad_signature: true,
        ..Default::default()
    });
    let err = fails(&mut env.sync());
    assert!(err.contains("does not verify"), "{err}");
    assert!(
        err.contains("terraform_1.15.5_SHA256SUMS.72D7468F.sig"),
        "{err}"
    );
    assert!(
        !env.stage().join("bin/coder").exists(),
        "nothing may be staged"
    );
    assert!(!env.stage().join("appliance.lock.json").exists());
}

#[test]
fn legacy_signature_name_is_accepted() {
    let env = env();
    env.republish_terraform(ReleaseFaults {
        legacy_signature_only: true,
        ..Default::default()
    });
    ok(&mut env.sync());
    assert!(env.stage().join("bin/terraform").is_file());
}

#[test]
fn terraform_key_must_have_the_pinned_fingerprint() {
    let env = env();
    let test_key = &release_key().fingerprint;
    // Explicitly pinned to another key.
    let stranger = &stranger_key().fingerprint;
    let err = fails(
        env.sync()
            .arg("--set")
            .arg(format!("terraform.key_fingerprint={stranger}")),
    );
    assert!(err.contains(stranger) && err.contains(test_key), "{err}");
    assert!(err.contains("terraform.key_fingerprint"), "{err}");
    // Not set at all: the default is HashiCorp's key, which the test key is not.
    let unpinned = env.dir.path().join("unpinned.toml");
    std::fs::write(&unpinned, spec_text(&env.sites, &env._registry, false)).expect("spec");
    let err = fails(
        airgap()
            .args(["sync", "--quiet", "--spec"])
            .arg(&unpinned)
            .arg("--out")
            .arg(env.stage()),
    );
    assert!(
        err.contains("C874011F0AB405110D02105534365D9472D7468F"),
        "{err}"
    );
    assert!(err.contains(test_key), "{err}");
}

#[test]
fn expired_key_is_reported_as_expired() {
    let env = env();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("mirror/tests/fixtures");
    let site = &env.sites.hashicorp.site;
    let sums = std::fs::read(fixtures.join("SHA256SUMS")).expect("sums");
    let sig = std::fs::read(fixtures.join("expired.sig")).expect("sig");
    site.insert(
        "/terraform/1.15.5/terraform_1.15.5_SHA256SUMS",
        sums,
        "text/plain",
    );
    site.insert(
        "/terraform/1.15.5/terraform_1.15.5_SHA256SUMS.72D7468F.sig",
        sig,
        "application/octet-stream",
    );
    let fpr = std::fs::read_to_string(fixtures.join("expired.fpr")).expect("fpr");
    let err = fails(
        env.sync()
            .arg("--set")
            .arg(format!(
                "terraform.key_file={}",
                fixtures.join("expired.pub.asc").display()
            ))
            .arg("--set")
            .arg(format!("terraform.key_fingerprint={}", fpr.trim())),
    );
    assert!(err.contains("EXPIRED on "), "{err}");
    assert!(err.contains(fpr.trim()), "{err}");
    assert!(err.contains("refreshed copy"), "{err}");
}

#[test]
fn checksum_mismatch_is_refused() {
    let env = env();
    let v = &env.sites.versions;
    let faults = ReleaseFaults {
        wrong_checksum: true,
        ..Default::default()
    };
    publish_coder(&env.sites.coder.site, v, release_key(), faults, "").expect("publish");
    let err = fails(&mut env.sync());
    assert!(err.contains("coder_2.35.3_linux_amd64.tar.gz"), "{err}");
    assert!(err.contains("sha256"), "{err}");
    assert!(!env.stage().join("bin/coder").exists());
    publish_postgres(&env.sites.postgres.site, v, faults).expect("publish");
    publish_coder(
        &env.sites.coder.site,
        v,
        release_key(),
        ReleaseFaults::default(),
        "",
    )
    .expect("publish");
    let err = fails(&mut env.sync());
    assert!(
        err.contains("postgresql-15.18.0-x86_64-unknown-linux-gnu.tar.gz"),
        "{err}"
    );
}

#[test]
fn truncated_download_fails_then_the_next_run_resumes_it() {
    let env = env();
    let site = &env.sites.postgres.site;
    site.cut_next_bodies(100, ".tar.gz");
    let err = fails(&mut env.sync());
    assert!(
        err.contains("postgresql-15.18.0-x86_64-unknown-linux-gnu.tar.gz"),
        "{err}"
    );
    assert!(err.contains("gave up"), "{err}");
    assert!(
        !env.stage().join("postgres").exists(),
        "no half-written postgres"
    );
    let part = env
        .downloads()
        .join("postgresql-15.18.0-x86_64-unknown-linux-gnu.tar.gz.part");
    assert!(part.is_file(), "the partial download is kept for resuming");

    site.cut_next_bodies(0, ".tar.gz");
    site.clear_requests();
    ok(&mut env.sync());
    assert!(env.stage().join("postgres/bin/initdb").is_file());
    let resumed = site.requests().iter().any(|r| {
        r.path.ends_with(".tar.gz") && r.range.as_deref().is_some_and(|r| r != "bytes=0-")
    });
    assert!(resumed, "expected a Range request: {:?}", site.requests());
}

#[test]
fn locked_refetches_exactly_and_fails_on_drift() {
    let env = env();
    ok(&mut env.sync());
    ok(env.sync().arg("--locked"));
    let before = std::fs::read(env.stage().join("bin/coder")).expect("coder");
    // A spec that pins another version than the lock is drift.
    let err = fails(
        env.sync()
            .args(["--locked", "--set", "terraform.version=1.15.6"]),
    );
    assert!(
        err.contains("the spec pins 1.15.6, the lock file has 1.15.5"),
        "{err}"
    );
    // Upstream rebuilds the same version: new bytes, new (validly signed) checksums.
    let v = &env.sites.versions;
    publish_coder(
        &env.sites.coder.site,
        v,
        release_key(),
        ReleaseFaults::default(),
        "rebuilt",
    )
    .expect("publish");
    let err = fails(env.sync().arg("--locked"));
    assert!(err.contains("drifted"), "{err}");
    assert!(err.contains("coder_2.35.3_linux_amd64.tar.gz"), "{err}");
    assert_eq!(
        std::fs::read(env.stage().join("bin/coder")).expect("coder"),
        before
    );
    // Without --locked the new upstream is accepted.
    ok(&mut env.sync());
    assert_ne!(
        std::fs::read(env.stage().join("bin/coder")).expect("coder"),
        before
    );
}

#[test]
fn local_inputs_are_hashed_and_recorded() {
    let env = env();
    ok(&mut env.sync());
    let inputs = env.dir.path().join("inputs");
    std::fs::create_dir_all(&inputs).expect("mkdir");
    let coder = inputs.join("coder");
    std::fs::write(
        &coder,
        airgap_testkit::releases::coder_script("2.35.3", "local"),
    )
    .expect("write");
    std::fs::set_permissions(&coder, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let zip = inputs.join("terraform_1.15.5_linux_amd64.zip");
    let body = env
        .sites
        .hashicorp
        .site
        .get("/terraform/1.15.5/terraform_1.15.5_linux_amd64.zip")
        .expect("zip");
    std::fs::write(&zip, &body).expect("write");
    let second = env.dir.path().join("second");
    ok(env
        .sync_into(&second)
        .arg("--coder-from")
        .arg(&coder)
        .arg("--terraform-from")
        .arg(&zip)
        .arg("--providers-from")
        .arg(env.stage().join("providers")));
    let lock: Value =
        serde_json::from_slice(&std::fs::read(second.join("appliance.lock.json")).expect("lock"))
            .expect("json");
    let c = &lock["components"];
    assert_eq!(c["coderd"]["version"], "2.35.3", "asked the binary");
    let art = &c["coderd"]["artifacts"][0];
    assert!(
        art["url"].as_str().expect("url").starts_with("file:///"),
        "{art}"
    );
    let sha = airgap_mirror::hash::sha256_file(&coder).expect("sha");
    assert_eq!(art["sha256"], sha.as_str());
    assert_eq!(c["terraform"]["version"], "1.15.5");
    assert!(second.join("bin/terraform").is_file());
    assert_eq!(
        c["providers"]["providers"],
        env.lock()["components"]["providers"]["providers"]
    );
    assert!(second
        .join("providers/registry.terraform.io/coder/coder/index.json")
        .is_file());
}

#[test]
fn upstreams_behind_an_internal_ca_need_ca_file() {
    let pki = airgap_testkit::pki::TestPki::new(&[]).expect("pki");
    let env = env_with(Some(&pki));
    let files = pki.write_to(env.dir.path()).expect("write pki");
    let err = fails(&mut env.sync());
    assert!(err.contains("https://127.0.0.1:"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    ok(env.sync().arg("--ca-file").arg(&files.ca));
    assert!(env.stage().join("bin/terraform").is_file());
}

#[test]
fn a_pinned_coder_key_requires_the_published_signature() {
    let env = env();
    env.sites
        .coder
        .site
        .insert("/v2.35.3/coder_2.35.3_checksums.txt.asc", "", "text/plain");
    let err = fails(&mut env.sync());
    assert!(err.contains("coderd"), "{err}");
    // An .asc that is not published at all is refused as well while a key is pinned.
    let env = env_without_coder_asc();
    let err = fails(&mut env.sync());
    assert!(err.contains("is not published"), "{err}");
    assert!(err.contains("coder.key_fingerprint"), "{err}");
}

/// A release whose checksum file is published without its `.asc`.
fn env_without_coder_asc() -> Env {
    let env = env();
    let site = &env.sites.coder.site;
    let versions = ReleaseVersions {
        coder: "2.35.5".into(),
        ..ReleaseVersions::default()
    };
    publish_coder(site, &versions, release_key(), ReleaseFaults::default(), "")
        .expect("publish 2.35.5");
    site.remove("/v2.35.5/coder_2.35.5_checksums.txt.asc");
    let spec = std::fs::read_to_string(&env.spec).expect("spec");
    let spec = spec.replace("version = \"2.35.3\"", "version = \"2.35.5\"");
    std::fs::write(&env.spec, spec).expect("spec");
    env
}

#[test]
fn a_flat_postgres_tree_stays_flat() {
    let env = env();
    let tree = env.dir.path().join("pg");
    for tool in ["pg_ctl", "postgres", "initdb", "pg_dump", "psql"] {
        support::write(&tree, &format!("bin/{tool}"), b"#!/bin/sh\n");
    }
    support::write(&tree, "lib/libpq.so.5", b"lib");
    support::write(&tree, "share/postgres.bki", b"bki");
    std::os::unix::fs::symlink(tree.join("lib/libpq.so.5"), tree.join("lib/libpq.so"))
        .expect("symlink");
    let out = ok(env.sync().arg("--postgres-from").arg(&tree));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no bin/pg_config"), "{stderr}");
    let stage = env.stage();
    assert!(stage.join("postgres/bin/pg_ctl").is_file());
    assert!(stage.join("postgres/share/postgres.bki").is_file());
    let link = std::fs::symlink_metadata(stage.join("postgres/lib/libpq.so")).expect("meta");
    assert!(link.is_file(), "symlinks are resolved into files");
    let lock = env.lock();
    assert_eq!(lock["components"]["postgres"]["bindir"], "postgres/bin");
    assert_eq!(lock["components"]["postgres"]["version"], "15.18.0");
    let url = lock["components"]["postgres"]["artifacts"][0]["url"]
        .as_str()
        .expect("url");
    assert!(url.starts_with("file:///"), "{url}");
}

#[test]
fn sync_pack_verify_inspect_end_to_end() {
    let env = env();
    let postgres = tools::postgres_tree();
    ok(env.sync().arg("--postgres-from").arg(&postgres));
    let stage = env.stage();
    // Debian's tree keeps its relative layout, so it stays relocatable.
    assert!(stage
        .join("postgres/lib/postgresql/15/bin/pg_ctl")
        .is_file());
    assert!(stage
        .join("postgres/share/postgresql/15/postgres.bki")
        .is_file());
    let lock = env.lock();
    let c = &lock["components"];
    assert_eq!(c["postgres"]["bindir"], "postgres/lib/postgresql/15/bin");
    assert!(c["postgres"]["version"]
        .as_str()
        .expect("v")
        .starts_with("15."));
    assert_eq!(c["terraform"]["version"], "1.15.5");

    let keys = env.dir.path().join("keys");
    ok(airgap()
        .args(["keygen", "--unencrypted", "--out"])
        .arg(&keys));
    let bundle = env.dir.path().join("appliance.tar.gz");
    ok(airgap()
        .arg("pack")
        .arg(&stage)
        .arg("--key")
        .arg(keys.join("bundle.key"))
        .arg("--out")
        .arg(&bundle));
    ok(airgap()
        .arg("verify")
        .arg(&bundle)
        .arg("--pubkey")
        .arg(keys.join("bundle.pub")));
    let out = ok(airgap()
        .arg("inspect")
        .arg(&bundle)
        .arg("--json")
        .arg("--pubkey")
        .arg(keys.join("bundle.pub")));
    let shown: Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    let text = shown.to_string();
    assert!(
        text.contains("\"test-appliance\""),
        "name from the lock: {text}"
    );
    assert!(text.contains("\"sequence\":7"), "sequence from the lock");
    for (name, version) in [
        ("coderd", "2.35.3"),
        ("terraform", "1.15.5"),
        ("providers", c["providers"]["version"].as_str().expect("v")),
        ("docs", "2.35.3"),
        ("postgres", c["postgres"]["version"].as_str().expect("v")),
    ] {
        let component = find_component(&shown, name);
        assert_eq!(component["version"], version, "{name}: {text}");
    }
}

fn find_component<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.get("components")
        .or_else(|| v.get("manifest").and_then(|m| m.get("components")))
        .and_then(|c| c.get(name))
        .unwrap_or_else(|| panic!("component {name} not in {v}"))
}

/// What the error names for each hostile tar entry (entry name, problem).
fn hostile_tar_message(how: HostileTar, top: &str) -> (String, &'static str) {
    match how {
        HostileTar::SymlinkOut => (format!("{top}/escape"), "outside the archive's tree"),
        HostileTar::HardlinkOut => (format!("{top}/escape"), "outside the archive's tree"),
        HostileTar::Setuid => (format!("{top}/bin/su"), "is setuid or setgid"),
        HostileTar::Device => (format!("{top}/dev/null"), "is a character device entry"),
        HostileTar::Absolute => ("/tmp/x".to_string(), "unsafe name (absolute path)"),
        HostileTar::ParentDir => (format!("{top}/../../x"), "unsafe name (contains ..)"),
        HostileTar::HugeMember => (format!("{top}/bin/huge"), "declares 2147483648 bytes"),
    }
}

/// Every file and directory under `dir` whose name ends in `suffix`.
fn find_named(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.to_string_lossy().ends_with(suffix) {
            out.push(path.clone());
        }
        if path.is_dir() && !path.is_symlink() {
            out.extend(find_named(&path, suffix));
        }
    }
    out
}

#[test]
fn hostile_postgres_archives_are_refused_by_entry_and_nothing_is_staged() {
    let env = env();
    let v = env.sites.versions.postgres.clone();
    let top = format!("postgresql-{v}-x86_64-unknown-linux-gnu");
    let name = format!("{top}.tar.gz");
    let tool = b"#!/bin/sh\necho postgres\n".to_vec();
    let files: Vec<(String, Vec<u8>, u32)> = ["pg_ctl", "postgres", "initdb", "pg_dump", "psql"]
        .iter()
        .map(|t| (format!("{top}/bin/{t}"), tool.clone(), 0o755))
        .collect();
    let refs: Vec<(&str, &[u8], u32)> = files
        .iter()
        .map(|(p, b, m)| (p.as_str(), b.as_slice(), *m))
        .collect();
    for how in ALL_TARS {
        let tgz = hostile_tar_gz(&refs, &top, how).expect("tgz");
        // Correctly listed in its .sha256: only the archive checks can refuse it.
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&tgz));
        let site = &env.sites.postgres.site;
        site.insert(
            &format!("/{v}/{name}.sha256"),
            format!("{sha}  {name}\n"),
            "text/plain",
        );
        site.insert(&format!("/{v}/{name}"), tgz, "application/gzip");
        let err = fails(&mut env.sync());
        let (entry, problem) = hostile_tar_message(how, &top);
        assert!(
            err.contains(&name)
                && err.contains(&format!("entry {entry:?}"))
                && err.contains(problem),
            "{how:?}: {err}"
        );
        let stage = env.stage();
        assert!(!stage.join("postgres").exists(), "{how:?}: nothing staged");
        assert!(
            !stage.join(".sync-tmp").exists(),
            "{how:?}: no work files left"
        );
        assert!(find_named(&stage, ".unpack").is_empty(), "{how:?}");
        assert!(!stage.join("appliance.lock.json").exists(), "{how:?}");
    }
}

#[test]
fn hostile_coder_tarballs_are_refused_before_anything_lands() {
    let env = env();
    let files: &[(&str, &[u8], u32)] = &[("coder", b"#!/bin/sh\necho v2.35.3\n", 0o755)];
    for how in [
        HostileTar::HugeMember,
        HostileTar::SymlinkOut,
        HostileTar::Setuid,
    ] {
        let tarball = env.dir.path().join(format!("coder-{how:?}.tar.gz"));
        std::fs::write(&tarball, hostile_tar_gz(files, "", how).expect("tgz")).expect("write");
        let err = fails(env.sync().arg("--coder-from").arg(&tarball));
        let (entry, problem) = hostile_tar_message(how, "");
        let entry = entry.trim_start_matches('/').to_string();
        assert!(
            err.contains(&tarball.display().to_string())
                && err.contains(&entry)
                && err.contains(problem),
            "{how:?}: {err}"
        );
        assert!(!env.stage().join("bin/coder").exists(), "{how:?}");
        assert!(!env.stage().join(".sync-tmp").exists(), "{how:?}");
    }
}

#[test]
fn a_redirect_to_http_and_a_missing_file_fail_at_once() {
    let pki = airgap_testkit::pki::TestPki::new(&[]).expect("pki");
    let env = env_with(Some(&pki));
    let ca = env.dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("ca");
    let sums = "/terraform/1.15.5/terraform_1.15.5_SHA256SUMS";
    env.sites
        .hashicorp
        .site
        .set_hostile(sums, Hostile::Redirect(format!("http://127.0.0.1:9{sums}")));
    let err = fails(env.sync().arg("--ca-file").arg(&ca));
    assert!(
        err.contains("refused the redirect from https://")
            && err.contains(&format!("to http://127.0.0.1:9{sums}")),
        "{err}"
    );
    assert_eq!(
        env.sites.hashicorp.site.requests_for(sums),
        1,
        "not retried"
    );
    assert!(!env.stage().join("bin").exists());

    // A 404 (a version that is not published) is asked for once, not retried.
    let env = self::env();
    env.sites.postgres.site.clear_requests();
    let err = fails(env.sync().args(["--set", "postgres.version=15.99.0"]));
    assert!(err.contains("HTTP 404"), "{err}");
    let asked = env
        .sites
        .postgres
        .site
        .requests()
        .iter()
        .filter(|r| r.path.contains("15.99.0"))
        .count();
    assert_eq!(asked, 1, "one request");
}

#[test]
fn a_coder_signature_by_another_key_is_refused() {
    let env = env();
    // The release site signs with the test release key; the spec pins another key.
    let stranger = stranger_key();
    let key_file = env.dir.path().join("stranger.asc");
    std::fs::write(&key_file, &stranger.public_armored).expect("key");
    let err = fails(
        env.sync()
            .arg("--set")
            .arg(format!("coder.key_file={}", key_file.display()))
            .arg("--set")
            .arg(format!("coder.key_fingerprint={}", stranger.fingerprint)),
    );
    assert!(err.contains("coder_2.35.3_checksums.txt"), "{err}");
    assert!(
        !env.stage().exists(),
        "a failed sync leaves no stage: {err}"
    );
    // The right key file but a fingerprint pinned to another key.
    let err = fails(
        env.sync()
            .arg("--set")
            .arg(format!("coder.key_fingerprint={}", stranger.fingerprint)),
    );
    assert!(err.contains(&stranger.fingerprint), "{err}");
    assert!(err.contains("coder.key_fingerprint"), "{err}");
}

#[test]
fn an_unsigned_coder_release_needs_the_explicit_opt_out_and_warns() {
    let env = env_without_coder_asc();
    let err = fails(&mut env.sync());
    assert!(err.contains("is not published"), "{err}");
    assert!(err.contains("require_signature = false"), "{err}");
    let out = ok(env.sync().args(["--set", "coder.require_signature=false"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SIGNATURE NOT CHECKED"), "{stderr}");
    assert!(stderr.contains("require_signature = false"), "{stderr}");
    assert!(env.stage().join("bin/coder").is_file());
}

#[test]
fn the_lock_beside_the_spec_reproduces_a_fresh_stage_with_locked() {
    let env = env();
    let out = ok(&mut env.sync());
    let beside = env.dir.path().join("appliance.lock.json");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("appliance.lock.json (commit it)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let committed = std::fs::read(&beside).expect("lock beside the spec");
    assert_eq!(
        committed,
        std::fs::read(env.stage().join("appliance.lock.json")).expect("stage lock"),
        "the stage gets the same lock"
    );
    // "Another host": a new stage and an empty download cache, nothing copied in.
    let fresh = env.dir.path().join("elsewhere/stage");
    let cache = env.dir.path().join("elsewhere/cache");
    clear_logs(&env);
    ok(env
        .sync_into(&fresh)
        .arg("--locked")
        .arg("--cache-dir")
        .arg(&cache));
    assert!(
        archive_gets(&env) > 0,
        "the fresh stage was fetched, not copied"
    );
    assert_eq!(
        std::fs::read(fresh.join("appliance.lock.json")).expect("fresh lock"),
        committed
    );
    for file in ["bin/coder", "bin/terraform", "postgres/bin/pg_ctl"] {
        assert_eq!(
            std::fs::read(fresh.join(file)).expect(file),
            std::fs::read(env.stage().join(file)).expect(file),
            "{file}"
        );
    }
    assert_eq!(
        std::fs::read(&beside).expect("lock"),
        committed,
        "--locked keeps it"
    );
    // A spec that drifted from the committed lock fails in the fresh stage too.
    let other = env.dir.path().join("elsewhere/other");
    let err = fails(
        env.sync_into(&other)
            .args(["--locked", "--set", "terraform.version=1.15.6"]),
    );
    assert!(err.contains("the lock file has 1.15.5"), "{err}");
    assert!(!other.exists(), "a failed sync leaves no empty stage");
}

#[test]
fn locked_without_any_lock_says_how_to_make_one() {
    let env = env();
    let err = fails(env.sync().arg("--locked"));
    assert!(err.contains("appliance.lock.json"), "{err}");
    assert!(err.contains("without --locked"), "{err}");
    assert!(!env.stage().exists(), "no empty stage left behind");
}

#[test]
fn docs_with_coder_from_name_the_upstream_files_and_how_to_skip_them() {
    let env = env();
    let coder = env.dir.path().join("coder");
    std::fs::write(
        &coder,
        airgap_testkit::releases::coder_script("2.35.3", "local"),
    )
    .expect("write");
    std::fs::set_permissions(&coder, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let unreachable = "coder.base_url=http://127.0.0.1:9/releases";
    let err = fails(
        env.sync()
            .arg("--coder-from")
            .arg(&coder)
            .args(["--set", unreachable]),
    );
    assert!(err.contains("coder_docs_2.35.3.tgz"), "{err}");
    assert!(err.contains("coder_2.35.3_checksums.txt"), "{err}");
    assert!(err.contains("--set coder.docs=false"), "{err}");
    ok(env.sync().arg("--coder-from").arg(&coder).args([
        "--set",
        unreachable,
        "--set",
        "coder.docs=false",
    ]));
    assert!(env.stage().join("bin/coder").is_file());
    assert!(!env.stage().join("docs").exists());
}

#[test]
fn pack_refuses_what_is_not_a_stage_and_a_bundle_expired_before_it_is_made() {
    let env = env();
    let keys = env.dir.path().join("keys");
    ok(airgap()
        .args(["keygen", "--unencrypted", "--out"])
        .arg(&keys));
    let pack = |stage: &Path| {
        let mut cmd = airgap();
        cmd.arg("pack")
            .arg(stage)
            .arg("--key")
            .arg(keys.join("bundle.key"))
            .arg("--out")
            .arg(env.dir.path().join("b.tar.gz"));
        cmd
    };
    // An empty directory and a directory of files without a lock are not stages.
    let empty = env.dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let err = fails(&mut pack(&empty));
    assert!(err.contains("is not a stage"), "{err}");
    let loose = env.dir.path().join("loose");
    std::fs::create_dir_all(loose.join("bin")).expect("mkdir");
    std::fs::write(loose.join("bin/coder"), "x").expect("write");
    let err = fails(&mut pack(&loose));
    assert!(err.contains("appliance.lock.json"), "{err}");
    ok(&mut env.sync());
    // A real stage whose files are older than its expiry: refused, not signed expired.
    let status = std::process::Command::new("find")
        .arg(env.stage())
        .args(["-exec", "touch", "-h", "-d", "100 days ago", "{}", "+"])
        .status()
        .expect("find");
    assert!(status.success());
    let err = fails(&mut pack(&env.stage()));
    assert!(err.contains("would have expired"), "{err}");
    assert!(err.contains("re-run sync"), "{err}");
    assert!(!env.dir.path().join("b.tar.gz").exists(), "nothing written");
    // An explicit creation time is the operator's choice: packed, with a warning.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    ok(pack(&env.stage()).args(["--source-date-epoch", &now.to_string()]));
}
