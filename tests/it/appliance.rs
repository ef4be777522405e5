//! `install` + `up` with the stand-in coder: health over TLS through curl with the CA,
//! the embedded Postgres through psql, the whole posture in coderd's environment, crash
//! restarts, upgrade with backup, rollback, external Postgres and certificate renewal.
//! Every test runs as root (install creates the service user; Postgres runs as it).

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use airgap_testkit::pgcluster::PgCluster;
use support::appliance::{bundle, signal, wait_for, Site};
use support::{fails, ok};

const HEALTHY_WITHIN: Duration = Duration::from_secs(90);

fn pid(site: &Site, component: &str) -> Option<u64> {
    site.state()[component]["pid"].as_u64()
}

fn count(site: &Site, sql: &str) -> i64 {
    site.psql(sql).parse().expect("a number")
}

#[test]
fn up_serves_coderd_with_the_posture_and_restarts_what_dies() {
    let mut site = Site::new();
    let (v1, key) = bundle("1.0.0", 1);
    ok(&mut site.install(&v1, &key));
    site.start_up();
    site.wait_healthy(HEALTHY_WITHIN);

    let info = site.curl(site.coderd_port, "/api/v2/buildinfo");
    assert!(info.status.success());
    assert!(count(&site, "SELECT count(*) FROM standin_boots") >= 1);
    assert_eq!(
        count(&site, "SELECT count(*) FROM coder_airgap.installs"),
        1
    );
    let purposes = site
        .psql("SELECT string_agg(purpose, ',' ORDER BY purpose) FROM coder_airgap.certificates");
    assert_eq!(purposes, "coderd-tls,mirror-tls");

    let env = site.curl(site.coderd_port, "/api/v2/standin/env");
    let env: serde_json::Value = serde_json::from_slice(&env.stdout).expect("env json");
    let root = site.root.display().to_string();
    for (key, want) in [
        ("CODER_ACCESS_URL", site.access_url()),
        ("CODER_TLS_ENABLE", "true".into()),
        ("CODER_TELEMETRY_ENABLE", "false".into()),
        ("CODER_UPDATE_CHECK", "false".into()),
        ("CODER_DERP_SERVER_ENABLE", "true".into()),
        ("CODER_BLOCK_DIRECT", "true".into()),
        ("CODER_DERP_SERVER_STUN_ADDRESSES", "disable".into()),
        ("CODER_HTTP_ADDRESS", String::new()),
        ("CHECKPOINT_DISABLE", "1".into()),
        ("TF_CLI_CONFIG_FILE", format!("{root}/etc/terraformrc")),
        ("SSL_CERT_FILE", format!("{root}/etc/ca-bundle.pem")),
        ("CODER_CACHE_DIRECTORY", format!("{root}/data/coder-cache")),
    ] {
        assert_eq!(env[key].as_str(), Some(want.as_str()), "{key} in {env}");
    }
    let path = env["PATH"].as_str().expect("PATH");
    assert!(path.starts_with(&format!("{root}/current/bin:")), "{path}");

    // The mirror serves the CA bundle for workspace images.
    let ca = site.curl(site.mirror_port, "/ca.pem");
    let bundle_pem = std::fs::read(site.root.join("etc/ca-bundle.pem")).expect("bundle");
    assert_eq!(ca.stdout, bundle_pem);

    // The bundled docs, where CODER_DOCS_URL points.
    let docs_url = format!("https://localhost:{}/docs/", site.mirror_port);
    assert_eq!(env["CODER_DOCS_URL"].as_str(), Some(docs_url.as_str()));
    let page = site.curl(site.mirror_port, "/docs/index.html");
    assert_eq!(
        String::from_utf8_lossy(&page.stdout),
        airgap_testkit::appliance::DOCS_PAGE
    );

    let status = ok(site
        .airgap()
        .args(["status", "--json", "--root"])
        .arg(&site.root));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(
        status["posture"]["CODER_TELEMETRY_ENABLE"], "false",
        "{status}"
    );
    assert_eq!(status["mirror_health"]["ok"], true, "{status}");

    // coderd killed: restarted, a new boot row, the old ones intact.
    let boots = count(&site, "SELECT count(*) FROM standin_boots");
    let coderd = pid(&site, "coderd").expect("coderd pid");
    signal(u32::try_from(coderd).expect("pid"), "KILL");
    wait_for("a new coderd", Duration::from_secs(60), || {
        pid(&site, "coderd").filter(|p| *p != coderd)
    });
    site.wait_healthy(HEALTHY_WITHIN);
    assert!(count(&site, "SELECT count(*) FROM standin_boots") > boots);

    // Postgres killed: restarted from the same data directory, coderd back, rows intact.
    let boots = count(&site, "SELECT count(*) FROM standin_boots");
    let postgres = pid(&site, "postgres").expect("postgres pid");
    signal(u32::try_from(postgres).expect("pid"), "KILL");
    wait_for("a new postmaster", Duration::from_secs(60), || {
        pid(&site, "postgres").filter(|p| *p != postgres)
    });
    site.wait_healthy(HEALTHY_WITHIN);
    wait_for("the boot rows", Duration::from_secs(30), || {
        (count(&site, "SELECT count(*) FROM standin_boots") >= boots).then_some(())
    });

    // doctor: all green, then red for a posture edited behind install's back.
    let report = ok(site.airgap().args(["doctor", "--root"]).arg(&site.root));
    let report = String::from_utf8_lossy(&report.stdout).into_owned();
    assert!(
        report.contains("ok   posture-telemetry") && !report.contains("FAIL"),
        "{report}"
    );
    let env_file = site.root.join("etc/coderd.env");
    let env = std::fs::read_to_string(&env_file).expect("env");
    let edited = env.replace(
        "CODER_TELEMETRY_ENABLE=\"false\"",
        "CODER_TELEMETRY_ENABLE=\"true\"",
    );
    std::fs::write(&env_file, edited).expect("edit env");
    let rc = site.root.join("etc/terraformrc");
    let mut text = std::fs::read_to_string(&rc).expect("rc");
    text = text.replace(
        "provider_installation {",
        "provider_installation {\n  direct {}",
    );
    std::fs::write(&rc, text).expect("edit rc");
    let coderd = pid(&site, "coderd").expect("coderd pid");
    signal(
        u32::try_from(site.state()["up_pid"].as_u64().expect("up pid")).expect("pid"),
        "HUP",
    );
    wait_for(
        "coderd restarted by SIGHUP",
        Duration::from_secs(60),
        || pid(&site, "coderd").filter(|p| *p != coderd),
    );
    site.wait_healthy(HEALTHY_WITHIN);
    let out = site
        .airgap()
        .args(["doctor", "--json", "--root"])
        .arg(&site.root)
        .output()
        .expect("doctor");
    assert!(!out.status.success(), "doctor passed a broken posture");
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor json");
    let failed: Vec<&str> = checks
        .as_array()
        .expect("array")
        .iter()
        .filter(|c| c["ok"] == false)
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        failed,
        ["posture-telemetry", "terraformrc-no-direct"],
        "{checks}"
    );
    std::fs::write(&env_file, env).expect("restore env");

    assert!(site.stop_up().success(), "up did not exit 0 on SIGTERM");
    assert!(
        !site.root.join("data/postgres/postmaster.pid").exists(),
        "Postgres left running"
    );
    let out = site
        .airgap()
        .args(["status", "--root"])
        .arg(&site.root)
        .output()
        .expect("status");
    assert!(!out.status.success(), "status says healthy after stop");
}

