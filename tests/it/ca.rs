//! `coder-airgap ca` end to end, checked with the real `openssl` command.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::{airgap, fails, ok, tools::clean_command};

fn openssl(args: &[&std::ffi::OsStr]) -> Output {
    clean_command("openssl")
        .args(args)
        .output()
        .expect("run openssl")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// `ca init` in `TMP/ca` permitting example.com and 10.0.0.0/8.
fn init_ca(tmp: &Path) -> PathBuf {
    let dir = tmp.join("ca");
    ok(airgap()
        .args(["ca", "init", "--dir"])
        .arg(&dir)
        .args([
            "--name",
            "Example Corp Internal CA",
            "--permit-dns",
            "example.com",
        ])
        .args(["--permit-ip", "10.0.0.0/8", "--days", "365"]));
    dir
}

fn issue(dir: &Path, out: &Path, extra: &[&str]) -> Output {
    ok(airgap()
        .args(["ca", "issue", "--dir"])
        .arg(dir)
        .arg("--out")
        .arg(out)
        .args(extra))
}

fn crt(prefix: &Path) -> PathBuf {
    prefix.with_file_name(format!(
        "{}.crt",
        prefix.file_name().expect("name").to_string_lossy()
    ))
}

fn key(prefix: &Path) -> PathBuf {
    prefix.with_file_name(format!(
        "{}.key",
        prefix.file_name().expect("name").to_string_lossy()
    ))
}

/// `openssl verify` of PREFIX.crt against `trust`, using the chain in the file itself.
fn verify(trust: &Path, cert: &Path, extra: &[&std::ffi::OsStr]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["verify".as_ref(), "-CAfile".as_ref(), trust.as_os_str()];
    args.extend_from_slice(extra);
    args.extend(["-untrusted".as_ref(), cert.as_os_str(), cert.as_os_str()]);
    openssl(&args)
}

fn serial_of(cert: &Path) -> String {
    let out = openssl(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-serial".as_ref(),
        "-in".as_ref(),
        cert.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_owned()
}

fn export_trust(dir: &Path, out: &Path) -> String {
    let printed = ok(airgap()
        .args(["ca", "export-trust", "--dir"])
        .arg(dir)
        .arg("--out")
        .arg(out));
    String::from_utf8_lossy(&printed.stdout).into_owned()
}

fn list_json(dir: &Path) -> Vec<serde_json::Value> {
    let out = ok(airgap().args(["ca", "list", "--json", "--dir"]).arg(dir));
    serde_json::from_slice(&out.stdout).expect("list --json is JSON")
}

#[test]
fn init_writes_private_files_and_a_constrained_root_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init_ca(tmp.path());
    assert_eq!(mode(&dir), 0o700);
    for key in ["root.key", "ca.key"] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
    }
    let root = openssl(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-text".as_ref(),
        "-in".as_ref(),
        dir.join("root.crt").as_os_str(),
    ]);
    let root = text(&root);
    assert!(root.contains("X509v3 Name Constraints: critical"), "{root}");
    assert!(
        root.contains("DNS:example.com") && root.contains("IP:10.0.0.0/255.0.0.0"),
        "{root}"
    );
    assert!(root.contains("CA:TRUE"), "{root}");

    let before = std::fs::read(dir.join("root.key")).expect("read key");
    let err = fails(airgap().args(["ca", "init", "--dir"]).arg(&dir).args([
        "--name",
        "Second CA",
        "--permit-dns",
        "example.com",
    ]));
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read(dir.join("root.key")).expect("read key"),
        before,
        "root key must be untouched"
    );

    // A directory holding other files is refused too, and left as it was.
    let busy = tmp.path().join("busy");
    support::write(&busy, "notes.txt", b"keep me");
    let err = fails(
        airgap()
            .args(["ca", "init", "--dir"])
            .arg(&busy)
            .args(["--name", "X"]),
    );
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read_dir(&busy).expect("ls").count(), 1);
}

