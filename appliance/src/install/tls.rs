//! The appliance's certificates: the internal CA (an existing one, or a new one under
//! `ROOT/ca` constrained to the access URL's parent domain, `localhost` and 127.0.0.1),
//! leaves for coderd and the mirror, and the trust bundle everything else is given.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use airgap_certs::{CertificateAuthority, InitOptions, IpRange, LeafRequest};
use time::{Duration, OffsetDateTime};

use super::error::{InstallError, Result};
use crate::config::AccessUrl;
use crate::layout::Layout;
use crate::privilege::ServiceUser;
use crate::rootdir::{Dir, Owner};

/// The leaves under `etc/tls` whose keys the service user's coderd and mirror load.
const LEAVES: [&str; 2] = ["coderd", "mirror"];

/// A leaf closer than this to expiry is re-issued by install (and renewed by `up`).
pub const RENEW_WITHIN_DAYS: i64 = 30;

/// What certificates to make.
#[derive(Debug, Clone)]
pub struct TlsPlan<'a> {
    /// The parsed access URL.
    pub access: &'a AccessUrl,
    /// The wildcard app domain (`*.apps.example.internal`), if any.
    pub wildcard: Option<&'a str>,
    /// The mirror's listen IP when it is a specific, non-loopback address.
    pub mirror_ip: Option<IpAddr>,
    /// Leaf lifetime.
    pub days: u32,
}

/// Checks, before the certs crate is handed the path, that the CA directory cannot be
/// changed by anyone but root: the default `ROOT/ca` through ROOT's handle (not a link,
/// root-owned, writable by root only; a missing one is created by `init`), another
/// `--ca-dir` by opening it without following its last component.
pub fn check_ca_dir(root: &Dir, ca_dir: &Path, layout: &Layout) -> Result<()> {
    if ca_dir == layout.default_ca_dir() {
        root.existing_admin_dir("ca")?;
    } else if ca_dir.exists() {
        Dir::open_root(ca_dir)?;
    }
    Ok(())
}

/// Gives the private keys of coderd's and the mirror's current certificates to the
/// service user (0600 stays), through handles: `tls/.NAME.tls/current` is read as a link
/// and its target opened as one plain name. Called after issuing and renewing, as root.
pub fn hand_keys_to(tls: &Dir, user: &ServiceUser) -> Result<()> {
    if !crate::privilege::is_root() {
        return Ok(());
    }
    let owner = Owner {
        uid: user.uid,
        gid: user.gid,
    };
    for leaf in LEAVES {
        let Ok(store) = tls.open_subdir(&format!(".{leaf}.tls")) else {
            continue;
        };
        let Some(serial) = store.read_link("current")? else {
            continue;
        };
        let serial = serial
            .to_str()
            .filter(|s| !s.contains('/'))
            .ok_or_else(|| InstallError::TlsStore {
                path: store.path().to_path_buf(),
                problem: format!("current points at {}, not a version", serial.display()),
            })?;
        store.open_subdir(serial)?.chown_entry("tls.key", owner)?;
    }
    Ok(())
}

/// Loads the CA at `dir`, or creates it there when `create` (the default CA under ROOT).
pub fn open_ca(dir: &Path, create: bool, plan: &TlsPlan) -> Result<CertificateAuthority> {
    if dir.join("ca.json").exists() || !create {
        return CertificateAuthority::load(dir).map_err(InstallError::tls(format!(
            "loading the CA in {}",
            dir.display()
        )));
    }
    let mut options = InitOptions::new(format!("coder-airgap CA for {}", plan.access.host()));
    options.permitted_dns = plan.access.ca_domain().into_iter().collect();
    if !options.permitted_dns.iter().any(|d| d == "localhost") {
        options.permitted_dns.push("localhost".into());
    }
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    ips.extend(plan.access.ip());
    ips.extend(plan.mirror_ip);
    for ip in dedup(ips) {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        options.permitted_ip.push(IpRange::new(ip, prefix)?);
    }
    eprintln!(
        "creating the internal CA in {} (names: {})",
        dir.display(),
        options.permitted_dns.join(", ")
    );
    CertificateAuthority::init(dir, &options).map_err(InstallError::tls(format!(
        "creating the CA in {}",
        dir.display()
    )))
}

