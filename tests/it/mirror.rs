//! `coder-airgap mirror`: import, verify, terraformrc, serve and sync, driven through the
//! binary, with the real Terraform 1.0.3 installing providers from the mirror over TLS (as a
//! network mirror) and from the same tree as a filesystem mirror.

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use airgap_testkit::pki::{PkiFiles, TestPki};
use airgap_testkit::registry::{
    hostile_zip, provider_zip, Faults, HostileZip, ProviderFixture, Registry,
};
use airgap_testkit::server::Hostile;
use support::{airgap, fails, ok, tools};

const HOST: &str = "registry.example.test";

/// A `coder-airgap mirror serve` child process, killed on drop.
struct Served {
    child: Child,
    port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, pki: &PkiFiles) -> Served {
    let mut child = airgap()
        .args(["mirror", "serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir)
        .arg("--cert")
        .arg(&pki.cert)
        .arg("--key")
        .arg(&pki.key)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read listen line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected serve output {line:?}"));
    let port = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    Served { child, port }
}

fn pki(dir: &Path) -> PkiFiles {
    TestPki::new(&[])
        .expect("pki")
        .write_to(dir)
        .expect("write pki")
}

fn zip_file(dir: &Path, name: &str, version: &str, with_dir: bool) -> PathBuf {
    let path = dir.join(format!("{name}-{version}-{with_dir}.zip"));
    std::fs::write(
        &path,
        provider_zip(name, version, "linux_amd64", 0, with_dir).expect("zip"),
    )
    .expect("write zip");
    path
}

fn import(mirror: &Path, source: &str, version: &str, zip: &Path) -> std::process::Output {
    ok(airgap()
        .args(["mirror", "import", "--dir"])
        .arg(mirror)
        .args([
            "--source",
            source,
            "--version",
            version,
            "--platform",
            "linux_amd64",
        ])
        .arg(zip))
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("json")
}

fn recorded_hashes(mirror: &Path, source: &str, version: &str) -> Vec<String> {
    let json = read_json(&mirror.join(source).join(format!("{version}.json")));
    json["archives"]["linux_amd64"]["hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(|h| h.as_str().expect("str").to_string())
        .collect()
}

/// A Terraform working directory requiring `source` at `version`.
fn workdir(root: &Path, name: &str, source: &str, version: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let short = source.rsplit('/').next().expect("type");
    let tf = format!(
        "terraform {{\n  required_providers {{\n    {short} = {{\n      source  = \"{source}\"\n      version = \"{version}\"\n    }}\n  }}\n}}\n"
    );
    std::fs::write(dir.join("main.tf"), tf).expect("main.tf");
    dir
}

/// `terraform init` in `dir` with only the variables a test means to set.
fn terraform_init(dir: &Path, cli_config: &Path, ca: Option<&Path>) -> Command {
    let mut cmd = tools::clean_command(tools::require_terraform());
    cmd.current_dir(dir)
        .args(["init", "-input=false", "-no-color"])
        .env("TF_CLI_CONFIG_FILE", cli_config)
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1");
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    cmd
}

fn lock_h1s(dir: &Path) -> Vec<String> {
    let lock = std::fs::read_to_string(dir.join(".terraform.lock.hcl")).expect("lock file");
    lock.split('"')
        .filter(|s| s.starts_with("h1:"))
        .map(str::to_string)
        .collect()
}

fn network_rc(root: &Path, port: u16) -> PathBuf {
    let out = ok(airgap().args([
        "mirror",
        "terraformrc",
        "--url",
        &format!("https://127.0.0.1:{port}"),
    ]));
    let path = root.join("network.tfrc");
    std::fs::write(&path, &out.stdout).expect("write rc");
    path
}

#[test]
fn terraformrc_points_only_at_the_mirror() {
    let out = ok(airgap().args([
        "mirror",
        "terraformrc",
        "--url",
        "https://mirror.example.internal:8443",
    ]));
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.contains("provider_installation {"), "{text}");
    assert!(text.contains("network_mirror {"), "{text}");
    assert!(
        text.contains("url = \"https://mirror.example.internal:8443/providers/\""),
        "{text}"
    );
    assert!(
        !text.contains("direct {"),
        "no fallback to the internet: {text}"
    );
    let err = fails(airgap().args([
        "mirror",
        "terraformrc",
        "--url",
        "http://mirror.example.internal",
    ]));
    assert!(err.contains("https://"), "{err}");
}

#[test]
fn import_records_hashes_and_verify_catches_a_swapped_archive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mirror = tmp.path().join("mirror");
    let source = format!("{HOST}/acme/dummy");
    let zip = zip_file(tmp.path(), "dummy", "1.0.0", false);
    let out = import(&mirror, &source, "1.0.0", &zip);
    let printed = String::from_utf8(out.stdout).expect("utf8");

    let index = read_json(&mirror.join(&source).join("index.json"));
    assert_eq!(index, serde_json::json!({"versions": {"1.0.0": {}}}));
    let version = read_json(&mirror.join(&source).join("1.0.0.json"));
    let entry = &version["archives"]["linux_amd64"];
    assert_eq!(
        entry["url"],
        "terraform-provider-dummy_1.0.0_linux_amd64.zip"
    );
    let hashes = recorded_hashes(&mirror, &source, "1.0.0");
    let zh = format!(
        "zh:{}",
        airgap_mirror::hash::sha256_file(&zip).expect("sha")
    );
    assert!(
        hashes[0].starts_with("h1:") && hashes[1] == zh,
        "{hashes:?}"
    );
    assert!(
        printed.contains(&hashes[0]) && printed.contains(&zh),
        "{printed}"
    );

    // Versions accumulate.
    import(
        &mirror,
        &source,
        "1.1.0",
        &zip_file(tmp.path(), "dummy", "1.1.0", false),
    );
    let index = read_json(&mirror.join(&source).join("index.json"));
    assert_eq!(
        index,
        serde_json::json!({"versions": {"1.0.0": {}, "1.1.0": {}}})
    );

    let out = ok(airgap().args(["mirror", "verify", "--dir"]).arg(&mirror));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 archive(s)"));

    let archive = mirror
        .join(&source)
        .join("terraform-provider-dummy_1.0.0_linux_amd64.zip");
    std::fs::copy(zip_file(tmp.path(), "dummy", "9.9.9", false), &archive).expect("swap");
    let err = fails(airgap().args(["mirror", "verify", "--dir"]).arg(&mirror));
    assert!(
        err.contains(&format!("{source} 1.0.0 linux_amd64")),
        "{err}"
    );
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn import_refuses_to_replace_a_different_archive_without_replace() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mirror = tmp.path().join("mirror");
    let source = format!("{HOST}/acme/dummy");
    let first = zip_file(tmp.path(), "dummy", "1.0.0", false);
    import(&mirror, &source, "1.0.0", &first);
    import(&mirror, &source, "1.0.0", &first);
    let other = zip_file(tmp.path(), "dummy", "2.0.0", false);
    let mut cmd = airgap();
    cmd.args(["mirror", "import", "--dir"])
        .arg(&mirror)
        .args([
            "--source",
            &source,
            "--version",
            "1.0.0",
            "--platform",
            "linux_amd64",
        ])
        .arg(&other);
    let err = fails(&mut cmd);
    assert!(err.contains("--replace"), "{err}");
    ok(cmd.arg("--replace"));
    let zh = format!(
        "zh:{}",
        airgap_mirror::hash::sha256_file(&other).expect("sha")
    );
    assert!(recorded_hashes(&mirror, &source, "1.0.0").contains(&zh));
}

#[test]
fn import_warns_about_zips_with_directory_entries() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = import(
        &tmp.path().join("m"),
        &format!("{HOST}/acme/dummy"),
        "1.0.0",
        &zip_file(tmp.path(), "dummy", "1.0.0", true),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning:")
            && stderr.contains("directory entries")
            && stderr.contains("docs/"),
        "{stderr}"
    );
}

