//! Reading a bundle across the trust boundary: one pass over the file in bounded memory.
//!
//! A reader thread reads the file and feeds the detached signature's prehash; the calling
//! thread decompresses, checks the manifest's signature before any content is accepted,
//! then checks every entry against the manifest while a [`Sink`] stores or discards it.
//! Any deviation stops the pass with the error that names it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;

use time::OffsetDateTime;

use crate::error::{BundleError, IoContext, Result};
use crate::hashing::Sha256Reader;
use crate::keys::{KeyId, PublicKey};
use crate::manifest::{
    DirEntry, FileEntry, Manifest, MANIFEST_NAME, MANIFEST_SIG_NAME, MAX_MANIFEST_BYTES,
    SHA256SUMS_NAME,
};
use crate::open::{open_regular, read_text_limited};
use crate::pack::signature_path;
use crate::signature::{Prehash, Signature};
use crate::tar_reader::{Header, TarReader};
use crate::Progress;

/// Largest `.minisig` accepted (real ones are ~300 bytes), detached or inside the bundle.
pub const MAX_SIGNATURE_BYTES: u64 = 4096;
const READ_CHUNK: usize = 1 << 20;

/// How strictly to check a bundle.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Accept a bundle whose `expires` has passed.
    pub allow_expired: bool,
    /// The detached signature; default `BUNDLE.minisig`.
    pub signature: Option<PathBuf>,
    /// The time expiry is judged against; default now.
    pub now: Option<OffsetDateTime>,
}

/// A bundle that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its signed manifest.
    pub manifest: Manifest,
    /// The key that signed it.
    pub key_id: KeyId,
    /// Size of the bundle file.
    pub bundle_bytes: u64,
}

/// Where checked entries go: discarded by `verify`, written by `unpack`.
pub(crate) trait Sink {
    /// Called for each directory, in archive order.
    fn dir(&mut self, entry: &DirEntry) -> Result<()>;
    /// Called for each file with its content; the caller hashes what is read.
    fn file(&mut self, entry: &FileEntry, content: &mut dyn Read) -> Result<()>;
}

/// A sink that keeps nothing.
pub(crate) struct Discard;

impl Sink for Discard {
    fn dir(&mut self, _: &DirEntry) -> Result<()> {
        Ok(())
    }
    fn file(&mut self, _: &FileEntry, content: &mut dyn Read) -> Result<()> {
        io::copy(content, &mut io::sink())
            .map(drop)
            .map_err(|e| crate::tar_reader::stream_error(e, 0, false))
    }
}

/// Proves `bundle` is intact and signed by `key`, writing nothing.
pub fn verify(
    bundle: &Path,
    key: &PublicKey,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Verified> {
    read_bundle(bundle, key, opts, progress, &mut Discard)
}

/// The one pass shared by `verify` and `unpack`.
pub(crate) fn read_bundle(
    bundle: &Path,
    key: &PublicKey,
    opts: &VerifyOptions,
    progress: &dyn Progress,
    sink: &mut dyn Sink,
) -> Result<Verified> {
    let sig_path = opts
        .signature
        .clone()
        .unwrap_or_else(|| signature_path(bundle));
    let detached = read_signature(&sig_path)?;
    let what = format!("bundle signature {}", sig_path.display());
    detached.check_key(key, &what)?;

    let (file, bundle_bytes) = open_regular(bundle)?;
    progress.phase("verifying", bundle_bytes);
    let (chunks, reader) = spawn_file_reader(file, bundle.to_path_buf());
    // `check_stream` owns the receiving end; once it returns, success or not, the reader
    // thread stops, and it is always joined: no thread outlives this call.
    let checked = check_stream(chunks, key, opts, progress, sink);
    let hash = reader
        .join()
        .map_err(|_| BundleError::Corrupt("reader thread panicked".into()))?;
    let manifest = checked?;
    detached.verify(key, hash?, &what)?;
    Ok(Verified {
        manifest,
        key_id: key.id,
        bundle_bytes,
    })
}

/// Decompresses and checks everything inside the archive, in order.
fn check_stream(
    chunks: Receiver<Vec<u8>>,
    key: &PublicKey,
    opts: &VerifyOptions,
    progress: &dyn Progress,
    sink: &mut dyn Sink,
) -> Result<Manifest> {
    let decoder = flate2::read::MultiGzDecoder::new(ChannelReader::new(chunks, progress));
    let mut tar = TarReader::new(decoder);
    let manifest = read_manifest(&mut tar, key, opts)?;
    read_entries(&mut tar, &manifest, sink)?;
    tar.drain_zeros()?;
    Ok(manifest)
}

/// Reads only the manifest, without any signature check: for `inspect` without a key, and
/// for install's early refusals (sequence, disk). Nothing it returns may name, create or
/// delete a path, and its strings must be shown through [`crate::escape::Escaped`]. Its
/// names are not checked ([`crate::names`]), so that `inspect` can show what a hostile
/// bundle claims.
pub fn read_manifest_unverified(bundle: &Path) -> Result<Manifest> {
    let (file, _) = open_regular(bundle)?;
    let mut tar = TarReader::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(file)));
    let bytes = read_small(&mut tar, 0, MANIFEST_NAME, MAX_MANIFEST_BYTES)?;
    Manifest::from_bytes(&bytes)
}

