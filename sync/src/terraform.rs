//! Terraform from the HashiCorp releases layout (`BASE/terraform/V/…`), checked against
//! the SHA256SUMS signed by the pinned release key; or from a local zip or binary.

use std::path::Path;

use airgap_mirror::Platform;

use super::error::SyncError;
use super::fetch::{self, Ctx, Prepared};
use super::spec::TerraformSection;
use super::stagefs::{self, Move};
use airgap_stage::Component;

const NAME: &str = "terraform";
const FIELD: &str = "terraform";
/// Size cap of the release zip (about 25 MiB today).
const MAX_ZIP_BYTES: u64 = 512 * 1024 * 1024;

/// Fetches, verifies and prepares `bin/terraform`.
pub async fn prepare(
    ctx: &Ctx<'_>,
    spec: &TerraformSection,
    platform: &Platform,
    from: Option<&Path>,
) -> Result<Prepared, SyncError> {
    let locked = ctx.locked.map(|l| &l.components.terraform);
    if let Some(path) = from {
        return local(ctx, spec, path, locked);
    }
    fetch::check_version(locked, NAME, &spec.version)?;
    let v = &spec.version;
    let dir = format!("terraform/{v}");
    let sums_name = format!("terraform_{v}_SHA256SUMS");
    let sums_url = fetch::join(&spec.base_url, &format!("{dir}/{sums_name}"))?;
    let (sums, _) = ctx.fetcher.get_bytes(&sums_url).await?;
    let (sig, sig_url) = signature(ctx, &spec.base_url, &dir, &sums_name).await?;
    let key = super::spec::load_key(
        ctx.fetcher,
        spec.key_file.as_deref(),
        spec.key_url.as_deref(),
        NAME,
    )
    .await?;
    fetch::verify_signed(
        NAME,
        (&key.0, &key.1),
        &spec.key_fingerprint,
        FIELD,
        (&sig, &sig_url),
        &sums,
    )?;
    let zip_name = format!("terraform_{v}_{platform}.zip");
    let sha = airgap_mirror::sync::shasums_line(&sums, &zip_name).ok_or_else(|| {
        SyncError::NoChecksum {
            file: zip_name.clone(),
            sums_url: sums_url.to_string(),
        }
    })?;
    fetch::check_artifact(locked, NAME, &zip_name, &sha)?;
    let zip_url = fetch::join(&spec.base_url, &format!("{dir}/{zip_name}"))?;
    let (zip, artifact) =
        fetch::download_capped(ctx, &zip_url, &zip_name, &sha, MAX_ZIP_BYTES).await?;
    let staged = ctx.tmp.join("terraform");
    let out = staged.clone();
    fetch::blocking(move || stagefs::extract_zip_executable(&zip, "terraform", &out)).await?;
    Ok(prepared(v.clone(), staged, vec![artifact], Vec::new()))
}

/// The detached signature: the current `.72D7468F.sig`, else the legacy `.sig`.
async fn signature(
    ctx: &Ctx<'_>,
    base: &str,
    dir: &str,
    sums_name: &str,
) -> Result<(Vec<u8>, String), SyncError> {
    for suffix in ["72D7468F.sig", "sig"] {
        let url = fetch::join(base, &format!("{dir}/{sums_name}.{suffix}"))?;
        if let Some(bytes) = fetch::get_optional(ctx.fetcher, &url).await? {
            return Ok((bytes, url.to_string()));
        }
    }
    Err(SyncError::Missing {
        what: NAME,
        message: format!("{base}/{dir}/ publishes neither {sums_name}.72D7468F.sig nor {sums_name}.sig: refusing an unsigned release"),
    })
}

/// `--terraform-from`: a release zip or the bare binary.
fn local(
    ctx: &Ctx<'_>,
    spec: &TerraformSection,
    path: &Path,
    locked: Option<&Component>,
) -> Result<Prepared, SyncError> {
    let artifact = fetch::local_artifact(path)?;
    fetch::check_artifact(locked, NAME, &artifact.file, &artifact.sha256)?;
    let staged = ctx.tmp.join("terraform");
    if stagefs::has_magic(path, b"PK\x03\x04")? {
        stagefs::extract_zip_executable(path, "terraform", &staged)?;
    } else {
        stagefs::copy_executable(path, &staged)?;
    }
    let (version, warnings) = match super::local::terraform_version(&staged) {
        Ok(v) => (v, Vec::new()),
        Err(e) => (
            spec.version.clone(),
            vec![format!("--terraform-from: cannot ask the binary its version ({e}); recording the spec's {}", spec.version)],
        ),
    };
    fetch::check_version(locked, NAME, &version)?;
    Ok(prepared(version, staged, vec![artifact], warnings))
}

fn prepared(
    version: String,
    staged: std::path::PathBuf,
    artifacts: Vec<airgap_stage::Artifact>,
    warnings: Vec<String>,
) -> Prepared {
    Prepared {
        component: Component::new(version, "bin/terraform", artifacts),
        moves: vec![Move {
            from: staged,
            to: "bin/terraform".into(),
        }],
        warnings,
    }
}