/// A mirror under `tmp` holding `acme/TYPE` 1.0.0 imported from a generated zip (with
/// directory entries if `with_dirs`); returns the mirror and the provider source.
fn imported(tmp: &Path, ty: &str, with_dirs: bool) -> (PathBuf, String) {
    let mirror = tmp.join("mirror");
    let source = format!("{HOST}/acme/{ty}");
    import(
        &mirror,
        &source,
        "1.0.0",
        &zip_file(tmp, ty, "1.0.0", with_dirs),
    );
    (mirror, source)
}

#[test]
fn terraform_installs_from_the_network_mirror_and_rejects_a_swapped_archive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pki = pki(tmp.path());
    let (mirror, source) = imported(tmp.path(), "dummy", false);
    let served = serve(&mirror, &pki);
    let rc = network_rc(tmp.path(), served.port);
    let work = workdir(tmp.path(), "work", &source, "1.0.0");

    ok(&mut terraform_init(&work, &rc, Some(&pki.ca)));
    let ours = recorded_hashes(&mirror, &source, "1.0.0");
    assert_eq!(
        lock_h1s(&work),
        vec![ours[0].clone()],
        "lock file h1 equals the mirror's"
    );

    // A second init against the lock file (fresh plugin directory) succeeds.
    std::fs::remove_dir_all(work.join(".terraform")).expect("rm .terraform");
    ok(&mut terraform_init(&work, &rc, Some(&pki.ca)));

    // Without the test CA, Terraform refuses the mirror: TLS is really checked.
    std::fs::remove_dir_all(work.join(".terraform")).expect("rm .terraform");
    fails(&mut terraform_init(&work, &rc, None));

    // An archive swapped on disk after import makes init fail, with and without a lock file.
    let archive = mirror
        .join(&source)
        .join("terraform-provider-dummy_1.0.0_linux_amd64.zip");
    std::fs::copy(zip_file(tmp.path(), "dummy", "6.6.6", false), &archive).expect("swap");
    let _ = std::fs::remove_dir_all(work.join(".terraform"));
    let err = fails(&mut terraform_init(&work, &rc, Some(&pki.ca)));
    assert!(err.contains("dummy"), "{err}");
    std::fs::remove_file(work.join(".terraform.lock.hcl")).expect("rm lock");
    let _ = std::fs::remove_dir_all(work.join(".terraform"));
    fails(&mut terraform_init(&work, &rc, Some(&pki.ca)));
}

