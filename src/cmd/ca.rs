//! `coder-airgap ca` subcommands: the internal certificate authority (`airgap-certs`).

use crate::out::outln;
use std::net::IpAddr;
use std::path::PathBuf;

use airgap_certs::{
    Algorithm, CertificateAuthority, InitOptions, IpRange, LeafRequest, LeafUsage, LedgerEntry,
    RevocationReason, Serial, DEFAULT_CA_DAYS, DEFAULT_CRL_DAYS, DEFAULT_LEAF_DAYS,
};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// The `ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a root CA with critical name constraints, and an intermediate that issues leaves.
    Init(InitArgs),
    /// Issue from an existing enterprise (intermediate) CA instead of creating one.
    Import(ImportArgs),
    /// Issue a leaf certificate: writes PREFIX.crt (leaf, then chain) and PREFIX.key (0600).
    Issue(IssueArgs),
    /// List every certificate the CA issued: serial, subject, SANs, not-after, status.
    List(ListArgs),
    /// Re-issue leaves that expire soon, to the same paths, swapping certificate and key together.
    Renew(RenewArgs),
    /// Revoke a certificate by serial; publish it with `ca crl`.
    Revoke(RevokeArgs),
    /// Write a CRL of the revoked serials, signed by the issuing CA.
    Crl(CrlArgs),
    /// Write the certificates clients must trust and print their SHA-256 fingerprints.
    ExportTrust(ExportTrustArgs),
}

/// The CA directory, shared by every subcommand.
#[derive(Debug, Args)]
pub struct DirArg {
    /// The CA directory (mode 0700; holds the keys and the ledger).
    #[arg(long, value_name = "DIR", env = "CODER_AIRGAP_CA_DIR")]
    pub dir: PathBuf,
}

/// `ca init` arguments.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The root's common name, e.g. "Example Corp Internal CA".
    #[arg(long)]
    name: String,
    /// A DNS suffix the CA may certify (it and all subdomains); repeatable.
    #[arg(long = "permit-dns", value_name = "SUFFIX")]
    permit_dns: Vec<String>,
    /// An IP range the CA may certify, as CIDR (10.20.0.0/16); repeatable.
    #[arg(long = "permit-ip", value_name = "CIDR")]
    permit_ip: Vec<IpRange>,
    /// Key algorithm of the CA and its leaves (browsers reject ed25519).
    #[arg(long, value_enum, default_value_t = AlgorithmArg::EcdsaP256)]
    algorithm: AlgorithmArg,
    /// Lifetime of the root and the intermediate, in days.
    #[arg(long, default_value_t = DEFAULT_CA_DAYS)]
    days: u32,
}

/// `ca import` arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The enterprise CA certificate (PEM), optionally followed by the certificates above it.
    #[arg(long, value_name = "CA.pem")]
    cert: PathBuf,
    /// Its private key: unencrypted PKCS#8 PEM.
    #[arg(long, value_name = "CA.key")]
    key: PathBuf,
}

/// `ca issue` arguments.
#[derive(Debug, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    dir: DirArg,
    /// DNS names (the first is the subject); `*.apps.example.com` for a wildcard.
    #[arg(long, value_name = "NAME", num_args = 1..)]
    dns: Vec<String>,
    /// IP addresses.
    #[arg(long, value_name = "ADDR", num_args = 1..)]
    ip: Vec<IpAddr>,
    /// Lifetime in days (never beyond the issuing CA's expiry).
    #[arg(long, default_value_t = DEFAULT_LEAF_DAYS)]
    days: u32,
    /// A client certificate (clientAuth) instead of a server one (serverAuth).
    #[arg(long)]
    client: bool,
    /// Output prefix: writes PREFIX.crt and PREFIX.key.
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
}

/// `ca list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Print JSON (an array of objects) instead of a table.
    #[arg(long)]
    json: bool,
}

/// `ca renew` arguments.
#[derive(Debug, Args)]
pub struct RenewArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Renew leaves that expire within this many days.
    #[arg(long, value_name = "N", default_value_t = 30)]
    within_days: u32,
}

/// `ca revoke` arguments.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Serial in hex, as `ca list` or `openssl x509 -serial` prints it.
    serial: String,
    /// Why it is revoked.
    #[arg(long, value_enum, default_value_t = ReasonArg::Unspecified)]
    reason: ReasonArg,
}

