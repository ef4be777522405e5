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
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied => denied(layout, e),
                _ => io("cannot open")(e),
            })?;
        lock_exclusive(&file, layout)?;
        file.set_len(0).map_err(io("cannot write"))?;
        file.seek(SeekFrom::Start(0)).map_err(io("cannot write"))?;
        writeln!(file, "{}", std::process::id()).map_err(io("cannot write"))?;
        file.sync_all().map_err(io("cannot write"))?;
        Ok(UpLock { _file: file })
    }
}

/// The lock could not be opened (`cause`, EACCES or EPERM): the error states who owns run/
/// and the lock with which modes, and who we are, and names the likely fix only when
/// those facts show it.
fn denied(layout: &Layout, cause: std::io::Error) -> SuperviseError {
    use std::os::unix::fs::MetadataExt as _;
    let (run, path) = (layout.run(), layout.up_lock());
    let (uid, gid) = (
        nix::unistd::Uid::effective().as_raw(),
        nix::unistd::Gid::effective().as_raw(),
    );
    let groups = nix::unistd::getgroups().map_or_else(
        |e| format!("unknown ({e})"),
        |groups| {
            let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            format!("[{}]", groups.join(", "))
        },
    );
    let run_meta = std::fs::symlink_metadata(&run);
    let lock_meta = std::fs::symlink_metadata(&path);
    let mut facts = format!(
        "{}, {}, and this process runs as uid {uid}, gid {gid}, groups {groups}",
        ownership(&run, &run_meta),
        ownership(&path, &lock_meta)
    );
    if run_meta.as_ref().is_ok_and(|m| m.uid() != uid) {
        facts.push_str(&format!(
            " ({} is not ours: install gives it to the service user as it was then; if that \
             user has been re-created with another uid, re-run install as root)",
            run.display()
        ));
    } else if lock_meta.as_ref().is_ok_and(|m| m.uid() != uid) {
        facts.push_str(&format!(
            " ({} is not ours: remove it, up creates it again)",
            path.display()
        ));
    }
    SuperviseError::LockDenied { path, facts, cause }
}

/// "PATH is owned by UID:GID with mode MODE", or why that is unknown.
fn ownership(path: &std::path::Path, meta: &std::io::Result<std::fs::Metadata>) -> String {
    use std::os::unix::fs::MetadataExt as _;
    match meta {
        Ok(m) => format!(
            "{} is owned by {}:{} with mode {:04o}",
            path.display(),
            m.uid(),
            m.gid(),
            m.mode() & 0o7777
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("{} does not exist", path.display())
        }
        Err(e) => format!("{} cannot be inspected ({e})", path.display()),
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

    #[test]
    fn a_denied_lock_states_owners_modes_and_our_ids_and_its_cause_once(
    ) -> Result<(), SuperviseError> {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().map_err(SuperviseError::io("tempdir", "/tmp"))?;
        let layout = Layout::new(tmp.path());
        let run = layout.run();
        std::fs::create_dir(&run).map_err(SuperviseError::io("mkdir", &run))?;
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700))
            .map_err(SuperviseError::io("chmod", &run))?;
        let (uid, gid) = (
            nix::unistd::Uid::effective().as_raw(),
            nix::unistd::Gid::effective().as_raw(),
        );
        let eacces = || std::io::Error::from_raw_os_error(nix::libc::EACCES);
        let cause = eacces().to_string();

        let msg = denied(&layout, eacces()).to_string();
        let lock = layout.up_lock();
        for fact in [
            format!("cannot open {}: {cause};", lock.display()),
            format!("{} is owned by {uid}:{gid} with mode 0700", run.display()),
            format!("{} does not exist", lock.display()),
            format!("this process runs as uid {uid}, gid {gid}, groups ["),
        ] {
            assert!(msg.contains(&fact), "{fact:?} missing: {msg}");
        }
        assert_eq!(msg.matches(&cause).count(), 1, "{msg}");
        assert!(!msg.contains("is not ours"), "run/ is ours: {msg}");
        assert!(!msg.contains('\n'), "{msg}");

        std::fs::write(&lock, "").map_err(SuperviseError::io("write", &lock))?;
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o600))
            .map_err(SuperviseError::io("chmod", &lock))?;
        let msg = denied(&layout, eacces()).to_string();
        let fact = format!("{} is owned by {uid}:{gid} with mode 0600", lock.display());
        assert!(msg.contains(&fact), "{fact:?} missing: {msg}");

        // run/ given to a uid that is not ours (a re-created service user) is named.
        if crate::privilege::is_root() {
            std::os::unix::fs::chown(&run, Some(65534), Some(65534))
                .map_err(SuperviseError::io("chown", &run))?;
            let msg = denied(&layout, eacces()).to_string();
            let fact = format!("{} is owned by 65534:65534 with mode 0700", run.display());
            assert!(msg.contains(&fact), "{fact:?} missing: {msg}");
            assert!(msg.contains("re-created with another uid"), "{msg}");
        }
        Ok(())
    }
}
