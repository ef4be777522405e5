//! Hostile upstreams against the fetcher and the registry sync, in-process: redirects that
//! leave https at every kind of request, responses pointing at http, slow drips, overall
//! deadlines, bodies past their cap (declared and undeclared), hostile provider zips whose
//! checksums are correctly signed, and failures that must not be retried (404, refused
//! certificates, names that do not resolve). Each asserts the specific error and that no
//! file is left in the mirror or beside the destination.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airgap_mirror::archive::{self, ZipLimits, ZipProblem};
use airgap_mirror::fetch::{part_path, FetchError, FetchOptions, Fetcher, Url};
use airgap_mirror::spec::MirrorSpec;
use airgap_mirror::sync::{self, ArchiveFailure, SyncError};
use airgap_mirror::Mirror;
use airgap_testkit::pki::TestPki;
use airgap_testkit::registry::{hostile_zip, Faults, HostileZip, ProviderFixture, Registry};
use airgap_testkit::server::{Hostile, RunningServer, Site};
use indicatif::{MultiProgress, ProgressDrawTarget};

const HOST: &str = "registry.example.test";

fn fetcher(opts: FetchOptions) -> Fetcher {
    Fetcher::with_progress(
        FetchOptions {
            env_proxy: false,
            ..opts
        },
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
    )
    .expect("fetcher")
}