/// Reads the detached signature: a regular file of at most [`MAX_SIGNATURE_BYTES`].
fn read_signature(path: &Path) -> Result<Signature> {
    let too_large = |size| BundleError::SignatureTooLarge {
        path: path.to_path_buf(),
        size,
        limit: MAX_SIGNATURE_BYTES,
    };
    let text = match read_text_limited(path, MAX_SIGNATURE_BYTES, too_large) {
        Err(BundleError::Io { cause, .. }) if cause.kind() == io::ErrorKind::NotFound => {
            return Err(BundleError::MissingSignature {
                path: path.to_path_buf(),
            })
        }
        other => other?,
    };
    Signature::parse(&text, &path.display().to_string())
}

/// Entries 0-2: the manifest, its signature (checked here), and SHA256SUMS.
fn read_manifest<R: Read>(
    tar: &mut TarReader<R>,
    key: &PublicKey,
    opts: &VerifyOptions,
) -> Result<Manifest> {
    let bytes = read_small(tar, 0, MANIFEST_NAME, MAX_MANIFEST_BYTES)?;
    let sig_text = read_small(tar, 1, MANIFEST_SIG_NAME, MAX_SIGNATURE_BYTES)?;
    let sig_text = String::from_utf8(sig_text).map_err(|_| BundleError::MalformedSignature {
        what: MANIFEST_SIG_NAME.into(),
    })?;
    let sig = Signature::parse(&sig_text, MANIFEST_SIG_NAME)?;
    sig.verify(key, Prehash::of(&bytes), MANIFEST_NAME)?;
    let manifest = Manifest::from_bytes(&bytes)?;
    crate::names::check_manifest(&manifest)?;
    check_expiry(&manifest, opts)?;
    let sums = manifest.sha256sums();
    let found = read_small(tar, 2, SHA256SUMS_NAME, sums.len() as u64)?;
    if found != sums.as_bytes() {
        return Err(BundleError::HashMismatch {
            path: SHA256SUMS_NAME.into(),
            expected: "the checksums listed in the signed manifest".into(),
            actual: "different content".into(),
        });
    }
    Ok(manifest)
}

fn check_expiry(manifest: &Manifest, opts: &VerifyOptions) -> Result<()> {
    let now = opts.now.unwrap_or_else(OffsetDateTime::now_utc);
    if now > manifest.expires && !opts.allow_expired {
        let fmt = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        return Err(BundleError::Expired {
            expires: fmt(manifest.expires),
            now: fmt(now),
        });
    }
    Ok(())
}

