//! The bundle commands driven as an operator would, with the stock tools beside them:
//! `minisign` both ways, GNU `tar`, `gzip -t` and `sha256sum -c`.

use crate::support;

use std::path::{Path, PathBuf};

use support::{airgap, fails, ok, tools::clean_command, write};

fn stage(dir: &Path) {
    write(dir, "bin/coder", &b"#!/bin/sh\necho stand-in\n".repeat(500));
    write(dir, "postgres/lib/libpq.so.5", &vec![7u8; 300_000]);
    write(
        dir,
        "providers/registry.example.test/coder/coder/index.json",
        br#"{"versions":{"2.2.0":{}}}"#,
    );
    write(
        dir,
        "appliance.lock.json",
        br#"{"components":{"coderd":{"version":"2.24.1","paths":["bin/coder"]},"postgres":{"version":"15.18","paths":["postgres"]}}}"#,
    );
}

fn keygen(dir: &Path) {
    ok(airgap().args(["keygen", "--unencrypted", "--out"]).arg(dir));
}

fn pack(stage: &Path, key: &Path, out: &Path) {
    ok(airgap()
        .arg("pack")
        .arg(stage)
        .arg("--key")
        .arg(key)
        .arg("--out")
        .arg(out)
        .args(["--version", "1.2.3", "--sequence", "42"]));
}

/// A temp dir with a key pair in `keys/`, the sample stage in `stage/` and its bundle
/// `b.tar.gz`; returns the dir and those three paths.
fn packed() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let t = tempfile::tempdir().expect("tempdir");
    let (keys, st, out) = (
        t.path().join("keys"),
        t.path().join("stage"),
        t.path().join("b.tar.gz"),
    );
    stage(&st);
    keygen(&keys);
    pack(&st, &keys.join("bundle.key"), &out);
    (t, keys, st, out)
}

#[test]
fn stock_tools_accept_our_bundle() {
    let (t, keys, st, out) = packed();

    ok(clean_command("minisign")
        .arg("-Vm")
        .arg(&out)
        .arg("-p")
        .arg(keys.join("bundle.pub")));
    ok(clean_command("gzip").arg("-t").arg(&out));
    let x = t.path().join("x");
    std::fs::create_dir(&x).expect("mkdir");
    ok(clean_command("tar").arg("-xzf").arg(&out).arg("-C").arg(&x));
    ok(clean_command("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&x));
    assert_eq!(
        std::fs::read(x.join("bin/coder")).expect("read"),
        std::fs::read(st.join("bin/coder")).expect("read")
    );
}

#[test]
fn our_tools_accept_a_minisign_generated_key() {
    let t = tempfile::tempdir().expect("tempdir");
    let (st, out) = (t.path().join("stage"), t.path().join("b.tar.gz"));
    stage(&st);
    let (sk, pk) = (t.path().join("mini.key"), t.path().join("mini.pub"));
    ok(clean_command("minisign")
        .arg("-G")
        .arg("-W")
        .arg("-s")
        .arg(&sk)
        .arg("-p")
        .arg(&pk));
    pack(&st, &sk, &out);
    let v = ok(airgap().arg("verify").arg(&out).arg("--pubkey").arg(&pk));
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("OK "));
    // And a signature made by the stock tool over our bundle verifies with our reader.
    std::fs::remove_file(t.path().join("b.tar.gz.minisig")).expect("rm");
    ok(clean_command("minisign")
        .arg("-S")
        .arg("-s")
        .arg(&sk)
        .arg("-m")
        .arg(&out));
    ok(airgap().arg("verify").arg(&out).arg("--pubkey").arg(&pk));
}

#[test]
fn inspect_unpack_and_one_line_errors() {
    let (t, keys, _, out) = packed();

    let json = ok(airgap()
        .arg("inspect")
        .arg(&out)
        .arg("--json")
        .arg("--pubkey")
        .arg(keys.join("bundle.pub")));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["manifest"]["sequence"], 42);
    assert_eq!(v["manifest"]["version"], "1.2.3");
    assert_eq!(v["manifest"]["components"]["coderd"]["version"], "2.24.1");
    assert_eq!(v["file_count"], 4);
    let text = ok(airgap().arg("inspect").arg(&out));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("NOT CHECKED") && text.contains("component   postgres 15.18"),
        "{text}"
    );

    let into = t.path().join("unpacked");
    ok(airgap()
        .arg("unpack")
        .arg(&out)
        .arg("--pubkey")
        .arg(keys.join("bundle.pub"))
        .arg("--into")
        .arg(&into));
    assert!(into.join("postgres/lib/libpq.so.5").is_file());
    let err = fails(
        airgap()
            .arg("unpack")
            .arg(&out)
            .arg("--pubkey")
            .arg(keys.join("bundle.pub"))
            .arg("--into")
            .arg(&into),
    );
    assert!(err.contains("already exists"), "{err}");

    // Wrong key: one line naming both key IDs.
    let other = t.path().join("other");
    keygen(&other);
    let err = fails(
        airgap()
            .arg("verify")
            .arg(&out)
            .arg("--pubkey")
            .arg(other.join("bundle.pub")),
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("signed by key") && err.contains("trusted key is"),
        "{err}"
    );

    // Truncated copy: named as such.
    let cut = t.path().join("cut.tar.gz");
    let bytes = std::fs::read(&out).expect("read");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    std::fs::copy(
        t.path().join("b.tar.gz.minisig"),
        t.path().join("cut.tar.gz.minisig"),
    )
    .expect("copy");
    let err = fails(
        airgap()
            .arg("verify")
            .arg(&cut)
            .arg("--pubkey")
            .arg(keys.join("bundle.pub")),
    );
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn keygen_encrypts_by_default_and_never_overwrites() {
    let t = tempfile::tempdir().expect("tempdir");
    let keys = t.path().join("keys");
    let pw = t.path().join("pw");
    std::fs::write(&pw, "correct horse\n").expect("write");
    ok(airgap()
        .arg("keygen")
        .arg("--out")
        .arg(&keys)
        .arg("--password-file")
        .arg(&pw));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(keys.join("bundle.key"))
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let err = fails(
        airgap()
            .arg("keygen")
            .arg("--unencrypted")
            .arg("--out")
            .arg(&keys),
    );
    assert!(err.contains("refusing to overwrite"), "{err}");

    let (st, out) = (t.path().join("stage"), t.path().join("b.tar.gz"));
    stage(&st);
    // No terminal and no password file: a clear refusal, not a hang.
    let err = fails(
        airgap()
            .arg("pack")
            .arg(&st)
            .arg("--key")
            .arg(keys.join("bundle.key"))
            .arg("--out")
            .arg(&out),
    );
    assert!(err.contains("--password-file"), "{err}");
    ok(airgap()
        .arg("pack")
        .arg(&st)
        .arg("--key")
        .arg(keys.join("bundle.key"))
        .arg("--password-file")
        .arg(&pw)
        .arg("--out")
        .arg(&out));
    ok(clean_command("minisign")
        .arg("-Vm")
        .arg(&out)
        .arg("-p")
        .arg(keys.join("bundle.pub")));
}
