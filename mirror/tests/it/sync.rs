//! Registry sync against the testkit registry, in-process: resume after interruptions (in
//! one run and across runs), accumulation of versions, incremental runs, plain-HTTP
//! registries and relative URLs.

use std::path::Path;
use std::time::Duration;

use airgap_mirror::fetch::{FetchOptions, Fetcher};
use airgap_mirror::spec::MirrorSpec;
use airgap_mirror::sync::{self, SyncError, STAGING_DIR};
use airgap_mirror::{maintain, Mirror};
use airgap_testkit::registry::{ProviderFixture, Registry};
use indicatif::{MultiProgress, ProgressDrawTarget};

const HOST: &str = "registry.example.test";

fn fetcher(retries: u32) -> Fetcher {
    let opts = FetchOptions {
        env_proxy: false,
        retries,
        backoff: Duration::from_millis(10),
        ..FetchOptions::default()
    };
    Fetcher::with_progress(
        opts,
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
    )
    .expect("fetcher")
}

fn spec(registry: &Registry, providers: &str) -> MirrorSpec {
    let text = format!(
        "{providers}\n[registries]\n{HOST:?} = {:?}\n",
        registry.discovery_url()
    );
    MirrorSpec::from_toml(&text, Path::new("test.toml")).expect("spec")
}

fn run(spec: &MirrorSpec, mirror: &Mirror, retries: u32) -> Result<sync::SyncReport, SyncError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(sync::sync(spec, mirror, &fetcher(retries)))
}

fn padded(name: &str, versions: &[&str]) -> ProviderFixture {
    ProviderFixture {
        padding: 300_000,
        ..ProviderFixture::new("acme", name, versions, &["linux_amd64"])
    }
}

#[test]
fn bodies_cut_off_mid_way_are_resumed_within_one_run() {
    let registry = Registry::start(&[padded("cut", &["1.0.0"])], None).expect("registry");
    registry.site().cut_next_bodies(2, ".zip");
    let tmp = tempfile::tempdir().expect("tmp");
    let mirror = Mirror::new(tmp.path());
    let s = spec(&registry, &format!("[[providers]]\nsource = \"{HOST}/acme/cut\"\nversions = \"1.0.0\"\nplatforms = [\"linux_amd64\"]\n"));
    let report = run(&s, &mirror, 3).expect("sync");
    assert_eq!(report.added.len(), 1);
    let zip_requests: Vec<_> = registry
        .site()
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(".zip"))
        .collect();
    assert_eq!(zip_requests.len(), 3, "{zip_requests:?}");
    assert!(
        zip_requests[1].range.is_some() && zip_requests[2].range.is_some(),
        "{zip_requests:?}"
    );
    assert!(maintain::verify(&mirror)
        .expect("verify")
        .problems
        .is_empty());
}

#[test]
fn an_interrupted_sync_changes_nothing_and_the_next_run_resumes() {
    let registry = Registry::start(&[padded("big", &["1.0.0"])], None).expect("registry");
    registry.site().cut_next_bodies(1, ".zip");
    let tmp = tempfile::tempdir().expect("tmp");
    let mirror = Mirror::new(tmp.path());
    let s = spec(&registry, &format!("[[providers]]\nsource = \"{HOST}/acme/big\"\nversions = \"1.0.0\"\nplatforms = [\"linux_amd64\"]\n"));
    let err = run(&s, &mirror, 0).expect_err("must fail");
    assert!(
        err.to_string()
            .contains(&format!("{HOST}/acme/big 1.0.0 linux_amd64")),
        "{err}"
    );
    assert!(
        !tmp.path().join(HOST).exists(),
        "the mirror tree is untouched"
    );
    assert!(
        tmp.path().join(STAGING_DIR).exists(),
        "the partial download is kept for the next run"
    );

    registry.site().clear_requests();
    run(&s, &mirror, 0).expect("second sync");
    let zip_requests: Vec<_> = registry
        .site()
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(".zip"))
        .collect();
    assert_eq!(zip_requests.len(), 1);
    assert!(
        zip_requests[0]
            .range
            .as_deref()
            .is_some_and(|r| r != "bytes=0-"),
        "{zip_requests:?}"
    );
    assert!(!tmp.path().join(STAGING_DIR).exists());
    assert!(maintain::verify(&mirror)
        .expect("verify")
        .problems
        .is_empty());
}

