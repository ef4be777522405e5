//! Detached-signature verification against keys made by GnuPG 2.2 (fixtures: an RSA key with
//! a signing subkey, an Ed25519 key, an RSA key that expired in 2020) and by the testkit.

use std::path::PathBuf;

use airgap_mirror::openpgp::{self, VerifyError};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fpr(name: &str) -> String {
    String::from_utf8(fixture(name))
        .expect("utf8")
        .trim()
        .to_string()
}

#[test]
fn gpg_rsa_key_with_signing_subkey_verifies() {
    let info = openpgp::verify_detached(
        &fixture("rsa-subkey.pub.asc"),
        &fixture("rsa-subkey.sig"),
        &fixture("SHA256SUMS"),
    )
    .expect("verifies");
    assert_eq!(info.fingerprint, fpr("rsa-subkey.fpr"));
    assert_ne!(
        info.signer_fingerprint, info.fingerprint,
        "signed by the subkey"
    );
    assert_eq!(info.key_id, info.fingerprint[24..]);
    assert!(info.user_ids.iter().any(|u| u.contains("rsa@example.test")));
}

#[test]
fn gpg_ed25519_key_verifies() {
    let info = openpgp::verify_detached(
        &fixture("ed25519.pub.asc"),
        &fixture("ed25519.sig"),
        &fixture("SHA256SUMS"),
    )
    .expect("verifies");
    assert_eq!(info.fingerprint, fpr("ed25519.fpr"));
}

#[test]
fn altered_data_is_a_bad_signature() {
    let mut data = fixture("SHA256SUMS");
    data[0] ^= 1;
    let err = openpgp::verify_detached(
        &fixture("rsa-subkey.pub.asc"),
        &fixture("rsa-subkey.sig"),
        &data,
    )
    .expect_err("must fail");
    assert!(
        matches!(err, VerifyError::BadSignature { ref fingerprint } if *fingerprint == fpr("rsa-subkey.fpr")),
        "{err:?}"
    );
}

#[test]
fn expired_key_is_reported_as_expired() {
    let err = openpgp::verify_detached(
        &fixture("expired.pub.asc"),
        &fixture("expired.sig"),
        &fixture("SHA256SUMS"),
    )
    .expect_err("must fail");
    let text = err.to_string();
    assert!(
        text.contains("expired on 2020-01-02") && !text.contains("1577"),
        "the expiry is a date, not a Unix timestamp: {text}"
    );
    match err {
        VerifyError::Expired {
            fingerprint,
            expired_at,
        } => {
            assert_eq!(fingerprint, fpr("expired.fpr"));
            assert_eq!(
                expired_at,
                1_577_836_800 + 86_400,
                "created 2020-01-01, valid one day"
            );
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    // Judged at a time before expiry, the same key and signature are fine.
    let before = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_577_840_000);
    let key = fixture("expired.pub.asc");
    openpgp::verify_detached_at(
        &[&key],
        &fixture("expired.sig"),
        &fixture("SHA256SUMS"),
        before,
    )
    .expect("valid then");
}

#[test]
fn signature_by_a_key_not_offered_is_unknown_key() {
    let err = openpgp::verify_detached_any(
        &[&fixture("ed25519.pub.asc"), &fixture("expired.pub.asc")],
        &fixture("rsa-subkey.sig"),
        &fixture("SHA256SUMS"),
    )
    .expect_err("must fail");
    match err {
        VerifyError::UnknownKey { offered, .. } => {
            assert!(
                offered.contains(&fpr("ed25519.fpr")) && offered.contains(&fpr("expired.fpr")),
                "{offered}"
            );
        }
        other => panic!("expected UnknownKey, got {other:?}"),
    }
}

#[test]
fn tries_offered_keys_in_order() {
    let info = openpgp::verify_detached_any(
        &[&fixture("ed25519.pub.asc"), &fixture("rsa-subkey.pub.asc")],
        &fixture("rsa-subkey.sig"),
        &fixture("SHA256SUMS"),
    )
    .expect("second key verifies");
    assert_eq!(info.fingerprint, fpr("rsa-subkey.fpr"));
}

#[test]
fn testkit_rsa_keys_verify_binary_and_armored() {
    let key = airgap_testkit::registry::signing_key();
    let data = b"abc  terraform-provider-x_1.0.0_linux_amd64.zip\n";
    let binary = key.sign_detached(data).expect("sign");
    let armored = key.sign_detached_armored(data).expect("sign");
    for sig in [binary, armored.into_bytes()] {
        let info =
            openpgp::verify_detached(key.public_armored.as_bytes(), &sig, data).expect("verifies");
        assert_eq!(info.fingerprint, key.fingerprint);
    }
    assert_eq!(
        openpgp::fingerprint(key.public_armored.as_bytes()).expect("fpr"),
        key.fingerprint
    );
}

#[test]
fn garbage_is_a_parse_error() {
    let key = fixture("rsa-subkey.pub.asc");
    assert!(matches!(
        openpgp::verify_detached(b"nope", &fixture("rsa-subkey.sig"), b"x"),
        Err(VerifyError::KeyParse(_))
    ));
    assert!(matches!(
        openpgp::verify_detached(&key, b"nope", b"x"),
        Err(VerifyError::SignatureParse(_))
    ));
}
