//! `install` and `rollback`: from a signed bundle to a configured appliance root, and back
//! to the previous release.
//!
//! Install runs in this order, so that a kill at any instant leaves `ROOT/current` on the
//! old release or the new one, never on something half-made: preflight checks (sequence,
//! disk; they may only refuse, as the manifest is not verified yet) → verified unpack into
//! a staging directory whose name install chooses → the verified manifest's names checked,
//! the stage contract checked (platform, coderd, Terraform, Postgres tools, providers) and
//! the sequence checked again → renamed to `releases/VERSION-SEQUENCE` → CA,
//! certificates, trust bundle, terraformrc, settings and systemd unit (each written
//! atomically) → the database step as the service user (migrations, pre-upgrade backup,
//! ledger row, `coderd.env`) → the switch of `previous` and `current` (one rename each)
//! → SIGHUP to a running `up` so it moves to the new release.

pub mod contract;
pub mod database;
pub mod preflight;
pub mod rollback;
pub mod switch;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use airgap_bundle::{Manifest, PublicKey, VerifyOptions};
use anyhow::{bail, Context};

use crate::appliance::config::{AccessUrl, Config};
use crate::appliance::layout::Layout;
use crate::appliance::release::{Release, MANIFEST_FILE};
use crate::privilege::{self, ServiceUser};
use crate::progress::Bar;

/// Everything install needs, already parsed from the command line.
#[derive(Debug, Clone)]
pub struct Request {
    /// The bundle file.
    pub bundle: PathBuf,
    /// The trusted public key.
    pub pubkey: PathBuf,
    /// Verification options (signature path, `--allow-expired`).
    pub verify: VerifyOptions,
    /// The appliance root (absolute).
    pub root: PathBuf,
    /// Settings written to `coder-airgap.toml`.
    pub config: Config,
    /// An external database URL (`--postgres-url`).
    pub postgres_url: Option<String>,
    /// True when `ca_dir` is the default under ROOT and may be created.
    pub create_ca: bool,
    /// `--allow-downgrade`.
    pub allow_downgrade: bool,
    /// Leaf certificate lifetime in days.
    pub cert_days: u32,
}

/// What install did.
#[derive(Debug)]
pub struct Outcome {
    /// The release now current.
    pub release: Release,
    /// The release it replaced, if any.
    pub replaced: Option<String>,
    /// The pid of a running `up` that was told to reload.
    pub reloaded_up: Option<u32>,
}

/// Runs the whole install.
pub fn install(req: &Request) -> anyhow::Result<Outcome> {
    let layout = Layout::new(&req.root);
    let user = service_user(&req.config.service_user)?;
    if privilege::is_root() {
        check_reachable(&req.root, &user)?;
    }
    let key = PublicKey::from_file(&req.pubkey)?;
    // Not verified yet: read only to refuse early, never to name, create or delete a path.
    let claimed = airgap_bundle::read_manifest_unverified(&req.bundle)
        .with_context(|| format!("reading {}", req.bundle.display()))?;
    preflight::check_sequence(&layout, &claimed, req.allow_downgrade)?;
    preflight::check_disk(&req.root, &claimed)?;
    drop(claimed);
    create_tree(&layout)?;
    let _lock = lock_install(&layout)?;
    remove_stale_staging(&layout)?;
    let name = unpack_release(req, &layout, &key)?;
    let replaced = Release::current(&layout)
        .ok()
        .map(|r| r.name)
        .filter(|r| *r != name);
    configure(req, &layout)?;
    if privilege::is_root() {
        privilege::chown_tree(&req.root, &user)?;
    }
    database_step(&layout, &user, &name)?;
    switch::switch_to(&layout, &name)?;
    if privilege::is_root() {
        for link in [layout.current(), layout.previous()] {
            let _ = std::os::unix::fs::lchown(&link, Some(user.uid), Some(user.gid));
        }
    }
    let reloaded_up = crate::supervise::running_up(&layout);
    if let Some(pid) = reloaded_up {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP)
            .context("telling the running `up` to reload")?;
    }
    Ok(Outcome {
        release: Release::current(&layout)?,
        replaced,
        reloaded_up,
    })
}

