//! The exit path: every failing command prints each cause once (docs/errors.md), and a
//! closed stdout (`| head -1`) is a quiet exit 0, never a panic.

use crate::support;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use support::{airgap, ok, write};

/// A small stage, a key pair and its bundle, plus files that are wrong in one way each.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = dir.path();
        let stage = t.join("stage");
        write(
            &stage,
            "bin/coder",
            &b"#!/bin/sh\necho stand-in\n".repeat(200),
        );
        write(
            &stage,
            "appliance.lock.json",
            br#"{"components":{"coderd":{"version":"2.24.1","paths":["bin/coder"]}}}"#,
        );
        ok(airgap()
            .args(["keygen", "--unencrypted", "--out"])
            .arg(t.join("keys")));
        ok(airgap()
            .arg("pack")
            .arg(&stage)
            .arg("--key")
            .arg(t.join("keys/bundle.key"))
            .arg("--out")
            .arg(t.join("b.tar.gz"))
            .args(["--version", "1.2.3", "--sequence", "7"]));
        // The same bundle with one byte changed in the middle, its signature kept.
        let mut bytes = std::fs::read(t.join("b.tar.gz")).expect("read bundle");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        std::fs::write(t.join("tampered.tar.gz"), &bytes).expect("write");
        std::fs::copy(
            t.join("b.tar.gz.minisig"),
            t.join("tampered.tar.gz.minisig"),
        )
        .expect("copy signature");
        write(t, "garbage.tar.gz", &[0x42; 4096]);
        write(
            t,
            "bad.pub",
            b"untrusted comment: no key here\nnot base64 at all\n",
        );
        write(
            t,
            "bad-spec.toml",
            b"[bundle]\nname = \"x\"\nthis line is not toml\n",
        );
        write(t, "bad-providers.toml", b"[[provider]\nsource = \n");
        write(t, "nonempty/file", b"x");
        Fixture { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// The `error: ...` line of a failed run's stderr.
fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no `error:` line in stderr:\n{stderr}"))
}

/// Fails when any `: `-separated segment of `message` appears twice, or an OS error twice.
fn assert_each_cause_once(what: &str, message: &str) {
    let segments: Vec<&str> = message.split(": ").map(str::trim).collect();
    for (i, segment) in segments.iter().enumerate() {
        assert!(
            !segments[i + 1..].contains(segment),
            "{what}: segment {segment:?} appears twice in\n{message}"
        );
    }
    assert!(
        message.matches("os error").count() <= 1,
        "{what}: the OS error appears twice in\n{message}"
    );
}

/// Runs `cmd`, which must fail, and returns its error line after checking it.
fn failing(what: &str, cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{what} unexpectedly succeeded\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: {}\n{stderr}",
        out.status
    );
    let line = error_line(&stderr).to_string();
    assert_each_cause_once(what, &line);
    line
}

/// An argument list of strings and paths.
macro_rules! argv {
    ($($arg:expr),* $(,)?) => {
        vec![$(OsString::from(&$arg)),*]
    };
}

