//! Tar checks for the release tarballs (coderd, its docs) and the Postgres archive: every
//! entry is checked before anything lands, and members are streamed to disk, never held in
//! memory. Names are relative with no `..`; entries are files, directories, symlinks whose
//! target stays inside the tree, or hard links to files already unpacked; no setuid, setgid,
//! device or FIFO entries; declared sizes, their sum, the compression ratio and the entry
//! count are bounded; nothing is written through a link. On any failure the partly unpacked
//! tree or file is removed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

/// Bounds for one tar.gz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TarLimits {
    /// Entries in the archive.
    pub max_entries: usize,
    /// Declared size of one member.
    pub max_entry_bytes: u64,
    /// Declared size of all members together.
    pub max_total_bytes: u64,
    /// Unpacked / compressed size, checked once the unpacked size passes [`RATIO_FLOOR`].
    pub max_ratio: u64,
}

/// Below this many unpacked bytes the ratio is not checked (small archives of text compress
/// very well).
const RATIO_FLOOR: u64 = 16 * 1024 * 1024;

impl TarLimits {
    /// Coder's release tarball: one binary (~200 MiB) and a few text files.
    pub const RELEASE: TarLimits = TarLimits {
        max_entries: 1_000,
        max_entry_bytes: 1024 * 1024 * 1024,
        max_total_bytes: 2 * 1024 * 1024 * 1024,
        max_ratio: 50,
    };
    /// Coder's docs tarball: many small pages and images.
    pub const DOCS: TarLimits = TarLimits {
        max_entries: 100_000,
        max_entry_bytes: 256 * 1024 * 1024,
        max_total_bytes: 2 * 1024 * 1024 * 1024,
        max_ratio: 50,
    };
    /// The theseus-rs Postgres archive: binaries, libraries, share files.
    pub const POSTGRES: TarLimits = TarLimits {
        max_entries: 50_000,
        max_entry_bytes: 512 * 1024 * 1024,
        max_total_bytes: 4 * 1024 * 1024 * 1024,
        max_ratio: 50,
    };
}

/// A tar.gz that may not enter the stage, naming the archive and the entry.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {problem}", .archive.display(), entry_label(.entry))]
pub struct TarError {
    /// The archive.
    pub archive: PathBuf,
    /// The entry, when one is at fault.
    pub entry: Option<String>,
    /// What is wrong.
    pub problem: TarProblem,
}

fn entry_label(entry: &Option<String>) -> String {
    entry
        .as_ref()
        .map(|e| format!(": entry {e:?}"))
        .unwrap_or_default()
}

/// What is wrong with a tar.gz or one of its entries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TarProblem {
    /// Not a readable tar.gz.
    #[error("not a readable .tar.gz ({0})")]
    Unreadable(String),
    /// Too many entries.
    #[error("more than {0} entries")]
    TooManyEntries(usize),
    /// A name that could land outside the tree.
    #[error("unsafe name ({0})")]
    UnsafeName(&'static str),
    /// A symlink or hard link whose target leaves the tree.
    #[error("links to {target:?}, outside the archive's tree")]
    LinkOut {
        /// The link target.
        target: String,
    },
    /// A hard link to something that is not a file unpacked before it.
    #[error("hard link to {target:?}, which is not a file earlier in the archive")]
    BadHardLink {
        /// The link target.
        target: String,
    },
    /// setuid or setgid.
    #[error("is setuid or setgid (mode {0:o}); release archives never need that")]
    Setuid(u32),
    /// A device, FIFO or other special entry.
    #[error("is a {0} entry; only files, directories and links are unpacked")]
    Special(&'static str),
    /// A member declares too many bytes.
    #[error("declares {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Declared size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// The members together declare too many bytes.
    #[error("members declare {total} bytes together, more than the {max} allowed")]
    TotalTooLarge {
        /// Sum of declared sizes.
        total: u64,
        /// The bound.
        max: u64,
    },
    /// The archive expands implausibly (a gzip bomb).
    #[error("expands {total} bytes from {compressed} (ratio above {max}): refusing a decompression bomb")]
    Ratio {
        /// Unpacked bytes so far.
        total: u64,
        /// Archive size.
        compressed: u64,
        /// The bound.
        max: u64,
    },
    /// An entry would be written through a symlink or over a directory.
    #[error("would be written through or over {0}")]
    Clobbers(String),
    /// The member ended before its declared size.
    #[error("holds {got} of the {declared} bytes it declares (truncated archive)")]
    Short {
        /// Declared size.
        declared: u64,
        /// Bytes read.
        got: u64,
    },
    /// The wanted member is missing.
    #[error("has no file named {0}")]
    NoMember(String),
    /// Writing failed.
    #[error("{0}")]
    Io(String),
}

/// What one checked entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink(PathBuf),
    HardLink(PathBuf),
    /// A global pax header: metadata only.
    Skip,
}

