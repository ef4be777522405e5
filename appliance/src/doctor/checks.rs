//! The individual checks. Each returns one [`Check`]; none stops the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airgap_tool::Tool;
use airgap_version::{Place, Version};

use super::Check;
use crate::config::Config;
use crate::env::read_env_file;
use crate::layout::Layout;
use crate::postgres::SecretUrl;
use crate::posture::{Expect, Verdict, FLAGS, POSTURE};
use crate::release::Release;
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
pub async fn run_all(layout: &Layout) -> Vec<Check> {
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
    let vars = env.as_ref().map(|(_, v, _)| v.clone()).unwrap_or_default();
    if let Ok((_, _, argv)) = &env {
        let written: BTreeMap<String, String> = read_env_file(&layout.coderd_env())
            .map(|v| v.into_iter().collect())
            .unwrap_or_default();
        checks.extend(posture_checks(&vars, argv, &written));
        checks.push(terraform_check(layout, &vars).await);
        checks.push(proxy_check(&vars));
    }
    checks.push(terraformrc_check(layout, &vars));
    checks.push(certificate_check(layout, &config).await);
    checks.push(mirror_check(layout, &config).await);
    checks.push(modules_check(layout));
    checks.push(postgres_check(layout).await);
    checks.push(disk_check(layout));
    checks
}

/// coderd's pid, environment and arguments, from the state file and `/proc/PID/`.
type Environ = (u32, BTreeMap<String, String>, Vec<String>);

/// coderd's pid, environment and arguments, from the state file and `/proc/PID/`.
fn coderd_environ(layout: &Layout) -> Result<Environ, String> {
    let state = State::read(&layout.state_file()).map_err(|e| e.to_string())?;
    let process = state
        .coderd_process()
        .filter(|p| p.is_alive())
        .ok_or("coderd is not running")?;
    let (environ, argv) = posture::read_process(process.pid).map_err(|e| e.to_string())?;
    Ok((
        process.pid,
        posture::vars(&environ).into_iter().collect(),
        argv,
    ))
}

fn running_check(env: &Result<Environ, String>) -> Check {
    match env {
        Ok((pid, _, _)) => Check::pass("coderd-running", format!("pid {pid}")),
        Err(e) => Check::fail(
            "coderd-running",
            e.clone(),
            "start the appliance: `systemctl start coder-airgap` or `coder-airgap up --root ROOT`",
        ),
    }
}

/// One check per row of the posture table (and per posture flag), on the live process.
/// `written` is the env file install wrote (opt-in rows are judged against it).
fn posture_checks(
    vars: &BTreeMap<String, String>,
    argv: &[String],
    written: &BTreeMap<String, String>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    for row in POSTURE.iter().filter(|r| r.expect != Expect::Shown) {
        let live = vars.get(row.var).map(String::as_str);
        let shown = match live {
            None => "(unset)",
            Some("") => "(empty)",
            Some(v) => v,
        };
        let detail = format!("{}={shown}", row.var);
        checks.push(
            match row.judge(live, written.get(row.var).map(String::as_str)) {
                Verdict::Pass => Check::pass(row.check, detail),
                Verdict::Warn(why) => Check::warn(row.check, format!("{detail}: {why}")),
                Verdict::Fail(why) => Check::fail(
                    row.check,
                    format!("{detail}: {why} ({}; Coder: {})", row.why, row.source),
                    REINSTALL,
                ),
            },
        );
    }
    for flag in FLAGS {
        let name = posture::flag_name(flag.arg);
        let want = flag.arg.split_once('=').map_or("", |(_, v)| v);
        let got = posture::flag_value(argv, name);
        let env_form = vars.get(flag.forbidden_env);
        let ok = got.as_deref() == Some(want) && env_form.is_none();
        let detail = match (&got, env_form) {
            (_, Some(v)) => format!(
                "{}={v} is set: coderd would read it as an external-auth provider and stop ({})",
                flag.forbidden_env, flag.why
            ),
            (Some(v), None) => format!("{name}={v} on coderd's command line"),
            (None, None) => format!(
                "{name} missing from coderd's command line ({}; Coder: {})",
                flag.why, flag.source
            ),
        };
        checks.push(Check::verdict(flag.check, ok, detail, "restart the appliance with this coder-airgap's `up` (it passes the flag) and remove the variable from the service's environment"));
    }
    checks
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
    let range = Release::current(layout)
        .ok()
        .and_then(|r| r.lock.components.coderd.terraform_range);
    let Some(range) = range else {
        return Check::pass(
            NAME,
            format!(
                "{} {version} (coderd's range unknown to this bundle)",
                found.display()
            ),
        );
    };
    const REPIN: &str =
        "pin a Terraform inside coderd's range in appliance.toml, then sync, pack and install";
    let Ok(parsed) = version.parse::<Version>() else {
        return Check::fail(
            NAME,
            format!("{} printed {version:?}, not a version", found.display()),
            "re-install the bundle (the binary is damaged)",
        );
    };
    match range.place(&parsed) {
        Place::Below => Check::fail(
            NAME,
            format!("terraform {version} is below {}, the minimum coderd accepts: it would download its own Terraform, which fails offline", range.min),
            REPIN,
        ),
        Place::Above => Check::warn(
            NAME,
            format!("terraform {version} is above {}, the maximum coderd was tested with: coderd only logs a warning and uses it", range.max),
        ),
        Place::Inside => Check::pass(
            NAME,
            format!("{} {version} (coderd accepts {}..={})", found.display(), range.min, range.max),
        ),
    }
}