#[test]
fn terraform_installs_from_the_same_tree_as_a_filesystem_mirror() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mirror, source) = imported(tmp.path(), "dummy", false);
    let rc = tmp.path().join("fs.tfrc");
    let config = format!(
        "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
        mirror.display()
    );
    std::fs::write(&rc, config).expect("rc");
    let work = workdir(tmp.path(), "work", &source, "1.0.0");
    ok(&mut terraform_init(&work, &rc, None));
    let ours = recorded_hashes(&mirror, &source, "1.0.0");
    assert_eq!(lock_h1s(&work), vec![ours[0].clone()]);
    std::fs::remove_dir_all(work.join(".terraform")).expect("rm .terraform");
    ok(&mut terraform_init(&work, &rc, None));
}

#[test]
fn directory_entries_break_the_second_init_as_warned() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pki = pki(tmp.path());
    let (mirror, source) = imported(tmp.path(), "dirs", true);
    let served = serve(&mirror, &pki);
    let rc = network_rc(tmp.path(), served.port);
    let work = workdir(tmp.path(), "work", &source, "1.0.0");
    ok(&mut terraform_init(&work, &rc, Some(&pki.ca)));
    let ours = recorded_hashes(&mirror, &source, "1.0.0");
    assert!(
        !lock_h1s(&work).contains(&ours[0]),
        "the lock file records the unpacked directory's h1"
    );
    std::fs::remove_dir_all(work.join(".terraform")).expect("rm .terraform");
    fails(&mut terraform_init(&work, &rc, Some(&pki.ca)));
}

