//! `coder-airgap status`: show each component's state, version, pid and health, the
//! certificates' expiry, and the posture of the coderd that actually runs.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use airgap_appliance::config::{Config, DatabaseKind};
use airgap_appliance::layout::Layout;
use airgap_appliance::supervise::certificates::{self, Expiry};
use airgap_appliance::supervise::health::HealthProbe;
use airgap_appliance::supervise::posture::{self, Posture};
use airgap_appliance::supervise::state::{Observed, State};
use airgap_appliance::supervise::{running_up, ProcessId};

/// Show each component's state, version, pid and health, certificate expiry, and the
/// air-gap posture read from the running coderd's environment (/proc/PID/environ).
///
/// Nothing is taken on trust: every pid in ROOT/run/state.json is checked (a state file
/// left by an `up` that was killed shows "not running"), /healthz is probed over TLS
/// trusting only the appliance's CA, and the certificates are read from the files coderd
/// and the mirror load. Run as root or as the service user (coderd's environment is
/// readable by those only).
///
/// Exit status: 0 when up, PostgreSQL, the mirror and coderd all run and coderd answers
/// /healthz; 1 otherwise (the last line on stderr says what is wrong).
///
/// --json prints one object:
///   root, up {running, pid}, release, ready,
///   postgres {state, mode, pid, port, version, restarts},
///   mirror {state, address, restarts},
///   coderd {state, pid, version, restarts, healthy, last_exit},
///   health {url, ok, error}: coderd's /healthz,
///   mirror_health {url, ok, error}: the mirror's /ca.pem,
///   certificates {coderd, mirror}: each {path, not_after, days_left} or {error},
///   posture {one key per row of the posture table (docs/posture.md): CODER_ACCESS_URL,
///            CODER_TLS_ENABLE, CODER_HTTP_ADDRESS, CODER_TELEMETRY_ENABLE,
///            CODER_TELEMETRY_URL, CODER_UPDATE_CHECK,
///            CODER_OAUTH2_GITHUB_DEFAULT_PROVIDER_ENABLE, CODER_AI_GATEWAY_ENABLED,
///            CODER_DERP_CONFIG_URL, CODER_DERP_SERVER_ENABLE, CODER_BLOCK_DIRECT,
///            CODER_DERP_SERVER_STUN_ADDRESSES, TF_CLI_CONFIG_FILE, CHECKPOINT_DISABLE,
///            SSL_CERT_FILE; then --external-auth-github-default-provider-enable (from
///            coderd's command line) and PATH_FIRST (the first PATH entry)}: each the
///     value coderd runs with or null when unset; the whole object null when it could
///     not be read (posture_error says why),
///   ok (the exit status), problems [one line each].
/// state is one of running, starting, backoff, stopped, "not running", orphaned.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The appliance root.
    #[arg(long, value_name = "ROOT")]
    root: PathBuf,
    /// Print one JSON object instead of aligned lines.
    #[arg(long)]
    json: bool,
}

/// The whole report; its field names are the `--json` output (documented on [`Args`]).
#[derive(Debug, Serialize)]
struct Report {
    root: String,
    up: UpReport,
    release: Option<String>,
    ready: bool,
    postgres: PostgresReport,
    mirror: MirrorReport,
    coderd: CoderdReport,
    health: HealthReport,
    mirror_health: HealthReport,
    certificates: CertificatesReport,
    posture: Option<Posture>,
    posture_error: Option<String>,
    ok: bool,
    problems: Vec<String>,
}

#[derive(Debug, Serialize)]
struct UpReport {
    running: bool,
    pid: Option<u32>,
}

#[derive(Debug, Serialize)]
struct PostgresReport {
    state: Observed,
    mode: DatabaseKind,
    pid: Option<u32>,
    port: Option<u16>,
    version: Option<String>,
    restarts: u32,
}

#[derive(Debug, Serialize)]
struct MirrorReport {
    state: Observed,
    address: SocketAddr,
    restarts: u32,
}

#[derive(Debug, Serialize)]
struct CoderdReport {
    state: Observed,
    pid: Option<u32>,
    version: Option<String>,
    restarts: u32,
    healthy: bool,
    last_exit: Option<String>,
}

