//! A small in-memory web server for stand-in upstreams (registries, release sites): HTTP or
//! HTTPS on 127.0.0.1, with knobs for added latency and for cutting response bodies off
//! half-way, hostile behaviours per path ([`Hostile`]: redirects, slow drips, bodies with no
//! declared size), and a log of every request. Runs on its own thread and runtime, so blocking
//! tests can use it without tokio.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Request, Response, StatusCode};
use bytes::Bytes;

/// One file the server answers with.
#[derive(Debug, Clone)]
pub struct Route {
    /// The body.
    pub body: Bytes,
    /// Its Content-Type.
    pub content_type: String,
}

/// One request the server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path (without query).
    pub path: String,
    /// The Range header, if any.
    pub range: Option<String>,
}

/// How one path misbehaves, as a hostile or broken upstream would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hostile {
    /// Answer `302 Found` with this `Location` (e.g. an `http://` downgrade).
    Redirect(String),
    /// Send the body one byte at a time, this far apart (a server that never stalls long
    /// enough for an idle timeout but never finishes).
    Drip(Duration),
    /// Send the body chunked, with no Content-Length, so only a size cap stops it.
    Unsized,
}

/// The content and behaviour of a server; shared with the test, which may change it live.
#[derive(Debug, Default)]
pub struct Site {
    routes: RwLock<HashMap<String, Route>>,
    hostile: RwLock<HashMap<String, Hostile>>,
    latency_ms: AtomicU64,
    cut_bodies: AtomicU32,
    cut_suffix: Mutex<String>,
    log: Mutex<Vec<RequestRecord>>,
}

impl Site {
    /// An empty site.
    pub fn new() -> Arc<Self> {
        Arc::new(Site::default())
    }

    /// Serves `body` at `path` (e.g. `/v1/providers/x/y/versions`).
    pub fn insert(&self, path: &str, body: impl Into<Bytes>, content_type: &str) {
        let route = Route {
            body: body.into(),
            content_type: content_type.to_string(),
        };
        if let Ok(mut routes) = self.routes.write() {
            routes.insert(path.to_string(), route);
        }
    }

    /// Stops serving `path` (it answers 404 from now on).
    pub fn remove(&self, path: &str) {
        if let Ok(mut routes) = self.routes.write() {
            routes.remove(path);
        }
    }

    /// The body served at `path`, if any.
    pub fn get(&self, path: &str) -> Option<Bytes> {
        self.routes.read().ok()?.get(path).map(|r| r.body.clone())
    }

    /// Adds `latency` before every response.
    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// Cuts the next `count` responses for paths ending in `suffix` off after half the body.
    pub fn cut_next_bodies(&self, count: u32, suffix: &str) {
        if let Ok(mut s) = self.cut_suffix.lock() {
            *s = suffix.to_string();
        }
        self.cut_bodies.store(count, Ordering::SeqCst);
    }

    /// Makes `path` misbehave as `how` (the route's body, if any, is what a drip or an
    /// unsized body sends).
    pub fn set_hostile(&self, path: &str, how: Hostile) {
        if let Ok(mut hostile) = self.hostile.write() {
            hostile.insert(path.to_string(), how);
        }
    }

