//! How a `transport: stdio` service is deployed, the same on ECS and in the local stack: the bridge's static
//! executable is copied out of mcpfleet's image into a volume by an installer container (`mcpfleet
//! install-bridge`, which exits), and the server's container runs it from there, read-only, in front of the
//! server's own command (`mcpfleet bridge … -- COMMAND`). Its health check is the same executable probing the
//! bridge's `/health`, so the server image needs no shell, curl or Python.

use crate::spec::{ValidService, ValidStdio};

/// The volume the executable is copied into (task-scoped on ECS, a named volume in the local stack).
pub const VOLUME: &str = "mcpfleet-bridge";
/// Where the volume is mounted, in the installer and in the server's container.
pub const DIR: &str = "/mcpfleet-bridge";
/// The executable in the server's container.
pub const EXECUTABLE: &str = "/mcpfleet-bridge/mcpfleet";
/// The installer's name when nothing else has it.
const INSTALLER: &str = "mcpfleet-bridge";

/// The installer container's (or compose service's) name: [`INSTALLER`], unless `taken` says a service already
/// has it, then `mcpfleet-bridge-1`, `-2`, … (a fleet may name a service anything).
pub fn installer_name(taken: impl Fn(&str) -> bool) -> String {
    std::iter::once(INSTALLER.to_string())
        .chain((1..).map(|i| format!("{INSTALLER}-{i}")))
        .find(|name| !taken(name))
        .unwrap_or_else(|| INSTALLER.to_string())
}

/// The installer's command: the mcpfleet image's entrypoint is the mcpfleet executable.
pub fn installer_command() -> Vec<String> {
    vec!["install-bridge".into(), DIR.into()]
}

/// The installer runs as root (the fresh volume belongs to root), with every capability dropped: it only writes
/// one file into its own volume.
pub const INSTALLER_USER: &str = "0";

/// How long the server may take to stop after the bridge's SIGTERM: a tenth of ECS's stopTimeout, 1s to 3s.
fn child_grace_secs(stop_timeout_secs: u32) -> u32 {
    (stop_timeout_secs / 10).clamp(1, 3)
}

/// The drain's bound: what is left of stopTimeout after the server's grace and two seconds of margin, so the
/// bridge has stopped its server and exited before ECS sends SIGKILL.
fn drain_secs(stop_timeout_secs: u32) -> u32 {
    stop_timeout_secs.saturating_sub(child_grace_secs(stop_timeout_secs) + 2).max(1)
}

/// The server container's entrypoint: the bridge with every setting spelled out; the server's command follows as
/// the container's command.
pub fn entrypoint(svc: &ValidService, stdio: &ValidStdio) -> Vec<String> {
    let stop = svc.stop_timeout_secs;
    [
        EXECUTABLE,
        "bridge",
        "--port",
        &svc.port.to_string(),
        "--path",
        &svc.mcp.path,
        "--mode",
        stdio.mode.as_str(),
        "--max-sessions",
        &stdio.max_sessions.to_string(),
        "--idle-timeout",
        &format!("{}s", stdio.idle_timeout_secs),
        "--drain-timeout",
        &format!("{}s", drain_secs(stop)),
        "--child-grace",
        &format!("{}s", child_grace_secs(stop)),
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The health check command: the bridge's executable probing its `/health`, its own timeout a second under ECS's.
pub fn health_command(port: u16, timeout_secs: u32) -> Vec<String> {
    let url = format!("http://127.0.0.1:{port}/health");
    let t = timeout_secs.saturating_sub(1).max(1);
    ["CMD", EXECUTABLE, "healthcheck", "--url", &url, "--timeout", &format!("{t}s")]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_and_the_grace_fit_in_the_stop_timeout() {
        for stop in 2..=120 {
            let (drain, grace) = (drain_secs(stop), child_grace_secs(stop));
            assert!(drain >= 1 && (1..=3).contains(&grace), "{stop}");
            assert!(drain + grace <= stop.max(2), "stopTimeout {stop}s: drain {drain}s + grace {grace}s");
        }
        // The bridge's own defaults are those of ECS's default stopTimeout.
        assert_eq!((drain_secs(30), child_grace_secs(30)), (25, 3));
    }

    #[test]
    fn the_installer_never_takes_a_services_name() {
        assert_eq!(installer_name(|_| false), "mcpfleet-bridge");
        assert_eq!(installer_name(|n| n == "mcpfleet-bridge"), "mcpfleet-bridge-1");
        assert_eq!(installer_name(|n| n == "mcpfleet-bridge" || n == "mcpfleet-bridge-1"), "mcpfleet-bridge-2");
    }
}
