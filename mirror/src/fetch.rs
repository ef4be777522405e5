//! General-purpose downloads for the connected side: one HTTP client built from options
//! (timeouts, retries with backoff, bounded concurrency, an extra CA file, an HTTPS proxy),
//! small verified GETs for metadata, and streaming file downloads that write `DEST.part`,
//! resume it with a Range request after an interruption, hash while streaming, check the
//! expected sha256 and rename into place only when everything matched.
//!
//! No upstream is trusted beyond what is verified: redirects never change the scheme (no
//! https → http downgrade), every transfer has an overall deadline, a minimum rate and a
//! size cap, a body past its cap leaves no file behind, and failures that retrying cannot
//! fix (a refused certificate, a name that does not resolve, HTTP 4xx) fail at once.

use std::future::Future;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use crate::failure::{self, error_chain, Failure};

pub use reqwest::Url;

/// Errors from the fetcher. Each names the URL or file involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The HTTP client could not be built from the options.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// The extra CA file could not be read or holds no certificate.
    #[error("cannot use the extra CA file {path}: {message}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The server answered with a status that retrying will not fix.
    #[error("GET {url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The transfer kept failing (connection, TLS, timeout or a cut-off body).
    #[error("GET {url}: {message} (gave up after {attempts} attempts; check the network, the proxy and the CA settings)")]
    Transport {
        /// The URL.
        url: String,
        /// The last failure.
        message: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The downloaded bytes do not have the expected sha256.
    #[error("GET {url}: sha256 of the download is {actual}, expected {expected} (the file was altered or corrupted; nothing was kept)")]
    Checksum {
        /// The URL.
        url: String,
        /// The expected hex sha256.
        expected: String,
        /// The hex sha256 of what arrived.
        actual: String,
    },
    /// A redirect was refused (scheme change such as https → http, or too many hops).
    #[error("GET {url}: {refused}")]
    Redirect {
        /// The URL asked for.
        url: String,
        /// The refused hop, naming both URLs.
        refused: failure::RedirectRefused,
    },
    /// The server's TLS certificate is refused; the advice says what to do.
    #[error("GET {url}: {advice}")]
    Certificate {
        /// The URL.
        url: String,
        /// Why, and how to fix it.
        advice: String,
    },
    /// The host name does not resolve (not retried).
    #[error("GET {url}: the name {host} does not resolve ({message}); check the name, this host's DNS and the proxy settings (--https-proxy)")]
    Unresolvable {
        /// The URL.
        url: String,
        /// The host name.
        host: String,
        /// What the resolver said.
        message: String,
    },
    /// There is no route to the network (not retried).
    #[error("GET {url}: no route to {host} ({message}); this host has no network path there: check the network or set a proxy")]
    Unreachable {
        /// The URL.
        url: String,
        /// The host.
        host: String,
        /// What the system said.
        message: String,
    },
    /// The transfer went on past its overall deadline.
    #[error("GET {url}: not finished after {secs} s, the deadline for one transfer; nothing was kept (raise the deadline if the link is this slow)")]
    Deadline {
        /// The URL.
        url: String,
        /// The deadline in seconds.
        secs: u64,
    },
    /// The body arrived slower than the minimum rate.
    #[error("GET {url}: only {bytes} bytes arrived in {window_secs} s (the minimum is {min_bytes}); the server is stalling, nothing was kept")]
    TooSlow {
        /// The URL.
        url: String,
        /// Bytes that arrived in the window.
        bytes: u64,
        /// The window in seconds.
        window_secs: u64,
        /// The minimum per window.
        min_bytes: u64,
    },
    /// A response exceeded its size cap; nothing was kept.
    #[error("GET {url}: response is larger than {limit} bytes, its cap; nothing was kept")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A JSON response does not parse as expected.
    #[error("GET {url}: unexpected JSON: {message}")]
    Json {
        /// The URL.
        url: String,
        /// What the parser reported.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (printed in the message; not a `source`).
        cause: io::Error,
    },
    /// A finished download could not be put in place durably (names the path and the step).
    #[error(transparent)]
    Write(#[from] airgap_fsutil::WriteError),
}

/// How the fetcher talks to the network.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Transfers (metadata requests and downloads) in flight at once.
    pub concurrency: usize,
    /// Time allowed to establish a connection (TCP plus TLS).
    pub connect_timeout: Duration,
    /// Longest silence allowed while reading a response.
    pub read_timeout: Duration,
    /// Extra attempts after a retryable failure (5xx, 408, 429, connection or body errors).
    pub retries: u32,
    /// First backoff delay; doubles with every retry (with jitter), capped at 10 s.
    pub backoff: Duration,
    /// A PEM file of CA certificates to trust in addition to the system roots
    /// (TLS-inspecting proxies, Artifactory-style remote registries).
    pub extra_ca_file: Option<PathBuf>,
    /// An HTTPS proxy URL for every request (e.g. `http://proxy.corp:3128`).
    pub https_proxy: Option<String>,
    /// With no `https_proxy`, honour HTTPS_PROXY/HTTP_PROXY/NO_PROXY from the environment.
    pub env_proxy: bool,
    /// Size limit for metadata responses read into memory (JSON, checksum files, keys).
    pub max_metadata_bytes: u64,
    /// Size cap of a download whose caller gives none.
    pub max_download_bytes: u64,
    /// Overall deadline of one transfer (request, headers and the whole body).
    pub deadline: Duration,
    /// The window of the minimum-rate check.
    pub min_rate_window: Duration,
    /// Fewer bytes than this arriving in any window fails the transfer.
    pub min_rate_bytes: u64,
    /// Redirects followed per request (never to another scheme).
    pub max_redirects: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            concurrency: 8,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            retries: 4,
            backoff: Duration::from_millis(250),
            extra_ca_file: None,
            https_proxy: None,
            env_proxy: true,
            max_metadata_bytes: 4 * 1024 * 1024,
            max_download_bytes: 4 * 1024 * 1024 * 1024,
            deadline: Duration::from_secs(3600),
            min_rate_window: Duration::from_secs(30),
            min_rate_bytes: 32 * 1024,
            max_redirects: 10,
        }
    }
}

