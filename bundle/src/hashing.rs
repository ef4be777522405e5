//! Readers and writers that hash what passes through them, and parallel file hashing.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result};
use crate::signature::Prehash;
use crate::Progress;

/// A reader that computes sha256 and counts bytes of everything read through it.
pub(crate) struct Sha256Reader<'a, R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    progress: &'a dyn Progress,
}

impl<'a, R: Read> Sha256Reader<'a, R> {
    pub fn new(inner: R, progress: &'a dyn Progress) -> Self {
        Sha256Reader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            progress,
        }
    }

    /// Bytes read and their lower-case hex sha256.
    pub fn finish(self) -> (u64, String) {
        (self.count, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for Sha256Reader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// A reader that counts bytes and reports progress.
pub(crate) struct CountingReader<'a, R> {
    pub inner: R,
    pub count: u64,
    pub progress: &'a dyn Progress,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// A writer that feeds the minisign prehash of everything written and counts it.
pub(crate) struct PrehashWriter<W> {
    pub inner: W,
    pub hash: Prehash,
    pub count: u64,
}

impl<W: Write> Write for PrehashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 of one file, streamed.
pub(crate) fn sha256_file(path: &Path, progress: &dyn Progress) -> Result<(u64, String)> {
    let file = std::fs::File::open(path).at(path)?;
    let mut reader = Sha256Reader::new(file, progress);
    io::copy(&mut reader, &mut io::sink()).at(path)?;
    Ok(reader.finish())
}

/// Size and hex sha256 of one file.
type FileHash = (u64, String);

/// Hashes `paths` on `threads` threads; results in the same order as `paths`.
pub(crate) fn sha256_files(
    paths: &[&Path],
    threads: usize,
    progress: &dyn Progress,
) -> Result<Vec<(u64, String)>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<FileHash>>>> =
        Mutex::new((0..paths.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(i) else { break };
                let result = sha256_file(path, progress);
                let failed = result.is_err();
                if let Ok(mut slots) = results.lock() {
                    slots[i] = Some(result);
                }
                if failed {
                    next.store(paths.len(), Ordering::Relaxed);
                }
            });
        }
    });
    let slots = results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Report the first real failure, not the files skipped because of it.
    let mut out = Vec::with_capacity(slots.len());
    let mut skipped = None;
    for (slot, path) in slots.into_iter().zip(paths) {
        match slot {
            Some(Ok(hash)) => out.push(hash),
            Some(Err(e)) => return Err(e),
            None => skipped = skipped.or(Some(path.to_path_buf())),
        }
    }
    match skipped {
        Some(path) => Err(crate::BundleError::StageChanged { path }),
        None => Ok(out),
    }
}
