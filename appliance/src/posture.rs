//! The air-gap posture of `coder server`: ONE table of every setting that keeps coderd (and
//! the Terraform it starts) from reaching the internet. The env-file writer
//! ([`super::env::coderd_env`]), `doctor` (which checks each row in the live process) and
//! `status` (which prints each row's live value) all read [`POSTURE`]; nothing else spells
//! these names or values. docs/posture.md explains each row for operators.
//!
//! Sources: the pinned release is Coder v2.35.3 (bundle/appliance.toml). Its tree could not
//! be read from this build host (the coder/coder snapshot is 641 MB, over the 500 MB fetch
//! limit, and the source index holds older files), so each `source` names the file and
//! identifier to re-read at the tag, the copy actually read (index commit) and
//! /work/shared/reference/coder-facts.md ("read from Coder's source in December 2026").
//! `scripts/gen-coder-vars` re-checks every name below against a checkout of the tag.

/// What the writer puts in the env file for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// The same on every appliance.
    Fixed(&'static str),
    /// Computed per site by the writer.
    Site(Site),
}

/// The per-site values of the posture (the writer computes each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// `https://HOST[:PORT]` from `install --access-url`.
    AccessUrl,
    /// `false`; `true` only with `install --ai-gateway`.
    AiGateway,
    /// `ROOT/etc/terraformrc` (the appliance mirror, no `direct`).
    TerraformRc,
    /// `ROOT/etc/ca-bundle.pem`.
    CaBundle,
}

/// How `doctor` judges the live value (`None`: the variable is not set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this value.
    Equals(&'static str),
    /// Set and not empty.
    NonEmpty,
    /// Unset or empty (an empty value and coder's default are both "off").
    EmptyOrUnset,
    /// Empty (no listener, with serpent ≥ v0.15) or a loopback `host:port` (older serpent
    /// reads empty as unset, and the default is 127.0.0.1:3000): never a routable address.
    EmptyOrLoopback,
    /// `false` unless the operator opted in at install (the env file says `true`); doctor
    /// warns when it is on.
    OffUnlessOptedIn,
    /// Not checked by value (shown by `status`, checked by a dedicated doctor check).
    Shown,
}

/// One row of the posture.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The environment variable coderd reads.
    pub var: &'static str,
    /// What install writes.
    pub value: Value,
    /// How doctor checks it.
    pub expect: Expect,
    /// The stable doctor check name (`posture-…`).
    pub check: &'static str,
    /// Why it matters, in one line.
    pub why: &'static str,
    /// Where Coder defines it (file, identifier, the copy read).
    pub source: &'static str,
}

/// A setting passed on coderd's command line, because its environment form is unsafe.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The whole argument, as `up` passes it after `server`.
    pub arg: &'static str,
    /// The environment form that must NOT be set.
    pub forbidden_env: &'static str,
    /// The stable doctor check name.
    pub check: &'static str,
    /// Why.
    pub why: &'static str,
    /// Where Coder defines it.
    pub source: &'static str,
}

