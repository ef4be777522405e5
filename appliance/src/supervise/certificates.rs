//! When the appliance's TLS certificates expire, read from the files coderd and the mirror
//! actually load (`PREFIX.crt`, leaf first), not from the CA's ledger.

use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

/// One certificate's expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expiry {
    /// The certificate file.
    pub path: String,
    /// The leaf's notAfter, RFC 3339 (UTC).
    pub not_after: String,
    /// Whole days left (negative once expired).
    pub days_left: i64,
}

/// What the appliance records of a leaf certificate (the first one in a PEM file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafFacts {
    /// Serial number, lower-case hex.
    pub serial: String,
    /// Subject alternative names, `DNS:name` / `IP:addr`.
    pub names: Vec<String>,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// Reads the first certificate in the PEM file `path`.
pub fn leaf(path: &Path) -> Result<LeafFacts, String> {
    use x509_parser::extensions::GeneralName;
    let fail = |why: String| format!("{}: {why}", path.display());
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let block = x509_parser::pem::Pem::iter_from_buffer(&pem)
        .next()
        .ok_or_else(|| fail("no PEM certificate in it".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let cert = block.parse_x509().map_err(|e| fail(e.to_string()))?;
    let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        .map_err(|e| fail(e.to_string()))?;
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(format!("DNS:{d}")),
                GeneralName::IPAddress(ip) => ip_text(ip).map(|ip| format!("IP:{ip}")),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(LeafFacts {
        serial: cert.raw_serial_as_string().replace(':', ""),
        names,
        not_after,
    })
}

fn ip_text(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// The expiry of the first certificate in the PEM file `path`.
pub fn expiry(path: &Path) -> Result<Expiry, String> {
    let facts = leaf(path)?;
    Ok(Expiry {
        path: path.display().to_string(),
        not_after: facts
            .not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        days_left: (facts.not_after - OffsetDateTime::now_utc()).whole_days(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use airgap_certs::{CertificateAuthority, InitOptions, LeafRequest};

    #[test]
    fn expiry_is_read_from_the_leaf() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let mut options = InitOptions::new("Expiry Test CA");
        options.permitted_dns = vec!["example.internal".into()];
        let ca = CertificateAuthority::init(&tmp.path().join("ca"), &options)?;
        let mut request = LeafRequest::server(["coder.example.internal"], []);
        request.days = 20;
        let issued = ca.issue_to_files(&request, &tmp.path().join("tls/coderd"))?;
        let e = expiry(&issued.cert_path)?;
        assert!((19..=20).contains(&e.days_left), "{e:?}");
        assert!(expiry(&tmp.path().join("missing.crt")).is_err());
        let facts = leaf(&issued.cert_path)?;
        assert_eq!(facts.names, ["DNS:coder.example.internal"]);
        assert_eq!(
            facts.serial,
            issued.leaf.serial.as_str().to_lowercase().replace(':', "")
        );
        Ok(())
    }
}
