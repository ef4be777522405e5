//! The network-mirror server over real TLS connections, with raw HTTP/1.1 requests so that
//! paths reach the server exactly as written (no client-side `..` normalisation).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use airgap_mirror::{maintain, serve, Mirror};
use airgap_testkit::pki::TestPki;
use airgap_testkit::registry::provider_zip;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

struct Server {
    addr: SocketAddr,
    ca_pem: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(dir: &Path) -> Server {
    let pki = TestPki::new(&[]).expect("pki");
    let files = pki.write_to(dir).expect("pki files");
    let tls = serve::tls_config(&files.cert, &files.key).expect("tls config");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let root = dir.join("mirror");
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            let stop = async move {
                let _ = rx.await;
            };
            serve::serve(listener, &root, tls, stop)
                .await
                .expect("serve");
        });
    });
    Server {
        addr,
        ca_pem: pki.ca_pem,
        stop: Some(tx),
        thread: Some(thread),
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn client_config(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("ca"))
        .expect("add ca");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Sends `request_line` and asserts the answer is one of the `statuses` and does not
/// carry the file planted outside the tree.
fn refused(server: &Server, request_line: &str, statuses: &[u16]) {
    let reply = raw(server, request_line, &[]);
    assert!(
        statuses.contains(&reply.status),
        "{request_line}: {}",
        reply.status
    );
    assert!(
        !String::from_utf8_lossy(&reply.body).contains("outside the tree"),
        "{request_line}"
    );
}

fn raw(server: &Server, request_line: &str, extra: &[(&str, &str)]) -> Reply {
    raw_with(
        server,
        request_line,
        extra,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    )
}

fn raw_with(
    server: &Server,
    request_line: &str,
    extra: &[(&str, &str)],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Reply {
    let config = client_config(&server.ca_pem, versions);
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(config, name).expect("conn");
    let tcp = std::net::TcpStream::connect(server.addr).expect("connect");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut req = format!("{request_line} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn tree(dir: &Path) -> Vec<u8> {
    let zip = provider_zip("dummy", "1.0.0", "linux_amd64", 600_000, false).expect("zip");
    let zip_path = dir.join("in.zip");
    std::fs::write(&zip_path, &zip).expect("write");
    let mirror = Mirror::new(dir.join("mirror"));
    let addr = "registry.example.test/acme/dummy".parse().expect("addr");
    maintain::import(
        &mirror,
        &addr,
        &"1.0.0".parse().expect("v"),
        &"linux_amd64".parse().expect("p"),
        &zip_path,
        false,
    )
    .expect("import");
    std::fs::write(dir.join("secret.txt"), "outside the tree").expect("secret");
    zip
}

const ZIP: &str =
    "/providers/registry.example.test/acme/dummy/terraform-provider-dummy_1.0.0_linux_amd64.zip";

#[test]
fn serves_json_as_json_and_zips_with_validators() {
    let tmp = tempfile::tempdir().expect("tmp");
    let zip = tree(tmp.path());
    let server = start(tmp.path());
    let index = raw(
        &server,
        "GET /providers/registry.example.test/acme/dummy/index.json",
        &[],
    );
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&index.body).expect("json")["versions"]
            ["1.0.0"],
        serde_json::json!({})
    );

    let full = raw(&server, &format!("GET {ZIP}"), &[]);
    assert_eq!(full.status, 200);
    assert_eq!(full.body, zip);
    assert_eq!(full.header("content-type"), Some("application/zip"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let etag = full.header("etag").expect("etag").to_string();
    let modified = full
        .header("last-modified")
        .expect("last-modified")
        .to_string();

    let head = raw(&server, &format!("HEAD {ZIP}"), &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(zip.len().to_string().as_str())
    );

    let range = raw(
        &server,
        &format!("GET {ZIP}"),
        &[("Range", "bytes=100-199")],
    );
    assert_eq!(range.status, 206);
    assert_eq!(range.body, zip[100..200]);
    assert_eq!(
        range.header("content-range"),
        Some(format!("bytes 100-199/{}", zip.len()).as_str())
    );
    let tail = raw(&server, &format!("GET {ZIP}"), &[("Range", "bytes=-10")]);
    assert_eq!(tail.body, zip[zip.len() - 10..]);
    let beyond = raw(
        &server,
        &format!("GET {ZIP}"),
        &[("Range", &format!("bytes={}-", zip.len()))],
    );
    assert_eq!(beyond.status, 416);

    assert_eq!(
        raw(&server, &format!("GET {ZIP}"), &[("If-None-Match", &etag)]).status,
        304
    );
    assert_eq!(
        raw(
            &server,
            &format!("GET {ZIP}"),
            &[("If-Modified-Since", &modified)]
        )
        .status,
        304
    );
    let stale = raw(
        &server,
        &format!("GET {ZIP}"),
        &[("Range", "bytes=0-9"), ("If-Range", "\"other\"")],
    );
    assert_eq!((stale.status, stale.body.len()), (200, zip.len()));
    assert_eq!(raw(&server, &format!("POST {ZIP}"), &[]).status, 405);
}

#[test]
fn anything_outside_the_tree_is_404() {
    let tmp = tempfile::tempdir().expect("tmp");
    tree(tmp.path());
    std::fs::create_dir_all(tmp.path().join("mirror/.airgap-partial")).expect("mkdir");
    std::fs::write(tmp.path().join("mirror/.airgap-partial/x.zip"), "partial").expect("write");
    let server = start(tmp.path());
    for path in [
        "/providers/../secret.txt",
        "/providers/%2e%2e/secret.txt",
        "/providers/%2E%2E%2Fsecret.txt",
        "/providers/registry.example.test/../../secret.txt",
        "/providers/registry.example.test/%2e%2e/%2e%2e/secret.txt",
        "/providers/..%5csecret.txt",
        "/providers/.airgap-partial/x.zip",
        "/providers/registry.example.test/acme/dummy/missing.json",
        "/providers/registry.example.test/acme/dummy",
        "/providers/",
        "/secret.txt",
        "/mirror/registry.example.test/acme/dummy/index.json",
    ] {
        refused(&server, &format!("GET {path}"), &[404]);
    }
}

#[test]
fn speaks_tls_1_2_and_1_3() {
    let tmp = tempfile::tempdir().expect("tmp");
    tree(tmp.path());
    let server = start(tmp.path());
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let reply = raw_with(
            &server,
            "GET /providers/registry.example.test/acme/dummy/index.json",
            &[],
            &[version],
        );
        assert_eq!(reply.status, 200);
    }
}

#[test]
fn a_file_replaced_on_disk_is_served_fresh() {
    let tmp = tempfile::tempdir().expect("tmp");
    tree(tmp.path());
    let server = start(tmp.path());
    let path = "/providers/registry.example.test/acme/dummy/index.json";
    let first = raw(&server, &format!("GET {path}"), &[]);
    let file = tmp
        .path()
        .join("mirror/registry.example.test/acme/dummy/index.json");
    let staged = file.with_extension("new");
    std::fs::write(&staged, "{\"versions\":{\"1.0.0\":{},\"2.0.0\":{}}}\n").expect("write");
    std::fs::rename(&staged, &file).expect("rename");
    let second = raw(&server, &format!("GET {path}"), &[]);
    assert_ne!(first.body, second.body);
    assert!(String::from_utf8_lossy(&second.body).contains("2.0.0"));
    assert_ne!(first.header("etag"), second.header("etag"));
    std::fs::remove_file(&file).expect("rm");
    assert_eq!(raw(&server, &format!("GET {path}"), &[]).status, 404);
}

#[test]
fn serves_the_module_registry_protocol_and_nothing_outside_the_store() {
    let tmp = tempfile::tempdir().expect("tmp");
    tree(tmp.path());
    let module = tmp.path().join("module");
    std::fs::create_dir_all(&module).expect("mkdir");
    std::fs::write(module.join("main.tf"), "output \"x\" { value = 1 }\n").expect("tf");
    let store = airgap_mirror::ModuleStore::new(tmp.path().join("mirror"));
    let addr: airgap_mirror::ModuleAddr =
        "registry.coder.com/coder/demo/coder".parse().expect("addr");
    let imported = store
        .import(&addr, &"1.0.0".parse().expect("v"), &module, false)
        .expect("import");
    let server = start(tmp.path());
    let base = "/modules/v1/registry.coder.com/coder/demo/coder";

    let versions = raw(&server, &format!("GET {base}/versions"), &[]);
    assert_eq!(versions.status, 200);
    assert_eq!(versions.header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&versions.body).expect("json"),
        serde_json::json!({"modules": [{"versions": [{"version": "1.0.0"}]}]})
    );
    let download = raw(&server, &format!("GET {base}/1.0.0/download"), &[]);
    assert_eq!(download.status, 204);
    assert_eq!(download.header("x-terraform-get"), Some("./module.tar.gz"));
    let archive = raw(&server, &format!("GET {base}/1.0.0/module.tar.gz"), &[]);
    assert_eq!(archive.status, 200);
    assert_eq!(archive.header("content-type"), Some("application/gzip"));
    assert_eq!(
        archive.body,
        std::fs::read(&imported.path).expect("archive")
    );

    for unknown in [
        format!("GET {base}/1.1.0/download"),
        format!("GET {base}/1.1.0/module.tar.gz"),
        "GET /modules/v1/registry.coder.com/coder/other/coder/versions".to_string(),
        format!("GET {base}/1.0.0/index.json"),
        format!("GET {base}/index.json"),
    ] {
        assert_eq!(raw(&server, &unknown, &[]).status, 404, "{unknown}");
    }
    for bad in [
        "GET /modules/v1/registry.coder.com/coder/demo/../../../../secret.txt/versions",
        "GET /modules/v1/registry.coder.com/%2e%2e/%2e%2e/%2e%2e/versions",
        "GET /modules/v1/registry.coder.com/coder/demo/coder/..%2f..%2fsecret/download",
    ] {
        refused(&server, bad, &[400, 404]);
    }
}

#[test]
fn the_provider_route_serves_nothing_of_the_module_store() {
    let tmp = tempfile::tempdir().expect("tmp");
    tree(tmp.path());
    let module = tmp.path().join("module");
    std::fs::create_dir_all(&module).expect("mkdir");
    std::fs::write(module.join("main.tf"), "output \"x\" { value = 1 }\n").expect("tf");
    let store = airgap_mirror::ModuleStore::new(tmp.path().join("mirror"));
    let addr: airgap_mirror::ModuleAddr =
        "registry.coder.com/coder/demo/coder".parse().expect("addr");
    store
        .import(&addr, &"1.0.0".parse().expect("v"), &module, false)
        .expect("import");
    // A link elsewhere in the provider tree that leads into the store.
    std::os::unix::fs::symlink(
        tmp.path()
            .join("mirror/modules/registry.coder.com/coder/demo/coder"),
        tmp.path()
            .join("mirror/registry.example.test/acme/into-modules"),
    )
    .expect("symlink");
    let server = start(tmp.path());

    // The provider route still serves providers, and the module route the archive.
    assert_eq!(raw(&server, &format!("GET {ZIP}"), &[]).status, 200);
    let checked = "GET /modules/v1/registry.coder.com/coder/demo/coder/1.0.0/module.tar.gz";
    assert_eq!(raw(&server, checked, &[]).status, 200);
    for spelling in [
        "/providers/modules/registry.coder.com/coder/demo/coder/1.0.0.tar.gz",
        "/providers/modules/registry.coder.com/coder/demo/coder/index.json",
        "/providers/%6dodules/registry.coder.com/coder/demo/coder/1.0.0.tar.gz",
        "/providers/modules%2fregistry.coder.com/coder/demo/coder/1.0.0.tar.gz",
        "/providers/registry.example.test/acme/into-modules/1.0.0.tar.gz",
        "/providers/registry.example.test/acme/into-modules/index.json",
        "/providers/registry.example.test/../modules/registry.coder.com/coder/demo/coder/index.json",
    ] {
        let reply = raw(&server, &format!("GET {spelling}"), &[]);
        assert_eq!(reply.status, 404, "{spelling}");
        assert!(reply.body.len() < 200, "{spelling}: {} bytes", reply.body.len());
    }
}