/// What a download produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Hex sha256 of the file.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Bytes kept from an earlier interrupted transfer (0 if none).
    pub resumed_from: u64,
    /// True if `dest` already held the expected file and nothing was transferred.
    pub reused: bool,
}

/// A configured HTTP client with bounded concurrency and progress bars.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    opts: FetchOptions,
    permits: Arc<Semaphore>,
    progress: MultiProgress,
    total: ProgressBar,
}

/// One failed attempt: retry it, or give up with this error.
enum Attempt {
    Retry(String),
    Fatal(FetchError),
}

impl Fetcher {
    /// Builds the client; progress bars draw on stderr when it is a terminal.
    pub fn new(opts: FetchOptions) -> Result<Self, FetchError> {
        Self::with_progress(
            opts,
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        )
    }

    /// Builds the client, drawing progress into `progress` (pass a hidden one to silence).
    pub fn with_progress(opts: FetchOptions, progress: MultiProgress) -> Result<Self, FetchError> {
        let client = build_client(&opts)?;
        let total = progress.add(ProgressBar::new(0));
        total.set_style(bar_style(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        ));
        total.set_message("total");
        let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
        Ok(Fetcher {
            client,
            opts,
            permits,
            progress,
            total,
        })
    }

    /// The progress display, for callers that add their own bars or print above them.
    pub fn progress(&self) -> &MultiProgress {
        &self.progress
    }

    /// Removes the total bar (call when all transfers are done).
    pub fn finish(&self) {
        self.total.finish_and_clear();
    }

    /// GETs a small resource into memory; returns it with the final URL (after redirects),
    /// against which relative URLs in it resolve.
    pub async fn get_bytes(&self, url: &Url) -> Result<(Vec<u8>, Url), FetchError> {
        self.with_retries(url, || self.get_bytes_once(url)).await
    }

