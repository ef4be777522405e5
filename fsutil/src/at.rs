//! Durable replacement through an open directory handle, for root working in a tree
//! another user can change: the file is named relative to the handle (one name, never a
//! path), created under a fresh temporary name with `O_CREAT | O_EXCL | O_NOFOLLOW`,
//! filled, fsynced, given its owner and mode through the open file, renamed over the name
//! relative to the handle, and the directory fsynced. No link is ever followed.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid, UnlinkatFlags};

use crate::{Step, WriteError};

/// Who a file is given to (through the open file, before it becomes visible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// An open directory and the path it was reached by (for messages only: nothing is
/// resolved through the path).
#[derive(Debug, Clone, Copy)]
pub struct DirAt<'a> {
    /// The directory handle.
    pub fd: BorrowedFd<'a>,
    /// The path it was reached by.
    pub path: &'a Path,
}

impl<'a> DirAt<'a> {
    /// The directory `fd`, reached by `path`.
    pub fn new(fd: &'a impl AsFd, path: &'a Path) -> DirAt<'a> {
        DirAt {
            fd: fd.as_fd(),
            path,
        }
    }
}

/// Replaces the file `name` (a plain name, no separator) in `dir` with what `fill` writes,
/// with `mode` and, when given, `owner`; returns what `fill` returns. On failure the
/// temporary file is removed and `name` is left as it was.
pub fn atomic_write_at<T, E: From<WriteError>>(
    dir: DirAt<'_>,
    name: &str,
    mode: u32,
    owner: Option<Owner>,
    fill: impl FnOnce(&mut File) -> Result<T, E>,
) -> Result<T, E> {
    let path = dir.path.join(name);
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(WriteError::new(
            &path,
            Step::CreateTemporary,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a plain file name"),
        )
        .into());
    }
    let tmp = temp_name(name);
    // Left by a killed writer that had our pid; no live process uses the name.
    let _ = nix::unistd::unlinkat(dir.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(dir.fd, tmp.as_str(), flags, Mode::from_bits_truncate(0o600))
        .map_err(errno(dir.path, Step::CreateTemporary))?;
    let mut file = File::from(fd);
    let written = fill(&mut file).and_then(|value| {
        finish(dir, &file, &tmp, name, &path, mode, owner)?;
        Ok(value)
    });
    if written.is_err() {
        let _ = nix::unistd::unlinkat(dir.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    }
    let value = written?;
    sync_dir_at(dir)?;
    Ok(value)
}

/// Fsyncs, chowns and chmods the filled temporary file, then renames it over `name`.
fn finish(
    dir: DirAt<'_>,
    file: &File,
    tmp: &str,
    name: &str,
    path: &Path,
    mode: u32,
    owner: Option<Owner>,
) -> Result<(), WriteError> {
    file.sync_all()
        .map_err(|source| WriteError::new(path, Step::SyncFile, source))?;
    if let Some(owner) = owner {
        nix::unistd::fchown(
            file,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
        )
        .map_err(errno(path, Step::SetOwner))?;
    }
    nix::sys::stat::fchmod(file, Mode::from_bits_truncate(mode))
        .map_err(errno(path, Step::SetMode))?;
    nix::fcntl::renameat(dir.fd, tmp, dir.fd, name).map_err(errno(path, Step::Rename))
}

/// Fsyncs the directory `dir`, so renames in it survive a crash.
pub fn sync_dir_at(dir: DirAt<'_>) -> Result<(), WriteError> {
    nix::unistd::fsync(dir.fd).map_err(errno(dir.path, Step::SyncDirectory))
}

fn errno(path: &Path, step: Step) -> impl FnOnce(nix::errno::Errno) -> WriteError + '_ {
    move |e| WriteError::new(path, step, std::io::Error::from(e))
}

/// `.NAME.PID.new`: a temporary sibling no other writer uses.
pub fn temp_name(name: &str) -> String {
    format!(".{name}.{}.new", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::MetadataExt as _;

    fn open_dir(path: &Path) -> std::os::fd::OwnedFd {
        nix::fcntl::openat(
            nix::fcntl::AT_FDCWD,
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .expect("open dir")
    }

    #[test]
    fn replaces_a_link_without_following_it_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"keep").expect("outside");
        let etc = tmp.path().join("etc");
        std::fs::create_dir(&etc).expect("etc");
        std::os::unix::fs::symlink(&outside, etc.join("conf")).expect("link");
        let fd = open_dir(&etc);
        let n = atomic_write_at(DirAt::new(&fd, &etc), "conf", 0o640, None, |f| {
            f.write_all(b"new")
                .map_err(|e| WriteError::new(etc.join("conf"), Step::Write, e))?;
            Ok::<_, WriteError>(3)
        })
        .expect("write");
        assert_eq!(n, 3);
        assert_eq!(std::fs::read(&outside).expect("outside"), b"keep");
        let meta = std::fs::symlink_metadata(etc.join("conf")).expect("meta");
        assert!(meta.file_type().is_file());
        assert_eq!(meta.mode() & 0o777, 0o640);
        assert_eq!(std::fs::read(etc.join("conf")).expect("read"), b"new");
        assert_eq!(std::fs::read_dir(&etc).expect("list").count(), 1);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_removes_the_temporary() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("a"), b"old").expect("seed");
        let fd = open_dir(tmp.path());
        let err = atomic_write_at(DirAt::new(&fd, tmp.path()), "a", 0o644, None, |f| {
            f.write_all(b"half")?;
            Err::<(), _>(std::io::Error::other("disk full"))
        })
        .expect_err("fill fails");
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(tmp.path().join("a")).expect("read"), b"old");
        assert_eq!(std::fs::read_dir(tmp.path()).expect("list").count(), 1);
    }

    #[test]
    fn a_name_with_a_separator_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fd = open_dir(tmp.path());
        for name in ["x/y", "..", ".", ""] {
            let err = atomic_write_at(DirAt::new(&fd, tmp.path()), name, 0o644, None, |_| {
                Ok::<_, WriteError>(())
            })
            .expect_err(name);
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{name}");
        }
    }

    #[test]
    fn the_owner_is_set_through_the_file_or_the_failure_names_the_step() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fd = open_dir(tmp.path());
        let dir = DirAt::new(&fd, tmp.path());
        let write =
            |owner| atomic_write_at(dir, "a", 0o644, Some(owner), |_| Ok::<_, WriteError>(()));
        if Uid::effective().is_root() {
            // Root gives the file away before it becomes visible.
            write(Owner {
                uid: 65534,
                gid: 65534,
            })
            .expect("chown to nobody");
            let meta = std::fs::metadata(tmp.path().join("a")).expect("meta");
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        } else {
            // Anyone else may not give a file to root: the step and the file are named.
            let err = write(Owner { uid: 0, gid: 0 }).expect_err("chown to root");
            assert_eq!(err.step(), Step::SetOwner);
            assert_eq!(err.path(), tmp.path().join("a"));
            assert_eq!(std::fs::read_dir(tmp.path()).expect("list").count(), 0);
        }
    }
}
