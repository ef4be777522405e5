//! Fuzzes the bundle reader (`verify` and `unpack`): any bytes, signed with the trusted key
//! so the detached-signature checks pass and the stream parser and inner checks are what
//! is exercised. It must never panic, hang, or write outside its staging directory.
//!
//! Run: `cd bundle/fuzz && cargo +nightly fuzz run reader corpus/reader seeds/reader -- -max_total_time=600`
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

/// The committed fuzz-only key: the seeds in corpus/reader are signed with it, so inputs
/// derived from them keep a valid manifest signature and reach the entry checks.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keys");
        Fixture {
            secret: SecretKey::from_file(&keys.join("fuzz-only.key"), None).expect("sk"),
            public: PublicKey::from_file(&keys.join("fuzz-only.pub")).expect("pk"),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    })
}

/// First byte odd: the rest is a tar stream, gzipped here so mutations reach the tar
/// parser and manifest checks instead of dying on the gzip CRC. Even: the rest as is.
fn bundle_bytes(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(rest).expect("gzip");
            gz.finish().expect("gzip")
        }
        Some((_, rest)) => rest.to_vec(),
        None => Vec::new(),
    }
}

fuzz_target!(|input: &[u8]| {
    let data = &bundle_bytes(input)[..];
    let f = fixture();
    let work = tempfile::tempdir_in(f.dir.path()).expect("tempdir");
    let bundle = work.path().join("b.tar.gz");
    std::fs::write(&bundle, data).expect("write");
    let sig = sign_reader(&f.secret, data, "fuzz").expect("sign");
    std::fs::write(airgap_bundle::signature_path(&bundle), sig).expect("write sig");
    let opts = VerifyOptions {
        allow_expired: true,
        ..VerifyOptions::default()
    };
    let verified = airgap_bundle::verify(&bundle, &f.public, &opts, &()).is_ok();
    let target = work.path().join("out");
    let unpacked = airgap_bundle::unpack(&bundle, &f.public, &target, &opts, &()).is_ok();
    assert_eq!(verified, unpacked, "verify and unpack disagree");
    let leftovers = std::fs::read_dir(work.path()).expect("ls").count();
    assert_eq!(
        leftovers,
        if unpacked { 3 } else { 2 },
        "unpack left a staging directory"
    );
});