    /// GETs and parses a JSON document; returns it with the final URL.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
    ) -> Result<(T, Url), FetchError> {
        let (bytes, final_url) = self.get_bytes(url).await?;
        let value = serde_json::from_slice(&bytes).map_err(|e| FetchError::Json {
            url: final_url.to_string(),
            message: e.to_string(),
        })?;
        Ok((value, final_url))
    }

    /// Downloads `url` to `dest`, streaming into `dest.part` and resuming it with a Range
    /// request if an earlier transfer was cut off. With `expected_sha256` (hex), an existing
    /// `dest` with that hash is reused without a transfer, and a mismatch deletes the partial
    /// file and fails; `dest` only ever appears complete and verified.
    pub async fn download(
        &self,
        url: &Url,
        dest: &Path,
        expected_sha256: Option<&str>,
    ) -> Result<Downloaded, FetchError> {
        self.download_capped(url, dest, expected_sha256, self.opts.max_download_bytes)
            .await
    }

    /// [`Fetcher::download`] with a size cap of `max_bytes` (the declared size when known,
    /// else a cap for the kind of file): a larger body stops and leaves no file behind.
    pub async fn download_capped(
        &self,
        url: &Url,
        dest: &Path,
        expected_sha256: Option<&str>,
        max_bytes: u64,
    ) -> Result<Downloaded, FetchError> {
        let expected = expected_sha256.map(str::to_ascii_lowercase);
        if let Some(want) = &expected {
            if let Some(done) = reuse_existing(dest, want).await? {
                return Ok(done);
            }
        }
        let part = part_path(dest);
        self.with_retries(url, || {
            self.download_once(url, dest, &part, expected.as_deref(), max_bytes)
        })
        .await
    }

    async fn with_retries<T, F, Fut>(&self, url: &Url, mut attempt: F) -> Result<T, FetchError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let outcome = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|e| FetchError::Client(e.to_string()))?;
                attempt().await
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(message)) if tries > self.opts.retries => {
                    return Err(FetchError::Transport {
                        url: url.to_string(),
                        message,
                        attempts: tries,
                    });
                }
                Err(Attempt::Retry(message)) => {
                    tracing::debug!(%url, attempt = tries, %message, "retrying");
                    tokio::time::sleep(backoff(self.opts.backoff, tries)).await;
                }
            }
        }
    }

    async fn get_bytes_once(&self, url: &Url) -> Result<(Vec<u8>, Url), Attempt> {
        let mut pace = Pace::new(url, &self.opts);
        let send = self.client.get(url.clone()).send();
        let mut resp = pace.send(send).await?;
        check_status(url, resp.status())?;
        let final_url = resp.url().clone();
        let limit = self.opts.max_metadata_bytes;
        let too_large = || {
            Attempt::Fatal(FetchError::TooLarge {
                url: url.to_string(),
                limit,
            })
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = pace.chunk(&mut resp).await? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, final_url))
    }

    async fn download_once(
        &self,
        url: &Url,
        dest: &Path,
        part: &Path,
        expected: Option<&str>,
        max_bytes: u64,
    ) -> Result<Downloaded, Attempt> {
        let outcome = self
            .download_attempt(url, dest, part, expected, max_bytes)
            .await;
        if let Err(Attempt::Fatal(_)) = &outcome {
            // A refused transfer leaves nothing a later run could resume from.
            let _ = std::fs::remove_file(part);
        }
        outcome
    }

    async fn download_attempt(
        &self,
        url: &Url,
        dest: &Path,
        part: &Path,
        expected: Option<&str>,
        max_bytes: u64,
    ) -> Result<Downloaded, Attempt> {
        let offset = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let mut req = self.client.get(url.clone());
        if offset > 0 {
            req = req.header(RANGE, format!("bytes={offset}-"));
        }
        let mut pace = Pace::new(url, &self.opts);
        let resp = pace.send(req.send()).await?;
        let offset = match resume_offset(&resp, offset) {
            Ok(offset) => offset,
            Err(message) => {
                let _ = std::fs::remove_file(part);
                return Err(Attempt::Retry(message));
            }
        };
        check_status(url, resp.status())?;
        let expected_len = resp.content_length().map(|n| n + offset);
        let cap = Cap { url, max_bytes };
        if expected_len.is_some_and(|n| n > max_bytes) {
            return Err(cap.exceeded());
        }
        let (sha256, bytes) = self
            .stream_to_part(resp, part, offset, expected_len, dest, (pace, cap))
            .await?;
        if expected_len.is_some_and(|n| n != bytes) {
            return Err(Attempt::Retry(format!("body ended after {bytes} bytes")));
        }
        if let Some(want) = expected {
            if sha256 != want {
                let _ = std::fs::remove_file(part);
                let mismatch = FetchError::Checksum {
                    url: url.to_string(),
                    expected: want.to_string(),
                    actual: sha256,
                };
                // A resumed file may have mixed two versions of the upstream file: retry fresh.
                return Err(if offset > 0 {
                    Attempt::Retry(mismatch.to_string())
                } else {
                    Attempt::Fatal(mismatch)
                });
            }
        }
        // fsync can take a while for a large file: off the async threads.
        let (from, to) = (part.to_path_buf(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || airgap_fsutil::persist(&from, &to))
            .await
            .map_err(|e| Attempt::Retry(e.to_string()))?
            .map_err(|e| Attempt::Fatal(FetchError::Write(e)))?;
        Ok(Downloaded {
            sha256,
            bytes,
            resumed_from: offset,
            reused: false,
        })
    }

    /// Streams the body into `part` (appending after `offset`) on a blocking thread that
    /// writes and hashes; returns the hex sha256 and the size of the whole file.
    async fn stream_to_part(
        &self,
        mut resp: reqwest::Response,
        part: &Path,
        offset: u64,
        total: Option<u64>,
        dest: &Path,
        (mut pace, cap): (Pace, Cap<'_>),
    ) -> Result<(String, u64), Attempt> {
        let bar = self.transfer_bar(dest, total, offset);
        let (tx, rx) = mpsc::channel::<bytes::Bytes>(16);
        let part_owned = part.to_path_buf();
        let writer = tokio::task::spawn_blocking(move || write_and_hash(&part_owned, offset, rx));
        let mut body_error = None;
        let mut received = offset;
        loop {
            match pace.chunk(&mut resp).await {
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    if received > cap.max_bytes {
                        body_error = Some(cap.exceeded());
                        break;
                    }
                    bar.inc(chunk.len() as u64);
                    self.total.inc(chunk.len() as u64);
                    if tx.send(chunk).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    body_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        bar.finish_and_clear();
        let written = writer.await.map_err(|e| Attempt::Retry(e.to_string()))?;
        let (sha, len) = written.map_err(|cause| {
            Attempt::Fatal(FetchError::Io {
                path: part.to_path_buf(),
                cause,
            })
        })?;
        match body_error {
            Some(e) => Err(e),
            None => Ok((sha, len)),
        }
    }

    fn transfer_bar(&self, dest: &Path, total: Option<u64>, offset: u64) -> ProgressBar {
        let bar = self
            .progress
            .insert_before(&self.total, ProgressBar::new(total.unwrap_or(0)));
        bar.set_style(bar_style(
            "{msg:>12.20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        ));
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        bar.set_message(name);
        bar.set_position(offset);
        if let Some(total) = total {
            self.total.inc_length(total - offset.min(total));
        }
        bar
    }
}

fn build_client(opts: &FetchOptions) -> Result<reqwest::Client, FetchError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("coder-airgap/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout)
        .pool_max_idle_per_host(opts.concurrency.max(1))
        .redirect(failure::redirect_policy(opts.max_redirects));
    if let Some(path) = &opts.extra_ca_file {
        for cert in read_ca_file(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(proxy) = &opts.https_proxy {
        let proxy = reqwest::Proxy::https(proxy)
            .map_err(|e| FetchError::Client(format!("bad HTTPS proxy {proxy:?}: {e}")))?;
        builder = builder.proxy(proxy);
    } else if !opts.env_proxy {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| FetchError::Client(error_chain(&e)))
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, FetchError> {
    let bad = |message: String| FetchError::CaFile {
        path: path.to_path_buf(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificates in it".to_string()));
    }
    Ok(certs)
}

fn check_status(url: &Url, status: StatusCode) -> Result<(), Attempt> {
    if status.is_success() {
        return Ok(());
    }
    let retryable = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    if retryable {
        return Err(Attempt::Retry(format!("HTTP {status}")));
    }
    Err(Attempt::Fatal(FetchError::Status {
        url: url.to_string(),
        status: status.as_u16(),
    }))
}

/// Where to append: `offset` if the server honoured the Range, 0 if it sent the whole file.
fn resume_offset(resp: &reqwest::Response, offset: u64) -> Result<u64, String> {
    match resp.status() {
        StatusCode::RANGE_NOT_SATISFIABLE => {
            Err("server refused the resume range; restarting".to_string())
        }
        StatusCode::PARTIAL_CONTENT if offset > 0 => {
            let range = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let start = range
                .strip_prefix("bytes ")
                .and_then(|r| r.split('-').next())
                .and_then(|s| s.parse::<u64>().ok());
            if start == Some(offset) {
                Ok(offset)
            } else {
                Err(format!(
                    "server resumed at the wrong place ({range:?}); restarting"
                ))
            }
        }
        _ => Ok(0),
    }
}

/// Writes chunks to `part` (truncating unless appending at `offset`) and hashes the whole file.
fn write_and_hash(
    part: &Path,
    offset: u64,
    mut rx: mpsc::Receiver<bytes::Bytes>,
) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let file = if offset > 0 {
        let mut existing = std::fs::File::open(part)?.take(offset);
        len = io::copy(&mut existing, &mut hasher)?;
        std::fs::OpenOptions::new().append(true).open(part)?
    } else {
        std::fs::File::create(part)?
    };
    let mut out = io::BufWriter::with_capacity(256 * 1024, file);
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
        out.write_all(&chunk)?;
        len += chunk.len() as u64;
    }
    out.flush()?;
    Ok((hex::encode(hasher.finalize()), len))
}

/// If `dest` already holds a file with the expected hash, reuse it.
async fn reuse_existing(dest: &Path, want: &str) -> Result<Option<Downloaded>, FetchError> {
    if !dest.is_file() {
        return Ok(None);
    }
    let path = dest.to_path_buf();
    let hashed = tokio::task::spawn_blocking(move || -> io::Result<(String, u64)> {
        let file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        Ok((crate::hash::sha256_reader(file)?, len))
    })
    .await
    .map_err(|e| FetchError::Client(e.to_string()))?;
    let (sha256, bytes) = hashed.map_err(|cause| FetchError::Io {
        path: dest.to_path_buf(),
        cause,
    })?;
    Ok((sha256 == want).then_some(Downloaded {
        sha256,
        bytes,
        resumed_from: 0,
        reused: true,
    }))
}

/// The size cap of one download.
struct Cap<'a> {
    url: &'a Url,
    max_bytes: u64,
}

impl Cap<'_> {
    fn exceeded(&self) -> Attempt {
        Attempt::Fatal(FetchError::TooLarge {
            url: self.url.to_string(),
            limit: self.max_bytes,
        })
    }
}

/// The clock of one transfer: its overall deadline and the minimum-rate window.
struct Pace {
    url: Url,
    deadline: Instant,
    deadline_secs: u64,
    window: Duration,
    min_bytes: u64,
    window_start: Instant,
    window_bytes: u64,
}

impl Pace {
    fn new(url: &Url, opts: &FetchOptions) -> Self {
        let now = Instant::now();
        Pace {
            url: url.clone(),
            deadline: now + opts.deadline,
            deadline_secs: opts.deadline.as_secs(),
            window: opts.min_rate_window.max(Duration::from_millis(1)),
            min_bytes: opts.min_rate_bytes,
            window_start: now,
            window_bytes: 0,
        }
    }

    /// Sends the request within the deadline; send errors are classified.
    async fn send(
        &mut self,
        send: impl Future<Output = reqwest::Result<reqwest::Response>>,
    ) -> Result<reqwest::Response, Attempt> {
        let resp = match tokio::time::timeout_at(self.deadline, send).await {
            Ok(resp) => resp.map_err(|e| request_failure(&self.url, &e))?,
            Err(_) => return Err(self.past_deadline()),
        };
        self.window_start = Instant::now();
        Ok(resp)
    }

    /// The next body chunk, failing past the deadline or below the minimum rate.
    async fn chunk(
        &mut self,
        resp: &mut reqwest::Response,
    ) -> Result<Option<bytes::Bytes>, Attempt> {
        loop {
            let window_end = self.window_start + self.window;
            let wake = window_end.min(self.deadline);
            match tokio::time::timeout_at(wake, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    self.window_bytes += chunk.len() as u64;
                    if Instant::now() >= window_end {
                        self.close_window()?;
                    }
                    return Ok(Some(chunk));
                }
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(e)) => return Err(request_failure(&self.url, &e)),
                Err(_) if Instant::now() >= self.deadline => return Err(self.past_deadline()),
                Err(_) => self.close_window()?,
            }
        }
    }

    /// Ends a rate window: too few bytes in it fails the transfer.
    fn close_window(&mut self) -> Result<(), Attempt> {
        if self.window_bytes < self.min_bytes {
            return Err(Attempt::Fatal(FetchError::TooSlow {
                url: self.url.to_string(),
                bytes: self.window_bytes,
                window_secs: self.window.as_secs(),
                min_bytes: self.min_bytes,
            }));
        }
        self.window_start = Instant::now();
        self.window_bytes = 0;
        Ok(())
    }

    fn past_deadline(&self) -> Attempt {
        Attempt::Fatal(FetchError::Deadline {
            url: self.url.to_string(),
            secs: self.deadline_secs,
        })
    }
}

/// A failed request: permanent failures are fatal, the rest are retried.
fn request_failure(url: &Url, e: &reqwest::Error) -> Attempt {
    let host = url.host_str().unwrap_or_default().to_string();
    let url_text = url.to_string();
    match failure::classify(e, &host) {
        Failure::Redirect(refused) => Attempt::Fatal(FetchError::Redirect {
            url: url_text,
            refused,
        }),
        Failure::Certificate(advice) => Attempt::Fatal(FetchError::Certificate {
            url: url_text,
            advice,
        }),
        Failure::Unresolvable(message) => Attempt::Fatal(FetchError::Unresolvable {
            url: url_text,
            host,
            message,
        }),
        Failure::Unreachable(message) => Attempt::Fatal(FetchError::Unreachable {
            url: url_text,
            host,
            message,
        }),
        Failure::Transient(message) => Attempt::Retry(message),
    }
}

/// `dest` with `.part` appended to its file name.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".part");
    dest.with_file_name(name)
}

fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.min(6))
        .min(Duration::from_secs(10));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = exp.mul_f64(f64::from(nanos % 1000) / 4000.0);
    exp + jitter
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_path_appends_suffix() {
        assert_eq!(
            part_path(Path::new("/m/a.zip")),
            PathBuf::from("/m/a.zip.part")
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        assert!(backoff(base, 1) >= Duration::from_millis(200));
        assert!(backoff(base, 3) >= Duration::from_millis(800));
        assert!(backoff(base, 30) <= Duration::from_millis(12_500));
    }
}
