//! A signed appliance bundle for the install/up tests and the demo: the stand-in coder,
//! a Terraform binary, Debian's PostgreSQL tree (relocatable copy) and a small provider
//! mirror from the stand-in registry, staged by the real `coder-airgap sync` from local
//! files, then packed and signed with a key made here.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::registry::{ProviderFixture, Registry};
use crate::tools;

/// The providers every test bundle carries (all linux_amd64).
pub const PROVIDERS: [(&str, &str, &str); 1] = [("coder", "coder", "2.1.0")];

/// The page every test bundle carries as `docs/index.html`.
pub const DOCS_PAGE: &str = "<html><body>Coder docs (stand-in)</body></html>\n";

/// One bundle to make.
#[derive(Debug, Clone)]
pub struct BundleSpec<'a> {
    /// The bundle version (the release directory is `VERSION-SEQUENCE`).
    pub version: &'a str,
    /// The anti-rollback sequence.
    pub sequence: u64,
    /// The program shipped as `bin/coder`.
    pub coder: &'a Path,
    /// The program shipped as `bin/terraform`.
    pub terraform: &'a Path,
}

/// Where the signing keys and bundles live.
#[derive(Debug, Clone)]
pub struct BundleKit {
    /// The coder-airgap binary.
    pub airgap: PathBuf,
    /// Working directory (keys, stages, bundles).
    pub work: PathBuf,
}

impl BundleKit {
    /// The public key bundles are signed with.
    pub fn pubkey(&self) -> PathBuf {
        self.work.join("keys").join("bundle.pub")
    }

    /// Makes (once per spec) `work/appliance-VERSION-SEQUENCE.tar.gz` and returns its path.
    pub fn bundle(&self, spec: &BundleSpec) -> Result<PathBuf, String> {
        let name = format!("appliance-{}-{}", spec.version, spec.sequence);
        let out = self.work.join(format!("{name}.tar.gz"));
        if out.exists() {
            return Ok(out);
        }
        self.keygen()?;
        let registry = Registry::start(&provider_fixtures(), None).map_err(|e| e.to_string())?;
        let spec_file = self.work.join(format!("{name}.toml"));
        std::fs::write(&spec_file, spec_text(spec, &registry.discovery_url()))
            .map_err(|e| e.to_string())?;
        let stage = self.stage(spec);
        run(self
            .cmd()
            .args(["sync", "--spec"])
            .arg(&spec_file)
            .arg("--out")
            .arg(&stage)
            .arg("--coder-from")
            .arg(spec.coder)
            .arg("--terraform-from")
            .arg(spec.terraform)
            .arg("--postgres-from")
            .arg(tools::postgres_tree()))?;
        // Coder's offline docs stand in as one page (the spec's docs come from upstream only).
        std::fs::create_dir_all(stage.join("docs")).map_err(|e| e.to_string())?;
        std::fs::write(stage.join("docs/index.html"), DOCS_PAGE).map_err(|e| e.to_string())?;
        run(self
            .cmd()
            .arg("pack")
            .arg(&stage)
            .arg("--key")
            .arg(self.secret_key())
            .arg("--out")
            .arg(&out))?;
        Ok(out)
    }

    /// The stage directory [`Self::bundle`] synced for `spec` (kept for repacking).
    pub fn stage(&self, spec: &BundleSpec) -> PathBuf {
        self.work.join(format!(
            "appliance-{}-{}.stage",
            spec.version, spec.sequence
        ))
    }

    /// The secret key bundles are signed with (unencrypted).
    pub fn secret_key(&self) -> PathBuf {
        self.work.join("keys").join("bundle.key")
    }

    fn keygen(&self) -> Result<(), String> {
        if self.pubkey().exists() {
            return Ok(());
        }
        run(self
            .cmd()
            .args(["keygen", "--unencrypted", "--out"])
            .arg(self.work.join("keys")))
    }

    fn cmd(&self) -> Command {
        tools::clean_command(&self.airgap)
    }
}

/// The stand-in registry's providers for [`PROVIDERS`].
pub fn provider_fixtures() -> Vec<ProviderFixture> {
    PROVIDERS
        .iter()
        .map(|(ns, name, v)| ProviderFixture::new(ns, name, &[v], &["linux_amd64"]))
        .collect()
}

fn spec_text(spec: &BundleSpec, discovery: &str) -> String {
    // Upstream URLs for coder, Terraform and Postgres are never used: all three come from
    // local files (--*-from). They point at a closed port so a mistake fails loudly.
    let providers: String = PROVIDERS
        .iter()
        .map(|(ns, name, v)| {
            format!("[[providers]]\nsource = \"{ns}/{name}\"\nversions = \"= {v}\"\nplatforms = [\"linux_amd64\"]\n\n")
        })
        .collect();
    format!(
        r#"[bundle]
name = "test-appliance"
version = "{version}"
sequence = {sequence}
expires_in_days = 30
platforms = ["linux_amd64"]

[coder]
version = "2.35.3"
base_url = "http://127.0.0.1:9/coder"

[terraform]
version = "1.15.5"
base_url = "http://127.0.0.1:9/hashicorp"
key_url = "http://127.0.0.1:9/hashicorp.asc"

[postgres]
version = "15.18.0"
base_url = "http://127.0.0.1:9/postgres"

{providers}[registries]
"registry.terraform.io" = "{discovery}"
"#,
        version = spec.version,
        sequence = spec.sequence,
    )
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The stand-in `coder` binary, built by cargo beside the test executable (built on demand
/// when a single test target was asked for).
pub fn standin_coder() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or("no target directory")?;
    let bin = profile_dir.join("coder-standin");
    if !bin.exists() {
        run(Command::new(env!("CARGO"))
            .args(["build", "-p", "airgap-testkit", "--bin", "coder-standin"])
            .current_dir(env!("CARGO_MANIFEST_DIR")))?;
    }
    Ok(bin)
}