fn providers_file(dir: &Path, registry: &Registry, body: &str) -> PathBuf {
    let path = dir.join("providers.toml");
    let text = format!(
        "{body}\n[registries]\n{HOST:?} = {:?}\n",
        registry.discovery_url()
    );
    std::fs::write(&path, text).expect("providers file");
    path
}

fn sync(providers: &Path, mirror: &Path, ca: &Path) -> Command {
    let mut cmd = airgap();
    cmd.args(["mirror", "sync", "--quiet", "--retries", "2", "--providers"])
        .arg(providers)
        .arg("--out")
        .arg(mirror)
        .arg("--ca-file")
        .arg(ca);
    cmd
}

#[test]
fn sync_from_a_registry_then_terraform_installs_from_the_served_mirror() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pki_files = pki(tmp.path());
    let tls = TestPki::new(&[]).expect("pki");
    // The registry uses its own CA; sync trusts it through --ca-file.
    let registry_ca = tmp.path().join("registry-ca.pem");
    std::fs::write(&registry_ca, &tls.ca_pem).expect("ca");
    let fixture = ProviderFixture::new(
        "acme",
        "widget",
        &["2.1.0", "2.2.0", "2.3.1", "3.0.0"],
        &["linux_amd64", "linux_arm64"],
    );
    let registry =
        Registry::start(&[fixture], Some(tls.server_config().expect("tls"))).expect("registry");
    let mirror = tmp.path().join("mirror");
    let spec = format!("[[providers]]\nsource = \"{HOST}/acme/widget\"\nversions = \"~> 2.2\"\nplatforms = [\"linux_amd64\", \"linux_arm64\"]\n");
    let providers = providers_file(tmp.path(), &registry, &spec);

    let out = ok(&mut sync(&providers, &mirror, &registry_ca));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not pinned") && stderr.contains(&registry.key.fingerprint),
        "unpinned key warning: {stderr}"
    );
    let dir = mirror.join(HOST).join("acme/widget");
    assert_eq!(
        read_json(&dir.join("index.json")),
        serde_json::json!({"versions": {"2.3.1": {}}})
    );
    for platform in ["linux_amd64", "linux_arm64"] {
        let pkg = registry
            .package("widget", "2.3.1", platform)
            .expect("package");
        let zip = dir.join(&pkg.filename);
        assert_eq!(
            airgap_mirror::hash::sha256_file(&zip).expect("sha"),
            pkg.sha256
        );
    }
    assert!(
        !mirror.join(".airgap-partial").exists(),
        "staging cleaned up"
    );

    // A re-sync with nothing new downloads nothing.
    registry.site().clear_requests();
    let out = ok(&mut sync(&providers, &mirror, &registry_ca));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 archive(s) added, 2 already present"));
    assert!(registry
        .site()
        .requests()
        .iter()
        .all(|r| !r.path.ends_with(".zip")));

    // Pinning a different key makes the same sync fail, naming the key.
    let pinned = format!(
        "{spec}\n[trusted_keys]\nacme = [\"0000 1111 2222 3333 4444 5555 6666 7777 8888 9999\"]\n"
    );
    let providers_pinned = providers_file(tmp.path(), &registry, &pinned);
    std::fs::remove_dir_all(&mirror).expect("rm mirror");
    let err = fails(&mut sync(&providers_pinned, &mirror, &registry_ca));
    assert!(
        err.contains("not pinned") && err.contains(&registry.key.fingerprint),
        "{err}"
    );
    assert!(!dir.exists());

    // With the right pin, no warning.
    let pinned = format!(
        "{spec}\n[trusted_keys]\n\"{HOST}/acme\" = [\"{}\"]\n",
        registry.key.fingerprint
    );
    let out = ok(&mut sync(
        &providers_file(tmp.path(), &registry, &pinned),
        &mirror,
        &registry_ca,
    ));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Terraform installs the synced provider from the served tree.
    let served = serve(&mirror, &pki_files);
    let rc = network_rc(tmp.path(), served.port);
    let work = workdir(tmp.path(), "work", &format!("{HOST}/acme/widget"), "~> 2.2");
    ok(&mut terraform_init(&work, &rc, Some(&pki_files.ca)));
    let lock = std::fs::read_to_string(work.join(".terraform.lock.hcl")).expect("lock");
    assert!(lock.contains("version     = \"2.3.1\""), "{lock}");
}