    /// Requests so far for `path`.
    pub fn requests_for(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path == path).count()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        if let Ok(mut l) = self.log.lock() {
            l.clear();
        }
    }

    fn should_cut(&self, path: &str) -> bool {
        let matches = self
            .cut_suffix
            .lock()
            .map(|s| path.ends_with(s.as_str()))
            .unwrap_or(false);
        matches
            && self
                .cut_bodies
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
    }
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Whether it speaks TLS.
    pub tls: bool,
    /// Its content and knobs.
    pub site: Arc<Site>,
    handle: axum_server::Handle<SocketAddr>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Serves `site` on a new 127.0.0.1 port, over TLS if `tls` is given.
    pub fn start(site: Arc<Site>, tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        Self::start_on(listener, site, tls)
    }

    /// Serves `site` on an already-bound listener.
    pub fn start_on(
        listener: std::net::TcpListener,
        site: Arc<Site>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let handle = axum_server::Handle::new();
        let app = axum::Router::new()
            .fallback(respond)
            .with_state(site.clone());
        let is_tls = tls.is_some();
        let server_handle = handle.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let result = match tls {
                    Some(config) => {
                        let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
                        match axum_server::tls_rustls::from_tcp_rustls(listener, config) {
                            Ok(server) => {
                                server
                                    .handle(server_handle)
                                    .serve(app.into_make_service())
                                    .await
                            }
                            Err(e) => Err(e),
                        }
                    }
                    None => match axum_server::from_tcp(listener) {
                        Ok(server) => {
                            server
                                .handle(server_handle)
                                .serve(app.into_make_service())
                                .await
                        }
                        Err(e) => Err(e),
                    },
                };
                if let Err(e) = result {
                    eprintln!("testkit server on {addr}: {e}");
                }
            });
        });
        Ok(RunningServer {
            addr,
            tls: is_tls,
            site,
            handle,
            thread: Some(thread),
        })
    }

    /// `https://HOST:PORT` (or `http://`), naming the server `host` (e.g. `localhost`).
    pub fn url_with_host(&self, host: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{host}:{}", self.addr.port())
    }

    /// `https://127.0.0.1:PORT` (or `http://`).
    pub fn base_url(&self) -> String {
        self.url_with_host("127.0.0.1")
    }

    /// Blocks until the server is stopped by another thread (for the CLI binary).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn respond(State(site): State<Arc<Site>>, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Ok(mut log) = site.log.lock() {
        log.push(RequestRecord {
            method: req.method().to_string(),
            path: path.clone(),
            range: range.clone(),
        });
    }
    let latency = site.latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let hostile = site.hostile.read().ok().and_then(|h| h.get(&path).cloned());
    if let Some(Hostile::Redirect(location)) = &hostile {
        let mut resp = plain(StatusCode::FOUND, "moved");
        if let Ok(value) = header::HeaderValue::from_str(location) {
            resp.headers_mut().insert(header::LOCATION, value);
        }
        return resp;
    }
    let route = site.routes.read().ok().and_then(|r| r.get(&path).cloned());
    let Some(route) = route else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD");
    }
    let (status, body, content_range) = match ranged(req.headers(), &route.body) {
        Ok(Some((start, end))) => {
            let cr = format!("bytes {start}-{}/{}", end - 1, route.body.len());
            (
                StatusCode::PARTIAL_CONTENT,
                route.body.slice(start..end),
                Some(cr),
            )
        }
        Ok(None) => (StatusCode::OK, route.body.clone(), None),
        Err(()) => return plain(StatusCode::RANGE_NOT_SATISFIABLE, "bad range"),
    };
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, route.content_type)
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(cr) = content_range {
        resp = resp.header(header::CONTENT_RANGE, cr);
    }
    match hostile {
        Some(Hostile::Drip(every)) => {
            return resp.body(drip_body(body, every)).unwrap_or_default();
        }
        Some(Hostile::Unsized) => {
            let chunks = body
                .chunks(16 * 1024)
                .map(Bytes::copy_from_slice)
                .collect::<Vec<_>>();
            let stream =
                futures_util::stream::iter(chunks.into_iter().map(Ok::<Bytes, std::io::Error>));
            let mut unsized_resp = Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(Body::from_stream(stream))
                .unwrap_or_default();
            unsized_resp.headers_mut().remove(header::CONTENT_LENGTH);
            return unsized_resp;
        }
        _ => {}
    }
    let body = if req.method() == Method::HEAD {
        Body::empty()
    } else if body.len() > 1 && site.should_cut(&path) {
        cut_body(body)
    } else {
        Body::from(body)
    };
    resp.body(body).unwrap_or_default()
}

/// A body that sends its first half, waits for it to reach the client, then fails (the
/// client sees a truncated transfer).
fn cut_body(body: Bytes) -> Body {
    use futures_util::StreamExt as _;
    let half = body.slice(..body.len() / 2);
    let first = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(half) });
    let fail = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "testkit: body cut off",
        ))
    });
    Body::from_stream(first.chain(fail))
}

/// A body that sends one byte every `every`.
fn drip_body(body: Bytes, every: Duration) -> Body {
    let stream = futures_util::stream::unfold(0usize, move |i| {
        let body = body.clone();
        async move {
            if i >= body.len() {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(every).await;
            }
            Some((Ok::<Bytes, std::io::Error>(body.slice(i..i + 1)), i + 1))
        }
    });
    Body::from_stream(stream)
}

/// `Ok(Some((start, end)))` for a satisfiable `bytes=A-` / `bytes=A-B` range.
fn ranged(headers: &HeaderMap, body: &Bytes) -> Result<Option<(usize, usize)>, ()> {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some((a, b)) = range.strip_prefix("bytes=").and_then(|r| r.split_once('-')) else {
        return Ok(None);
    };
    let len = body.len();
    let start: usize = a.parse().map_err(|_| ())?;
    let end = if b.is_empty() {
        len
    } else {
        b.parse::<usize>()
            .map_err(|_| ())?
            .saturating_add(1)
            .min(len)
    };
    if start >= len || start >= end {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp
}
