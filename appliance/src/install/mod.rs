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
//! ledger row), after which root writes `coderd.env` and the upgrade record it reported
//! → the switch of `previous` and `current` (one rename each) → SIGHUP to a running `up`
//! so it moves to the new release.
//!
//! Root writes only through the directory handles of [`Tree`] (see the ownership table on
//! [`Layout`]); the service user's directories are created and given to it, never entered.

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

use crate::config::Config;
use crate::layout::{Layout, EXTERNAL_URL_FILE, INSTALL_LOCK, PROGRAM};
use crate::postgres::SecretUrl;
use crate::privilege::{self, ServiceUser};
use crate::release::{Release, MANIFEST_FILE};
use crate::rootdir::{Dir, Owner};

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
    /// An external database URL (`--postgres-url`; `Debug` hides its password).
    pub postgres_url: Option<SecretUrl>,
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
pub fn install(req: &Request, progress: &dyn airgap_bundle::Progress) -> anyhow::Result<Outcome> {
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
    let tree = create_tree(&layout, &user)?;
    let _lock = lock_install(&tree.root)?;
    remove_stale_staging(&layout)?;
    let name = unpack_release(req, &layout, &key, progress)?;
    let replaced = Release::current(&layout)
        .ok()
        .map(|r| r.name)
        .filter(|r| *r != name);
    configure(req, &layout, &tree, &user)?;
    database_step(&layout, &tree, &user, &name)?;
    switch::switch_to(&tree.root, &name)?;
    let reloaded_up = crate::supervise::running_up(&layout)
        .filter(|pid| !privilege::is_root() || privilege::process_owner(*pid) == Some(user.uid));
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
/// for others and not owned by the user), or belongs to it, naming the directory and
/// the fix.
fn check_reachable(root: &Path, user: &ServiceUser) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for dir in root.ancestors().skip(1).filter(|d| d.exists()) {
        let meta = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
        if meta.uid() == user.uid {
            bail!(
                "{} belongs to the service user {}, who could move ROOT ({}) away under \
                 root; chown root:root {} or choose another --root (like /srv/coder)",
                dir.display(),
                user.name,
                root.display(),
                dir.display()
            );
        }
        if meta.mode() & 0o001 == 0 {
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

/// ROOT's directories, opened by handle and checked (see the ownership table on
/// [`Layout`]): root's own are root-owned and writable by root only, the service user's
/// are created and given to it, never entered.
pub struct Tree {
    /// ROOT itself.
    pub root: Dir,
    /// `ROOT/releases`.
    pub releases: Dir,
    /// `ROOT/etc`.
    pub etc: Dir,
    /// `ROOT/etc/tls`.
    pub tls: Dir,
    /// `ROOT/etc/systemd`.
    pub systemd: Dir,
    /// `ROOT/bin`.
    pub bin: Dir,
}

/// Opens (creating what is missing) ROOT's tree, refusing links, directories root writes
/// into that others can change, and gives the service user its directories.
pub fn create_tree(layout: &Layout, user: &ServiceUser) -> anyhow::Result<Tree> {
    let root = Dir::open_root(layout.root())?;
    let etc = root.admin_dir("etc")?;
    let tree = Tree {
        releases: root.admin_dir("releases")?,
        tls: etc.admin_dir("tls")?,
        systemd: etc.admin_dir("systemd")?,
        bin: root.admin_dir("bin")?,
        etc,
        root,
    };
    let owner = service_owner(user);
    let data = tree.root.service_dir("data", 0o700, owner)?;
    data.service_dir("secrets", 0o700, owner)?;
    tree.root.service_dir("backups", 0o700, owner)?;
    tree.root.service_dir("run", 0o700, owner)?;
    Ok(tree)
}

/// The service user as an owner for [`Dir`] calls.
pub fn service_owner(user: &ServiceUser) -> Owner {
    Owner {
        uid: user.uid,
        gid: user.gid,
    }
}

/// Holds `ROOT/.install.lock` (root's) for the whole install: two installs at once would
/// race on the switch and the database step.
pub fn lock_install(root: &Dir) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let file = root.open_lock_file(INSTALL_LOCK)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow::anyhow!(
            "{}: another install or rollback is running on this root; wait for it to finish",
            root.path().join(INSTALL_LOCK).display()
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
fn unpack_release(
    req: &Request,
    layout: &Layout,
    key: &PublicKey,
    bar: &dyn airgap_bundle::Progress,
) -> anyhow::Result<String> {
    let staged =
        airgap_bundle::unpack_staged(&req.bundle, key, &layout.releases(), &req.verify, bar)
            .with_context(|| format!("verifying {}", req.bundle.display()))?;
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
    airgap_fsutil::atomic_write(&path, &serde_json::to_vec_pretty(manifest)?)?;
    Ok(())
}

/// Certificates, trust bundle, terraformrc, settings, the external URL secret, the
/// systemd unit and a copy of this program under ROOT/bin, each written through the
/// directory handles of `tree`.
fn configure(
    req: &Request,
    layout: &Layout,
    tree: &Tree,
    user: &ServiceUser,
) -> anyhow::Result<()> {
    let mirror_addr = req.config.mirror_listen;
    let plan = tls::TlsPlan {
        access: &req.config.access_url,
        wildcard: req.config.wildcard_url.as_deref(),
        mirror_ip: specific_ip(mirror_addr.ip()),
        days: req.cert_days,
    };
    tls::check_ca_dir(&tree.root, &req.config.ca_dir, layout)?;
    let ca = tls::open_ca(&req.config.ca_dir, req.create_ca, &plan)?;
    tls::issue_all(&ca, layout, &tree.tls, &plan)?;
    tls::hand_keys_to(&tree.tls, user)?;
    let rc = airgap_mirror::maintain::terraformrc(&mirror_url(mirror_addr))?;
    tree.etc
        .write_file("terraformrc", rc.as_bytes(), 0o644, None)?;
    tree.etc.write_file(
        "coder-airgap.toml",
        req.config.to_toml().as_bytes(),
        0o644,
        None,
    )?;
    if let Some(url) = &req.postgres_url {
        tree.etc.write_file(
            EXTERNAL_URL_FILE,
            url.expose().as_bytes(),
            0o600,
            privilege::is_root().then(|| service_owner(user)),
        )?;
    }
    let exe = copy_self(layout, &tree.bin)?;
    let unit = crate::systemd::unit(&exe, layout.root(), &req.config.service_user);
    tree.systemd
        .write_file("coder-airgap.service", unit.as_bytes(), 0o644, None)?;
    Ok(())
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
fn copy_self(layout: &Layout, bin: &Dir) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this program")?;
    let dest = layout.installed_exe();
    if exe == dest {
        return Ok(dest);
    }
    // /proc/self/exe still reads when the file on disk was replaced or removed meanwhile.
    let mut source = std::fs::File::open("/proc/self/exe")
        .with_context(|| format!("reading {}", exe.display()))?;
    bin.copy_file(PROGRAM, &mut source, 0o755)?;
    Ok(dest)
}

/// Runs the database step as the service user (in a child process when we are root:
/// PostgreSQL refuses root; in this process otherwise), then writes what it reported
/// where the service user cannot: `etc/coderd.env` (the service user's, 0600) and the
/// upgrade record in the release directory.
fn database_step(
    layout: &Layout,
    tree: &Tree,
    user: &ServiceUser,
    name: &str,
) -> anyhow::Result<()> {
    let installer = database::Installer {
        name: operator_name(),
    };
    let report = if privilege::is_root() {
        database_child(layout, user, name, &installer)?
    } else {
        crate::runtime::block_on(database::install_step(layout, name, &installer))??
    };
    let config = Config::read_in(&tree.etc, &layout.config_file())?;
    let release = Release::open(layout.release(name))?;
    let owner = privilege::is_root().then(|| service_owner(user));
    database::write_coderd_env(layout, &tree.etc, owner, &config, &release, &report.pg_url)?;
    if let Some(record) = &report.upgrade {
        let dir = tree.releases.admin_dir(name)?;
        dir.write_file(
            database::UPGRADE_FILE,
            &serde_json::to_vec_pretty(record)?,
            0o644,
            None,
        )?;
    }
    Ok(())
}

/// The database step as `user`: `install-db` prints its [`database::StepReport`] as one
/// JSON line on stdout (its progress goes to stderr).
fn database_child(
    layout: &Layout,
    user: &ServiceUser,
    name: &str,
    installer: &database::Installer,
) -> anyhow::Result<database::StepReport> {
    let exe = layout.installed_exe();
    let root = layout.root().as_os_str().to_owned();
    let args: Vec<std::ffi::OsString> = vec![
        "install-db".into(),
        "--root".into(),
        root,
        "--release".into(),
        name.into(),
        "--installed-by".into(),
        installer.name.clone().into(),
    ];
    let out = privilege::command_as(user, &exe, args, privilege::DROPPED_MARKER)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running the database step as {}", user.name))?;
    if !out.status.success() {
        bail!(
            "the database step (run as {}) failed; its error is above",
            user.name
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).with_context(|| {
        format!(
            "the database step (run as {}) reported no result",
            user.name
        )
    })
}

/// The operator for the ledger: `SUDO_USER`, else `USER`, else the uid.
fn operator_name() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", nix::unistd::Uid::effective()))
}
