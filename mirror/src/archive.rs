//! Zip checks: what a zip from an upstream (a provider package, a Terraform release) must
//! be before it enters a mirror or a stage. Every entry has a safe relative name (no `..`,
//! no absolute or Windows paths), none is a symlink or setuid, declared sizes, the
//! compression ratio and the entry count are bounded, and the expected executable is
//! present. Only the central directory is read; [`extract_member`] streams one member to
//! disk and holds it to its declared size.

use std::io::{self, Read, Seek, Write};
use std::path::Path;

/// Bounds for one zip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    /// Entries in the central directory.
    pub max_entries: usize,
    /// Declared uncompressed size of one entry.
    pub max_entry_bytes: u64,
    /// Declared uncompressed size of all entries together.
    pub max_total_bytes: u64,
    /// Uncompressed / compressed size of an entry larger than [`RATIO_FLOOR`].
    pub max_ratio: u64,
}

/// Entries smaller than this are not held to the ratio (tiny files compress very well).
pub const RATIO_FLOOR: u64 = 1024 * 1024;

impl Default for ZipLimits {
    /// Generous for provider packages and Terraform releases (one executable of up to a
    /// few hundred MiB that compresses 3-5x, plus a licence and a readme).
    fn default() -> Self {
        ZipLimits {
            max_entries: 1000,
            max_entry_bytes: 2 * 1024 * 1024 * 1024,
            max_total_bytes: 4 * 1024 * 1024 * 1024,
            max_ratio: 100,
        }
    }
}

/// A zip that may not enter the mirror or the stage, naming the archive and the entry.
#[derive(Debug, thiserror::Error)]
#[error("{archive}: {problem}")]
pub struct ZipCheckError {
    /// The archive (a path or a URL).
    pub archive: String,
    /// What is wrong.
    pub problem: ZipProblem,
}

/// What is wrong with a zip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZipProblem {
    /// Not a readable zip.
    #[error("not a readable zip archive ({0})")]
    NotZip(String),
    /// Too many entries.
    #[error("has {count} entries, more than the {max} allowed")]
    TooManyEntries {
        /// Entries in the archive.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// An entry name that could land outside the directory it is unpacked into.
    #[error("entry {entry:?} has an unsafe name ({why})")]
    UnsafeName {
        /// The entry name.
        entry: String,
        /// Why it is unsafe.
        why: &'static str,
    },
    /// A symlink entry.
    #[error("entry {entry:?} is a symbolic link; provider and release zips hold only files")]
    Symlink {
        /// The entry name.
        entry: String,
    },
    /// A setuid or setgid entry.
    #[error("entry {entry:?} is setuid or setgid (mode {mode:o})")]
    Setuid {
        /// The entry name.
        entry: String,
        /// Its unix mode.
        mode: u32,
    },
    /// An entry declares more bytes than allowed.
    #[error("entry {entry:?} declares {size} bytes, more than the {max} allowed")]
    EntryTooLarge {
        /// The entry name.
        entry: String,
        /// Declared size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// The entries together declare more bytes than allowed.
    #[error("entries declare {total} bytes together, more than the {max} allowed")]
    TotalTooLarge {
        /// Sum of declared sizes.
        total: u64,
        /// The bound.
        max: u64,
    },
    /// An entry compresses implausibly well (a zip bomb).
    #[error("entry {entry:?} expands {size} bytes from {compressed} (ratio above {max}): refusing a zip bomb")]
    Ratio {
        /// The entry name.
        entry: String,
        /// Declared uncompressed size.
        size: u64,
        /// Compressed size.
        compressed: u64,
        /// The bound.
        max: u64,
    },
    /// The expected executable is missing.
    #[error("has no executable {executable} at its top level (entries: {entries}); Terraform would fail at the first workspace build")]
    NoExecutable {
        /// The executable's name.
        executable: String,
        /// What the archive holds.
        entries: String,
    },
    /// A member holds more bytes than it declared.
    #[error("entry {entry:?} holds more than the {declared} bytes it declares")]
    Overlong {
        /// The entry name.
        entry: String,
        /// Declared size.
        declared: u64,
    },
    /// Reading or writing failed.
    #[error("entry {entry:?}: {message}")]
    Io {
        /// The entry name.
        entry: String,
        /// What failed.
        message: String,
    },
}

/// What a checked zip holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipSummary {
    /// Entries in the archive.
    pub entries: usize,
    /// Sum of declared uncompressed sizes.
    pub total_bytes: u64,
    /// The name of the executable entry found.
    pub executable: String,
}

/// The executable a provider package for `type_name` must hold (`terraform-provider-NAME`,
/// optionally followed by `_vVERSION...` as HashiCorp names them).
pub fn provider_executable(type_name: &str) -> String {
    format!("terraform-provider-{type_name}")
}

