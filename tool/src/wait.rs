//! Waiting for a run-to-completion program, with its deadline, on a thread or on tokio.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::last_line;
use crate::{Failure, Output, Tool};

/// How often a blocking wait with a deadline looks at the child.
const POLL: Duration = Duration::from_millis(10);

/// Spawns `tool` with piped output and waits for it (blocking).
pub(crate) fn output(tool: &Tool) -> Result<Output, Failure> {
    let mut child = tool
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|cause| Failure::Spawn { cause })?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = match tool.timeout {
        None => child.wait().map_err(|cause| Failure::Wait { cause })?,
        Some(limit) => wait_until(&mut child, limit)?,
    };
    // The readers end when the child (and anything it left holding the pipes) is gone.
    let output = Output {
        stdout: joined(stdout)?,
        stderr: joined(stderr)?,
    };
    judge(status, output)
}

/// Spawns `tool` with piped output and waits for it on tokio.
pub(crate) async fn output_async(tool: &Tool) -> Result<Output, Failure> {
    let child = tool
        .tokio_command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|cause| Failure::Spawn { cause })?;
    // A timeout drops the future and with it the child, which kill_on_drop kills (tokio
    // reaps it in the background).
    let finished = child.wait_with_output();
    let out = match tool.timeout {
        None => finished.await,
        Some(limit) => tokio::time::timeout(limit, finished)
            .await
            .map_err(|_| Failure::Timeout { limit })?,
    }
    .map_err(|cause| Failure::Wait { cause })?;
    judge(
        out.status,
        Output {
            stdout: out.stdout,
            stderr: out.stderr,
        },
    )
}

/// Success, or the exit status or signal with the last line of stderr.
fn judge(status: ExitStatus, output: Output) -> Result<Output, Failure> {
    if status.success() {
        return Ok(output);
    }
    let stderr = last_line(&output.stderr);
    Err(match (status.code(), status.signal()) {
        (Some(code), _) => Failure::Exit { code, stderr },
        (None, Some(signal)) => Failure::Signal { signal, stderr },
        (None, None) => Failure::Exit { code: -1, stderr },
    })
}

/// Waits for `child` up to `limit`; past it, kills and reaps it.
fn wait_until(child: &mut Child, limit: Duration) -> Result<ExitStatus, Failure> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|cause| Failure::Wait { cause })? {
            return Ok(status);
        }
        let now = Instant::now();
        if now >= deadline {
            // Kill fails only when it has just exited; wait reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::Timeout { limit });
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// Reads a pipe to its end on a thread of its own (two pipes read in turn could
/// deadlock on a child that fills the other one).
fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<std::io::Result<Vec<u8>>>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).map(|_| bytes)
        })
    })
}

/// What a [`drain`] thread read.
fn joined(reader: Option<JoinHandle<std::io::Result<Vec<u8>>>>) -> Result<Vec<u8>, Failure> {
    match reader {
        None => Ok(Vec::new()),
        Some(handle) => match handle.join() {
            Ok(read) => read.map_err(|cause| Failure::Wait { cause }),
            Err(_) => Err(Failure::Wait {
                cause: std::io::Error::other("the output reader panicked"),
            }),
        },
    }
}
