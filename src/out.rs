//! Everything the commands print on stdout goes through [`outln!`] and [`out!`].
//!
//! Rust ignores SIGPIPE, so `println!` panics when the reader went away
//! (`coder-airgap inspect B | head -1`). These macros return an error instead: a closed
//! stdout becomes [`ClosedStdout`], which `main` turns into a quiet exit 0, once for every
//! command; any other write failure is an ordinary error naming stdout.

use std::fmt;
use std::io::Write as _;

/// The reader of stdout went away (EPIPE): not a failure of the command.
#[derive(Debug)]
pub struct ClosedStdout;

impl fmt::Display for ClosedStdout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for ClosedStdout {}

/// True when `err` (anywhere in its context chain) is a closed stdout.
pub fn is_closed_stdout(err: &anyhow::Error) -> bool {
    err.downcast_ref::<ClosedStdout>().is_some()
}

/// Writes `args` to stdout, followed by a newline when `newline`.
pub fn write(args: fmt::Arguments<'_>, newline: bool) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| match newline {
            true => stdout.write_all(b"\n"),
            false => Ok(()),
        })
        .and_then(|()| stdout.flush());
    written.map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => anyhow::Error::new(ClosedStdout),
        _ => anyhow::Error::new(e).context("writing to stdout"),
    })
}

/// `println!` that returns `anyhow::Result<()>` (a closed stdout is [`ClosedStdout`]).
macro_rules! outln {
    () => {
        $crate::out::write(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*), true)
    };
}

/// `print!` that returns `anyhow::Result<()>` (a closed stdout is [`ClosedStdout`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*), false)
    };
}

pub(crate) use {out, outln};
