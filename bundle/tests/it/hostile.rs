//! The hostile corpus: corrupt and malicious bundles, each refused with its own error by
//! both `verify` and `unpack`, and `unpack` never leaves anything behind. Bundles are
//! forged with the trusted key (manifest and file signatures valid) so that the planted
//! defect is the only thing wrong.

use crate::forge;

use std::path::Path;

use airgap_bundle::manifest::Manifest;
use airgap_bundle::{unpack, verify, BundleError, VerifyOptions};
use forge::{gzip, manifest_for, metadata, metadata_raw, tar_bytes, write_signed, Keys, Raw};

const A: &[u8] = b"hello, air gap\n";

fn b_bin() -> Vec<u8> {
    forge::pseudo_random(2000, 3)
}

fn honest_manifest() -> Manifest {
    manifest_for(&[("a.txt", A), ("d/b.bin", &b_bin())], &["d"])
}

fn honest_entries() -> Vec<Raw> {
    vec![
        Raw::file("a.txt", A),
        Raw::dir("d"),
        Raw::file("d/b.bin", &b_bin()),
    ]
}

/// Metadata for `manifest` followed by `entries`, gzipped.
fn bundle(keys: &Keys, manifest: &Manifest, entries: Vec<Raw>) -> Vec<u8> {
    let mut members = metadata(manifest, &keys.secret);
    members.extend(entries);
    gzip(&tar_bytes(&members))
}

fn honest(keys: &Keys) -> Vec<u8> {
    bundle(keys, &honest_manifest(), honest_entries())
}

/// An honest bundle whose `d/b.bin` entry is replaced by `entry`, manifest unchanged.
fn with_entry(keys: &Keys, entry: Raw) -> Vec<u8> {
    let mut entries = honest_entries();
    entries[2] = entry;
    bundle(keys, &honest_manifest(), entries)
}