#[test]
fn sync_failures_leave_nothing_and_name_the_archive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let tls = TestPki::new(&[]).expect("pki");
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, &tls.ca_pem).expect("ca");
    let cases = [
        (
            "badsig",
            Faults {
                bad_signature: true,
                ..Faults::default()
            },
            "BAD signature",
        ),
        (
            "wrongsum",
            Faults {
                wrong_checksum: true,
                ..Faults::default()
            },
            "checksum mismatch",
        ),
        (
            "tampered",
            Faults {
                tampered_zip: true,
                ..Faults::default()
            },
            "sha256 of the download",
        ),
        (
            "stranger",
            Faults {
                unknown_key: true,
                ..Faults::default()
            },
            "unknown key",
        ),
    ];
    let fixtures: Vec<ProviderFixture> = cases
        .iter()
        .map(|(name, faults, _)| ProviderFixture {
            faults: *faults,
            ..ProviderFixture::new("acme", name, &["1.0.0"], &["linux_amd64"])
        })
        .collect();
    let registry =
        Registry::start(&fixtures, Some(tls.server_config().expect("tls"))).expect("registry");
    for (name, _, message) in cases {
        let mirror = tmp.path().join(format!("mirror-{name}"));
        let spec = format!("[[providers]]\nsource = \"{HOST}/acme/{name}\"\nversions = \"1.0.0\"\nplatforms = [\"linux_amd64\"]\n");
        let err = fails(&mut sync(
            &providers_file(tmp.path(), &registry, &spec),
            &mirror,
            &ca,
        ));
        assert!(
            err.contains(&format!("{HOST}/acme/{name} 1.0.0 linux_amd64")),
            "{name}: {err}"
        );
        assert!(err.contains(message), "{name}: {err}");
        assert!(!mirror.join(HOST).exists(), "{name}: nothing in the mirror");
        let zips = walk(&mirror)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "zip"))
            .count();
        assert_eq!(zips, 0, "{name}: no zip kept anywhere");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn terraformrc_parses_the_url_and_joins_its_path() {
    let rc = |url: &str| {
        String::from_utf8(ok(airgap().args(["mirror", "terraformrc", "--url", url])).stdout)
            .expect("utf8")
    };
    assert!(rc("https://m.internal:8444/base/")
        .contains("url = \"https://m.internal:8444/base/providers/\""));
    assert!(rc("https://m.internal:8444/base/providers")
        .contains("url = \"https://m.internal:8444/base/providers/\""));
    let err = fails(airgap().args([
        "mirror",
        "terraformrc",
        "--url",
        "https://m.internal:8444/?token=1",
    ]));
    assert!(err.contains("query"), "{err}");
}

#[test]
fn import_refuses_zips_that_are_not_safe_provider_packages() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mirror = tmp.path().join("mirror");
    let source = format!("{HOST}/acme/dummy");
    let cases = [
        (
            HostileZip::NoExecutable,
            "has no executable terraform-provider-dummy",
        ),
        (HostileZip::ParentDir, "\"../x\" has an unsafe name"),
        (HostileZip::Symlink, "is a symbolic link"),
        (HostileZip::Bomb, "zip bomb"),
    ];
    for (how, message) in cases {
        let zip = tmp.path().join(format!("{how:?}.zip"));
        std::fs::write(&zip, hostile_zip("dummy", "1.0.0", how).expect("zip")).expect("write");
        let err = fails(
            airgap()
                .args(["mirror", "import", "--dir"])
                .arg(&mirror)
                .args([
                    "--source",
                    &source,
                    "--version",
                    "1.0.0",
                    "--platform",
                    "linux_amd64",
                ])
                .arg(&zip),
        );
        assert!(
            err.contains(message) && err.contains(&zip.display().to_string()),
            "{how:?}: {err}"
        );
        assert!(
            walk(&mirror).is_empty(),
            "{how:?}: nothing imported: {:?}",
            walk(&mirror)
        );
    }
}

