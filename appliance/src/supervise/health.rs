//! coderd's readiness: `GET /healthz` over TLS, the way a user's browser would reach it.
//!
//! The client trusts only the appliance's CA bundle (no system roots, no proxy), sends the
//! access URL's host name as SNI and `Host`, and connects to coderd's own listener
//! (127.0.0.1 when it listens on every address). A 200 therefore also proves that the
//! certificate coderd serves chains to the internal CA and names the access URL's host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::AccessUrl;

/// How long one probe may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why coderd is not (known to be) healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The CA bundle could not be read or holds no certificate.
    #[error("{path}: {message} (re-run install to rewrite the CA bundle)", path = .path.display())]
    TrustBundle {
        /// The bundle.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The health client cannot be built.
    #[error("{0}")]
    Setting(String),
    /// The request failed (refused, timed out, certificate not trusted, ...).
    #[error("GET {url}: {message}")]
    Request {
        /// The URL probed.
        url: String,
        /// The innermost cause.
        message: String,
    },
    /// coderd answered, but not 200.
    #[error("GET {url}: HTTP {status}")]
    Status {
        /// The URL probed.
        url: String,
        /// The status code.
        status: u16,
    },
}

/// A reusable `/healthz` probe.
#[derive(Debug, Clone)]
pub struct HealthProbe {
    client: reqwest::Client,
    /// `https://HOST:PORT`: the access URL's host, the listener's port.
    base: String,
}

impl HealthProbe {
    /// A probe for coderd listening on `listen` and reached by users at `access`,
    /// trusting only the certificates in `ca_bundle`.
    pub fn new(
        ca_bundle: &Path,
        access: &AccessUrl,
        listen: SocketAddr,
    ) -> Result<HealthProbe, HealthError> {
        let target = SocketAddr::new(connect_ip(listen.ip()), listen.port());
        let base = format!("https://{}:{}", access.url_host(), listen.port());
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .no_proxy()
            .timeout(TIMEOUT)
            .resolve(access.host(), target);
        for cert in trust_bundle(ca_bundle)? {
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .build()
            .map_err(|e| HealthError::Setting(format!("health client: {}", innermost(&e))))?;
        Ok(HealthProbe { client, base })
    }

    /// The URL of `path` (starting with `/`) on the probed server.
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One probe: `Ok` when coderd answered 200 to `GET /healthz`.
    pub async fn check(&self) -> Result<(), HealthError> {
        self.get_ok("/healthz").await
    }

    /// `GET path` (starting with `/`) on the same server, with the same trust and name:
    /// `Ok` on 200. `doctor` uses it for the mirror's `/ca.pem` and provider indexes.
    pub async fn get_ok(&self, path: &str) -> Result<(), HealthError> {
        let url = self.url_of(path);
        let response = match self.client.get(&url).send().await {
            Ok(response) => response,
            Err(e) => {
                let message = innermost(&e);
                return Err(HealthError::Request { url, message });
            }
        };
        match response.status().as_u16() {
            200 => Ok(()),
            status => Err(HealthError::Status { url, status }),
        }
    }
}

/// Where to connect for a listener on `ip`: loopback when it listens everywhere.
fn connect_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// The certificates of a PEM bundle.
fn trust_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, HealthError> {
    let bad = |message: String| HealthError::TrustBundle {
        path: path.to_path_buf(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(innermost(&e)))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The innermost cause on one line: reqwest's own message only says "error sending
/// request for url (…)", and the URL is already in [`HealthError`]'s message.
pub fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use airgap_certs::{CertificateAuthority, InitOptions, LeafRequest};
    use axum::routing::get;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn ca(dir: &Path, name: &str) -> Result<CertificateAuthority, airgap_certs::CertsError> {
        let mut options = InitOptions::new(name);
        options.permitted_dns = vec!["example.internal".into()];
        CertificateAuthority::init(dir, &options)
    }

    /// Serves `/healthz` over TLS on 127.0.0.1 with a leaf of `ca`; returns the address.
    async fn serve(
        ca: &CertificateAuthority,
        dir: &Path,
    ) -> Result<SocketAddr, Box<dyn std::error::Error>> {
        let leaf = ca.issue(&LeafRequest::server(["coder.example.internal"], []))?;
        let (cert, key) = (dir.join("leaf.crt"), dir.join("leaf.key"));
        std::fs::write(&cert, &leaf.chain_pem)?;
        std::fs::write(&key, leaf.key.expose())?;
        let tls = airgap_mirror::serve::tls_config(&cert, &key)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().route("/healthz", get(|| async { "OK" }));
        let server = airgap_mirror::serve::serve_router(listener, app, tls, std::future::pending());
        tokio::spawn(server);
        Ok(addr)
    }

    #[tokio::test]
    async fn trusts_the_appliance_ca_and_refuses_a_certificate_from_another() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let ours = ca(&tmp.path().join("ours"), "Ours")?;
        let theirs = ca(&tmp.path().join("theirs"), "Theirs")?;
        let bundle = tmp.path().join("ca-bundle.pem");
        ours.write_trust_bundle(&bundle)?;
        let access: AccessUrl = "https://coder.example.internal".parse()?;

        let good = serve(&ours, tmp.path()).await?;
        let any = crate::config::any_address(good.port());
        let probe = HealthProbe::new(&bundle, &access, any)?;
        assert_eq!(
            probe.url_of("/healthz"),
            format!("https://coder.example.internal:{}/healthz", good.port())
        );
        probe.check().await?;

        let other_dir = tmp.path().join("other");
        std::fs::create_dir(&other_dir)?;
        let bad = serve(&theirs, &other_dir).await?;
        let probe = HealthProbe::new(&bundle, &access, bad)?;
        match probe.check().await {
            Err(HealthError::Request { message, .. }) => {
                assert!(message.contains("certificate"), "{message}");
            }
            other => panic!("a certificate from another CA was accepted: {other:?}"),
        }
        Ok(())
    }
}
