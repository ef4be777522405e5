//! Normalized module archives: the one byte form a module version takes in the mirror.
//!
//! A module (a directory of `.tf` files, or a `.tar.gz` / `.zip` of one) is packed as a
//! gzip'd tar whose entries are sorted by name, directories before their contents, with
//! fixed metadata: mtime [`FIXED_MTIME`], uid/gid 0, no user or group names, mode 0755 for
//! directories and executables and 0644 for other files. Only regular files and
//! directories are allowed: symlinks, hard links, devices and FIFOs are refused, as are
//! names that could escape the directory (the provider-zip rules of [`crate::archive`]).
//! The same module therefore always gives the same bytes, and so the same sha256.
//!
//! Archives are unpacked into a scratch directory first (never more than the declared
//! sizes, within [`module_limits`]), then packed from there; `.git` and `.terraform`
//! directories are left out.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::archive::{self, ZipLimits, ZipProblem, RATIO_FLOOR};

/// The modification time of every entry (1980-01-01, the earliest a zip can record).
pub const FIXED_MTIME: u64 = 315_532_800;

/// Directories never packed: version control and Terraform's own working data.
pub const SKIPPED_DIRS: [&str; 2] = [".git", ".terraform"];

/// Bounds for a module: many small files, nothing near provider-binary sizes.
pub fn module_limits() -> ZipLimits {
    ZipLimits {
        max_entries: 10_000,
        max_entry_bytes: 128 * 1024 * 1024,
        max_total_bytes: 256 * 1024 * 1024,
        max_ratio: 100,
    }
}

/// What is wrong with a module directory or archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveProblem {
    /// A problem the provider-zip checks also refuse (names, links, setuid, sizes, bombs).
    #[error(transparent)]
    Zip(#[from] ZipProblem),
    /// Neither a directory, a gzip'd tar nor a zip.
    #[error("is neither a directory, a .tar.gz nor a .zip")]
    NotArchive,
    /// A tar or gzip stream that does not read.
    #[error("not a readable .tar.gz ({0})")]
    NotTar(String),
    /// A hard link, device, FIFO or other entry that is not a file or a directory.
    #[error("entry {entry:?} is a {kind}; modules hold only regular files and directories")]
    Special {
        /// The entry name.
        entry: String,
        /// What it is.
        kind: &'static str,
    },
    /// Two entries with the same name.
    #[error("entry {entry:?} appears twice")]
    Duplicate {
        /// The entry name.
        entry: String,
    },
    /// A file name that is not UTF-8.
    #[error("entry {entry:?} has a name that is not UTF-8")]
    NotUtf8 {
        /// The name, lossily decoded.
        entry: String,
    },
    /// No Terraform files at the module's root.
    #[error(
        "has no .tf or .tf.json file at its root (entries: {entries}); is this a Terraform module?"
    )]
    NoTerraform {
        /// What the root holds.
        entries: String,
    },
}

/// A module that cannot be packed, naming the input and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{input}: {problem}")]
pub struct ArchiveError {
    /// The directory or archive given.
    pub input: String,
    /// What is wrong.
    pub problem: ArchiveProblem,
}

/// What packing wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packed {
    /// Files and directories in the archive.
    pub entries: usize,
    /// Bytes of file content.
    pub content_bytes: u64,
    /// Paths left out (see [`SKIPPED_DIRS`]), relative to the module root.
    pub skipped: Vec<String>,
    /// The single top-level directory that was taken as the module root, if any.
    pub descended: Option<String>,
}

/// One entry found by the walk, in archive order.
struct Entry {
    name: String,
    path: PathBuf,
    dir: bool,
    executable: bool,
    size: u64,
}

