//! Directory handles for everything root does under ROOT.
//!
//! `install`, `rollback` and `up` run as root over a tree the service user partly owns, so
//! root never resolves a path through a directory the service user can change. ROOT is
//! opened once; every directory below it is opened relative to its parent's handle with
//! `O_NOFOLLOW | O_DIRECTORY` (one name at a time, never a path with separators), and
//! every directory root writes into is checked to belong to root and to be writable by
//! nobody else. Files are replaced through [`airgap_fsutil::at`]: created under a fresh
//! temporary name with `O_CREAT | O_EXCL | O_NOFOLLOW`, synced, given their owner and mode
//! through the open file, renamed into place relative to the handle and the directory synced. A symbolic
//! link where a directory or file is expected is refused, never followed.
//!
//! See [`crate::layout`] for which directories are root's and which the
//! service user's.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags};

use airgap_fsutil::{Step, WriteError};

/// Errors from a directory-handle operation; each names the path and, where the tree is
/// wrong, the command that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum RootDirError {
    /// A system call failed.
    #[error("cannot {what} {path}: {cause}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
    /// A symbolic link (or another non-directory) stands where a directory belongs.
    #[error("{path} is a symbolic link or not a directory; root follows no links under the appliance root: remove it (rm {path}) and re-run")]
    NotADirectory {
        /// The entry.
        path: PathBuf,
    },
    /// A symbolic link or special file stands where a regular file belongs.
    #[error("{path} is a symbolic link or not a regular file; remove it (rm {path}) and re-run")]
    NotAFile {
        /// The entry.
        path: PathBuf,
    },
    /// A directory root writes into belongs to someone else or is writable by others.
    #[error("{path} is owned by uid {uid} with mode {mode:o}, so someone other than {owner} can change it (a tree from an older install?); fix: chown {owner}:{owner} {path} && chmod 755 {path}")]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Its permission bits.
        mode: u32,
        /// Who must own it (`root`, or the uid of a non-root install).
        owner: String,
    },
    /// A file is larger than the caller accepts.
    #[error("{path} is larger than {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A name holds a separator or is `.`/`..`.
    #[error("{name:?} is not a plain file name")]
    BadName {
        /// The name.
        name: String,
    },
    /// A file could not be replaced durably (names the path and the step).
    #[error(transparent)]
    Write(#[from] airgap_fsutil::WriteError),
}

type Result<T> = std::result::Result<T, RootDirError>;

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> RootDirError + 'a {
    move |e| RootDirError::Io {
        what,
        path: path.to_path_buf(),
        cause: std::io::Error::from(e),
    }
}

