//! A gzip writer that compresses on every core and does not spend CPU on bytes that will
//! not shrink. The output is one standard `.tar.gz`: a sequence of gzip members (RFC 1952
//! allows any number; GNU gzip, GNU tar and flate2's `MultiGzDecoder` read them as one
//! stream). Input is cut into fixed-size chunks, each compressed independently at a level
//! chosen from a sample of its own bytes, so the output depends only on the input: the same
//! stage always gives the same bytes, whatever the number of threads.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compression, GzBuilder};

/// Bytes per gzip member. Big enough that the dictionary reset costs well under 1%, small
/// enough that all chunks in flight stay a few MiB.
const CHUNK: usize = 1 << 20;
/// Compression level for data that shrinks (gzip's default).
const LEVEL: u32 = 6;
/// Size of each sample used to judge compressibility, and how many are taken per chunk.
const SAMPLE: usize = 16 * 1024;
const SAMPLES: usize = 4;
/// A chunk whose samples shrink to more than this fraction is stored, not deflated.
const STORE_RATIO: f64 = 0.95;

type Job = (u64, Vec<u8>);

/// Parallel multi-member gzip writer; call [`ParallelGzWriter::finish`] to complete it.
pub struct ParallelGzWriter<W: Write + Send + 'static> {
    buf: Vec<u8>,
    next_seq: u64,
    jobs: Option<SyncSender<Job>>,
    permits: SyncSender<()>,
    workers: Vec<JoinHandle<()>>,
    collector: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> ParallelGzWriter<W> {
    /// Starts `threads` compression workers writing, in order, into `inner`.
    pub fn new(inner: W, threads: usize) -> Self {
        let threads = threads.max(1);
        let max_in_flight = 2 * threads + 1;
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(threads);
        let (done_tx, done_rx) = mpsc::channel::<Job>();
        let (permits_tx, permits_rx) = mpsc::sync_channel::<()>(max_in_flight);
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let workers = (0..threads)
            .map(|_| {
                let jobs = Arc::clone(&jobs_rx);
                let done = done_tx.clone();
                std::thread::spawn(move || compress_worker(&jobs, &done))
            })
            .collect();
        let collector = std::thread::spawn(move || collect_in_order(inner, &done_rx, &permits_rx));
        ParallelGzWriter {
            buf: Vec::with_capacity(CHUNK),
            next_seq: 0,
            jobs: Some(jobs_tx),
            permits: permits_tx,
            workers,
            collector: Some(collector),
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let broken = || io::Error::new(io::ErrorKind::BrokenPipe, "gzip writer stopped");
        // A permit bounds the chunks between here and the output file (memory stays flat).
        self.permits.send(()).map_err(|_| broken())?;
        let jobs = self.jobs.as_ref().ok_or_else(broken)?;
        jobs.send((self.next_seq, chunk)).map_err(|_| broken())?;
        self.next_seq += 1;
        Ok(())
    }

    /// Compresses what is buffered, waits for every worker, and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let submitted = if !self.buf.is_empty() || self.next_seq == 0 {
            self.submit()
        } else {
            Ok(())
        };
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        let collected = match self.collector.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("gzip collector panicked"))),
            None => Err(io::Error::other("gzip writer already finished")),
        };
        // The collector's error explains a broken pipe seen while submitting.
        let inner = collected?;
        submitted?;
        Ok(inner)
    }
}

impl<W: Write + Send + 'static> Write for ParallelGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.submit()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn compress_worker(jobs: &Mutex<Receiver<Job>>, done: &mpsc::Sender<Job>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, chunk)) = job else { return };
        let member = gzip_member(&chunk, level_for(&chunk));
        if done.send((seq, member)).is_err() {
            return;
        }
    }
}

fn collect_in_order<W: Write>(
    mut out: W,
    done: &Receiver<Job>,
    permits: &Receiver<()>,
) -> io::Result<W> {
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    for (seq, member) in done {
        pending.insert(seq, member);
        while let Some(member) = pending.remove(&next) {
            out.write_all(&member)?;
            let _ = permits.recv();
            next += 1;
        }
    }
    out.flush()?;
    Ok(out)
}

/// One complete gzip member holding `data` (fixed header: no name, mtime 0, OS Unix).
fn gzip_member(data: &[u8], level: u32) -> Vec<u8> {
    let capacity = data.len() + data.len() / 100 + 64;
    let mut enc = GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(Vec::with_capacity(capacity), Compression::new(level));
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Level 0 (stored) for chunks that samples show will not shrink, [`LEVEL`] otherwise.
fn level_for(chunk: &[u8]) -> u32 {
    if chunk.len() <= SAMPLE * SAMPLES {
        return LEVEL;
    }
    let stride = (chunk.len() - SAMPLE) / (SAMPLES - 1);
    let mut raw = 0usize;
    let mut packed = 0usize;
    for i in 0..SAMPLES {
        let sample = &chunk[i * stride..i * stride + SAMPLE];
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), Compression::fast());
        let _ = enc.write_all(sample);
        packed += enc.finish().map(|v| v.len()).unwrap_or(SAMPLE);
        raw += SAMPLE;
    }
    if packed as f64 > raw as f64 * STORE_RATIO {
        0
    } else {
        LEVEL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut w = ParallelGzWriter::new(Vec::new(), threads);
        w.write_all(data).expect("write");
        w.finish().expect("finish")
    }

    #[test]
    fn output_is_standard_and_independent_of_threads() {
        let mut data = Vec::new();
        for i in 0..3_000_000u32 {
            data.extend_from_slice(&(i % 977).to_le_bytes());
        }
        let a = roundtrip(&data, 1);
        let b = roundtrip(&data, 4);
        assert_eq!(a, b, "output must not depend on thread count");
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&a[..])
            .read_to_end(&mut back)
            .expect("decode");
        assert_eq!(back, data);
        assert!(a.len() < data.len() / 4, "compressible data must shrink");
    }

    #[test]
    fn incompressible_chunks_are_stored() {
        // xorshift noise does not compress; stored output is barely larger than input.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let data: Vec<u8> = (0..3 * CHUNK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(level_for(&data[..CHUNK]), 0);
        let out = roundtrip(&data, 2);
        assert!(out.len() < data.len() + data.len() / 100);
    }
}