/// Checks that `verify` and `unpack` both refuse the bundle with an error `expect` accepts,
/// and that `unpack` leaves the directory exactly as it was.
fn refused(
    name: &str,
    keys: &Keys,
    dir: &Path,
    bundle_path: &Path,
    expect: fn(&BundleError) -> bool,
) {
    let err = verify(bundle_path, &keys.public, &VerifyOptions::default(), &()).expect_err(name);
    assert!(expect(&err), "{name}: verify gave the wrong error: {err}");

    let before = listing(dir);
    let target = dir.join("target");
    let err = unpack(
        bundle_path,
        &keys.public,
        &target,
        &VerifyOptions::default(),
        &(),
    )
    .expect_err(name);
    assert!(expect(&err), "{name}: unpack gave the wrong error: {err}");
    assert_eq!(listing(dir), before, "{name}: unpack left something behind");
    assert!(
        !dir.join("escape").exists() && !Path::new("/tmp/escape-coder-airgap").exists(),
        "{name}: escaped"
    );
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Writes `gz` signed by the trusted key and checks that it is refused as `expect` says.
fn case(name: &str, keys: &Keys, gz: &[u8], expect: fn(&BundleError) -> bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_signed(dir.path(), "bundle.tar.gz", gz, &keys.secret);
    refused(name, keys, dir.path(), &path, expect);
}

#[test]
fn honest_forgery_is_accepted() {
    // Guards the corpus itself: without the planted defect, the forger's bundle passes.
    let keys = forge::keys();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_signed(dir.path(), "ok.tar.gz", &honest(&keys), &keys.secret);
    verify(&path, &keys.public, &VerifyOptions::default(), &()).expect("honest forgery verifies");
    unpack(
        &path,
        &keys.public,
        &dir.path().join("t"),
        &VerifyOptions::default(),
        &(),
    )
    .expect("unpacks");
    assert_eq!(std::fs::read(dir.path().join("t/a.txt")).expect("read"), A);
}

#[test]
fn signature_failures() {
    let keys = forge::keys();
    let other = forge::keys();
    let gz = honest(&keys);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_signed(dir.path(), "b.tar.gz", &gz, &keys.secret);
    std::fs::remove_file(airgap_bundle::signature_path(&path)).expect("rm sig");
    refused("missing signature", &keys, dir.path(), &path, |e| {
        matches!(e, BundleError::MissingSignature { .. })
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_signed(dir.path(), "b.tar.gz", &gz, &other.secret);
    refused(
        "detached signature by another key",
        &keys,
        dir.path(),
        &path,
        |e| matches!(e, BundleError::WrongKey { .. }),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_signed(dir.path(), "b.tar.gz", &gz, &keys.secret);
    std::fs::write(
        airgap_bundle::signature_path(&path),
        "untrusted comment: x\nnot base64!\n",
    )
    .expect("write");
    refused("malformed signature", &keys, dir.path(), &path, |e| {
        matches!(e, BundleError::MalformedSignature { .. })
    });

    // A valid signature, but over other bytes (the signature of a different bundle).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_signed(dir.path(), "b.tar.gz", &gz, &keys.secret);
    let other_bundle = with_entry(&keys, Raw::file("d/b.bin", &b_bin()));
    let mut other_gz = other_bundle.clone();
    other_gz.extend_from_slice(&gzip(&[0u8; 1024]));
    write_signed(dir.path(), "other.tar.gz", &other_gz, &keys.secret);
    std::fs::rename(
        dir.path().join("other.tar.gz.minisig"),
        airgap_bundle::signature_path(&path),
    )
    .expect("mv");
    std::fs::remove_file(dir.path().join("other.tar.gz")).expect("rm");
    refused(
        "signature over other bytes",
        &keys,
        dir.path(),
        &path,
        |e| matches!(e, BundleError::BadSignature { .. }),
    );

    let m = honest_manifest();
    let mut members = metadata(&m, &other.secret);
    members.extend(honest_entries());
    case(
        "manifest signed by another key",
        &keys,
        &gzip(&tar_bytes(&members)),
        |e| matches!(e, BundleError::WrongKey { .. }),
    );

    let mut members = metadata(&m, &keys.secret);
    let mut altered = m.clone();
    altered.sequence = 999;
    members[0] = Raw::file("manifest.json", &altered.to_bytes().expect("bytes"));
    members.extend(honest_entries());
    case(
        "manifest altered after signing",
        &keys,
        &gzip(&tar_bytes(&members)),
        |e| matches!(e, BundleError::BadSignature { .. }),
    );
}

#[test]
fn manifest_failures() {
    let keys = forge::keys();
    let mut expired = honest_manifest();
    expired.expires = expired.created - time::Duration::days(1);
    case(
        "expired",
        &keys,
        &bundle(&keys, &expired, honest_entries()),
        |e| matches!(e, BundleError::Expired { .. }),
    );

    let big = Raw {
        header_size: Some(64 << 20),
        ..Raw::file("manifest.json", b"{}")
    };
    case(
        "oversized manifest",
        &keys,
        &gzip(&tar_bytes(&[big])),
        |e| matches!(e, BundleError::ManifestTooLarge { .. }),
    );

    let mut members = metadata(&honest_manifest(), &keys.secret);
    members.swap(0, 2);
    case(
        "manifest not first",
        &keys,
        &gzip(&tar_bytes(&members)),
        |e| matches!(e, BundleError::MisplacedEntry { .. }),
    );

    let mut members = metadata(&honest_manifest(), &keys.secret);
    members[2] = Raw::file("SHA256SUMS", b"0000  a.txt\n");
    members.extend(honest_entries());
    case(
        "SHA256SUMS differs",
        &keys,
        &gzip(&tar_bytes(&members)),
        |e| matches!(e, BundleError::HashMismatch { path, .. } if path == "SHA256SUMS"),
    );

    let mut members = metadata_raw(b"{not json", "", &keys.secret);
    members.extend(honest_entries());
    case(
        "manifest not JSON",
        &keys,
        &gzip(&tar_bytes(&members)),
        |e| matches!(e, BundleError::BadManifest(_)),
    );

    let m = honest_manifest();
    let text = String::from_utf8(m.to_bytes().expect("bytes"))
        .expect("utf8")
        .replace("\"format\": 1", "\"format\": 99");
    let mut members = metadata_raw(text.as_bytes(), &m.sha256sums(), &keys.secret);
    members.extend(honest_entries());
    case(
        "unsupported format",
        &keys,
        &gzip(&tar_bytes(&members)),
        |e| matches!(e, BundleError::BadManifest(_)),
    );

    // A validly signed manifest that lists a path climbing out of the target.
    let evil = manifest_for(&[("a.txt", A), ("../escape", A)], &[]);
    let gz = bundle(
        &keys,
        &evil,
        vec![Raw::file("a.txt", A), Raw::file("../escape", A)],
    );
    case("signed manifest lists ../", &keys, &gz, |e| {
        matches!(e, BundleError::UnsafePath { .. })
    });

    let evil = manifest_for(&[("/tmp/escape-coder-airgap", A)], &[]);
    let gz = bundle(&keys, &evil, vec![Raw::file("/tmp/escape-coder-airgap", A)]);
    case("signed manifest lists an absolute path", &keys, &gz, |e| {
        matches!(e, BundleError::UnsafePath { .. })
    });
}

#[test]
fn entry_failures() {
    let keys = forge::keys();
    let m = honest_manifest();

    let mut entries = honest_entries();
    entries.push(Raw::file("extra", b"not listed"));
    case("unlisted entry", &keys, &bundle(&keys, &m, entries), |e| {
        matches!(e, BundleError::UnexpectedEntry { .. })
    });

    let mut entries = honest_entries();
    entries.pop();
    case(
        "missing entry",
        &keys,
        &bundle(&keys, &m, entries),
        |e| matches!(e, BundleError::MissingEntry { path } if path == "d/b.bin"),
    );

    let mut entries = honest_entries();
    entries.push(Raw::file("a.txt", A));
    case("duplicate entry", &keys, &bundle(&keys, &m, entries), |e| {
        matches!(e, BundleError::DuplicateEntry { .. })
    });

    let mut longer = b_bin();
    longer.extend_from_slice(b"more");
    case(
        "size mismatch",
        &keys,
        &with_entry(&keys, Raw::file("d/b.bin", &longer)),
        |e| matches!(e, BundleError::SizeMismatch { .. }),
    );

    let mut flipped = b_bin();
    flipped[1000] ^= 1;
    case(
        "hash mismatch",
        &keys,
        &with_entry(&keys, Raw::file("d/b.bin", &flipped)),
        |e| matches!(e, BundleError::HashMismatch { path, .. } if path == "d/b.bin"),
    );

    // The header declares fewer bytes than follow: the excess is read as a header.
    let mut entries = honest_entries();
    entries[0] = Raw {
        header_size: Some(5),
        data: vec![b'x'; 600],
        ..Raw::file("a.txt", A)
    };
    let m5 = manifest_for(&[("a.txt", b"xxxxx"), ("d/b.bin", &b_bin())], &["d"]);
    case(
        "more bytes than declared",
        &keys,
        &bundle(&keys, &m5, entries),
        |e| matches!(e, BundleError::Corrupt(_)),
    );

    let mut entries = honest_entries();
    entries.push(Raw::file("/etc/escape", A));
    case(
        "absolute entry path",
        &keys,
        &bundle(&keys, &m, entries),
        |e| matches!(e, BundleError::UnsafePath { .. }),
    );

    let mut entries = honest_entries();
    entries.push(Raw::file("d/../../escape", A));
    case(
        "dot-dot entry path",
        &keys,
        &bundle(&keys, &m, entries),
        |e| matches!(e, BundleError::UnsafePath { .. }),
    );

    let mut entries = honest_entries();
    entries[0] = Raw::file("d", A);
    entries.remove(1);
    case(
        "file where a directory is listed",
        &keys,
        &bundle(&keys, &m, entries),
        |e| matches!(e, BundleError::UnexpectedEntry { .. }),
    );

    let long = Raw {
        name: b"././@LongLink".to_vec(),
        kind: b'L',
        data: vec![b'a'; 5000],
        header_size: None,
        link: Vec::new(),
    };
    let mut entries = honest_entries();
    entries.push(long);
    entries.push(Raw::file("x", A));
    case(
        "GNU long name over 4096 bytes",
        &keys,
        &bundle(&keys, &m, entries),
        |e| matches!(e, BundleError::UnsafePath { .. }),
    );

    let mut entries = honest_entries();
    entries.push(Raw {
        name: vec![b'a', 0xff, 0xfe],
        ..Raw::file("x", A)
    });
    case("non-UTF-8 name", &keys, &bundle(&keys, &m, entries), |e| {
        matches!(e, BundleError::UnsafePath { .. })
    });
}

#[test]
fn forbidden_entry_types() {
    let keys = forge::keys();
    let kinds: [(u8, &str); 7] = [
        (b'2', "symlink"),
        (b'1', "hard link"),
        (b'3', "character device"),
        (b'4', "block device"),
        (b'6', "FIFO"),
        (b'x', "pax extended header"),
        (b'S', "sparse file"),
    ];
    for (kind, label) in kinds {
        // The manifest (validly signed) lists d/b.bin; the archive carries it as a link etc.
        let gz = with_entry(&keys, Raw::special("d/b.bin", kind));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_signed(dir.path(), "b.tar.gz", &gz, &keys.secret);
        let err = verify(&path, &keys.public, &VerifyOptions::default(), &()).expect_err(label);
        assert!(
            matches!(&err, BundleError::ForbiddenEntryType { kind, .. } if *kind == label),
            "{label}: wrong error {err}"
        );
        refused(label, &keys, dir.path(), &path, |e| {
            matches!(e, BundleError::ForbiddenEntryType { .. })
        });
    }
}

#[test]
fn stream_failures() {
    let keys = forge::keys();
    let gz = honest(&keys);

    for cut in [5, 20, gz.len() / 2, gz.len() - 9, gz.len() - 1] {
        case(&format!("truncated at {cut}"), &keys, &gz[..cut], |e| {
            matches!(e, BundleError::Truncated { .. })
        });
    }

    // The first deflate block header right after the 10-byte gzip header: BFINAL=1 with
    // the reserved block type 11.
    let mut garbage = gz.clone();
    garbage[10] = 0x07;
    case("corrupt deflate data", &keys, &garbage, |e| {
        matches!(e, BundleError::Corrupt(_))
    });

    let mut trailing = gz.clone();
    trailing.extend_from_slice(b"GARBAGE AFTER THE END");
    case("trailing garbage", &keys, &trailing, |e| {
        matches!(e, BundleError::TrailingData(_))
    });

    let mut zeros = gz.clone();
    zeros.extend_from_slice(&[0u8; 512]);
    case("trailing zero bytes", &keys, &zeros, |e| {
        matches!(e, BundleError::TrailingData(_))
    });

    let mut tar =
        tar_bytes(&[metadata(&honest_manifest(), &keys.secret), honest_entries()].concat());
    tar.extend_from_slice(b"hidden payload after the end marker");
    case("data after the tar end marker", &keys, &gzip(&tar), |e| {
        matches!(e, BundleError::TrailingData(_))
    });

    let mut tar =
        tar_bytes(&[metadata(&honest_manifest(), &keys.secret), honest_entries()].concat());
    let header_at = first_entry_after_metadata(&tar);
    tar[header_at + 10] ^= 0x01;
    case("tar header checksum", &keys, &gzip(&tar), |e| {
        matches!(e, BundleError::Corrupt(_))
    });
}

/// Offset of the first header after the three metadata members.
fn first_entry_after_metadata(tar: &[u8]) -> usize {
    let mut at = 0;
    for _ in 0..3 {
        let size_field = std::str::from_utf8(&tar[at + 124..at + 135]).expect("utf8");
        let size = usize::from_str_radix(size_field.trim_matches('\0'), 8).expect("octal");
        at += 512 + size.div_ceil(512) * 512;
    }
    at
}

#[test]
fn byte_flips_under_the_original_signature_are_refused() {
    // A bundle altered after signing: every single-bit flip, wherever it lands, is refused.
    let keys = forge::keys();
    let gz = honest(&keys);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_signed(dir.path(), "b.tar.gz", &gz, &keys.secret);
    for at in (0..gz.len()).step_by(97).chain([gz.len() - 1]) {
        let mut flipped = gz.clone();
        flipped[at] ^= 0x01;
        std::fs::write(&path, &flipped).expect("write");
        let result = verify(&path, &keys.public, &VerifyOptions::default(), &());
        assert!(result.is_err(), "flip at {at} of {} accepted", gz.len());
    }
}

#[test]
fn byte_flips_in_every_region_are_caught_by_inner_checks() {
    // The detached signature is re-made over the flipped bytes, so only the inner checks
    // (gzip CRC, tar structure, signed manifest, entry hashes) stand between the flip and
    // acceptance. Flips land where they change content: magic, data, CRC, length.
    let keys = forge::keys();
    let gz = honest(&keys);
    let regions = [
        ("gzip magic", 0),
        ("early deflate data", 40),
        ("middle", gz.len() / 2),
        ("late data", gz.len() - 30),
        ("CRC", gz.len() - 7),
        ("ISIZE", gz.len() - 2),
    ];
    for (label, at) in regions {
        for bit in [0x01u8, 0x80] {
            let mut flipped = gz.clone();
            flipped[at] ^= bit;
            case(
                &format!("flip {bit:#x} in {label} at {at}"),
                &keys,
                &flipped,
                |e| {
                    matches!(
                        e,
                        BundleError::Corrupt(_)
                            | BundleError::Truncated { .. }
                            | BundleError::HashMismatch { .. }
                            | BundleError::BadSignature { .. }
                            | BundleError::MalformedSignature { .. }
                            | BundleError::BadManifest(_)
                            | BundleError::MisplacedEntry { .. }
                            | BundleError::TrailingData(_)
                    )
                },
            );
        }
    }
}

/// A signed bundle of the honest entries whose manifest is `edit`ed first.
fn with_manifest(keys: &Keys, edit: impl FnOnce(&mut Manifest)) -> Vec<u8> {
    let mut m = honest_manifest();
    edit(&mut m);
    bundle(keys, &m, honest_entries())
}

/// A signed bundle whose manifest text has `from` replaced by `to` (for values the
/// `Manifest` type cannot even hold).
fn with_manifest_text(keys: &Keys, from: &str, to: &str) -> Vec<u8> {
    let m = honest_manifest();
    let text = String::from_utf8(m.to_bytes().expect("bytes")).expect("utf8");
    assert!(text.contains(from), "{from} not in the manifest");
    let text = text.replace(from, to);
    let mut members = metadata_raw(text.as_bytes(), &m.sha256sums(), &keys.secret);
    members.extend(honest_entries());
    gzip(&tar_bytes(&members))
}

fn name_refused(field: &'static str) -> impl Fn(&BundleError) -> bool {
    move |e| matches!(e, BundleError::InvalidName(n) if n.field == field)
}

#[test]
fn hostile_names_in_a_signed_manifest() {
    // Validly signed: only the name checks stand between these and a path outside the
    // release directory (install names it VERSION-SEQUENCE).
    let keys = forge::keys();
    let overlong = "1".repeat(airgap_bundle::names::MAX_NAME_BYTES + 1);
    let versions = [
        "../x",
        "../../victim",
        "a/b",
        ".",
        "..",
        ".coder-airgap-unpack-x",
        ".hidden",
        "",
        overlong.as_str(),
        "1\u{1b}[2J",
        "1\u{202e}0",
        "1 0",
    ];
    for version in versions {
        let gz = with_manifest(&keys, |m| m.version = version.to_string());
        case_with(
            &format!("version {version:?}"),
            &keys,
            &gz,
            name_refused("version"),
        );
    }
    let gz = with_manifest(&keys, |m| m.name = "x\u{9b}31m".into());
    case_with(
        "bundle name with a C1 control",
        &keys,
        &gz,
        name_refused("bundle name"),
    );
    let gz = with_manifest(&keys, |m| m.platform = "linux/../amd64".into());
    case_with(
        "platform with separators",
        &keys,
        &gz,
        name_refused("platform"),
    );

    let component = |name: &str, version: &str, paths: &[&str]| {
        let c: airgap_bundle::manifest::Component = serde_json::from_value(serde_json::json!({
            "version": version, "paths": paths,
        }))
        .expect("component");
        (name.to_string(), c)
    };
    let hostile: [(&str, (String, _), &'static str); 6] = [
        (
            "component path ../",
            component("coderd", "1", &["../../etc"]),
            "component coderd path",
        ),
        (
            "component path absolute",
            component("coderd", "1", &["/etc/passwd"]),
            "component coderd path",
        ),
        (
            "component path a/../..",
            component("coderd", "1", &["d/../../x"]),
            "component coderd path",
        ),
        (
            "component path hidden",
            component("coderd", "1", &[".manifest.json"]),
            "component coderd path",
        ),
        (
            "component name ../",
            component("../x", "1", &["a.txt"]),
            "component name",
        ),
        (
            "component version escape",
            component("coderd", "\u{1b}]0;pwned\u{7}", &["a.txt"]),
            "component coderd version",
        ),
    ];
    for (label, (name, c), field) in hostile {
        let gz = with_manifest(&keys, |m| {
            m.components.insert(name, c);
        });
        case_with(label, &keys, &gz, name_refused(field));
    }
    // The same manifest with honest component names passes.
    let gz = with_manifest(&keys, |m| {
        let (name, c) = component("coderd", "2.35.3", &["d/b.bin", "d"]);
        m.components.insert(name, c);
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_signed(dir.path(), "ok.tar.gz", &gz, &keys.secret);
    verify(&path, &keys.public, &VerifyOptions::default(), &()).expect("honest components");
}

#[test]
fn hostile_sequences_in_a_signed_manifest() {
    let keys = forge::keys();
    for bad in ["-1", "1.5", "\"1\"", "18446744073709551616", "null"] {
        let gz = with_manifest_text(&keys, "\"sequence\": 1,", &format!("\"sequence\": {bad},"));
        case(&format!("sequence {bad}"), &keys, &gz, |e| {
            matches!(e, BundleError::BadManifest(_))
        });
    }
    // Representable, but past what the ledger stores.
    let gz = with_manifest(&keys, |m| m.sequence = u64::MAX);
    case_with("sequence u64::MAX", &keys, &gz, name_refused("sequence"));
}

#[test]
fn legacy_signatures_are_refused_inside_and_outside() {
    let keys = forge::keys();
    let m = honest_manifest();
    let bytes = m.to_bytes().expect("bytes");
    let mut members = metadata(&m, &keys.secret);
    members[1] = Raw::file(
        "manifest.json.minisig",
        forge::sign_legacy(&keys, &bytes, "legacy").as_bytes(),
    );
    members.extend(honest_entries());
    case(
        "legacy manifest signature",
        &keys,
        &gzip(&tar_bytes(&members)),
        |e| matches!(e, BundleError::LegacySignature { what } if what == "manifest.json"),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let gz = honest(&keys);
    let path = write_signed(dir.path(), "b.tar.gz", &gz, &keys.secret);
    std::fs::write(
        airgap_bundle::signature_path(&path),
        forge::sign_legacy(&keys, &gz, "legacy"),
    )
    .expect("write");
    refused(
        "legacy detached signature",
        &keys,
        dir.path(),
        &path,
        |e| matches!(e, BundleError::LegacySignature { what } if what.contains("b.tar.gz.minisig")),
    );
}

/// Runs `f` on its own thread; a call that does not return within `secs` fails the test
/// (instead of hanging it).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs} s (hung)"))
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
}

/// verify, unpack and the unverified manifest read, each bounded in time, all refusing
/// `bundle_path` as `expect` says.
fn refused_in_time(
    name: &str,
    keys: &Keys,
    dir: &Path,
    bundle_path: &Path,
    with_unverified: bool,
    expect: fn(&BundleError) -> bool,
) {
    let (public, bundle) = (keys.public.clone(), bundle_path.to_path_buf());
    let err = within(20, name, move || {
        verify(&bundle, &public, &VerifyOptions::default(), &()).expect_err("verify")
    });
    assert!(expect(&err), "{name}: verify gave the wrong error: {err}");
    let before = listing(dir);
    let (public, bundle, target) = (
        keys.public.clone(),
        bundle_path.to_path_buf(),
        dir.join("target"),
    );
    let err = within(20, name, move || {
        unpack(&bundle, &public, &target, &VerifyOptions::default(), &()).expect_err("unpack")
    });
    assert!(expect(&err), "{name}: unpack gave the wrong error: {err}");
    assert_eq!(listing(dir), before, "{name}: unpack left something behind");
    if with_unverified {
        let bundle = bundle_path.to_path_buf();
        let err = within(20, name, move || {
            airgap_bundle::read_manifest_unverified(&bundle).expect_err("inspect")
        });
        assert!(
            expect(&err),
            "{name}: the unverified read gave the wrong error: {err}"
        );
    }
}

#[test]
fn special_files_as_bundle_or_signature_neither_hang_nor_fill_memory() {
    let keys = forge::keys();
    let not_regular = |kind: &'static str| -> fn(&BundleError) -> bool {
        match kind {
            "FIFO" => |e| matches!(e, BundleError::NotRegularFile { kind: "FIFO", .. }),
            "character device" => |e| {
                matches!(
                    e,
                    BundleError::NotRegularFile {
                        kind: "character device",
                        ..
                    }
                )
            },
            _ => |e| {
                matches!(
                    e,
                    BundleError::NotRegularFile {
                        kind: "directory",
                        ..
                    }
                )
            },
        }
    };

    // The bundle is a FIFO (no writer ever comes), a link to /dev/zero, a directory; a
    // valid detached signature lies beside each.
    let sig = forge::sign_reader_text(&keys, &honest(&keys));
    for (label, kind) in [
        ("FIFO as bundle", "FIFO"),
        ("/dev/zero link as bundle", "character device"),
        ("directory as bundle", "directory"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.tar.gz");
        match kind {
            "FIFO" => mkfifo(&path),
            "character device" => std::os::unix::fs::symlink("/dev/zero", &path).expect("ln"),
            _ => std::fs::create_dir(&path).expect("mkdir"),
        }
        std::fs::write(airgap_bundle::signature_path(&path), &sig).expect("sig");
        refused_in_time(label, &keys, dir.path(), &path, true, not_regular(kind));
    }

    // The detached signature is a FIFO, a link to /dev/zero, or huge.
    for (label, kind) in [
        ("FIFO as signature", "FIFO"),
        ("/dev/zero link as signature", "character device"),
        ("1 MiB signature", "large"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_signed(dir.path(), "b.tar.gz", &honest(&keys), &keys.secret);
        let sig_path = airgap_bundle::signature_path(&path);
        std::fs::remove_file(&sig_path).expect("rm");
        match kind {
            "FIFO" => mkfifo(&sig_path),
            "character device" => std::os::unix::fs::symlink("/dev/zero", &sig_path).expect("ln"),
            _ => std::fs::write(&sig_path, vec![b'A'; 1 << 20]).expect("write"),
        }
        let expect = match kind {
            "large" => |e: &BundleError| matches!(e, BundleError::SignatureTooLarge { .. }),
            kind => not_regular(kind),
        };
        refused_in_time(label, &keys, dir.path(), &path, false, expect);
    }
}

#[test]
fn unverified_manifests_show_hostile_strings_escaped() {
    // inspect without a key reads the manifest as it is (names unchecked, so the operator
    // sees what a hostile bundle claims) and must show it without terminal controls.
    let keys = forge::keys();
    let hostile = "1\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m\u{202e}gpj.exe\u{7f}";
    let gz = with_manifest(&keys, |m| {
        m.version = hostile.into();
        m.name = hostile.into();
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_signed(dir.path(), "b.tar.gz", &gz, &keys.secret);
    let m = airgap_bundle::read_manifest_unverified(&path).expect("unverified read");
    assert_eq!(m.version, hostile);
    let shown = airgap_bundle::escape::Escaped(&m.version).to_string();
    assert!(
        !shown
            .chars()
            .any(|c| c.is_control() || airgap_bundle::escape::needs_escape(c) && c != '\\'),
        "{shown:?}"
    );
    assert!(
        shown.contains("\\x1b[2J") && shown.contains("\\u{202e}"),
        "{shown}"
    );
    let json =
        airgap_bundle::escape::json_for_terminal(&serde_json::to_string_pretty(&m).expect("json"));
    assert!(
        !json
            .chars()
            .any(|c| c != '\n' && (c.is_control() || c == '\u{202e}')),
        "{json}"
    );
    // The verified path refuses it outright.
    let err = verify(&path, &keys.public, &VerifyOptions::default(), &()).expect_err("verify");
    assert!(matches!(err, BundleError::InvalidName(_)), "{err}");
    assert!(!err.to_string().chars().any(|c| c.is_control()), "{err}");
}

#[test]
fn inspect_stays_linear_in_files_and_paths() {
    // 20,000 files and a component with 20,000 paths: the manifest check and the unverified
    // read are near-linear (a quadratic duplicate search would take minutes here).
    let keys = forge::keys();
    let n = 20_000;
    let names: Vec<String> = (0..n).map(|i| format!("f/{i:06}")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|p| (p.as_str(), A)).collect();
    let mut m = manifest_for(&files, &["f"]);
    let c: airgap_bundle::manifest::Component =
        serde_json::from_value(serde_json::json!({"version": "1", "paths": names}))
            .expect("component");
    m.components.insert("many".into(), c);
    let entries: Vec<Raw> = std::iter::once(Raw::dir("f"))
        .chain(names.iter().map(|p| Raw::file(p, A)))
        .collect();
    let gz = bundle(&keys, &m, entries);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_signed(dir.path(), "b.tar.gz", &gz, &keys.secret);
    let read = within(60, "unverified read of 20,000 files", move || {
        airgap_bundle::read_manifest_unverified(&path).map(|m| m.files.len())
    });
    assert_eq!(read.expect("read"), n);
    let err = within(60, "duplicate detection", move || {
        let mut dup = m.clone();
        dup.files.push(dup.files[0].clone());
        Manifest::from_bytes(&dup.to_bytes().expect("bytes")).expect_err("duplicate")
    });
    assert!(
        matches!(err, BundleError::BadManifest(ref s) if s.contains("twice")),
        "{err}"
    );
}

/// [`case`] for a refusal predicate that captures (a closure, not a fn pointer).
fn case_with(name: &str, keys: &Keys, gz: &[u8], expect: impl Fn(&BundleError) -> bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_signed(dir.path(), "bundle.tar.gz", gz, &keys.secret);
    let err = verify(&path, &keys.public, &VerifyOptions::default(), &()).expect_err(name);
    assert!(expect(&err), "{name}: verify gave the wrong error: {err}");
    let before = listing(dir.path());
    let err = unpack(
        &path,
        &keys.public,
        &dir.path().join("target"),
        &VerifyOptions::default(),
        &(),
    )
    .expect_err(name);
    assert!(expect(&err), "{name}: unpack gave the wrong error: {err}");
    assert_eq!(
        listing(dir.path()),
        before,
        "{name}: unpack left something behind"
    );
}