#[test]
fn mirror_sync_refuses_a_downgrade_and_a_slow_drip_with_its_flags() {
    let tmp = tempfile::tempdir().expect("tmp");
    let tls = TestPki::new(&[]).expect("pki");
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, &tls.ca_pem).expect("ca");
    let registry = Registry::start(
        &[
            ProviderFixture::new("acme", "down", &["1.0.0"], &["linux_amd64"]),
            ProviderFixture::new("acme", "drip", &["1.0.0"], &["linux_amd64"]),
        ],
        Some(tls.server_config().expect("tls")),
    )
    .expect("registry");
    let zip = |name: &str| {
        format!("/files/acme/{name}/1.0.0/terraform-provider-{name}_1.0.0_linux_amd64.zip")
    };
    registry.site().set_hostile(
        &zip("down"),
        Hostile::Redirect(format!("http://127.0.0.1:9{}", zip("down"))),
    );
    registry.site().set_hostile(
        &zip("drip"),
        Hostile::Drip(std::time::Duration::from_secs(2)),
    );
    for name in ["down", "drip"] {
        let mirror = tmp.path().join(format!("mirror-{name}"));
        let spec = format!("[[providers]]\nsource = \"{HOST}/acme/{name}\"\nversions = \"1.0.0\"\nplatforms = [\"linux_amd64\"]\n");
        let err = fails(
            sync(&providers_file(tmp.path(), &registry, &spec), &mirror, &ca).args([
                "--rate-window",
                "1",
                "--min-rate-kib",
                "1",
            ]),
        );
        let expected = if name == "down" {
            "refused the redirect from https://"
        } else {
            "arrived in 1 s (the minimum is 1024)"
        };
        assert!(err.contains(expected), "{name}: {err}");
        assert_eq!(
            registry.site().requests_for(&zip(name)),
            1,
            "{name}: not retried"
        );
        assert!(
            walk(&mirror).is_empty(),
            "{name}: nothing kept: {:?}",
            walk(&mirror)
        );
    }
}

/// `terraform ARGS…` in `dir` with the CLI config and CA a test means to set.
fn terraform(dir: &Path, cli_config: &Path, ca: &Path, args: &[&str]) -> Command {
    let mut cmd = tools::clean_command(tools::require_terraform());
    cmd.current_dir(dir)
        .args(args)
        .arg("-no-color")
        .env("TF_CLI_CONFIG_FILE", cli_config)
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1")
        .env("SSL_CERT_FILE", ca);
    cmd
}

