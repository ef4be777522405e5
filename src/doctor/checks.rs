//! The individual checks. Each returns one [`Check`]; none stops the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Check;
use crate::appliance::config::Config;
use crate::appliance::env::read_env_file;
use crate::appliance::layout::Layout;
use crate::appliance::release::Release;
use crate::supervise::certificates;
use crate::supervise::health::HealthProbe;
use crate::supervise::posture;
use crate::supervise::state::State;

/// Certificates must stay valid at least this long.
const MIN_CERT_DAYS: i64 = 14;
/// Free space under ROOT below which `disk` fails.
const MIN_FREE: u64 = 1 << 30;
/// How to regenerate coderd's environment.
const REINSTALL: &str = "re-run `coder-airgap install` with the same bundle and flags (it rewrites ROOT/etc/coderd.env), then `systemctl restart coder-airgap`; never edit coderd.env by hand";

/// Runs every check against the appliance at `layout`.
pub(crate) async fn run_all(layout: &Layout) -> Vec<Check> {
    let config = match Config::read(&layout.config_file()) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::fail(
                "config",
                e.to_string(),
                "run `coder-airgap install` first",
            )]
        }
    };
    let env = coderd_environ(layout);
    let mut checks = vec![running_check(&env)];
    let vars = env.as_ref().map(|(_, v)| v.clone()).unwrap_or_default();
    if env.is_ok() {
        checks.extend(posture_checks(&vars));
        checks.push(terraform_check(layout, &vars).await);
        checks.push(proxy_check(&vars));
    }
    checks.push(terraformrc_check(layout, &vars));
    checks.push(certificate_check(layout, &config).await);
    checks.push(mirror_check(layout, &config).await);
    checks.push(postgres_check(layout).await);
    checks.push(disk_check(layout));
    checks
}

/// coderd's pid and environment, from the state file and `/proc/PID/environ`.
fn coderd_environ(layout: &Layout) -> Result<(u32, BTreeMap<String, String>), String> {
    let state = State::read(&layout.state_file()).map_err(|e| e.to_string())?;
    let process = state
        .coderd_process()
        .filter(|p| p.is_alive())
        .ok_or("coderd is not running")?;
    let bytes = std::fs::read(format!("/proc/{}/environ", process.pid)).map_err(|e| {
        format!("cannot read coderd's environment: {e} (run as root or the service user)")
    })?;
    Ok((process.pid, posture::vars(&bytes).into_iter().collect()))
}

fn running_check(env: &Result<(u32, BTreeMap<String, String>), String>) -> Check {
    match env {
        Ok((pid, _)) => Check::pass("coderd-running", format!("pid {pid}")),
        Err(e) => Check::fail(
            "coderd-running",
            e.clone(),
            "start the appliance: `systemctl start coder-airgap` or `coder-airgap up --root ROOT`",
        ),
    }
}

fn posture_checks(vars: &BTreeMap<String, String>) -> Vec<Check> {
    let expect = |name: &'static str, key: &str, want: &str| {
        let got = vars.get(key).map(String::as_str);
        Check::verdict(
            name,
            got == Some(want),
            format!("{key}={}", got.unwrap_or("(unset)")),
            REINSTALL,
        )
    };
    let access = vars.get("CODER_ACCESS_URL").filter(|v| !v.is_empty());
    vec![
        Check::verdict(
            "posture-access-url",
            access.is_some(),
            format!(
                "CODER_ACCESS_URL={}",
                access.map_or("(empty: coderd would open a public tunnel)", |v| v)
            ),
            REINSTALL,
        ),
        expect("posture-telemetry", "CODER_TELEMETRY_ENABLE", "false"),
        expect("posture-update-check", "CODER_UPDATE_CHECK", "false"),
        expect("posture-derp", "CODER_DERP_SERVER_ENABLE", "true"),
        expect("posture-block-direct", "CODER_BLOCK_DIRECT", "true"),
        expect(
            "posture-stun",
            "CODER_DERP_SERVER_STUN_ADDRESSES",
            "disable",
        ),
    ]
}

