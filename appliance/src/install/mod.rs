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
pub mod error;
pub mod preflight;
pub mod rollback;
pub mod switch;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use airgap_bundle::{Manifest, PublicKey, VerifyOptions};
pub use error::InstallError;
use error::Result;

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

/// The steps of an install, in the order it runs them. Install says `install: step NAME`
/// on stderr as it enters each, so an operator sees where a failed or killed install
/// stopped, and the kill test names its kill points from this list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Service user, reachability of ROOT, the key, the claimed sequence and free disk.
    Preflight,
    /// ROOT's tree opened and checked, the install lock taken, stale staging removed.
    Lock,
    /// Verified unpack into staging, the contract checked, renamed into `releases/`.
    Unpack,
    /// CA, certificates, trust bundle, terraformrc, settings, unit, `bin/coder-airgap`.
    Configure,
    /// Migrations, the pre-upgrade backup, the ledger row, then `coderd.env`.
    Database,
    /// `previous` and `current` switched, one rename each.
    Switch,
    /// A running `up` told to move to the new release.
    Reload,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 7] = [
        Step::Preflight,
        Step::Lock,
        Step::Unpack,
        Step::Configure,
        Step::Database,
        Step::Switch,
        Step::Reload,
    ];

    /// The step's stable name (printed, and matched by tests).
    pub fn name(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Lock => "lock",
            Step::Unpack => "unpack",
            Step::Configure => "configure",
            Step::Database => "database",
            Step::Switch => "switch",
            Step::Reload => "reload",
        }
    }

    /// The line install prints on stderr as it enters the step.
    pub fn line(self) -> String {
        format!("install: step {}", self.name())
    }

    fn enter(self) {
        eprintln!("{}", self.line());
    }
}

/// Runs the whole install, step by step (see [`Step`]).
pub fn install(req: &Request, progress: &dyn airgap_bundle::Progress) -> Result<Outcome> {
    let layout = Layout::new(&req.root);
    Step::Preflight.enter();
    let user = service_user(&req.config.service_user)?;
    if privilege::is_root() {
        check_reachable(&req.root, &user)?;
    }
    let key = PublicKey::from_file(&req.pubkey)?;
    // Not verified yet: read only to refuse early, never to name, create or delete a path.
    let claimed = airgap_bundle::read_manifest_unverified(&req.bundle).map_err(|cause| {
        InstallError::ReadBundle {
            bundle: req.bundle.clone(),
            cause,
        }
    })?;
    preflight::check_sequence(&layout, &claimed, req.allow_downgrade)?;
    preflight::check_disk(&req.root, &claimed)?;
    drop(claimed);
    Step::Lock.enter();
    let tree = create_tree(&layout, &user)?;
    let _lock = lock_install(&tree.root)?;
    remove_stale_staging(&layout)?;
    Step::Unpack.enter();
    let name = unpack_release(req, &layout, &key, progress)?;
    let replaced = Release::current(&layout)
        .ok()
        .map(|r| r.name)
        .filter(|r| *r != name);
    Step::Configure.enter();
    configure(req, &layout, &tree, &user, &name)?;
    Step::Database.enter();
    database_step(&layout, &tree, &user, &name)?;
    Step::Switch.enter();
    switch::switch_to(&tree.root, &name)?;
    Step::Reload.enter();
    let reloaded_up = crate::supervise::running_up(&layout)
        .filter(|pid| !privilege::is_root() || privilege::process_owner(*pid) == Some(user.uid));
    if let Some(pid) = reloaded_up {
        let raw = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0));
        nix::sys::signal::kill(raw, nix::sys::signal::Signal::SIGHUP)
            .map_err(|cause| InstallError::Reload { pid, cause })?;
    }
    Ok(Outcome {
        release: Release::current(&layout)?,
        replaced,
        reloaded_up,
    })
}

/// The service user: looked up or created as root; as another user, it must be us.
fn service_user(name: &str) -> Result<ServiceUser> {
    let user = privilege::ensure_service_user(name)?;
    if !privilege::is_root() && user.uid != nix::unistd::Uid::effective().as_raw() {
        return Err(InstallError::NotServiceUser {
            name: name.to_string(),
        });
    }
    Ok(user)
}

/// Fails when a directory above ROOT keeps the service user out (no search permission
/// for others and not owned by the user), or belongs to it, naming the directory and
/// the fix.
fn check_reachable(root: &Path, user: &ServiceUser) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for dir in root.ancestors().skip(1).filter(|d| d.exists()) {
        let meta = std::fs::metadata(dir).map_err(InstallError::io("reading", dir))?;
        if meta.uid() == user.uid {
            return Err(InstallError::AncestorOwnedByServiceUser {
                dir: dir.to_path_buf(),
                user: user.name.clone(),
                root: root.to_path_buf(),
            });
        }
        if meta.mode() & 0o001 == 0 {
            return Err(InstallError::Unreachable {
                user: user.name.clone(),
                root: root.to_path_buf(),
                dir: dir.to_path_buf(),
                mode: meta.mode() & 0o777,
            });
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
pub fn create_tree(layout: &Layout, user: &ServiceUser) -> Result<Tree> {
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
pub fn lock_install(root: &Dir) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let file = root.open_lock_file(INSTALL_LOCK)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        InstallError::Locked {
            path: root.path().join(INSTALL_LOCK),
        }
    })
}

