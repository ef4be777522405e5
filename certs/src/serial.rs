//! Certificate serial numbers: 16 random bytes, positive, written as uppercase hex the way
//! `openssl x509 -serial` prints them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{CertsError, Result};

/// A certificate serial number, as uppercase hex without separators (`openssl x509
/// -serial` prints the same digits after `serial=`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Serial(String);

impl Serial {
    /// A new random serial: 16 bytes from the system RNG, top bit cleared so it is positive,
    /// first byte non-zero so DER keeps all 16 bytes and the hex is always 32 digits.
    pub fn random() -> Result<Self> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| CertsError::Random(e.to_string()))?;
        bytes[0] &= 0x7f;
        if bytes[0] == 0 {
            bytes[0] = 0x01;
        }
        Ok(Serial(hex::encode_upper(bytes)))
    }

    /// Parses a serial typed by a user: hex, any case, optional `serial=` prefix, colons
    /// allowed, leading zero bytes ignored (as in `openssl x509 -serial` output).
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        let trimmed = trimmed.strip_prefix("serial=").unwrap_or(trimmed);
        let digits: String = trimmed.chars().filter(|c| *c != ':').collect();
        let bad = || {
            CertsError::invalid(
                "serial",
                text,
                "expected hex digits as shown by `coder-airgap ca list` or `openssl x509 -serial`",
            )
        };
        if digits.is_empty() || digits.len() > 40 || !digits.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(bad());
        }
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes = hex::decode(&padded).map_err(|_| bad())?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The serial of DER integer content `bytes`, leading zero bytes dropped.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Self {
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len().saturating_sub(1));
        let significant = bytes.get(first..).unwrap_or(&[]);
        if significant.is_empty() {
            return Serial("00".to_owned());
        }
        Serial(hex::encode_upper(significant))
    }

    /// The serial's bytes, for rcgen.
    pub(crate) fn to_rcgen(&self) -> rcgen::SerialNumber {
        rcgen::SerialNumber::from_slice(&hex::decode(&self.0).unwrap_or_default())
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Serial {
    type Error = CertsError;
    fn try_from(value: String) -> Result<Self> {
        Serial::parse(&value)
    }
}

impl From<Serial> for String {
    fn from(value: Serial) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serials_are_32_hex_digits_positive_and_distinct() {
        let a = Serial::random().expect("rng");
        let b = Serial::random().expect("rng");
        assert_eq!(a.as_str().len(), 32);
        assert_ne!(a, b);
        let first = u8::from_str_radix(&a.as_str()[..2], 16).expect("hex");
        assert!(first > 0 && first < 0x80, "{a}");
    }

    #[test]
    fn parse_accepts_openssl_forms() {
        let want = Serial::parse("1A2B").expect("plain");
        assert_eq!(Serial::parse("serial=1a2b").expect("prefixed"), want);
        assert_eq!(Serial::parse("00:1a:2b").expect("colons"), want);
        assert_eq!(want.as_str(), "1A2B");
        assert!(Serial::parse("xyz").is_err());
        assert!(Serial::parse("").is_err());
    }
}
