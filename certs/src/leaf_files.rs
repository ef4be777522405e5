//! Leaf certificates on disk, and their renewal.
//!
//! For `--out /etc/coder/tls/coderd` the files are:
//!
//! ```text
//! coderd.crt -> .coderd.tls/current/tls.crt     leaf, then the chain without the root
//! coderd.key -> .coderd.tls/current/tls.key     its key, mode 0600
//! .coderd.tls/current -> <SERIAL>               swapped by one rename on renewal
//! .coderd.tls/<SERIAL>/tls.{crt,key}            this and the previous version are kept
//! ```
//!
//! Renewal writes a complete new `<SERIAL>` directory and then renames a new `current`
//! link over the old one, so the certificate and the key change together: a reader that
//! opens either path sees an old pair or a new pair, never a mix of one file from each.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use time::{Duration, OffsetDateTime};

use crate::authority::CertificateAuthority;
use crate::error::{CertsError, Result};
use crate::files;
use crate::leaf::{CheckedRequest, IssuedLeaf, LeafRequest, PrivateKeyPem, DEFAULT_LEAF_DAYS};
use crate::ledger::{LeafStatus, Ledger, LedgerEntry};
use crate::serial::Serial;

/// A leaf written to `PREFIX.crt` and `PREFIX.key`.
#[derive(Debug, Clone)]
pub struct IssuedFiles {
    /// The certificate and key.
    pub leaf: IssuedLeaf,
    /// `PREFIX.crt`: the leaf followed by the chain (without the root).
    pub cert_path: PathBuf,
    /// `PREFIX.key`: the private key, mode 0600.
    pub key_path: PathBuf,
}

/// One leaf replaced by [`CertificateAuthority::renew_due`].
#[derive(Debug, Clone)]
pub struct Renewal {
    /// Serial of the certificate that was due.
    pub old_serial: Serial,
    /// The new certificate, at the same paths.
    pub new: IssuedFiles,
}

/// The paths that make up one `--out PREFIX`.
struct LeafPaths {
    cert: PathBuf,
    key: PathBuf,
    /// `.NAME.tls` next to them.
    store: PathBuf,
    /// Name of `store` (link targets are relative, so the tree can be moved).
    store_name: String,
}

impl LeafPaths {
    fn new(prefix: &Path) -> Result<Self> {
        let bad = || {
            CertsError::invalid(
                "--out",
                prefix.display().to_string(),
                "give a file prefix like /etc/coder/tls/coderd",
            )
        };
        let name = prefix
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .ok_or_else(bad)?;
        let with = |ext: &str| {
            let mut s = OsString::from(prefix.as_os_str());
            s.push(ext);
            PathBuf::from(s)
        };
        let store_name = format!(".{name}.tls");
        Ok(LeafPaths {
            cert: with(".crt"),
            key: with(".key"),
            store: prefix.with_file_name(&store_name),
            store_name,
        })
    }

    /// Fails if `PREFIX.crt` or `PREFIX.key` exists (even as a dangling link).
    fn refuse_existing(&self) -> Result<()> {
        for path in [&self.cert, &self.key] {
            if path.symlink_metadata().is_ok() {
                return Err(CertsError::OutputExists(path.clone()));
            }
        }
        Ok(())
    }

    /// Writes the new version, switches `current` to it, and points the two public names
    /// at `current` (a no-op rename when they already do).
    fn install(&self, leaf: &IssuedLeaf) -> Result<()> {
        let version = self.store.join(leaf.serial.as_str());
        std::fs::create_dir_all(&version).map_err(CertsError::io("create directory", &version))?;
        files::write_atomic(
            &version.join("tls.key"),
            leaf.key.expose().as_bytes(),
            files::PRIVATE,
        )?;
        files::write_atomic(
            &version.join("tls.crt"),
            leaf.chain_pem.as_bytes(),
            files::PUBLIC,
        )?;
        let previous = std::fs::read_link(self.store.join("current")).ok();
        files::replace_symlink(Path::new(leaf.serial.as_str()), &self.store.join("current"))?;
        let current = Path::new(&self.store_name).join("current");
        files::replace_symlink(&current.join("tls.crt"), &self.cert)?;
        files::replace_symlink(&current.join("tls.key"), &self.key)?;
        self.prune(leaf.serial.as_str(), previous.as_deref());
        Ok(())
    }