fn quick(ca: Option<PathBuf>) -> FetchOptions {
    FetchOptions {
        retries: 2,
        backoff: Duration::from_millis(10),
        extra_ca_file: ca,
        ..FetchOptions::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn url(server: &RunningServer, path: &str) -> Url {
    Url::parse(&format!("{}{path}", server.base_url())).expect("url")
}

/// Every file (not directory) under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A TLS site and its CA file.
struct Tls {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    pki: TestPki,
}

fn tls() -> Tls {
    let dir = tempfile::tempdir().expect("tmp");
    let pki = TestPki::new(&[]).expect("pki");
    let ca = pki.write_to(dir.path()).expect("write").ca;
    Tls { _dir: dir, ca, pki }
}

fn one_provider(name: &str) -> String {
    format!("[[providers]]\nsource = \"{HOST}/acme/{name}\"\nversions = \"1.0.0\"\nplatforms = [\"linux_amd64\"]\n")
}

fn sync_registry(
    registry: &Registry,
    providers: &str,
    opts: FetchOptions,
) -> (tempfile::TempDir, Result<sync::SyncReport, SyncError>) {
    let text = format!(
        "{providers}\n[registries]\n{HOST:?} = {:?}\n",
        registry.discovery_url()
    );
    let spec = MirrorSpec::from_toml(&text, Path::new("test.toml")).expect("spec");
    let tmp = tempfile::tempdir().expect("tmp");
    let mirror = Mirror::new(tmp.path());
    let result = rt().block_on(sync::sync(&spec, &mirror, &fetcher(opts)));
    (tmp, result)
}

// ---- redirects and downgrades ----

#[test]
fn a_redirect_to_http_is_refused_at_every_kind_of_request() {
    let t = tls();
    let plain = RunningServer::start(Site::new(), None).expect("plain server");
    let name = "redir";
    let files_dir = format!("/files/acme/{name}/1.0.0");
    let cases = [
        (
            "service discovery",
            "/.well-known/terraform.json".to_string(),
        ),
        (
            "version list",
            format!("/v1/providers/acme/{name}/versions"),
        ),
        (
            "download metadata (with the signing keys)",
            format!("/v1/providers/acme/{name}/1.0.0/download/linux/amd64"),
        ),
        (
            "SHA256SUMS",
            format!("{files_dir}/terraform-provider-{name}_1.0.0_SHA256SUMS"),
        ),
        (
            "SHA256SUMS signature",
            format!("{files_dir}/terraform-provider-{name}_1.0.0_SHA256SUMS.sig"),
        ),
        (
            "archive",
            format!("{files_dir}/terraform-provider-{name}_1.0.0_linux_amd64.zip"),
        ),
    ];
    for (what, path) in cases {
        let registry = Registry::start(
            &[ProviderFixture::new(
                "acme",
                name,
                &["1.0.0"],
                &["linux_amd64"],
            )],
            Some(t.pki.server_config().expect("tls")),
        )
        .expect("registry");
        let target = format!("{}{path}", plain.base_url());
        registry
            .site()
            .set_hostile(&path, Hostile::Redirect(target.clone()));
        let (tmp, result) =
            sync_registry(&registry, &one_provider(name), quick(Some(t.ca.clone())));
        let err = result.expect_err(what).to_string();
        assert!(
            err.contains("refused the redirect from https://")
                && err.contains(&format!("to {target}"))
                && err.contains("downgrade"),
            "{what}: {err}"
        );
        assert_eq!(
            registry.site().requests_for(&path),
            1,
            "{what}: asked once, not retried"
        );
        assert!(
            plain.site.requests().is_empty(),
            "{what}: the http URL was never fetched"
        );
        assert!(
            files(tmp.path()).is_empty(),
            "{what}: nothing kept: {:?}",
            files(tmp.path())
        );
    }
}

#[test]
fn a_registry_response_pointing_at_http_is_refused() {
    let t = tls();
    let name = "pointer";
    let registry = Registry::start(
        &[ProviderFixture::new(
            "acme",
            name,
            &["1.0.0"],
            &["linux_amd64"],
        )],
        Some(t.pki.server_config().expect("tls")),
    )
    .expect("registry");
    let path = format!("/v1/providers/acme/{name}/1.0.0/download/linux/amd64");
    let body = registry.site().get(&path).expect("download json");
    let mut json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    json["download_url"] = "http://127.0.0.1:9/evil.zip".into();
    registry
        .site()
        .insert(&path, json.to_string(), "application/json");
    let (tmp, result) = sync_registry(&registry, &one_provider(name), quick(Some(t.ca.clone())));
    let err = result.expect_err("downgrade");
    assert!(
        matches!(&err, SyncError::Archives(list) if matches!(
            &list[0].reason,
            ArchiveFailure::Registry(airgap_mirror::registry::RegistryError::Downgrade { scheme, .. }) if scheme == "http"
        )),
        "{err:?}"
    );
    assert!(files(tmp.path()).is_empty());
}

#[test]
fn redirects_within_https_are_followed_but_capped_and_loops_fail() {
    let t = tls();
    let site = Site::new();
    site.insert("/real.json", "{\"ok\":true}", "application/json");
    let server =
        RunningServer::start(site, Some(t.pki.server_config().expect("tls"))).expect("server");
    server.site.set_hostile(
        "/moved.json",
        Hostile::Redirect(url(&server, "/real.json").to_string()),
    );
    server.site.set_hostile(
        "/loop.json",
        Hostile::Redirect(url(&server, "/loop.json").to_string()),
    );
    let f = fetcher(quick(Some(t.ca.clone())));
    let (value, final_url) = rt()
        .block_on(f.get_json::<serde_json::Value>(&url(&server, "/moved.json")))
        .expect("followed");
    assert_eq!(value["ok"], true);
    assert_eq!(final_url.path(), "/real.json");
    let err = rt()
        .block_on(f.get_bytes(&url(&server, "/loop.json")))
        .expect_err("loop");
    assert!(
        matches!(&err, FetchError::Redirect { refused, .. } if refused.reason.contains("more than 10 redirects")),
        "{err:?}"
    );
}

// ---- slow drips, deadlines, caps ----

#[test]
fn a_slow_drip_fails_at_the_minimum_rate_and_keeps_nothing() {
    let site = Site::new();
    site.insert("/drip.zip", vec![7u8; 4096], "application/zip");
    site.insert("/drip.json", vec![b' '; 4096], "application/json");
    site.set_hostile("/drip.zip", Hostile::Drip(Duration::from_secs(2)));
    site.set_hostile("/drip.json", Hostile::Drip(Duration::from_secs(2)));
    let server = RunningServer::start(site, None).expect("server");
    let f = fetcher(FetchOptions {
        min_rate_window: Duration::from_secs(1),
        min_rate_bytes: 1024,
        ..quick(None)
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let dest = tmp.path().join("drip.zip");
    let started = Instant::now();
    let err = rt()
        .block_on(f.download(&url(&server, "/drip.zip"), &dest, None))
        .expect_err("too slow");
    assert!(
        matches!(err, FetchError::TooSlow { bytes, window_secs: 1, min_bytes: 1024, .. } if bytes < 1024),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failed at the rate window, not at the end of the body"
    );
    assert!(
        !dest.exists() && !part_path(&dest).exists(),
        "no partial file"
    );
    assert_eq!(
        server.site.requests_for("/drip.zip"),
        1,
        "a stalling server is not retried"
    );
    let err = rt()
        .block_on(f.get_bytes(&url(&server, "/drip.json")))
        .expect_err("too slow");
    assert!(matches!(err, FetchError::TooSlow { .. }), "{err:?}");
}

#[test]
fn a_transfer_past_its_overall_deadline_fails_and_keeps_nothing() {
    let site = Site::new();
    site.insert("/slow.zip", vec![7u8; 100], "application/zip");
    // 10 bytes a second: above a zero minimum rate, but the body needs ten seconds.
    site.set_hostile("/slow.zip", Hostile::Drip(Duration::from_millis(100)));
    let server = RunningServer::start(site, None).expect("server");
    let f = fetcher(FetchOptions {
        deadline: Duration::from_secs(1),
        min_rate_bytes: 0,
        ..quick(None)
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let dest = tmp.path().join("slow.zip");
    let err = rt()
        .block_on(f.download(&url(&server, "/slow.zip"), &dest, None))
        .expect_err("deadline");
    assert!(
        matches!(err, FetchError::Deadline { secs: 1, .. }),
        "{err:?}"
    );
    assert!(!dest.exists() && !part_path(&dest).exists());
    assert_eq!(server.site.requests_for("/slow.zip"), 1);
}

#[test]
fn bodies_past_their_cap_stop_and_keep_nothing() {
    let site = Site::new();
    site.insert("/big.zip", vec![1u8; 256 * 1024], "application/zip");
    site.insert("/unsized.zip", vec![1u8; 256 * 1024], "application/zip");
    site.insert("/big.json", vec![b' '; 256 * 1024], "application/json");
    site.insert("/unsized.json", vec![b' '; 256 * 1024], "application/json");
    site.set_hostile("/unsized.zip", Hostile::Unsized);
    site.set_hostile("/unsized.json", Hostile::Unsized);
    let server = RunningServer::start(site, None).expect("server");
    let f = fetcher(FetchOptions {
        max_metadata_bytes: 64 * 1024,
        ..quick(None)
    });
    let tmp = tempfile::tempdir().expect("tmp");
    for path in ["/big.zip", "/unsized.zip"] {
        let dest = tmp.path().join(&path[1..]);
        let err = rt()
            .block_on(f.download_capped(&url(&server, path), &dest, None, 100 * 1024))
            .expect_err("too large");
        assert!(
            matches!(err, FetchError::TooLarge { limit: 102_400, .. }),
            "{path}: {err:?}"
        );
        assert!(
            !dest.exists() && !part_path(&dest).exists(),
            "{path}: no partial file"
        );
        assert_eq!(server.site.requests_for(path), 1, "{path}: not retried");
    }
    for path in ["/big.json", "/unsized.json"] {
        let err = rt()
            .block_on(f.get_bytes(&url(&server, path)))
            .expect_err("too large");
        assert!(
            matches!(err, FetchError::TooLarge { limit: 65_536, .. }),
            "{path}: {err:?}"
        );
    }
    assert!(files(tmp.path()).is_empty());
}

#[test]
fn a_resumed_download_is_still_held_to_its_cap() {
    let site = Site::new();
    site.insert("/f.zip", vec![3u8; 200 * 1024], "application/zip");
    let server = RunningServer::start(site, None).expect("server");
    let f = fetcher(quick(None));
    let tmp = tempfile::tempdir().expect("tmp");
    let dest = tmp.path().join("f.zip");
    std::fs::write(part_path(&dest), vec![3u8; 150 * 1024]).expect("part");
    let err = rt()
        .block_on(f.download_capped(&url(&server, "/f.zip"), &dest, None, 160 * 1024))
        .expect_err("too large");
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err:?}");
    assert!(
        !part_path(&dest).exists(),
        "the .part a later resume would trust is gone"
    );
}

// ---- failures that are not retried ----

#[test]
fn not_found_and_refused_certificates_fail_at_once() {
    let t = tls();
    let site = Site::new();
    site.insert("/meta.json", "{}", "application/json");
    let server =
        RunningServer::start(site, Some(t.pki.server_config().expect("tls"))).expect("server");
    // Default backoff: a retried failure would take seconds.
    let f = fetcher(FetchOptions {
        retries: 4,
        ..FetchOptions::default()
    });
    let started = Instant::now();
    let err = rt()
        .block_on(f.get_bytes(&url(&server, "/meta.json")))
        .expect_err("unknown CA");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not retried: {:?}",
        started.elapsed()
    );
    let FetchError::Certificate { advice, .. } = &err else {
        panic!("expected a certificate error, got {err:?}");
    };
    assert!(
        advice.contains("--ca-file") && advice.contains("127.0.0.1"),
        "{advice}"
    );
    assert!(server.site.requests().is_empty(), "no request got through");

    let trusting = fetcher(FetchOptions {
        retries: 4,
        ..quick(Some(t.ca.clone()))
    });
    let err = rt()
        .block_on(trusting.get_bytes(&url(&server, "/missing.json")))
        .expect_err("404");
    assert!(
        matches!(err, FetchError::Status { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(server.site.requests_for("/missing.json"), 1, "one request");

    // A certificate issued for other names (localhost, 127.0.0.1) served at 127.0.0.2.
    let listener = std::net::TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let other = RunningServer::start_on(
        listener,
        Site::new(),
        Some(t.pki.server_config().expect("tls")),
    )
    .expect("server");
    let wrong_name =
        Url::parse(&format!("https://127.0.0.2:{}/x", other.addr.port())).expect("url");
    let err = rt()
        .block_on(trusting.get_bytes(&wrong_name))
        .expect_err("wrong name");
    assert!(
        matches!(&err, FetchError::Certificate { advice, .. } if advice.contains("not issued for 127.0.0.2")),
        "{err:?}"
    );
    assert!(other.site.requests().is_empty());
}

#[test]
fn a_ca_certificate_served_as_the_server_certificate_gets_advice() {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "openssl req -x509 style");
    let cert = params.self_signed(&key).expect("self-signed");
    let pki = TestPki {
        ca_pem: cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    let dir = tempfile::tempdir().expect("tmp");
    let ca = pki.write_to(dir.path()).expect("write").ca;
    let server =
        RunningServer::start(Site::new(), Some(pki.server_config().expect("tls"))).expect("server");
    let f = fetcher(FetchOptions {
        extra_ca_file: Some(ca),
        ..quick(None)
    });
    let err = rt()
        .block_on(f.get_bytes(&url(&server, "/x")))
        .expect_err("CA as leaf");
    let text = err.to_string();
    assert!(
        matches!(err, FetchError::Certificate { .. })
            && text.contains("presents a CA certificate as its own certificate")
            && text.contains("openssl req -x509")
            && text.contains("leaf certificate for 127.0.0.1"),
        "{text}"
    );
    assert!(!text.contains("OtherError"), "{text}");
}

#[test]
fn a_name_that_does_not_resolve_is_not_retried() {
    let f = fetcher(FetchOptions {
        retries: 4,
        connect_timeout: Duration::from_secs(5),
        ..FetchOptions::default()
    });
    let u = Url::parse("https://no-such-host.invalid/x").expect("url");
    let err = rt().block_on(f.get_bytes(&u)).expect_err("unresolvable");
    assert!(
        matches!(&err, FetchError::Unresolvable { host, .. } if host == "no-such-host.invalid"),
        "{err:?}"
    );
}

// ---- hostile provider zips ----

#[test]
fn hostile_zips_are_refused_by_the_checks() {
    let exe = archive::provider_executable("x");
    let limits = ZipLimits::default();
    let check = |how| {
        let zip = hostile_zip("x", "1.0.0", how).expect("zip");
        archive::check_zip("x.zip", std::io::Cursor::new(zip), &exe, &limits)
            .expect_err("hostile")
            .problem
    };
    assert!(
        matches!(check(HostileZip::ParentDir), ZipProblem::UnsafeName { entry, why: "contains .." } if entry == "../x")
    );
    assert!(
        matches!(check(HostileZip::Absolute), ZipProblem::UnsafeName { entry, why: "absolute path" } if entry == "/tmp/x")
    );
    assert!(
        matches!(check(HostileZip::Symlink), ZipProblem::Symlink { entry } if entry == "passwd")
    );
    assert!(
        matches!(check(HostileZip::NoExecutable), ZipProblem::NoExecutable { executable, .. } if executable == "terraform-provider-x")
    );
    assert!(
        matches!(check(HostileZip::Bomb), ZipProblem::Ratio { entry, .. } if entry == "zeros.bin")
    );
    let too_many = ZipLimits {
        max_entries: 0,
        ..limits
    };
    let healthy =
        airgap_testkit::registry::provider_zip("x", "1.0.0", "linux_amd64", 0, false).expect("zip");
    assert!(archive::check_zip("x.zip", std::io::Cursor::new(&healthy), &exe, &limits).is_ok());
    assert!(matches!(
        archive::check_zip("x.zip", std::io::Cursor::new(&healthy), &exe, &too_many)
            .expect_err("count")
            .problem,
        ZipProblem::TooManyEntries { .. }
    ));
    let small = ZipLimits {
        max_entry_bytes: 8,
        ..limits
    };
    assert!(matches!(
        archive::check_zip("x.zip", std::io::Cursor::new(&healthy), &exe, &small)
            .expect_err("size")
            .problem,
        ZipProblem::EntryTooLarge { .. }
    ));
    assert!(matches!(
        archive::check_zip(
            "x.zip",
            std::io::Cursor::new(b"not a zip".as_slice()),
            &exe,
            &limits
        )
        .expect_err("garbage")
        .problem,
        ZipProblem::NotZip(_)
    ));
}

#[test]
fn signed_but_hostile_zips_never_enter_the_mirror() {
    let cases = [
        ("dotdot", HostileZip::ParentDir, "unsafe name"),
        ("absolute", HostileZip::Absolute, "absolute path"),
        ("symlink", HostileZip::Symlink, "symbolic link"),
        (
            "noexe",
            HostileZip::NoExecutable,
            "has no executable terraform-provider-noexe",
        ),
        ("bomb", HostileZip::Bomb, "zip bomb"),
    ];
    let fixtures: Vec<ProviderFixture> = cases
        .iter()
        .map(|(name, how, _)| ProviderFixture {
            faults: Faults {
                hostile_zip: Some(*how),
                ..Faults::default()
            },
            ..ProviderFixture::new("acme", name, &["1.0.0"], &["linux_amd64"])
        })
        .collect();
    let registry = Registry::start(&fixtures, None).expect("registry");
    for (name, _, message) in cases {
        let (tmp, result) = sync_registry(&registry, &one_provider(name), quick(None));
        let err = result.expect_err(name);
        assert!(
            matches!(&err, SyncError::Archives(list) if matches!(list[0].reason, ArchiveFailure::Unsafe(_))),
            "{name}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("{HOST}/acme/{name} 1.0.0 linux_amd64"))
                && text.contains(message),
            "{name}: {text}"
        );
        assert!(
            files(tmp.path()).is_empty(),
            "{name}: nothing kept: {:?}",
            files(tmp.path())
        );
    }
}
