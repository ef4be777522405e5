//! `coder-airgap mirror` subcommands: sync (connected side); serve, import, verify and
//! terraformrc (disconnected side).

use crate::out::{out, outln};
use std::path::PathBuf;

use airgap_mirror::fetch::{FetchOptions, Fetcher};
use airgap_mirror::spec::MirrorSpec;
use airgap_mirror::{maintain, serve, sync, Mirror, Platform, ProviderAddr, Version};
use anyhow::Context as _;
use clap::{Args, Subcommand};

/// The `mirror` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch and verify the providers in a providers file into a mirror tree (connected side).
    Sync(SyncArgs),
    /// Serve a mirror tree to Terraform over HTTPS at /providers/.
    Serve(ServeArgs),
    /// Add a provider zip carried in by hand, computing its hashes.
    Import(ImportArgs),
    /// Re-hash every archive in a mirror tree against its JSON.
    Verify(VerifyArgs),
    /// Print the Terraform CLI configuration that installs providers only from the mirror.
    Terraformrc(TerraformrcArgs),
}

/// Arguments of `mirror sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The providers file (TOML; see docs/mirror.md).
    #[arg(long, value_name = "FILE")]
    pub providers: PathBuf,
    /// The mirror tree to add to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub fetch: super::fetch::FetchArgs,
    /// HTTPS proxy for every request (otherwise HTTPS_PROXY/NO_PROXY are honoured).
    #[arg(long, value_name = "URL", help_heading = "Network options")]
    pub https_proxy: Option<String>,
}

/// Arguments of `mirror serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The mirror tree.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Address to listen on (port 0 picks a free port; the address is printed on stdout).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8444")]
    pub listen: String,
    /// PEM certificate chain for the server.
    #[arg(long, value_name = "CRT")]
    pub cert: PathBuf,
    /// PEM private key for the server.
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
}

/// Arguments of `mirror import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The mirror tree.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Provider source address, HOST/NS/TYPE.
    #[arg(long, value_name = "HOST/NS/TYPE")]
    pub source: ProviderAddr,
    /// Provider version.
    #[arg(long)]
    pub version: Version,
    /// Platform, OS_ARCH.
    #[arg(long, value_name = "OS_ARCH")]
    pub platform: Platform,
    /// Overwrite a different archive already recorded for this version and platform.
    #[arg(long)]
    pub replace: bool,
    /// The provider zip.
    pub zip: PathBuf,
}

/// Arguments of `mirror verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The mirror tree.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

/// Arguments of `mirror terraformrc`.
#[derive(Debug, Args)]
pub struct TerraformrcArgs {
    /// The mirror's base URL, e.g. https://coder.example.internal:8444
    #[arg(long)]
    pub url: String,
}

/// Runs a `mirror` subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Sync(args) => run_sync(args),
        Command::Serve(args) => run_serve(args),
        Command::Import(args) => run_import(args),
        Command::Verify(args) => run_verify(args),
        Command::Terraformrc(args) => {
            out!("{}", maintain::terraformrc(&args.url)?)?;
            Ok(())
        }
    }
}

fn run_sync(args: SyncArgs) -> anyhow::Result<()> {
    let spec = MirrorSpec::load(&args.providers)?;
    let opts = FetchOptions {
        https_proxy: args.https_proxy,
        ..args.fetch.options()
    };
    let progress = if args.quiet {
        indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    } else {
        indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr())
    };
    let fetcher = Fetcher::with_progress(opts, progress)?;
    let mirror = Mirror::new(&args.out);
    let report = airgap_appliance::runtime::block_on(sync::sync(&spec, &mirror, &fetcher))?
        .with_context(|| format!("mirror sync into {}", args.out.display()))?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for added in &report.added {
        eprintln!("added {added}");
    }
    eprintln!(
        "{} archive(s) added, {} already present and verified",
        report.added.len(),
        report.skipped
    );
    Ok(())
}

fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let nofile = airgap_mirror::listener::raise_nofile_limit()
        .context("raising the open-files limit (RLIMIT_NOFILE)")?;
    tracing::debug!(nofile, "open-files limit");
    let tls = serve::tls_config(&args.cert, &args.key)?;
    let listener = std::net::TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr().context("listener address")?;
    outln!("listening on {addr}")?;
    airgap_appliance::runtime::block_on(async move {
        eprintln!(
            "serving {} at https://{addr}{}",
            args.dir.display(),
            serve::PREFIX
        );
        serve::serve(listener, &args.dir, tls, stop_signal()).await
    })??;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn run_import(args: ImportArgs) -> anyhow::Result<()> {
    let mirror = Mirror::new(&args.dir);
    let imported = maintain::import(
        &mirror,
        &args.source,
        &args.version,
        &args.platform,
        &args.zip,
        args.replace,
    )
    .with_context(|| {
        format!(
            "import {} as {} {} {}",
            args.zip.display(),
            args.source,
            args.version,
            args.platform
        )
    })?;
    let label = format!("{} {} {}", args.source, args.version, args.platform);
    if let Some(warning) = maintain::directory_warning(&label, &imported.hashes) {
        eprintln!("warning: {warning}");
    }
    let verb = if imported.unchanged {
        "already present"
    } else {
        "imported"
    };
    eprintln!("{verb} {label}: {}", imported.path.display());
    outln!("{}\n{}", imported.hashes.h1, imported.hashes.zh)?;
    Ok(())
}

fn run_verify(args: VerifyArgs) -> anyhow::Result<()> {
    let report = maintain::verify(&Mirror::new(&args.dir))?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for problem in &report.problems {
        eprintln!("FAILED {problem}");
    }
    if !report.problems.is_empty() {
        anyhow::bail!(
            "{} of {} archive(s) in {} failed verification",
            report.problems.len(),
            report.archives,
            args.dir.display()
        );
    }
    eprintln!(
        "ok: {} archive(s) of {} provider(s) match their hashes",
        report.archives, report.providers
    );
    Ok(())
}