/// The first `terraform` on coderd's PATH is the bundled one, inside coderd's range.
async fn terraform_check(layout: &Layout, vars: &BTreeMap<String, String>) -> Check {
    const NAME: &str = "terraform-bundled";
    let path = vars.get("PATH").cloned().unwrap_or_default();
    let Some(found) = std::env::split_paths(&path)
        .map(|d| d.join("terraform"))
        .find(|p| p.is_file())
    else {
        return Check::fail(
            NAME,
            "no terraform on coderd's PATH (coderd would try to download one)",
            REINSTALL,
        );
    };
    let bundled = layout.current_bin().join("terraform");
    if canonical(&found) != canonical(&bundled) {
        return Check::fail(
            NAME,
            format!(
                "coderd finds {} before the bundled {}",
                found.display(),
                bundled.display()
            ),
            REINSTALL,
        );
    }
    let version = match terraform_version(&found).await {
        Ok(v) => v,
        Err(e) => return Check::fail(NAME, e, "re-install the bundle (the binary is damaged)"),
    };
    match Release::current(layout).ok().and_then(|r| r.lock.components.coderd.terraform_range) {
        Some(range) if !in_range(&version, &range.min, &range.max) => Check::fail(
            NAME,
            format!("terraform {version} is outside {}..={} that coderd accepts (it would download another)", range.min, range.max),
            "pin the Terraform version coderd expects in appliance.toml, then sync, pack and install",
        ),
        Some(range) => Check::pass(NAME, format!("{} {version} (coderd accepts {}..={})", found.display(), range.min, range.max)),
        None => Check::pass(NAME, format!("{} {version} (coderd's range unknown to this bundle)", found.display())),
    }
}

async fn terraform_version(bin: &Path) -> Result<String, String> {
    let out = tokio::process::Command::new(bin)
        .arg("version")
        .env_clear()
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .map(str::to_string)
        .ok_or_else(|| format!("{} printed no version", bin.display()))
}

