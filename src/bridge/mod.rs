//! `mcpfleet bridge`: a stdio MCP server served as a Streamable HTTP one, so servers that speak only stdio (most
//! published ones) run on ECS with health checks and a graceful drain.
//!
//! The bridge runs the server's command as a child process and speaks JSON-RPC with it over stdin/stdout, one
//! message per line, while serving MCP clients over HTTP on one port:
//! - **shared** mode (the default): one child, initialized once by the bridge; every client's requests are
//!   multiplexed onto it ([`mux`]: ids remapped, notifications and server requests routed back). A child that dies
//!   is restarted with backoff, and `/ready` answers 503 meanwhile.
//! - **per-session** mode: a child of its own for each session of the 2025 handshake, started by the client's
//!   `initialize` (forwarded to it as the client wrote it), stopped after the idle timeout or the client's DELETE,
//!   at most `--max-sessions` at once. One more child, like the shared one, serves the stateless requests.
//!
//! Both protocol generations are served ([`http`]): the 2026-07-28 revision's stateless requests (a stdio server
//! initialized with the handshake does not know `server/discover`: the bridge answers it from the server's
//! `initialize` result), and the 2025 handshake with `Mcp-Session-Id`. `/health` says the child runs, `/ready`
//! that it answered its initialization; the child's stderr is logged line by line with its session. On the
//! shutdown signal (SIGTERM) the bridge stops accepting connections, lets the requests in flight finish (bounded
//! by `--drain-timeout`), then stops the children (SIGTERM, SIGKILL after `--child-grace`).
//!
//! Why not rmcp's server side: a proxy must pass on what it does not understand (methods, fields, extensions of
//! either revision) byte for byte, and route by ids it rewrites; rmcp's typed server and child-process transport
//! would parse every message into its model and answer on the server's behalf. A small multiplexer over
//! `serde_json` objects on axum (already serving the controller's endpoints) and tokio's process support keeps the
//! messages as the server wrote them and adds no crate to the binary.

mod child;
mod http;
mod jsonrpc;
mod mux;
mod sessions;

use std::future::{Future, IntoFuture};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ::backoff::backoff::Backoff as _;
use tokio::sync::{oneshot, watch};

pub use child::ChildError;
use child::{Child, Initialized};
use mux::Scope;
use sessions::Sessions;

/// How long a server may take to answer `initialize` (an `npx -y` server may download itself first).
const INIT_TIMEOUT: Duration = Duration::from_secs(120);
/// A server that ran this long before it ended restarts after the shortest backoff again.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// How clients map to server processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One server process for every client.
    Shared,
    /// One server process per MCP session.
    PerSession,
}

impl Mode {
    /// The word as written on the command line and in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Shared => "shared",
            Mode::PerSession => "per-session",
        }
    }

    /// `--max-sessions` when none is given: sessions are cheap bookkeeping in shared mode, processes in
    /// per-session mode.
    pub fn default_max_sessions(self) -> usize {
        match self {
            Mode::Shared => 1024,
            Mode::PerSession => 32,
        }
    }
}

/// What `mcpfleet bridge` was asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    /// The MCP endpoint's path, e.g. `/mcp`.
    pub path: String,
    pub mode: Mode,
    pub max_sessions: usize,
    /// A session without requests for this long is closed (per-session mode: its process stopped).
    pub idle_timeout: Duration,
    /// How long requests in flight may finish after the shutdown signal.
    pub drain_timeout: Duration,
    /// How long a server may take to stop after SIGTERM before SIGKILL.
    pub child_grace: Duration,
    /// The stdio server: program and arguments.
    pub command: Vec<String>,
}

impl Config {
    /// `--drain-timeout` by default: under ECS's default stopTimeout of 30s, with room for the child's grace.
    pub const DEFAULT_DRAIN: Duration = Duration::from_secs(25);
    /// `--child-grace` by default.
    pub const DEFAULT_CHILD_GRACE: Duration = Duration::from_secs(3);
    /// `--idle-timeout` by default.
    pub const DEFAULT_IDLE: Duration = Duration::from_secs(600);
    /// The paths the bridge serves itself.
    pub const HEALTH_PATH: &str = "/health";
    pub const READY_PATH: &str = "/ready";
}

