//! The Module Registry Protocol over the module store ([`crate::module_store`]), for every
//! host the store carries modules of; the terraformrc's `host` blocks point each host's
//! `modules.v1` service at `/modules/v1/HOST/`.
//!
//! - `GET /modules/v1/HOST/NS/NAME/PROVIDER/versions` → 200
//!   `{"modules":[{"versions":[{"version":"1.0.0"},…]}]}`
//! - `GET /modules/v1/HOST/NS/NAME/PROVIDER/VERSION/download` → 204 with
//!   `X-Terraform-Get: ./module.tar.gz` (Terraform resolves a location starting with `./`
//!   against the download URL, so the mirror need not know its own name)
//! - `GET /modules/v1/HOST/NS/NAME/PROVIDER/VERSION/module.tar.gz` → the archive (with the
//!   file machinery of the provider tree: ETag, ranges, HEAD)
//!
//! Each path part is percent-decoded and checked with the store's address rules before any
//! path is built (400 if it fails), so no request touches a file outside the store. An
//! unknown module or version is 404. An archive whose sha256 no longer matches its index
//! is refused (409, naming the module and the fix); a verified archive is remembered by
//! size and mtime, so it is hashed once per change.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use super::{load, respond, status, Loaded, Site, Source};
use crate::module_store::{ModuleAddr, ModuleStore};
use crate::version::Version;

/// URL prefix of the module registry.
pub const MODULES_PREFIX: &str = "/modules/v1/";

/// The archive's name beside `download`.
pub const ARCHIVE_NAME: &str = "module.tar.gz";

/// The `X-Terraform-Get` value: [`ARCHIVE_NAME`] relative to the download URL.
const LOCATION: &str = "./module.tar.gz";

/// Archives whose hash has been checked: canonical path → (size, mtime).
#[derive(Default)]
pub(super) struct Verified {
    map: RwLock<HashMap<PathBuf, (u64, SystemTime)>>,
}

/// Most verified archives remembered; past this the map starts over.
const VERIFIED_MAX: usize = 4096;

/// What a module request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Versions(ModuleAddr),
    Download(ModuleAddr, Version),
    Archive(ModuleAddr, Version),
}

/// Why a request was not answered with content.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Not a module registry path at all.
    NotFound,
    /// A path part fails the address or version rules.
    BadRequest(String),
}

/// Parses a raw request path under [`MODULES_PREFIX`].
fn route(raw: &str) -> Result<Route, Refusal> {
    let rel = raw.strip_prefix(MODULES_PREFIX).ok_or(Refusal::NotFound)?;
    let mut parts = Vec::new();
    for segment in rel.split('/') {
        let decoded = percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .map_err(|_| Refusal::BadRequest("path is not UTF-8".to_string()))?;
        parts.push(decoded.into_owned());
    }
    let addr = |p: &[String]| {
        ModuleAddr::from_parts(&p[0], &p[1], &p[2], &p[3])
            .map_err(|e| Refusal::BadRequest(e.to_string()))
    };
    let version = |v: &str| {
        v.parse::<Version>()
            .map_err(|e| Refusal::BadRequest(e.to_string()))
    };
    match parts.as_slice() {
        [p @ .., last] if p.len() == 4 && last == "versions" => Ok(Route::Versions(addr(p)?)),
        [p @ .., v, last] if p.len() == 4 && last == "download" => {
            Ok(Route::Download(addr(p)?, version(v)?))
        }
        [p @ .., v, last] if p.len() == 4 && last == ARCHIVE_NAME => {
            Ok(Route::Archive(addr(p)?, version(v)?))
        }
        _ => Err(Refusal::NotFound),
    }
}

