//! The download machinery against the testkit server: verified downloads, reuse, Range
//! resume after bodies cut off mid-way (in one run and across runs), checksum failures that
//! keep nothing, non-retryable statuses, and an extra CA file.

use std::time::Duration;

use airgap_mirror::fetch::{part_path, FetchError, FetchOptions, Fetcher, Url};
use airgap_testkit::pki::TestPki;
use airgap_testkit::server::{RunningServer, Site};
use indicatif::{MultiProgress, ProgressDrawTarget};
use sha2::{Digest, Sha256};

fn fetcher(opts: FetchOptions) -> Fetcher {
    let opts = FetchOptions {
        env_proxy: false,
        backoff: Duration::from_millis(10),
        ..opts
    };
    Fetcher::with_progress(
        opts,
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
    )
    .expect("fetcher")
}

fn blob(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn serve_blob(len: usize) -> (RunningServer, Vec<u8>, String) {
    let site = Site::new();
    let data = blob(len);
    site.insert("/f/file.zip", data.clone(), "application/zip");
    let sha = hex::encode(Sha256::digest(&data));
    (RunningServer::start(site, None).expect("server"), data, sha)
}

fn url(server: &RunningServer, path: &str) -> Url {
    Url::parse(&format!("{}{path}", server.base_url())).expect("url")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn ranges(server: &RunningServer) -> Vec<Option<String>> {
    server
        .site
        .requests()
        .into_iter()
        .filter(|r| r.path == "/f/file.zip")
        .map(|r| r.range)
        .collect()
}

#[test]
fn downloads_verifies_and_then_reuses() {
    let (server, data, sha) = serve_blob(300_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let dest = tmp.path().join("file.zip");
    let f = fetcher(FetchOptions::default());
    let got = rt()
        .block_on(f.download(&url(&server, "/f/file.zip"), &dest, Some(&sha)))
        .expect("download");
    assert_eq!(
        (got.sha256.as_str(), got.bytes, got.reused),
        (sha.as_str(), data.len() as u64, false)
    );
    assert_eq!(std::fs::read(&dest).expect("read"), data);
    assert!(!part_path(&dest).exists());
    let again = rt()
        .block_on(f.download(&url(&server, "/f/file.zip"), &dest, Some(&sha)))
        .expect("reuse");
    assert!(again.reused);
    assert_eq!(ranges(&server).len(), 1, "the second call made no request");
}

#[test]
fn bodies_cut_off_mid_way_resume_with_range() {
    let (server, data, sha) = serve_blob(400_000);
    server.site.cut_next_bodies(2, ".zip");
    let tmp = tempfile::tempdir().expect("tmp");
    let dest = tmp.path().join("file.zip");
    let got = rt()
        .block_on(fetcher(FetchOptions::default()).download(
            &url(&server, "/f/file.zip"),
            &dest,
            Some(&sha),
        ))
        .expect("download");
    assert_eq!(std::fs::read(&dest).expect("read"), data);
    assert!(got.resumed_from > 0, "{got:?}");
    let seen = ranges(&server);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0], None);
    assert!(
        seen[1]
            .as_deref()
            .is_some_and(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "{seen:?}"
    );
}

#[test]
fn a_partial_file_from_an_earlier_run_is_resumed() {
    let (server, data, sha) = serve_blob(200_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let dest = tmp.path().join("file.zip");
    std::fs::write(part_path(&dest), &data[..123_456]).expect("part");
    let got = rt()
        .block_on(fetcher(FetchOptions::default()).download(
            &url(&server, "/f/file.zip"),
            &dest,
            Some(&sha),
        ))
        .expect("download");
    assert_eq!(got.resumed_from, 123_456);
    assert_eq!(ranges(&server), vec![Some("bytes=123456-".to_string())]);
    assert_eq!(std::fs::read(&dest).expect("read"), data);
}

#[test]
fn a_corrupt_partial_file_is_discarded_and_fetched_again() {
    let (server, data, sha) = serve_blob(50_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let dest = tmp.path().join("file.zip");
    std::fs::write(part_path(&dest), vec![0u8; 1000]).expect("part");
    rt().block_on(fetcher(FetchOptions::default()).download(
        &url(&server, "/f/file.zip"),
        &dest,
        Some(&sha),
    ))
    .expect("download");
    assert_eq!(std::fs::read(&dest).expect("read"), data);
    assert_eq!(ranges(&server), vec![Some("bytes=1000-".to_string()), None]);
}

#[test]
fn a_wrong_checksum_keeps_nothing() {
    let (server, _, _) = serve_blob(10_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let dest = tmp.path().join("file.zip");
    let wrong = "00".repeat(32);
    let err = rt()
        .block_on(fetcher(FetchOptions::default()).download(
            &url(&server, "/f/file.zip"),
            &dest,
            Some(&wrong),
        ))
        .expect_err("must fail");
    assert!(matches!(err, FetchError::Checksum { .. }), "{err:?}");
    assert!(err.to_string().contains("/f/file.zip"));
    assert!(!dest.exists() && !part_path(&dest).exists());
}

#[test]
fn not_found_is_not_retried_and_unreachable_is_retried() {
    let (server, _, _) = serve_blob(10);
    let tmp = tempfile::tempdir().expect("tmp");
    let f = fetcher(FetchOptions {
        retries: 3,
        ..FetchOptions::default()
    });
    let err = rt()
        .block_on(f.download(&url(&server, "/missing.zip"), &tmp.path().join("x"), None))
        .expect_err("must fail");
    assert!(
        matches!(err, FetchError::Status { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(server.site.requests().len(), 1);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let dead = Url::parse(&format!("http://{closed}/x")).expect("url");
    let err = rt().block_on(f.get_bytes(&dead)).expect_err("must fail");
    assert!(
        matches!(err, FetchError::Transport { attempts: 4, .. }),
        "{err:?}"
    );
}

#[test]
fn an_extra_ca_file_is_trusted() {
    let pki = TestPki::new(&[]).expect("pki");
    let tmp = tempfile::tempdir().expect("tmp");
    let files = pki.write_to(tmp.path()).expect("write");
    let site = Site::new();
    site.insert("/meta.json", "{\"ok\":true}", "application/json");
    let server =
        RunningServer::start(site, Some(pki.server_config().expect("tls"))).expect("server");
    let u = url(&server, "/meta.json");
    let plain = fetcher(FetchOptions {
        retries: 0,
        ..FetchOptions::default()
    });
    assert!(
        rt().block_on(plain.get_bytes(&u)).is_err(),
        "an unknown CA is refused"
    );
    let trusting = fetcher(FetchOptions {
        extra_ca_file: Some(files.ca.clone()),
        ..FetchOptions::default()
    });
    let (value, _) = rt()
        .block_on(trusting.get_json::<serde_json::Value>(&u))
        .expect("trusted");
    assert_eq!(value["ok"], true);
    let bad = FetchOptions {
        extra_ca_file: Some(tmp.path().join("nope.pem")),
        ..FetchOptions::default()
    };
    assert!(matches!(Fetcher::new(bad), Err(FetchError::CaFile { .. })));
}
