//! One module per subcommand: its clap arguments (`Args` or `Command`) and its `run`.

pub mod ca;
pub mod doctor;
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

/// The installed appliance at `root`, for commands that run as its service user (`up`,
/// `rollback`): started as root, this re-executes the whole command as the user named in
/// ROOT/etc/coder-airgap.toml and does not return; otherwise it returns the layout.
fn as_service_user(root: &std::path::Path) -> anyhow::Result<crate::appliance::layout::Layout> {
    use anyhow::Context;
    let root = std::path::absolute(root).context("--root")?;
    let layout = crate::appliance::layout::Layout::new(&root);
    if crate::privilege::is_root() {
        let config = crate::appliance::config::Config::read(&layout.config_file())?;
        let user = crate::privilege::ensure_service_user(&config.service_user)?;
        crate::privilege::reexec_as(&user, crate::privilege::DROPPED_MARKER)?;
    }
    Ok(layout)
}