/// The service user: looked up or created as root; as another user, it must be us.
fn service_user(name: &str) -> anyhow::Result<ServiceUser> {
    let user = privilege::ensure_service_user(name)?;
    if !privilege::is_root() && user.uid != nix::unistd::Uid::effective().as_raw() {
        bail!(
            "install as root (it creates files for --service-user {name}), \
             or run it as {name}, or pass --service-user with your own user name"
        );
    }
    Ok(user)
}

/// Fails when a directory above ROOT keeps the service user out (no search permission
/// for others and not owned by the user), naming the directory and the fix.
fn check_reachable(root: &Path, user: &ServiceUser) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for dir in root.ancestors().skip(1).filter(|d| d.exists()) {
        let meta = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
        if meta.mode() & 0o001 == 0 && meta.uid() != user.uid {
            bail!(
                "the service user {} cannot reach {}: {} is mode {:o}; \
                 chmod o+x {} or choose another --root (like /srv/coder)",
                user.name,
                root.display(),
                dir.display(),
                meta.mode() & 0o777,
                dir.display()
            );
        }
    }
    Ok(())
}

/// Creates ROOT's directories (private ones 0700).
fn create_tree(layout: &Layout) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let public = [
        layout.releases(),
        layout.etc().join("tls"),
        layout.etc().join("systemd"),
        layout.root().join("bin"),
    ];
    let private = [
        layout.root().join("data"),
        layout.secrets(),
        layout.backups(),
        layout.run(),
    ];
    for (dirs, mode) in [(&public[..], 0o755), (&private[..], 0o700)] {
        for dir in dirs {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Holds `run/install.lock` for the whole install: two installs at once would race on
/// the switch and the database step.
pub(crate) fn lock_install(layout: &Layout) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = layout.run().join("install.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow::anyhow!(
            "{}: another install or rollback is running on this root; wait for it to finish",
            path.display()
        )
    })
}