/// Who a file or directory is given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// An open directory under ROOT, with the path it was reached by (for messages only:
/// nothing is ever resolved through `path`).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// The owner required of every directory root writes into (root, or the invoking
    /// user for an install that does not run as root).
    admin: u32,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl Dir {
    /// Opens ROOT, creating it (mode 0755) when missing, and checks that it belongs to the
    /// current effective user and is writable by nobody else. Only its last component is
    /// opened without following links: the directories above ROOT are the operator's.
    pub fn open_root(path: &Path) -> Result<Dir> {
        let admin = Uid::effective().as_raw();
        match nix::unistd::mkdir(path, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(io("create", path)(e)),
        }
        let fd = nix::fcntl::openat(nix::fcntl::AT_FDCWD, path, DIR_FLAGS, Mode::empty())
            .map_err(|e| not_dir_or(e, path))?;
        let dir = Dir {
            fd,
            path: path.to_path_buf(),
            admin,
        };
        dir.check_admin()?;
        Ok(dir)
    }

    /// The path this directory was reached by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (creating with mode 0755 when missing) the directory `name` that root writes
    /// into, and checks it belongs to root and is writable by root only.
    pub fn admin_dir(&self, name: &str) -> Result<Dir> {
        let (dir, _) = self.subdir(name, 0o755)?;
        dir.check_admin()?;
        Ok(dir)
    }

    /// Opens the existing directory `name` that root writes into, checked like
    /// [`Self::admin_dir`]; `None` when it does not exist.
    pub fn existing_admin_dir(&self, name: &str) -> Result<Option<Dir>> {
        match self.open_subdir(name) {
            Ok(dir) => dir.check_admin().map(|()| Some(dir)),
            Err(RootDirError::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens (creating with `mode` when missing) the directory `name` that belongs to the
    /// service user, and gives it to `owner` (through the handle, so a link planted in its
    /// place is refused, never followed). Root writes nothing inside it.
    pub fn service_dir(&self, name: &str, mode: u32, owner: Owner) -> Result<Dir> {
        let (dir, created) = self.subdir(name, mode)?;
        let stat = dir.stat()?;
        if created || stat.st_uid != owner.uid || stat.st_gid != owner.gid {
            nix::unistd::fchown(
                &dir.fd,
                Some(Uid::from_raw(owner.uid)),
                Some(Gid::from_raw(owner.gid)),
            )
            .map_err(io("chown", &dir.path))?;
        }
        if created {
            nix::sys::stat::fchmod(&dir.fd, Mode::from_bits_truncate(mode))
                .map_err(io("chmod", &dir.path))?;
        }
        Ok(dir)
    }

    /// Opens the existing directory `name` without any ownership check (for reading the
    /// service user's directories, or walking).
    pub fn open_subdir(&self, name: &str) -> Result<Dir> {
        let path = self.child(name)?;
        let fd = nix::fcntl::openat(&self.fd, name, DIR_FLAGS, Mode::empty())
            .map_err(|e| not_dir_or(e, &path))?;
        Ok(Dir {
            fd,
            path,
            admin: self.admin,
        })
    }

    fn subdir(&self, name: &str, mode: u32) -> Result<(Dir, bool)> {
        let path = self.child(name)?;
        let created = match nix::sys::stat::mkdirat(&self.fd, name, Mode::from_bits_truncate(mode))
        {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(io("create", &path)(e)),
        };
        Ok((self.open_subdir(name)?, created))
    }

    fn stat(&self) -> Result<FileStat> {
        nix::sys::stat::fstat(&self.fd).map_err(io("inspect", &self.path))
    }

    /// Fails unless this directory belongs to the admin and no one else may write it.
    fn check_admin(&self) -> Result<()> {
        let stat = self.stat()?;
        let mode = stat.st_mode & 0o7777;
        if stat.st_uid != self.admin || mode & 0o022 != 0 {
            return Err(RootDirError::Unsafe {
                path: self.path.clone(),
                uid: stat.st_uid,
                mode,
                owner: match self.admin {
                    0 => "root".into(),
                    uid => uid.to_string(),
                },
            });
        }
        Ok(())
    }

    fn child(&self, name: &str) -> Result<PathBuf> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(RootDirError::BadName { name: name.into() });
        }
        Ok(self.path.join(name))
    }

    /// Replaces the file `name` atomically with `bytes`: a new temporary file (never an
    /// existing one, never through a link), synced, given `mode` and `owner` (default:
    /// the directory's admin), renamed over `name`, and the directory synced.
    pub fn write_file(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        owner: Option<Owner>,
    ) -> Result<()> {
        self.write_with(name, mode, owner, |file| file.write_all(bytes))
    }

    /// Like [`Self::write_file`], with the content copied from `source`.
    pub fn copy_file(&self, name: &str, source: &mut dyn std::io::Read, mode: u32) -> Result<()> {
        self.write_with(name, mode, None, |file| {
            std::io::copy(source, file).map(|_| ())
        })
    }

    fn write_with(
        &self,
        name: &str,
        mode: u32,
        owner: Option<Owner>,
        fill: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> Result<()> {
        let path = self.child(name)?;
        let dir = airgap_fsutil::at::DirAt::new(&self.fd, &self.path);
        let owner = owner.map(|o| airgap_fsutil::at::Owner {
            uid: o.uid,
            gid: o.gid,
        });
        airgap_fsutil::at::atomic_write_at(dir, name, mode, owner, |file| {
            fill(file).map_err(|e| WriteError::new(&path, Step::Write, e))
        })?;
        Ok(())
    }

    /// Points the symlink `name` at `target` in one rename (a new link under a temporary
    /// name, renamed over the old one), then syncs the directory.
    pub fn symlink(&self, name: &str, target: &Path) -> Result<()> {
        let path = self.child(name)?;
        let tmp = airgap_fsutil::at::temp_name(name);
        let _ = nix::unistd::unlinkat(&self.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        nix::unistd::symlinkat(target, &self.fd, tmp.as_str())
            .map_err(io("create symlink", &self.path.join(&tmp)))?;
        nix::fcntl::renameat(&self.fd, tmp.as_str(), &self.fd, name)
            .map_err(io("switch", &path))?;
        self.sync()
    }

    /// The target of the symlink `name`, or `None` when there is none.
    pub fn read_link(&self, name: &str) -> Result<Option<PathBuf>> {
        let path = self.child(name)?;
        match nix::fcntl::readlinkat(&self.fd, name) {
            Ok(target) => Ok(Some(PathBuf::from(target))),
            Err(Errno::ENOENT) | Err(Errno::EINVAL) => Ok(None),
            Err(e) => Err(io("read link", &path)(e)),
        }
    }

    /// Removes the non-directory entry `name` (a link is removed, not followed); a
    /// missing entry is not an error.
    pub fn remove_file(&self, name: &str) -> Result<()> {
        let path = self.child(name)?;
        match nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => self.sync(),
            Err(e) => Err(io("remove", &path)(e)),
        }
    }

    /// Removes `name` and everything under it without following any link: directories
    /// are opened with `O_NOFOLLOW` relative to their parent and emptied by `unlinkat`.
    /// A missing entry is not an error.
    pub fn remove_tree(&self, name: &str) -> Result<()> {
        let path = self.child(name)?;
        let stat = match nix::sys::stat::fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(io("inspect", &path)(e)),
        };
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            let sub = self.open_subdir(name)?;
            for entry in sub.entries()? {
                sub.remove_tree(&entry)?;
            }
            nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir)
                .map_err(io("remove", &path))?;
        } else {
            nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir)
                .map_err(io("remove", &path))?;
        }
        Ok(())
    }

    /// The names in this directory (without `.` and `..`).
    pub fn entries(&self) -> Result<Vec<String>> {
        let fd = nix::fcntl::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())
            .map_err(io("read", &self.path))?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(io("read", &self.path))?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(io("read", &self.path))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if let Some(name) = name.to_str() {
                if name != "." && name != ".." {
                    names.push(name.to_string());
                }
            }
        }
        Ok(names)
    }

    /// Opens the regular file `name` for reading, refusing a link, a FIFO or a device
    /// (opened non-blocking, so a FIFO cannot hang root).
    pub fn open_file(&self, name: &str) -> Result<File> {
        let path = self.child(name)?;
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(&self.fd, name, flags, Mode::empty()).map_err(|e| match e {
            Errno::ELOOP => RootDirError::NotAFile { path: path.clone() },
            e => io("open", &path)(e),
        })?;
        regular(&fd, &path)?;
        Ok(File::from(fd))
    }

    /// Reads the regular file `name` (at most `limit` bytes; more is an error).
    pub fn read_file(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let path = self.child(name)?;
        let file = self.open_file(name)?;
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|cause| RootDirError::Io {
                what: "read",
                path: path.clone(),
                cause,
            })?;
        if bytes.len() as u64 > limit {
            return Err(RootDirError::TooLarge { path, limit });
        }
        Ok(bytes)
    }

    /// Opens (creating, mode 0600) the regular file `name` for locking, never through a
    /// link and never a FIFO or device.
    pub fn open_lock_file(&self, name: &str) -> Result<File> {
        let path = self.child(name)?;
        let flags = OFlag::O_RDWR
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(&self.fd, name, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| match e {
                Errno::ELOOP => RootDirError::NotAFile { path: path.clone() },
                e => io("open", &path)(e),
            })?;
        regular(&fd, &path)?;
        Ok(File::from(fd))
    }

    /// Gives the entry `name` itself (a link is changed, never followed) to `owner`.
    pub fn chown_entry(&self, name: &str, owner: Owner) -> Result<()> {
        let path = self.child(name)?;
        nix::unistd::fchownat(
            &self.fd,
            name,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io("chown", &path))
    }

    /// Syncs the directory, so renames in it survive a crash.
    pub fn sync(&self) -> Result<()> {
        nix::unistd::fsync(&self.fd).map_err(io("sync", &self.path))
    }
}