/// Removes unpack staging directories left by an install that was killed (safe: we hold
/// the install lock).
fn remove_stale_staging(layout: &Layout) -> Result<()> {
    let releases = layout.releases();
    for entry in std::fs::read_dir(&releases).map_err(InstallError::io("reading", &releases))? {
        let path = entry
            .map_err(InstallError::io("reading", &releases))?
            .path();
        let stale = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(airgap_bundle::STAGING_PREFIX));
        if stale {
            std::fs::remove_dir_all(&path).map_err(InstallError::io("removing", &path))?;
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
) -> Result<String> {
    let bundle = || req.bundle.clone();
    let staged =
        airgap_bundle::unpack_staged(&req.bundle, key, &layout.releases(), &req.verify, bar)
            .map_err(|cause| InstallError::Verification {
                bundle: bundle(),
                cause,
            })?;
    let verified = staged.verified().clone();
    let manifest = &verified.manifest;
    let name = Release::dir_name(manifest).map_err(|cause| InstallError::BadName {
        bundle: bundle(),
        cause,
    })?;
    for reserved in [
        MANIFEST_FILE.to_string(),
        format!("{MANIFEST_FILE}.partial"),
    ] {
        if manifest.files.iter().any(|f| f.path == reserved)
            || manifest.directories.iter().any(|d| d.path == reserved)
        {
            return Err(InstallError::ReservedName {
                bundle: bundle(),
                name: reserved,
            });
        }
    }
    contract::check(staged.path(), manifest).map_err(|cause| InstallError::Contract {
        bundle: bundle(),
        cause,
    })?;
    preflight::check_sequence(layout, manifest, req.allow_downgrade)?;
    let dir = layout.release(&name);
    if dir.exists() && !dir.join(MANIFEST_FILE).exists() {
        // Left by an older install killed between unpack and saving the manifest.
        std::fs::remove_dir_all(&dir).map_err(InstallError::io("removing", &dir))?;
    }
    if let Ok(installed) = Release::open(dir.clone()) {
        if installed.manifest != *manifest {
            return Err(InstallError::Conflict { dir });
        }
    }
    if !dir.exists() {
        save_manifest(staged.path(), manifest)?;
        staged
            .persist(&dir)
            .map_err(|cause| InstallError::Persist {
                dir: dir.clone(),
                cause,
            })?;
    }
    eprintln!(
        "verified {} {} sequence {} (key {})",
        manifest.name, manifest.version, manifest.sequence, verified.key_id
    );
    Ok(name)
}

fn save_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let path = dir.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(InstallError::json(format!("writing {}", path.display())))?;
    airgap_fsutil::atomic_write(&path, &json)?;
    Ok(())
}

/// Certificates, trust bundle, terraformrc, settings, the external URL secret, the
/// systemd unit and a copy of this program under ROOT/bin, each written through the
/// directory handles of `tree`. The terraformrc is made for release `name`: it names
/// every module host that release's mirror serves.
fn configure(
    req: &Request,
    layout: &Layout,
    tree: &Tree,
    user: &ServiceUser,
    name: &str,
) -> Result<()> {
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
    let release = Release::open(layout.release(name))?;
    let rc = terraformrc(&release.providers_dir(), mirror_addr)?;
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

/// The Terraform CLI configuration for the mirror tree `providers_dir` (a release's
/// [`Release::providers_dir`], which `up`'s mirror serves) at `mirror_addr`: the provider
/// mirror, and a `host` block for every host the tree's module store carries modules of
/// (besides registry.coder.com and registry.terraform.io, which always get one), so a
/// template's module sources on those hosts resolve to the mirror, never to DNS.
pub fn terraformrc(providers_dir: &Path, mirror_addr: SocketAddr) -> Result<String> {
    let hosts = airgap_mirror::ModuleStore::new(providers_dir).hosts()?;
    Ok(airgap_mirror::maintain::terraformrc_with_hosts(
        &mirror_url(mirror_addr),
        &hosts,
    )?)
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
fn copy_self(layout: &Layout, bin: &Dir) -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|cause| InstallError::OwnExe { cause })?;
    let dest = layout.installed_exe();
    if exe == dest {
        return Ok(dest);
    }
    // /proc/self/exe still reads when the file on disk was replaced or removed meanwhile.
    let mut source =
        std::fs::File::open("/proc/self/exe").map_err(InstallError::io("reading", &exe))?;
    bin.copy_file(PROGRAM, &mut source, 0o755)?;
    Ok(dest)
}

