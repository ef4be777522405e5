//! `doctor`: every property the air gap depends on, checked on the running appliance and
//! explained in one line with a fix. The checks read what is actually in effect — coderd's
//! process environment, the certificates the listeners serve, the mirror's answers — not
//! what install meant to write.

mod checks;

use serde::Serialize;

pub use checks::run_all;

/// One check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable name (`posture-telemetry`), for monitoring and the operator's guide.
    pub name: &'static str,
    /// True when the property holds (warnings hold, too).
    pub ok: bool,
    /// True when it holds but deserves the operator's attention (printed `warn`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
    /// What was found.
    pub detail: String,
    /// What to do when it does not hold (empty when ok).
    pub fix: String,
}

impl Check {
    /// A passing check.
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: true,
            warning: false,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    /// A check that holds with a warning (the exit status stays 0).
    pub fn warn(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            warning: true,
            ..Check::pass(name, detail)
        }
    }

    /// A failing check with its fix.
    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            ok: false,
            warning: false,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    /// Passes when `ok`, else fails with `fix`.
    pub fn verdict(name: &'static str, ok: bool, detail: String, fix: &str) -> Check {
        if ok {
            Check::pass(name, detail)
        } else {
            Check::fail(name, detail, fix)
        }
    }

    /// The human line: `ok   NAME  detail`, `warn NAME  detail` or `FAIL NAME  detail — fix: …`.
    pub fn line(&self) -> String {
        if self.ok && self.warning {
            format!("warn {:<22} {}", self.name, self.detail)
        } else if self.ok {
            format!("ok   {:<22} {}", self.name, self.detail)
        } else {
            format!("FAIL {:<22} {} — fix: {}", self.name, self.detail, self.fix)
        }
    }
}
