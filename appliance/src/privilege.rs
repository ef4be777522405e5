//! Dropping root: the service user and the re-exec.
//!
//! PostgreSQL (and coderd's built-in pieces) refuse to run as root, so `install` and `up`
//! do their root-only preparation (create the service user, give it its directories)
//! and then replace themselves with the same command running as that user. Everything
//! after that — Postgres included — runs unprivileged.
//!
//! The re-exec keeps the arguments and the environment, adds a marker variable so the
//! child knows it has already been dropped (and never loops), and sets `HOME`, `USER` and
//! `LOGNAME` for the new user. The standard library clears supplementary groups when it
//! sets a uid while running as root.

use std::convert::Infallible;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use airgap_tool::{Failure, Tool, ToolError};
use nix::unistd::{Uid, User};

/// The environment variable that marks a process as already re-executed as the service
/// user; [`reexec_as`] sets it and refuses to run when it is already set.
pub const DROPPED_MARKER: &str = "CODER_AIRGAP_DROPPED";

/// Errors from looking up, creating or switching to the service user.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The user does not exist and we are not root, so we cannot create it.
    #[error("service user {name} does not exist; run this command as root once (sudo) to create it, or: useradd --system --no-create-home --shell /usr/sbin/nologin --user-group {name}")]
    MissingUser {
        /// The user name looked up.
        name: String,
    },
    /// `useradd` (or the user database) failed.
    #[error("cannot create service user {name}: {reason}")]
    CreateUser {
        /// The user name.
        name: String,
        /// What went wrong, one line.
        reason: String,
    },
    /// The user database could not be read.
    #[error("cannot look up user {name}: {reason}")]
    Lookup {
        /// The user name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The marker says we were already re-executed, yet we are about to do it again.
    #[error("refusing to re-execute again: {DROPPED_MARKER} is already set (still uid {uid}); check that the service user is not root")]
    Loop {
        /// The effective uid we are running with.
        uid: u32,
    },
    /// `exec` itself failed (it only returns on failure).
    #[error("cannot re-execute {exe} as {user}: {cause} (the service user must be able to read and execute the binary and its directories)")]
    Exec {
        /// The program that was to be executed.
        exe: PathBuf,
        /// The target user.
        user: String,
        /// The OS error.
        cause: io::Error,
    },
}

/// The unprivileged account the appliance (Postgres, coderd) runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUser {
    /// Login name, e.g. `coder-airgap`.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Numeric primary group id.
    pub gid: u32,
    /// Home directory from the user database (may not exist: system users have none).
    pub home: PathBuf,
}

impl ServiceUser {
    fn from_nix(user: User) -> Self {
        ServiceUser {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
        }
    }
}

/// True when the effective uid is 0.
pub fn is_root() -> bool {
    Uid::effective().is_root()
}

/// The user database's lock file (lckpwdf(3)). shadow's tools hold fcntl locks on it while
/// they write; [`ensure_service_user`] holds an flock(2), which does not conflict with
/// those, so `useradd` still runs while it is held.
const USER_DB_LOCK: &str = "/etc/.pwd.lock";
/// How long [`ensure_service_user`] waits for another creator (whose `useradd` has a
/// 60 s timeout).
const USER_DB_WAIT: Duration = Duration::from_secs(90);

/// Looks up `name`; when it does not exist and we are root, creates it as a system user
/// with its own group, no home and no login shell (announced on stderr). When it does not
/// exist and we are not root, the error says how to fix it. Safe to call from several
/// processes at once: `useradd` checks for the name before it locks the user database,
/// so concurrent runs for one new name all succeed and each redefines the user with a
/// new uid (ROOT/run chowned to the first uid, `up` dropped to the last); the look-up
/// and the creation therefore run under [`USER_DB_LOCK`].
pub fn ensure_service_user(name: &str) -> Result<ServiceUser, PrivilegeError> {
    if let Some(user) = lookup(name)? {
        return Ok(user);
    }
    if !is_root() {
        return Err(PrivilegeError::MissingUser { name: name.into() });
    }
    let _db = lock_user_db(name)?;
    // Created meanwhile by the creator that held the lock before us.
    if let Some(user) = lookup(name)? {
        return Ok(user);
    }
    eprintln!("creating system user {name} (useradd --system)");
    create_user(name)?;
    lookup(name)?.ok_or_else(|| PrivilegeError::CreateUser {
        name: name.into(),
        reason: "useradd succeeded but the user is still missing".into(),
    })
}

fn lookup(name: &str) -> Result<Option<ServiceUser>, PrivilegeError> {
    User::from_name(name)
        .map(|u| u.map(ServiceUser::from_nix))
        .map_err(|e| PrivilegeError::Lookup {
            name: name.into(),
            reason: e.desc().into(),
        })
}

/// Holds [`USER_DB_LOCK`] (created like lckpwdf creates it) until the file is dropped,
/// waiting up to [`USER_DB_WAIT`] for another creator of a user.
fn lock_user_db(name: &str) -> Result<std::fs::File, PrivilegeError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |reason: String| PrivilegeError::CreateUser {
        name: name.into(),
        reason,
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(USER_DB_LOCK)
        .map_err(|e| err(format!("cannot open {USER_DB_LOCK}: {e}")))?;
    let deadline = std::time::Instant::now() + USER_DB_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(err(format!(
                    "another process has held {USER_DB_LOCK} (flock) for {} s",
                    USER_DB_WAIT.as_secs()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(err(format!("cannot lock {USER_DB_LOCK}: {e}")))
            }
        }
    }
}