/// Runs the database step as the service user (in a child process when we are root:
/// PostgreSQL refuses root; in this process otherwise), then writes what it reported
/// where the service user cannot: `etc/coderd.env` (the service user's, 0600) and the
/// upgrade record in the release directory.
fn database_step(layout: &Layout, tree: &Tree, user: &ServiceUser, name: &str) -> Result<()> {
    let installer = database::Installer {
        name: operator_name(),
    };
    let report = if privilege::is_root() {
        database_child(layout, user, name, &installer)?
    } else {
        crate::runtime::block_on(database::install_step(layout, name, &installer))
            .map_err(|cause| InstallError::Runtime { cause })??
    };
    let config = Config::read_in(&tree.etc, &layout.config_file())?;
    let release = Release::open(layout.release(name))?;
    let owner = privilege::is_root().then(|| service_owner(user));
    database::write_coderd_env(layout, &tree.etc, owner, &config, &release, &report.pg_url)?;
    if let Some(record) = &report.upgrade {
        let dir = tree.releases.admin_dir(name)?;
        let json = serde_json::to_vec_pretty(record).map_err(InstallError::json(format!(
            "writing {}",
            layout.release(name).join(database::UPGRADE_FILE).display()
        )))?;
        dir.write_file(database::UPGRADE_FILE, &json, 0o644, None)?;
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
) -> Result<database::StepReport> {
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
        .map_err(|cause| InstallError::Spawn {
            step: DATABASE_STEP,
            user: user.name.clone(),
            cause,
        })?;
    if !out.status.success() {
        return Err(InstallError::StepFailed {
            step: DATABASE_STEP,
            user: user.name.clone(),
        });
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).map_err(|cause| InstallError::NoReport {
        user: user.name.clone(),
        cause,
    })
}

/// The database step's name in messages.
const DATABASE_STEP: &str = "the database step";

/// The operator for the ledger: `SUDO_USER`, else `USER`, else the uid.
fn operator_name() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", nix::unistd::Uid::effective()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_terraformrc_names_every_module_host_the_release_serves(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let providers = dir.path().join("release/providers");
        let addr: SocketAddr = "0.0.0.0:8443".parse()?;
        let host_block = |host: &str| {
            format!(
                "host \"{host}\" {{\n  services = {{\n    \"modules.v1\" = \"https://127.0.0.1:8443/modules/v1/{host}/\"\n  }}\n}}\n"
            )
        };
        // Without a module store: the two public registries only.
        let bare = terraformrc(&providers, addr)?;
        assert!(
            bare.contains("url = \"https://127.0.0.1:8443/providers/\""),
            "{bare}"
        );
        assert!(bare.contains(&host_block("registry.coder.com")), "{bare}");
        assert!(
            bare.contains(&host_block("registry.terraform.io")),
            "{bare}"
        );
        assert!(!bare.contains("git.example.corp"), "{bare}");

        let module = dir.path().join("module");
        std::fs::create_dir_all(&module)?;
        std::fs::write(module.join("main.tf"), "output \"x\" { value = 1 }\n")?;
        airgap_mirror::ModuleStore::new(&providers).import(
            &"git.example.corp/platform/vpc/aws".parse()?,
            &"1.0.0".parse()?,
            &module,
            false,
        )?;
        let rc = terraformrc(&providers, addr)?;
        assert!(rc.contains(&host_block("git.example.corp")), "{rc}");
        assert!(rc.contains(&host_block("registry.coder.com")), "{rc}");
        assert_eq!(rc.matches("host \"").count(), 3, "{rc}");
        Ok(())
    }

    #[test]
    fn a_second_install_on_the_same_root_is_refused_as_locked(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = Dir::open_root(dir.path())?;
        let _held = lock_install(&root)?;
        let err = lock_install(&root).expect_err("the lock is held");
        assert!(
            matches!(&err, InstallError::Locked { path } if path.ends_with(INSTALL_LOCK)),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn a_directory_above_root_that_keeps_the_service_user_out_is_named(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let closed = dir.path().join("closed");
        std::fs::create_dir(&closed)?;
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o750))?;
        let user = ServiceUser {
            name: "nobody-here".into(),
            uid: u32::MAX - 1,
            gid: u32::MAX - 1,
            home: PathBuf::from("/nonexistent"),
        };
        let err = check_reachable(&closed.join("root"), &user).expect_err("mode 0750");
        assert!(
            matches!(&err, InstallError::Unreachable { dir, mode: 0o750, .. } if *dir == closed),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn an_unreadable_upgrade_record_is_a_json_error_naming_the_file(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join(database::UPGRADE_FILE), "{not json")?;
        let err = database::UpgradeRecord::read(dir.path()).expect_err("not JSON");
        assert!(
            matches!(&err, InstallError::Json { what, .. } if what.contains(database::UPGRADE_FILE)),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn step_names_are_distinct_and_in_plan_order() {
        let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "preflight",
                "lock",
                "unpack",
                "configure",
                "database",
                "switch",
                "reload"
            ]
        );
        assert_eq!(Step::Database.line(), "install: step database");
    }
}
