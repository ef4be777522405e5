//! Forges bundles for the tests: honest stages, and hostile archives whose manifest and
//! file signatures are valid (made with the trusted test key), so that the one defect the
//! test plants is the only thing the reader can object to.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use airgap_bundle::keys;
use airgap_bundle::manifest::{FileEntry, Manifest};
use airgap_bundle::signature::sign_reader;
use airgap_bundle::{PublicKey, SecretKey};
use sha2::{Digest, Sha256};

/// A test key pair in its own temp dir.
pub struct Keys {
    pub dir: tempfile::TempDir,
    pub secret: SecretKey,
    pub public: PublicKey,
    pub pub_path: PathBuf,
    pub secret_path: PathBuf,
}

pub fn keys() -> Keys {
    let dir = tempfile::tempdir().expect("tempdir");
    let generated = keys::generate(dir.path(), None).expect("keygen");
    Keys {
        secret: SecretKey::from_file(&generated.secret, None).expect("load sk"),
        public: PublicKey::from_file(&generated.public).expect("load pk"),
        pub_path: generated.public,
        secret_path: generated.secret,
        dir,
    }
}

/// A small realistic stage: nested dirs, an executable, an empty file, a symlink.
pub fn sample_stage(root: &Path) {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, data).expect("write");
    };
    w("bin/coder", &b"#!/bin/sh\necho coder\n".repeat(1000));
    w("bin/terraform", &pseudo_random(3 << 20, 7));
    w("postgres/share/empty.conf", b"");
    w(
        "providers/registry.example.test/coder/coder/index.json",
        b"{\"versions\":{\"2.2.0\":{}}}",
    );
    w("docs/a name with spaces.txt", b"spaces are fine");
    std::fs::create_dir_all(root.join("data/empty-dir")).expect("mkdir");
    use std::os::unix::fs::PermissionsExt;
    for exe in ["bin/coder", "bin/terraform"] {
        std::fs::set_permissions(root.join(exe), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    std::os::unix::fs::symlink("coder", root.join("bin/coder-link")).expect("symlink");
}

pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A raw tar member as the forger writes it.
#[derive(Clone)]
pub struct Raw {
    pub name: Vec<u8>,
    pub kind: u8,
    pub data: Vec<u8>,
    /// Size written in the header, if it should differ from `data.len()`.
    pub header_size: Option<u64>,
    pub link: Vec<u8>,
}

impl Raw {
    pub fn file(name: &str, data: &[u8]) -> Raw {
        Raw {
            name: name.as_bytes().to_vec(),
            kind: b'0',
            data: data.to_vec(),
            header_size: None,
            link: Vec::new(),
        }
    }
    pub fn dir(name: &str) -> Raw {
        Raw {
            name: format!("{name}/").into_bytes(),
            kind: b'5',
            data: Vec::new(),
            header_size: None,
            link: Vec::new(),
        }
    }
    pub fn special(name: &str, kind: u8) -> Raw {
        Raw {
            name: name.as_bytes().to_vec(),
            kind,
            data: Vec::new(),
            header_size: None,
            link: b"/etc/passwd".to_vec(),
        }
    }
}

/// One 512-byte ustar header.
pub fn header(raw: &Raw) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = raw.name.len().min(100);
    h[..n].copy_from_slice(&raw.name[..n]);
    let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
        let s = format!("{:0w$o}\0", v, w = width - 1);
        h[at..at + width].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, 0o644);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(
        &mut h,
        124,
        12,
        raw.header_size.unwrap_or(raw.data.len() as u64),
    );
    octal(&mut h, 136, 12, 0);
    h[156] = raw.kind;
    let l = raw.link.len().min(100);
    h[157..157 + l].copy_from_slice(&raw.link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let s = format!("{:06o}\0 ", sum);
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// Serialises members into a tar stream (with end marker), data padded to 512.
pub fn tar_bytes(members: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        out.extend_from_slice(&header(m));
        out.extend_from_slice(&m.data);
        let pad = (512 - m.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// A manifest for `files` (name, content) and `dirs`, valid for a year.
pub fn manifest_for(files: &[(&str, &[u8])], dirs: &[&str]) -> Manifest {
    let now = time::OffsetDateTime::now_utc();
    let json = serde_json::json!({
        "format": 1, "name": "forged", "version": "1", "sequence": 1,
        "created": now.format(&time::format_description::well_known::Rfc3339).expect("fmt"),
        "expires": (now + time::Duration::days(365)).format(&time::format_description::well_known::Rfc3339).expect("fmt"),
        "platform": "linux_amd64", "components": {},
        "directories": dirs.iter().map(|d| serde_json::json!({"path": d, "mode": 0o755})).collect::<Vec<_>>(),
        "files": files.iter().map(|(p, d)| serde_json::json!({"path": p, "size": d.len(), "sha256": sha256_hex(d), "mode": 0o644})).collect::<Vec<_>>(),
    });
    serde_json::from_value(json).expect("manifest")
}

/// The three metadata members for `manifest`, signed with `key`.
pub fn metadata(manifest: &Manifest, key: &SecretKey) -> Vec<Raw> {
    let bytes = manifest.to_bytes().expect("manifest bytes");
    metadata_raw(&bytes, &manifest.sha256sums(), key)
}

/// Metadata from raw manifest bytes (which need not parse).
pub fn metadata_raw(manifest_bytes: &[u8], sums: &str, key: &SecretKey) -> Vec<Raw> {
    let sig = sign_reader(key, manifest_bytes, "forged").expect("sign");
    vec![
        Raw::file("manifest.json", manifest_bytes),
        Raw::file("manifest.json.minisig", sig.as_bytes()),
        Raw::file("SHA256SUMS", sums.as_bytes()),
    ]
}

/// Writes `gz` as `dir/name` with a detached signature by `key`; returns the bundle path.
pub fn write_signed(dir: &Path, name: &str, gz: &[u8], key: &SecretKey) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, gz).expect("write bundle");
    let sig = sign_reader(key, gz, "forged").expect("sign");
    std::fs::write(airgap_bundle::signature_path(&path), sig).expect("write sig");
    path
}

pub fn file_entry(path: &str, data: &[u8]) -> FileEntry {
    FileEntry {
        path: path.into(),
        size: data.len() as u64,
        sha256: sha256_hex(data),
        mode: 0o644,
    }
}

/// A legacy (`Ed`, not prehashed) minisign signature over `data`, as old minisign
/// versions made by default: the Ed25519 signature is over the raw bytes.
pub fn sign_legacy(keys: &Keys, data: &[u8], trusted_comment: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = std::fs::read_to_string(&keys.secret_path).expect("secret key");
    let line = text
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .expect("key line");
    let raw = b64.decode(line.trim()).expect("base64");
    assert_eq!(&raw[2..4], &[0, 0], "the test key is unencrypted");
    let (key_id, sk) = (&raw[54..62], &raw[62..126]);
    let sk = ed25519_compact::SecretKey::from_slice(sk).expect("sk");
    let sig = sk.sign(data, None);
    let mut line = b"Ed".to_vec();
    line.extend_from_slice(key_id);
    line.extend_from_slice(sig.as_ref());
    let mut global_msg = sig.to_vec();
    global_msg.extend_from_slice(trusted_comment.as_bytes());
    let global = sk.sign(&global_msg, None);
    format!(
        "untrusted comment: legacy signature\n{}\ntrusted comment: {trusted_comment}\n{}\n",
        b64.encode(line),
        b64.encode(global.as_ref())
    )
}

/// The text of a valid detached signature over `data`.
pub fn sign_reader_text(keys: &Keys, data: &[u8]) -> String {
    sign_reader(&keys.secret, data, "forged").expect("sign")
}