/// One checked entry: its safe relative path, kind, mode and declared size.
#[derive(Debug)]
struct Checked {
    rel: PathBuf,
    kind: Kind,
    mode: u32,
    size: u64,
}

/// Unpacks the tar.gz `archive` into the new directory `dest` after checking each entry
/// against `limits`; with `strip_top`, an archive holding one top directory gives that
/// directory's contents. On failure nothing is left at `dest` or beside it.
pub fn unpack_tar_gz(
    archive: &Path,
    dest: &Path,
    strip_top: bool,
    limits: &TarLimits,
) -> Result<(), TarError> {
    let unpacked = dest.with_extension("unpack");
    let _ = fs::remove_dir_all(&unpacked);
    let result = unpack_into(archive, &unpacked, limits).and_then(|()| {
        let io = |e: io::Error| whole(archive, TarProblem::Io(e.to_string()));
        let top = only_subdir(&unpacked).map_err(io)?;
        let source = match (strip_top, top) {
            (true, Some(top)) => top,
            _ => unpacked.clone(),
        };
        let _ = fs::remove_dir_all(dest);
        fs::rename(&source, dest).map_err(io)
    });
    let _ = fs::remove_dir_all(&unpacked);
    result
}

fn unpack_into(archive: &Path, root: &Path, limits: &TarLimits) -> Result<(), TarError> {
    fs::create_dir_all(root).map_err(|e| whole(archive, TarProblem::Io(e.to_string())))?;
    walk(archive, limits, |entry, checked| {
        write_entry(root, entry, checked)
    })
}

/// Streams the regular file named `name` (at any depth) of the tar.gz `archive` to the new
/// file `out` with mode 0755, after checking every entry of the archive against `limits`.
/// On failure `out` does not exist.
pub fn extract_member(
    archive: &Path,
    name: &str,
    out: &Path,
    limits: &TarLimits,
) -> Result<(), TarError> {
    let mut found = false;
    let result = walk(archive, limits, |entry, checked| {
        let wanted = !found
            && checked.kind == Kind::File
            && checked.rel.file_name().is_some_and(|n| n == name);
        if wanted {
            found = true;
            if let Some(parent) = out.parent() {
                fs::create_dir_all(parent).map_err(|e| TarProblem::Io(e.to_string()))?;
            }
            let _ = fs::remove_file(out);
            let file = new_file(out, 0o755).map_err(|e| TarProblem::Io(e.to_string()))?;
            copy_exact(entry, file, checked.size)?;
        }
        Ok(())
    })
    .and_then(|()| {
        if found {
            Ok(())
        } else {
            Err(whole(archive, TarProblem::NoMember(name.to_string())))
        }
    });
    if result.is_err() {
        let _ = fs::remove_file(out);
    }
    result
}

/// Checks every entry, calling `visit` for each; stops at the first problem.
fn walk(
    archive: &Path,
    limits: &TarLimits,
    mut visit: impl FnMut(
        &mut tar::Entry<'_, flate2::read::GzDecoder<io::BufReader<File>>>,
        &Checked,
    ) -> Result<(), TarProblem>,
) -> Result<(), TarError> {
    let unreadable = |e: io::Error| whole(archive, TarProblem::Unreadable(e.to_string()));
    let file = File::open(archive).map_err(unreadable)?;
    let compressed = file.metadata().map_err(unreadable)?.len().max(1);
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let mut total = 0u64;
    for (count, entry) in tar.entries().map_err(unreadable)?.enumerate() {
        let mut entry = entry.map_err(unreadable)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let at = |problem| TarError {
            archive: archive.to_path_buf(),
            entry: Some(name.clone()),
            problem,
        };
        if count >= limits.max_entries {
            return Err(at(TarProblem::TooManyEntries(limits.max_entries)));
        }
        let checked = check_entry(&entry, limits).map_err(at)?;
        total = total.saturating_add(checked.size);
        bound_total(total, compressed, limits).map_err(at)?;
        if checked.kind != Kind::Skip {
            visit(&mut entry, &checked).map_err(at)?;
        }
    }
    Ok(())
}

