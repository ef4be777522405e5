//! Durable file replacement, written once for every crate.
//!
//! [`atomic_write`] writes a temporary file beside the destination, fsyncs it, renames it
//! over the destination and fsyncs the directory, so after a crash or a kill at any instant
//! a reader finds either the whole old file or the whole new one, and after the call returns
//! the new one survives a power cut. The temporary name starts with a dot and ends in `.tmp`
//! so directory listings and globs skip it, and it is removed when the write fails.
//!
//! [`persist`] does the same last steps for a file something else wrote (a tool's output,
//! a resumable download), [`rename`] moves a finished file or directory and fsyncs the
//! directories involved, and [`at::atomic_write_at`] writes through an open directory
//! handle without following any link, for code that runs as root in a tree another user
//! can change. Every failure is a [`WriteError`] naming the path and the [`Step`].

#![deny(missing_docs)]

pub mod at;

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The step of a durable write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Creating the temporary file in the destination's directory.
    CreateTemporary,
    /// Writing the content into the temporary file.
    Write,
    /// Setting the file's mode.
    SetMode,
    /// Setting the file's owner.
    SetOwner,
    /// Opening a finished file to fsync it.
    Open,
    /// Fsyncing the file.
    SyncFile,
    /// Renaming the new version into place.
    Rename,
    /// Fsyncing the directory, so the rename survives a crash.
    SyncDirectory,
}

impl Step {
    /// What was being done, as a phrase that takes the path as its object.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateTemporary => "create a temporary file in",
            Step::Write => "write",
            Step::SetMode => "set the mode of",
            Step::SetOwner => "set the owner of",
            Step::Open => "open",
            Step::SyncFile => "fsync",
            Step::Rename => "rename into",
            Step::SyncDirectory => "fsync the directory",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A durable write failed: which path, at which step, and the operating system's error.
/// The message carries the cause's text and `source()` is `None`, so a report prints it
/// once (docs/errors.md).
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {}: {cause}", path.display())]
pub struct WriteError {
    path: PathBuf,
    step: Step,
    cause: io::Error,
}

impl WriteError {
    /// A failure of `step` on `path`.
    pub fn new(path: impl Into<PathBuf>, step: Step, cause: io::Error) -> WriteError {
        WriteError {
            path: path.into(),
            step,
            cause,
        }
    }

    /// The path the step was done to: the destination for the file's own steps, its
    /// directory for [`Step::CreateTemporary`] and [`Step::SyncDirectory`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The step that failed.
    pub fn step(&self) -> Step {
        self.step
    }

    /// The operating system's error kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.cause.kind()
    }
}

/// For callers whose fill step speaks `io::Error`: keeps the kind, and the message names
/// the path and the step.
impl From<WriteError> for io::Error {
    fn from(e: WriteError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

fn at(path: &Path, step: Step) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError::new(path, step, source)
}

/// Replaces `path` with `bytes` (mode 0644), durably.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    atomic_write_mode(path, bytes, 0o644)
}

/// Replaces `path` with `bytes` and sets `mode` before the file becomes visible (keys
/// are never readable by others, not even for an instant).
pub fn atomic_write_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    atomic_write_with(path, mode, |file| {
        file.write_all(bytes).map_err(at(path, Step::Write))
    })
}

/// Replaces `path` with what `fill` writes into the temporary file, with `mode`, and
/// returns what `fill` returns; for content that is streamed rather than held whole. When
/// `fill` fails, its error is returned, the temporary file is removed and `path` is left
/// as it was.
pub fn atomic_write_with<T, E: From<WriteError>>(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> Result<T, E>,
) -> Result<T, E> {
    let dir = parent(path);
    let name = path.file_name().ok_or_else(|| {
        WriteError::new(
            path,
            Step::CreateTemporary,
            io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
        )
    })?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(at(dir, Step::CreateTemporary))?;
    let value = fill(tmp.as_file_mut())?;
    let mut file = tmp.as_file();
    file.flush().map_err(at(path, Step::Write))?;
    // The umask may have narrowed the mode the file was created with.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(at(path, Step::SetMode))?;
    file.sync_all().map_err(at(path, Step::SyncFile))?;
    tmp.persist(path)
        .map_err(|e| WriteError::new(path, Step::Rename, e.error))?;
    sync_dir(dir)?;
    Ok(value)
}

/// Makes the finished file `tmp` (written by something else: a tool, a download) the
/// durable `dest`: fsyncs it, renames it over `dest` and fsyncs the directories. `tmp`
/// must be on the same file system, normally beside `dest`.
pub fn persist(tmp: &Path, dest: &Path) -> Result<(), WriteError> {
    File::open(tmp)
        .map_err(at(tmp, Step::Open))?
        .sync_all()
        .map_err(at(tmp, Step::SyncFile))?;
    rename(tmp, dest)
}

