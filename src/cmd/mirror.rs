//! `coder-airgap mirror` subcommands: sync (connected side); serve, import,
//! import-module, verify and terraformrc (disconnected side).

use crate::out::{out, outln};
use std::path::PathBuf;

use airgap_mirror::fetch::{FetchOptions, Fetcher};
use airgap_mirror::spec::MirrorSpec;
use airgap_mirror::{
    maintain, serve, sync, Mirror, ModuleAddr, ModuleStore, Platform, ProviderAddr, Version,
};
use anyhow::Context as _;
use clap::{Args, Subcommand};

/// The `mirror` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch and verify the providers in a providers file into a mirror tree (connected side).
    Sync(SyncArgs),
    /// Serve a mirror tree to Terraform over HTTPS: providers at /providers/, the module
    /// registry at /modules/v1/.
    Serve(ServeArgs),
    /// Add a provider zip carried in by hand, computing its hashes.
    Import(ImportArgs),
    /// Add a site's own Terraform module (a directory, .tar.gz or .zip) to the mirror's
    /// module registry, as a normalized archive.
    ImportModule(ImportModuleArgs),
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

/// Arguments of `mirror import-module`.
#[derive(Debug, Args)]
pub struct ImportModuleArgs {
    /// The mirror tree.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Module registry address, HOST/NAMESPACE/NAME/PROVIDER (NAMESPACE/NAME/PROVIDER means
    /// registry.terraform.io), as templates write it in `source`.
    #[arg(long, value_name = "HOST/NS/NAME/PROVIDER")]
    pub source: String,
    /// Module version.
    #[arg(long)]
    pub version: Version,
    /// Overwrite a different archive already stored for this version.
    #[arg(long)]
    pub replace: bool,
    /// The module: a directory of .tf files, or a .tar.gz or .zip of one.
    #[arg(value_name = "DIR_OR_ARCHIVE")]
    pub module: PathBuf,
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
    /// A mirror tree: add a `host` block for every module host its module store carries
    /// (registry.coder.com and registry.terraform.io always get one).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Runs a `mirror` subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Sync(args) => run_sync(args),
        Command::Serve(args) => run_serve(args),
        Command::Import(args) => run_import(args),
        Command::ImportModule(args) => run_import_module(args),
        Command::Verify(args) => run_verify(args),
        Command::Terraformrc(args) => run_terraformrc(args),
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
            report.archives + report.module_versions,
            args.dir.display()
        );
    }
    eprintln!(
        "ok: {} archive(s) of {} provider(s) and {} module version(s) match their hashes",
        report.archives, report.providers, report.module_versions
    );
    Ok(())
}

fn run_terraformrc(args: TerraformrcArgs) -> anyhow::Result<()> {
    let hosts = match &args.dir {
        Some(dir) => ModuleStore::new(dir)
            .hosts()
            .with_context(|| format!("reading the module store of {}", dir.display()))?,
        None => Vec::new(),
    };
    out!("{}", maintain::terraformrc_with_hosts(&args.url, &hosts)?)?;
    Ok(())
}

fn run_import_module(args: ImportModuleArgs) -> anyhow::Result<()> {
    let source: ModuleAddr = args.source.parse()?;
    let store = ModuleStore::new(&args.dir);
    let imported = store
        .import(&source, &args.version, &args.module, args.replace)
        .with_context(|| {
            format!(
                "import module {} as {source} {}",
                args.module.display(),
                args.version
            )
        })?;
    if let Some(top) = &imported.packed.descended {
        eprintln!("took the archive's only directory {top}/ as the module");
    }
    for skipped in &imported.packed.skipped {
        eprintln!("left out {skipped}");
    }
    let verb = if imported.unchanged {
        "already present"
    } else {
        "imported"
    };
    eprintln!(
        "{verb} {source} {} ({} entries): {}",
        args.version,
        imported.packed.entries,
        imported.path.display()
    );
    outln!("sha256:{}", imported.sha256)?;
    Ok(())
}