/// Answers a GET or HEAD under [`MODULES_PREFIX`].
pub(super) async fn handle(
    site: Arc<Site>,
    raw: &str,
    headers: &HeaderMap,
    head: bool,
) -> Response<Body> {
    let route = match route(raw) {
        Ok(route) => route,
        Err(Refusal::NotFound) => return status(StatusCode::NOT_FOUND),
        Err(Refusal::BadRequest(why)) => return text(StatusCode::BAD_REQUEST, why),
    };
    let worker = site.clone();
    let answer = tokio::task::spawn_blocking(move || worker.module_answer(route)).await;
    match answer {
        Ok(Answer::Json(body)) => json(body, head),
        Ok(Answer::Located) => located(),
        Ok(Answer::File(Loaded::Small(small))) => respond(
            &small.meta,
            headers,
            head,
            Source::Memory(small.body.clone()),
        ),
        Ok(Answer::File(Loaded::Large(meta, file))) => respond(
            &meta,
            headers,
            head,
            Source::File(tokio::fs::File::from_std(file)),
        ),
        Ok(Answer::Missing) => status(StatusCode::NOT_FOUND),
        Ok(Answer::Fault(message)) => {
            tracing::warn!(path = raw, %message, "cannot serve module");
            // 409, not 500: Terraform retries a 5xx and then drops the body, but shows
            // the body of a 4xx answer to `download`, so the user reads what is wrong.
            text(StatusCode::CONFLICT, message)
        }
        Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The outcome of the blocking part of a module request.
enum Answer {
    Json(String),
    Located,
    File(Loaded),
    Missing,
    Fault(String),
}

impl Site {
    fn module_answer(&self, route: Route) -> Answer {
        let store = ModuleStore::new(&self.root);
        match route {
            Route::Versions(addr) => match store.versions(&addr) {
                Ok(versions) if !versions.is_empty() => Answer::Json(versions_json(&versions)),
                Ok(_) => Answer::Missing,
                Err(e) => Answer::Fault(e.to_string()),
            },
            Route::Download(addr, version) => {
                match self.verified_archive(&store, &addr, &version) {
                    Ok(Some(_)) => Answer::Located,
                    Ok(None) => Answer::Missing,
                    Err(message) => Answer::Fault(message),
                }
            }
            Route::Archive(addr, version) => match self.verified_archive(&store, &addr, &version) {
                Ok(Some(real)) => match load(Arc::from(real)) {
                    Ok(Some(loaded)) => Answer::File(loaded),
                    Ok(None) => Answer::Missing,
                    Err(e) => Answer::Fault(e.to_string()),
                },
                Ok(None) => Answer::Missing,
                Err(message) => Answer::Fault(message),
            },
        }
    }

    /// The canonical path of a listed version's archive once its sha256 matches the index;
    /// `None` if the module, the version or the file is not there.
    fn verified_archive(
        &self,
        store: &ModuleStore,
        addr: &ModuleAddr,
        version: &Version,
    ) -> Result<Option<PathBuf>, String> {
        let index = store.read_index(addr).map_err(|e| e.to_string())?;
        let Some(entry) = index.versions.get(&version.to_string()) else {
            return Ok(None);
        };
        let Ok(real) = std::fs::canonicalize(store.archive_path(addr, version)) else {
            return Ok(None);
        };
        if !real.starts_with(&self.root) {
            return Ok(None);
        }
        let meta = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", real.display()))?;
        if !meta.is_file() {
            return Ok(None);
        }
        let stamp = (meta.len(), meta.modified().unwrap_or(UNIX_EPOCH));
        let known = self
            .modules
            .map
            .read()
            .ok()
            .and_then(|m| m.get(&real).copied());
        if known == Some(stamp) {
            return Ok(Some(real));
        }
        let actual = crate::hash::sha256_file(&real).map_err(|e| e.to_string())?;
        if actual != entry.sha256 {
            return Err(format!(
                "module {addr} {version}: {} has sha256 {actual}, but the mirror's index records {}; \
                 the archive was changed after import: re-import it (coder-airgap mirror import-module --replace) \
                 or restore the bundle",
                real.display(),
                entry.sha256
            ));
        }
        if let Ok(mut map) = self.modules.map.write() {
            if map.len() >= VERIFIED_MAX {
                map.clear();
            }
            map.insert(real.clone(), stamp);
        }
        Ok(Some(real))
    }
}

/// The versions document of the Module Registry Protocol.
fn versions_json(versions: &[Version]) -> String {
    let list: Vec<serde_json::Value> = versions
        .iter()
        .map(|v| serde_json::json!({ "version": v.to_string() }))
        .collect();
    serde_json::json!({ "modules": [ { "versions": list } ] }).to_string()
}

fn json(body: String, head: bool) -> Response<Body> {
    let len = body.len();
    let mut resp = Response::new(if head {
        Body::empty()
    } else {
        Body::from(body)
    });
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

fn located() -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp.headers_mut()
        .insert("x-terraform-get", HeaderValue::from_static(LOCATION));
    resp
}

/// A one-line `text/plain` answer that Terraform shows to the user.
fn text(code: StatusCode, message: String) -> Response<Body> {
    super::text(code, format!("{message}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_check_every_part() {
        let addr =
            ModuleAddr::from_parts("registry.coder.com", "coder", "demo", "coder").expect("addr");
        let v: Version = "1.0.0".parse().expect("v");
        assert_eq!(
            route("/modules/v1/registry.coder.com/coder/demo/coder/versions"),
            Ok(Route::Versions(addr.clone()))
        );
        assert_eq!(
            route("/modules/v1/registry.coder.com/Coder/demo/coder/1.0.0/download"),
            Ok(Route::Download(addr.clone(), v.clone()))
        );
        assert_eq!(
            route("/modules/v1/registry.coder.com/coder/demo/coder/1.0.0/module.tar.gz"),
            Ok(Route::Archive(addr, v))
        );
        for missing in [
            "/modules/v1/registry.coder.com/coder/demo/versions",
            "/modules/v1/registry.coder.com/coder/demo/coder/1.0.0/other",
            "/modules/v1/registry.coder.com/coder/demo/coder/1.0.0/download/x",
            "/modules/v2/registry.coder.com/coder/demo/coder/versions",
        ] {
            assert_eq!(route(missing), Err(Refusal::NotFound), "{missing}");
        }
        for bad in [
            "/modules/v1/../coder/demo/coder/versions",
            "/modules/v1/registry.coder.com/%2e%2e/demo/coder/versions",
            "/modules/v1/registry.coder.com/coder/..%2f..%2fetc/coder/versions",
            "/modules/v1/registry.coder.com/coder/demo/coder/..%2f..%2f1/download",
            "/modules/v1/registry.coder.com/coder/demo/coder/x/module.tar.gz",
            "/modules/v1/registry.coder.com/coder/demo/%00/versions",
            "/modules/v1/registry.coder.com/coder/demo/coder/1.0.0%2fx/download",
        ] {
            assert!(
                matches!(route(bad), Err(Refusal::BadRequest(_))),
                "{bad}: {:?}",
                route(bad)
            );
        }
    }

    #[test]
    fn the_versions_document_has_the_protocol_shape() {
        let versions: Vec<Version> = ["1.0.0", "1.2.0"]
            .iter()
            .map(|v| v.parse().expect("v"))
            .collect();
        let doc: serde_json::Value = serde_json::from_str(&versions_json(&versions)).expect("json");
        assert_eq!(
            doc,
            serde_json::json!({"modules": [{"versions": [{"version": "1.0.0"}, {"version": "1.2.0"}]}]})
        );
    }
}