fn bound_total(total: u64, compressed: u64, limits: &TarLimits) -> Result<(), TarProblem> {
    if total > limits.max_total_bytes {
        return Err(TarProblem::TotalTooLarge {
            total,
            max: limits.max_total_bytes,
        });
    }
    if total > RATIO_FLOOR && total / compressed > limits.max_ratio {
        return Err(TarProblem::Ratio {
            total,
            compressed,
            max: limits.max_ratio,
        });
    }
    Ok(())
}

fn check_entry<R: Read>(
    entry: &tar::Entry<'_, R>,
    limits: &TarLimits,
) -> Result<Checked, TarProblem> {
    let header = entry.header();
    let bad_header = |e: io::Error| TarProblem::Unreadable(e.to_string());
    let rel = safe_relative(&entry.path().map_err(bad_header)?)?;
    if rel.as_os_str().is_empty() {
        // `./`, as `tar -C DIR .` writes first: the root itself.
        return match header.entry_type() {
            EntryType::Directory => Ok(Checked {
                rel,
                kind: Kind::Skip,
                mode: 0,
                size: 0,
            }),
            _ => Err(TarProblem::UnsafeName("empty")),
        };
    }
    let mode = header.mode().map_err(bad_header)?;
    if mode & 0o6000 != 0 {
        return Err(TarProblem::Setuid(mode));
    }
    let link = || -> Result<PathBuf, TarProblem> {
        entry
            .link_name()
            .map_err(bad_header)?
            .map(|l| l.into_owned())
            .ok_or(TarProblem::LinkOut {
                target: String::new(),
            })
    };
    let kind = match header.entry_type() {
        EntryType::Regular | EntryType::Continuous => Kind::File,
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink => {
            let target = link()?;
            check_symlink(&rel, &target)?;
            Kind::Symlink(target)
        }
        EntryType::Link => {
            let target = link()?;
            let inside = safe_relative(&target)
                .ok()
                .filter(|p| !p.as_os_str().is_empty())
                .ok_or_else(|| TarProblem::LinkOut {
                    target: target.display().to_string(),
                })?;
            Kind::HardLink(inside)
        }
        EntryType::XGlobalHeader => Kind::Skip,
        EntryType::Char => return Err(TarProblem::Special("character device")),
        EntryType::Block => return Err(TarProblem::Special("block device")),
        EntryType::Fifo => return Err(TarProblem::Special("FIFO")),
        EntryType::GNUSparse => return Err(TarProblem::Special("GNU sparse")),
        _ => return Err(TarProblem::Special("unknown")),
    };
    let size = if kind == Kind::File { entry.size() } else { 0 };
    if size > limits.max_entry_bytes {
        return Err(TarProblem::TooLarge {
            size,
            max: limits.max_entry_bytes,
        });
    }
    Ok(Checked {
        rel,
        kind,
        mode,
        size,
    })
}

/// The path with `.` parts dropped (empty for `./`), if it is relative and has no `..`.
fn safe_relative(path: &Path) -> Result<PathBuf, TarProblem> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(TarProblem::UnsafeName("contains ..")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(TarProblem::UnsafeName("absolute path"))
            }
        }
    }
    Ok(out)
}

/// A symlink at `rel` may climb with leading `..` no higher than its own directory's depth,
/// then only descend: it then resolves inside the tree (every link it descends through is
/// held to the same rule, and nothing is ever written through a link).
fn check_symlink(rel: &Path, target: &Path) -> Result<(), TarProblem> {
    let out = || TarProblem::LinkOut {
        target: target.display().to_string(),
    };
    let depth = rel.components().count().saturating_sub(1);
    let mut climbs = 0;
    let mut descending = false;
    for part in target.components() {
        match part {
            Component::ParentDir if !descending => climbs += 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return Err(out()),
            Component::CurDir => {}
            Component::Normal(_) => descending = true,
        }
    }
    if climbs > depth || target.as_os_str().is_empty() {
        return Err(out());
    }
    Ok(())
}

