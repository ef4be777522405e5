//! `coder-airgap install`: verify a bundle and install it atomically under ROOT, with
//! certificates and configuration; and the hidden `install-db` step it runs as the
//! service user.

use crate::out::outln;
use std::path::PathBuf;

use anyhow::Context;

use airgap_appliance::config::{self, AccessUrl, Config, PostgresMode};
use airgap_appliance::install::{self, database};
use airgap_appliance::layout::Layout;
use airgap_appliance::postgres::SecretUrl;

/// Verify a bundle and install it atomically under ROOT (disconnected side).
///
/// Installs the release, the internal CA and certificates, coderd's environment, the
/// Terraform CLI configuration, the database and a hardened systemd unit.
///
/// The bundle is unpacked into ROOT/releases/VERSION-SEQUENCE, then ROOT/current is switched
/// to it in one rename: a failed or killed install leaves the old release running. A bundle
/// with a lower sequence than the installed one is refused (a replayed old bundle), as is
/// an expired one, unless asked for explicitly. Upgrading over an installed release takes a
/// pg_dump backup first (`coder-airgap rollback` restores it) and tells a running `up` to
/// reload.
///
/// Run as root: install creates the service user, gives it its directories (data, backups,
/// run; everything else stays root's), and runs the database step as that user
/// (PostgreSQL refuses root).
///
/// Example:
///   coder-airgap install coder-appliance.tar.gz --pubkey bundle.pub --root /srv/coder \
///     --access-url https://coder.example.internal --wildcard-url '*.apps.example.internal'
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    verify: super::verify::Args,
    /// The appliance root (created if missing).
    #[arg(long, value_name = "ROOT")]
    root: PathBuf,
    /// The https:// URL users and workspace agents reach coderd at.
    #[arg(long, value_name = "URL")]
    access_url: AccessUrl,
    /// The wildcard domain for workspace apps (`*.apps.example.internal`).
    #[arg(long, value_name = "DOMAIN")]
    wildcard_url: Option<String>,
    /// Turn on Coder's AI Gateway (CODER_AI_GATEWAY_ENABLED=true). Off by default: it
    /// exists to reach AI providers, which an air-gapped site has only if it runs its own
    /// (see docs/posture.md).
    #[arg(long)]
    ai_gateway: bool,
    /// An external PostgreSQL for coderd (postgres://user:pass@host/db); default: the
    /// embedded server from the bundle. Also read from CODER_AIRGAP_POSTGRES_URL, which
    /// keeps the password out of the process list.
    // Parsed in `run`, not by clap: clap's error would print the value, password and all.
    #[arg(
        long,
        value_name = "URL",
        env = "CODER_AIRGAP_POSTGRES_URL",
        hide_env_values = true
    )]
    postgres_url: Option<String>,
    /// The embedded PostgreSQL's port on 127.0.0.1.
    #[arg(long, value_name = "PORT", default_value_t = 5433)]
    postgres_port: u16,
    /// Use an existing CA (made by `coder-airgap ca init` or `ca import`) instead of
    /// creating one in ROOT/ca.
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    /// The user PostgreSQL and coderd run as (created when install runs as root).
    #[arg(long, value_name = "NAME", default_value = "coder")]
    service_user: String,
    /// coderd's TLS listener [default: 0.0.0.0:<the access URL's port>].
    #[arg(long, value_name = "IP:PORT", value_parser = config::listen_addr)]
    listen: Option<std::net::SocketAddr>,
    /// The provider mirror's TLS listener.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:8444", value_parser = config::listen_addr)]
    mirror_listen: std::net::SocketAddr,
    /// Lifetime of the TLS certificates issued for coderd and the mirror, in days (`up`
    /// renews them 30 days before they expire).
    #[arg(long, value_name = "DAYS", default_value_t = airgap_certs::DEFAULT_LEAF_DAYS)]
    cert_days: u32,
    /// Install a bundle whose sequence is lower than the installed one (on purpose only).
    #[arg(long)]
    allow_downgrade: bool,
}