#[derive(Debug, Serialize)]
struct HealthReport {
    url: Option<String>,
    ok: bool,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct CertificatesReport {
    coderd: CertReport,
    mirror: CertReport,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum CertReport {
    Read(Expiry),
    Failed { error: String },
}

/// Runs `coder-airgap status`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let root = std::path::absolute(&args.root).context("--root")?;
    let layout = Layout::new(&root);
    let config = Config::read(&layout.config_file())?;
    let report = build(&layout, &config)?;
    if args.json {
        crate::out::outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        crate::out::out!("{}", human(&report))?;
    }
    if report.ok {
        Ok(())
    } else {
        anyhow::bail!("not healthy: {}", report.problems.join("; "))
    }
}

fn build(layout: &Layout, config: &Config) -> anyhow::Result<Report> {
    let up_pid = running_up(layout);
    let state = read_state(layout)?;
    let live = |p: Option<ProcessId>| p.filter(ProcessId::is_alive);
    let coderd_process = state.as_ref().and_then(|s| live(s.coderd_process()));
    let (posture, posture_error) = match coderd_process {
        Some(p) => split(posture::read(p.pid).map_err(|e| e.to_string())),
        None => (None, Some("coderd is not running".into())),
    };
    let mut report = Report {
        root: layout.root().display().to_string(),
        up: UpReport {
            running: up_pid.is_some(),
            pid: up_pid,
        },
        release: state.as_ref().and_then(|s| s.release.clone()),
        ready: up_pid.is_some() && state.as_ref().is_some_and(|s| s.ready),
        postgres: postgres_report(state.as_ref(), up_pid.is_some(), config),
        mirror: mirror_report(state.as_ref(), up_pid.is_some(), config),
        coderd: coderd_report(state.as_ref(), up_pid.is_some()),
        health: probe(layout, config, config.listen, "/healthz")?,
        mirror_health: probe(layout, config, config.mirror_listen, "/ca.pem")?,
        certificates: CertificatesReport {
            coderd: cert(layout.coderd_tls_prefix().with_extension("crt")),
            mirror: cert(layout.mirror_tls_prefix().with_extension("crt")),
        },
        posture,
        posture_error,
        ok: false,
        problems: Vec::new(),
    };
    report.problems = problems(&report);
    report.ok = report.problems.is_empty();
    Ok(report)
}

/// The state file, or `None` when `up` never ran here.
fn read_state(layout: &Layout) -> anyhow::Result<Option<State>> {
    if !layout.state_file().exists() {
        return Ok(None);
    }
    Ok(Some(State::read(&layout.state_file())?))
}

fn split<T>(result: Result<T, String>) -> (Option<T>, Option<String>) {
    match result {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e)),
    }
}

fn postgres_report(state: Option<&State>, up: bool, config: &Config) -> PostgresReport {
    let pg = state.map(|s| &s.postgres);
    let process = state.and_then(State::postgres_process);
    PostgresReport {
        state: Observed::of(pg.map(|p| p.state), process, up),
        mode: config.postgres.kind(),
        pid: process.filter(ProcessId::is_alive).map(|p| p.pid),
        port: pg.and_then(|p| p.port),
        version: pg.and_then(|p| p.version.clone()),
        restarts: pg.map_or(0, |p| p.restarts),
    }
}

fn mirror_report(state: Option<&State>, up: bool, config: &Config) -> MirrorReport {
    let m = state.map(|s| &s.mirror);
    MirrorReport {
        // The mirror runs inside `up`: it lives and dies with it.
        state: Observed::of(m.map(|m| m.state), None, up),
        address: config.mirror_listen,
        restarts: m.map_or(0, |m| m.restarts),
    }
}

fn coderd_report(state: Option<&State>, up: bool) -> CoderdReport {
    let c = state.map(|s| &s.coderd);
    let process = state.and_then(State::coderd_process);
    let observed = Observed::of(c.map(|c| c.state), process, up);
    CoderdReport {
        healthy: up && observed.is_running() && c.is_some_and(|c| c.healthy),
        state: observed,
        pid: process.filter(ProcessId::is_alive).map(|p| p.pid),
        version: c.and_then(|c| c.version.clone()),
        restarts: c.map_or(0, |c| c.restarts),
        last_exit: c.and_then(|c| c.last_exit.clone()),
    }
}

/// Probes /healthz now, as `up` does.
fn probe(
    layout: &Layout,
    config: &Config,
    listen: SocketAddr,
    path: &str,
) -> anyhow::Result<HealthReport> {
    let probe = match HealthProbe::new(&layout.ca_bundle(), &config.access_url, listen) {
        Ok(probe) => probe,
        Err(e) => {
            return Ok(HealthReport {
                url: None,
                ok: false,
                error: Some(e.to_string()),
            })
        }
    };
    let url = Some(probe.url_of(path));
    let path = path.to_string();
    let result = airgap_appliance::runtime::block_on(async move { probe.get_ok(&path).await })?;
    Ok(HealthReport {
        url,
        ok: result.is_ok(),
        error: result.err().map(|e| e.to_string()),
    })
}