/// Renames the file or directory `from` to `to` and fsyncs `to`'s directory (and
/// `from`'s, when it is another one), so the move survives a crash. The content of
/// `from` is the caller's to have synced.
pub fn rename(from: &Path, to: &Path) -> Result<(), WriteError> {
    std::fs::rename(from, to).map_err(at(to, Step::Rename))?;
    let (old, new) = (parent(from), parent(to));
    sync_dir(new)?;
    if old != new {
        sync_dir(old)?;
    }
    Ok(())
}

/// Fsyncs directory `dir`, so a rename or create inside it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir, Step::SyncDirectory))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn names(dir: &Path) -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_file_with_the_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.pem");
        std::fs::write(&path, b"old").expect("seed");
        atomic_write_mode(&path, b"new", 0o600).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").mode() & 0o777,
            0o600
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("key.pem")]);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_removes_the_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"old").expect("seed");
        let err = atomic_write_with(&path, 0o644, |f| {
            f.write_all(b"half")?;
            Err::<(), _>(io::Error::other("disk full"))
        })
        .expect_err("fill fails");
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn a_relative_name_writes_in_the_current_directory_parent() {
        assert_eq!(parent(Path::new("x.json")), Path::new("."));
        assert_eq!(parent(Path::new("/a/x.json")), Path::new("/a"));
    }

    #[test]
    fn the_fill_value_is_returned_and_the_mode_is_public() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bundle.tar.gz");
        let n = atomic_write_with(&path, 0o644, |f| {
            f.write_all(b"12345").map_err(at(&path, Step::Write))?;
            Ok::<_, WriteError>(5)
        })
        .expect("write");
        assert_eq!(n, 5);
        assert_eq!(
            std::fs::metadata(&path).expect("meta").mode() & 0o777,
            0o644
        );
    }

    #[test]
    fn a_missing_directory_names_the_directory_and_the_step() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("absent");
        let err = atomic_write(&missing.join("x.json"), b"{}").expect_err("no directory");
        assert_eq!(err.step(), Step::CreateTemporary);
        assert_eq!(err.path(), missing);
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let message = err.to_string();
        let head = format!("cannot create a temporary file in {}: ", missing.display());
        assert!(message.starts_with(&head), "{message}");
        // The OS error is in the message and is not a source, so a chain prints it once
        // (docs/errors.md).
        assert_eq!(
            message.matches("No such file or directory").count(),
            1,
            "{message}"
        );
        assert!(std::error::Error::source(&err).is_none());
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        let err = atomic_write(Path::new("/"), b"x").expect_err("no file name");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn persist_moves_a_finished_file_over_the_destination() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (part, dest) = (dir.path().join("a.zip.part"), dir.path().join("a.zip"));
        std::fs::write(&part, b"new").expect("part");
        std::fs::write(&dest, b"old").expect("dest");
        persist(&part, &dest).expect("persist");
        assert_eq!(std::fs::read(&dest).expect("read"), b"new");
        assert_eq!(names(dir.path()), vec![std::ffi::OsString::from("a.zip")]);
        let err = persist(&part, &dest).expect_err("the part is gone");
        assert_eq!((err.step(), err.path()), (Step::Open, part.as_path()));
    }

    #[test]
    fn rename_moves_a_directory_across_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (from, to) = (dir.path().join("tmp/tree"), dir.path().join("stage/tree"));
        std::fs::create_dir_all(&from).expect("from");
        std::fs::create_dir_all(to.parent().expect("parent")).expect("stage");
        std::fs::write(from.join("f"), b"x").expect("file");
        rename(&from, &to).expect("rename");
        assert_eq!(std::fs::read(to.join("f")).expect("moved"), b"x");
        assert!(!from.exists());
        let err = rename(&from, &to).expect_err("gone");
        assert_eq!((err.step(), err.path()), (Step::Rename, to.as_path()));
    }

    #[test]
    fn sync_dir_of_a_missing_directory_names_it() {
        let err = sync_dir(Path::new("/nonexistent-fsutil-dir")).expect_err("missing");
        assert_eq!(err.step(), Step::SyncDirectory);
        assert_eq!(
            err.to_string(),
            "cannot fsync the directory /nonexistent-fsutil-dir: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn into_io_error_keeps_the_kind_and_the_step() {
        let err: io::Error =
            WriteError::new("/a/b", Step::SyncFile, io::Error::other("eio")).into();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert_eq!(err.to_string(), "cannot fsync /a/b: eio");
    }
}
