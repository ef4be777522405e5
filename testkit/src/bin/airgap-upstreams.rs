//! Serves stand-in internet upstreams from the command line, for the benchmark and the demo.
//!
//! `airgap-upstreams registry --tls-dir DIR --providers 15 --latency-ms 20` starts a provider
//! registry on 127.0.0.1 (TLS with a fresh test CA written to DIR/ca.pem), prints
//! `listening on ADDR` and the discovery URL on stdout, and serves until killed.
//!
//! `airgap-upstreams releases --key-dir DIR` starts the HashiCorp, Coder and Postgres
//! release sites, writes the signing key to DIR/release-key.asc and prints
//! `terraform.base_url URL`, `coder.base_url URL`, `postgres.base_url URL`,
//! `key_file PATH` and `key_fingerprint FPR` (one per line, ready for `sync --set`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use airgap_testkit::pki::TestPki;
use airgap_testkit::registry::{ProviderFixture, Registry};
use airgap_testkit::releases::{release_key, ReleaseSites, ReleaseVersions};
use clap::{Parser, Subcommand};

/// Stand-in upstreams for coder-airgap tests, benchmarks and demos.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Upstream,
}

#[derive(Debug, Subcommand)]
enum Upstream {
    /// A Terraform provider registry with generated, signed providers.
    Registry(RegistryArgs),
    /// HashiCorp, Coder and Postgres release sites with stand-in, signed releases.
    Releases(ReleasesArgs),
}

#[derive(Debug, clap::Args)]
struct ReleasesArgs {
    /// Directory to write release-key.asc (the key that signs the checksum files) into.
    #[arg(long)]
    key_dir: PathBuf,
    /// Terraform version published.
    #[arg(long, default_value = "1.15.5")]
    terraform: String,
    /// Coder version published (no leading v).
    #[arg(long, default_value = "2.35.3")]
    coder: String,
    /// Postgres archive version published.
    #[arg(long, default_value = "15.18.0")]
    postgres: String,
    /// Platforms published (comma-separated).
    #[arg(long, default_value = "linux_amd64,linux_arm64")]
    platforms: String,
}

#[derive(Debug, clap::Args)]
struct RegistryArgs {
    /// Directory to write ca.pem, server.pem and server.key into (serves TLS); plain HTTP if absent.
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// Namespace of the generated providers.
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// Number of providers (named p01, p02, …).
    #[arg(long, default_value_t = 15)]
    providers: usize,
    /// Versions each provider publishes (comma-separated).
    #[arg(long, default_value = "1.0.0,1.1.0")]
    versions: String,
    /// Platforms each version is published for (comma-separated).
    #[arg(long, default_value = "linux_amd64,linux_arm64")]
    platforms: String,
    /// Incompressible bytes added to every zip.
    #[arg(long, default_value_t = 0)]
    padding: usize,
    /// Milliseconds added before every response.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Cli::parse().command {
        Upstream::Registry(args) => registry(args),
        Upstream::Releases(args) => releases(args),
    }
}

fn releases(args: ReleasesArgs) -> Result<(), Box<dyn std::error::Error>> {
    let versions = ReleaseVersions {
        terraform: args.terraform,
        coder: args.coder,
        postgres: args.postgres,
        platforms: args
            .platforms
            .split(',')
            .map(|p| p.trim().to_string())
            .collect(),
    };
    let sites = ReleaseSites::start(&versions, None)?;
    std::fs::create_dir_all(&args.key_dir)?;
    let key_file = args.key_dir.join("release-key.asc");
    std::fs::write(&key_file, &release_key().public_armored)?;
    let mut out = std::io::stdout();
    writeln!(out, "terraform.base_url {}", sites.hashicorp.base_url())?;
    writeln!(out, "coder.base_url {}", sites.coder.base_url())?;
    writeln!(out, "postgres.base_url {}", sites.postgres.base_url())?;
    writeln!(out, "key_file {}", key_file.display())?;
    writeln!(out, "key_fingerprint {}", release_key().fingerprint)?;
    out.flush()?;
    // The other two keep serving while this thread waits on the first.
    let ReleaseSites {
        hashicorp,
        coder: _coder,
        postgres: _postgres,
        ..
    } = sites;
    hashicorp.wait();
    Ok(())
}

fn registry(args: RegistryArgs) -> Result<(), Box<dyn std::error::Error>> {
    let versions: Vec<&str> = args.versions.split(',').map(str::trim).collect();
    let platforms: Vec<&str> = args.platforms.split(',').map(str::trim).collect();
    let fixtures: Vec<ProviderFixture> = (1..=args.providers)
        .map(|i| ProviderFixture {
            padding: args.padding,
            ..ProviderFixture::new(&args.namespace, &format!("p{i:02}"), &versions, &platforms)
        })
        .collect();
    let tls = match &args.tls_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let pki = TestPki::new(&[])?;
            pki.write_to(dir)?;
            Some(pki.server_config()?)
        }
        None => None,
    };
    let registry = Registry::start(&fixtures, tls)?;
    registry
        .site()
        .set_latency(Duration::from_millis(args.latency_ms));
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", registry.server.addr)?;
    writeln!(out, "discovery {}", registry.discovery_url())?;
    writeln!(out, "key {}", registry.key.fingerprint)?;
    out.flush()?;
    registry.server.wait();
    Ok(())
}