/// `ca crl` arguments.
#[derive(Debug, Args)]
pub struct CrlArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Where to write the CRL (PEM).
    #[arg(long, value_name = "crl.pem")]
    out: PathBuf,
    /// Days until the CRL's nextUpdate (clients reject it afterwards: publish a new one first).
    #[arg(long, default_value_t = DEFAULT_CRL_DAYS)]
    days: u32,
}

/// `ca export-trust` arguments.
#[derive(Debug, Args)]
pub struct ExportTrustArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Where to write the trust bundle (PEM).
    #[arg(long, value_name = "ca-bundle.pem")]
    out: PathBuf,
}

/// `--algorithm` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum AlgorithmArg {
    /// ECDSA P-256 (works everywhere).
    EcdsaP256,
    /// ECDSA P-384.
    EcdsaP384,
    /// Ed25519 (not accepted by browsers).
    Ed25519,
}

impl From<AlgorithmArg> for Algorithm {
    fn from(value: AlgorithmArg) -> Self {
        match value {
            AlgorithmArg::EcdsaP256 => Algorithm::EcdsaP256,
            AlgorithmArg::EcdsaP384 => Algorithm::EcdsaP384,
            AlgorithmArg::Ed25519 => Algorithm::Ed25519,
        }
    }
}

/// `--reason` values (RFC 5280 reason codes).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReasonArg {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
}

impl From<ReasonArg> for RevocationReason {
    fn from(value: ReasonArg) -> Self {
        match value {
            ReasonArg::Unspecified => RevocationReason::Unspecified,
            ReasonArg::KeyCompromise => RevocationReason::KeyCompromise,
            ReasonArg::CaCompromise => RevocationReason::CaCompromise,
            ReasonArg::AffiliationChanged => RevocationReason::AffiliationChanged,
            ReasonArg::Superseded => RevocationReason::Superseded,
            ReasonArg::CessationOfOperation => RevocationReason::CessationOfOperation,
            ReasonArg::CertificateHold => RevocationReason::CertificateHold,
            ReasonArg::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
        }
    }
}

/// Runs a `ca` subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => init(args),
        Command::Import(args) => import(args),
        Command::Issue(args) => issue(args),
        Command::List(args) => list(args),
        Command::Renew(args) => renew(args),
        Command::Revoke(args) => revoke(args),
        Command::Crl(args) => crl(args),
        Command::ExportTrust(args) => export_trust(args),
    }
}

/// Loads the CA in `dir` (every load error already names the CA's directory or file).
fn load(dir: &DirArg) -> anyhow::Result<CertificateAuthority> {
    Ok(CertificateAuthority::load(&dir.dir)?)
}

fn init(args: InitArgs) -> anyhow::Result<()> {
    let options = InitOptions {
        name: args.name,
        permitted_dns: args.permit_dns,
        permitted_ip: args.permit_ip,
        algorithm: args.algorithm.into(),
        days: args.days,
    };
    let ca = CertificateAuthority::init(&args.dir.dir, &options)
        .with_context(|| format!("creating a CA in {}", args.dir.dir.display()))?;
    outln!(
        "created CA {:?} ({}) in {}",
        ca.name(),
        ca.leaf_algorithm(),
        ca.dir().display()
    )?;
    print_fingerprints(&ca)?;
    match ca.constraints().first() {
        Some(c) => outln!("name constraints (critical): {c}")?,
        None => eprintln!(
            "warning: no --permit-dns or --permit-ip given, so this CA can sign for any name; \
             clients that trust it trust it for every site"
        ),
    }
    outln!(
        "move {} offline now: only `ca init` needed it",
        ca.dir().join("root.key").display()
    )?;
    Ok(())
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let ca =
        CertificateAuthority::import(&args.dir.dir, &args.cert, &args.key).with_context(|| {
            format!(
                "importing {} into {}",
                args.cert.display(),
                args.dir.dir.display()
            )
        })?;
    outln!("imported CA {} into {}", ca.name(), ca.dir().display())?;
    for c in ca.constraints() {
        outln!("name constraints from the imported certificates: {c}")?;
    }
    print_fingerprints(&ca)?;
    Ok(())
}

