//! Hostile release tarballs for the archive checks: each is a valid tar.gz with the files a
//! healthy archive holds plus one hostile entry, written with raw headers (the tar crate's
//! builder refuses most of them). Entry data is never generated for a declared-huge member:
//! the header claims the size and the archive simply ends, as a small hostile download would.

use std::io::Write;

/// One hostile entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostileTar {
    /// A symlink `TOP/escape -> ../../../etc`.
    SymlinkOut,
    /// A hard link `TOP/escape` to `../../etc/passwd`.
    HardlinkOut,
    /// A setuid root file `TOP/bin/su`.
    Setuid,
    /// A character device `TOP/dev/null`.
    Device,
    /// A file named `/tmp/x`.
    Absolute,
    /// A file named `TOP/../../x`.
    ParentDir,
    /// A member `TOP/bin/huge` whose header declares 2 GiB (the archive ends after it).
    HugeMember,
}

/// All of them, for table-driven tests.
pub const ALL_TARS: [HostileTar; 7] = [
    HostileTar::SymlinkOut,
    HostileTar::HardlinkOut,
    HostileTar::Setuid,
    HostileTar::Device,
    HostileTar::Absolute,
    HostileTar::ParentDir,
    HostileTar::HugeMember,
];

/// A tar.gz holding `files` (`(path, contents, mode)`, parents implied) and then the hostile
/// entry `how`, under the top directory `top` (use `""` for none).
pub fn hostile_tar_gz(
    files: &[(&str, &[u8], u32)],
    top: &str,
    how: HostileTar,
) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, contents, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(*mode);
        h.set_size(contents.len() as u64);
        tar.append_data(&mut h, path, *contents)?;
    }
    let under = |name: &str| {
        if top.is_empty() {
            name.to_string()
        } else {
            format!("{top}/{name}")
        }
    };
    let (name, kind, mode, link, size) = match how {
        HostileTar::SymlinkOut => (
            under("escape"),
            tar::EntryType::Symlink,
            0o777,
            "../../../etc",
            0,
        ),
        HostileTar::HardlinkOut => (
            under("escape"),
            tar::EntryType::Link,
            0o644,
            "../../etc/passwd",
            0,
        ),
        HostileTar::Setuid => (under("bin/su"), tar::EntryType::Regular, 0o4755, "", 4),
        HostileTar::Device => (under("dev/null"), tar::EntryType::Char, 0o666, "", 0),
        HostileTar::Absolute => ("/tmp/x".to_string(), tar::EntryType::Regular, 0o644, "", 4),
        HostileTar::ParentDir => (under("../../x"), tar::EntryType::Regular, 0o644, "", 4),
        HostileTar::HugeMember => (
            under("bin/huge"),
            tar::EntryType::Regular,
            0o755,
            "",
            2 << 30,
        ),
    };
    let header = raw_header(&name, kind, mode, link, size)?;
    let out = tar.get_mut();
    out.write_all(header.as_bytes())?;
    if how == HostileTar::HugeMember {
        // The first 64 KiB of the claimed 2 GiB, then the archive just ends.
        out.write_all(&vec![0u8; 64 * 1024])?;
        return tar.into_inner()?.finish();
    }
    if size > 0 {
        let mut block = vec![0u8; 512];
        block[..4].copy_from_slice(b"evil");
        out.write_all(&block)?;
    }
    tar.into_inner()?.finish()
}

/// A GNU header with the name and link name copied in verbatim (no validation).
fn raw_header(
    name: &str,
    kind: tar::EntryType,
    mode: u32,
    link: &str,
    size: u64,
) -> std::io::Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    let old = h.as_old_mut();
    if name.len() > old.name.len() || link.len() > old.linkname.len() {
        return Err(std::io::Error::other("name too long for a raw header"));
    }
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    Ok(h)
}