#[test]
fn issued_leaves_verify_with_openssl_and_show_sans_and_ekus() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init_ca(tmp.path());
    let bundle = tmp.path().join("ca-bundle.pem");
    let printed = export_trust(&dir, &bundle);

    // The printed fingerprint is the one openssl computes for the exported bundle.
    let fp = openssl(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-fingerprint".as_ref(),
        "-sha256".as_ref(),
        "-in".as_ref(),
        bundle.as_os_str(),
    ]);
    let fp = String::from_utf8_lossy(&fp.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(fp.len(), 95, "{fp}");
    assert!(
        printed.contains(&fp),
        "printed {printed:?}, openssl says {fp}"
    );

    let server = tmp.path().join("tls/coderd");
    issue(
        &dir,
        &server,
        &[
            "--dns",
            "coder.example.com",
            "*.apps.example.com",
            "--ip",
            "10.1.2.3",
        ],
    );
    assert_eq!(mode(&key(&server)), 0o600);
    let out = verify(&bundle, &crt(&server), &[]);
    assert!(out.status.success(), "{}", text(&out));

    let shown = text(&openssl(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-text".as_ref(),
        "-in".as_ref(),
        crt(&server).as_os_str(),
    ]));
    assert!(
        shown.contains("DNS:coder.example.com, DNS:*.apps.example.com, IP Address:10.1.2.3"),
        "{shown}"
    );
    assert!(
        shown.contains("TLS Web Server Authentication") && !shown.contains("Client Authentication"),
        "{shown}"
    );
    assert!(shown.contains("CA:FALSE"), "{shown}");

    // The file holds the leaf and the intermediate, not the root.
    let pem = std::fs::read_to_string(crt(&server)).expect("read crt");
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(!pem.contains(std::fs::read_to_string(&bundle).expect("bundle").trim()));

    let client = tmp.path().join("tls/alice");
    issue(&dir, &client, &["--dns", "alice.example.com", "--client"]);
    let shown = text(&openssl(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-text".as_ref(),
        "-in".as_ref(),
        crt(&client).as_os_str(),
    ]));
    assert!(
        shown.contains("TLS Web Client Authentication") && !shown.contains("Server Authentication"),
        "{shown}"
    );
    let purpose = verify(
        &bundle,
        &crt(&client),
        &["-purpose".as_ref(), "sslclient".as_ref()],
    );
    assert!(purpose.status.success(), "{}", text(&purpose));

    // The ledger lists both, with serials spelled the way openssl prints them.
    let rows = list_json(&dir);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["serial"], serial_of(&crt(&server)).as_str());
    assert_eq!(rows[0]["subject"], "coder.example.com");
    assert_eq!(rows[0]["status"], "valid");
    assert_eq!(rows[0]["sans"][2], "IP:10.1.2.3");
    assert!(rows[0]["not_after"]
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));
    let table = ok(airgap().args(["ca", "list", "--dir"]).arg(&dir));
    assert!(String::from_utf8_lossy(&table.stdout).contains(&serial_of(&crt(&client))));
}