/// Packs the module directory `dir` as a normalized `.tar.gz` into `out`. If `dir` holds
/// no `.tf` file but exactly one directory, that directory is the module (archives made
/// with `tar czf m.tgz mymodule/` have this shape).
pub fn pack_dir(dir: &Path, out: impl Write, limits: &ZipLimits) -> Result<Packed, ArchiveError> {
    let fail = |problem| ArchiveError {
        input: dir.display().to_string(),
        problem,
    };
    let io_fail = |e: io::Error| {
        fail(ArchiveProblem::Zip(ZipProblem::Io {
            entry: String::new(),
            message: e.to_string(),
        }))
    };
    let mut packed = Packed::default();
    let mut root = dir.to_path_buf();
    if let Some(only) = single_subdir(&root).map_err(io_fail)? {
        root = root.join(&only);
        packed.descended = Some(only);
    }
    check_has_terraform(&root).map_err(fail)?;
    let mut entries = Vec::new();
    walk(&root, "", &mut entries, &mut packed.skipped, limits).map_err(fail)?;
    packed.entries = entries.len();
    packed.content_bytes = entries.iter().map(|e| e.size).sum();
    write_tar_gz(&entries, out).map_err(io_fail)?;
    Ok(packed)
}

/// The name of `dir`'s only entry when that is a directory and there is no `.tf` beside it.
fn single_subdir(dir: &Path) -> io::Result<Option<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        names.push((entry.file_name(), entry.file_type()?));
        if names.len() > 1 {
            return Ok(None);
        }
    }
    match names.pop() {
        Some((name, kind)) if kind.is_dir() => Ok(name
            .to_str()
            .filter(|n| !SKIPPED_DIRS.contains(n))
            .map(str::to_string)),
        _ => Ok(None),
    }
}

fn check_has_terraform(root: &Path) -> Result<(), ArchiveProblem> {
    let io_problem = |e: io::Error| {
        ArchiveProblem::Zip(ZipProblem::Io {
            entry: String::new(),
            message: e.to_string(),
        })
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io_problem)? {
        let name = entry.map_err(io_problem)?.file_name();
        let name = name.to_string_lossy().into_owned();
        if name.ends_with(".tf") || name.ends_with(".tf.json") {
            return Ok(());
        }
        names.push(name);
    }
    names.sort();
    names.truncate(10);
    Err(ArchiveProblem::NoTerraform {
        entries: if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        },
    })
}

/// Collects the entries under `dir` (archive name prefix `prefix`) in sorted order.
fn walk(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<Entry>,
    skipped: &mut Vec<String>,
    limits: &ZipLimits,
) -> Result<(), ArchiveProblem> {
    let io_problem = |entry: &str, e: io::Error| {
        ArchiveProblem::Zip(ZipProblem::Io {
            entry: entry.to_string(),
            message: e.to_string(),
        })
    };
    let mut children = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_problem(prefix, e))? {
        let entry = entry.map_err(|e| io_problem(prefix, e))?;
        let raw = entry.file_name();
        let Some(name) = raw.to_str() else {
            return Err(ArchiveProblem::NotUtf8 {
                entry: format!("{prefix}{}", raw.to_string_lossy()),
            });
        };
        children.push(name.to_string());
    }
    children.sort();
    for name in children {
        let full = format!("{prefix}{name}");
        let path = dir.join(&name);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io_problem(&full, e))?;
        if meta.is_dir() && SKIPPED_DIRS.contains(&name.as_str()) {
            skipped.push(format!("{full}/"));
            continue;
        }
        if let Some(why) = archive::unsafe_name(&full) {
            return Err(ZipProblem::UnsafeName { entry: full, why }.into());
        }
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(ZipProblem::Symlink { entry: full }.into());
        }
        if !kind.is_dir() && !kind.is_file() {
            return Err(ArchiveProblem::Special {
                entry: full,
                kind: "special file (device, FIFO or socket)",
            });
        }
        let mode = unix_mode(&meta);
        if mode & 0o6000 != 0 {
            return Err(ZipProblem::Setuid { entry: full, mode }.into());
        }
        if out.len() >= limits.max_entries {
            return Err(ZipProblem::TooManyEntries {
                count: out.len() + 1,
                max: limits.max_entries,
            }
            .into());
        }
        let size = if kind.is_file() { meta.len() } else { 0 };
        check_size(&full, size, out.iter().map(|e| e.size).sum(), limits)?;
        out.push(Entry {
            name: if kind.is_dir() {
                format!("{full}/")
            } else {
                full.clone()
            },
            path: path.clone(),
            dir: kind.is_dir(),
            executable: mode & 0o111 != 0,
            size,
        });
        if kind.is_dir() {
            walk(&path, &format!("{full}/"), out, skipped, limits)?;
        }
    }
    Ok(())
}