/// Runs `coder-airgap install`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let root = std::path::absolute(&args.root).context("--root")?;
    let config = settings(&args, &root)?;
    let postgres_url = args
        .postgres_url
        .as_deref()
        .map(SecretUrl::parse)
        .transpose()
        .context("--postgres-url (or CODER_AIRGAP_POSTGRES_URL)")?;
    let request = install::Request {
        bundle: args.verify.bundle.clone(),
        pubkey: args.verify.pubkey.clone(),
        verify: args.verify.options(),
        root: root.clone(),
        create_ca: args.ca_dir.is_none(),
        config,
        postgres_url,
        allow_downgrade: args.allow_downgrade,
        cert_days: args.cert_days,
    };
    let bar = crate::progress::Bar::new();
    let outcome = install::install(&request, &bar);
    bar.finish();
    let outcome = outcome?;
    let r = &outcome.release;
    outln!(
        "installed {} {} sequence {} as {}",
        r.manifest.name,
        r.manifest.version,
        r.manifest.sequence,
        r.dir.display()
    )?;
    if let Some(old) = &outcome.replaced {
        outln!(
            "previous release: {old} (coder-airgap rollback --root {} returns to it)",
            root.display()
        )?;
    }
    match outcome.reloaded_up {
        Some(pid) => outln!("told the running appliance (pid {pid}) to switch to it")?,
        None => outln!(
            "start it: coder-airgap up --root {root}\n  or under systemd: cp {unit} /etc/systemd/system/ && systemctl enable --now coder-airgap",
            root = root.display(),
            unit = Layout::new(&root).systemd_unit().display()
        )?,
    }
    Ok(())
}

/// The settings install writes, from the flags (already parsed by clap).
fn settings(args: &Args, root: &std::path::Path) -> anyhow::Result<Config> {
    let listen = args
        .listen
        .unwrap_or_else(|| config::any_address(args.access_url.port()));
    let ca_dir = match &args.ca_dir {
        Some(dir) => std::path::absolute(dir).context("--ca-dir")?,
        None => Layout::new(root).default_ca_dir(),
    };
    let wildcard = args.wildcard_url.as_deref().map(|w| {
        w.trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string()
    });
    Ok(Config {
        access_url: args.access_url.clone(),
        wildcard_url: wildcard,
        listen,
        mirror_listen: args.mirror_listen,
        service_user: args.service_user.clone(),
        ca_dir,
        postgres: postgres_mode(args, root)?,
        ai_gateway: args.ai_gateway,
    })
}

/// Embedded unless `--postgres-url` is given, or the root was installed with an external
/// server (re-running install keeps it: the URL stays in the secrets directory). Moving an
/// installed embedded appliance to an external server is refused: no data would move.
fn postgres_mode(args: &Args, root: &std::path::Path) -> anyhow::Result<PostgresMode> {
    let layout = Layout::new(root);
    let config_present = std::fs::symlink_metadata(layout.config_file()).is_ok();
    let installed = match config_present {
        true => Some(super::installed_config(&layout)?.postgres),
        false => None,
    };
    match (installed, &args.postgres_url) {
        (Some(PostgresMode::Embedded { .. }), Some(_)) if layout.postgres_data().exists() => {
            anyhow::bail!(
                "{} runs the embedded PostgreSQL ({}); --postgres-url would start coderd on \
                 another, empty database. Move the data first (pg_dump the coder database into \
                 the external server), then install into a new --root with --postgres-url",
                root.display(),
                layout.postgres_data().display()
            )
        }
        (Some(PostgresMode::External), None) | (_, Some(_)) => Ok(PostgresMode::External),
        (_, None) => Ok(PostgresMode::Embedded {
            port: args.postgres_port,
        }),
    }
}

/// Internal: the database step of install, run as the service user by a root install.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// The appliance root.
    #[arg(long)]
    root: PathBuf,
    /// The release being installed.
    #[arg(long)]
    release: String,
    /// The operator, for the ledger.
    #[arg(long)]
    installed_by: String,
}

/// Runs `coder-airgap install-db`.
pub fn run_db(args: DbArgs) -> anyhow::Result<()> {
    let layout = Layout::new(args.root);
    let installer = database::Installer {
        name: args.installed_by,
    };
    let report = airgap_appliance::runtime::block_on(database::install_step(
        &layout,
        &args.release,
        &installer,
    ))??;
    // The root install reads this one line and writes coderd.env and the upgrade record.
    outln!("{}", serde_json::to_string(&report)?)?;
    Ok(())
}