/// `terraform version` of `bin` (only `CHECKPOINT_DISABLE=1` in its environment: it must
/// not try to phone home); a nonzero exit or no version in its output is an error.
async fn terraform_version(bin: &Path) -> Result<String, String> {
    let out = Tool::new("terraform version", bin)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .timeout(std::time::Duration::from_secs(30))
        .output_async()
        .await
        .map_err(|e| e.to_string())?;
    out.stdout_lossy()
        .split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .map(str::to_string)
        .ok_or_else(|| format!("{} printed no version", bin.display()))
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
        ("coderd", config.listen, "/healthz"),
        ("mirror", config.mirror_listen, "/ca.pem"),
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
        config.mirror_listen,
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

/// Every module version in the current release's module store still has the sha256 its
/// index records (the mirror refuses a damaged archive with 409 at `terraform init`).
fn modules_check(layout: &Layout) -> Check {
    match Release::current(layout) {
        Ok(release) => modules_verdict(&release.providers_dir()),
        Err(e) => Check::fail(MODULES, e.to_string(), REINSTALL),
    }
}

const MODULES: &str = "modules";

/// The `modules` verdict on the mirror tree `providers_dir`.
fn modules_verdict(providers_dir: &Path) -> Check {
    const FIX: &str = "re-install the bundle (`coder-airgap install`); for a site's own module, `coder-airgap mirror import-module --dir ROOT/current/providers --replace …` it again";
    let report =
        airgap_mirror::maintain::verify_module_store(&airgap_mirror::Mirror::new(providers_dir));
    if report.problems.is_empty() {
        return Check::pass(
            MODULES,
            format!(
                "{} module versions match the store's index",
                report.module_versions
            ),
        );
    }
    Check::fail(
        MODULES,
        format!(
            "{} of {} module versions damaged: {}",
            report.problems.len(),
            report.module_versions,
            report.problems.join("; ")
        ),
        FIX,
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
    let url = match SecretUrl::parse(&url) {
        Ok(url) => url,
        Err(e) => {
            return Check::fail(
                NAME,
                format!(
                    "CODER_PG_CONNECTION_URL in {}: {e}",
                    layout.coderd_env().display()
                ),
                REINSTALL,
            )
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{coderd_env, CoderdSettings};
    use airgap_version::VersionRange;

    fn written() -> BTreeMap<String, String> {
        let settings = CoderdSettings {
            access_url: "https://coder.example.internal"
                .parse()
                .expect("access URL"),
            wildcard_url: None,
            tls_address: "0.0.0.0:443".parse().expect("address"),
            pg_url: SecretUrl::parse("postgres://c@127.0.0.1/c").expect("URL"),
            docs_url: None,
            ai_gateway: false,
        };
        coderd_env(&settings, &Layout::new("/srv/c"))
            .into_iter()
            .collect()
    }

    fn argv() -> Vec<String> {
        ["coder", "server"]
            .into_iter()
            .chain(crate::posture::server_args())
            .map(String::from)
            .collect()
    }

    fn failed(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }

    #[test]
    fn the_written_posture_passes_every_check() {
        let env = written();
        let checks = posture_checks(&env, &argv(), &env);
        assert!(failed(&checks).is_empty(), "{checks:?}");
        assert!(checks.iter().all(|c| !c.warning));
        let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
        for name in [
            "posture-telemetry-url",
            "posture-github-login",
            "posture-github-external-auth",
            "posture-ai-gateway",
            "posture-derp-config-url",
            "posture-http",
        ] {
            assert!(names.contains(&name), "{name} missing: {names:?}");
        }
    }

    #[test]
    fn each_drift_fails_its_own_check() {
        let env = written();
        let drift = |key: &str, value: Option<&str>| {
            let mut live = env.clone();
            match value {
                Some(v) => live.insert(key.to_string(), v.to_string()),
                None => live.remove(key),
            };
            failed(&posture_checks(&live, &argv(), &env))
        };
        assert_eq!(
            drift("CODER_TELEMETRY_URL", None),
            ["posture-telemetry-url"]
        );
        assert_eq!(
            drift("CODER_AI_GATEWAY_ENABLED", Some("true")),
            ["posture-ai-gateway"]
        );
        assert_eq!(
            drift(
                "CODER_DERP_CONFIG_URL",
                Some("https://example.com/derp.json")
            ),
            ["posture-derp-config-url"]
        );
        assert_eq!(
            drift("CODER_HTTP_ADDRESS", Some("0.0.0.0:80")),
            ["posture-http"]
        );
        assert_eq!(
            drift(
                "CODER_EXTERNAL_AUTH_GITHUB_DEFAULT_PROVIDER_ENABLE",
                Some("false")
            ),
            ["posture-github-external-auth"]
        );
        let bare: Vec<String> = vec!["coder".into(), "server".into()];
        assert_eq!(
            failed(&posture_checks(&env, &bare, &env)),
            ["posture-github-external-auth"]
        );
    }

    #[test]
    fn ai_gateway_opted_in_is_a_warning_not_a_failure() {
        let mut env = written();
        env.insert("CODER_AI_GATEWAY_ENABLED".into(), "true".into());
        let checks = posture_checks(&env, &argv(), &env);
        let ai = checks
            .iter()
            .find(|c| c.name == "posture-ai-gateway")
            .expect("ai");
        assert!(ai.ok && ai.warning, "{ai:?}");
        assert!(ai.line().starts_with("warn "), "{}", ai.line());
    }

    /// A layout whose bundled `terraform` is `script`, and coderd's PATH finding it.
    fn fake_terraform(
        root: &Path,
        script: &str,
    ) -> std::io::Result<(Layout, BTreeMap<String, String>)> {
        use std::os::unix::fs::PermissionsExt;
        let layout = Layout::new(root);
        let bin = layout.current_bin();
        std::fs::create_dir_all(&bin)?;
        let terraform = bin.join("terraform");
        std::fs::write(&terraform, format!("#!/bin/sh\n{script}\n"))?;
        std::fs::set_permissions(&terraform, std::fs::Permissions::from_mode(0o755))?;
        let vars = BTreeMap::from([("PATH".to_string(), bin.display().to_string())]);
        Ok((layout, vars))
    }

    #[tokio::test]
    async fn a_failing_terraform_version_fails_the_check() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        // It prints a version, but exits 1: the check must not believe the version.
        let script = "echo 'Terraform v1.5.7'; echo 'Error: plugin cache broken' >&2; exit 1";
        let (layout, vars) = fake_terraform(dir.path(), script)?;
        let check = terraform_check(&layout, &vars).await;
        assert!(!check.ok, "{check:?}");
        assert!(
            check
                .detail
                .contains("exited with status 1: Error: plugin cache broken"),
            "{check:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_working_terraform_version_is_read() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (layout, vars) = fake_terraform(dir.path(), "echo 'Terraform v1.5.7'")?;
        let check = terraform_check(&layout, &vars).await;
        assert!(check.ok, "{check:?}");
        assert!(check.detail.contains("1.5.7"), "{check:?}");
        Ok(())
    }

    #[test]
    fn modules_pass_with_a_count_and_a_damaged_archive_fails_named(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let providers = dir.path().join("providers");
        let empty = modules_verdict(&providers);
        assert!(empty.ok, "{empty:?}");
        assert!(empty.detail.starts_with("0 module versions"), "{empty:?}");

        let store = airgap_mirror::ModuleStore::new(&providers);
        let module = dir.path().join("module");
        std::fs::create_dir_all(&module)?;
        let addr: airgap_mirror::ModuleAddr = "registry.coder.com/coder/demo/coder".parse()?;
        for version in ["1.0.0", "1.1.0"] {
            std::fs::write(
                module.join("main.tf"),
                format!("output \"v\" {{ value = \"{version}\" }}\n"),
            )?;
            store.import(&addr, &version.parse()?, &module, false)?;
        }
        let good = modules_verdict(&providers);
        assert!(good.ok, "{good:?}");
        assert_eq!(
            good.detail, "2 module versions match the store's index",
            "{good:?}"
        );

        let archive = store.archive_path(&addr, &"1.1.0".parse()?);
        std::fs::write(&archive, b"not the imported archive")?;
        let bad = modules_verdict(&providers);
        assert!(!bad.ok, "{bad:?}");
        assert!(
            bad.detail.starts_with("1 of 2 module versions damaged"),
            "{bad:?}"
        );
        assert!(
            bad.detail
                .contains("module registry.coder.com/coder/demo/coder 1.1.0"),
            "{bad:?}"
        );
        assert!(!bad.detail.contains("1.0.0"), "{bad:?}");
        assert!(bad.fix.contains("coder-airgap install"), "{bad:?}");
        Ok(())
    }

    #[test]
    fn terraform_range_places_versions() {
        let place = |version: &str, min: &str, max: &str| {
            let v = |s: &str| s.parse::<Version>().expect("version");
            VersionRange {
                min: v(min),
                max: v(max),
            }
            .place(&v(version))
        };
        assert_eq!(place("1.0.9", "1.1.0", "1.14.9"), Place::Below);
        assert_eq!(place("1.1.0", "1.1.0", "1.14.9"), Place::Inside);
        assert_eq!(place("1.14.9", "1.1.0", "1.14.9"), Place::Inside);
        assert_eq!(place("1.15.5", "1.1.0", "1.14.9"), Place::Above);
    }
}