/// Reads the metadata entry at `index`, which must be the file `name` of at most `limit` bytes.
fn read_small<R: Read>(
    tar: &mut TarReader<R>,
    index: usize,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>> {
    let misplaced = |found: String| BundleError::MisplacedEntry {
        index,
        found,
        expected: name.into(),
    };
    let size = match tar.next_header()? {
        Header::File { path, size } if path == name => size,
        Header::File { path, .. } | Header::Dir { path } => return Err(misplaced(path)),
        Header::End => return Err(misplaced("end of archive".into())),
    };
    if size > limit {
        return Err(match index {
            0 => BundleError::ManifestTooLarge { size, limit },
            _ => BundleError::SizeMismatch {
                path: name.into(),
                expected: limit,
                actual: size,
            },
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    let mut content = tar.content(size);
    content
        .read_to_end(&mut bytes)
        .map_err(|e| crate::tar_reader::stream_error(e, 0, false))?;
    content.finish()?;
    Ok(bytes)
}

enum Listed<'m> {
    Dir(&'m DirEntry),
    File(&'m FileEntry),
}

/// Every entry after the metadata: listed, unique, the right kind, size and hash.
fn read_entries<R: Read>(
    tar: &mut TarReader<R>,
    manifest: &Manifest,
    sink: &mut dyn Sink,
) -> Result<()> {
    let mut listed: HashMap<&str, Listed> = manifest
        .directories
        .iter()
        .map(|d| (d.path.as_str(), Listed::Dir(d)))
        .collect();
    listed.extend(
        manifest
            .files
            .iter()
            .map(|f| (f.path.as_str(), Listed::File(f))),
    );
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let header = tar.next_header()?;
        let path = match &header {
            Header::End => break,
            Header::File { path, .. } | Header::Dir { path } => path.clone(),
        };
        crate::manifest::check_path(&path)?;
        if !seen.insert(path.clone()) {
            return Err(BundleError::DuplicateEntry { path });
        }
        match (header, listed.get(path.as_str())) {
            (Header::Dir { .. }, Some(Listed::Dir(dir))) => sink.dir(dir)?,
            (Header::File { size, .. }, Some(Listed::File(file))) => {
                read_file(tar, file, size, sink)?
            }
            _ => return Err(BundleError::UnexpectedEntry { path }),
        }
    }
    let mut all = manifest
        .directories
        .iter()
        .map(|d| &d.path)
        .chain(manifest.files.iter().map(|f| &f.path));
    match all.find(|p| !seen.contains(p.as_str())) {
        Some(missing) => Err(BundleError::MissingEntry {
            path: missing.clone(),
        }),
        None => Ok(()),
    }
}

fn read_file<R: Read>(
    tar: &mut TarReader<R>,
    file: &FileEntry,
    size: u64,
    sink: &mut dyn Sink,
) -> Result<()> {
    if size != file.size {
        return Err(BundleError::SizeMismatch {
            path: file.path.clone(),
            expected: file.size,
            actual: size,
        });
    }
    let mut content = tar.content(size);
    let mut guarded = StreamErrors {
        inner: &mut content,
        first: None,
    };
    let mut hashed = Sha256Reader::new(&mut guarded, &());
    let stored = sink.file(file, &mut hashed).and_then(|()| {
        io::copy(&mut hashed, &mut io::sink())
            .map(drop)
            .map_err(|e| crate::tar_reader::stream_error(e, 0, false))
    });
    let (_, sha256) = hashed.finish();
    // A damaged stream surfaces inside the sink as an I/O error; name the real cause.
    if let Some(e) = guarded.first.take() {
        return Err(crate::tar_reader::stream_error(e, 0, false));
    }
    stored?;
    content.finish()?;
    if sha256 != file.sha256 {
        return Err(BundleError::HashMismatch {
            path: file.path.clone(),
            expected: file.sha256.clone(),
            actual: sha256,
        });
    }
    Ok(())
}

/// Remembers the first error of the archive stream, so it is not mistaken for an error
/// of the sink that was reading from it.
struct StreamErrors<R> {
    inner: R,
    first: Option<io::Error>,
}

impl<R: Read> Read for StreamErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if self.first.is_none() {
                self.first = Some(io::Error::new(e.kind(), e.to_string()));
            }
        })
    }
}

/// Reads `file` on its own thread in 1 MiB chunks, hashing them for the detached
/// signature; the chunks arrive through a small bounded channel.
fn spawn_file_reader(
    mut file: File,
    path: PathBuf,
) -> (Receiver<Vec<u8>>, JoinHandle<Result<Prehash>>) {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
    let handle = std::thread::spawn(move || {
        let mut hash = Prehash::default();
        loop {
            let mut buf = vec![0u8; READ_CHUNK];
            let n = read_full(&mut file, &mut buf).at(&path)?;
            if n == 0 {
                return Ok(hash);
            }
            buf.truncate(n);
            hash.update(&buf);
            if tx.send(buf).is_err() {
                return Ok(hash);
            }
        }
    });
    (rx, handle)
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `Read` over chunks arriving on a channel; EOF when the sender is done.
struct ChannelReader<'p> {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    progress: &'p dyn Progress,
}

impl<'p> ChannelReader<'p> {
    fn new(rx: Receiver<Vec<u8>>, progress: &'p dyn Progress) -> Self {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
            progress,
        }
    }
}

impl Read for ChannelReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.progress.advance(chunk.len() as u64);
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
