//! Certificate renewal by `up`: at start and every hour, re-issue the coderd and mirror
//! certificates when they expire within 30 days. Only those two: the CA may also have
//! issued certificates for other hosts, which are not `up`'s to replace.

use std::time::Duration;

use airgap_certs::CertificateAuthority;

use crate::appliance::layout::Layout;

/// Renew when a certificate has fewer days than this left.
const RENEW_WITHIN_DAYS: i64 = 30;
/// The default time between renewal checks.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
/// Overrides the interval in seconds (tests).
pub(crate) const INTERVAL_ENV: &str = "CODER_AIRGAP_RENEW_INTERVAL_SECS";

/// The time between renewal checks: [`INTERVAL_ENV`] when it holds a positive number of
/// seconds, else one hour.
pub(crate) fn interval() -> Duration {
    std::env::var(INTERVAL_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|secs| *secs > 0)
        .map_or(DEFAULT_INTERVAL, Duration::from_secs)
}

/// Renews the due ones of coderd's and the mirror's certificates with the CA in `ca_dir`
/// (blocking: it signs and writes files). Returns one line per renewed certificate.
pub(crate) fn renew_due(
    layout: &Layout,
    ca_dir: &std::path::Path,
) -> Result<Vec<String>, airgap_certs::CertsError> {
    let ca = CertificateAuthority::load(ca_dir)?;
    let prefixes = [layout.coderd_tls_prefix(), layout.mirror_tls_prefix()];
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
