//! pack → verify → unpack gives back the stage; packing is reproducible.

use crate::forge;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use airgap_bundle::{pack, unpack, verify, PackOptions, VerifyOptions};

/// path → (is_dir, mode, content) for every entry under `root` (symlinks read through).
fn tree(root: &Path) -> BTreeMap<String, (bool, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for item in std::fs::read_dir(&dir).expect("read_dir") {
            let path = item.expect("entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("rel")
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::metadata(&path).expect("meta");
            if meta.is_dir() {
                out.insert(rel, (true, 0, Vec::new()));
                stack.push(path);
            } else {
                let exec = meta.permissions().mode() & 0o111 != 0;
                out.insert(
                    rel,
                    (false, u32::from(exec), std::fs::read(&path).expect("read")),
                );
            }
        }
    }
    out
}

fn opts() -> PackOptions {
    PackOptions {
        name: "demo".into(),
        version: Some("1.0.0".into()),
        sequence: Some(7),
        ..PackOptions::default()
    }
}

#[test]
fn pack_verify_unpack_round_trip() {
    let keys = forge::keys();
    let work = tempfile::tempdir().expect("tempdir");
    let stage = work.path().join("stage");
    forge::sample_stage(&stage);
    let out = work.path().join("b.tar.gz");
    let summary = pack(&stage, &keys.secret, &out, &opts(), &()).expect("pack");
    assert_eq!(summary.manifest.sequence, 7);
    assert_eq!(
        summary.manifest.files.len(),
        6,
        "symlink is stored as a file"
    );

    let verified = verify(&out, &keys.public, &VerifyOptions::default(), &()).expect("verify");
    assert_eq!(verified.manifest, summary.manifest);

    let into = work.path().join("unpacked");
    unpack(&out, &keys.public, &into, &VerifyOptions::default(), &()).expect("unpack");
    assert_eq!(tree(&into), tree(&stage));
    assert!(
        into.join("data/empty-dir").is_dir(),
        "empty directories survive"
    );
    let link = std::fs::symlink_metadata(into.join("bin/coder-link")).expect("meta");
    assert!(link.file_type().is_file(), "links become regular files");
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no staging or temp files left: {leftovers:?}"
    );
}

#[test]
fn packing_twice_is_byte_identical() {
    let keys = forge::keys();
    let work = tempfile::tempdir().expect("tempdir");
    let stage = work.path().join("stage");
    forge::sample_stage(&stage);
    std::fs::create_dir_all(work.path().join("one")).expect("mkdir");
    std::fs::create_dir_all(work.path().join("two")).expect("mkdir");
    let a = work.path().join("one/b.tar.gz");
    let b = work.path().join("two/b.tar.gz");
    pack(&stage, &keys.secret, &a, &opts(), &()).expect("pack a");
    let one_thread = PackOptions {
        threads: Some(1),
        ..opts()
    };
    pack(&stage, &keys.secret, &b, &one_thread, &()).expect("pack b");
    assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
    let sig = |p: &Path| std::fs::read(airgap_bundle::signature_path(p)).expect("sig");
    assert_eq!(sig(&a), sig(&b), "deterministic signatures");
}

#[test]
fn manifest_records_lock_components_and_expiry() {
    let keys = forge::keys();
    let work = tempfile::tempdir().expect("tempdir");
    let stage = work.path().join("stage");
    forge::sample_stage(&stage);
    let component = |version: &str, path: &str| airgap_bundle::manifest::Component {
        version: version.into(),
        paths: vec![path.into()],
    };
    let components = [
        ("coderd".to_string(), component("2.24.1", "bin/coder")),
        ("terraform".to_string(), component("1.0.3", "bin/terraform")),
    ];
    let created = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("ts");
    let o = PackOptions {
        created: Some(created),
        expires_in_days: 10,
        components: components.into_iter().collect(),
        ..opts()
    };
    let out = work.path().join("b.tar.gz");
    let m = pack(&stage, &keys.secret, &out, &o, &())
        .expect("pack")
        .manifest;
    assert_eq!(m.components["coderd"].version, "2.24.1");
    assert_eq!(
        m.components["terraform"].paths,
        vec!["bin/terraform".to_string()]
    );
    assert_eq!(m.expires - m.created, time::Duration::days(10));
    // The bundle expired long ago: refused unless allowed on purpose.
    let err = verify(&out, &keys.public, &VerifyOptions::default(), &()).expect_err("expired");
    assert!(
        matches!(err, airgap_bundle::BundleError::Expired { .. }),
        "{err}"
    );
    let allow = VerifyOptions {
        allow_expired: true,
        ..VerifyOptions::default()
    };
    verify(&out, &keys.public, &allow, &()).expect("allowed");
}

#[test]
fn stage_with_reserved_name_or_escaping_link_is_refused() {
    let keys = forge::keys();
    let work = tempfile::tempdir().expect("tempdir");
    let stage = work.path().join("stage");
    std::fs::create_dir_all(&stage).expect("mkdir");
    std::fs::write(stage.join("SHA256SUMS"), b"x").expect("write");
    let out = work.path().join("b.tar.gz");
    let err = pack(&stage, &keys.secret, &out, &opts(), &()).expect_err("reserved");
    assert!(err.to_string().contains("reserved"), "{err}");
    std::fs::remove_file(stage.join("SHA256SUMS")).expect("rm");
    std::os::unix::fs::symlink("/etc/hostname", stage.join("escape")).expect("symlink");
    let err = pack(&stage, &keys.secret, &out, &opts(), &()).expect_err("escape");
    assert!(err.to_string().contains("outside the stage"), "{err}");
    assert!(!out.exists(), "no bundle written on failure");
}

#[test]
fn encrypted_key_needs_its_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = airgap_bundle::keys::generate(dir.path(), Some("hunter2".into())).expect("keygen");
    assert!(airgap_bundle::SecretKey::file_is_encrypted(&k.secret).expect("read"));
    let mode = std::fs::metadata(&k.secret)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(airgap_bundle::SecretKey::from_file(&k.secret, None).is_err());
    assert!(airgap_bundle::SecretKey::from_file(&k.secret, Some("wrong".into())).is_err());
    let sk =
        airgap_bundle::SecretKey::from_file(&k.secret, Some("hunter2".into())).expect("decrypt");
    assert_eq!(sk.id(), k.id);
    let again = airgap_bundle::keys::generate(dir.path(), None).expect_err("overwrite");
    assert!(matches!(
        again,
        airgap_bundle::BundleError::KeyExists { .. }
    ));
}
