//! The mirror's listener against hostile clients, in-process with small limits so each
//! mechanism is exercised quickly: slow headers and silent connections are cut, idle
//! connections beyond the cap do not lock out a normal client, request bodies are refused.
//! (The full-size scenario, with the server's memory measured, is tests/abuse.rs in the
//! main crate and scripts/bench-abuse.)

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use airgap_mirror::serve::{self, Limits};
use airgap_testkit::abuse::{self, Target};
use airgap_testkit::pki::TestPki;

const FILE: &str = "/providers/registry.example.test/acme/t/blob.json";

struct Server {
    target: Target,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}

/// A tree with one small file, served with `limits`; returns the server and the file.
fn start(dir: &Path, limits: Limits) -> (Server, Vec<u8>) {
    let body: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let file = dir.join("mirror").join(&FILE["/providers/".len()..]);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, &body).expect("write");
    let pki = TestPki::new(&[]).expect("pki");
    let files = pki.write_to(dir).expect("pki files");
    let tls = serve::tls_config(&files.cert, &files.key).expect("tls");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let app = serve::router(&dir.join("mirror")).expect("router");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = rx.await;
        };
        serve::serve_with_limits(listener, app, tls, limits, stop)
            .await
            .expect("serve");
    });
    let target = Target {
        addr,
        name: "localhost".to_string(),
        ca_pem: pki.ca_pem,
    };
    let server = Server {
        target,
        stop: Some(tx),
        task: Some(task),
    };
    (server, body)
}

fn quick_limits() -> Limits {
    let mut limits = Limits::default();
    limits.handshake_timeout = Duration::from_secs(1);
    limits.header_read_timeout = Duration::from_secs(1);
    limits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_silent_connections_are_cut() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (server, body) = start(tmp.path(), quick_limits());
    // 8 clients: 4 trickle a ~300-byte header at one byte per 200 ms (a minute's worth),
    // 4 connect and never send a ClientHello.
    let until = Instant::now() + Duration::from_secs(8);
    let slow = abuse::slow_headers(&server.target, 8, Duration::from_millis(200), until)
        .await
        .expect("slow clients");
    assert_eq!(slow.completed, 0, "a slow header got through: {slow:?}");
    assert!(slow.cut >= 8, "clients were not cut: {slow:?}");
    // And the server still serves.
    let normal = abuse::normal_client(&server.target, FILE, &body, 2, Duration::ZERO)
        .await
        .expect("client");
    assert!(normal.iter().all(Result::is_ok), "{normal:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_cap_do_not_lock_out_a_normal_client() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut limits = quick_limits();
    limits.max_connections = 16;
    limits.idle_timeout = Duration::from_secs(600);
    limits.busy_idle_timeout = Duration::from_secs(1);
    let (server, body) = start(tmp.path(), limits);
    let until = Instant::now() + Duration::from_secs(10);
    let idle = tokio::spawn({
        let target = server.target.clone();
        async move { abuse::idle_tls(&target, 48, until).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let normal = abuse::normal_client(&server.target, FILE, &body, 3, Duration::from_millis(100))
        .await
        .expect("client");
    assert!(
        normal.iter().all(Result::is_ok),
        "normal client: {normal:?}"
    );
    let idle = idle.await.expect("join").expect("idle clients");
    // The cap held (a little slack: a client notices a close a moment after the server
    // has taken the next connection), and idle connections were shed to make room.
    assert!(idle.peak_open <= 16 + 4, "cap of 16 exceeded: {idle:?}");
    assert!(idle.peak_open >= 8, "idle clients never got in: {idle:?}");
    assert!(
        idle.closed_by_server > 0,
        "no idle connection was shed: {idle:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (server, body) = start(tmp.path(), quick_limits());
    let (tls, name) = abuse::connector(&server.target).expect("connector");
    let timeout = Duration::from_secs(10);
    for request in [
        format!("POST {FILE} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
        format!("GET {FILE} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
        format!(
            "GET {FILE} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ),
    ] {
        let (status, _, _) = abuse::exchange(&server.target, &tls, &name, request.as_bytes(), timeout)
            .await
            .expect("exchange");
        assert_eq!(status, 413, "{request:?}");
    }
    // An empty body is no body.
    let request =
        format!("GET {FILE} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let (status, got, _) =
        abuse::exchange(&server.target, &tls, &name, request.as_bytes(), timeout)
            .await
            .expect("exchange");
    assert_eq!((status, got == body), (200, true));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_spellings_of_one_file_are_one_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (server, body) = start(tmp.path(), quick_limits());
    let urls = abuse::spellings(FILE, 300);
    assert_eq!(urls.len(), 300);
    let until = Instant::now() + Duration::from_secs(60);
    let flood = abuse::spelling_flood(&server.target, urls, std::sync::Arc::new(body), until)
        .await
        .expect("flood");
    assert_eq!((flood.ok, flood.failed), (300, 0), "{flood:?}");
    server.stop().await;
}