#[test]
fn issue_refuses_names_outside_the_constraints_no_sans_and_existing_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init_ca(tmp.path());
    let out = tmp.path().join("x");
    for args in [
        vec!["--dns", "git.example.org"],
        vec!["--dns", "notexample.com"],
        vec!["--dns", "ok.example.com", "--ip", "192.168.1.1"],
    ] {
        let err = fails(
            airgap()
                .args(["ca", "issue", "--dir"])
                .arg(&dir)
                .arg("--out")
                .arg(&out)
                .args(&args),
        );
        assert!(
            err.contains("outside this CA's name constraints"),
            "{args:?}: {err}"
        );
    }
    let err = fails(
        airgap()
            .args(["ca", "issue", "--dir"])
            .arg(&dir)
            .arg("--out")
            .arg(&out),
    );
    assert!(err.contains("subject alternative name"), "{err}");
    assert!(
        !crt(&out).exists() && !key(&out).exists(),
        "refusals must write nothing"
    );
    assert!(list_json(&dir).is_empty(), "refusals must not be recorded");

    issue(&dir, &out, &["--dns", "registry.example.com"]);
    let err = fails(
        airgap()
            .args(["ca", "issue", "--dir"])
            .arg(&dir)
            .arg("--out")
            .arg(&out)
            .args(["--dns", "git.example.com"]),
    );
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn revoked_serials_appear_in_the_crl_and_fail_openssl_crl_check() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init_ca(tmp.path());
    let bundle = tmp.path().join("ca-bundle.pem");
    export_trust(&dir, &bundle);
    let good = tmp.path().join("good");
    let bad = tmp.path().join("bad");
    issue(&dir, &good, &["--dns", "good.example.com"]);
    issue(&dir, &bad, &["--dns", "bad.example.com"]);
    let bad_serial = serial_of(&crt(&bad));

    ok(airgap()
        .args(["ca", "revoke", "--dir"])
        .arg(&dir)
        .arg(&bad_serial)
        .args(["--reason", "key-compromise"]));
    let again = fails(
        airgap()
            .args(["ca", "revoke", "--dir"])
            .arg(&dir)
            .arg(&bad_serial),
    );
    assert!(again.contains("already revoked"), "{again}");
    let unknown = fails(
        airgap()
            .args(["ca", "revoke", "--dir"])
            .arg(&dir)
            .arg("0A0B0C"),
    );
    assert!(unknown.contains("was not issued by this CA"), "{unknown}");

    let crl = tmp.path().join("crl.pem");
    ok(airgap()
        .args(["ca", "crl", "--dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&crl));
    let shown = text(&openssl(&[
        "crl".as_ref(),
        "-noout".as_ref(),
        "-text".as_ref(),
        "-in".as_ref(),
        crl.as_os_str(),
    ]));
    assert!(
        shown.contains(&format!("Serial Number: {bad_serial}")),
        "{shown}"
    );
    assert!(shown.contains("Key Compromise"), "{shown}");
    assert!(
        shown.contains("Issuer: CN = Example Corp Internal CA Issuing CA"),
        "{shown}"
    );

    let crl_args: [&std::ffi::OsStr; 3] =
        ["-crl_check".as_ref(), "-CRLfile".as_ref(), crl.as_os_str()];
    let out = verify(&bundle, &crt(&bad), &crl_args);
    assert!(!out.status.success(), "revoked leaf passed: {}", text(&out));
    assert!(text(&out).contains("certificate revoked"), "{}", text(&out));
    let out = verify(&bundle, &crt(&good), &crl_args);
    assert!(out.status.success(), "{}", text(&out));

    let rows = list_json(&dir);
    let row = rows
        .iter()
        .find(|r| r["serial"] == bad_serial.as_str())
        .expect("revoked row");
    assert_eq!(row["status"], "revoked");
}

/// The SubjectPublicKeyInfo of a certificate and of a key, as PEM from openssl.
fn pubkeys(prefix: &Path) -> (String, String) {
    let from_cert = openssl(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-pubkey".as_ref(),
        "-in".as_ref(),
        crt(prefix).as_os_str(),
    ]);
    let from_key = openssl(&[
        "pkey".as_ref(),
        "-pubout".as_ref(),
        "-in".as_ref(),
        key(prefix).as_os_str(),
    ]);
    (
        String::from_utf8_lossy(&from_cert.stdout).into_owned(),
        String::from_utf8_lossy(&from_key.stdout).into_owned(),
    )
}

#[test]
fn renew_reissues_near_expiry_leaves_in_place() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init_ca(tmp.path());
    let soon = tmp.path().join("tls/mirror");
    let later = tmp.path().join("tls/coderd");
    issue(
        &dir,
        &soon,
        &["--dns", "mirror.example.com", "--days", "10"],
    );
    issue(
        &dir,
        &later,
        &["--dns", "coder.example.com", "--days", "90"],
    );
    let old_serial = serial_of(&crt(&soon));
    let later_serial = serial_of(&crt(&later));

    let out = ok(airgap()
        .args(["ca", "renew", "--dir"])
        .arg(&dir)
        .args(["--within-days", "30"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&old_serial));
    let new_serial = serial_of(&crt(&soon));
    assert_ne!(
        new_serial, old_serial,
        "the near-expiry leaf must be replaced"
    );
    assert_eq!(
        serial_of(&crt(&later)),
        later_serial,
        "a leaf not due must be left alone"
    );
    let (cert_key, file_key) = pubkeys(&soon);
    assert!(cert_key.contains("BEGIN PUBLIC KEY"));
    assert_eq!(
        cert_key, file_key,
        "renewed key must match renewed certificate"
    );
    assert_eq!(mode(&key(&soon)), 0o600);
    let bundle = tmp.path().join("ca-bundle.pem");
    export_trust(&dir, &bundle);
    assert!(verify(&bundle, &crt(&soon), &[]).status.success());

    // The renewal asks for the original --days (10): valid in 9 days, expired in 11.
    let soon_crt = crt(&soon);
    let checkend = |secs: &str| {
        let args: [&std::ffi::OsStr; 6] = [
            "x509".as_ref(),
            "-noout".as_ref(),
            "-checkend".as_ref(),
            secs.as_ref(),
            "-in".as_ref(),
            soon_crt.as_os_str(),
        ];
        openssl(&args).status.success()
    };
    assert!(
        checkend("777600") && !checkend("950400"),
        "renewed leaf should last 10 days"
    );

    let rows = list_json(&dir);
    let old = rows
        .iter()
        .find(|r| r["serial"] == old_serial.as_str())
        .expect("old row");
    assert_eq!(old["status"], "superseded");
    assert_eq!(old["superseded_by"], new_serial.as_str());

    // Nothing is due within 5 days now.
    let out = ok(airgap()
        .args(["ca", "renew", "--dir"])
        .arg(&dir)
        .args(["--within-days", "5"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing"));
    assert_eq!(serial_of(&crt(&soon)), new_serial);
}

/// A CA made the way an enterprise PKI team would: `openssl req -x509`.
fn openssl_ca(tmp: &Path, key_alg: &[&str], extra: &[&str]) -> (PathBuf, PathBuf) {
    let cert = tmp.join("corp-ca.pem");
    let key = tmp.join("corp-ca.key");
    let mut cmd = clean_command("openssl");
    cmd.args([
        "req",
        "-x509",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=Corp Enterprise CA",
    ])
    .args(key_alg)
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&cert)
    .args([
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ])
    .args(extra);
    let out = cmd.output().expect("openssl req");
    assert!(out.status.success(), "{}", text(&out));
    (cert, key)
}

#[test]
fn import_uses_a_ca_made_by_openssl_req() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ca_pem, ca_key) = openssl_ca(tmp.path(), &["-newkey", "rsa:2048"], &[]);
    let dir = tmp.path().join("ca");
    ok(airgap()
        .args(["ca", "import", "--dir"])
        .arg(&dir)
        .arg("--cert")
        .arg(&ca_pem)
        .arg("--key")
        .arg(&ca_key));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ca.key")), 0o600);

    let leaf = tmp.path().join("git");
    issue(&dir, &leaf, &["--dns", "git.corp.internal"]);
    let out = verify(&ca_pem, &crt(&leaf), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let pem = std::fs::read_to_string(crt(&leaf)).expect("read");
    assert_eq!(
        pem.matches("BEGIN CERTIFICATE").count(),
        1,
        "a self-signed imported root is not sent"
    );

    // The trust bundle is the imported certificate.
    let bundle = tmp.path().join("bundle.pem");
    export_trust(&dir, &bundle);
    let a = openssl(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-fingerprint".as_ref(),
        "-sha256".as_ref(),
        "-in".as_ref(),
        bundle.as_os_str(),
    ]);
    let b = openssl(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-fingerprint".as_ref(),
        "-sha256".as_ref(),
        "-in".as_ref(),
        ca_pem.as_os_str(),
    ]);
    assert_eq!(a.stdout, b.stdout);

    // CRLs are signed by the imported key and honoured by openssl.
    ok(airgap()
        .args(["ca", "revoke", "--dir"])
        .arg(&dir)
        .arg(serial_of(&crt(&leaf))));
    let crl = tmp.path().join("crl.pem");
    ok(airgap()
        .args(["ca", "crl", "--dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&crl));
    let out = verify(
        &ca_pem,
        &crt(&leaf),
        &["-crl_check".as_ref(), "-CRLfile".as_ref(), crl.as_os_str()],
    );
    assert!(text(&out).contains("certificate revoked"), "{}", text(&out));

    // Importing again into the same directory is refused.
    let err = fails(
        airgap()
            .args(["ca", "import", "--dir"])
            .arg(&dir)
            .arg("--cert")
            .arg(&ca_pem)
            .arg("--key")
            .arg(&ca_key),
    );
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn import_honours_the_imported_constraints_and_checks_the_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ca_pem, ca_key) = openssl_ca(
        tmp.path(),
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &[
            "-addext",
            "nameConstraints=critical,permitted;DNS:corp.internal",
        ],
    );
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    let (_, other_key) = openssl_ca(
        &other,
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &[],
    );

    let err = fails(
        airgap()
            .args(["ca", "import", "--dir"])
            .arg(tmp.path().join("bad"))
            .arg("--cert")
            .arg(&ca_pem)
            .arg("--key")
            .arg(&other_key),
    );
    assert!(err.contains("does not match"), "{err}");
    assert!(
        !tmp.path().join("bad").exists(),
        "a failed import leaves nothing"
    );

    let dir = tmp.path().join("ca");
    ok(airgap()
        .args(["ca", "import", "--dir"])
        .arg(&dir)
        .arg("--cert")
        .arg(&ca_pem)
        .arg("--key")
        .arg(&ca_key));
    let err = fails(
        airgap()
            .args(["ca", "issue", "--dir"])
            .arg(&dir)
            .arg("--out")
            .arg(tmp.path().join("x"))
            .args(["--dns", "git.example.com"]),
    );
    assert!(err.contains("outside this CA's name constraints"), "{err}");
    let leaf = tmp.path().join("registry");
    issue(&dir, &leaf, &["--dns", "registry.corp.internal"]);
    assert!(verify(&ca_pem, &crt(&leaf), &[]).status.success());
}

#[test]
fn commands_on_a_missing_ca_say_how_to_create_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = fails(
        airgap()
            .args(["ca", "list", "--dir"])
            .arg(tmp.path().join("nope")),
    );
    assert!(err.contains("ca init"), "{err}");
}
