//! The TLS listener under the mirror server, built to survive hostile clients: a cap on
//! concurrent connections, deadlines for the TLS handshake and for request headers, an idle
//! timeout that shrinks when the server is busy, refused request bodies, and a graceful
//! shutdown. Each connection speaks HTTP/2 or HTTP/1.1 as chosen by ALPN (no sniffing, so
//! nothing waits on a preface).
//!
//! Beyond the cap the listener stops calling `accept`: new connections wait in the
//! kernel's backlog (raised to [`BACKLOG`]) until a slot frees. Slots free quickly when it
//! matters, because once three quarters of the cap are in use every connection's idle
//! timeout drops to [`Limits::busy_idle_timeout`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tower_service::Service as _;

/// Length of the kernel's queue of connections not yet accepted (the kernel caps it at
/// `net.core.somaxconn`).
pub const BACKLOG: i32 = 4096;

/// File descriptors kept free for everything but client connections (files being served,
/// the runtime, logs).
const FD_RESERVE: u64 = 256;

/// How long open connections get to finish after shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The listener's limits. [`Limits::default`] is what `mirror serve` and `up` use; see
/// docs/mirror.md for why each value is what it is.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// Most connections open at once (lowered at start to what `RLIMIT_NOFILE` allows).
    pub max_connections: usize,
    /// Time from TCP accept to a finished TLS handshake.
    pub handshake_timeout: Duration,
    /// HTTP/1.1: time to receive a request's complete header, counted from the end of the
    /// previous response, so it is also HTTP/1.1's keep-alive idle timeout.
    pub header_read_timeout: Duration,
    /// Time a connection may go without a new request or a byte written to it.
    pub idle_timeout: Duration,
    /// The idle timeout once three quarters of `max_connections` are in use.
    pub busy_idle_timeout: Duration,
    /// Largest request header (HTTP/1.1 buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16_384,
            handshake_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            busy_idle_timeout: Duration::from_secs(3),
            max_header_bytes: 64 * 1024,
            max_streams: 64,
        }
    }
}

impl Limits {
    /// These limits with `max_connections` lowered so that connections cannot exhaust the
    /// process's file descriptors (its current `RLIMIT_NOFILE` soft limit).
    pub fn fitted_to_nofile(mut self) -> Self {
        if let Ok((soft, _)) = nofile_limits() {
            let room = soft.saturating_sub(FD_RESERVE).max(16);
            self.max_connections = self
                .max_connections
                .min(usize::try_from(room).unwrap_or(usize::MAX));
        }
        self
    }
}

/// The process's `RLIMIT_NOFILE` (soft, hard).
pub fn nofile_limits() -> io::Result<(u64, u64)> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_err(io::Error::from)
}

/// Raises this process's `RLIMIT_NOFILE` soft limit to its hard limit (servers need one
/// descriptor per connection; the usual soft default of 1024 is far below the cap).
/// Returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    use nix::sys::resource::{setrlimit, Resource};
    let (soft, hard) = nofile_limits()?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(io::Error::from)?;
    }
    Ok(hard.max(soft))
}

/// Accepts TLS connections on `listener` and serves `app` on each within `limits`, until
/// `shutdown` completes; then stops accepting, asks open connections to finish, and waits
/// for them (at most 10 s).
pub async fn run(
    listener: std::net::TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    // Re-listening on a listening socket only changes its backlog.
    socket2::SockRef::from(&listener).listen(BACKLOG)?;
    let shared = Arc::new(Shared::new(limits, tls));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            permit = shared.slots.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, _)) => {
                shared.note_load();
                let shared = shared.clone();
                let app = app.clone();
                connections.spawn(async move {
                    connection(tcp, app, &shared).await;
                    drop(permit);
                    shared.note_load();
                });
            }
            // Out of descriptors or memory, or a connection reset before accept: wait a
            // moment instead of spinning, and keep serving the connections there are.
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    shared.stopping.store(true, Ordering::Relaxed);
    shared.wake.notify_waiters();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period: closing them"
        );
        connections.abort_all();
    }
    Ok(())
}

/// What every connection task shares.
struct Shared {
    limits: Limits,
    tls: tokio_rustls::TlsAcceptor,
    slots: Arc<Semaphore>,
    /// Whether three quarters of the slots are taken.
    busy: AtomicBool,
    stopping: AtomicBool,
    /// Woken when `busy` turns on or shutdown starts, so idle timers are recomputed.
    wake: Notify,
    /// The zero of every connection's activity clock.
    epoch: Instant,
}

