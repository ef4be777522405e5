//! Why a request failed, told apart by what retrying can do about it: a refused redirect,
//! a certificate the client refuses, a name that does not resolve or a network with no
//! route are permanent (retrying only wastes the operator's time); resets, timeouts and
//! refused connections are transient. Certificates get a message a person can act on.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use rustls::CertificateError;

/// A redirect the client refused to follow (a scheme change such as https → http, or too
/// many hops). Raised inside reqwest's redirect policy and found again in the error chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectRefused {
    /// The URL that answered with the redirect.
    pub from: String,
    /// Where it pointed.
    pub to: String,
    /// Why it was refused.
    pub reason: String,
}

impl fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused the redirect from {} to {}: {}",
            self.from, self.to, self.reason
        )
    }
}

impl StdError for RedirectRefused {}

/// What a failed request means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A redirect was refused.
    Redirect(RedirectRefused),
    /// The server's certificate was refused; the text says why and what to do.
    Certificate(String),
    /// The host name does not resolve.
    Unresolvable(String),
    /// This machine has no route to the network or host.
    Unreachable(String),
    /// Anything else: worth another attempt.
    Transient(String),
}

/// The redirect policy: follow at most `max` hops, never to another scheme.
pub fn redirect_policy(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let to = attempt.url().clone();
        let Some(from) = attempt.previous().last().cloned() else {
            return attempt.follow();
        };
        let refuse = |reason: String| RedirectRefused {
            from: from.to_string(),
            to: to.to_string(),
            reason,
        };
        if from.scheme() != to.scheme() {
            let reason = if from.scheme() == "https" && to.scheme() == "http" {
                "a downgrade from https to plain http would let anyone on the path change what is fetched".to_string()
            } else {
                format!(
                    "it changes the scheme from {} to {}",
                    from.scheme(),
                    to.scheme()
                )
            };
            return attempt.error(refuse(reason));
        }
        if attempt.previous().len() > max {
            return attempt.error(refuse(format!("more than {max} redirects")));
        }
        attempt.follow()
    })
}

/// Classifies a reqwest error for `host` by walking its source chain.
pub fn classify(err: &reqwest::Error, host: &str) -> Failure {
    for cause in chain(err) {
        if let Some(r) = cause.downcast_ref::<RedirectRefused>() {
            return Failure::Redirect(r.clone());
        }
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Failure::Certificate(certificate_advice(host, tls));
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            if matches!(
                io.kind(),
                io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable
            ) {
                return Failure::Unreachable(io.to_string());
            }
        }
        if cause.to_string() == "dns error" {
            let detail = cause.source().map(ToString::to_string).unwrap_or_default();
            return Failure::Unresolvable(detail);
        }
    }
    Failure::Transient(error_chain(err))
}

/// The error and its causes, including errors an `io::Error` wraps (its `source()` skips them).
fn chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        out.push(e);
        next = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    out
}

/// The error and its causes on one line (reqwest hides the interesting part in sources).
pub fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = String::new();
    for cause in chain(e) {
        let part = cause.to_string();
        if !text.is_empty() {
            if text.ends_with(&part) {
                continue;
            }
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// What a person can do about a certificate rustls refused for `host`.
pub fn certificate_advice(host: &str, err: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(cert) = err else {
        return format!("the TLS handshake with {host} failed: {err}");
    };
    match cert {
        CertificateError::UnknownIssuer => format!(
            "the certificate of {host} is signed by a CA this host does not trust; add that CA \
             with --ca-file FILE.pem (for a TLS-inspecting proxy: the proxy's CA)"
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let presented = match cert {
                CertificateError::NotValidForNameContext { presented, .. } => {
                    format!(" (it names {})", presented.join(", "))
                }
                _ => String::new(),
            };
            format!(
                "the certificate {host} presents is not issued for {host}{presented}; use the \
                 name the certificate carries, or reissue it with {host} in its subjectAltName"
            )
        }
        CertificateError::Expired => {
            format!("the certificate of {host} has expired; renew it on the server")
        }
        CertificateError::ExpiredContext { not_after, .. } => format!(
            "the certificate of {host} expired on {}; renew it on the server (or check this \
             host's clock)",
            date(not_after.as_secs())
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("the certificate of {host} is not valid yet; check this host's clock")
        }
        CertificateError::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            format!(
                "{host} presents a CA certificate as its own certificate (as `openssl req -x509` \
                 makes); issue a leaf certificate for {host} from that CA and serve that (with \
                 the CA in --ca-file), e.g. with `coder-airgap ca issue`"
            )
        }
        other => format!("the certificate of {host} is refused: {other:?}"),
    }
}

/// `YYYY-MM-DD` for a Unix time.
pub fn date(secs: u64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("unix time {secs}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_calendar_dates() {
        assert_eq!(date(1_740_787_200), "2025-03-01");
    }

    #[test]
    fn a_ca_used_as_a_leaf_says_how_to_fix_it() {
        let err = rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(io::Error::other("CaUsedAsEndEntity")),
        )));
        let text = certificate_advice("reg.example", &err);
        assert!(text.contains("openssl req -x509"), "{text}");
        assert!(text.contains("leaf certificate for reg.example"), "{text}");
    }

    #[test]
    fn an_unknown_issuer_points_at_ca_file() {
        let err = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(certificate_advice("h", &err).contains("--ca-file"));
    }
}