fn issue(args: IssueArgs) -> anyhow::Result<()> {
    let ca = load(&args.dir)?;
    let request = LeafRequest {
        dns_names: args.dns,
        ip_addresses: args.ip,
        days: args.days,
        usage: if args.client {
            LeafUsage::Client
        } else {
            LeafUsage::Server
        },
    };
    let issued = ca
        .issue_to_files(&request, &args.out)
        .with_context(|| format!("issuing a certificate to {}", args.out.display()))?;
    outln!(
        "issued serial {} (expires {}): {} and {}",
        issued.leaf.serial,
        rfc3339(issued.leaf.not_after),
        issued.cert_path.display(),
        issued.key_path.display()
    )?;
    Ok(())
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let ca = load(&args.dir)?;
    let ledger = ca.ledger()?;
    let now = OffsetDateTime::now_utc();
    if args.json {
        let rows: Vec<serde_json::Value> =
            ledger.entries.iter().map(|e| json_row(e, now)).collect();
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    outln!(
        "{:<32}  {:<20}  {:<10}  {:<30}  SANS",
        "SERIAL",
        "NOT AFTER",
        "STATUS",
        "SUBJECT"
    )?;
    for e in &ledger.entries {
        outln!(
            "{:<32}  {:<20}  {:<10}  {:<30}  {}",
            e.serial,
            rfc3339(e.not_after),
            e.status(now).as_str(),
            e.subject,
            e.sans().join(", ")
        )?;
    }
    Ok(())
}

fn json_row(e: &LedgerEntry, now: OffsetDateTime) -> serde_json::Value {
    serde_json::json!({
        "serial": e.serial,
        "subject": e.subject,
        "sans": e.sans(),
        "not_before": rfc3339(e.not_before),
        "not_after": rfc3339(e.not_after),
        "status": e.status(now).as_str(),
        "usage": e.usage,
        "out": e.out,
        "revoked": e.revoked.as_ref().map(|r| serde_json::json!({"at": rfc3339(r.at), "reason": r.reason})),
        "superseded_by": e.superseded_by,
    })
}

fn renew(args: RenewArgs) -> anyhow::Result<()> {
    let ca = load(&args.dir)?;
    let renewed = ca
        .renew_due(Duration::days(i64::from(args.within_days)))
        .context("renewing certificates")?;
    if renewed.is_empty() {
        outln!("nothing expires within {} days", args.within_days)?;
    }
    for r in renewed {
        outln!(
            "renewed {} -> {} (expires {}): {}",
            r.old_serial,
            r.new.leaf.serial,
            rfc3339(r.new.leaf.not_after),
            r.new.cert_path.display()
        )?;
    }
    Ok(())
}

fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let ca = load(&args.dir)?;
    let serial = Serial::parse(&args.serial)?;
    // Its errors name the serial (unknown, already revoked) or the ledger file.
    let entry = ca.revoke(&serial, args.reason.into())?;
    outln!(
        "revoked {} ({}); publish it with `coder-airgap ca crl --dir {} --out crl.pem`",
        entry.serial,
        entry.sans().join(", "),
        ca.dir().display()
    )?;
    Ok(())
}

fn crl(args: CrlArgs) -> anyhow::Result<()> {
    let ca = load(&args.dir)?;
    let crl = ca
        .crl(Duration::days(i64::from(args.days)))
        .context("signing the CRL")?;
    crl.write_to(&args.out)?;
    outln!(
        "wrote CRL #{} listing {} revoked certificate(s) to {} (next update {})",
        crl.number,
        crl.revoked.len(),
        args.out.display(),
        rfc3339(crl.next_update)
    )?;
    Ok(())
}

fn export_trust(args: ExportTrustArgs) -> anyhow::Result<()> {
    let ca = load(&args.dir)?;
    ca.write_trust_bundle(&args.out)?;
    outln!("wrote {}", args.out.display())?;
    print_fingerprints(&ca)?;
    Ok(())
}

fn print_fingerprints(ca: &CertificateAuthority) -> anyhow::Result<()> {
    for anchor in ca.trust_anchors() {
        outln!("trust anchor: {}", anchor.subject)?;
        outln!("SHA-256 fingerprint: {}", anchor.sha256_fingerprint)?;
    }
    Ok(())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}
