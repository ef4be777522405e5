//! Certificate renewal by `up`: at start and every hour, re-issue the coderd and mirror
//! certificates when they expire within 30 days. Only those two: the CA may also have
//! issued certificates for other hosts, which are not `up`'s to replace.

use std::time::Duration;

use airgap_certs::CertificateAuthority;

use crate::config::Config;
use crate::layout::Layout;
use crate::privilege::ServiceUser;
use crate::rootdir::Dir;

use super::say;

/// Renew when a certificate has fewer days than this left.
const RENEW_WITHIN_DAYS: i64 = 30;
/// The default time between renewal checks.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
/// Overrides the interval in seconds (tests).
pub const INTERVAL_ENV: &str = "CODER_AIRGAP_RENEW_INTERVAL_SECS";

/// The time between renewal checks: [`INTERVAL_ENV`] when it holds a positive number of
/// seconds, else one hour.
pub fn interval() -> Duration {
    std::env::var(INTERVAL_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|secs| *secs > 0)
        .map_or(DEFAULT_INTERVAL, Duration::from_secs)
}

/// What `up` does as root before it drops privileges: renews the due certificates with
/// the CA (whose key is root's alone, see [`Layout`]) after checking ROOT, etc, etc/tls
/// and the CA directory through handles, and gives the new keys to the service user. A
/// failed renewal is reported, not fatal: `up` starts with the certificates it has.
pub fn prepare_as_root(
    layout: &Layout,
    user: &ServiceUser,
) -> Result<(), crate::install::InstallError> {
    let root = Dir::open_root(layout.root())?;
    let etc = root.admin_dir("etc")?;
    let tls = etc.admin_dir("tls")?;
    let config = Config::read_in(&etc, &layout.config_file())?;
    crate::install::tls::check_ca_dir(&root, &config.ca_dir, layout)?;
    match renew_due(layout, &config.ca_dir) {
        Ok(lines) => lines.iter().for_each(|line| say(line)),
        Err(e) => say(&format!("certificate renewal failed: {e}")),
    }
    crate::install::tls::hand_keys_to(&tls, user)
}

/// Renews the due ones of coderd's and the mirror's certificates with the CA in `ca_dir`
/// (blocking: it signs and writes files). Returns one line per renewed certificate. Run
/// by the service user, which cannot write root's CA, it only says which certificates
/// are due and that a restart of `up` (as root, or under systemd) renews them.
pub fn renew_due(
    layout: &Layout,
    ca_dir: &std::path::Path,
) -> Result<Vec<String>, airgap_certs::CertsError> {
    let prefixes = [layout.coderd_tls_prefix(), layout.mirror_tls_prefix()];
    if !crate::privilege::is_root() && !owns(ca_dir) {
        advise_restart(&prefixes);
        return Ok(Vec::new());
    }
    let ca = CertificateAuthority::load(ca_dir)?;
    let renewed = ca.renew_due_for(time::Duration::days(RENEW_WITHIN_DAYS), &prefixes)?;
    Ok(renewed
        .iter()
        .map(|r| {
            format!(
                "renewed {} (serial {} replaced by {}, valid until {})",
                r.new.cert_path.display(),
                r.old_serial,
                r.new.leaf.serial,
                r.new.leaf.not_after.date()
            )
        })
        .collect())
}

/// True when `dir` belongs to the effective user (a CA this process may write).
fn owns(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).is_ok_and(|m| m.uid() == nix::unistd::Uid::effective().as_raw())
}

/// Says which of `prefixes` are due for renewal and how to renew them.
fn advise_restart(prefixes: &[std::path::PathBuf]) {
    for prefix in prefixes {
        let crt = prefix.with_extension("crt");
        if let Ok(expiry) = super::certificates::expiry(&crt) {
            if expiry.days_left < RENEW_WITHIN_DAYS {
                say(&format!(
                    "{} expires {} and the CA is root's: restart up \
                     (systemctl restart coder-airgap) to renew it",
                    crt.display(),
                    expiry.not_after
                ));
            }
        }
    }
}
