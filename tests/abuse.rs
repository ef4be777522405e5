//! `coder-airgap mirror serve` under hostile clients, through the binary so the server's
//! own memory can be read from /proc: thousands of idle TLS connections, slow-header and
//! silent clients, and 4,000 spellings of one URL at once, while a normal client fetches
//! the file. Correctness is asserted (every normal request answered right, every slow client
//! cut, the server alive, its resident memory bounded); timings are scripts/bench-abuse's.

#[path = "it/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airgap_testkit::abuse::{self, Target};
use airgap_testkit::pki::TestPki;
use support::airgap;

/// Idle TLS connections held (the test process needs one descriptor each).
const IDLE: usize = 5_000;
const SLOW: usize = 200;
const SPELLINGS: usize = 4_000;
const FILE: &str = "/providers/registry.example.test/acme/big/index.json";
/// A small file (below the in-memory threshold) that 4,000 separately cached copies
/// would turn into ~800 MiB.
const FILE_BYTES: usize = 200_000;
/// Growth of the server's resident memory allowed over the whole scenario.
const RSS_GROWTH_LIMIT_KIB: u64 = 256 * 1024;

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn serve(dir: &Path, cert: &Path, key: &Path) -> (Served, u16) {
    let mut child = airgap()
        .args(["mirror", "serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read listen line");
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected serve output {line:?}"));
    (Served(child), port)
}

#[test]
fn mirror_serve_holds_under_idle_slow_and_spelling_floods() {
    let soft = airgap_mirror::listener::raise_nofile_limit().expect("raise RLIMIT_NOFILE");
    assert!(
        soft as usize >= IDLE + SLOW + 512,
        "RLIMIT_NOFILE hard limit {soft} is too low for {IDLE} idle connections: raise it \
         (ulimit -Hn) to run this test"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let mirror = tmp.path().join("mirror");
    let body: Vec<u8> = (0..FILE_BYTES)
        .map(|i| b"0123456789abcdef"[i % 16])
        .collect();
    let file = mirror.join(&FILE["/providers/".len()..]);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, &body).expect("write");
    let pki = TestPki::new(&[]).expect("pki");
    let files = pki.write_to(tmp.path()).expect("pki files");
    let (mut served, port) = serve(&mirror, &files.cert, &files.key);
    let pid = served.0.id();
    let target = Target {
        addr: ([127, 0, 0, 1], port).into(),
        name: "localhost".to_string(),
        ca_pem: pki.ca_pem.clone(),
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let body = Arc::new(body);
    let (idle, slow, flood, normal, baseline, peak) =
        rt.block_on(async {
            // Warm up (one request, so the baseline includes a served file), then measure.
            let warm = abuse::normal_client(&target, FILE, &body, 1, Duration::ZERO)
                .await
                .expect("client");
            assert!(warm[0].is_ok(), "warm-up request: {warm:?}");
            let baseline = vm_rss_kib(pid).expect("server VmRSS");
            let peak = Arc::new(AtomicU64::new(baseline));
            let until = Instant::now() + Duration::from_secs(45);
            let sampler = tokio::spawn({
                let peak = peak.clone();
                async move {
                    while Instant::now() < until {
                        if let Some(rss) = vm_rss_kib(pid) {
                            peak.fetch_max(rss, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            });
            let idle = tokio::spawn({
                let target = target.clone();
                async move { abuse::idle_tls(&target, IDLE, until).await }
            });
            let slow = tokio::spawn({
                let target = target.clone();
                async move {
                    abuse::slow_headers(&target, SLOW, Duration::from_millis(500), until).await
                }
            });
            tokio::time::sleep(Duration::from_secs(10)).await;
            let flood = abuse::spelling_flood(
                &target,
                abuse::spellings(FILE, SPELLINGS),
                body.clone(),
                until,
            )
            .await
            .expect("flood");
            let normal = abuse::normal_client(&target, FILE, &body, 10, Duration::from_millis(200))
                .await
                .expect("client");
            let idle = idle.await.expect("join").expect("idle");
            let slow = slow.await.expect("join").expect("slow");
            sampler.await.expect("sampler");
            (
                idle,
                slow,
                flood,
                normal,
                baseline,
                peak.load(Ordering::Relaxed),
            )
        });
    eprintln!(
        "idle {idle:?}\nslow {slow:?}\nflood {flood:?}\nnormal {normal:?}\nVmRSS {baseline} KiB -> peak {peak} KiB"
    );
    assert!(
        served.0.try_wait().expect("try_wait").is_none(),
        "the server died"
    );
    assert!(
        normal.iter().all(Result::is_ok),
        "normal client failed: {normal:?}"
    );
    assert_eq!(
        (flood.ok, flood.failed),
        (SPELLINGS, 0),
        "spellings: {flood:?}"
    );
    assert!(
        idle.peak_open >= IDLE * 9 / 10,
        "idle connections not held: {idle:?}"
    );
    assert_eq!(slow.completed, 0, "a slow header got through: {slow:?}");
    assert!(slow.cut >= SLOW, "slow clients not cut: {slow:?}");
    assert!(
        peak.saturating_sub(baseline) < RSS_GROWTH_LIMIT_KIB,
        "server memory grew from {baseline} KiB to {peak} KiB"
    );
}