    /// Removes versions other than the current and the previous one (best effort: a
    /// leftover old directory is harmless).
    fn prune(&self, current: &str, previous: Option<&Path>) {
        let Ok(entries) = std::fs::read_dir(&self.store) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let keep = name == "current"
                || name == current
                || previous.is_some_and(|p| p.as_os_str() == name);
            if !keep && entry.path().is_dir() && !entry.path().is_symlink() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Reads `PREFIX.crt` and `PREFIX.key` as one pair: both from the version `current`
/// points at when this is called, so a renewal running meanwhile cannot hand back a
/// certificate with the other version's key (reading the two links one after the other
/// could straddle the swap). Files not laid out by this crate are read as they are.
pub fn read_leaf_files(prefix: &Path) -> Result<(String, PrivateKeyPem)> {
    let paths = LeafPaths::new(prefix)?;
    let current = paths.store.join("current");
    for _ in 0..3 {
        let Ok(version) = std::fs::read_link(&current) else {
            break;
        };
        let dir = paths.store.join(version);
        match (
            files::read_text(&dir.join("tls.crt")),
            files::read_text(&dir.join("tls.key")),
        ) {
            (Ok(cert), Ok(key)) => return Ok((cert, PrivateKeyPem(key))),
            // Pruned by two renewals since read_link: look again.
            _ if !dir.exists() => continue,
            (Err(e), _) | (_, Err(e)) => return Err(e),
        }
    }
    Ok((
        files::read_text(&paths.cert)?,
        PrivateKeyPem(files::read_text(&paths.key)?),
    ))
}

impl CertificateAuthority {
    /// Issues a leaf for `request` and writes `PREFIX.crt` (leaf then chain, without the
    /// root) and `PREFIX.key` (0600). Refuses if either exists: renew instead.
    pub fn issue_to_files(&self, request: &LeafRequest, prefix: &Path) -> Result<IssuedFiles> {
        let checked = self.check_request(request)?;
        let prefix = std::path::absolute(prefix).map_err(CertsError::io("resolve", prefix))?;
        let paths = LeafPaths::new(&prefix)?;
        if let Some(parent) = prefix.parent() {
            std::fs::create_dir_all(parent).map_err(CertsError::io("create directory", parent))?;
        }
        let _lock = files::lock_dir(&self.dir)?;
        paths.refuse_existing()?;
        let mut ledger = Ledger::load(&self.dir)?;
        let (leaf, mut entry) = self.sign_leaf(&checked)?;
        entry.out = Some(prefix);
        ledger.entries.push(entry);
        // Recorded first: a certificate that exists is always in the ledger.
        ledger.save(&self.dir)?;
        paths.install(&leaf)?;
        Ok(IssuedFiles {
            leaf,
            cert_path: paths.cert,
            key_path: paths.key,
        })
    }

    /// Re-issues, to the same paths, every leaf written by [`Self::issue_to_files`] that is
    /// neither revoked nor already renewed and expires within `within` (expired ones
    /// included). The old entries are marked superseded; they stay valid until they expire.
    pub fn renew_due(&self, within: Duration) -> Result<Vec<Renewal>> {
        self.renew_matching(within, |_| true, |entry| entry.days)
    }

    /// Like [`Self::renew_due`], but only for leaves written to one of `prefixes` (the
    /// `--out` given at issue; relative prefixes are made absolute first). The appliance's
    /// supervisor renews its own coderd and mirror certificates this way, unattended: the
    /// CA may also have issued certificates for other hosts (`ca issue`), which are not its
    /// to replace. A leaf whose lifetime is no longer than `within` would be due again at
    /// once, so it is renewed for [`DEFAULT_LEAF_DAYS`] (at least twice `within`) instead
    /// of its own lifetime: renewing, and restarting its server, at every check helps no one.
    pub fn renew_due_for(&self, within: Duration, prefixes: &[PathBuf]) -> Result<Vec<Renewal>> {
        let wanted = prefixes
            .iter()
            .map(|p| std::path::absolute(p).map_err(CertsError::io("resolve", p)))
            .collect::<Result<Vec<_>>>()?;
        let window = u32::try_from(within.whole_days()).unwrap_or(u32::MAX);
        let lifetime = |entry: &LedgerEntry| match entry.days {
            days if days > window => days,
            _ => DEFAULT_LEAF_DAYS.max(window.saturating_mul(2)),
        };
        self.renew_matching(within, |out| wanted.iter().any(|w| w == out), lifetime)
    }

    /// Renews every due leaf whose `--out` prefix satisfies `wanted`, each for
    /// `lifetime(entry)` days.
    fn renew_matching(
        &self,
        within: Duration,
        wanted: impl Fn(&Path) -> bool,
        lifetime: impl Fn(&LedgerEntry) -> u32,
    ) -> Result<Vec<Renewal>> {
        let _lock = files::lock_dir(&self.dir)?;
        let mut ledger = Ledger::load(&self.dir)?;
        let now = OffsetDateTime::now_utc();
        let due: Vec<usize> = (0..ledger.entries.len())
            .filter(|i| {
                let e = &ledger.entries[*i];
                e.out.as_deref().is_some_and(&wanted)
                    && matches!(e.status(now), LeafStatus::Valid | LeafStatus::Expired)
                    && e.not_after <= now + within
            })
            .collect();
        let mut renewed = Vec::new();
        for i in due {
            let old = ledger.entries[i].clone();
            let prefix = old.out.clone().unwrap_or_default();
            let paths = LeafPaths::new(&prefix)?;
            let mut request = CheckedRequest::from_entry(&old);
            request.days = lifetime(&old);
            let (leaf, mut entry) = self.sign_leaf(&request)?;
            entry.out = Some(prefix);
            ledger.entries[i].superseded_by = Some(leaf.serial.clone());
            ledger.entries.push(entry);
            ledger.save(&self.dir)?;
            paths.install(&leaf)?;
            let new = IssuedFiles {
                leaf,
                cert_path: paths.cert,
                key_path: paths.key,
            };
            renewed.push(Renewal {
                old_serial: old.serial,
                new,
            });
        }
        Ok(renewed)
    }
}

#[cfg(test)]
mod tests {
    use crate::{CertificateAuthority, InitOptions, LeafRequest, LeafStatus};

    #[test]
    fn renew_due_for_renews_only_the_named_prefixes() -> crate::Result<()> {
        let tmp = tempfile::tempdir().map_err(crate::CertsError::io("tempdir", "/tmp"))?;
        let mut options = InitOptions::new("Renew For Test CA");
        options.permitted_dns = vec!["example.com".into()];
        let ca = CertificateAuthority::init(&tmp.path().join("ca"), &options)?;
        let ours = tmp.path().join("tls/coderd");
        let other = tmp.path().join("elsewhere/git");
        let request = |name: &str| LeafRequest {
            days: 10,
            ..LeafRequest::server([name], [])
        };
        ca.issue_to_files(&request("coder.example.com"), &ours)?;
        let kept = ca.issue_to_files(&request("git.example.com"), &other)?;

        let within = time::Duration::days(30);
        let renewed = ca.renew_due_for(within, std::slice::from_ref(&ours))?;
        assert_eq!(renewed.len(), 1);
        assert_eq!(renewed[0].new.cert_path, tmp.path().join("tls/coderd.crt"));
        let now = time::OffsetDateTime::now_utc();
        let left = (renewed[0].new.leaf.not_after - now).whole_days();
        assert!(
            left >= 89,
            "a 10-day leaf renews for the default 90 days: {left}"
        );
        let ledger = ca.ledger()?;
        let status = |serial: &crate::Serial| {
            ledger
                .entries
                .iter()
                .find(|e| &e.serial == serial)
                .map(|e| e.status(now))
        };
        assert_eq!(status(&kept.leaf.serial), Some(LeafStatus::Valid));
        assert_eq!(status(&renewed[0].old_serial), Some(LeafStatus::Superseded));
        // The renewed leaf is not due again.
        assert!(ca.renew_due_for(within, &[ours])?.is_empty());
        Ok(())
    }
}
