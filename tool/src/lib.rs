//! Running an external program, one way for every crate.
//!
//! A [`Tool`] is a description (used in the error), a program and its arguments, and an
//! environment that starts **empty**: the caller names every variable the program gets
//! ([`Tool::env`]) or may take from ours ([`Tool::inherit_env`]), so a stray `PGHOST`,
//! `TF_CLI_CONFIG_FILE` or `*_PROXY` in an operator's shell never reaches it. (With no
//! `LANG`/`LC_*` set, programs use the C locale, so their messages are stable English.)
//! Stdin is `/dev/null`. [`Tool::output`] and [`Tool::output_async`] wait for the program,
//! kill it when it outlives its [`Tool::timeout`], and turn a nonzero exit or a signal
//! into a [`ToolError`] carrying the last non-empty line of its stderr. Long-running
//! children that a supervisor manages itself take the configured command from
//! [`Tool::command`] or [`Tool::tokio_command`] and spawn it themselves.

#![deny(missing_docs)]

mod error;
mod wait;

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub use error::{Failure, ToolError};

/// An external program and exactly the environment, arguments and deadline it runs with.
/// Its `Debug` shows the names of the environment variables, never their values (one may
/// be a password).
#[derive(Clone)]
pub struct Tool {
    description: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Env,
    dir: Option<PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
    timeout: Option<Duration>,
}

/// Which environment the program gets besides the explicit variables.
#[derive(Clone)]
enum Env {
    /// Only the explicit variables, plus those of the named ones that we have.
    Clean {
        vars: Vec<(OsString, OsString)>,
        inherit: Vec<OsString>,
    },
    /// Our whole environment plus the explicit variables (re-executing ourselves).
    Whole { vars: Vec<(OsString, OsString)> },
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (vars, inherit, whole) = match &self.env {
            Env::Clean { vars, inherit } => (vars, inherit.as_slice(), false),
            Env::Whole { vars } => (vars, &[][..], true),
        };
        let names: Vec<&OsString> = vars.iter().map(|(k, _)| k).collect();
        f.debug_struct("Tool")
            .field("description", &self.description)
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &names)
            .field("inherit_env", &inherit)
            .field("inherit_whole_env", &whole)
            .field("dir", &self.dir)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What a program that succeeded wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl Tool {
    /// `program`, described as `description` in errors (e.g. `"terraform version"`), with
    /// no arguments, an empty environment and no deadline.
    pub fn new(description: impl Into<String>, program: impl AsRef<Path>) -> Tool {
        Tool {
            description: description.into(),
            program: program.as_ref().to_path_buf(),
            args: Vec::new(),
            env: Env::Clean {
                vars: Vec::new(),
                inherit: Vec::new(),
            },
            dir: None,
            uid: None,
            gid: None,
            timeout: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Tool {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Tool {
        let pair = (key.as_ref().to_owned(), value.as_ref().to_owned());
        match &mut self.env {
            Env::Clean { vars, .. } | Env::Whole { vars } => vars.push(pair),
        }
        self
    }

    /// Sets environment variables.
    pub fn envs<I, K, V>(self, vars: I) -> Tool
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        vars.into_iter().fold(self, |tool, (k, v)| tool.env(k, v))
    }

    /// Passes on those of the variables `names` that are set in our environment (read
    /// when the command is built). Explicit [`Tool::env`] values win. (After
    /// [`Tool::inherit_whole_env`] every variable passes anyway.)
    pub fn inherit_env<I, S>(mut self, names: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        if let Env::Clean { inherit, .. } = &mut self.env {
            inherit.extend(names.into_iter().map(|n| n.as_ref().to_owned()));
        }
        self
    }

    /// Passes on our whole environment (plus the explicit variables). Only for
    /// re-executing this program itself, whose configuration may come from any of its
    /// own variables; every other program gets a clean environment.
    pub fn inherit_whole_env(mut self) -> Tool {
        let vars = match self.env {
            Env::Clean { vars, .. } | Env::Whole { vars } => vars,
        };
        self.env = Env::Whole { vars };
        self
    }

    /// Runs the program in `dir`.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Tool {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Runs the program as user id `uid` (the standard library also clears supplementary
    /// groups when it sets a uid as root).
    pub fn uid(mut self, uid: u32) -> Tool {
        self.uid = Some(uid);
        self
    }

    /// Runs the program with group id `gid`.
    pub fn gid(mut self, gid: u32) -> Tool {
        self.gid = Some(gid);
        self
    }

    /// Kills the program (SIGKILL) when [`Tool::output`] or [`Tool::output_async`] has
    /// waited `limit` for it. Without one they wait as long as it runs.
    pub fn timeout(mut self, limit: Duration) -> Tool {
        self.timeout = Some(limit);
        self
    }

    /// The description given to [`Tool::new`].
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The program's path.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The configured command, not started: environment, arguments, directory, ids, and
    /// stdin from `/dev/null` (a caller that needs another stdin sets it on the result).
    /// For children whose lifetime the caller manages itself.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).stdin(Stdio::null());
        match &self.env {
            Env::Clean { vars, inherit } => {
                cmd.env_clear();
                for name in inherit {
                    if let Some(value) = std::env::var_os(name) {
                        cmd.env(name, value);
                    }
                }
                cmd.envs(vars.iter().map(|(k, v)| (k, v)));
            }
            Env::Whole { vars } => {
                cmd.envs(vars.iter().map(|(k, v)| (k, v)));
            }
        }
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        if let Some(gid) = self.gid {
            cmd.gid(gid);
        }
        if let Some(uid) = self.uid {
            cmd.uid(uid);
        }
        cmd
    }

    /// [`Tool::command`] as a tokio command, for async supervisors.
    pub fn tokio_command(&self) -> tokio::process::Command {
        tokio::process::Command::from(self.command())
    }

    /// Runs the program to completion and returns its output; a nonzero exit, a signal,
    /// the deadline or a failure to start is a [`ToolError`].
    pub fn output(&self) -> Result<Output, ToolError> {
        wait::output(self).map_err(|failure| self.error(failure))
    }

    /// [`Tool::output`], discarding the output.
    pub fn run(&self) -> Result<(), ToolError> {
        self.output().map(drop)
    }

    /// [`Tool::output`] on tokio (the program is killed if the future is dropped).
    pub async fn output_async(&self) -> Result<Output, ToolError> {
        wait::output_async(self)
            .await
            .map_err(|failure| self.error(failure))
    }

    /// [`Tool::output_async`], discarding the output.
    pub async fn run_async(&self) -> Result<(), ToolError> {
        self.output_async().await.map(drop)
    }

    /// A [`ToolError`] about this program.
    pub fn error(&self, failure: Failure) -> ToolError {
        ToolError {
            description: self.description.clone(),
            program: self.program.clone(),
            failure,
        }
    }
}

#[cfg(test)]
mod tests;
