//! [`ToolError`]: how running an external program failed, in one complete line.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// An external program that could not be run or did not succeed. The message names the
/// description, the program's path and the [`Failure`]; it is complete on its own, so
/// nothing is chained below it (each cause is printed once).
#[derive(Debug, thiserror::Error)]
#[error("{description} ({}): {failure}", .program.display())]
pub struct ToolError {
    /// What the program was run for, e.g. `terraform version`.
    pub description: String,
    /// The program that was run.
    pub program: PathBuf,
    /// What went wrong.
    pub failure: Failure,
}

/// What went wrong when running a program. Its `Display` is the part of a
/// [`ToolError`]'s message after the description and the path, for callers whose own
/// error already names the program.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The program could not be started (missing, not executable, bad directory).
    #[error("cannot start it: {cause}")]
    Spawn {
        /// The OS error (its text is in the message, so it is not a `source`).
        cause: io::Error,
    },
    /// Reading its output or waiting for it failed.
    #[error("lost track of it: {cause}")]
    Wait {
        /// The OS error (its text is in the message, so it is not a `source`).
        cause: io::Error,
    },
    /// It exited with a nonzero status.
    #[error("exited with status {code}{}", with_line(.stderr))]
    Exit {
        /// The exit status.
        code: i32,
        /// The last non-empty line of its stderr (empty when it printed none).
        stderr: String,
    },
    /// A signal ended it.
    #[error("killed by signal {signal}{}", with_line(.stderr))]
    Signal {
        /// The signal number.
        signal: i32,
        /// The last non-empty line of its stderr (empty when it printed none).
        stderr: String,
    },
    /// It did not finish before its deadline, and was killed.
    #[error("did not finish within {} s and was killed", .limit.as_secs_f64())]
    Timeout {
        /// The deadline it was given.
        limit: Duration,
    },
}

/// `: LINE`, or nothing for an empty line.
fn with_line(line: &str) -> String {
    if line.is_empty() {
        String::new()
    } else {
        format!(": {line}")
    }
}

/// The last non-empty line of `bytes`, trimmed.
pub(crate) fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_skips_trailing_blank_lines() {
        assert_eq!(last_line(b"first\n  second  \n\n \n"), "second");
        assert_eq!(last_line(b"\n\n"), "");
    }

    #[test]
    fn message_names_every_part_once() {
        let e = ToolError {
            description: "terraform version".into(),
            program: "/opt/bin/terraform".into(),
            failure: Failure::Spawn {
                cause: io::Error::from(io::ErrorKind::NotFound),
            },
        };
        assert_eq!(
            e.to_string(),
            "terraform version (/opt/bin/terraform): cannot start it: entity not found"
        );
        assert!(std::error::Error::source(&e).is_none());
        let exit = Failure::Exit {
            code: 3,
            stderr: String::new(),
        };
        assert_eq!(exit.to_string(), "exited with status 3");
    }
}