fn cert(path: PathBuf) -> CertReport {
    match certificates::expiry(&path) {
        Ok(expiry) => CertReport::Read(expiry),
        Err(error) => CertReport::Failed { error },
    }
}

/// Everything that keeps the appliance from being up and healthy.
fn problems(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if !r.up.running {
        out.push("`coder-airgap up` is not running (systemctl start coder-airgap)".into());
    }
    for (name, state) in [
        ("postgres", r.postgres.state),
        ("mirror", r.mirror.state),
        ("coderd", r.coderd.state),
    ] {
        if !state.is_running() {
            out.push(format!("{name} is {state}"));
        }
    }
    if let Some(e) = &r.health.error {
        out.push(format!("coderd health check failed: {e}"));
    }
    if let Some(e) = &r.mirror_health.error {
        out.push(format!("mirror check failed: {e}"));
    }
    out
}

/// The report as text: aligned `label  value` lines, then the posture in its own block.
fn human(r: &Report) -> String {
    let summary = vec![
        ("up".to_string(), up_line(r)),
        (
            "release".into(),
            r.release.clone().unwrap_or_else(|| "-".into()),
        ),
        ("ready".into(), yes_no(r.ready).into()),
        ("postgres".into(), postgres_line(&r.postgres)),
        ("mirror".into(), mirror_line(&r.mirror)),
        ("coderd".into(), coderd_line(&r.coderd)),
        ("health".into(), health_line(&r.health)),
        ("mirror check".into(), health_line(&r.mirror_health)),
        ("cert coderd".into(), cert_line(&r.certificates.coderd)),
        ("cert mirror".into(), cert_line(&r.certificates.mirror)),
    ];
    let mut text = aligned(&summary, "");
    match (&r.posture, &r.posture_error) {
        (Some(p), _) => {
            let pid = r.coderd.pid.unwrap_or_default();
            text.push_str(&format!("posture (from /proc/{pid}/environ and cmdline)\n"));
            let vars: Vec<(String, String)> = p
                .lines()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            text.push_str(&aligned(&vars, "  "));
        }
        (None, e) => text.push_str(&format!(
            "posture unknown: {}\n",
            e.clone().unwrap_or_default()
        )),
    }
    text
}

/// `indent label  value` lines with the values in one column.
fn aligned(lines: &[(String, String)], indent: &str) -> String {
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    lines
        .iter()
        .map(|(label, value)| format!("{indent}{label:<width$}  {value}\n"))
        .collect()
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn opt<T: std::fmt::Display>(label: &str, v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(String::new, |v| format!("  {label} {v}"))
}

fn up_line(r: &Report) -> String {
    match r.up.pid {
        Some(pid) => format!("running (pid {pid})"),
        None => "not running".into(),
    }
}

fn postgres_line(p: &PostgresReport) -> String {
    format!(
        "{}  {}{}{}{}  restarts {}",
        p.state,
        p.mode,
        opt("version", &p.version),
        opt("pid", &p.pid),
        opt("port", &p.port),
        p.restarts
    )
}

fn mirror_line(m: &MirrorReport) -> String {
    format!(
        "{}  https://{}  restarts {}",
        m.state, m.address, m.restarts
    )
}

fn coderd_line(c: &CoderdReport) -> String {
    format!(
        "{}{}{}  healthy {}  restarts {}{}",
        c.state,
        opt("version", &c.version),
        opt("pid", &c.pid),
        yes_no(c.healthy),
        c.restarts,
        opt("last exit", &c.last_exit)
    )
}

fn health_line(h: &HealthReport) -> String {
    let url = h.url.clone().unwrap_or_default();
    match &h.error {
        None => format!("ok  {url}"),
        Some(e) => format!("failing: {e}"),
    }
}

fn cert_line(c: &CertReport) -> String {
    match c {
        CertReport::Read(e) => format!(
            "expires {} ({} days left)  {}",
            e.not_after, e.days_left, e.path
        ),
        CertReport::Failed { error } => format!("unreadable: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_line_up_in_one_column() {
        let lines = [
            ("up".to_string(), "a".to_string()),
            ("postgres".into(), "b".into()),
        ];
        assert_eq!(aligned(&lines, "  "), "  up        a\n  postgres  b\n");
    }
}
