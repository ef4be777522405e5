//! Real clients against real servers: a rustls client and curl complete TLS handshakes
//! with an axum server using issued certificates, and both rustls and OpenSSL reject a
//! leaf outside the name constraints that was forged with the intermediate's key.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use airgap_certs::{Algorithm, CertificateAuthority, InitOptions, IpRange, LeafRequest};
use airgap_testkit::tools::clean_command;
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const BODY: &str = "hello from the appliance";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An axum HTTPS server on 127.0.0.1:0, stopped on drop.
struct TestServer {
    addr: SocketAddr,
    handle: Handle<SocketAddr>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(chain_pem: &str, key_pem: &str) -> Self {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("chain PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server accepts the issued certificate and key");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let handle = Handle::new();
        let server_handle = handle.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let app = axum::Router::new().route("/", axum::routing::get(|| async { BODY }));
                axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(Arc::new(config)))
                    .expect("server")
                    .handle(server_handle)
                    .serve(app.into_make_service())
                    .await
                    .expect("serve");
            });
        });
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// GET / over rustls trusting only `bundle_pem`, sending SNI `server_name`.
fn rustls_get(bundle_pem: &str, server_name: &str, addr: SocketAddr) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let request = format!("GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // Servers may close without close_notify once the response is complete.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

fn new_ca(dir: &Path, dns: &[&str], ip: &[&str], algorithm: Algorithm) -> CertificateAuthority {
    let mut options = InitOptions::new("Test Corp Internal CA");
    options.permitted_dns = dns.iter().map(|s| s.to_string()).collect();
    options.permitted_ip = ip
        .iter()
        .map(|s| s.parse::<IpRange>().expect("cidr"))
        .collect();
    options.algorithm = algorithm;
    CertificateAuthority::init(&dir.join("ca"), &options).expect("init")
}

fn curl(bundle: &Path, host: &str, addr: SocketAddr) -> std::process::Output {
    clean_command("curl")
        .args(["--silent", "--show-error", "--max-time", "20", "--cacert"])
        .arg(bundle)
        .arg("--resolve")
        .arg(format!("{host}:{}:127.0.0.1", addr.port()))
        .arg(format!("https://{host}:{}/", addr.port()))
        .output()
        .expect("run curl")
}

#[test]
fn rustls_and_curl_complete_handshakes_with_an_issued_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = new_ca(
        tmp.path(),
        &["example.com"],
        &["127.0.0.0/8"],
        Algorithm::EcdsaP256,
    );
    let request = LeafRequest::server(
        ["coder.example.com", "*.apps.example.com"],
        ["127.0.0.1".parse().expect("ip")],
    );
    let leaf = ca.issue(&request).expect("issue");
    let server = TestServer::start(&leaf.chain_pem, leaf.key.expose());
    let bundle = ca.trust_bundle_pem();

    for name in [
        "coder.example.com",
        "workspace-1.apps.example.com",
        "127.0.0.1",
    ] {
        let response = rustls_get(&bundle, name, server.addr)
            .unwrap_or_else(|e| panic!("rustls to {name}: {e}"));
        assert!(
            response.starts_with("HTTP/1.1 200") && response.contains(BODY),
            "{name}: {response}"
        );
    }
    let wrong = rustls_get(&bundle, "other.example.com", server.addr);
    assert!(
        wrong.is_err(),
        "a name not in the certificate must fail: {wrong:?}"
    );

    let bundle_path = tmp.path().join("ca-bundle.pem");
    ca.write_trust_bundle(&bundle_path).expect("export trust");
    let out = curl(&bundle_path, "coder.example.com", server.addr);
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), BODY);

    // Without the trust bundle curl must refuse (proves --cacert is what made it work).
    let other = new_ca(
        &tmp.path().join("other"),
        &["example.com"],
        &[],
        Algorithm::EcdsaP256,
    );
    let other_bundle = tmp.path().join("other-bundle.pem");
    other
        .write_trust_bundle(&other_bundle)
        .expect("export other");
    assert!(!curl(&other_bundle, "coder.example.com", server.addr)
        .status
        .success());
}

#[test]
fn address_only_and_ed25519_cas_work_with_rustls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Only an IP range permitted: the root excludes every DNS name.
    let ca = new_ca(tmp.path(), &[], &["127.0.0.0/8"], Algorithm::Ed25519);
    let leaf = ca
        .issue(&LeafRequest::server(
            Vec::<String>::new(),
            ["127.0.0.1".parse().expect("ip")],
        ))
        .expect("issue");
    let server = TestServer::start(&leaf.chain_pem, leaf.key.expose());
    let response =
        rustls_get(&ca.trust_bundle_pem(), "127.0.0.1", server.addr).expect("rustls handshake");
    assert!(response.contains(BODY), "{response}");
    let refused = ca
        .issue(&LeafRequest::server(["host.example.com"], []))
        .expect_err("DNS must be refused");
    assert!(
        refused
            .to_string()
            .contains("outside this CA's name constraints"),
        "{refused}"
    );
}

/// A leaf for `name` signed directly with the intermediate's key, bypassing `issue`.
fn forge_leaf(ca_dir: &Path, name: &str) -> (String, String) {
    let ca_cert = std::fs::read_to_string(ca_dir.join("ca.crt")).expect("ca.crt");
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca.key")).expect("ca.key"))
            .expect("key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_cert, ca_key).expect("issuer");
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, &issuer).expect("forge");
    (format!("{}{ca_cert}", cert.pem()), key.serialize_pem())
}

#[test]
fn a_forged_leaf_outside_the_constraints_is_rejected_by_rustls_and_openssl() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = new_ca(tmp.path(), &["example.com"], &[], Algorithm::EcdsaP256);
    let ca_dir = tmp.path().join("ca");

    // Control: a forged leaf *inside* the constraints is accepted, so the rejection below
    // is the name constraint at work and not something else about the forgery.
    let (good_chain, good_key) = forge_leaf(&ca_dir, "inside.example.com");
    let server = TestServer::start(&good_chain, &good_key);
    rustls_get(&ca.trust_bundle_pem(), "inside.example.com", server.addr)
        .expect("in-constraint leaf accepted");
    drop(server);

    let (chain, key) = forge_leaf(&ca_dir, "evil.org");
    let server = TestServer::start(&chain, &key);
    let err = rustls_get(&ca.trust_bundle_pem(), "evil.org", server.addr)
        .expect_err("rustls must reject");
    assert!(
        err.contains("NameConstraint") || err.contains("name constraint"),
        "unexpected rustls error: {err}"
    );

    let leaf_path = tmp.path().join("forged.pem");
    std::fs::write(&leaf_path, &chain).expect("write forged");
    let out = clean_command("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca_dir.join("root.crt"))
        .arg("-untrusted")
        .arg(ca_dir.join("ca.crt"))
        .arg(&leaf_path)
        .output()
        .expect("openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "openssl accepted the forged leaf: {text}"
    );
    assert!(text.contains("permitted subtree violation"), "{text}");
}
