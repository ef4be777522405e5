//! The provider mirror inside `up`: the mirror crate's HTTPS server over the current
//! release's provider tree, with the CA-issued mirror certificate, plus `GET /ca.pem` (the
//! appliance's CA bundle) so workspace images can fetch the trust they need at build time.

use std::path::PathBuf;
use std::sync::Arc;

use airgap_mirror::serve;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::error::SuperviseError;
use super::settings::Settings;
use crate::layout::Layout;

/// A running mirror server.
#[derive(Debug)]
pub struct MirrorServer {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl MirrorServer {
    /// Binds `mirror_listen` and serves until [`MirrorServer::stop`]. If the server stops
    /// by itself, `on_exit` gets its error (`None`: it stopped cleanly).
    pub fn start(
        layout: &Layout,
        settings: &Settings,
        on_exit: impl FnOnce(Option<String>) + Send + 'static,
    ) -> Result<MirrorServer, SuperviseError> {
        // One descriptor per client connection: the soft default (1024) is far below the
        // listener's cap, which is fitted to whatever this leaves.
        match airgap_mirror::listener::raise_nofile_limit() {
            Ok(nofile) => tracing::debug!(nofile, "open-files limit"),
            Err(e) => tracing::warn!("cannot raise the open-files limit (RLIMIT_NOFILE): {e}"),
        }
        let prefix = layout.mirror_tls_prefix();
        let tls = serve::tls_config(&prefix.with_extension("crt"), &prefix.with_extension("key"))
            .map_err(|e| SuperviseError::Mirror(e.to_string()))?;
        let app = serve::router(&settings.release.providers_dir())
            .map_err(|e| SuperviseError::Mirror(e.to_string()))?
            .merge(ca_route(layout.ca_bundle()))
            .merge(docs_route(settings.release.docs_dir()));
        let addr = settings.config.mirror_listen;
        let listener = std::net::TcpListener::bind(addr).map_err(|e| {
            SuperviseError::Mirror(format!(
                "cannot listen on {addr}: {e} (is another process using the port? change \
                 mirror_listen in {})",
                layout.config_file().display()
            ))
        })?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stop = async {
                let _ = stopped.await;
            };
            let result = serve::serve_router(listener, app, tls, stop).await;
            on_exit(result.err().map(|e| e.to_string()));
        });
        Ok(MirrorServer { shutdown, task })
    }

    /// Stops accepting, lets open requests finish (at most 10 s), and waits for the end.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

/// `/docs/…`: Coder's offline docs from the release, when it carries them (coderd's
/// `CODER_DOCS_URL` points here, so its help links work without the internet).
fn docs_route(dir: Option<PathBuf>) -> axum::Router {
    match dir {
        Some(dir) => axum::Router::new().nest_service(
            "/docs",
            tower_http::services::ServeDir::new(dir).append_index_html_on_directories(true),
        ),
        None => axum::Router::new(),
    }
}

/// `GET /ca.pem`: the bundle as it is on disk now (read per request, so a renewed or
/// replaced bundle is served without a restart).
fn ca_route(bundle: PathBuf) -> axum::Router {
    axum::Router::new()
        .route("/ca.pem", get(ca_pem))
        .with_state(Arc::new(bundle))
}

async fn ca_pem(State(bundle): State<Arc<PathBuf>>) -> axum::response::Response {
    match tokio::fs::read(bundle.as_path()).await {
        Ok(pem) => ([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response(),
        Err(e) => {
            tracing::warn!("cannot serve {}: {e}", bundle.display());
            (StatusCode::NOT_FOUND, "no CA bundle\n").into_response()
        }
    }
}