#[test]
fn upgrade_keeps_data_leaves_a_backup_and_rollback_restores_it() {
    let mut site = Site::new();
    let (v1, key) = bundle("1.0.0", 1);
    let (v2, _) = bundle("1.1.0", 2);
    ok(&mut site.install(&v1, &key));
    site.start_up();
    site.wait_healthy(HEALTHY_WITHIN);
    site.psql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)");

    let out = ok(&mut site.install(&v2, &key));
    assert!(String::from_utf8_lossy(&out.stdout).contains("told the running appliance"));
    let backups: Vec<_> = std::fs::read_dir(site.root.join("backups"))
        .expect("backups")
        .collect();
    assert_eq!(backups.len(), 1, "one pre-upgrade backup");
    wait_for("up to run 1.1.0-2", Duration::from_secs(60), || {
        (site.state()["release"] == "1.1.0-2").then_some(())
    });
    site.wait_healthy(HEALTHY_WITHIN);
    assert_eq!(count(&site, "SELECT count(*) FROM kept"), 1, "data kept");
    let upgrade = site.psql(
        "SELECT u.outcome || ' ' || (b.path IS NOT NULL) FROM coder_airgap.upgrades u \
         LEFT JOIN coder_airgap.backups b ON b.id = u.backup_id",
    );
    assert_eq!(upgrade, "succeeded true");
    site.psql("CREATE TABLE made_by_new_release (y int)");

    let err = fails(site.airgap().args(["rollback", "--root"]).arg(&site.root));
    assert!(err.contains("the appliance is running"), "{err}");
    assert!(site.stop_up().success());

    let out = ok(site.airgap().args(["rollback", "--root"]).arg(&site.root));
    assert!(String::from_utf8_lossy(&out.stdout).contains("restored the database"));
    assert_eq!(site.current(), "1.0.0-1");
    site.start_up();
    site.wait_healthy(HEALTHY_WITHIN);
    assert_eq!(count(&site, "SELECT count(*) FROM kept"), 1);
    assert_eq!(
        site.psql("SELECT to_regclass('made_by_new_release') IS NULL"),
        "t"
    );
}