fn check_size(entry: &str, size: u64, before: u64, limits: &ZipLimits) -> Result<(), ZipProblem> {
    if size > limits.max_entry_bytes {
        return Err(ZipProblem::EntryTooLarge {
            entry: entry.to_string(),
            size,
            max: limits.max_entry_bytes,
        });
    }
    let total = before.saturating_add(size);
    if total > limits.max_total_bytes {
        return Err(ZipProblem::TotalTooLarge {
            total,
            max: limits.max_total_bytes,
        });
    }
    Ok(())
}

#[cfg(unix)]
fn unix_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode()
}

#[cfg(not(unix))]
fn unix_mode(_meta: &std::fs::Metadata) -> u32 {
    0o644
}

/// Writes `entries` (already sorted) as tar inside gzip, with fixed metadata.
fn write_tar_gz(entries: &[Entry], out: impl Write) -> io::Result<()> {
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(FIXED_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        if entry.dir {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            tar.append_data(&mut header, &entry.name, io::empty())?;
            continue;
        }
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(if entry.executable { 0o755 } else { 0o644 });
        header.set_size(entry.size);
        let file = std::fs::File::open(&entry.path)?;
        let mut body = file.take(entry.size);
        tar.append_data(&mut header, &entry.name, &mut body)?;
        if body.limit() != 0 {
            return Err(io::Error::other(format!(
                "{} shrank while being packed",
                entry.name
            )));
        }
    }
    tar.into_inner()?.finish()?.flush()
}

/// The kinds of input [`unpack`] understands, told apart by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TarGz,
    Zip,
}

fn sniff(path: &Path) -> io::Result<Option<Kind>> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path)?;
    let n = file.read(&mut magic)?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Some(Kind::TarGz),
        [b'P', b'K', 3, 4] => Some(Kind::Zip),
        _ => None,
    })
}

/// Unpacks the `.tar.gz` or `.zip` at `archive_path` into the empty directory `dest`,
/// checking every entry first-hand: safe names, only files and directories, no setuid,
/// sizes and ratio within `limits`, no duplicates.
pub fn unpack(archive_path: &Path, dest: &Path, limits: &ZipLimits) -> Result<(), ArchiveError> {
    let fail = |problem| ArchiveError {
        input: archive_path.display().to_string(),
        problem,
    };
    let io_fail = |e: io::Error| {
        fail(ArchiveProblem::Zip(ZipProblem::Io {
            entry: String::new(),
            message: e.to_string(),
        }))
    };
    match sniff(archive_path).map_err(io_fail)? {
        Some(Kind::TarGz) => unpack_tar_gz(archive_path, dest, limits).map_err(fail),
        Some(Kind::Zip) => unpack_zip(archive_path, dest, limits).map_err(fail),
        None => Err(fail(ArchiveProblem::NotArchive)),
    }
}

/// Tracks what has been unpacked, for duplicates and the totals.
struct Unpacker<'a> {
    dest: &'a Path,
    limits: &'a ZipLimits,
    seen: BTreeSet<String>,
    total: u64,
}

impl Unpacker<'_> {
    /// Checks an entry's name and size and returns its relative name (no trailing slash).
    fn admit(&mut self, raw: &str, size: u64) -> Result<String, ArchiveProblem> {
        let name = raw.strip_prefix("./").unwrap_or(raw);
        let name = name.trim_end_matches('/').to_string();
        if let Some(why) = archive::unsafe_name(&name) {
            return Err(ZipProblem::UnsafeName {
                entry: raw.to_string(),
                why,
            }
            .into());
        }
        if self.seen.len() >= self.limits.max_entries {
            return Err(ZipProblem::TooManyEntries {
                count: self.seen.len() + 1,
                max: self.limits.max_entries,
            }
            .into());
        }
        check_size(raw, size, self.total, self.limits)?;
        self.total += size;
        if !self.seen.insert(name.clone()) {
            return Err(ArchiveProblem::Duplicate { entry: name });
        }
        Ok(name)
    }

    fn dir(&self, name: &str) -> Result<(), ArchiveProblem> {
        let path = self.dest.join(name);
        std::fs::create_dir_all(&path).map_err(|e| io_problem(name, e))
    }

    /// Writes one file, never more than `size` bytes (more is an error).
    fn file(
        &self,
        name: &str,
        size: u64,
        executable: bool,
        body: impl Read,
    ) -> Result<(), ArchiveProblem> {
        let path = self.dest.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_problem(name, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_problem(name, e))?;
        let copied =
            io::copy(&mut body.take(size + 1), &mut file).map_err(|e| io_problem(name, e))?;
        if copied > size {
            return Err(ZipProblem::Overlong {
                entry: name.to_string(),
                declared: size,
            }
            .into());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = if executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io_problem(name, e))?;
        }
        #[cfg(not(unix))]
        let _ = executable;
        Ok(())
    }
}