impl Shared {
    fn new(limits: Limits, tls: Arc<rustls::ServerConfig>) -> Self {
        Shared {
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            tls: tokio_rustls::TlsAcceptor::from(tls),
            busy: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            wake: Notify::new(),
            epoch: Instant::now(),
        }
    }

    /// Updates `busy` from the free slots; wakes idle timers when it turns on.
    fn note_load(&self) {
        let free = self.slots.available_permits();
        let busy = free <= self.limits.max_connections / 4;
        if busy && !self.busy.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max_connections = self.limits.max_connections,
                "mirror connections near the cap: idle timeout lowered to {:?}",
                self.limits.busy_idle_timeout
            );
            self.wake.notify_waiters();
        } else if !busy {
            self.busy.store(false, Ordering::Relaxed);
        }
    }

    fn idle_timeout(&self) -> Duration {
        if self.busy.load(Ordering::Relaxed) {
            self.limits.busy_idle_timeout
        } else {
            self.limits.idle_timeout
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One client connection: TLS handshake, then HTTP until the client is done, the idle
/// timer fires or shutdown ends it.
async fn connection(tcp: TcpStream, app: Router, shared: &Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let clock = Arc::new(AtomicU64::new(shared.now_ms()));
    let io = Watched {
        inner: tcp,
        clock: clock.clone(),
        epoch: shared.epoch,
    };
    let handshake = tokio::time::timeout(shared.limits.handshake_timeout, shared.tls.accept(io));
    let Ok(Ok(tls)) = handshake.await else {
        return;
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let service = {
        let (clock, epoch) = (clock.clone(), shared.epoch);
        hyper::service::service_fn(move |req: Request<Incoming>| {
            touch(&clock, epoch);
            let mut app = app.clone();
            async move {
                if has_body(&req) {
                    return Ok::<_, Infallible>(body_refused());
                }
                app.call(req.map(Body::new)).await
            }
        })
    };
    let io = TokioIo::new(tls);
    let limits = &shared.limits;
    if h2 {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_streams)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        drive(conn.as_mut(), |c| c.graceful_shutdown(), &clock, shared).await;
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .keep_alive(true);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        drive(conn.as_mut(), |c| c.graceful_shutdown(), &clock, shared).await;
    }
}

/// Polls `conn` to its end, dropping it when it has been idle too long, and asking it to
/// finish (once) when shutdown starts.
async fn drive<C, E>(
    mut conn: Pin<&mut C>,
    graceful: impl Fn(Pin<&mut C>),
    clock: &AtomicU64,
    shared: &Shared,
) where
    C: Future<Output = Result<(), E>>,
{
    let mut asked_to_finish = false;
    loop {
        let woken = shared.wake.notified();
        if shared.stopping.load(Ordering::Relaxed) && !asked_to_finish {
            asked_to_finish = true;
            graceful(conn.as_mut());
        }
        let last = clock.load(Ordering::Relaxed);
        let deadline_ms = last.saturating_add(ms(shared.idle_timeout()));
        let now = shared.now_ms();
        if now >= deadline_ms {
            return; // idle too long: dropping the connection closes it
        }
        let sleep = tokio::time::sleep(Duration::from_millis(deadline_ms - now));
        tokio::select! {
            _ = conn.as_mut() => return,
            () = sleep => {}
            () = woken => {}
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn touch(clock: &AtomicU64, epoch: Instant) {
    let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
    clock.store(now, Ordering::Relaxed);
}

/// Whether a request carries a body. The mirror is read-only: nothing it serves takes one.
fn has_body(req: &Request<Incoming>) -> bool {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    declared || !hyper::body::Body::is_end_stream(req.body())
}

fn body_refused() -> Response<Body> {
    let mut resp = Response::new(Body::from("request bodies are not accepted\n"));
    *resp.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// A TCP stream that records when the server last wrote to it: writes (responses, TLS
/// records) are what a live connection produces; a client trickling bytes in without ever
/// completing a request produces none.
struct Watched {
    inner: TcpStream,
    clock: Arc<AtomicU64>,
    epoch: Instant,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            touch(&self.clock, self.epoch);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            touch(&self.clock, self.epoch);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