/// Every environment variable of the posture, in the order the env file lists them.
pub const POSTURE: &[Setting] = &[
    Setting {
        var: "CODER_ACCESS_URL",
        value: Value::Site(Site::AccessUrl),
        expect: Expect::NonEmpty,
        check: "posture-access-url",
        why: "empty makes coderd open a public tunnel (*.try.coder.app)",
        source: "codersdk/deployment.go option Env CODER_ACCESS_URL; cli/server.go (empty access URL → devtunnel); coder-facts.md",
    },
    Setting {
        var: "CODER_TLS_ENABLE",
        value: Value::Fixed("true"),
        expect: Expect::Equals("true"),
        check: "posture-tls",
        why: "coderd serves HTTPS with the appliance CA's certificate",
        source: "codersdk/deployment.go option Env CODER_TLS_ENABLE (default false); coder-facts.md",
    },
    Setting {
        var: "CODER_HTTP_ADDRESS",
        value: Value::Fixed(""),
        expect: Expect::EmptyOrLoopback,
        check: "posture-http",
        why: "no plain-HTTP listener (serpent ≥ v0.15 reads empty as off; older serpent as the default 127.0.0.1:3000, loopback only)",
        source: "codersdk/deployment.go option Env CODER_HTTP_ADDRESS Default 127.0.0.1:3000; go.mod github.com/coder/serpent (empty = disabled from v0.15); coder-facts.md",
    },
    Setting {
        var: "CODER_TELEMETRY_ENABLE",
        value: Value::Fixed("false"),
        expect: Expect::Equals("false"),
        check: "posture-telemetry",
        why: "no usage reports to telemetry.coder.com",
        source: "codersdk/deployment.go option Env CODER_TELEMETRY_ENABLE Default !test (index commit 000466f5 and later); coder-facts.md",
    },
    Setting {
        var: "CODER_TELEMETRY_URL",
        value: Value::Fixed("http://127.0.0.1:1"),
        expect: Expect::Equals("http://127.0.0.1:1"),
        check: "posture-telemetry-url",
        why: "the one status report coderd still sends when the database once recorded telemetry as enabled goes to a loopback port nothing listens on",
        source: "codersdk/deployment.go option Env CODER_TELEMETRY_URL Hidden Default https://telemetry.coder.com (index copy of deployment.go, id 1222414633); coderd/telemetry/telemetry.go",
    },
    Setting {
        var: "CODER_UPDATE_CHECK",
        value: Value::Fixed("false"),
        expect: Expect::Equals("false"),
        check: "posture-update-check",
        why: "no release check against api.github.com",
        source: "codersdk/deployment.go option Env CODER_UPDATE_CHECK (true in release builds); coder-facts.md",
    },
    Setting {
        var: "CODER_OAUTH2_GITHUB_DEFAULT_PROVIDER_ENABLE",
        value: Value::Fixed("false"),
        expect: Expect::Equals("false"),
        check: "posture-github-login",
        why: "the default GitHub login uses a device flow to github.com",
        source: "codersdk/deployment.go option Env CODER_OAUTH2_GITHUB_DEFAULT_PROVIDER_ENABLE Default true; coder-facts.md",
    },
    Setting {
        var: "CODER_AI_GATEWAY_ENABLED",
        value: Value::Site(Site::AiGateway),
        expect: Expect::OffUnlessOptedIn,
        check: "posture-ai-gateway",
        why: "the in-memory AI Gateway starts on every deployment since 2.34 and talks to AI providers",
        source: "codersdk/deployment.go option Env CODER_AI_GATEWAY_ENABLED (renamed from CODER_AIBRIDGE_ENABLED, default true since v2.34: docs/ai-coder/ai-gateway upgrade notes); coder-facts.md",
    },
    Setting {
        var: "CODER_DERP_CONFIG_URL",
        value: Value::Fixed(""),
        expect: Expect::EmptyOrUnset,
        check: "posture-derp-config-url",
        why: "a DERP map URL would make coderd fetch relays from outside",
        source: "codersdk/deployment.go option Env CODER_DERP_CONFIG_URL (DERP.Config.URL, default empty)",
    },
    Setting {
        var: "CODER_DERP_SERVER_ENABLE",
        value: Value::Fixed("true"),
        expect: Expect::Equals("true"),
        check: "posture-derp",
        why: "the built-in relay carries every workspace connection",
        source: "codersdk/deployment.go option Env CODER_DERP_SERVER_ENABLE Default true; coder-facts.md",
    },
    Setting {
        var: "CODER_BLOCK_DIRECT",
        value: Value::Fixed("true"),
        expect: Expect::Equals("true"),
        check: "posture-block-direct",
        why: "every connection goes through the relay, none needs NAT traversal",
        source: "codersdk/deployment.go option Env CODER_BLOCK_DIRECT Default false; coder-facts.md",
    },
    Setting {
        var: "CODER_DERP_SERVER_STUN_ADDRESSES",
        value: Value::Fixed("disable"),
        expect: Expect::Equals("disable"),
        check: "posture-stun",
        why: "the default is Google's public STUN servers",
        source: "codersdk/deployment.go option Env CODER_DERP_SERVER_STUN_ADDRESSES (\"disable\" turns STUN off); coder-facts.md",
    },
    Setting {
        var: "TF_CLI_CONFIG_FILE",
        value: Value::Site(Site::TerraformRc),
        expect: Expect::Shown,
        check: "terraformrc-no-direct",
        why: "Terraform installs providers from the appliance mirror only",
        source: "provisioner/terraform/executor.go basicEnv: safeEnviron() keeps every non-CODER_ variable and appends TF_CLI_CONFIG_FILE only when its own cliConfigPath is set (left unset here; index copy id 1223684030)",
    },
    Setting {
        var: "CHECKPOINT_DISABLE",
        value: Value::Fixed("1"),
        expect: Expect::Equals("1"),
        check: "posture-checkpoint",
        why: "Terraform's version check to checkpoint-api.hashicorp.com",
        source: "provisioner/terraform/safeenv.go (non-CODER_ variables reach terraform); terraform-facts.md",
    },
    Setting {
        var: "SSL_CERT_FILE",
        value: Value::Site(Site::CaBundle),
        expect: Expect::NonEmpty,
        check: "posture-ca",
        why: "coderd's health check calls its own access URL, so it must trust the appliance CA",
        source: "coder-facts.md (coder/coder#17979)",
    },
];