fn io_problem(entry: &str, e: io::Error) -> ArchiveProblem {
    ArchiveProblem::Zip(ZipProblem::Io {
        entry: entry.to_string(),
        message: e.to_string(),
    })
}

fn unpack_tar_gz(path: &Path, dest: &Path, limits: &ZipLimits) -> Result<(), ArchiveProblem> {
    let compressed = std::fs::metadata(path)
        .map_err(|e| io_problem("", e))?
        .len()
        .max(1);
    let file = std::fs::File::open(path).map_err(|e| io_problem("", e))?;
    // Headers and padding cost at most a few blocks per entry beyond the content.
    let stream_cap = limits
        .max_total_bytes
        .saturating_add(limits.max_entries as u64 * 4 * 512 + 8192);
    let gz = flate2::read::GzDecoder::new(io::BufReader::new(file)).take(stream_cap);
    let mut tar = tar::Archive::new(gz);
    let mut unpacker = Unpacker {
        dest,
        limits,
        seen: BTreeSet::new(),
        total: 0,
    };
    let bad = |e: io::Error| ArchiveProblem::NotTar(e.to_string());
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw_bytes = entry.path_bytes().into_owned();
        let raw = String::from_utf8(raw_bytes).map_err(|e| ArchiveProblem::NotUtf8 {
            entry: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })?;
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644);
        let size = entry.header().size().map_err(bad)?;
        match kind {
            tar::EntryType::XGlobalHeader => continue,
            tar::EntryType::Symlink => return Err(ZipProblem::Symlink { entry: raw }.into()),
            tar::EntryType::Link => {
                return Err(ArchiveProblem::Special {
                    entry: raw,
                    kind: "hard link",
                })
            }
            tar::EntryType::Directory | tar::EntryType::Regular | tar::EntryType::Continuous => {}
            _ => {
                return Err(ArchiveProblem::Special {
                    entry: raw,
                    kind: "device, FIFO or other special entry",
                })
            }
        }
        if mode & 0o6000 != 0 {
            return Err(ZipProblem::Setuid { entry: raw, mode }.into());
        }
        let name = unpacker.admit(&raw, size)?;
        if unpacker.total > RATIO_FLOOR && unpacker.total / compressed > limits.max_ratio {
            return Err(ZipProblem::Ratio {
                entry: raw,
                size: unpacker.total,
                compressed,
                max: limits.max_ratio,
            }
            .into());
        }
        if name.is_empty() {
            continue; // "./" itself
        }
        if kind == tar::EntryType::Directory {
            unpacker.dir(&name)?;
        } else {
            unpacker.file(&name, size, mode & 0o111 != 0, &mut entry)?;
        }
    }
    Ok(())
}