#[test]
fn versions_accumulate_and_all_versions_takes_every_match() {
    let registry = Registry::start(
        &[ProviderFixture::new(
            "acme",
            "multi",
            &["1.0.0", "1.1.0", "1.2.0", "2.0.0"],
            &["linux_amd64"],
        )],
        None,
    )
    .expect("registry");
    let tmp = tempfile::tempdir().expect("tmp");
    let mirror = Mirror::new(tmp.path());
    let source: airgap_mirror::ProviderAddr = format!("{HOST}/acme/multi").parse().expect("addr");
    let pinned = spec(&registry, &format!("[[providers]]\nsource = \"{source}\"\nversions = \"1.0.0\"\nplatforms = [\"linux_amd64\"]\n"));
    run(&pinned, &mirror, 0).expect("sync 1");
    let newest = spec(&registry, &format!("[[providers]]\nsource = \"{source}\"\nversions = \"~> 2.0\"\nplatforms = [\"linux_amd64\"]\n"));
    run(&newest, &mirror, 0).expect("sync 2");
    let versions: Vec<String> = mirror
        .read_index(&source)
        .expect("index")
        .versions
        .into_keys()
        .collect();
    assert_eq!(versions, vec!["1.0.0", "2.0.0"]);

    let all = spec(&registry, &format!("[[providers]]\nsource = \"{source}\"\nversions = \">= 1.1, < 2.0\"\nplatforms = [\"linux_amd64\"]\nall_versions = true\n"));
    let report = run(&all, &mirror, 0).expect("sync 3");
    assert_eq!(report.added.len(), 2, "{report:?}");
    let versions: Vec<String> = mirror
        .read_index(&source)
        .expect("index")
        .versions
        .into_keys()
        .collect();
    assert_eq!(versions, vec!["1.0.0", "1.1.0", "1.2.0", "2.0.0"]);

    // Nothing new: no zip, no download-endpoint request; a damaged archive is fetched again.
    registry.site().clear_requests();
    let report = run(&all, &mirror, 0).expect("sync 4");
    assert_eq!((report.added.len(), report.skipped), (0, 2));
    assert!(registry
        .site()
        .requests()
        .iter()
        .all(|r| !r.path.contains("/download/") && !r.path.ends_with(".zip")));
    let damaged = mirror.archive_path(
        &source,
        &"1.1.0".parse().expect("v"),
        &"linux_amd64".parse().expect("p"),
    );
    std::fs::write(&damaged, b"not a zip").expect("damage");
    let report = run(&all, &mirror, 0).expect("sync 5");
    assert_eq!((report.added.len(), report.skipped), (1, 1));
    assert!(maintain::verify(&mirror)
        .expect("verify")
        .problems
        .is_empty());
}

#[test]
fn an_unpublished_platform_or_version_is_named() {
    let registry = Registry::start(
        &[ProviderFixture::new(
            "acme",
            "one",
            &["1.0.0"],
            &["linux_amd64"],
        )],
        None,
    )
    .expect("registry");
    let tmp = tempfile::tempdir().expect("tmp");
    let mirror = Mirror::new(tmp.path());
    let s = spec(&registry, &format!("[[providers]]\nsource = \"{HOST}/acme/one\"\nversions = \"1.0.0\"\nplatforms = [\"linux_amd64\", \"darwin_arm64\"]\n"));
    let err = run(&s, &mirror, 0).expect_err("must fail").to_string();
    assert!(
        err.contains(&format!(
            "{HOST}/acme/one 1.0.0 darwin_arm64: not published"
        )),
        "{err}"
    );
    assert!(!tmp.path().join(HOST).exists());
    let s = spec(&registry, &format!("[[providers]]\nsource = \"{HOST}/acme/one\"\nversions = \"~> 3.0\"\nplatforms = [\"linux_amd64\"]\n"));
    let err = run(&s, &mirror, 0).expect_err("must fail").to_string();
    assert!(
        err.contains("no published version matches \"~> 3.0\"") && err.contains("1.0.0"),
        "{err}"
    );
}

#[test]
fn a_provider_listed_twice_is_fetched_once() {
    let registry = Registry::start(
        &[ProviderFixture::new(
            "acme",
            "twice",
            &["1.0.0"],
            &["linux_amd64"],
        )],
        None,
    )
    .expect("registry");
    let tmp = tempfile::tempdir().expect("tmp");
    let mirror = Mirror::new(tmp.path());
    let one = format!("[[providers]]\nsource = \"{HOST}/acme/twice\"\nversions = \"1.0.0\"\nplatforms = [\"linux_amd64\"]\n");
    let s = spec(&registry, &format!("{one}{one}"));
    let report = run(&s, &mirror, 0).expect("sync");
    assert_eq!(report.added.len(), 1);
    let zips = registry
        .site()
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(".zip"))
        .count();
    assert_eq!(zips, 1);
}