/// Removes unpack staging directories left by an install that was killed (safe: we hold
/// the install lock).
fn remove_stale_staging(layout: &Layout) -> anyhow::Result<()> {
    let releases = layout.releases();
    for entry in
        std::fs::read_dir(&releases).with_context(|| format!("reading {}", releases.display()))?
    {
        let path = entry?.path();
        let stale = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(airgap_bundle::STAGING_PREFIX));
        if stale {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Verifies and unpacks the bundle into a staging directory under `releases/` (named by
/// the bundle crate, never by the bundle), checks the verified manifest's names, the stage
/// contract and the sequence, then moves it to `releases/VERSION-SEQUENCE` complete with
/// its saved manifest, and returns that name. When that release is already installed from
/// the same bundle the staged copy is dropped. On any refusal the staged copy is removed.
fn unpack_release(req: &Request, layout: &Layout, key: &PublicKey) -> anyhow::Result<String> {
    let bar = Bar::new();
    let staged =
        airgap_bundle::unpack_staged(&req.bundle, key, &layout.releases(), &req.verify, &bar)
            .with_context(|| format!("verifying {}", req.bundle.display()))?;
    bar.finish();
    let verified = staged.verified().clone();
    let manifest = &verified.manifest;
    let refused = || format!("{}: refused", req.bundle.display());
    let name = Release::dir_name(manifest).with_context(refused)?;
    for reserved in [
        MANIFEST_FILE.to_string(),
        format!("{MANIFEST_FILE}.partial"),
    ] {
        if manifest.files.iter().any(|f| f.path == reserved)
            || manifest.directories.iter().any(|d| d.path == reserved)
        {
            bail!(
                "{}: the bundle holds {reserved}, a name reserved for install's own record",
                req.bundle.display()
            );
        }
    }
    contract::check(staged.path(), manifest).with_context(refused)?;
    preflight::check_sequence(layout, manifest, req.allow_downgrade)?;
    let dir = layout.release(&name);
    if dir.exists() && !dir.join(MANIFEST_FILE).exists() {
        // Left by an older install killed between unpack and saving the manifest.
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    if let Ok(installed) = Release::open(dir.clone()) {
        if installed.manifest != *manifest {
            bail!(
                "{} is already installed from a different bundle with the same version and \
                 sequence; give each bundle its own sequence (pack --sequence)",
                dir.display()
            );
        }
    }
    if !dir.exists() {
        save_manifest(staged.path(), manifest)?;
        staged
            .persist(&dir)
            .with_context(|| format!("moving the verified release to {}", dir.display()))?;
    }
    eprintln!(
        "verified {} {} sequence {} (key {})",
        manifest.name, manifest.version, manifest.sequence, verified.key_id
    );
    Ok(name)
}

fn save_manifest(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let path = dir.join(MANIFEST_FILE);
    let tmp = dir.join(format!("{MANIFEST_FILE}.partial"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(manifest)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

/// Certificates, trust bundle, terraformrc, settings, the external URL secret, the
/// systemd unit and a copy of this program under ROOT/bin.
fn configure(req: &Request, layout: &Layout) -> anyhow::Result<()> {
    let access = AccessUrl::parse(&req.config.access_url)?;
    let mirror_addr: SocketAddr = req
        .config
        .mirror_listen
        .parse()
        .context("--mirror-listen")?;
    let plan = tls::TlsPlan {
        access: &access,
        wildcard: req.config.wildcard_url.as_deref(),
        mirror_ip: specific_ip(mirror_addr.ip()),
        days: req.cert_days,
    };
    let ca = tls::open_ca(&req.config.ca_dir, req.create_ca, &plan)?;
    tls::issue_all(&ca, layout, &plan)?;
    let rc = airgap_mirror::maintain::terraformrc(&mirror_url(mirror_addr))?;
    write_atomic(&layout.terraformrc(), rc.as_bytes(), 0o644)?;
    write_atomic(
        &layout.config_file(),
        req.config.to_toml().as_bytes(),
        0o644,
    )?;
    if let Some(url) = &req.postgres_url {
        let path = layout.secrets().join(database::EXTERNAL_URL_SECRET);
        write_atomic(&path, url.as_bytes(), 0o600)?;
    }
    let exe = copy_self(layout)?;
    let unit = crate::appliance::systemd::unit(&exe, layout.root(), &req.config.service_user);
    write_atomic(&layout.systemd_unit(), unit.as_bytes(), 0o644)
}

/// The mirror URL Terraform on this host uses: loopback when the mirror listens on all
/// addresses (no DNS needed), else the address it listens on.
pub fn mirror_url(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() || ip.is_loopback() => "127.0.0.1".to_string(),
        IpAddr::V6(ip) if ip.is_unspecified() || ip.is_loopback() => "[::1]".to_string(),
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("https://{host}:{}/", addr.port())
}

fn specific_ip(ip: IpAddr) -> Option<IpAddr> {
    Some(ip).filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
}

/// Copies the running program to `ROOT/bin/coder-airgap`, which the unit starts (the
/// service user may not be able to reach wherever the operator keeps it).
fn copy_self(layout: &Layout) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this program")?;
    let dest = installed_exe(layout);
    if exe == dest {
        return Ok(dest);
    }
    // /proc/self/exe still reads when the file on disk was replaced or removed meanwhile.
    let tmp = dest.with_extension("partial");
    std::fs::copy("/proc/self/exe", &tmp)
        .with_context(|| format!("copying {} to {}", exe.display(), tmp.display()))?;
    std::fs::rename(&tmp, &dest).with_context(|| format!("writing {}", dest.display()))?;
    Ok(dest)
}

/// `ROOT/bin/coder-airgap`, the copy of this program that the unit and the database step run.
fn installed_exe(layout: &Layout) -> PathBuf {
    layout.root().join("bin").join("coder-airgap")
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Runs the database step as the service user: in a child process when we are root
/// (PostgreSQL refuses root), in this process otherwise.
fn database_step(layout: &Layout, user: &ServiceUser, name: &str) -> anyhow::Result<()> {
    let installer = database::Installer {
        name: operator_name(),
    };
    if !privilege::is_root() {
        return crate::runtime::block_on(database::install_step(layout, name, &installer))?;
    }
    let exe = installed_exe(layout);
    let root = layout.root().as_os_str().to_owned();
    let args: Vec<std::ffi::OsString> = vec![
        "install-db".into(),
        "--root".into(),
        root,
        "--release".into(),
        name.into(),
        "--installed-by".into(),
        installer.name.into(),
    ];
    let status = privilege::command_as(user, &exe, args, privilege::DROPPED_MARKER)
        .stdin(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running the database step as {}", user.name))?;
    if !status.success() {
        bail!(
            "the database step (run as {}) failed; its error is above",
            user.name
        );
    }
    Ok(())
}

/// The operator for the ledger: `SUDO_USER`, else `USER`, else the uid.
fn operator_name() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", nix::unistd::Uid::effective()))
}
