//! `mcpfleet bridge`: serves a stdio MCP server over Streamable HTTP (see `mcpfleet::bridge`), and
//! `mcpfleet install-bridge DIR`: copies this executable into DIR, which is how the bridge reaches any server image
//! (the installer container of a stdio service's task runs it, then exits).
//!
//! The first SIGTERM or SIGINT drains; a second one cuts the drain short (the servers are still stopped properly).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpfleet::bridge::{self, Config, Mode};

use super::EXIT_OK;
use super::run::Signals;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// One server process for every client; requests multiplexed onto it.
    Shared,
    /// One server process per MCP session (2025 handshake), stopped after --idle-timeout.
    PerSession,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example: mcpfleet bridge --port 8080 -- npx -y @modelcontextprotocol/server-everything")]
pub struct Args {
    /// The port to serve MCP, /health and /ready on.
    #[arg(long)]
    pub port: u16,
    /// The address to listen on (0.0.0.0: every interface, as a container needs).
    #[arg(long, default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// The MCP endpoint's path.
    #[arg(long, default_value = "/mcp")]
    pub path: String,
    /// How clients map to server processes.
    #[arg(long, value_enum, default_value_t = ModeArg::Shared)]
    pub mode: ModeArg,
    /// The most MCP sessions at once [default: 32 per-session (processes), 1024 shared].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_sessions: Option<u32>,
    /// A session without requests for this long is closed (per-session mode: its process is stopped).
    #[arg(long, default_value = "10m", value_parser = at_least_a_second)]
    pub idle_timeout: Duration,
    /// After SIGTERM, how long the requests in flight may take to finish.
    #[arg(long, default_value = "25s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// How long a server process may take to stop after SIGTERM before it is killed.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub child_grace: Duration,
    /// The stdio MCP server: its program and arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The directory to copy the executable into (as `mcpfleet`).
    pub dir: PathBuf,
}

fn at_least_a_second(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration (e.g. 30s, 10m): {e}"))?;
    if d < Duration::from_secs(1) {
        return Err(format!("must be at least 1s (got {s})"));
    }
    Ok(d)
}

pub async fn run(args: &Args) -> anyhow::Result<u8> {
    let mode = match args.mode {
        ModeArg::Shared => Mode::Shared,
        ModeArg::PerSession => Mode::PerSession,
    };
    let config = Config {
        host: args.host,
        port: args.port,
        path: args.path.clone(),
        mode,
        max_sessions: args.max_sessions.map_or(mode.default_max_sessions(), |n| n as usize),
        idle_timeout: args.idle_timeout,
        drain_timeout: args.drain_timeout,
        child_grace: args.child_grace,
        command: args.command.clone(),
    };
    let mut signals = Signals::new()?;
    let (abort_tx, abort) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let name = signals.next().await;
        tracing::info!(signal = name, "shutdown signal");
        tokio::spawn(async move {
            let name = signals.next().await;
            tracing::warn!(signal = name, "second signal: the drain is cut short");
            let _ = abort_tx.send(());
        });
    };
    bridge::run(config, shutdown, async move {
        let _ = abort.await;
    })
    .await?;
    Ok(EXIT_OK)
}

/// Copies this executable to `DIR/mcpfleet` (through a temporary file and a rename, so a reader never sees half of
/// it), mode 0755.
pub fn install(args: &InstallArgs) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find this executable: {e}"))?;
    let target = install_to(&exe, &args.dir)?;
    println!("installed {}", target.display());
    Ok(EXIT_OK)
}

fn install_to(exe: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let target = dir.join("mcpfleet");
    let partial = dir.join(".mcpfleet.partial");
    let copy = || -> std::io::Result<()> {
        std::fs::copy(exe, &partial)?;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&partial, &target)
    };
    copy().map_err(|e| anyhow::anyhow!("cannot install {} into {}: {e}", exe.display(), dir.display()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_an_executable_copy_and_replaces_an_old_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("source");
        std::fs::write(&exe, b"new").unwrap();
        std::fs::write(dir.path().join("mcpfleet"), b"old").unwrap();
        let target = install_to(&exe, dir.path()).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o755);
        let err = install_to(&exe, &dir.path().join("missing")).unwrap_err().to_string();
        assert!(err.starts_with("cannot install "), "{err}");
    }
}
