//! Hostile HTTPS clients for listener tests and `scripts/bench-abuse`: many idle TLS
//! connections, slow-header (slowloris) clients, silent TCP connections that never start a
//! handshake, a flood of spellings of one URL, and a normal client timing its requests
//! while all that goes on. Loopback only: every target must be a 127.0.0.1 address. Every
//! loop is bounded by a count and by the run's deadline; all clients stop by themselves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Where and whom to attack.
#[derive(Debug, Clone)]
pub struct Target {
    /// A loopback address.
    pub addr: SocketAddr,
    /// The TLS server name the certificate carries (e.g. `localhost`).
    pub name: String,
    /// PEM of the CA that issued the server certificate.
    pub ca_pem: String,
}

/// Errors of the abuse clients.
#[derive(Debug, thiserror::Error)]
pub enum AbuseError {
    /// The target is not on loopback.
    #[error("{0} is not a loopback address: abuse clients only attack 127.0.0.1")]
    NotLoopback(SocketAddr),
    /// The CA or server name is unusable.
    #[error("TLS client setup: {0}")]
    Tls(String),
}

/// A connector trusting only the target's CA, offering HTTP/1.1 only (so the byte-level
/// clients below speak the protocol they write).
pub fn connector(target: &Target) -> Result<(TlsConnector, ServerName<'static>), AbuseError> {
    if !target.addr.ip().is_loopback() {
        return Err(AbuseError::NotLoopback(target.addr));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(target.ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| AbuseError::Tls(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| AbuseError::Tls(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AbuseError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name =
        ServerName::try_from(target.name.clone()).map_err(|e| AbuseError::Tls(e.to_string()))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

async fn tls_connect(
    target: &Target,
    tls: &TlsConnector,
    name: &ServerName<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    tls.connect(name.clone(), tcp).await
}

/// What the idle clients achieved.
#[derive(Debug, Default, Clone)]
pub struct IdleReport {
    /// Connections with a finished handshake open at the same time, at most.
    pub peak_open: usize,
    /// Handshakes completed in all (reconnections included).
    pub handshakes: usize,
    /// Connections the server closed.
    pub closed_by_server: usize,
    /// Connects or handshakes that failed.
    pub failures: usize,
}

/// Opens `count` TLS connections (at most 256 handshakes in flight) and keeps them open
/// and silent until `until`; when the server closes one, it is opened again (an attacker
/// would). Returns when `until` has passed.
pub async fn idle_tls(
    target: &Target,
    count: usize,
    until: Instant,
) -> Result<IdleReport, AbuseError> {
    let (tls, name) = connector(target)?;
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let handshakes = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (target, tls, name) = (target.clone(), tls.clone(), name.clone());
        let (open, peak, handshakes, closed, failures, gate) = (
            open.clone(),
            peak.clone(),
            handshakes.clone(),
            closed.clone(),
            failures.clone(),
            gate.clone(),
        );
        tasks.spawn(async move {
            while Instant::now() < until {
                let connected = {
                    let Ok(_permit) = gate.acquire().await else {
                        return;
                    };
                    let deadline = tokio::time::Instant::from_std(until);
                    tokio::time::timeout_at(deadline, tls_connect(&target, &tls, &name)).await
                };
                let mut stream = match connected {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(_)) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    Err(_) => return,
                };
                handshakes.fetch_add(1, Ordering::Relaxed);
                let now_open = open.fetch_add(1, Ordering::Relaxed) + 1;
                peak.fetch_max(now_open, Ordering::Relaxed);
                let mut buf = [0u8; 256];
                let deadline = tokio::time::Instant::from_std(until);
                let read = tokio::time::timeout_at(deadline, async {
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                open.fetch_sub(1, Ordering::Relaxed);
                if read.is_ok() {
                    closed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(IdleReport {
        peak_open: peak.load(Ordering::Relaxed),
        handshakes: handshakes.load(Ordering::Relaxed),
        closed_by_server: closed.load(Ordering::Relaxed),
        failures: failures.load(Ordering::Relaxed),
    })
}

/// What the slow clients saw.
#[derive(Debug, Default, Clone)]
pub struct SlowReport {
    /// Connections the server cut before the client finished its header.
    pub cut: usize,
    /// Connections that got to send their whole header (the server waited too long).
    pub completed: usize,
    /// Seconds from connect to the cut, longest seen.
    pub longest_cut_secs: f64,
    /// Connects or handshakes that failed.
    pub failures: usize,
}

/// `count` slowloris clients: each finishes a TLS handshake, then sends a request header
/// one byte every `interval`, and opens a new connection when cut. Half of them (the odd
/// ones) never even start the handshake: a silent TCP connection, which the handshake
/// deadline has to end. Returns when `until` has passed.
pub async fn slow_headers(
    target: &Target,
    count: usize,
    interval: Duration,
    until: Instant,
) -> Result<SlowReport, AbuseError> {
    let (tls, name) = connector(target)?;
    let report = Arc::new(std::sync::Mutex::new(SlowReport::default()));
    let header = format!(
        "GET /providers/slow HTTP/1.1\r\nHost: {}\r\nUser-Agent: slowloris\r\nX-Pad: {}\r\n\r\n",
        target.name,
        "a".repeat(200)
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let (target, tls, name, report) =
            (target.clone(), tls.clone(), name.clone(), report.clone());
        let header = header.clone();
        tasks.spawn(async move {
            let deadline = tokio::time::Instant::from_std(until);
            while Instant::now() < until {
                let started = Instant::now();
                let outcome = tokio::time::timeout_at(deadline, async {
                    if i % 2 == 1 {
                        silent_tcp(&target).await
                    } else {
                        trickle(&target, &tls, &name, header.as_bytes(), interval).await
                    }
                })
                .await;
                let Ok(outcome) = outcome else { return };
                let failed = matches!(outcome, Trickled::Failed);
                {
                    let mut report = report.lock().unwrap_or_else(|e| e.into_inner());
                    match outcome {
                        Trickled::Cut => {
                            report.cut += 1;
                            report.longest_cut_secs =
                                report.longest_cut_secs.max(started.elapsed().as_secs_f64());
                        }
                        Trickled::Completed => report.completed += 1,
                        Trickled::Failed => report.failures += 1,
                    }
                }
                if failed {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let report = report.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(report)
}

enum Trickled {
    Cut,
    Completed,
    Failed,
}

async fn trickle(
    target: &Target,
    tls: &TlsConnector,
    name: &ServerName<'static>,
    header: &[u8],
    interval: Duration,
) -> Trickled {
    let Ok(mut stream) = tls_connect(target, tls, name).await else {
        return Trickled::Failed;
    };
    let mut buf = [0u8; 64];
    for byte in header {
        if stream.write_all(std::slice::from_ref(byte)).await.is_err()
            || stream.flush().await.is_err()
        {
            return Trickled::Cut;
        }
        // A cut shows as EOF (or a reset) on read; wait for it at most one interval.
        match tokio::time::timeout(interval, stream.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0) | Err(_)) => return Trickled::Cut,
            Ok(Ok(_)) => return Trickled::Cut, // an error response: also a refusal
        }
    }
    Trickled::Completed
}

async fn silent_tcp(target: &Target) -> Trickled {
    let Ok(mut tcp) = TcpStream::connect(target.addr).await else {
        return Trickled::Failed;
    };
    let mut buf = [0u8; 64];
    // Never sends a ClientHello; waits (bounded by the caller's deadline) to be closed.
    match tcp.read(&mut buf).await {
        Ok(_) | Err(_) => Trickled::Cut,
    }
}

/// One HTTP/1.1 GET on a fresh TLS connection: (status, body, time taken).
pub async fn get(
    target: &Target,
    tls: &TlsConnector,
    name: &ServerName<'static>,
    path: &str,
    timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>, Duration)> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        target.name
    );
    exchange(target, tls, name, req.as_bytes(), timeout).await
}

/// Sends `request` (raw bytes, ending in `Connection: close`) on a fresh TLS connection
/// and reads the reply to its end: (status, body, time taken).
pub async fn exchange(
    target: &Target,
    tls: &TlsConnector,
    name: &ServerName<'static>,
    request: &[u8],
    timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>, Duration)> {
    let started = Instant::now();
    let exchange = async {
        let mut stream = tls_connect(target, tls, name).await?;
        stream.write_all(request).await?;
        stream.flush().await?;
        let mut reply = Vec::new();
        // The server closes after the response (Connection: close); a reset after it is fine.
        let _ = stream.read_to_end(&mut reply).await;
        Ok::<_, std::io::Error>(reply)
    };
    let reply = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out"))??;
    let (status, body) = parse_reply(&reply)?;
    Ok((status, body, started.elapsed()))
}

/// Splits a raw HTTP/1.1 response (with Content-Length) into status and body.
fn parse_reply(reply: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of header in the reply"))?;
    let head = std::str::from_utf8(&reply[..end]).map_err(|_| bad("header is not UTF-8"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let body = &reply[end + 4..];
    let length = head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    match length {
        Some(n) if body.len() >= n => Ok((status, body[..n].to_vec())),
        Some(_) => Err(bad("body shorter than its Content-Length")),
        None => Ok((status, body.to_vec())),
    }
}

/// `count` distinct spellings of `path`: the same URL with different subsets of its
/// letters percent-encoded (upper- or lower-case hex), never touching `/`.
pub fn spellings(path: &str, count: usize) -> Vec<String> {
    let chars: Vec<char> = path.chars().collect();
    let encodable: Vec<usize> = chars
        .iter()
        .enumerate()
        .filter(|(i, c)| c.is_ascii_alphanumeric() && *i > "/providers/".len())
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::with_capacity(count);
    // Each encodable letter has three states: literal, %XX, %xx; spelling n is n in base 3.
    for n in 0..count {
        let mut state = n;
        let mut spelled = String::with_capacity(path.len() * 2);
        let mut next = encodable.iter().peekable();
        for (i, c) in chars.iter().enumerate() {
            if next.peek() == Some(&&i) {
                next.next();
                let digit = state % 3;
                state /= 3;
                match digit {
                    1 => spelled.push_str(&format!("%{:02X}", u32::from(*c))),
                    2 => spelled.push_str(&format!("%{:02x}", u32::from(*c))),
                    _ => spelled.push(*c),
                }
            } else {
                spelled.push(*c);
            }
        }
        if state > 0 {
            break; // ran out of distinct spellings
        }
        out.push(spelled);
    }
    out
}

/// What the spelling flood did.
#[derive(Debug, Default, Clone)]
pub struct SpellingReport {
    /// Requests answered 200 with the expected body.
    pub ok: usize,
    /// Requests answered otherwise, or failed.
    pub failed: usize,
}

/// Requests every spelling in `urls` once (16 at a time, a fresh connection each) and
/// checks each body against `expect`. Stops early at `until`.
pub async fn spelling_flood(
    target: &Target,
    urls: Vec<String>,
    expect: Arc<Vec<u8>>,
    until: Instant,
) -> Result<SpellingReport, AbuseError> {
    let (tls, name) = connector(target)?;
    let urls = Arc::new(urls);
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (target, tls, name, urls, next, ok, failed, expect) = (
            target.clone(),
            tls.clone(),
            name.clone(),
            urls.clone(),
            next.clone(),
            ok.clone(),
            failed.clone(),
            expect.clone(),
        );
        tasks.spawn(async move {
            while Instant::now() < until {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(url) = urls.get(i) else { return };
                match get(&target, &tls, &name, url, Duration::from_secs(20)).await {
                    Ok((200, body, _)) if body == *expect => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(SpellingReport {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
    })
}

/// The normal client: `count` GETs of `path`, one every `pause`, each on a fresh
/// connection (handshake included in its time). Returns each request's outcome.
pub async fn normal_client(
    target: &Target,
    path: &str,
    expect: &[u8],
    count: usize,
    pause: Duration,
) -> Result<Vec<Result<Duration, String>>, AbuseError> {
    let (tls, name) = connector(target)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let outcome = match get(target, &tls, &name, path, Duration::from_secs(30)).await {
            Ok((200, body, took)) if body == expect => Ok(took),
            Ok((status, body, _)) => Err(format!("status {status}, {} body bytes", body.len())),
            Err(e) => Err(e.to_string()),
        };
        out.push(outcome);
        tokio::time::sleep(pause).await;
    }
    Ok(out)
}