fn create_user(name: &str) -> Result<(), PrivilegeError> {
    let err = |reason: String| PrivilegeError::CreateUser {
        name: name.into(),
        reason,
    };
    // sudo and su keep /usr/sbin out of PATH on some systems.
    let program = ["/usr/sbin/useradd", "/sbin/useradd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("useradd");
    let added = Tool::new("useradd", program)
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
        ])
        .args(["--user-group", name])
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .timeout(Duration::from_secs(60))
        .run();
    match added {
        Ok(()) => Ok(()),
        // Exit 9 = "already exists": another process raced us; the lookup settles it.
        Err(ToolError {
            failure: Failure::Exit { code: 9, .. },
            ..
        }) => Ok(()),
        Err(e) => Err(err(e.to_string())),
    }
}

/// The uid owning process `pid` (of its `/proc` entry), or `None` when it is gone.
/// Root signals a pid read from a file the service user writes only when that process
/// is the service user's.
pub fn process_owner(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// A command that runs `program args` as `user`: uid/gid switched, the current
/// environment plus `marker=1`, `HOME`/`USER`/`LOGNAME` for the user, and stdin from
/// `/dev/null`. [`reexec_as`] execs it (with our stdin); tests spawn it.
pub fn command_as<I, S>(user: &ServiceUser, program: &Path, args: I, marker: &str) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Tool::new(format!("{} as {}", program.display(), user.name), program)
        .args(args)
        // Ourselves again: its configuration may come from any of its own variables.
        .inherit_whole_env()
        .env(marker, "1")
        .env("HOME", &user.home)
        .env("USER", &user.name)
        .env("LOGNAME", &user.name)
        .gid(user.gid)
        .uid(user.uid)
        .command()
}

/// Replaces this process with the same binary and arguments running as `user`, with
/// `env_marker=1` added so the new process knows it has been dropped. Only returns on
/// failure. Refuses when `env_marker` is already set (a loop: the user is root, or the
/// drop did not take). The working directory is kept: relative paths in the arguments
/// must be reachable by `user`.
pub fn reexec_as(user: &ServiceUser, env_marker: &str) -> Result<Infallible, PrivilegeError> {
    if std::env::var_os(env_marker).is_some() {
        return Err(PrivilegeError::Loop {
            uid: Uid::effective().as_raw(),
        });
    }
    let exe = std::env::current_exe().map_err(|cause| PrivilegeError::Exec {
        exe: PathBuf::from("/proc/self/exe"),
        user: user.name.clone(),
        cause,
    })?;
    let cause = command_as(user, &exe, std::env::args_os().skip(1), env_marker)
        .stdin(Stdio::inherit())
        .exec();
    Err(PrivilegeError::Exec {
        exe,
        user: user.name.clone(),
        cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_owner_names_our_own_uid() {
        assert_eq!(
            process_owner(std::process::id()),
            Some(Uid::effective().as_raw())
        );
        assert_eq!(process_owner(u32::MAX), None);
    }

    #[test]
    fn missing_user_error_names_the_fix() {
        let msg = PrivilegeError::MissingUser { name: "svc".into() }.to_string();
        assert!(msg.contains("useradd --system"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn existing_user_is_found() -> Result<(), PrivilegeError> {
        let root = ensure_service_user("root")?;
        assert_eq!((root.uid, root.gid), (0, 0));
        Ok(())
    }

    /// Deletes the user `name` and its group (errors ignored: either may be gone).
    fn remove_user(name: &str) {
        for tool in ["userdel", "groupdel"] {
            let _ = Command::new(tool)
                .arg(name)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Several installs or `up`s on a machine without the user each create it; the one
    /// that chowned ROOT/run to the uid it saw must not find the user redefined later
    /// (a concurrent `useradd` of the same name overwrote the entry with a new uid, and
    /// `up`, re-executed as that new uid, could not open ROOT/run/up.lock).
    #[test]
    #[ignore = "needs root: creates and deletes a system user"]
    fn concurrent_creators_of_a_new_user_agree_on_its_uid() -> Result<(), PrivilegeError> {
        const CREATORS: usize = 6;
        let name = format!("airgap-race-{}", std::process::id());
        remove_user(&name);
        let start = std::sync::Barrier::new(CREATORS);
        let seen: Vec<_> = std::thread::scope(|s| {
            let creators: Vec<_> = (0..CREATORS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        ensure_service_user(&name)
                    })
                })
                .collect();
            creators
                .into_iter()
                .map(|c| c.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let last = lookup(&name);
        remove_user(&name);
        let last = last?.ok_or_else(|| PrivilegeError::MissingUser { name: name.clone() })?;
        for user in seen {
            let user = user?;
            assert_eq!(
                (user.uid, user.gid),
                (last.uid, last.gid),
                "a creator saw {name} as {}:{} but it ended as {}:{}",
                user.uid,
                user.gid,
                last.uid,
                last.gid
            );
        }
        Ok(())
    }

    #[test]
    fn reexec_refuses_when_marker_is_set() {
        // PATH is always set in the test environment: use it as an already-present marker.
        let user = ServiceUser {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
            home: "/".into(),
        };
        match reexec_as(&user, "PATH") {
            Err(PrivilegeError::Loop { .. }) => {}
            other => panic!("expected Loop, got {other:?}"),
        }
    }
}
