//! A strict, bounded reader for the subset of tar that `pack` writes: regular files,
//! directories and GNU long names. Everything else is refused by name. It exists instead
//! of `tar::Archive` because bundles cross a trust boundary: that reader buffers long-name
//! and pax records of any size, and quietly accepts links and devices.

use std::io::{self, Read};

use crate::error::{BundleError, Result};
use crate::manifest::MAX_PATH_BYTES;

const BLOCK: usize = 512;

/// One archive member's header.
#[derive(Debug)]
pub(crate) enum Header {
    /// A regular file of `size` bytes.
    File { path: String, size: u64 },
    /// A directory.
    Dir { path: String },
    /// The end-of-archive marker.
    End,
}

/// Reads headers and file contents from a decompressed tar stream.
pub(crate) struct TarReader<R> {
    inner: R,
    /// Bytes of the decompressed stream consumed so far (for messages).
    pub offset: u64,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader { inner, offset: 0 }
    }

    /// Reads the next header (following one GNU long name).
    pub fn next_header(&mut self) -> Result<Header> {
        let block = self.read_block()?;
        if block.iter().all(|&b| b == 0) {
            return Ok(Header::End);
        }
        let raw = RawHeader::parse(&block, self.offset)?;
        if raw.kind != b'L' {
            return raw.into_header(None);
        }
        if raw.size > MAX_PATH_BYTES as u64 + 1 {
            return Err(BundleError::UnsafePath {
                path: "<GNU long name>".into(),
                reason: "longer than 4096 bytes",
            });
        }
        let mut name = vec![0u8; raw.size as usize];
        self.read_exact(&mut name)?;
        self.skip_padding(raw.size)?;
        let block = self.read_block()?;
        let next = RawHeader::parse(&block, self.offset)?;
        if next.kind == b'L' {
            return Err(BundleError::Corrupt("two GNU long names in a row".into()));
        }
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        name.truncate(end);
        next.into_header(Some(name))
    }

    /// Streams the content of a file entry of `size` bytes, then skips its padding.
    pub fn content(&mut self, size: u64) -> EntryReader<'_, R> {
        EntryReader {
            tar: self,
            left: size,
            size,
        }
    }

    /// Consumes the rest of the stream; fails on any non-zero byte after the end marker.
    pub fn drain_zeros(&mut self) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match self.inner.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_error(e, self.offset, true)),
            };
            if n == 0 {
                return Ok(());
            }
            if buf[..n].iter().any(|&b| b != 0) {
                return Err(BundleError::TrailingData(format!(
                    "non-zero bytes after the tar end marker at offset {}",
                    self.offset
                )));
            }
            self.offset += n as u64;
        }
    }

    fn read_block(&mut self) -> Result<[u8; BLOCK]> {
        let mut block = [0u8; BLOCK];
        self.read_exact(&mut block)?;
        Ok(block)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner
            .read_exact(buf)
            .map_err(|e| stream_error(e, self.offset, false))?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn skip_padding(&mut self, size: u64) -> Result<()> {
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        let mut buf = [0u8; BLOCK];
        self.read_exact(&mut buf[..pad as usize])
    }
}

/// The content of one file entry; reading past its end returns EOF.
pub(crate) struct EntryReader<'a, R> {
    tar: &'a mut TarReader<R>,
    left: u64,
    size: u64,
}

impl<R: Read> EntryReader<'_, R> {
    /// Reads whatever the consumer left unread, then the block padding.
    pub fn finish(mut self) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        while self.left > 0 {
            let n = self
                .read(&mut buf)
                .map_err(|e| stream_error(e, self.tar.offset, false))?;
            if n == 0 {
                return Err(BundleError::Truncated {
                    detail: format!("inside an entry at offset {}", self.tar.offset),
                });
            }
        }
        self.tar.skip_padding(self.size)
    }
}

impl<R: Read> Read for EntryReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.tar.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside an entry",
            ));
        }
        self.left -= n as u64;
        self.tar.offset += n as u64;
        Ok(n)
    }
}

/// Maps a decompression error to the bundle error an operator understands.
pub(crate) fn stream_error(e: io::Error, offset: u64, after_end: bool) -> BundleError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => BundleError::Truncated {
            detail: format!("stream ends at offset {offset}"),
        },
        _ if after_end => BundleError::TrailingData(format!("{e}")),
        _ => BundleError::Corrupt(format!("{e} (near uncompressed offset {offset})")),
    }
}

struct RawHeader {
    name: Vec<u8>,
    kind: u8,
    size: u64,
}

impl RawHeader {
    fn parse(block: &[u8; BLOCK], offset: u64) -> Result<RawHeader> {
        let stored =
            parse_octal(&block[148..156]).ok_or_else(|| corrupt(offset, "bad checksum field"))?;
        let sum: u64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if sum != stored {
            return Err(corrupt(offset, "header checksum mismatch"));
        }
        let size = parse_size(&block[124..136]).ok_or_else(|| corrupt(offset, "bad size field"))?;
        let mut name = cstr(&block[0..100]).to_vec();
        if &block[257..263] == b"ustar\0" {
            let prefix = cstr(&block[345..500]);
            if !prefix.is_empty() {
                let mut full = prefix.to_vec();
                full.push(b'/');
                full.extend_from_slice(&name);
                name = full;
            }
        }
        Ok(RawHeader {
            name,
            kind: block[156],
            size,
        })
    }

    fn into_header(self, long_name: Option<Vec<u8>>) -> Result<Header> {
        let name = long_name.unwrap_or(self.name);
        let path = String::from_utf8(name).map_err(|e| BundleError::UnsafePath {
            path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            reason: "not UTF-8",
        })?;
        let forbidden = |kind| {
            Err(BundleError::ForbiddenEntryType {
                path: path.clone(),
                kind,
            })
        };
        match self.kind {
            b'0' | 0 => Ok(Header::File {
                path,
                size: self.size,
            }),
            b'5' => Ok(Header::Dir {
                path: path.strip_suffix('/').unwrap_or(&path).to_string(),
            }),
            b'1' => forbidden("hard link"),
            b'2' => forbidden("symlink"),
            b'3' => forbidden("character device"),
            b'4' => forbidden("block device"),
            b'6' => forbidden("FIFO"),
            b'7' => forbidden("contiguous file"),
            b'x' | b'g' => forbidden("pax extended header"),
            b'K' => forbidden("GNU long link name"),
            b'S' => forbidden("sparse file"),
            _ => forbidden("entry of unknown type"),
        }
    }
}

fn corrupt(offset: u64, what: &str) -> BundleError {
    BundleError::Corrupt(format!(
        "{what} in tar header at uncompressed offset {offset}"
    ))
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(cstr(field))
        .ok()?
        .trim_matches(|c| c == ' ' || c == '\0');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// Octal, or GNU base-256 (high bit set) for sizes of 8 GiB and more.
fn parse_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 == 0 {
        return parse_octal(field);
    }
    if field[0] != 0x80 || field[1..4].iter().any(|&b| b != 0) {
        return None;
    }
    Some(
        field[4..]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    )
}