fn unpack_zip(path: &Path, dest: &Path, limits: &ZipLimits) -> Result<(), ArchiveProblem> {
    let file = std::fs::File::open(path).map_err(|e| io_problem("", e))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file))
        .map_err(|e| ZipProblem::NotZip(e.to_string()))?;
    let mut unpacker = Unpacker {
        dest,
        limits,
        seen: BTreeSet::new(),
        total: 0,
    };
    for i in 0..zip.len() {
        let entry = zip
            .by_index(i)
            .map_err(|e| ZipProblem::NotZip(e.to_string()))?;
        let raw = String::from_utf8_lossy(entry.name_raw()).into_owned();
        archive::check_entry(&entry, &raw, limits)?;
        let size = entry.size();
        let name = unpacker.admit(&raw, size)?;
        if name.is_empty() {
            continue;
        }
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        if entry.is_dir() {
            unpacker.dir(&name)?;
        } else {
            unpacker.file(&name, size, executable, entry)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module_dir(root: &Path) -> PathBuf {
        let dir = root.join("m");
        std::fs::create_dir_all(dir.join("scripts")).expect("mkdir");
        std::fs::write(dir.join("main.tf"), "output \"x\" { value = 1 }\n").expect("tf");
        std::fs::write(dir.join("scripts/run.sh"), "#!/bin/sh\n").expect("sh");
        dir
    }

    fn pack(dir: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        pack_dir(dir, &mut out, &module_limits()).expect("pack");
        out
    }

    fn names(bytes: &[u8]) -> Vec<(String, u32, u64)> {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        tar.entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                (
                    e.path().expect("path").display().to_string(),
                    h.mode().expect("mode"),
                    h.mtime().expect("mtime"),
                )
            })
            .collect()
    }

    #[test]
    fn the_same_module_gives_the_same_bytes_whatever_its_metadata() {
        let tmp = tempfile::tempdir().expect("tmp");
        let a = module_dir(&tmp.path().join("a"));
        let first = pack(&a);
        // Same content, different mtimes and creation order.
        let b = tmp.path().join("b/m");
        std::fs::create_dir_all(&b).expect("mkdir");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::create_dir_all(b.join("scripts")).expect("mkdir");
        std::fs::write(b.join("scripts/run.sh"), "#!/bin/sh\n").expect("sh");
        std::fs::write(b.join("main.tf"), "output \"x\" { value = 1 }\n").expect("tf");
        assert_eq!(first, pack(&b));
        let listed = names(&first);
        let expected: Vec<(String, u32, u64)> = vec![
            ("main.tf".into(), 0o644, FIXED_MTIME),
            ("scripts/".into(), 0o755, FIXED_MTIME),
            ("scripts/run.sh".into(), 0o644, FIXED_MTIME),
        ];
        assert_eq!(listed, expected);
        // Content matters.
        std::fs::write(b.join("main.tf"), "output \"x\" { value = 2 }\n").expect("tf");
        assert_ne!(first, pack(&b));
    }

    #[cfg(unix)]
    #[test]
    fn executables_keep_their_bit_and_links_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = module_dir(tmp.path());
        let script = dir.join("scripts/run.sh");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let listed = names(&pack(&dir));
        assert!(listed.contains(&("scripts/run.sh".into(), 0o755, FIXED_MTIME)));
        std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd")).expect("symlink");
        let err = pack_dir(&dir, io::sink(), &module_limits()).expect_err("symlink");
        assert!(
            matches!(&err.problem, ArchiveProblem::Zip(ZipProblem::Symlink { entry }) if entry == "passwd"),
            "{err}"
        );
    }

    #[test]
    fn skipped_dirs_and_a_single_top_directory() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = module_dir(&tmp.path().join("wrap"));
        std::fs::create_dir_all(dir.join(".terraform/providers")).expect("mkdir");
        std::fs::write(dir.join(".terraform/providers/big"), "x").expect("write");
        let mut out = Vec::new();
        let packed = pack_dir(&tmp.path().join("wrap"), &mut out, &module_limits()).expect("pack");
        assert_eq!(packed.descended.as_deref(), Some("m"));
        assert_eq!(packed.skipped, vec![".terraform/".to_string()]);
        assert_eq!(out, pack(&dir));
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(empty.join("a")).expect("mkdir");
        std::fs::create_dir_all(empty.join("b")).expect("mkdir");
        let err = pack_dir(&empty, io::sink(), &module_limits()).expect_err("no tf");
        assert!(
            matches!(err.problem, ArchiveProblem::NoTerraform { .. }),
            "{err}"
        );
    }

    fn tar_gz_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let raw = b.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).expect("gz");
        gz.finish().expect("gz")
    }

    fn file_header(size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h
    }

    #[test]
    fn archives_unpack_to_the_same_bytes_as_the_directory() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = module_dir(tmp.path());
        let tgz = tar_gz_with(|b| {
            b.append_dir_all("mymod", &dir).expect("append");
        });
        let path = tmp.path().join("m.tar.gz");
        std::fs::write(&path, tgz).expect("write");
        let dest = tmp.path().join("out");
        std::fs::create_dir(&dest).expect("mkdir");
        unpack(&path, &dest, &module_limits()).expect("unpack");
        assert_eq!(pack(&dest), pack(&dir));
    }

    fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for (name, body) in entries {
            out.start_file(*name, opts).expect("start");
            out.write_all(body).expect("write");
        }
        out.finish().expect("finish").into_inner()
    }

    #[test]
    fn zips_unpack_like_directories_and_hostile_names_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = module_dir(tmp.path());
        let good = tmp.path().join("good.zip");
        std::fs::write(
            &good,
            zip_with(&[
                ("main.tf", b"output \"x\" { value = 1 }\n"),
                ("scripts/run.sh", b"#!/bin/sh\n"),
            ]),
        )
        .expect("write");
        let dest = tmp.path().join("good");
        std::fs::create_dir(&dest).expect("mkdir");
        unpack(&good, &dest, &module_limits()).expect("unpack");
        assert_eq!(pack(&dest), pack(&dir));
        for (label, name) in [("dotdot", "../evil.tf"), ("abs", "/tmp/evil.tf")] {
            let path = tmp.path().join(format!("{label}.zip"));
            std::fs::write(&path, zip_with(&[("main.tf", b""), (name, b"x")])).expect("write");
            let dest = tmp.path().join(label);
            std::fs::create_dir(&dest).expect("mkdir");
            let err = unpack(&path, &dest, &module_limits()).expect_err(label);
            assert!(
                matches!(
                    err.problem,
                    ArchiveProblem::Zip(ZipProblem::UnsafeName { .. })
                ),
                "{label}: {err}"
            );
        }
        assert!(!tmp.path().join("evil.tf").exists());
    }

    #[test]
    fn hostile_tar_entries_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "dotdot",
                tar_gz_with(|b| {
                    let mut h = file_header(1);
                    // Bypass the builder's own path checks.
                    h.as_gnu_mut().expect("gnu").name[..9].copy_from_slice(b"../evil.t");
                    h.set_cksum();
                    b.append(&h, &b"x"[..]).expect("append");
                }),
            ),
            (
                "symlink",
                tar_gz_with(|b| {
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, "main.tf", "/etc/passwd")
                        .expect("link");
                }),
            ),
            (
                "device",
                tar_gz_with(|b| {
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Char);
                    h.set_size(0);
                    b.append_data(&mut h, "tty", io::empty()).expect("dev");
                }),
            ),
            (
                "big",
                tar_gz_with(|b| {
                    let mut h = file_header(3 * 1024 * 1024);
                    b.append_data(&mut h, "zeros.tf", io::repeat(0).take(3 * 1024 * 1024))
                        .expect("big");
                }),
            ),
        ];
        let limits = ZipLimits {
            max_entry_bytes: 2 * 1024 * 1024,
            ..module_limits()
        };
        for (label, bytes) in cases {
            let path = tmp.path().join(format!("{label}.tgz"));
            std::fs::write(&path, bytes).expect("write");
            let dest = tmp.path().join(label);
            std::fs::create_dir(&dest).expect("mkdir");
            let err = unpack(&path, &dest, &limits).expect_err(label);
            let ok = match label {
                "dotdot" => matches!(
                    err.problem,
                    ArchiveProblem::Zip(ZipProblem::UnsafeName { .. })
                ),
                "symlink" => matches!(err.problem, ArchiveProblem::Zip(ZipProblem::Symlink { .. })),
                "device" => matches!(err.problem, ArchiveProblem::Special { .. }),
                _ => matches!(
                    err.problem,
                    ArchiveProblem::Zip(ZipProblem::EntryTooLarge { .. })
                ),
            };
            assert!(ok, "{label}: {err}");
            assert!(!tmp.path().join("evil.t").exists());
        }
    }
}
