use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

const SH: &str = "/bin/sh";

fn sh(script: &str) -> Tool {
    Tool::new("test script", SH).args(["-c", script])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn the_environment_is_only_what_the_caller_names() -> Result<(), ToolError> {
    let env = Tool::new("env", "/usr/bin/env")
        .env("LANG", "C")
        .env("ONE", "1");
    assert_eq!(env.output()?.stdout_lossy(), "LANG=C\nONE=1\n");
    let path = std::env::var("PATH").expect("tests run with a PATH");
    let inherited = Tool::new("env", "/usr/bin/env")
        .inherit_env(["PATH", "CODER_AIRGAP_TOOL_TEST_UNSET"])
        .output()?;
    assert_eq!(inherited.stdout_lossy(), format!("PATH={path}\n"));
    let async_env = runtime().block_on(env.output_async())?;
    assert_eq!(async_env.stdout_lossy(), "LANG=C\nONE=1\n");
    Ok(())
}

#[test]
fn the_whole_environment_is_kept_only_on_request() -> Result<(), ToolError> {
    let path = std::env::var("PATH").expect("tests run with a PATH");
    let out = Tool::new("env", "/usr/bin/env")
        .inherit_whole_env()
        .env("MARKER", "1")
        .output()?
        .stdout_lossy();
    assert!(out.lines().any(|l| l == format!("PATH={path}")), "{out}");
    assert!(out.lines().any(|l| l == "MARKER=1"), "{out}");
    Ok(())
}

#[test]
fn stdin_is_dev_null() -> Result<(), ToolError> {
    let tool = Tool::new("readlink", "/bin/readlink").arg("/proc/self/fd/0");
    assert_eq!(tool.output()?.stdout_lossy(), "/dev/null\n");
    assert_eq!(
        runtime().block_on(tool.output_async())?.stdout_lossy(),
        "/dev/null\n"
    );
    let spawned = tool
        .command()
        .output()
        .map_err(|cause| tool.error(Failure::Wait { cause }))?;
    assert_eq!(String::from_utf8_lossy(&spawned.stdout), "/dev/null\n");
    Ok(())
}

#[test]
fn the_working_directory_is_set() -> Result<(), ToolError> {
    let pwd = Tool::new("pwd", "/bin/pwd").current_dir("/");
    assert_eq!(pwd.output()?.stdout_lossy(), "/\n");
    Ok(())
}

#[test]
fn a_nonzero_exit_is_an_error_with_the_last_stderr_line() {
    let tool = sh("echo out; echo first >&2; echo '  last  ' >&2; echo >&2; exit 3");
    let check = |result: Result<Output, ToolError>| match result {
        Err(
            e @ ToolError {
                failure: Failure::Exit { code: 3, .. },
                ..
            },
        ) => {
            assert_eq!(
                e.to_string(),
                "test script (/bin/sh): exited with status 3: last"
            );
        }
        other => panic!("expected exit status 3, got {other:?}"),
    };
    check(tool.output());
    check(runtime().block_on(tool.output_async()));
    assert!(sh("exit 1").run().is_err());
    assert!(sh("exit 0").run().is_ok());
}

#[test]
fn a_signal_is_an_error() {
    match sh("kill -TERM $$").output() {
        Err(ToolError {
            failure: Failure::Signal { signal: 15, .. },
            ..
        }) => {}
        other => panic!("expected SIGTERM, got {other:?}"),
    }
}

#[test]
fn a_missing_program_is_a_spawn_error() {
    let tool = Tool::new("the missing program", "/nonexistent/airgap-tool-test");
    let check = |result: Result<Output, ToolError>| match result {
        Err(
            e @ ToolError {
                failure: Failure::Spawn { .. },
                ..
            },
        ) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(
                    "the missing program (/nonexistent/airgap-tool-test): cannot start it: "
                ),
                "{msg}"
            );
            assert!(msg.contains("No such file or directory"), "{msg}");
        }
        other => panic!("expected a spawn error, got {other:?}"),
    };
    check(tool.output());
    check(runtime().block_on(tool.output_async()));
}

/// A shell that writes its pid into `pid_file` and then sleeps for 30 s.
fn sleeper(pid_file: &Path) -> Tool {
    sh(&format!(
        "echo $$ > '{}'; exec sleep 30",
        pid_file.display()
    ))
    .timeout(Duration::from_millis(1500))
}

/// Waits up to 5 s for process `pid` to be gone (or a zombie awaiting its reaper).
fn is_gone(pid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        if stat.is_empty() || state.starts_with('Z') {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_timed_out_and_killed(result: Result<Output, ToolError>, pid_file: &Path, start: Instant) {
    match result {
        Err(
            e @ ToolError {
                failure: Failure::Timeout { .. },
                ..
            },
        ) => assert_eq!(
            e.to_string(),
            "test script (/bin/sh): did not finish within 1.5 s and was killed"
        ),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let pid = std::fs::read_to_string(pid_file).expect("the script wrote its pid");
    assert!(is_gone(pid.trim()), "process {} still runs", pid.trim());
}

#[test]
fn a_timeout_kills_the_child() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let start = Instant::now();
    assert_timed_out_and_killed(sleeper(&pid_file).output(), &pid_file, start);
}

#[test]
fn an_async_timeout_kills_the_child() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let start = Instant::now();
    let result = runtime().block_on(sleeper(&pid_file).output_async());
    assert_timed_out_and_killed(result, &pid_file, start);
}

#[test]
fn a_fast_program_is_not_cut_short_by_its_deadline() -> Result<(), ToolError> {
    let tool = sh("echo done").timeout(Duration::from_secs(30));
    assert_eq!(tool.output()?.stdout_lossy(), "done\n");
    assert_eq!(
        runtime().block_on(tool.output_async())?.stdout_lossy(),
        "done\n"
    );
    Ok(())
}

#[test]
fn debug_shows_variable_names_not_values() {
    let tool = Tool::new("pg_dump", "/pg/bin/pg_dump").env("PGPASSWORD", "hunter2");
    let debug = format!("{tool:?}");
    assert!(debug.contains("PGPASSWORD"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
}