/// A module directory whose only file has `output "greeting"` with `value`.
fn module_dir(root: &Path, value: &str) -> PathBuf {
    let dir = root.join(format!("module-{value}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let tf = format!("output \"greeting\" {{\n  value = \"{value}\"\n}}\n");
    std::fs::write(dir.join("main.tf"), tf).expect("main.tf");
    dir
}

fn import_module(mirror: &Path, source: &str, version: &str, module: &Path) -> Command {
    let mut cmd = airgap();
    cmd.args(["mirror", "import-module", "--dir"])
        .arg(mirror)
        .args(["--source", source, "--version", version])
        .arg(module);
    cmd
}

/// A Terraform working directory calling `registry.coder.com/coder/demo/coder` at
/// `constraint`, with `extra` appended to main.tf.
fn module_workdir(root: &Path, name: &str, constraint: &str, extra: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let tf = format!(
        "module \"m\" {{\n  source  = \"registry.coder.com/coder/demo/coder\"\n  version = \"{constraint}\"\n}}\n\
         output \"from_module\" {{\n  value = module.m.greeting\n}}\n{extra}"
    );
    std::fs::write(dir.join("main.tf"), tf).expect("main.tf");
    dir
}

const DEMO: &str = "registry.coder.com/coder/demo/coder";

#[test]
fn terraform_installs_registry_modules_from_the_mirror_with_sources_unchanged() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pki = pki(tmp.path());
    let mirror = tmp.path().join("mirror");
    for (version, value) in [("1.0.0", "one"), ("1.1.0", "one-one"), ("2.0.0", "two")] {
        let out = ok(&mut import_module(
            &mirror,
            DEMO,
            version,
            &module_dir(tmp.path(), value),
        ));
        let printed = String::from_utf8(out.stdout).expect("utf8");
        let archive = mirror.join(format!("modules/{DEMO}/{version}.tar.gz"));
        let sha = airgap_mirror::hash::sha256_file(&archive).expect("sha");
        assert_eq!(printed.trim(), format!("sha256:{sha}"));
    }
    // A provider on registry.terraform.io, whose host now has a `host` block too.
    let provider = "registry.terraform.io/acme/dummy";
    import(
        &mirror,
        provider,
        "1.0.0",
        &zip_file(tmp.path(), "dummy", "1.0.0", false),
    );
    let served = serve(&mirror, &pki);
    let url = format!("https://127.0.0.1:{}", served.port);
    let out = ok(airgap()
        .args(["mirror", "terraformrc", "--url", &url, "--dir"])
        .arg(&mirror));
    let rc_text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        rc_text.contains(&format!(
            "\"modules.v1\" = \"{url}/modules/v1/registry.coder.com/\""
        )),
        "{rc_text}"
    );
    let rc = tmp.path().join("modules.tfrc");
    std::fs::write(&rc, &rc_text).expect("rc");

    // init resolves ~> 1.0 to 1.1.0 through the mirror; apply shows the module's output.
    let work = module_workdir(tmp.path(), "work", "~> 1.0", "");
    let init = ok(&mut terraform(
        &work,
        &rc,
        &pki.ca,
        &["init", "-input=false"],
    ));
    let init_out = String::from_utf8_lossy(&init.stdout);
    assert!(
        init_out.contains("Downloading registry.coder.com/coder/demo/coder 1.1.0"),
        "{init_out}"
    );
    ok(&mut terraform(
        &work,
        &rc,
        &pki.ca,
        &["apply", "-auto-approve", "-input=false"],
    ));
    let out = ok(&mut terraform(
        &work,
        &rc,
        &pki.ca,
        &["output", "-raw", "from_module"],
    ));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one-one");
    ok(&mut terraform(&work, &rc, &pki.ca, &["get", "-update"]));

    // Providers still install from the network mirror with registry.terraform.io's host
    // block present.
    let required = "terraform {\n  required_providers {\n    dummy = {\n      source  = \"acme/dummy\"\n      version = \"1.0.0\"\n    }\n  }\n}\n";
    let both = module_workdir(tmp.path(), "both", "1.0.0", required);
    let init = ok(&mut terraform(
        &both,
        &rc,
        &pki.ca,
        &["init", "-input=false"],
    ));
    let init_out = String::from_utf8_lossy(&init.stdout);
    assert!(
        init_out.contains("Installed acme/dummy v1.0.0"),
        "{init_out}"
    );
    assert!(
        init_out.contains("Downloading registry.coder.com/coder/demo/coder 1.0.0"),
        "{init_out}"
    );

    // A constraint nothing matches fails, naming the module.
    let none = module_workdir(tmp.path(), "none", "~> 3.0", "");
    let err = fails(&mut terraform(
        &none,
        &rc,
        &pki.ca,
        &["init", "-input=false"],
    ));
    assert!(
        err.contains(&format!("no available version of module \"{DEMO}\""))
            && err.contains("newest available\nversion is 2.0.0"),
        "{err}"
    );

    // A module the mirror does not carry is the mirror's "not found", not a DNS lookup.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(
        other.join("main.tf"),
        "module \"x\" {\n  source  = \"hashicorp/absent/aws\"\n  version = \"1.0.0\"\n}\n",
    )
    .expect("tf");
    let err = fails(&mut terraform(
        &other,
        &rc,
        &pki.ca,
        &["init", "-input=false"],
    ));
    assert!(
        err.contains("Module \"x\"")
            && err.contains("cannot be found in the module registry")
            && err.contains("registry.terraform.io")
            && !err.contains("no such host"),
        "{err}"
    );

    // An archive changed on the appliance after import is refused at serve, named.
    let archive = mirror.join(format!("modules/{DEMO}/1.1.0.tar.gz"));
    std::fs::copy(
        mirror.join(format!("modules/{DEMO}/2.0.0.tar.gz")),
        &archive,
    )
    .expect("swap");
    std::fs::remove_dir_all(work.join(".terraform")).expect("rm .terraform");
    let err = fails(&mut terraform(
        &work,
        &rc,
        &pki.ca,
        &["init", "-input=false"],
    ));
    let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        err.contains(&format!("module {DEMO} 1.1.0: "))
            && err.contains("has sha256")
            && err.contains("import-module --replace"),
        "{err}"
    );
}