/// Why the bridge could not run.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// No server command was given.
    #[error(
        "no MCP server command: give it after `--`, e.g. `mcpfleet bridge --port 8080 -- npx -y @modelcontextprotocol/server-everything`"
    )]
    NoCommand,
    /// The MCP path is not a path, or one the bridge serves itself.
    #[error("--path `{0}` must start with `/` and be neither /health nor /ready (the bridge serves those)")]
    Path(String),
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The shared server process (in per-session mode: the one for stateless requests), as the supervisor keeps it.
#[derive(Clone)]
pub(crate) enum Server {
    /// Being started, or answering its initialization (`pid` once started).
    Starting { pid: Option<u32> },
    /// Initialized: it takes requests.
    Ready { child: Arc<Child>, init: Arc<Initialized> },
    /// It ended (or could not start); restarted after a backoff.
    Down { reason: String },
    /// The bridge is stopping.
    Stopped,
}

/// What the HTTP handlers share.
pub(crate) struct Bridge {
    pub config: Config,
    pub server: watch::Receiver<Server>,
    pub sessions: Arc<Sessions>,
    draining: AtomicBool,
}

impl Bridge {
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Runs the bridge until `shutdown` resolves, then drains (until the requests in flight finished, the drain timeout
/// ran out or `abort` resolved) and stops the servers. Returns once every server process has ended.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    abort: impl Future<Output = ()>,
) -> Result<(), BridgeError> {
    if config.command.first().is_none_or(String::is_empty) {
        return Err(BridgeError::NoCommand);
    }
    if !config.path.starts_with('/') || [Config::HEALTH_PATH, Config::READY_PATH].contains(&config.path.as_str()) {
        return Err(BridgeError::Path(config.path.clone()));
    }
    let addr = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| BridgeError::Listen { addr, source })?;
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!(
        "bridge listening on http://{addr}{} ({} mode, at most {} sessions); /health and /ready beside it",
        config.path,
        config.mode.as_str(),
        config.max_sessions
    );

    let sessions = Arc::new(Sessions::new(config.max_sessions));
    let (server_tx, server) = watch::channel(Server::Starting { pid: None });
    let (stop_tx, stop) = watch::channel(false);
    let supervisor = tokio::spawn(supervise(config.clone(), sessions.clone(), Arc::new(server_tx), stop.clone()));
    let bridge = Arc::new(Bridge { config: config.clone(), server, sessions, draining: AtomicBool::new(false) });
    let reaper = tokio::spawn(reap_idle(bridge.clone(), stop.clone()));

    let (signalled_tx, signalled) = oneshot::channel::<()>();
    let draining = bridge.clone();
    let graceful = async move {
        shutdown.await;
        draining.draining.store(true, Ordering::SeqCst);
        // Standalone streams never end on their own; the requests in flight do.
        draining.sessions.close_streams();
        tracing::info!(
            "shutting down: no new connections; letting the requests in flight finish (at most {:?})",
            draining.config.drain_timeout
        );
        let _ = signalled_tx.send(());
    };
    let serve = axum::serve(listener, http::router(bridge.clone())).with_graceful_shutdown(graceful).into_future();
    tokio::pin!(serve);
    let served = tokio::select! {
        r = &mut serve => r,
        _ = signalled => tokio::select! {
            r = tokio::time::timeout(config.drain_timeout, &mut serve) => r.unwrap_or_else(|_| {
                tracing::warn!("the drain timeout ({:?}) ran out with requests in flight; they are cut off", config.drain_timeout);
                Ok(())
            }),
            _ = abort => Ok(()),
        },
    };
    tracing::info!("stopping the MCP server processes");
    let _ = stop_tx.send(true);
    let children: Vec<Arc<Child>> =
        bridge.sessions.take_all().into_iter().filter_map(|s| s.child.get().cloned()).collect();
    futures::future::join_all(children.iter().map(|c| c.terminate(config.child_grace))).await;
    let _ = supervisor.await;
    let _ = reaper.await;
    tracing::info!("bridge stopped");
    served.map_err(BridgeError::Serve)
}

