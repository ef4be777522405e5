//! The network-mirror HTTPS server: serves a mirror tree at `/providers/` over rustls
//! (TLS 1.2 and 1.3 only). JSON as `application/json`; zips with ETag, Last-Modified,
//! conditional GET, HEAD and single-range requests; 404 for anything not in the tree.
//! Paths are checked segment by segment after percent-decoding (no `..`, no hidden names,
//! no separators) and the resolved file must stay inside the canonical root, so neither
//! raw nor encoded traversal nor a symlink can reach outside.
//!
//! Under [`MODULES_PREFIX`] the module store is served with the Module Registry Protocol
//! (see `serve/modules.rs`); `/providers/modules/…` is 404 however it is spelled, so a
//! module archive is only reachable with its sha256 checked.
//!
//! Small files are cached in memory by canonical path (one copy however a request spells
//! it), at most 32 MiB in all. Connections are handled by [`crate::listener`], which holds
//! every client to deadlines and a connection cap.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Read as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use axum::Router;
use bytes::Bytes;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use crate::listener;
pub use crate::listener::Limits;

mod modules;
pub use modules::MODULES_PREFIX;

/// URL prefix under which the tree is served.
pub const PREFIX: &str = "/providers/";

/// Files up to this size are read into memory in one go; larger ones are streamed.
const SMALL_FILE: u64 = 256 * 1024;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The certificate or key file could not be read or used.
    #[error("TLS setup: {path}: {message}")]
    Tls {
        /// The certificate or key file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The mirror directory is unusable.
    #[error("mirror directory {path}: {cause}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause (printed in the message; not a `source`).
        cause: io::Error,
    },
    /// The listener failed.
    #[error("server on {addr}: {cause}")]
    Listen {
        /// The listen address.
        addr: String,
        /// The cause (printed in the message; not a `source`).
        cause: io::Error,
    },
}

