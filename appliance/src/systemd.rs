//! The hardened systemd unit that runs `coder-airgap up` as the service user.

use std::path::Path;

/// The unit text for an appliance rooted at `root`, run by `exe` as `user`.
///
/// `Type=notify`: `up` reports ready only once coderd answers `/healthz` over TLS.
/// The sandbox leaves only `root` writable; `CAP_NET_BIND_SERVICE` lets coderd take port
/// 443 without running as root.
pub fn unit(exe: &Path, root: &Path, user: &str) -> String {
    let exe = exe.display();
    let root = root.display();
    format!(
        "# Written by coder-airgap install. Copy to /etc/systemd/system/ and run\n\
         #   systemctl daemon-reload && systemctl enable --now coder-airgap\n\
         [Unit]\n\
         Description=Coder appliance (coder-airgap: Postgres, provider mirror, coderd)\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         User={user}\n\
         Group={user}\n\
         ExecStartPre=+{exe} up --root {root} --prepare-only\n\
         ExecStart={exe} up --root {root}\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         TimeoutStartSec=300\n\
         TimeoutStopSec=90\n\
         KillMode=mixed\n\
         NoNewPrivileges=yes\n\
         ProtectSystem=strict\n\
         ReadWritePaths={root}\n\
         PrivateTmp=yes\n\
         ProtectHome=yes\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectControlGroups=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         AmbientCapabilities=CAP_NET_BIND_SERVICE\n\
         CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n\
         LimitNOFILE=65536\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_hardened_and_runs_up_as_the_service_user() {
        let text = unit(
            Path::new("/usr/local/bin/coder-airgap"),
            Path::new("/srv/c"),
            "coder",
        );
        for line in [
            "Type=notify",
            "User=coder",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "Restart=on-failure",
            "ReadWritePaths=/srv/c",
            "ExecStart=/usr/local/bin/coder-airgap up --root /srv/c",
            // Certificates are renewed as root (the CA is root's) before up starts.
            "ExecStartPre=+/usr/local/bin/coder-airgap up --root /srv/c --prepare-only",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }
}