#[test]
fn failing_commands_print_each_cause_once() {
    let f = Fixture::new();
    let p = |rel: &str| f.path(rel);
    let key = p("keys/bundle.pub");
    let cases: Vec<(&str, Vec<OsString>, &str)> = vec![
        (
            "verify a missing bundle",
            argv!["verify", "--pubkey", key, p("missing.tar.gz")],
            "missing.tar.gz",
        ),
        (
            "inspect a missing bundle",
            argv!["inspect", p("missing.tar.gz")],
            "os error 2",
        ),
        (
            "inspect a file that is no bundle",
            argv!["inspect", p("garbage.tar.gz")],
            "garbage.tar.gz",
        ),
        (
            "verify with a malformed key",
            argv!["verify", "--pubkey", p("bad.pub"), p("b.tar.gz")],
            "bad.pub",
        ),
        (
            "verify with a missing key",
            argv!["verify", "--pubkey", p("missing.pub"), p("b.tar.gz")],
            "missing.pub",
        ),
        (
            "verify a tampered bundle",
            argv!["verify", "--pubkey", key, p("tampered.tar.gz")],
            "tampered.tar.gz",
        ),
        (
            "unpack a tampered bundle",
            argv![
                "unpack",
                "--pubkey",
                key,
                p("tampered.tar.gz"),
                "--into",
                p("unpacked")
            ],
            "tampered.tar.gz",
        ),
        (
            "pack a missing stage",
            argv![
                "pack",
                p("no-stage"),
                "--key",
                p("keys/bundle.key"),
                "--out",
                p("o.tar.gz")
            ],
            "no-stage",
        ),
        (
            "pack with a missing key",
            argv![
                "pack",
                p("stage"),
                "--key",
                p("missing.key"),
                "--out",
                p("o.tar.gz")
            ],
            "missing.key",
        ),
        (
            "keygen over an existing key",
            argv!["keygen", "--unencrypted", "--out", p("keys")],
            "already exists",
        ),
        (
            "ca list on a missing directory",
            argv!["ca", "list", "--dir", p("no-ca")],
            "no-ca",
        ),
        (
            "ca issue on a missing directory",
            argv![
                "ca",
                "issue",
                "--dir",
                p("no-ca"),
                "--out",
                p("leaf"),
                "--dns",
                "a.example.com"
            ],
            "no-ca",
        ),
        (
            "ca init in a directory with other files",
            argv!["ca", "init", "--dir", p("nonempty"), "--name", "Test CA"],
            "not empty",
        ),
        (
            "sync with a bad spec line",
            argv!["sync", "--spec", p("bad-spec.toml"), "--out", p("stage2")],
            "bad-spec.toml",
        ),
        (
            "sync with a missing spec",
            argv!["sync", "--spec", p("missing.toml"), "--out", p("stage3")],
            "missing.toml",
        ),
        (
            "mirror sync with a bad providers file",
            argv![
                "mirror",
                "sync",
                "--providers",
                p("bad-providers.toml"),
                "--out",
                p("mirror")
            ],
            "bad-providers.toml",
        ),
        (
            "mirror serve without its certificate",
            argv![
                "mirror",
                "serve",
                "--dir",
                p("no-mirror"),
                "--cert",
                p("missing.crt"),
                "--key",
                p("missing.key"),
                "--listen",
                "127.0.0.1:0",
            ],
            "missing.crt",
        ),
        (
            "status on a root that is not installed",
            argv!["status", "--root", p("no-root")],
            "no-root",
        ),
    ];
    assert!(cases.len() >= 10);
    for (what, args, expect) in cases {
        let line = failing(what, airgap().args(args));
        assert!(line.contains(expect), "{what}: {expect:?} not in\n{line}");
    }
}

/// Runs `cmd` with its stdout a pipe whose read end is already closed, so its first
/// write fails with EPIPE: it must exit 0 and say nothing.
fn with_closed_stdout(what: &str, cmd: &mut Command) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} with stdout closed: {}\n{stderr}",
        out.status
    );
    assert!(stderr.is_empty(), "{what} said something:\n{stderr}");
}

#[test]
fn a_closed_stdout_is_a_quiet_exit_zero() {
    let f = Fixture::new();
    let ca = f.path("ca");
    ok(airgap().args(["ca", "init", "--dir"]).arg(&ca).args([
        "--name",
        "Test CA",
        "--permit-dns",
        "example.com",
    ]));
    for n in 0..40 {
        ok(airgap()
            .args(["ca", "issue", "--dir"])
            .arg(&ca)
            .arg("--out")
            .arg(f.path(&format!("leaf{n}")))
            .args(["--dns", &format!("host{n}.example.com")]));
    }
    let bundle = f.path("b.tar.gz");
    let pubkey = f.path("keys/bundle.pub");
    with_closed_stdout("inspect", airgap().arg("inspect").arg(&bundle));
    with_closed_stdout(
        "inspect --json",
        airgap().args(["inspect", "--json"]).arg(&bundle),
    );
    with_closed_stdout(
        "verify",
        airgap()
            .arg("verify")
            .arg("--pubkey")
            .arg(&pubkey)
            .arg(&bundle),
    );
    with_closed_stdout("ca list", airgap().args(["ca", "list", "--dir"]).arg(&ca));
    with_closed_stdout(
        "ca list --json",
        airgap().args(["ca", "list", "--json", "--dir"]).arg(&ca),
    );
    with_closed_stdout(
        "mirror terraformrc",
        airgap().args([
            "mirror",
            "terraformrc",
            "--url",
            "https://mirror.example.com:8444",
        ]),
    );
}
