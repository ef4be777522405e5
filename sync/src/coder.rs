//! coderd from Coder's release layout (`BASE/vV/coder_V_linux_ARCH.tar.gz`, checked against
//! `coder_V_checksums.txt` and its detached `.asc` signature by Coder's release key, pinned
//! by fingerprint and required unless the spec opts out); optionally `coder_docs_V.tgz`
//! for offline docs.

use std::path::Path;

use airgap_mirror::fetch::Url;
use airgap_mirror::Platform;

use super::archive::{extract_member, unpack_tar_gz, TarLimits};
use super::error::SyncError;
use super::fetch::{self, Ctx, Prepared};
use super::spec::CoderSection;
use super::stagefs::{self, Move};
use airgap_stage::Component;

const NAME: &str = "coderd";
const FIELD: &str = "coder";

/// coderd (and docs, when asked for).
pub struct CoderPrepared {
    /// `bin/coder`.
    pub coderd: Prepared,
    /// `docs/`.
    pub docs: Option<Prepared>,
}

/// Fetches, verifies and prepares `bin/coder` and, if `spec.docs`, `docs/`.
pub async fn prepare(
    ctx: &Ctx<'_>,
    spec: &CoderSection,
    platform: &Platform,
    from: Option<&Path>,
) -> Result<CoderPrepared, SyncError> {
    let locked = ctx.locked.map(|l| &l.components.coderd);
    let local_input = from.is_some();
    let (sums, sums_url, warnings) = if local_input && !spec.docs {
        (Vec::new(), None, Vec::new())
    } else {
        let (sums, url, warnings) = checksums(ctx, spec)
            .await
            .map_err(|e| docs_need_upstream(e, spec, local_input))?;
        (sums, Some(url), warnings)
    };
    let mut coderd = match from {
        Some(path) => local(ctx, spec, path, locked)?,
        None => remote(ctx, spec, platform, &sums, sums_url.as_ref()).await?,
    };
    coderd.warnings.extend(warnings);
    coderd.component.terraform_range = super::spec::terraform_range(&coderd.component.version);
    let docs = match (spec.docs, sums_url) {
        (true, Some(url)) => Some(docs(ctx, spec, &sums, &url).await?),
        _ => None,
    };
    Ok(CoderPrepared { coderd, docs })
}

/// The checksum file, verified against its detached `.asc` with the key pinned by
/// `coder.key_fingerprint` (Coder's release key by default). A missing or wrong
/// signature fails the sync unless the spec says `require_signature = false`, which is
/// reported as a warning on every run.
async fn checksums(
    ctx: &Ctx<'_>,
    spec: &CoderSection,
) -> Result<(Vec<u8>, Url, Vec<String>), SyncError> {
    let v = &spec.version;
    let name = format!("coder_{v}_checksums.txt");
    let url = fetch::join(&spec.base_url, &format!("v{v}/{name}"))?;
    let (sums, _) = ctx.fetcher.get_bytes(&url).await?;
    let asc_url = fetch::join(&spec.base_url, &format!("v{v}/{name}.asc"))?;
    let asc = fetch::get_optional(ctx.fetcher, &asc_url).await?;
    let has_key = spec.key_file.is_some() || spec.key_url.is_some();
    if spec.require_signature && !has_key {
        return Err(SyncError::Missing {
            what: NAME,
            message: format!("{name} must be verified with Coder's release key (fingerprint {}): set coder.key_url or coder.key_file, or coder.require_signature = false for a release known to be unsigned", spec.key_fingerprint),
        });
    }
    let mut warnings = Vec::new();
    match asc {
        Some(asc) if spec.require_signature || has_key => {
            let key = super::spec::load_key(
                ctx.fetcher,
                spec.key_file.as_deref(),
                spec.key_url.as_deref(),
                NAME,
            )
            .await?;
            let pinned = &spec.key_fingerprint;
            fetch::verify_signed(NAME, (&key.0, &key.1), pinned, FIELD, (&asc, asc_url.as_str()), &sums)?;
        }
        None if spec.require_signature => {
            return Err(SyncError::Missing {
                what: NAME,
                message: format!("{asc_url} is not published: refusing an unsigned checksum file (coder.key_fingerprint pins Coder's release key; set coder.require_signature = false in the spec only for a release known to be unsigned)"),
            })
        }
        _ => warnings.push(format!(
            "coderd: SIGNATURE NOT CHECKED — the spec sets coder.require_signature = false, so {name} was trusted on its sha256 lines alone{}",
            if has_key { "" } else { " (and no key_url or key_file is set)" }
        )),
    }
    Ok((sums, url, warnings))
}

