//! One `up` per appliance root: an exclusive `flock` on `ROOT/run/up.lock`, which also holds
//! the pid of the `up` that owns it. The kernel drops the lock when that process dies, so a
//! crashed or SIGKILLed `up` never leaves a stale lock behind, and [`running_up`] can tell a
//! live supervisor from a left-over pid.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::time::Duration;

use super::error::SuperviseError;
use super::process;
use crate::layout::Layout;

/// How often taking the lock is tried before it counts as held: a probe by
/// [`running_up`] (a shared lock for a moment) must not make a starting `up` fail.
const ATTEMPTS: u32 = 20;
/// Pause between attempts.
const PAUSE: Duration = Duration::from_millis(50);

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct UpLock {
    _file: File,
}

impl UpLock {
    /// Takes the lock for `layout` and writes our pid into it. Fails with
    /// [`SuperviseError::AlreadyRunning`] naming the holder's pid when another `up` has it.
    pub fn acquire(layout: &Layout) -> Result<UpLock, SuperviseError> {
        let path = layout.up_lock();
        let io = |what| SuperviseError::io(what, &path);
        let run = layout.run();
        std::fs::create_dir_all(&run).map_err(SuperviseError::io("cannot create", &run))?;
        // A link in place of the lock (run/ is the service user's) is replaced, not followed.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&path).map_err(io("cannot replace"))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&path)
            .map_err(io("cannot open"))?;
        lock_exclusive(&file, layout)?;
        file.set_len(0).map_err(io("cannot write"))?;
        file.seek(SeekFrom::Start(0)).map_err(io("cannot write"))?;
        writeln!(file, "{}", std::process::id()).map_err(io("cannot write"))?;
        file.sync_all().map_err(io("cannot write"))?;
        Ok(UpLock { _file: file })
    }
}

/// Tries the exclusive lock a few times; a lock still held names its owner.
fn lock_exclusive(file: &File, layout: &Layout) -> Result<(), SuperviseError> {
    let path = layout.up_lock();
    for _ in 0..ATTEMPTS {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => std::thread::sleep(PAUSE),
            Err(TryLockError::Error(e)) => return Err(SuperviseError::io("cannot lock", &path)(e)),
        }
    }
    Err(SuperviseError::AlreadyRunning {
        root: layout.root().to_path_buf(),
        pid: recorded_pid(file).unwrap_or(0),
    })
}

/// The pid of the live `up` holding `layout`'s lock, or `None` when no `up` runs there.
/// `install` sends it SIGHUP after switching `current`; `status` uses it to tell a running
/// appliance from a stale state file.
pub fn running_up(layout: &Layout) -> Option<u32> {
    // Root (install, rollback) reads this file of the service user's: never through a
    // link, never a FIFO that would block the open.
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(layout.up_lock())
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))?;
    // A just-started `up` holds the lock a moment before its pid is written.
    for _ in 0..3 {
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                return None;
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(_)) => return None,
        }
        if let Some(pid) = recorded_pid(&file).filter(|pid| process::alive(*pid)) {
            return Some(pid);
        }
        std::thread::sleep(PAUSE);
    }
    None
}

/// The pid written in the lock file.
fn recorded_pid(mut file: &File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_up_names_the_holder_and_a_second_up_is_refused() -> Result<(), SuperviseError> {
        let tmp = tempfile::tempdir().map_err(SuperviseError::io("tempdir", "/tmp"))?;
        let layout = Layout::new(tmp.path());
        assert_eq!(running_up(&layout), None, "no lock file yet");
        let held = UpLock::acquire(&layout)?;
        assert_eq!(running_up(&layout), Some(std::process::id()));
        match UpLock::acquire(&layout) {
            Err(e @ SuperviseError::AlreadyRunning { pid, .. }) => {
                assert_eq!(pid, std::process::id());
                assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");
            }
            other => panic!("second lock: {other:?}"),
        }
        drop(held);
        assert_eq!(running_up(&layout), None, "released with the lock");
        // A stale pid in an unlocked file does not count.
        assert!(layout.up_lock().exists());
        assert_eq!(running_up(&layout), None);
        Ok(())
    }
}