/// Checks a zip read from `reader` against `limits`; `executable` must be a top-level file
/// named `executable` or `executable_…`. `archive` names the zip in errors.
pub fn check_zip<R: Read + Seek>(
    archive: &str,
    reader: R,
    executable: &str,
    limits: &ZipLimits,
) -> Result<ZipSummary, ZipCheckError> {
    let fail = |problem| ZipCheckError {
        archive: archive.to_string(),
        problem,
    };
    let mut zip =
        zip::ZipArchive::new(reader).map_err(|e| fail(ZipProblem::NotZip(e.to_string())))?;
    if zip.len() > limits.max_entries {
        return Err(fail(ZipProblem::TooManyEntries {
            count: zip.len(),
            max: limits.max_entries,
        }));
    }
    let mut total = 0u64;
    let mut found = None;
    let mut names = Vec::new();
    for i in 0..zip.len() {
        let entry = zip
            .by_index_raw(i)
            .map_err(|e| fail(ZipProblem::NotZip(e.to_string())))?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        check_entry(&entry, &name, limits).map_err(&fail)?;
        total = total.saturating_add(entry.size());
        if total > limits.max_total_bytes {
            return Err(fail(ZipProblem::TotalTooLarge {
                total,
                max: limits.max_total_bytes,
            }));
        }
        if found.is_none() && !entry.is_dir() && is_executable_name(&name, executable) {
            found = Some(name.clone());
        }
        if names.len() < 10 {
            names.push(name);
        }
    }
    let Some(executable_found) = found else {
        return Err(fail(ZipProblem::NoExecutable {
            executable: executable.to_string(),
            entries: if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
        }));
    };
    Ok(ZipSummary {
        entries: zip.len(),
        total_bytes: total,
        executable: executable_found,
    })
}

/// [`check_zip`] on a file.
pub fn check_zip_file(
    path: &Path,
    executable: &str,
    limits: &ZipLimits,
) -> Result<ZipSummary, ZipCheckError> {
    let label = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| ZipCheckError {
        archive: label.clone(),
        problem: ZipProblem::Io {
            entry: String::new(),
            message: e.to_string(),
        },
    })?;
    check_zip(&label, io::BufReader::new(file), executable, limits)
}

/// Checks the zip at `path`, then streams its executable `executable` into `out` (never
/// more than the member declares). Returns what the check found.
pub fn extract_member(
    path: &Path,
    executable: &str,
    limits: &ZipLimits,
    out: &mut impl Write,
) -> Result<ZipSummary, ZipCheckError> {
    let summary = check_zip_file(path, executable, limits)?;
    let label = path.display().to_string();
    let fail = |problem| ZipCheckError {
        archive: label.clone(),
        problem,
    };
    let io_fail = |e: &dyn std::fmt::Display| {
        fail(ZipProblem::Io {
            entry: summary.executable.clone(),
            message: e.to_string(),
        })
    };
    let file = std::fs::File::open(path).map_err(|e| io_fail(&e))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file))
        .map_err(|e| fail(ZipProblem::NotZip(e.to_string())))?;
    let member = zip.by_name(&summary.executable).map_err(|e| io_fail(&e))?;
    let declared = member.size();
    let copied = io::copy(&mut member.take(declared + 1), out).map_err(|e| io_fail(&e))?;
    if copied > declared {
        return Err(fail(ZipProblem::Overlong {
            entry: summary.executable.clone(),
            declared,
        }));
    }
    Ok(summary)
}

fn is_executable_name(name: &str, executable: &str) -> bool {
    match name.strip_prefix(executable) {
        Some("") => true,
        Some(rest) => rest.starts_with('_') && !rest.contains('/'),
        None => false,
    }
}

pub(crate) fn check_entry<R: Read>(
    entry: &zip::read::ZipFile<'_, R>,
    name: &str,
    limits: &ZipLimits,
) -> Result<(), ZipProblem> {
    if let Some(why) = unsafe_name(name) {
        return Err(ZipProblem::UnsafeName {
            entry: name.to_string(),
            why,
        });
    }
    let mode = entry.unix_mode().unwrap_or(0);
    if entry.is_symlink() || mode & 0o170000 == 0o120000 {
        return Err(ZipProblem::Symlink {
            entry: name.to_string(),
        });
    }
    if mode & 0o6000 != 0 {
        return Err(ZipProblem::Setuid {
            entry: name.to_string(),
            mode,
        });
    }
    let size = entry.size();
    if size > limits.max_entry_bytes {
        return Err(ZipProblem::EntryTooLarge {
            entry: name.to_string(),
            size,
            max: limits.max_entry_bytes,
        });
    }
    let compressed = entry.compressed_size().max(1);
    if size > RATIO_FLOOR && size / compressed > limits.max_ratio {
        return Err(ZipProblem::Ratio {
            entry: name.to_string(),
            size,
            compressed,
            max: limits.max_ratio,
        });
    }
    Ok(())
}

/// Why an archive entry name is unsafe, if it is: it must be a relative `/`-separated path
/// of normal components.
pub fn unsafe_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.contains('\0') {
        return Some("contains a NUL byte");
    }
    if name.contains('\\') {
        return Some("contains a backslash");
    }
    if name.starts_with('/') {
        return Some("absolute path");
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return Some("Windows drive path");
    }
    if name.split('/').any(|part| part == "..") {
        return Some("contains ..");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(unsafe_name("terraform-provider-x_v1"), None);
        assert_eq!(unsafe_name("docs/README.md"), None);
        assert_eq!(unsafe_name("../x"), Some("contains .."));
        assert_eq!(unsafe_name("a/../../x"), Some("contains .."));
        assert_eq!(unsafe_name("/etc/passwd"), Some("absolute path"));
        assert_eq!(unsafe_name("C:/x"), Some("Windows drive path"));
        assert_eq!(unsafe_name("a\\..\\x"), Some("contains a backslash"));
    }

    #[test]
    fn executable_names_match_hashicorp_naming() {
        let exe = provider_executable("aws");
        assert!(is_executable_name("terraform-provider-aws", &exe));
        assert!(is_executable_name("terraform-provider-aws_v5.0.0_x5", &exe));
        assert!(!is_executable_name("terraform-provider-awsx", &exe));
        assert!(!is_executable_name("sub/terraform-provider-aws", &exe));
        assert!(!is_executable_name("terraform-provider-aws_v1/x", &exe));
    }
}
