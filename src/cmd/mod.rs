//! One module per subcommand: its clap arguments (`Args` or `Command`) and its `run`.

pub mod ca;
pub mod doctor;
mod fetch;
pub mod inspect;
pub mod install;
pub mod keygen;
mod keys;
pub mod mirror;
pub mod pack;
pub mod rollback;
pub mod status;
pub mod sync;
pub mod unpack;
pub mod up;
pub mod verify;

/// The installed appliance at `root`, for `up`, which runs as its service user: started
/// as root, this renews due certificates (the CA is root's), then re-executes the whole
/// command as the user named in ROOT/etc/coder-airgap.toml and does not return;
/// otherwise it returns the layout.
fn as_service_user(root: &std::path::Path) -> anyhow::Result<airgap_appliance::layout::Layout> {
    use anyhow::Context;
    let root = std::path::absolute(root).context("--root")?;
    let layout = airgap_appliance::layout::Layout::new(&root);
    if airgap_appliance::privilege::is_root() {
        let user = service_user_of(&layout)?;
        airgap_appliance::supervise::prepare_as_root(&layout, &user)?;
        airgap_appliance::privilege::reexec_as(&user, airgap_appliance::privilege::DROPPED_MARKER)?;
    }
    Ok(layout)
}

/// The service user named in ROOT/etc/coder-airgap.toml, read as root through handles
/// (ROOT and etc must be root's; a link in place of the file is refused).
fn service_user_of(
    layout: &airgap_appliance::layout::Layout,
) -> anyhow::Result<airgap_appliance::privilege::ServiceUser> {
    let config = installed_config(layout)?;
    Ok(airgap_appliance::privilege::ensure_service_user(
        &config.service_user,
    )?)
}

/// ROOT/etc/coder-airgap.toml read through handles, as root reads it: ROOT and etc must
/// be owned and writable only by us, and a link in place of the file is refused.
fn installed_config(
    layout: &airgap_appliance::layout::Layout,
) -> anyhow::Result<airgap_appliance::config::Config> {
    let root = airgap_appliance::rootdir::Dir::open_root(layout.root())?;
    let etc = root.admin_dir("etc")?;
    Ok(airgap_appliance::config::Config::read_in(
        &etc,
        &layout.config_file(),
    )?)
}