/// Writes one checked entry under `root`, never through a link.
fn write_entry<R: Read>(
    root: &Path,
    entry: &mut tar::Entry<'_, R>,
    checked: &Checked,
) -> Result<(), TarProblem> {
    let io = |e: io::Error| TarProblem::Io(e.to_string());
    let parent = checked.rel.parent().unwrap_or(Path::new(""));
    real_dirs(root, parent)?;
    let path = root.join(&checked.rel);
    let existing = fs::symlink_metadata(&path).ok();
    match &checked.kind {
        Kind::Dir => {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => return Err(TarProblem::Clobbers(checked.rel.display().to_string())),
                None => fs::create_dir(&path).map_err(io)?,
            }
            fs::set_permissions(
                &path,
                fs::Permissions::from_mode((checked.mode & 0o777) | 0o700),
            )
            .map_err(io)
        }
        Kind::File => {
            clear_file(&path, existing, &checked.rel)?;
            let file = new_file(&path, (checked.mode & 0o777) | 0o600).map_err(io)?;
            copy_exact(entry, file, checked.size)
        }
        Kind::Symlink(target) => {
            if existing.is_some() {
                return Err(TarProblem::Clobbers(checked.rel.display().to_string()));
            }
            std::os::unix::fs::symlink(target, &path).map_err(io)
        }
        Kind::HardLink(target) => {
            let source = root.join(target);
            let is_file = fs::symlink_metadata(&source).is_ok_and(|m| m.is_file());
            let parents_real = real_dirs_exist(root, target.parent().unwrap_or(Path::new("")));
            if !is_file || !parents_real {
                return Err(TarProblem::BadHardLink {
                    target: target.display().to_string(),
                });
            }
            clear_file(&path, existing, &checked.rel)?;
            fs::hard_link(&source, &path).map_err(io)
        }
        Kind::Skip => Ok(()),
    }
}

/// Removes a regular file about to be replaced; anything else in the way is refused.
fn clear_file(path: &Path, existing: Option<fs::Metadata>, rel: &Path) -> Result<(), TarProblem> {
    match existing {
        None => Ok(()),
        Some(m) if m.is_file() => fs::remove_file(path).map_err(|e| TarProblem::Io(e.to_string())),
        Some(_) => Err(TarProblem::Clobbers(rel.display().to_string())),
    }
}

/// Creates the directories of `rel` under `root`, refusing any that is a link.
fn real_dirs(root: &Path, rel: &Path) -> Result<(), TarProblem> {
    let mut dir = root.to_path_buf();
    for part in rel.components() {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(TarProblem::Clobbers(dir.display().to_string())),
            Err(_) => fs::create_dir(&dir).map_err(|e| TarProblem::Io(e.to_string()))?,
        }
    }
    Ok(())
}

fn real_dirs_exist(root: &Path, rel: &Path) -> bool {
    let mut dir = root.to_path_buf();
    rel.components().all(|part| {
        dir.push(part);
        fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir())
    })
}

