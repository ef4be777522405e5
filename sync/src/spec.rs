//! The appliance spec (`bundle/appliance.toml`): what to fetch, from where, trusting which
//! keys. Any field can be overridden with `--set section.key=value`.

use std::path::{Path, PathBuf};

use airgap_mirror::spec::MirrorSpec;
use airgap_mirror::Platform;
use airgap_version::{Place, Version, VersionRange};
use serde::Deserialize;

use super::error::{io_at, SyncError};

/// HashiCorp's release signing key ("HashiCorp Security"), pinned here; the spec's
/// `terraform.key_fingerprint` defaults to it.
pub const HASHICORP_FINGERPRINT: &str = "C874 011F 0AB4 0511 0D02 1055 3436 5D94 72D7 468F";

/// Coder's release key, which signs `coder_V_checksums.txt` (detached `.asc`) on every
/// release since early 2023 (issue 14; /work/shared/reference/coder-facts.md). The spec's
/// `coder.key_fingerprint` defaults to it and the signature is required unless the spec
/// says `coder.require_signature = false`.
pub const CODER_FINGERPRINT: &str = "21C9 6B1C B950 7188 74F6 4DBD 6A5A 671B 5E40 A3B9";

/// The whole spec.
#[derive(Debug, Clone)]
pub struct ApplianceSpec {
    /// Bundle identity.
    pub bundle: BundleSection,
    /// coderd.
    pub coder: CoderSection,
    /// Terraform.
    pub terraform: TerraformSection,
    /// PostgreSQL.
    pub postgres: PostgresSection,
    /// Providers, registries and trusted keys, as the mirror crate reads them.
    pub mirror: MirrorSpec,
}

/// `[bundle]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSection {
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// Sequence number (None: pack uses the creation time).
    #[serde(default)]
    pub sequence: Option<u64>,
    /// Days until the bundle expires.
    #[serde(default = "default_expiry")]
    pub expires_in_days: u32,
    /// Target platforms; the first is the appliance host's.
    pub platforms: Vec<Platform>,
}

fn default_expiry() -> u32 {
    90
}

/// `[coder]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoderSection {
    /// Release version without a leading `v`.
    pub version: String,
    /// Release download base (assets under `vVERSION/`).
    pub base_url: String,
    /// Also fetch `coder_docs_V.tgz` into `docs/`.
    #[serde(default)]
    pub docs: bool,
    /// Where to get the key that signs `coder_V_checksums.txt.asc`.
    #[serde(default)]
    pub key_url: Option<String>,
    /// A local copy of that key (wins over `key_url`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The fingerprint the key must have (default: Coder's release key).
    #[serde(default = "default_coder")]
    pub key_fingerprint: String,
    /// The `.asc` must exist and verify (default). `false` accepts an unsigned checksum
    /// file with a loud warning: only for a release known to be unsigned.
    #[serde(default = "default_true")]
    pub require_signature: bool,
}

fn default_coder() -> String {
    CODER_FINGERPRINT.to_string()
}

fn default_true() -> bool {
    true
}

/// `[terraform]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerraformSection {
    /// Terraform version.
    pub version: String,
    /// Releases base (`BASE/terraform/V/...`).
    pub base_url: String,
    /// Where to get HashiCorp's public key.
    #[serde(default)]
    pub key_url: Option<String>,
    /// A local copy of it (wins over `key_url`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The fingerprint the key must have.
    #[serde(default = "default_hashicorp")]
    pub key_fingerprint: String,
}

fn default_hashicorp() -> String {
    HASHICORP_FINGERPRINT.to_string()
}

/// `[postgres]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    /// Archive version (`15.18.0`).
    pub version: String,
    /// Archive base (`BASE/V/postgresql-V-TRIPLE.tar.gz`).
    pub base_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sections {
    bundle: BundleSection,
    coder: CoderSection,
    terraform: TerraformSection,
    postgres: PostgresSection,
}

/// Top-level keys that belong to the mirror crate's providers spec.
const MIRROR_KEYS: [&str; 3] = ["providers", "registries", "trusted_keys"];

impl ApplianceSpec {
    /// Reads `path`, applies `sets` (`section.key=value`) and checks the result.
    pub fn load(path: &Path, sets: &[String]) -> Result<Self, SyncError> {
        let text = std::fs::read_to_string(path).map_err(|cause| SyncError::SpecIo {
            path: path.to_path_buf(),
            cause,
        })?;
        Self::parse(&text, path, sets)
    }