/// Settings passed as flags after `coder server`.
pub const FLAGS: &[Flag] = &[Flag {
    arg: "--external-auth-github-default-provider-enable=false",
    forbidden_env: "CODER_EXTERNAL_AUTH_GITHUB_DEFAULT_PROVIDER_ENABLE",
    check: "posture-github-external-auth",
    why: "the default GitHub external-auth provider uses a device flow to github.com; its env form is read by ReadExternalAuthProvidersFromEnv as provider number `GITHUB…` and stops start-up with `parse number: GITHUB_DEFAULT_PROVIDER_ENABLE`",
    source: "codersdk/deployment.go option Flag external-auth-github-default-provider-enable Default true; cli/server.go parseExternalAuthProvidersFromEnv: strconv.Atoi(first token) → `parse number: %s` (index copy id 1217499502)",
}];

/// The arguments `up` passes after `server`.
pub fn server_args() -> impl Iterator<Item = &'static str> {
    FLAGS.iter().map(|f| f.arg)
}

/// The row for `var`, if it is part of the posture.
#[cfg(test)]
pub fn setting(var: &str) -> Option<&'static Setting> {
    POSTURE.iter().find(|s| s.var == var)
}

/// The outcome of checking one live value against its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Holds.
    Pass,
    /// Holds only because the operator asked for it (e.g. AI Gateway opted in).
    Warn(String),
    /// Broken: the reason.
    Fail(String),
}

impl Setting {
    /// Judges `live` (the running process's value) against this row; `written` is what the
    /// env file says (for opt-in rows).
    pub fn judge(&self, live: Option<&str>, written: Option<&str>) -> Verdict {
        let fail = |why: &str| Verdict::Fail(why.to_string());
        match self.expect {
            Expect::Equals(want) if live == Some(want) => Verdict::Pass,
            Expect::Equals(want) => fail(&format!("should be {want:?}")),
            Expect::NonEmpty if live.is_some_and(|v| !v.is_empty()) => Verdict::Pass,
            Expect::NonEmpty => fail("must be set"),
            Expect::EmptyOrUnset if live.unwrap_or("").is_empty() => Verdict::Pass,
            Expect::EmptyOrUnset => fail("must be empty"),
            Expect::EmptyOrLoopback => match live {
                None | Some("") => Verdict::Pass,
                Some(addr) if is_loopback_bind(addr) => Verdict::Pass,
                Some(_) => fail("must be empty or a loopback address"),
            },
            Expect::OffUnlessOptedIn => match live {
                Some("false") => Verdict::Pass,
                Some("true") if written == Some("true") => {
                    Verdict::Warn("on: the operator opted in at install (--ai-gateway)".to_string())
                }
                _ => fail("should be \"false\" (re-install with --ai-gateway to opt in)"),
            },
            Expect::Shown => Verdict::Pass,
        }
    }
}

/// `127.x.y.z:PORT`, `[::1]:PORT` or `localhost:PORT`.
fn is_loopback_bind(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_checks_are_named() {
        let mut vars: Vec<&str> = POSTURE.iter().map(|s| s.var).collect();
        vars.sort_unstable();
        vars.dedup();
        assert_eq!(vars.len(), POSTURE.len());
        for s in POSTURE {
            assert!(!s.why.is_empty() && !s.source.is_empty(), "{}", s.var);
            assert!(s.check.starts_with("posture-") || s.check == "terraformrc-no-direct");
        }
        for f in FLAGS {
            assert!(setting(f.forbidden_env).is_none(), "{}", f.forbidden_env);
            assert!(f.arg.starts_with("--") && f.arg.ends_with("=false"));
        }
    }

    #[test]
    fn verdicts_follow_the_expectation() {
        let get = |v: &str| setting(v).expect(v);
        assert_eq!(
            get("CODER_TELEMETRY_ENABLE").judge(Some("false"), None),
            Verdict::Pass
        );
        assert!(matches!(
            get("CODER_TELEMETRY_ENABLE").judge(None, None),
            Verdict::Fail(_)
        ));
        let http = get("CODER_HTTP_ADDRESS");
        assert_eq!(http.judge(Some(""), None), Verdict::Pass);
        assert_eq!(http.judge(Some("127.0.0.1:3000"), None), Verdict::Pass);
        assert_eq!(http.judge(Some("[::1]:3000"), None), Verdict::Pass);
        assert!(matches!(
            http.judge(Some("0.0.0.0:3000"), None),
            Verdict::Fail(_)
        ));
        let derp = get("CODER_DERP_CONFIG_URL");
        assert_eq!(derp.judge(None, None), Verdict::Pass);
        assert!(matches!(
            derp.judge(
                Some("https://controlplane.tailscale.com/derpmap/default"),
                None
            ),
            Verdict::Fail(_)
        ));
        let ai = get("CODER_AI_GATEWAY_ENABLED");
        assert_eq!(ai.judge(Some("false"), Some("false")), Verdict::Pass);
        assert!(matches!(
            ai.judge(Some("true"), Some("true")),
            Verdict::Warn(_)
        ));
        assert!(matches!(
            ai.judge(Some("true"), Some("false")),
            Verdict::Fail(_)
        ));
        assert!(
            matches!(ai.judge(None, None), Verdict::Fail(_)),
            "unset = coder's default on"
        );
    }
}
