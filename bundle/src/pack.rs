//! `pack`: a stage directory becomes one reproducible, signed `.tar.gz`.
//!
//! Two passes over the stage: hash every file (in parallel) so the manifest can be the
//! first entry, then stream every file into the archive, re-hashing to catch a stage that
//! changed in between. The bundle and its `.minisig` are written to temporary files and
//! renamed into place only when complete.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::error::{BundleError, IoContext, Result};
use crate::hashing::{sha256_files, CountingReader, PrehashWriter};
use crate::keys::SecretKey;
use crate::manifest::{
    Component, DirEntry, FileEntry, Manifest, FORMAT_VERSION, MANIFEST_NAME, MANIFEST_SIG_NAME,
    SHA256SUMS_NAME,
};
use crate::parallel_gzip::ParallelGzWriter;
use crate::signature::{sign_prehash, sign_reader, Prehash};
use crate::stage::{scan, unchanged, StageEntry};
use crate::Progress;

/// What to write into the manifest, beyond what the stage itself says.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Bundle name.
    pub name: String,
    /// Bundle version; default: the created date (`YYYY.MM.DD`).
    pub version: Option<String>,
    /// Sequence number; default: the created time in Unix seconds, which only grows.
    pub sequence: Option<u64>,
    /// Days from `created` until the bundle expires.
    pub expires_in_days: u32,
    /// Target platform; default `linux_amd64`.
    pub platform: Option<String>,
    /// Creation time; default: the newest modification time in the stage, so the same
    /// stage packs to the same bytes (set it from `SOURCE_DATE_EPOCH` to pin it).
    pub created: Option<OffsetDateTime>,
    /// Compression and hashing threads; default: every core.
    pub threads: Option<usize>,
    /// The components the manifest lists (their versions and stage paths), from the
    /// caller's reading of the stage contract; the bundle crate never reads the lock itself.
    pub components: std::collections::BTreeMap<String, Component>,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            name: "coder-airgap".into(),
            version: None,
            sequence: None,
            expires_in_days: 90,
            platform: None,
            created: None,
            threads: None,
            components: Default::default(),
        }
    }
}

/// What `pack` wrote.
#[derive(Debug)]
pub struct PackSummary {
    /// The manifest inside the bundle.
    pub manifest: Manifest,
    /// The bundle file.
    pub bundle: PathBuf,
    /// Its detached minisign signature.
    pub signature: PathBuf,
    /// Size of the bundle file in bytes.
    pub bundle_bytes: u64,
}

/// Packs `stage` into `out` (and `out.minisig`), signed with `key`.
pub fn pack(
    stage: &Path,
    key: &SecretKey,
    out: &Path,
    opts: &PackOptions,
    progress: &dyn Progress,
) -> Result<PackSummary> {
    let threads = opts.threads.unwrap_or_else(default_threads);
    let (entries, newest) = scan(stage)?;
    let files: Vec<&StageEntry> = entries.iter().filter(|e| e.size.is_some()).collect();
    if files.is_empty() {
        return Err(BundleError::Stage {
            path: stage.to_path_buf(),
            reason:
                "has no files: not a stage made by `coder-airgap sync` (run sync --out STAGE first)"
                    .into(),
        });
    }
    let total: u64 = files.iter().filter_map(|f| f.size).sum();

    progress.phase("hashing", total);
    let paths: Vec<&Path> = files.iter().map(|f| f.abs.as_path()).collect();
    let hashes = sha256_files(&paths, threads, progress)?;

    let created = opts.created.unwrap_or_else(|| OffsetDateTime::from(newest));
    // Whole seconds: tar mtimes have no finer resolution, and the manifest reads better.
    let created = created.replace_nanosecond(0).unwrap_or(created);
    if opts.created.is_none() {
        refuse_past_expiry(stage, created, opts.expires_in_days)?;
    }
    let manifest = build_manifest(&entries, &hashes, created, opts)?;
    // The same rules every reader applies: never sign what verify would refuse.
    crate::names::check_manifest(&manifest)?;
    let manifest_bytes = manifest.to_bytes()?;
    let manifest_sig = sign_reader(
        key,
        &manifest_bytes[..],
        &trusted_comment(&manifest, MANIFEST_NAME),
    )
    .at(stage)?;

    progress.phase("packing", total);
    let mtime = created.unix_timestamp().max(0) as u64;
    let (hash, count) = airgap_fsutil::atomic_write_with(out, 0o644, |file| {
        let sink = PrehashWriter {
            inner: BufWriter::with_capacity(1 << 20, file.try_clone().at(out)?),
            hash: Prehash::default(),
            count: 0,
        };
        let mut tar = tar::Builder::new(ParallelGzWriter::new(sink, threads));
        append_bytes(&mut tar, MANIFEST_NAME, &manifest_bytes, mtime).at(out)?;
        append_bytes(&mut tar, MANIFEST_SIG_NAME, manifest_sig.as_bytes(), mtime).at(out)?;
        append_bytes(
            &mut tar,
            SHA256SUMS_NAME,
            manifest.sha256sums().as_bytes(),
            mtime,
        )
        .at(out)?;
        append_stage(&mut tar, &entries, &manifest, mtime, progress, out)?;
        let gz = tar.into_inner().at(out)?;
        let mut sink = gz.finish().at(out)?;
        sink.flush().at(out)?;
        let PrehashWriter { inner, hash, count } = sink;
        drop(inner);
        Ok::<_, BundleError>((hash, count))
    })?;

    let signature = signature_path(out);
    let bundle_sig = sign_prehash(key, hash, &trusted_comment(&manifest, &file_name(out)));
    airgap_fsutil::atomic_write(&signature, bundle_sig.as_bytes())?;
    Ok(PackSummary {
        manifest,
        bundle: out.to_path_buf(),
        signature,
        bundle_bytes: count,
    })
}