/// Issues (or keeps, when still right) coderd's and the mirror's certificates and writes
/// the trust bundle.
///
/// `tls` is the checked handle of `etc/tls`: a leaf being replaced is removed through it.
pub fn issue_all(
    ca: &CertificateAuthority,
    layout: &Layout,
    tls: &Dir,
    plan: &TlsPlan,
) -> Result<()> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let host_dns: Vec<String> = match plan.access.ip() {
        Some(_) => Vec::new(),
        None => vec![plan.access.host().to_string()],
    };
    let mut coderd_dns = host_dns.clone();
    coderd_dns.extend(plan.wildcard.map(str::to_string));
    coderd_dns.push("localhost".into());
    let mut coderd_ips = vec![loopback];
    coderd_ips.extend(plan.access.ip());
    let mut mirror_dns = host_dns;
    mirror_dns.push("localhost".into());
    let mut mirror_ips = vec![loopback];
    mirror_ips.extend(plan.access.ip());
    mirror_ips.extend(plan.mirror_ip);
    let leaves = [
        (layout.coderd_tls_prefix(), coderd_dns, coderd_ips),
        (layout.mirror_tls_prefix(), mirror_dns, mirror_ips),
    ];
    for (prefix, dns, ips) in leaves {
        let mut request = LeafRequest::server(dedup(dns), dedup(ips));
        request.days = plan.days;
        ensure_leaf(ca, &request, &prefix, tls)?;
    }
    ca.write_trust_bundle(&layout.ca_bundle())
        .map_err(InstallError::tls(format!(
            "writing {}",
            layout.ca_bundle().display()
        )))?;
    Ok(())
}

/// Keeps the leaf at `prefix` when it was issued for exactly these names and is not due
/// for renewal; otherwise replaces it.
fn ensure_leaf(
    ca: &CertificateAuthority,
    request: &LeafRequest,
    prefix: &Path,
    tls: &Dir,
) -> Result<()> {
    let crt = prefix.with_extension("crt");
    if crt.exists() {
        if leaf_still_fits(ca, request, prefix)? {
            return Ok(());
        }
        remove_leaf(prefix, tls)?;
    }
    let issued = ca
        .issue_to_files(request, prefix)
        .map_err(InstallError::tls(format!("issuing {}", crt.display())))?;
    eprintln!(
        "issued {} for {} (valid until {})",
        crt.display(),
        request.dns_names.join(", "),
        issued.leaf.not_after.date()
    );
    Ok(())
}

fn leaf_still_fits(
    ca: &CertificateAuthority,
    request: &LeafRequest,
    prefix: &Path,
) -> Result<bool> {
    let prefix = std::path::absolute(prefix).map_err(InstallError::io("resolving", prefix))?;
    let ledger = ca.ledger()?;
    let Some(entry) = ledger
        .entries
        .iter()
        .rev()
        .find(|e| e.out.as_deref() == Some(prefix.as_path()) && e.superseded_by.is_none())
    else {
        return Ok(false);
    };
    let wanted: BTreeSet<String> = request
        .dns_names
        .iter()
        .map(|d| format!("DNS:{d}"))
        .chain(request.ip_addresses.iter().map(|ip| format!("IP:{ip}")))
        .collect();
    let has: BTreeSet<String> = entry.sans().into_iter().collect();
    let fresh = entry.not_after > OffsetDateTime::now_utc() + Duration::days(RENEW_WITHIN_DAYS);
    Ok(wanted == has && fresh && entry.revoked.is_none())
}

/// Removes `PREFIX.crt`, `PREFIX.key` and their version store `.NAME.tls` through the
/// handle of their directory (links removed, never followed).
fn remove_leaf(prefix: &Path, tls: &Dir) -> Result<()> {
    let name =
        prefix
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| InstallError::TlsStore {
                path: prefix.to_path_buf(),
                problem: "not a certificate prefix".into(),
            })?;
    tls.remove_file(&format!("{name}.crt"))?;
    tls.remove_file(&format!("{name}.key"))?;
    tls.remove_tree(&format!(".{name}.tls"))?;
    Ok(())
}

fn dedup<T: Ord + Clone>(items: Vec<T>) -> Vec<T> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}
