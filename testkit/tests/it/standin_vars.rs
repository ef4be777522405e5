//! The stand-in follows the pinned Coder: it refuses any `CODER_*` variable that coder
//! v2.35.3 does not define (testkit/data/coder-vars-v2.35.3.txt) and the env form of the
//! external-auth GitHub default, which coder's env reader takes for a provider number.

use std::process::{Command, Output};

use airgap_testkit::tools::clean_command;

const STANDIN: &str = env!("CARGO_BIN_EXE_coder-standin");

/// `coder server` with the settings that get it past configuration (it then fails later,
/// at the unreachable database or the missing terraform, with other messages).
fn server() -> Command {
    let mut cmd = clean_command(STANDIN);
    cmd.arg("server")
        .env("CODER_ACCESS_URL", "https://localhost:1")
        .env("CODER_PG_CONNECTION_URL", "postgres://x@127.0.0.1:1/x")
        .env("CODER_HTTP_ADDRESS", "127.0.0.1:0")
        .env("PATH", "/nonexistent");
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_misspelt_coder_variable_stops_the_server() {
    let out = server()
        .env("CODER_TELEMETRY_ENABLED", "false")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unknown CODER_* variable"), "{err}");
    assert!(err.contains("CODER_TELEMETRY_ENABLED"), "{err}");
    assert!(err.contains("coder-vars-v2.35.3.txt"), "{err}");
}

#[test]
fn the_env_form_of_the_external_auth_default_fails_like_coder() {
    let out = server()
        .env(
            "CODER_EXTERNAL_AUTH_GITHUB_DEFAULT_PROVIDER_ENABLE",
            "false",
        )
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("parse number: GITHUB_DEFAULT_PROVIDER_ENABLE"),
        "{err}"
    );
}

#[test]
fn every_variable_the_appliance_writes_is_known_and_the_flag_form_is_accepted() {
    let mut cmd = server();
    cmd.arg("--external-auth-github-default-provider-enable=false");
    // The posture install writes (names from src/appliance/posture.rs), all accepted.
    for (k, v) in [
        ("CODER_TLS_ENABLE", "false"),
        ("CODER_TELEMETRY_ENABLE", "false"),
        ("CODER_TELEMETRY_URL", "http://127.0.0.1:1"),
        ("CODER_UPDATE_CHECK", "false"),
        ("CODER_OAUTH2_GITHUB_DEFAULT_PROVIDER_ENABLE", "false"),
        ("CODER_AI_GATEWAY_ENABLED", "false"),
        ("CODER_DERP_CONFIG_URL", ""),
        ("CODER_DERP_SERVER_ENABLE", "true"),
        ("CODER_BLOCK_DIRECT", "true"),
        ("CODER_DERP_SERVER_STUN_ADDRESSES", "disable"),
        (
            "CODER_CACHE_DIRECTORY",
            "/tmp/coder-standin-vars-test-cache",
        ),
        ("CODER_STANDIN_VERSION", "v2.35.3-standin+0000000"),
    ] {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    let err = stderr(&out);
    // Past configuration: it stops only at the missing terraform.
    assert!(!out.status.success());
    assert!(err.contains("releases.hashicorp.com"), "{err}");
    assert!(!err.contains("unknown CODER_"), "{err}");
    assert!(err.contains("default GitHub provider disabled"), "{err}");
    let _ = std::fs::remove_dir_all("/tmp/coder-standin-vars-test-cache");
}
