//! `coder-airgap up`: run the installed appliance in the foreground: Postgres, the provider
//! mirror, coderd.

use std::path::PathBuf;

/// Run the installed appliance in the foreground (what the systemd unit starts).
///
/// Starts PostgreSQL (the embedded server, or checks that the external one answers), then
/// the provider mirror (with /ca.pem, the CA bundle for workspace images), then
/// `coder server` with exactly the environment in ROOT/etc/coderd.env. Reports ready to
/// systemd (sd_notify) once coderd answers /healthz over TLS. Restarts a child that dies,
/// with backoff (1 s doubling to 30 s). Renews the coderd and mirror certificates 30 days
/// before they expire (checked at start and hourly), then restarts both.
///
/// Signals: SIGTERM or SIGINT stops coderd (SIGKILL after 15 s), the mirror, then
/// PostgreSQL, and exits 0. SIGHUP re-reads the settings and ROOT/current and restarts
/// the mirror and coderd on them (install sends it after an upgrade).
///
/// One `up` per ROOT (a lock in ROOT/run/up.lock). Progress lines go to stderr, coderd's
/// own output to up's stdout and stderr; the state is in ROOT/run/state.json
/// (`coder-airgap status` reads it). Started as root, up re-executes itself as the
/// service user.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The appliance root that `install` created.
    #[arg(long, value_name = "ROOT")]
    root: PathBuf,
    /// Only do what up does as root before it drops privileges (renew due certificates
    /// with root's CA), then exit: the systemd unit's `ExecStartPre=+`.
    #[arg(long, hide = true)]
    prepare_only: bool,
}

/// Runs `coder-airgap up`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.prepare_only {
        anyhow::ensure!(
            airgap_appliance::privilege::is_root(),
            "--prepare-only runs as root"
        );
        let layout = airgap_appliance::layout::Layout::new(std::path::absolute(&args.root)?);
        let user = super::service_user_of(&layout)?;
        return Ok(airgap_appliance::supervise::prepare_as_root(
            &layout, &user,
        )?);
    }
    let layout = super::as_service_user(&args.root)?;
    airgap_appliance::runtime::block_on(supervise(layout))?
}

/// Installs the signal handlers (before anything starts, so none is lost) and runs the
/// supervisor: SIGTERM and SIGINT stop it, every SIGHUP reloads it.
async fn supervise(layout: airgap_appliance::layout::Layout) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tokio::signal::unix::{signal, SignalKind};
    let handler = |kind| signal(kind).context("cannot install signal handlers");
    let (mut term, mut int, mut hup) = (
        handler(SignalKind::terminate())?,
        handler(SignalKind::interrupt())?,
        handler(SignalKind::hangup())?,
    );
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    };
    // One pending reload is enough: SIGHUPs that arrive meanwhile ask for the same.
    let (reload, reloads) = tokio::sync::mpsc::channel(1);
    let forward = tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let _ = reload.try_send("SIGHUP");
        }
    });
    let result = airgap_appliance::supervise::run(layout, shutdown, reloads).await;
    forward.abort();
    Ok(result?)
}