/// `ELOOP`/`ENOTDIR` mean a link or a file stands where a directory was expected.
fn not_dir_or(e: Errno, path: &Path) -> RootDirError {
    match e {
        Errno::ELOOP | Errno::ENOTDIR => RootDirError::NotADirectory {
            path: path.to_path_buf(),
        },
        e => io("open", path)(e),
    }
}

fn regular(fd: &OwnedFd, path: &Path) -> Result<()> {
    let stat = nix::sys::stat::fstat(fd).map_err(io("inspect", path))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(RootDirError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_links_are_replaced_and_links_never_followed() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|cause| RootDirError::Io {
            what: "create",
            path: "/tmp".into(),
            cause,
        })?;
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, "keep").map_err(|cause| RootDirError::Io {
            what: "write",
            path: outside.clone(),
            cause,
        })?;
        let root = Dir::open_root(&tmp.path().join("root"))?;
        let etc = root.admin_dir("etc")?;
        etc.write_file("a", b"one", 0o644, None)?;
        std::os::unix::fs::symlink(&outside, etc.path().join("b")).map_err(|cause| {
            RootDirError::Io {
                what: "link",
                path: etc.path().join("b"),
                cause,
            }
        })?;
        assert!(matches!(
            etc.read_file("b", 100),
            Err(RootDirError::NotAFile { .. })
        ));
        etc.write_file("b", b"two", 0o640, None)?;
        assert_eq!(etc.read_file("b", 100)?, b"two");
        assert_eq!(std::fs::read(&outside).ok().as_deref(), Some(&b"keep"[..]));
        std::os::unix::fs::symlink(tmp.path(), root.path().join("linked")).map_err(|cause| {
            RootDirError::Io {
                what: "link",
                path: root.path().join("linked"),
                cause,
            }
        })?;
        assert!(matches!(
            root.admin_dir("linked"),
            Err(RootDirError::NotADirectory { .. })
        ));
        root.symlink("current", Path::new("releases/x"))?;
        assert_eq!(
            root.read_link("current")?,
            Some(PathBuf::from("releases/x"))
        );
        root.remove_tree("linked")?;
        root.remove_tree("etc")?;
        assert!(outside.exists() && !root.path().join("etc").exists());
        assert!(matches!(
            root.read_file("x/y", 1),
            Err(RootDirError::BadName { .. })
        ));
        Ok(())
    }
}