/// Keeps the shared server (per-session mode: the stateless one) running: starts it, initializes it, publishes it
/// as ready, and when it ends marks it down and starts it again after a backoff (1s doubling to 30s, jittered; back
/// to 1s once a server ran [`STABLE_AFTER`]).
async fn supervise(
    config: Config,
    sessions: Arc<Sessions>,
    state: Arc<watch::Sender<Server>>,
    mut stop: watch::Receiver<bool>,
) {
    let (label, shared) = match config.mode {
        Mode::Shared => ("shared", true),
        Mode::PerSession => ("stateless", false),
    };
    let mut backoff = ::backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(Duration::from_secs(1))
        .with_multiplier(2.0)
        .with_randomization_factor(0.2)
        .with_max_interval(Duration::from_secs(30))
        .with_max_elapsed_time(None)
        .build();
    loop {
        let started = Instant::now();
        let scope = if shared { Scope::Shared(sessions.clone()) } else { Scope::Stateless };
        let marks_down = state.clone();
        // Marked down before the requests in flight are answered with the error: no client learns of the end
        // while /ready still says ready.
        let on_exit = move |how: &str| {
            marks_down.send_replace(Server::Down { reason: format!("the MCP server process {how}") });
        };
        let reason = match Child::start(&config.command, label.into(), scope, on_exit) {
            Err(e) => {
                tracing::error!(session = %label, "{e}");
                e.to_string()
            }
            Ok(child) => {
                state.send_replace(Server::Starting { pid: Some(child.pid) });
                let init = tokio::select! {
                    r = child.initialize(INIT_TIMEOUT) => Some(r),
                    _ = stopped(&mut stop) => None,
                };
                match init {
                    None => {
                        child.terminate(config.child_grace).await;
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(session = %label, pid = child.pid, "{e}; stopping it");
                        child.terminate(config.child_grace).await;
                        e.to_string()
                    }
                    Some(Ok(init)) => {
                        let name = init.result.get("serverInfo").and_then(|s| s.get("name")).and_then(|n| n.as_str());
                        tracing::info!(
                            session = %label,
                            pid = child.pid,
                            protocol = %init.protocol_version,
                            server = name.unwrap_or("?"),
                            "MCP server ready"
                        );
                        state.send_replace(Server::Ready { child: child.clone(), init: Arc::new(init) });
                        tokio::select! {
                            how = child.exited() => format!("the MCP server process {how}"),
                            _ = stopped(&mut stop) => {
                                child.terminate(config.child_grace).await;
                                break;
                            }
                        }
                    }
                }
            }
        };
        if started.elapsed() >= STABLE_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_backoff().unwrap_or(Duration::from_secs(30));
        tracing::warn!(session = %label, "{reason}; starting it again in {:.1}s", delay.as_secs_f64());
        state.send_replace(Server::Down {
            reason: format!("{reason}; starting it again in {}s", delay.as_secs().max(1)),
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut stop) => break,
        }
    }
    state.send_replace(Server::Stopped);
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Closes the sessions idle for `--idle-timeout` (per-session mode: stops their processes), checking a few times
/// per timeout.
async fn reap_idle(bridge: Arc<Bridge>, mut stop: watch::Receiver<bool>) {
    let idle = bridge.config.idle_timeout;
    let tick = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stopped(&mut stop) => return,
        }
        for session in bridge.sessions.take_idle(idle) {
            session.close_stream();
            let pid = session.child.get().map(|c| c.pid);
            tracing::info!(session = %session.id, pid, "session closed after {idle:?} without requests");
            if let Some(child) = session.child.get().cloned() {
                let grace = bridge.config.child_grace;
                tokio::spawn(async move { child.terminate(grace).await });
            }
        }
    }
}