/// With `--coder-from`, only `docs = true` still reaches Coder's release site: say which
/// files it needs and how to do without them, instead of a bare connect error.
fn docs_need_upstream(e: SyncError, spec: &CoderSection, local_input: bool) -> SyncError {
    if !local_input {
        return e;
    }
    let v = &spec.version;
    SyncError::Missing {
        what: "docs",
        message: format!(
            "--coder-from replaces the coder binary, but coder.docs = true still needs coder_{v}_checksums.txt (+ .asc) and coder_docs_{v}.tgz from {}/v{v}/: {e}. Make them reachable, or leave the docs out with --set coder.docs=false (or docs = false in the spec)",
            spec.base_url.trim_end_matches('/')
        ),
    }
}

async fn remote(
    ctx: &Ctx<'_>,
    spec: &CoderSection,
    platform: &Platform,
    sums: &[u8],
    sums_url: Option<&Url>,
) -> Result<Prepared, SyncError> {
    let locked = ctx.locked.map(|l| &l.components.coderd);
    let v = &spec.version;
    fetch::check_version(locked, NAME, v)?;
    let file = format!("coder_{v}_{platform}.tar.gz");
    let sha = lookup(sums, &file, sums_url)?;
    fetch::check_artifact(locked, NAME, &file, &sha)?;
    let url = fetch::join(&spec.base_url, &format!("v{v}/{file}"))?;
    let (archive, artifact) =
        fetch::download_capped(ctx, &url, &file, &sha, TarLimits::RELEASE.max_total_bytes).await?;
    let staged = ctx.tmp.join("coder");
    let out = staged.clone();
    fetch::blocking(move || {
        Ok(extract_member(
            &archive,
            "coder",
            &out,
            &TarLimits::RELEASE,
        )?)
    })
    .await?;
    Ok(binary(v.clone(), staged, artifact, Vec::new()))
}

/// `--coder-from`: a release tarball or the bare binary.
fn local(
    ctx: &Ctx<'_>,
    spec: &CoderSection,
    path: &Path,
    locked: Option<&Component>,
) -> Result<Prepared, SyncError> {
    let artifact = fetch::local_artifact(path)?;
    fetch::check_artifact(locked, NAME, &artifact.file, &artifact.sha256)?;
    let staged = ctx.tmp.join("coder");
    if stagefs::has_magic(path, &[0x1f, 0x8b])? {
        extract_member(path, "coder", &staged, &TarLimits::RELEASE)?;
    } else {
        stagefs::copy_executable(path, &staged)?;
    }
    let (version, warnings) = match super::local::coder_version(&staged) {
        Ok(v) => (v, Vec::new()),
        Err(e) => (
            spec.version.clone(),
            vec![format!(
                "--coder-from: cannot ask the binary its version ({e}); recording the spec's {}",
                spec.version
            )],
        ),
    };
    fetch::check_version(locked, NAME, &version)?;
    Ok(binary(version, staged, artifact, warnings))
}

async fn docs(
    ctx: &Ctx<'_>,
    spec: &CoderSection,
    sums: &[u8],
    sums_url: &Url,
) -> Result<Prepared, SyncError> {
    let locked = ctx.locked.and_then(|l| l.components.docs.as_ref());
    let v = &spec.version;
    let file = format!("coder_docs_{v}.tgz");
    let sha = lookup(sums, &file, Some(sums_url))?;
    fetch::check_artifact(locked, "docs", &file, &sha)?;
    let url = fetch::join(&spec.base_url, &format!("v{v}/{file}"))?;
    let (archive, artifact) =
        fetch::download_capped(ctx, &url, &file, &sha, TarLimits::DOCS.max_total_bytes).await?;
    let staged = ctx.tmp.join("docs");
    let out = staged.clone();
    fetch::blocking(move || Ok(unpack_tar_gz(&archive, &out, true, &TarLimits::DOCS)?)).await?;
    Ok(Prepared {
        component: Component::new(v.clone(), "docs", vec![artifact]),
        moves: vec![Move {
            from: staged,
            to: "docs".into(),
        }],
        warnings: Vec::new(),
    })
}

fn lookup(sums: &[u8], file: &str, sums_url: Option<&Url>) -> Result<String, SyncError> {
    airgap_mirror::sync::shasums_line(sums, file).ok_or_else(|| SyncError::NoChecksum {
        file: file.to_string(),
        sums_url: sums_url.map(Url::to_string).unwrap_or_default(),
    })
}

fn binary(
    version: String,
    staged: std::path::PathBuf,
    artifact: airgap_stage::Artifact,
    warnings: Vec<String>,
) -> Prepared {
    Prepared {
        component: Component::new(version, "bin/coder", vec![artifact]),
        moves: vec![Move {
            from: staged,
            to: "bin/coder".into(),
        }],
        warnings,
    }
}
