//! The library API as `install` and `up` will use it: typed errors, file modes, and
//! renewal that never lets a reader pair a certificate with the wrong key.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use airgap_certs::{
    read_leaf_files, CaKind, CertificateAuthority, CertsError, InitOptions, LeafRequest, LeafStatus,
};

fn new_ca(dir: &Path) -> CertificateAuthority {
    let mut options = InitOptions::new("Lib Test CA");
    options.permitted_dns = vec!["example.com".into()];
    CertificateAuthority::init(dir, &options).expect("init")
}

/// Whether `key_pem` is the private key of the first certificate in `chain_pem`.
fn key_matches(chain_pem: &str, key_pem: &str) -> bool {
    let Some(Ok(block)) = x509_parser::pem::Pem::iter_from_buffer(chain_pem.as_bytes()).next()
    else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&block.contents) else {
        return false;
    };
    let Ok(key) = rcgen::KeyPair::from_pem(key_pem) else {
        return false;
    };
    key.public_key_raw() == cert.public_key().subject_public_key.data.as_ref()
}

#[test]
fn renewal_swaps_certificate_and_key_together() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = new_ca(&tmp.path().join("ca"));
    let prefix = tmp.path().join("tls/coderd");
    let first = ca
        .issue_to_files(&LeafRequest::server(["coder.example.com"], []), &prefix)
        .expect("issue");
    assert_eq!(
        std::fs::metadata(&first.key_path)
            .expect("key")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, prefix, cert_path) = (done.clone(), prefix.clone(), first.cert_path.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !done.load(Ordering::Relaxed) || reads < 50 {
                let (chain, key) = read_leaf_files(&prefix).expect("read pair");
                assert!(
                    key_matches(&chain, key.expose()),
                    "mismatched pair after {reads} reads"
                );
                // The public path alone is never a partial file either.
                let text = std::fs::read_to_string(&cert_path).expect("read crt");
                assert_eq!(text.matches("END CERTIFICATE").count(), 2, "partial {text}");
                reads += 1;
            }
            reads
        })
    };
    let mut serials = vec![first.leaf.serial.clone()];
    for _ in 0..15 {
        let renewed = ca.renew_due(time::Duration::days(3650)).expect("renew");
        assert_eq!(renewed.len(), 1);
        assert_eq!(renewed[0].old_serial, *serials.last().expect("serial"));
        serials.push(renewed[0].new.leaf.serial.clone());
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().expect("reader thread") >= 50);

    let (chain, key) = read_leaf_files(&prefix).expect("read");
    assert!(key_matches(&chain, key.expose()));
    assert_eq!(
        chain,
        std::fs::read_to_string(&first.cert_path).expect("crt")
    );
    let ledger = ca.ledger().expect("ledger");
    assert_eq!(ledger.entries.len(), 16);
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(
        ledger
            .entries
            .iter()
            .filter(|e| e.status(now) == LeafStatus::Superseded)
            .count(),
        15
    );
    let versions = std::fs::read_dir(tmp.path().join("tls/.coderd.tls"))
        .expect("store")
        .count();
    assert!(
        versions <= 3,
        "old versions must be pruned (current link + 2 dirs), found {versions}"
    );
}

#[test]
fn errors_are_typed_per_failure() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    let ca = new_ca(&dir);
    assert_eq!(ca.kind(), CaKind::Generated);

    let outside = ca
        .issue(&LeafRequest::server(["git.example.org"], []))
        .expect_err("outside");
    assert!(
        matches!(outside, CertsError::OutsideConstraints { ref name, .. } if name == "git.example.org"),
        "{outside}"
    );
    let ip = ca
        .issue(&LeafRequest::server(
            Vec::<String>::new(),
            ["10.0.0.1".parse().expect("ip")],
        ))
        .expect_err("ip");
    assert!(matches!(ip, CertsError::OutsideConstraints { .. }), "{ip}");
    let none = ca
        .issue(&LeafRequest::server(Vec::<String>::new(), []))
        .expect_err("no SAN");
    assert!(matches!(none, CertsError::NoSubjectAltName), "{none}");
    let bad = ca
        .issue(&LeafRequest::server(["bad_name.example.com"], []))
        .expect_err("syntax");
    assert!(matches!(bad, CertsError::InvalidInput { .. }), "{bad}");
    let again = CertificateAuthority::init(&dir, &InitOptions::new("Again")).expect_err("exists");
    assert!(matches!(again, CertsError::CaExists(_)), "{again}");
    let missing = CertificateAuthority::load(&tmp.path().join("absent")).expect_err("missing");
    assert!(matches!(missing, CertsError::NoCa { .. }), "{missing}");

    let leaf = ca
        .issue(&LeafRequest::server(["Coder.Example.com"], []))
        .expect("issue");
    assert!(
        !format!("{leaf:?}").contains("PRIVATE KEY"),
        "Debug must not print the key"
    );
    assert_eq!(
        ca.ledger().expect("ledger").entries[0].dns_names,
        ["coder.example.com"]
    );

    // A CA key that others can read is refused on load, like ssh does.
    std::fs::set_permissions(dir.join("ca.key"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let loose = CertificateAuthority::load(&dir).expect_err("insecure");
    assert!(
        matches!(loose, CertsError::InsecureKeyFile { .. }),
        "{loose}"
    );
}

#[test]
fn the_root_key_can_go_offline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    new_ca(&dir);
    std::fs::rename(dir.join("root.key"), tmp.path().join("offline-root.key"))
        .expect("move root key");
    let ca = CertificateAuthority::load(&dir).expect("load without root.key");
    ca.issue(&LeafRequest::server(["mirror.example.com"], []))
        .expect("issue without root.key");
    assert!(ca
        .crl(time::Duration::days(7))
        .expect("crl")
        .pem
        .contains("BEGIN X509 CRL"));
}