fn in_range(version: &str, min: &str, max: &str) -> bool {
    let key = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    key(min) <= key(version) && key(version) <= key(max)
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// No `*_PROXY` variable sends coderd's (or Terraform's) traffic to another host.
fn proxy_check(vars: &BTreeMap<String, String>) -> Check {
    let outside: Vec<String> = vars
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_uppercase();
            k.ends_with("_PROXY") && k != "NO_PROXY"
        })
        .filter(|(_, v)| !v.is_empty() && !points_at_loopback(v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Check::verdict(
        "no-proxy-outside",
        outside.is_empty(),
        if outside.is_empty() { "no proxy variables".into() } else { outside.join(" ") },
        "remove the proxy variables from the service's environment (systemd drop-ins, /etc/environment) and restart",
    )
}

fn points_at_loopback(value: &str) -> bool {
    let host = url::Url::parse(value)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| value.to_string());
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The Terraform configuration coderd uses names the mirror and has no `direct` fallback.
fn terraformrc_check(layout: &Layout, vars: &BTreeMap<String, String>) -> Check {
    const NAME: &str = "terraformrc-no-direct";
    let path = vars
        .get("TF_CLI_CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| layout.terraformrc());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return Check::fail(NAME, format!("{}: {e}", path.display()), REINSTALL),
    };
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let direct = code
        .split_whitespace()
        .any(|w| w == "direct" || w.starts_with("direct{"));
    let mirror = code.contains("network_mirror");
    Check::verdict(
        NAME,
        mirror && !direct,
        match (mirror, direct) {
            (true, false) => format!("{}: network mirror only", path.display()),
            (_, true) => format!(
                "{}: has a `direct` block (Terraform would reach the registry)",
                path.display()
            ),
            _ => format!("{}: no network_mirror block", path.display()),
        },
        "re-run `coder-airgap install` (it rewrites ROOT/etc/terraformrc)",
    )
}

/// Both listeners serve certificates that chain to the CA for their names, valid ≥ 14 days.
async fn certificate_check(layout: &Layout, config: &Config) -> Check {
    const NAME: &str = "certificates";
    const FIX: &str = "restart the appliance (up renews certificates 30 days before expiry); if the CA itself expires, see `coder-airgap ca`";
    let mut found = Vec::new();
    for prefix in [layout.coderd_tls_prefix(), layout.mirror_tls_prefix()] {
        match certificates::expiry(&prefix.with_extension("crt")) {
            Ok(e) if e.days_left < MIN_CERT_DAYS => {
                return Check::fail(
                    NAME,
                    format!("{} expires in {} days", e.path, e.days_left),
                    FIX,
                )
            }
            Ok(e) => found.push(format!("{} days", e.days_left)),
            Err(e) => return Check::fail(NAME, e, REINSTALL),
        }
    }
    for (what, listen, path) in [
        ("coderd", &config.listen, "/healthz"),
        ("mirror", &config.mirror_listen, "/ca.pem"),
    ] {
        let result = match HealthProbe::new(&layout.ca_bundle(), &config.access_url, listen) {
            Ok(probe) => probe.get_ok(path).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            return Check::fail(
                NAME,
                format!("{what}: TLS with only the appliance CA trusted failed: {e}"),
                FIX,
            );
        }
    }
    Check::pass(
        NAME,
        format!(
            "coderd and mirror chain to the CA for their names; {} left",
            found.join(" / ")
        ),
    )
}

/// The mirror answers for every provider version in the current release.
async fn mirror_check(layout: &Layout, config: &Config) -> Check {
    const NAME: &str = "mirror-providers";
    const FIX: &str = "check `up`'s log for the mirror; `coder-airgap mirror verify` on ROOT/current/providers; re-install the bundle if it reports damage";
    let release = match Release::current(layout) {
        Ok(r) => r,
        Err(e) => return Check::fail(NAME, e.to_string(), REINSTALL),
    };
    let probe = match HealthProbe::new(
        &layout.ca_bundle(),
        &config.access_url,
        &config.mirror_listen,
    ) {
        Ok(p) => p,
        Err(e) => return Check::fail(NAME, e.to_string(), FIX),
    };
    let providers = &release.lock.components.providers.providers;
    for p in providers {
        let path = format!("/providers/{}/{}.json", p.source, p.version);
        if let Err(e) = probe.get_ok(&path).await {
            return Check::fail(NAME, format!("{} {}: {e}", p.source, p.version), FIX);
        }
    }
    Check::pass(
        NAME,
        format!("{} provider versions served", providers.len()),
    )
}

/// The database coderd uses answers, and its version.
async fn postgres_check(layout: &Layout) -> Check {
    const NAME: &str = "postgres";
    let url = read_env_file(&layout.coderd_env()).ok().and_then(|vars| {
        vars.into_iter()
            .find(|(k, _)| k == "CODER_PG_CONNECTION_URL")
            .map(|(_, v)| v)
    });
    let Some(url) = url else {
        return Check::fail(
            NAME,
            format!(
                "no CODER_PG_CONNECTION_URL in {}",
                layout.coderd_env().display()
            ),
            REINSTALL,
        );
    };
    match crate::postgres::check_external(&url).await {
        Ok(facts) => Check::pass(
            NAME,
            format!("PostgreSQL {} reachable as {}", facts.version, facts.role),
        ),
        Err(e) => Check::fail(
            NAME,
            e.to_string(),
            "start the appliance (embedded) or check the external server and its URL",
        ),
    }
}

fn disk_check(layout: &Layout) -> Check {
    const NAME: &str = "disk";
    match nix::sys::statvfs::statvfs(layout.root()) {
        Ok(s) => {
            let free = s.blocks_available() * s.fragment_size();
            Check::verdict(
                NAME,
                free >= MIN_FREE,
                format!("{} MiB free under {}", free >> 20, layout.root().display()),
                "free space: remove old releases/ (not current or previous) and old backups/",
            )
        }
        Err(e) => Check::fail(
            NAME,
            format!("{}: {e}", layout.root().display()),
            "check the filesystem",
        ),
    }
}