#[test]
fn import_module_checks_the_address_the_version_and_the_archive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mirror = tmp.path().join("mirror");
    let module = module_dir(tmp.path(), "x");
    for (source, version, message) in [
        (
            "registry.coder.com/coder/../coder",
            "1.0.0",
            "invalid module source",
        ),
        ("coder/demo", "1.0.0", "wrong number of parts"),
        (
            "registry.coder.com/coder/demo",
            "1.0.0",
            "namespace and name",
        ),
        (
            "registry.coder.com/coder/demo/Co-der",
            "1.0.0",
            "provider part",
        ),
        (DEMO, "1.0", "invalid version"),
    ] {
        let err = fails(&mut import_module(&mirror, source, version, &module));
        assert!(err.contains(message), "{source} {version}: {err}");
    }
    let link = tmp.path().join("linked");
    std::fs::create_dir_all(&link).expect("mkdir");
    std::fs::write(link.join("main.tf"), "").expect("tf");
    std::os::unix::fs::symlink("/etc/passwd", link.join("passwd")).expect("symlink");
    let err = fails(&mut import_module(&mirror, DEMO, "1.0.0", &link));
    assert!(err.contains("\"passwd\" is a symbolic link"), "{err}");
    let junk = tmp.path().join("junk.tar.gz");
    std::fs::write(&junk, "not an archive").expect("write");
    let err = fails(&mut import_module(&mirror, DEMO, "1.0.0", &junk));
    assert!(err.contains("neither a directory"), "{err}");
    assert!(
        !mirror.join(format!("modules/{DEMO}/index.json")).exists(),
        "nothing recorded"
    );
}

#[test]
fn verify_rehashes_module_archives() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mirror = tmp.path().join("mirror");
    ok(&mut import_module(
        &mirror,
        DEMO,
        "1.0.0",
        &module_dir(tmp.path(), "a"),
    ));
    ok(&mut import_module(
        &mirror,
        DEMO,
        "1.1.0",
        &module_dir(tmp.path(), "b"),
    ));
    let out = ok(airgap().args(["mirror", "verify", "--dir"]).arg(&mirror));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("and 2 module version(s) match"), "{stderr}");
    std::fs::copy(
        mirror.join(format!("modules/{DEMO}/1.1.0.tar.gz")),
        mirror.join(format!("modules/{DEMO}/1.0.0.tar.gz")),
    )
    .expect("swap");
    let err = fails(airgap().args(["mirror", "verify", "--dir"]).arg(&mirror));
    assert!(
        err.contains(&format!("FAILED module {DEMO} 1.0.0:")) && err.contains("--replace"),
        "{err}"
    );
}