fn new_file(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

/// Streams exactly `size` bytes of `entry` into `file`.
fn copy_exact(entry: &mut impl Read, file: File, size: u64) -> Result<(), TarProblem> {
    let mut out = io::BufWriter::with_capacity(256 * 1024, file);
    let got =
        io::copy(&mut entry.take(size), &mut out).map_err(|e| TarProblem::Io(e.to_string()))?;
    if got != size {
        return Err(TarProblem::Short {
            declared: size,
            got,
        });
    }
    io::Write::flush(&mut out).map_err(|e| TarProblem::Io(e.to_string()))
}

fn whole(archive: &Path, problem: TarProblem) -> TarError {
    TarError {
        archive: archive.to_path_buf(),
        entry: None,
        problem,
    }
}

fn only_subdir(dir: &Path) -> io::Result<Option<PathBuf>> {
    let entries: Vec<_> = fs::read_dir(dir)?.filter_map(Result::ok).collect();
    match entries.as_slice() {
        [one] if fs::symlink_metadata(one.path()).is_ok_and(|m| m.is_dir()) => Ok(Some(one.path())),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airgap_testkit::hostile::{hostile_tar_gz, HostileTar, ALL_TARS};

    const TOP: &str = "postgresql-15-x";

    fn healthy() -> Vec<(String, Vec<u8>, u32)> {
        vec![
            (format!("{TOP}/bin/psql"), b"#!/bin/sh\n".to_vec(), 0o755),
            (format!("{TOP}/lib/libpq.so.5"), vec![7u8; 4096], 0o644),
        ]
    }

    fn write_tgz(dir: &Path, how: HostileTar) -> PathBuf {
        let files = healthy();
        let refs: Vec<(&str, &[u8], u32)> = files
            .iter()
            .map(|(p, b, m)| (p.as_str(), b.as_slice(), *m))
            .collect();
        let path = dir.join(format!("{how:?}.tar.gz"));
        fs::write(&path, hostile_tar_gz(&refs, TOP, how).expect("tgz")).expect("write");
        path
    }

    #[test]
    fn every_hostile_entry_is_refused_by_name_and_nothing_is_left() {
        let tmp = tempfile::tempdir().expect("tmp");
        for how in ALL_TARS {
            let archive = write_tgz(tmp.path(), how);
            let dest = tmp.path().join(format!("out-{how:?}"));
            let err =
                unpack_tar_gz(&archive, &dest, true, &TarLimits::POSTGRES).expect_err("hostile");
            let entry = err.entry.clone().unwrap_or_default();
            let ok = match (how, &err.problem) {
                (HostileTar::SymlinkOut, TarProblem::LinkOut { target }) => {
                    target == "../../../etc"
                }
                (HostileTar::HardlinkOut, TarProblem::LinkOut { target }) => {
                    target == "../../etc/passwd"
                }
                (HostileTar::Setuid, TarProblem::Setuid(mode)) => mode & 0o4000 != 0,
                (HostileTar::Device, TarProblem::Special("character device")) => true,
                (HostileTar::Absolute, TarProblem::UnsafeName("absolute path")) => {
                    entry == "/tmp/x"
                }
                (HostileTar::ParentDir, TarProblem::UnsafeName("contains ..")) => true,
                (HostileTar::HugeMember, TarProblem::TooLarge { size, .. }) => *size == 2 << 30,
                _ => false,
            };
            assert!(ok, "{how:?}: {err}");
            assert!(
                err.to_string().contains(&archive.display().to_string()),
                "{err}"
            );
            assert!(
                !dest.exists() && !dest.with_extension("unpack").exists(),
                "{how:?}: nothing left"
            );
            let member = tmp.path().join(format!("member-{how:?}"));
            assert!(
                extract_member(&archive, "psql", &member, &TarLimits::POSTGRES).is_err(),
                "{how:?}"
            );
            assert!(!member.exists(), "{how:?}: no member file left");
        }
    }

    #[test]
    fn links_inside_the_tree_unpack() {
        let tmp = tempfile::tempdir().expect("tmp");
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(3);
        tar.append_data(&mut h, "top/lib/libpq.so.5", &b"abc"[..])
            .expect("file");
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(EntryType::Symlink);
        l.set_mode(0o777);
        l.set_size(0);
        tar.append_link(&mut l, "top/lib/libpq.so", "libpq.so.5")
            .expect("symlink");
        let mut hl = tar::Header::new_gnu();
        hl.set_entry_type(EntryType::Link);
        hl.set_mode(0o644);
        hl.set_size(0);
        tar.append_link(&mut hl, "top/lib/libpq.hard", "top/lib/libpq.so.5")
            .expect("hardlink");
        let bytes = tar.into_inner().expect("tar").finish().expect("gz");
        let archive = tmp.path().join("ok.tar.gz");
        fs::write(&archive, bytes).expect("write");
        let dest = tmp.path().join("out");
        unpack_tar_gz(&archive, &dest, true, &TarLimits::POSTGRES).expect("unpack");
        assert_eq!(
            fs::read(dest.join("lib/libpq.so")).expect("via link"),
            b"abc"
        );
        assert_eq!(
            fs::read(dest.join("lib/libpq.hard")).expect("hard link"),
            b"abc"
        );
    }

    #[test]
    fn a_file_is_never_written_through_a_symlink_in_the_archive() {
        let tmp = tempfile::tempdir().expect("tmp");
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut d = tar::Header::new_gnu();
        d.set_entry_type(EntryType::Directory);
        d.set_mode(0o755);
        d.set_size(0);
        tar.append_data(&mut d, "top/sub/", std::io::empty())
            .expect("dir");
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(EntryType::Symlink);
        l.set_mode(0o777);
        l.set_size(0);
        tar.append_link(&mut l, "top/link", "sub").expect("symlink");
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(1);
        tar.append_data(&mut h, "top/link/x", &b"x"[..])
            .expect("file");
        let archive = tmp.path().join("through.tar.gz");
        fs::write(
            &archive,
            tar.into_inner().expect("tar").finish().expect("gz"),
        )
        .expect("write");
        let err = unpack_tar_gz(
            &archive,
            &tmp.path().join("out"),
            true,
            &TarLimits::POSTGRES,
        )
        .expect_err("through a link");
        assert!(matches!(err.problem, TarProblem::Clobbers(_)), "{err}");
    }

    #[test]
    fn too_many_entries_and_a_bomb_ratio_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let archive = write_tgz(tmp.path(), HostileTar::Setuid);
        let few = TarLimits {
            max_entries: 1,
            ..TarLimits::POSTGRES
        };
        let err = unpack_tar_gz(&archive, &tmp.path().join("o"), true, &few).expect_err("count");
        assert_eq!(err.problem, TarProblem::TooManyEntries(1));
        let bomb = zeros_tgz(tmp.path(), "bomb.tar.gz", 64 << 20);
        let err = extract_member(&bomb, "zeros", &tmp.path().join("z"), &TarLimits::RELEASE)
            .expect_err("ratio");
        assert!(matches!(err.problem, TarProblem::Ratio { .. }), "{err}");
        assert!(!tmp.path().join("z").exists());
    }

    /// A tar.gz at `dir/name` holding `zeros`, `size` zero bytes, written streaming.
    fn zeros_tgz(dir: &Path, name: &str, size: u64) -> PathBuf {
        let path = dir.join(name);
        let file = File::create(&path).expect("create");
        let gz =
            flate2::write::GzEncoder::new(io::BufWriter::new(file), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(size);
        tar.append_data(&mut h, "zeros", io::repeat(0).take(size))
            .expect("member");
        tar.into_inner().expect("tar").finish().expect("gz");
        path
    }

    fn peak_rss_kib() -> u64 {
        let status = fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    #[test]
    fn a_large_member_is_streamed_to_disk_not_held_in_memory() {
        let tmp = tempfile::tempdir().expect("tmp");
        let size = 384u64 << 20;
        let archive = zeros_tgz(tmp.path(), "large.tar.gz", size);
        let lifted = TarLimits {
            max_ratio: u64::MAX,
            ..TarLimits::RELEASE
        };
        let before = peak_rss_kib();
        let out = tmp.path().join("zeros");
        extract_member(&archive, "zeros", &out, &lifted).expect("extract");
        let grown = peak_rss_kib().saturating_sub(before);
        assert_eq!(fs::metadata(&out).expect("out").len(), size);
        assert!(
            grown < 96 * 1024,
            "peak RSS grew by {grown} KiB extracting a {size}-byte member"
        );
    }

    #[test]
    fn symlinks_stay_inside() {
        let ok = |rel: &str, t: &str| check_symlink(Path::new(rel), Path::new(t)).is_ok();
        assert!(ok("lib/libpq.so", "libpq.so.5"));
        assert!(ok("bin/psql", "../lib/psql"));
        assert!(!ok("psql", "../x"));
        assert!(!ok("bin/x", "../../etc/passwd"));
        assert!(!ok("bin/x", "/etc/passwd"));
        assert!(!ok("bin/x", "a/../../x"));
        assert!(!ok("bin/x", ""));
    }

    #[test]
    fn names_are_relative() {
        assert_eq!(safe_relative(Path::new("./a/b")), Ok(PathBuf::from("a/b")));
        assert!(safe_relative(Path::new("/etc/x")).is_err());
        assert!(safe_relative(Path::new("a/../../x")).is_err());
        assert_eq!(safe_relative(Path::new("./")), Ok(PathBuf::new()));
    }

    #[test]
    fn the_ratio_is_bounded_past_the_floor() {
        let l = TarLimits::RELEASE;
        assert!(bound_total(RATIO_FLOOR, 1, &l).is_ok());
        assert!(matches!(
            bound_total(RATIO_FLOOR + 1, 1000, &l),
            Err(TarProblem::Ratio { .. })
        ));
        assert!(bound_total(RATIO_FLOOR * 2, RATIO_FLOOR, &l).is_ok());
    }
}
