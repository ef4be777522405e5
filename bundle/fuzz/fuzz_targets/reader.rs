//! Fuzzes the bundle reader (`verify` and `unpack`): any bytes, signed with the trusted key
//! so the detached-signature checks pass and the stream parser and inner checks are what
//! is exercised. It must never panic, hang, or write outside its staging directory.
//!
//! Run: `cd bundle/fuzz && cargo +nightly fuzz run reader -- -max_total_time=600`
#![no_main]

use std::sync::OnceLock;

use airgap_bundle::signature::sign_reader;
use airgap_bundle::{PublicKey, SecretKey, VerifyOptions};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    dir: tempfile::TempDir,
    secret: SecretKey,
    public: PublicKey,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = airgap_bundle::keys::generate(&dir.path().join("keys"), None).expect("keygen");
        Fixture {
            secret: SecretKey::from_file(&keys.secret, None).expect("sk"),
            public: PublicKey::from_file(&keys.public).expect("pk"),
            dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let work = tempfile::tempdir_in(f.dir.path()).expect("tempdir");
    let bundle = work.path().join("b.tar.gz");
    std::fs::write(&bundle, data).expect("write");
    let sig = sign_reader(&f.secret, data, "fuzz").expect("sign");
    std::fs::write(airgap_bundle::signature_path(&bundle), sig).expect("write sig");
    let opts = VerifyOptions { allow_expired: true, ..VerifyOptions::default() };
    let verified = airgap_bundle::verify(&bundle, &f.public, &opts, &()).is_ok();
    let target = work.path().join("out");
    let unpacked = airgap_bundle::unpack(&bundle, &f.public, &target, &opts, &()).is_ok();
    assert_eq!(verified, unpacked, "verify and unpack disagree");
    let leftovers = std::fs::read_dir(work.path()).expect("ls").count();
    assert_eq!(leftovers, if unpacked { 3 } else { 2 }, "unpack left a staging directory");
});