/// A creation time taken from the stage's newest file must still leave the bundle valid
/// now: an old (or empty-dated) stage would otherwise be signed already expired. An
/// explicit creation time is the caller's choice (reproducible builds, tests).
fn refuse_past_expiry(stage: &Path, created: OffsetDateTime, days: u32) -> Result<()> {
    let expires = created + time::Duration::days(i64::from(days));
    if expires > OffsetDateTime::now_utc() {
        return Ok(());
    }
    Err(BundleError::Stage {
        path: stage.to_path_buf(),
        reason: format!(
            "its newest file dates from {}, so the bundle would have expired on {} ({days} days later), before it was made: re-run sync to refresh the stage, or give the creation time explicitly (--source-date-epoch)",
            created.date(),
            expires.date()
        ),
    })
}

/// `BUNDLE.minisig`, the detached signature's conventional path.
pub fn signature_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

fn build_manifest(
    entries: &[StageEntry],
    hashes: &[(u64, String)],
    created: OffsetDateTime,
    opts: &PackOptions,
) -> Result<Manifest> {
    let mut hashes = hashes.iter();
    let mut directories = Vec::new();
    let mut files = Vec::new();
    for entry in entries {
        match entry.size {
            None => directories.push(DirEntry {
                path: entry.rel.clone(),
                mode: entry.mode,
            }),
            Some(_) => {
                let (size, sha256) =
                    hashes
                        .next()
                        .cloned()
                        .ok_or_else(|| BundleError::StageChanged {
                            path: entry.abs.clone(),
                        })?;
                files.push(FileEntry {
                    path: entry.rel.clone(),
                    size,
                    sha256,
                    mode: entry.mode,
                });
            }
        }
    }
    let date = created.date();
    Ok(Manifest {
        format: FORMAT_VERSION,
        name: opts.name.clone(),
        version: opts.version.clone().unwrap_or_else(|| {
            format!(
                "{}.{:02}.{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            )
        }),
        sequence: opts
            .sequence
            .unwrap_or(created.unix_timestamp().max(0) as u64),
        created,
        expires: created + time::Duration::days(i64::from(opts.expires_in_days)),
        platform: opts
            .platform
            .clone()
            .unwrap_or_else(|| "linux_amd64".into()),
        components: opts.components.clone(),
        directories,
        files,
    })
}

fn trusted_comment(manifest: &Manifest, file: &str) -> String {
    format!(
        "coder-airgap bundle {} {} sequence {} file:{}",
        manifest.name, manifest.version, manifest.sequence, file
    )
}

fn header(kind: tar::EntryType, size: u64, mode: u32, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    mtime: u64,
) -> std::io::Result<()> {
    let mut h = header(tar::EntryType::Regular, bytes.len() as u64, 0o644, mtime);
    tar.append_data(&mut h, name, bytes)
}

fn append_stage<W: Write>(
    tar: &mut tar::Builder<W>,
    entries: &[StageEntry],
    manifest: &Manifest,
    mtime: u64,
    progress: &dyn Progress,
    out: &Path,
) -> Result<()> {
    let mut files = manifest.files.iter();
    for entry in entries {
        let Some(size) = entry.size else {
            let mut h = header(tar::EntryType::Directory, 0, entry.mode, mtime);
            tar.append_data(&mut h, format!("{}/", entry.rel), std::io::empty())
                .at(out)?;
            continue;
        };
        let expected = files.next().ok_or_else(|| BundleError::StageChanged {
            path: entry.abs.clone(),
        })?;
        // Hashes come from the first pass; a file rewritten since then shows in its size or
        // mtime (re-hashing here would cost the compressors a core).
        let file = File::open(&entry.abs).at(&entry.abs)?;
        let meta = file.metadata().at(&entry.abs)?;
        if !unchanged(entry, &meta) || expected.size != size {
            return Err(BundleError::StageChanged {
                path: entry.abs.clone(),
            });
        }
        let mut reader = CountingReader {
            inner: file.take(size),
            count: 0,
            progress,
        };
        let mut h = header(tar::EntryType::Regular, size, entry.mode, mtime);
        tar.append_data(&mut h, &entry.rel, &mut reader).at(out)?;
        if reader.count != size {
            return Err(BundleError::StageChanged {
                path: entry.abs.clone(),
            });
        }
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &Path) -> SecretKey {
        let generated = crate::keys::generate(&dir.join("keys"), None).expect("keygen");
        SecretKey::from_file(&generated.secret, None).expect("secret key")
    }

    #[test]
    fn a_stage_without_files_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stage = dir.path().join("stage");
        std::fs::create_dir_all(stage.join("bin")).expect("mkdir");
        let out = dir.path().join("b.tar.gz");
        let err = pack(&stage, &key(dir.path()), &out, &PackOptions::default(), &())
            .expect_err("empty stage");
        assert!(err.to_string().contains("has no files"), "{err}");
        assert!(!out.exists());
    }

    #[test]
    fn an_expiry_in_the_past_is_refused_only_when_the_date_comes_from_the_stage() {
        let stage = Path::new("/stage");
        let old = OffsetDateTime::now_utc() - time::Duration::days(100);
        let err = refuse_past_expiry(stage, old, 90).expect_err("expired");
        assert!(err.to_string().contains("would have expired"), "{err}");
        assert!(refuse_past_expiry(stage, old, 101).is_ok());
        let epoch = OffsetDateTime::UNIX_EPOCH;
        assert!(
            refuse_past_expiry(stage, epoch, 90).is_err(),
            "the 1970 bundle"
        );
    }
}