/// A rustls server configuration (ring, TLS 1.3 and 1.2, ALPN h2 and http/1.1) from a PEM
/// certificate chain and a PEM private key.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let tls_err = |path: &Path, message: String| ServeError::Tls {
        path: path.to_path_buf(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| tls_err(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(tls_err(cert, "no PEM certificate in it".to_string()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| tls_err(key, format!("certificate and key do not fit together: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The router serving `dir` at [`PREFIX`]; everything else is 404.
pub fn router(dir: &Path) -> Result<Router, ServeError> {
    let root = dir.canonicalize().map_err(|cause| ServeError::Dir {
        path: dir.to_path_buf(),
        cause,
    })?;
    let state = Arc::new(Site {
        root,
        aliases: RwLock::new(HashMap::new()),
        files: RwLock::new(FileCache::default()),
        modules: modules::Verified::default(),
    });
    Ok(Router::new().fallback(handle).with_state(state))
}

/// Serves `dir` over TLS on an already-bound `listener` until `shutdown` completes, then
/// stops accepting and lets open requests finish (up to 10 s). Connections are held to
/// [`Limits::default`], fitted to the process's file-descriptor limit.
pub async fn serve(
    listener: std::net::TcpListener,
    dir: &Path,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_router(listener, router(dir)?, tls, shutdown).await
}

/// Serves `app` (usually [`router`] plus routes of the caller's own, such as the appliance's
/// `/ca.pem`) over TLS on `listener`, with the same limits and shutdown as [`serve`].
pub async fn serve_router(
    listener: std::net::TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let limits = Limits::default().fitted_to_nofile();
    serve_with_limits(listener, app, tls, limits, shutdown).await
}

/// [`serve_router`] with limits of the caller's choosing (tests use small ones).
pub async fn serve_with_limits(
    listener: std::net::TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    listener::run(listener, app, tls, limits, shutdown)
        .await
        .map_err(|cause| ServeError::Listen { addr, cause })
}

/// Shared server state: the canonical root and the small-file cache.
struct Site {
    root: PathBuf,
    /// Request path as spelled → the canonical file it resolved to. Bounded in entries and
    /// in key length, so a flood of spellings costs at most a few MiB.
    aliases: RwLock<HashMap<String, Arc<Path>>>,
    /// Canonical file → its contents, bounded in bytes: one copy per file however it is
    /// spelled. Entries are revalidated on every hit (see [`fresh`]).
    files: RwLock<FileCache>,
    /// Module archives whose sha256 matched the store's index.
    modules: modules::Verified,
}

/// Most request spellings remembered; past this the alias map starts over.
const ALIASES: usize = 8192;
/// Longest request path remembered as an alias (longer ones are resolved every time).
const ALIAS_KEY: usize = 512;
/// Bytes of small files kept in memory at most.
const CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Files kept in memory at most (bounds the map itself when files are tiny).
const CACHE_FILES: usize = 16 * 1024;

/// The small files in memory, keyed by canonical path, with least-recently-used eviction.
#[derive(Default)]
struct FileCache {
    map: HashMap<Arc<Path>, Cached>,
    bytes: usize,
    /// Logical clock for recency.
    tick: AtomicU64,
}

struct Cached {
    small: Arc<Small>,
    used: AtomicU64,
}

impl FileCache {
    fn get(&self, real: &Path) -> Option<Arc<Small>> {
        let cached = self.map.get(real)?;
        let now = self.tick.fetch_add(1, Ordering::Relaxed);
        cached.used.store(now, Ordering::Relaxed);
        Some(cached.small.clone())
    }

    fn insert(&mut self, small: Arc<Small>) {
        let size = small.body.len();
        if size > CACHE_BYTES / 4 {
            return;
        }
        let key = small.meta.real.clone();
        if let Some(old) = self.map.remove(&key) {
            self.bytes -= old.small.body.len();
        }
        if self.bytes + size > CACHE_BYTES || self.map.len() >= CACHE_FILES {
            self.evict(
                CACHE_BYTES * 3 / 4 - size.min(CACHE_BYTES / 4),
                CACHE_FILES * 3 / 4,
            );
        }
        let used = AtomicU64::new(self.tick.fetch_add(1, Ordering::Relaxed));
        self.bytes += size;
        self.map.insert(key, Cached { small, used });
    }

    /// Drops least-recently-used entries until at most `bytes` and `files` remain.
    fn evict(&mut self, bytes: usize, files: usize) {
        let mut by_age: Vec<(u64, Arc<Path>)> = self
            .map
            .iter()
            .map(|(k, c)| (c.used.load(Ordering::Relaxed), k.clone()))
            .collect();
        by_age.sort_unstable_by_key(|(used, _)| *used);
        for (_, key) in by_age {
            if self.bytes <= bytes && self.map.len() <= files {
                break;
            }
            if let Some(old) = self.map.remove(&key) {
                self.bytes -= old.small.body.len();
            }
        }
    }
}

/// What every response about a file needs.
#[derive(Debug, Clone)]
struct FileMeta {
    /// The canonical path inside the root.
    real: Arc<Path>,
    len: u64,
    modified: SystemTime,
    /// The strong validator.
    etag: String,
    /// Content-Type, ETag, Last-Modified and Accept-Ranges, built once per file version.
    headers: HeaderMap,
}

impl FileMeta {
    fn new(real: Arc<Path>, len: u64, modified: SystemTime) -> Self {
        let etag = etag(len, modified);
        let mut headers = HeaderMap::with_capacity(6);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(&real)),
        );
        if let Ok(value) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, value);
        }
        if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
            headers.insert(header::LAST_MODIFIED, value);
        }
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        FileMeta {
            real,
            len,
            modified,
            etag,
            headers,
        }
    }
}

/// A small file held in memory.
#[derive(Debug)]
struct Small {
    meta: FileMeta,
    body: Bytes,
}

/// A file found on disk on a cache miss.
enum Loaded {
    Small(Arc<Small>),
    Large(FileMeta, std::fs::File),
}

async fn handle(State(site): State<Arc<Site>>, req: Request<Body>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = status(StatusCode::METHOD_NOT_ALLOWED);
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let head = req.method() == Method::HEAD;
    let raw = req.uri().path();
    if raw.starts_with(MODULES_PREFIX) {
        return modules::handle(site.clone(), raw, req.headers(), head).await;
    }
    if let Some(small) = site.cached(raw) {
        return respond(
            &small.meta,
            req.headers(),
            head,
            Source::Memory(small.body.clone()),
        );
    }
    let key = raw.to_string();
    let loader = site.clone();
    let loaded = tokio::task::spawn_blocking(move || loader.load(&key)).await;
    match loaded {
        Ok(Ok(Some(Loaded::Small(small)))) => respond(
            &small.meta,
            req.headers(),
            head,
            Source::Memory(small.body.clone()),
        ),
        Ok(Ok(Some(Loaded::Large(meta, file)))) => respond(
            &meta,
            req.headers(),
            head,
            Source::File(tokio::fs::File::from_std(file)),
        ),
        Ok(Ok(None)) => status(StatusCode::NOT_FOUND),
        Ok(Err(e)) => {
            tracing::warn!(path = raw, error = %e, "cannot serve file");
            status(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

impl Site {
    /// A cached small file for this spelling that is still what is on disk.
    fn cached(&self, raw: &str) -> Option<Arc<Small>> {
        let real = self.aliases.read().ok()?.get(raw).cloned()?;
        self.cached_file(&real)
    }

    fn cached_file(&self, real: &Path) -> Option<Arc<Small>> {
        let small = self.files.read().ok()?.get(real)?;
        fresh(&small.meta).then_some(small)
    }

    fn remember_alias(&self, raw: &str, real: &Arc<Path>) {
        if raw.len() > ALIAS_KEY {
            return;
        }
        if let Ok(mut aliases) = self.aliases.write() {
            if aliases.len() >= ALIASES {
                aliases.clear();
            }
            aliases.insert(raw.to_string(), real.clone());
        }
    }

    /// Resolves and opens the file for a raw request path (blocking); `None` means 404.
    /// Small files come from (and go into) the cache under their canonical path.
    fn load(&self, raw: &str) -> io::Result<Option<Loaded>> {
        let Some(real) = resolve(&self.root, raw) else {
            return Ok(None);
        };
        let real: Arc<Path> = Arc::from(real);
        if let Some(small) = self.cached_file(&real) {
            self.remember_alias(raw, &small.meta.real);
            return Ok(Some(Loaded::Small(small)));
        }
        let Some(loaded) = load(real)? else {
            return Ok(None);
        };
        if let Loaded::Small(small) = &loaded {
            if let Ok(mut files) = self.files.write() {
                files.insert(small.clone());
            }
            self.remember_alias(raw, &small.meta.real);
        }
        Ok(Some(loaded))
    }
}

/// Whether the file behind a cache entry is unchanged (same size and mtime). One `stat` of
/// an already-canonical path, done inline: it is a metadata lookup the kernel answers from
/// its caches, and paying a thread hop for it would halve the request rate. Trees change
/// by rename (sync, import), which changes the mtime.
fn fresh(meta: &FileMeta) -> bool {
    std::fs::metadata(&meta.real).is_ok_and(|m| {
        m.is_file() && m.len() == meta.len && m.modified().ok() == Some(meta.modified)
    })
}

/// Opens the canonical file `real` (blocking), reading it whole if it is small; `None`
/// means 404.
fn load(real: Arc<Path>) -> io::Result<Option<Loaded>> {
    let mut file = match std::fs::File::open(&real) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let stat = file.metadata()?;
    if !stat.is_file() {
        return Ok(None);
    }
    let meta = FileMeta::new(real, stat.len(), stat.modified().unwrap_or(UNIX_EPOCH));
    if meta.len > SMALL_FILE {
        return Ok(Some(Loaded::Large(meta, file)));
    }
    let mut body = Vec::with_capacity(meta.len as usize);
    file.read_to_end(&mut body)?;
    if body.len() as u64 != meta.len {
        // Changed while reading: serve what the next request finds instead.
        return Err(io::Error::other("file changed while being read"));
    }
    Ok(Some(Loaded::Small(Arc::new(Small {
        meta,
        body: Bytes::from(body),
    }))))
}

/// Maps a raw request path to a regular file inside `root` and outside its module store
/// (whose archives are served only with their sha256 checked, under [`MODULES_PREFIX`]),
/// or `None` (→ 404).
fn resolve(root: &Path, raw: &str) -> Option<PathBuf> {
    let rel = raw.strip_prefix(PREFIX)?;
    let mut path = root.to_path_buf();
    for segment in rel.split('/') {
        let decoded = percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .ok()?;
        let bad = decoded.is_empty()
            || decoded.starts_with('.')
            || decoded.contains(['/', '\\', '\0'])
            || decoded.chars().any(char::is_control);
        if bad {
            return None;
        }
        path.push(decoded.as_ref());
    }
    let real = std::fs::canonicalize(&path).ok()?;
    // The module store is served only through the checked module route.
    let modules = root.join(crate::module_store::MODULES_DIR);
    (real.starts_with(root) && !real.starts_with(modules)).then_some(real)
}

/// Where a response body comes from.
enum Source {
    Memory(Bytes),
    File(tokio::fs::File),
}

fn respond(meta: &FileMeta, headers: &HeaderMap, head: bool, source: Source) -> Response<Body> {
    let with_headers = |code: StatusCode, body: Body| {
        let mut resp = Response::new(body);
        *resp.status_mut() = code;
        *resp.headers_mut() = meta.headers.clone();
        resp
    };
    if not_modified(headers, &meta.etag, meta.modified) {
        return with_headers(StatusCode::NOT_MODIFIED, Body::empty());
    }
    let len = meta.len;
    let (code, start, end) = match wanted_range(headers, &meta.etag, meta.modified, len) {
        RangeWanted::Whole => (StatusCode::OK, 0, len),
        RangeWanted::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        RangeWanted::Unsatisfiable => {
            let mut resp = with_headers(StatusCode::RANGE_NOT_SATISFIABLE, Body::empty());
            insert_header(&mut resp, header::CONTENT_RANGE, &format!("bytes */{len}"));
            return resp;
        }
    };
    let body = match source {
        _ if head || end == start => Body::empty(),
        Source::Memory(bytes) => Body::from(bytes.slice(start as usize..end as usize)),
        Source::File(file) => file_body(file, start, end - start),
    };
    let mut resp = with_headers(code, body);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if code == StatusCode::PARTIAL_CONTENT {
        insert_header(
            &mut resp,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    resp
}

fn insert_header(resp: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, value);
    }
}

/// Streams `count` bytes of `file` from `start` in 256 KiB reads.
fn file_body(file: tokio::fs::File, start: u64, count: u64) -> Body {
    let stream = futures_util::stream::once(async move {
        let mut file = file;
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await?;
        }
        Ok::<_, io::Error>(tokio_util::io::ReaderStream::with_capacity(
            file.take(count),
            256 * 1024,
        ))
    });
    use futures_util::{StreamExt as _, TryStreamExt as _};
    Body::from_stream(stream.try_flatten().boxed())
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("zip") => "application/zip",
        Some("gz") => "application/gzip",
        _ => "application/octet-stream",
    }
}

fn etag(len: u64, modified: SystemTime) -> String {
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("\"{len:x}-{nanos:x}\"")
}

fn not_modified(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    }
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    since.is_some_and(|since| whole_seconds(modified) <= whole_seconds(since))
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What part of the file a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum RangeWanted {
    Whole,
    /// `[start, end)`.
    Part(u64, u64),
    Unsatisfiable,
}

fn wanted_range(headers: &HeaderMap, etag: &str, modified: SystemTime, len: u64) -> RangeWanted {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeWanted::Whole;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        let fresh = if_range == etag
            || httpdate::parse_http_date(if_range)
                .is_ok_and(|d| whole_seconds(d) == whole_seconds(modified));
        if !fresh {
            return RangeWanted::Whole;
        }
    }
    parse_range(range, len)
}

/// Parses a single `bytes=` range; multiple ranges or junk mean "send the whole file".
fn parse_range(range: &str, len: u64) -> RangeWanted {
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return RangeWanted::Whole;
    };
    if spec.contains(',') {
        return RangeWanted::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeWanted::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(last)) if start <= last => Some((start, last.saturating_add(1).min(len))),
        (Ok(start), Err(_)) if b.is_empty() => Some((start, len)),
        (Err(_), Ok(suffix)) if a.is_empty() => {
            if suffix == 0 {
                return RangeWanted::Unsatisfiable;
            }
            Some((len.saturating_sub(suffix), len))
        }
        _ => None,
    };
    match parsed {
        None => RangeWanted::Whole,
        Some((start, _)) if start >= len => RangeWanted::Unsatisfiable,
        Some((start, end)) => RangeWanted::Part(start, end),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    text(code, code.canonical_reason().unwrap_or("").to_string())
}

/// A `text/plain` answer with `body` as it is.
fn text(code: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeWanted::Part(0, 10));
        assert_eq!(parse_range("bytes=90-", 100), RangeWanted::Part(90, 100));
        assert_eq!(parse_range("bytes=-10", 100), RangeWanted::Part(90, 100));
        assert_eq!(parse_range("bytes=95-200", 100), RangeWanted::Part(95, 100));
        assert_eq!(parse_range("bytes=100-", 100), RangeWanted::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeWanted::Whole);
        assert_eq!(parse_range("lines=1-2", 100), RangeWanted::Whole);
    }

    fn site(root: &Path) -> Site {
        Site {
            root: root.to_path_buf(),
            aliases: RwLock::new(HashMap::new()),
            files: RwLock::new(FileCache::default()),
            modules: modules::Verified::default(),
        }
    }

    #[test]
    fn spellings_of_one_file_share_one_cached_copy() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().canonicalize().expect("canon");
        std::fs::create_dir_all(root.join("h/ns/t")).expect("mkdir");
        std::fs::write(root.join("h/ns/t/index.json"), vec![b'x'; 200_000]).expect("write");
        let site = site(&root);
        let spellings = [
            "index.json",
            "%69ndex.json",
            "i%6edex.json",
            "%69%6E%64ex.json",
        ];
        for spelled in spellings {
            let raw = format!("/providers/h/ns/t/{spelled}");
            assert!(
                matches!(site.load(&raw), Ok(Some(Loaded::Small(_)))),
                "{raw}"
            );
            assert!(site.cached(&raw).is_some(), "{raw} not remembered");
        }
        let files = site.files.read().expect("lock");
        assert_eq!((files.map.len(), files.bytes), (1, 200_000));
    }

    #[test]
    fn the_file_cache_is_bounded_in_bytes_and_evicts_the_least_recently_used() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().canonicalize().expect("canon");
        let size = 200_000;
        let count = 2 * CACHE_BYTES / size;
        for i in 0..count {
            std::fs::write(root.join(format!("f{i}")), vec![b'x'; size]).expect("write");
        }
        let site = site(&root);
        for i in 0..count {
            assert!(site.load(&format!("/providers/f{i}")).is_ok());
            // f0 stays in use, so it is never the least recently used.
            assert!(site.cached("/providers/f0").is_some(), "f0 evicted at {i}");
            let files = site.files.read().expect("lock");
            assert!(files.bytes <= CACHE_BYTES, "{} bytes cached", files.bytes);
        }
        assert!(site.cached(&format!("/providers/f{}", count - 1)).is_some());
        assert!(site.aliases.read().expect("lock").len() <= ALIASES);
    }

    #[test]
    fn resolve_refuses_traversal() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().canonicalize().expect("canon");
        std::fs::create_dir_all(root.join("h/ns/t")).expect("mkdir");
        std::fs::write(root.join("h/ns/t/index.json"), "{}").expect("write");
        assert!(resolve(&root, "/providers/h/ns/t/index.json").is_some());
        for bad in [
            "/providers/../etc/passwd",
            "/providers/h/ns/t/../../../../etc/passwd",
            "/providers/%2e%2e/etc/passwd",
            "/providers/h%2F..%2F..%2Fetc/passwd",
            "/providers/.airgap-partial/x",
            "/providers//etc/passwd",
            "/providers/h/ns/t/index.json%00",
            "/other/h/ns/t/index.json",
        ] {
            assert!(resolve(&root, bad).is_none(), "{bad} resolved");
        }
    }
}