#[test]
fn external_postgres_and_certificate_renewal() {
    let mut site = Site::new();
    let (v1, key) = bundle("1.0.0", 1);
    let cluster_dir = site.dir.path().join("external");
    std::fs::create_dir(&cluster_dir).expect("mkdir");
    let cluster = PgCluster::start(&cluster_dir).expect("external cluster");
    cluster
        .psql("postgres", "CREATE ROLE ext LOGIN PASSWORD 'ext-pw'")
        .expect("role");
    cluster
        .psql("postgres", "CREATE DATABASE extdb OWNER ext")
        .expect("db");
    let url = format!(
        "postgres://ext:ext-pw@127.0.0.1:{}/extdb?sslmode=disable",
        cluster.port()
    );
    // Leaves of 10 days are inside the 30-day renewal window: up renews them at start.
    ok(site
        .install(&v1, &key)
        .env("CODER_AIRGAP_POSTGRES_URL", &url)
        .args(["--cert-days", "10"]));
    let env = std::fs::read_to_string(site.root.join("etc/coderd.env")).expect("env");
    assert!(env.contains(&url), "coderd.env uses the external URL");
    assert!(
        !site.root.join("data/postgres").exists(),
        "no embedded cluster"
    );
    let cert = site.root.join("etc/tls/coderd.crt");
    let lasts_30_days = |path: &std::path::Path| {
        support::tools::clean_command("openssl")
            .args(["x509", "-noout", "-checkend", "2592000", "-in"])
            .arg(path)
            .status()
            .expect("openssl")
            .success()
    };
    assert!(!lasts_30_days(&cert));

    // systemd's readiness protocol: a datagram socket named by NOTIFY_SOCKET.
    let notify_path = site.dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    notify
        .set_read_timeout(Some(HEALTHY_WITHIN))
        .expect("timeout");
    site.start_up_with(&[("NOTIFY_SOCKET", &notify_path.display().to_string())]);
    site.wait_healthy(HEALTHY_WITHIN);
    let mut messages = String::new();
    while !messages.contains("READY=1") {
        let mut buf = [0u8; 512];
        let n = notify
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no READY=1 from up ({e}): {messages}"));
        messages.push_str(&String::from_utf8_lossy(&buf[..n]));
        messages.push('\n');
    }
    assert_eq!(site.state()["postgres"]["mode"], "external");
    let boots = cluster
        .psql("extdb", "SELECT count(*) FROM standin_boots")
        .expect("boots");
    assert!(boots.trim().parse::<i64>().expect("n") >= 1);
    let installs = cluster
        .psql("extdb", "SELECT count(*) FROM coder_airgap.installs")
        .expect("ledger");
    assert_eq!(installs.trim(), "1");
    wait_for("renewed certificates", Duration::from_secs(30), || {
        (lasts_30_days(&cert) && lasts_30_days(&site.root.join("etc/tls/mirror.crt"))).then_some(())
    });
    site.wait_healthy(HEALTHY_WITHIN);
    assert!(site.stop_up().success());
}
