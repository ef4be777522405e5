//! `coder-airgap doctor`: check the running appliance's air-gap posture and health, one
//! line per check with a fix.

use crate::out::outln;
use std::path::PathBuf;

use anyhow::Context;

use airgap_appliance::layout::Layout;

/// Check the running appliance's air-gap posture and health, with a fix for each problem.
///
/// One line per check: every row of the posture table (docs/posture.md) in coderd's live
/// environment — access URL set, TLS on, no routable plain-HTTP listener, telemetry off and
/// its URL dead-ended on loopback, update check off, GitHub default login off, AI Gateway
/// off unless opted in at install (then `warn`), no DERP map URL, DERP on, direct
/// connections blocked, STUN disabled, Terraform's checkpoint off, the CA trusted — and on
/// its command line the GitHub external-auth default off (its env form must be absent);
/// no proxy pointing outside; the Terraform on coderd's PATH is the bundled one, inside
/// the range coderd accepts (above its maximum: `warn`, coderd only logs; below its
/// minimum: FAIL, coderd would download); the terraformrc has no `direct` fallback; both
/// listeners' certificates chain to the CA for their names and stay valid at least 14
/// days; the mirror answers for every provider in the bundle; PostgreSQL answers; free
/// disk under ROOT.
///
/// Exit status: 0 when every check passes (warnings included), 1 otherwise. --json prints
/// an array of {name, ok, warning (only when true), detail, fix} for monitoring. Run as
/// root or as the service user.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The appliance root.
    #[arg(long, value_name = "ROOT")]
    root: PathBuf,
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `coder-airgap doctor`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let root = std::path::absolute(&args.root).context("--root")?;
    let layout = Layout::new(root);
    let checks = airgap_appliance::runtime::block_on(airgap_appliance::doctor::run_all(&layout))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&checks)?)?;
    } else {
        for check in &checks {
            outln!("{}", check.line())?;
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} checks failed", checks.len());
    }
    Ok(())
}
