//! Opening the files an operator names (bundle, detached signature, keys), which often sit
//! on a transfer medium nobody vouches for. Each is opened without blocking and checked to
//! be a regular file before a byte is read: opening a FIFO would wait forever for a writer,
//! and a link to `/dev/zero` would never end. Small files are read with a size cap.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use crate::error::{BundleError, IoContext, Result};

/// Opens `path` for reading (following links, as a copied bundle may be one) and returns
/// the file and its size, refusing anything but a regular file.
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
        .at(path)?;
    let meta = file.metadata().at(path)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let kind = if kind.is_dir() {
            "directory"
        } else if kind.is_fifo() {
            "FIFO"
        } else if kind.is_char_device() {
            "character device"
        } else if kind.is_block_device() {
            "block device"
        } else if kind.is_socket() {
            "socket"
        } else {
            "special file"
        };
        return Err(BundleError::NotRegularFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    // Regular files ignore O_NONBLOCK, but the descriptor should not carry it further.
    let flags = fcntl(&file, FcntlArg::F_GETFL).map_err(|e| io_error(path, e))?;
    let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
    fcntl(&file, FcntlArg::F_SETFL(flags)).map_err(|e| io_error(path, e))?;
    Ok((file, meta.len()))
}

/// Reads the regular file `path` whole, refusing it with `too_large(size)` when it holds
/// more than `limit` bytes (checked before reading, and again while reading, in case it
/// grows meanwhile).
pub(crate) fn read_limited(
    path: &Path,
    limit: u64,
    too_large: impl Fn(u64) -> BundleError,
) -> Result<Vec<u8>> {
    let (file, size) = open_regular(path)?;
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes).at(path)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_limited`] as UTF-8 text.
pub(crate) fn read_text_limited(
    path: &Path,
    limit: u64,
    too_large: impl Fn(u64) -> BundleError,
) -> Result<String> {
    let bytes = read_limited(path, limit, too_large)?;
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
        .at(path)
}

fn io_error(path: &Path, errno: nix::errno::Errno) -> BundleError {
    BundleError::Io {
        path: path.to_path_buf(),
        cause: std::io::Error::from(errno),
    }
}