    /// Parses spec TOML (`origin` names it in errors and anchors relative key files).
    pub fn parse(text: &str, origin: &Path, sets: &[String]) -> Result<Self, SyncError> {
        let bad = |message: String| SyncError::Spec {
            path: origin.to_path_buf(),
            message,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        for set in sets {
            apply_set(&mut table, set)?;
        }
        let mut mirror_table = toml::Table::new();
        for key in MIRROR_KEYS {
            if let Some(value) = table.remove(key) {
                mirror_table.insert(key.to_string(), value);
            }
        }
        let sections: Sections = table.try_into().map_err(|e| bad(e.to_string()))?;
        let mirror_text = toml::to_string(&mirror_table).map_err(|e| bad(e.to_string()))?;
        let mirror = MirrorSpec::from_toml(&mirror_text, origin).map_err(|e| bad(e.to_string()))?;
        let base = origin.parent().unwrap_or(Path::new("."));
        let mut spec = ApplianceSpec {
            bundle: sections.bundle,
            coder: sections.coder,
            terraform: sections.terraform,
            postgres: sections.postgres,
            mirror,
        };
        spec.anchor_key_files(base);
        spec.check().map_err(bad)?;
        Ok(spec)
    }

    /// The appliance host's platform (the first of `bundle.platforms`).
    pub fn host_platform(&self) -> &Platform {
        // check() guarantees at least one.
        &self.bundle.platforms[0]
    }

    fn anchor_key_files(&mut self, base: &Path) {
        for file in [&mut self.coder.key_file, &mut self.terraform.key_file] {
            if let Some(f) = file.as_mut() {
                if f.is_relative() {
                    *f = base.join(&*f);
                }
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.bundle.platforms.is_empty() {
            return Err("bundle.platforms: list at least one, e.g. [\"linux_amd64\"]".into());
        }
        let urls = [
            ("coder.base_url", &self.coder.base_url),
            ("terraform.base_url", &self.terraform.base_url),
            ("postgres.base_url", &self.postgres.base_url),
        ];
        for (field, url) in urls {
            let ok = url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(format!("{field} = {url:?} is not an http(s) URL"));
            }
        }
        let t = &self.terraform;
        if t.key_url.is_none() && t.key_file.is_none() {
            return Err("terraform: set key_url or key_file (HashiCorp's public key)".into());
        }
        Ok(())
    }
}

/// Applies one `section.key=value`, split at the first `.` (so `registries.registry.terraform.io=URL`
/// sets the key `registry.terraform.io` of `[registries]`).
fn apply_set(table: &mut toml::Table, arg: &str) -> Result<(), SyncError> {
    let bad = |message: &str| SyncError::BadSet {
        arg: arg.to_string(),
        message: message.to_string(),
    };
    let (path, raw) = arg.split_once('=').ok_or_else(|| bad("no '='"))?;
    let (section, key) = path
        .split_once('.')
        .ok_or_else(|| bad("no '.' in the name"))?;
    if section.is_empty() || key.is_empty() {
        return Err(bad("empty section or key"));
    }
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(section_table) = entry else {
        return Err(bad("that section is not a table"));
    };
    let value = if key == "key_file" {
        toml::Value::String(absolute(raw))
    } else {
        set_value(section_table.get(key), raw)
    };
    section_table.insert(key.to_string(), value);
    Ok(())
}

/// A path given on the command line is relative to the working directory, not the spec.
fn absolute(raw: &str) -> String {
    let path = Path::new(raw);
    if path.is_absolute() {
        return raw.to_string();
    }
    std::env::current_dir()
        .map(|d| d.join(path).display().to_string())
        .unwrap_or_else(|_| raw.to_string())
}

/// The TOML value for `raw`: a string where the field is a string (or the text is not a
/// number, boolean or array), otherwise the parsed value.
fn set_value(existing: Option<&toml::Value>, raw: &str) -> toml::Value {
    if matches!(existing, Some(toml::Value::String(_))) {
        return toml::Value::String(raw.to_string());
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"));
    match parsed {
        Some(v @ (toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Array(_))) => v,
        _ => toml::Value::String(raw.to_string()),
    }
}

/// The Terraform versions each Coder minor release accepts, `(coder minor, min, max)`:
/// `minTerraformVersion` and `maxTerraformVersion` in provisioner/terraform/install.go at
/// the release's tag. Below min (or missing) coderd downloads `TerraformVersion` from
/// releases.hashicorp.com, which fails offline; above max it only logs a warning.
/// - 2.35: min 1.1.0, max 1.14.9 — v2.35.x provisioner/terraform/install.go
///   (`minTerraformVersion = 1.1.0`, `maxTerraformVersion = 1.14.9`, the `var (` block at
///   the top of the file), as recorded in /work/shared/reference/coder-facts.md ("read from
///   Coder's source in December 2026"). The v2.35.3 tree itself could not be fetched on
///   this build host (snapshot over the size limit); re-read it at the tag when bumping.
///   The 1.15 seen elsewhere is the Docker image's Terraform, moved separately.
/// - 2.30: min 1.1.0, max 1.14.9 (TerraformVersion 1.14.5, coder/coder#22192).
///
/// Older copies of the same file read (index of coder/coder): TerraformVersion 1.10.5 with
/// max 1.10.9, later 1.11.4 with max 1.11.9 — the max is always TerraformVersion's minor
/// `.9`, the min always 1.1.0.
const KNOWN_TERRAFORM: &[(&str, &str, &str)] =
    &[("2.30", "1.1.0", "1.14.9"), ("2.35", "1.1.0", "1.14.9")];

/// The Terraform range a Coder version accepts, if known.
pub fn terraform_range(coder_version: &str) -> Option<VersionRange> {
    let coder: Version = coder_version.parse().ok()?;
    let minor = format!("{}.{}", coder.major, coder.minor);
    let (_, min, max) = KNOWN_TERRAFORM.iter().find(|(c, _, _)| *c == minor)?;
    Some(VersionRange {
        min: min.parse().ok()?,
        max: max.parse().ok()?,
    })
}

/// A warning when the pinned Coder/Terraform pair is outside what this table knows.
pub fn pair_warning(coder_version: &str, terraform_version: &str) -> Option<String> {
    let Some(range) = terraform_range(coder_version) else {
        return Some(format!(
            "coder {coder_version}: its Terraform range is not in this build's table; check minTerraformVersion and maxTerraformVersion in provisioner/terraform/install.go at tag v{coder_version} and pin a Terraform between them"
        ));
    };
    let VersionRange { min, max } = &range;
    match range.place(&terraform_version.parse().ok()?) {
        Place::Below => Some(format!(
            "terraform {terraform_version} is below {min}, the minimum coder {coder_version} accepts: offline, coderd would try to download its own Terraform and fail"
        )),
        Place::Above => Some(format!(
            "terraform {terraform_version} is above {max}, the maximum coder {coder_version} was tested with: coderd will log a warning at start (pin {min}..={max} to avoid it)"
        )),
        Place::Inside => None,
    }
}

/// Resolves a key from a file or URL: (bytes, where it came from).
pub async fn load_key(
    fetcher: &airgap_mirror::fetch::Fetcher,
    file: Option<&Path>,
    url: Option<&str>,
    what: &'static str,
) -> Result<(Vec<u8>, String), SyncError> {
    if let Some(file) = file {
        let bytes = std::fs::read(file).map_err(io_at(file))?;
        return Ok((bytes, file.display().to_string()));
    }
    let Some(url) = url else {
        return Err(SyncError::Missing {
            what,
            message: "no key_url or key_file configured".into(),
        });
    };
    let parsed = url::Url::parse(url).map_err(|e| SyncError::Missing {
        what,
        message: format!("key_url {url:?} is not a URL: {e}"),
    })?;
    let (bytes, _) = fetcher.get_bytes(&parsed).await?;
    Ok((bytes, url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../bundle/appliance.toml");
        std::fs::read_to_string(path).expect("bundle/appliance.toml")
    }

    #[test]
    fn shipped_spec_parses_and_pins_hashicorp() {
        let spec = ApplianceSpec::parse(&shipped(), Path::new("appliance.toml"), &[])
            .expect("shipped spec");
        assert_eq!(
            airgap_mirror::openpgp::normalize_fingerprint(&spec.terraform.key_fingerprint),
            "C874011F0AB405110D02105534365D9472D7468F"
        );
        assert_eq!(
            airgap_mirror::openpgp::normalize_fingerprint(HASHICORP_FINGERPRINT),
            "C874011F0AB405110D02105534365D9472D7468F"
        );
        assert!(pair_warning(&spec.coder.version, &spec.terraform.version).is_none());
        assert!(!spec.mirror.providers.is_empty());
        assert_eq!(
            airgap_mirror::openpgp::normalize_fingerprint(&spec.coder.key_fingerprint),
            "21C96B1CB950718874F64DBD6A5A671B5E40A3B9"
        );
        assert!(
            spec.coder.require_signature,
            "the shipped spec requires Coder's signature"
        );
        assert!(spec.coder.key_url.is_some() || spec.coder.key_file.is_some());
    }

    #[test]
    fn set_splits_at_the_first_dot_and_keeps_types() {
        let sets = [
            "registries.registry.terraform.io=http://127.0.0.1:9/.well-known/terraform.json"
                .to_string(),
            "bundle.expires_in_days=30".to_string(),
            "coder.version=2.30.1".to_string(),
            "terraform.key_fingerprint=AAAA".to_string(),
        ];
        let spec = ApplianceSpec::parse(&shipped(), Path::new("a.toml"), &sets).expect("spec");
        assert_eq!(
            spec.mirror.registries["registry.terraform.io"],
            "http://127.0.0.1:9/.well-known/terraform.json"
        );
        assert_eq!(spec.bundle.expires_in_days, 30);
        assert_eq!(spec.coder.version, "2.30.1");
        assert_eq!(spec.terraform.key_fingerprint, "AAAA");
    }

    #[test]
    fn coder_signature_is_required_by_default_with_coders_key() {
        // The shipped spec without its [coder] key lines: the defaults apply.
        let minimal: String = shipped()
            .lines()
            .filter(|l| !l.starts_with("key_url = \"https://keyserver"))
            .filter(|l| !l.starts_with("key_fingerprint = \"21C9"))
            .map(|l| format!("{l}\n"))
            .collect();
        let minimal = minimal.as_str();
        let spec = ApplianceSpec::parse(minimal, Path::new("a.toml"), &[]).expect("minimal spec");
        assert!(spec.coder.require_signature);
        assert_eq!(spec.coder.key_fingerprint, CODER_FINGERPRINT);
        let sets = ["coder.require_signature=false".to_string()];
        let spec = ApplianceSpec::parse(minimal, Path::new("a.toml"), &sets).expect("opt-out");
        assert!(!spec.coder.require_signature);
    }

    #[test]
    fn rejects_typos_and_bad_sets() {
        let typo = ["coder.verison=1".to_string()];
        assert!(ApplianceSpec::parse(&shipped(), Path::new("a"), &typo).is_err());
        let no_eq = ["coder.version".to_string()];
        assert!(ApplianceSpec::parse(&shipped(), Path::new("a"), &no_eq).is_err());
        let bad_url = ["postgres.base_url=ftp://x".to_string()];
        assert!(ApplianceSpec::parse(&shipped(), Path::new("a"), &bad_url).is_err());
    }

    #[test]
    fn pair_table_warns_outside_the_range() {
        assert!(pair_warning("2.30.1", "1.14.5").is_none());
        assert!(pair_warning("2.30.1", "1.15.0").is_some());
        assert!(pair_warning("2.30.1", "1.0.9").is_some());
        assert!(pair_warning("2.99.0", "1.14.5").is_some());
        // Corrected from provisioner/terraform/install.go at v2.35.x (max 1.14.9, not 1.15.9).
        assert_eq!(
            terraform_range("2.35.3").map(|r| (r.min.to_string(), r.max.to_string())),
            Some(("1.1.0".to_string(), "1.14.9".to_string()))
        );
        let above = pair_warning("2.35.3", "1.15.5").unwrap_or_default();
        assert!(
            above.contains("above 1.14.9") && above.contains("log a warning"),
            "{above}"
        );
        let below = pair_warning("2.35.3", "1.0.11").unwrap_or_default();
        assert!(
            below.contains("below 1.1.0") && below.contains("download"),
            "{below}"
        );
        assert!(pair_warning("2.35.3", "1.14.5").is_none());
    }
}
