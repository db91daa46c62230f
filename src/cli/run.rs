//! `mcpfleet run`: the long-running controller, with `/healthz`, `/readyz` and `/metrics` on `--listen`.
//!
//! Signals are watched on a task of their own, never through the loop: a pass that keeps the loop's task busy
//! cannot delay them. The first SIGTERM/SIGINT sets the stop flag (the steps in progress finish, nothing new
//! starts) and bounds the wait by `--shutdown-timeout`; a second one exits at once.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::sync::Arc;

use mcpfleet::controller::lease::{Elector, LeaseTimings};
use mcpfleet::controller::source::Published;
use mcpfleet::controller::{self, Controller, MIN_GAP, Options, Shared};
use mcpfleet::reconcile::verify::McpProber;
use tracing::{error, info, warn};

use super::{Cli, EXIT_ERROR, EXIT_OK, Source};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub source: Source,
    /// With --source: time between polls of the published fleet (one HeadObject each; downloaded only when it
    /// changed).
    #[arg(long, default_value = "10s", value_parser = parse_interval)]
    pub source_interval: Duration,
    /// Elect one leader among replicas over this DynamoDB item (`mcpfleet lease create-table` makes the table):
    /// only the leader observes and writes; the others stand by, ready.
    #[arg(long, value_name = "dynamodb://TABLE/NAME", value_parser = mcpfleet::backend::lease::LeaseUrl::parse)]
    pub lease: Option<mcpfleet::backend::lease::LeaseUrl>,
    /// With --lease: how long a leader may go without renewing before a standby takes over.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// With --lease: a leader that could not renew for this long stops writing (shorter than --lease-duration).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub renew_deadline: Duration,
    /// With --lease: how often the leader renews and a standby reads the lease.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub retry_period: Duration,
    /// Time between reconcile passes (±10 % jitter; at least 1s); a manifest change starts one at once.
    #[arg(long, default_value = "60s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// Delete managed services that leave the manifests.
    #[arg(long)]
    pub prune: bool,
    /// Services converged at the same time (at least 1).
    #[arg(long, default_value_t = 8, value_parser = super::parse_concurrency)]
    pub concurrency: usize,
    /// After SIGTERM, give in-flight steps this long before exiting (keep it below the task's stopTimeout).
    #[arg(long, default_value = "25s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// With --backend sim: virtual seconds that pass per real second (deployments progress that much faster).
    #[arg(long, default_value_t = 1.0)]
    pub sim_speed: f64,
    /// How long a resolved digest, secret ARN or target group is reused.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub cache_ttl: Duration,
    /// Time between probes of each verified service's MCP server outside rollouts (`mcp.verify`); a failing probe
    /// is reported (metrics, log, /readyz), never rolled back.
    #[arg(long, default_value = "5m", value_parser = parse_interval)]
    pub probe_interval: Duration,
    /// Restarts for rotated secrets in flight at once (at least 1): the next start once earlier ones completed.
    #[arg(long, default_value_t = mcpfleet::reconcile::rotation::DEFAULT_CONCURRENCY, value_parser = super::parse_concurrency)]
    pub rotation_concurrency: usize,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let conn = super::backend::connect(cli).await?;
    let sim = conn.sim();
    if let Some(sim) = &sim {
        // Other commands (status, sim edit) may use the state between passes.
        sim.release();
    }
    let shared = Shared::new();
    let elector = match &args.lease {
        Some(url) => {
            let timings = LeaseTimings {
                duration: args.lease_duration,
                renew_deadline: args.renew_deadline,
                retry: args.retry_period,
            };
            if let Err(e) = timings.check() {
                eprintln!("error: {e}");
                return Ok(EXIT_ERROR);
            }
            let store = Arc::new(mcpfleet::backend::aws::lease_store(cli.region.clone(), conn.store_requests()).await);
            Some(Elector::new(store, url.clone(), timings, shared.clone()))
        }
        None => {
            shared.set_role(None);
            None
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!(listen = %args.listen, error = %e, "cannot listen");
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return Ok(EXIT_ERROR);
        }
    };
    let app = controller::http::router(shared.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "the HTTP server stopped");
        }
    });
    info!(listen = %args.listen, interval_s = args.interval.as_secs(), "controller started");

    let opts = Options {
        paths: args.source.paths.clone(),
        load: cli.load_options(),
        interval: args.interval,
        prune: args.prune,
        concurrency: args.concurrency,
        sim_speed: args.sim_speed,
        cache_ttl: args.cache_ttl,
        probe_interval: args.probe_interval,
        rotation_concurrency: args.rotation_concurrency,
    };
    let controller = Controller::new(
        opts,
        conn.backend.clone(),
        conn.limited.clone(),
        sim,
        conn.api_calls_fn(),
        shared,
        std::sync::Arc::new(McpProber),
    );
    let controller = match &args.source.source {
        Some(url) => {
            let store = mcpfleet::backend::aws::object_store(cli.region.clone(), conn.store_requests()).await;
            let published = Published::new(Arc::new(store), url.clone(), cli.load_options(), args.source_interval);
            info!(source = %url, poll_s = args.source_interval.as_secs(), "following the published fleet");
            controller.with_published(published)
        }
        None => controller,
    };
    let lease_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (controller, election) = match elector {
        Some(elector) => {
            let controller = controller.with_lease(elector.leadership());
            (controller, Some(tokio::spawn(elector.run(lease_stop.clone()))))
        }
        None => (controller, None),
    };
    let stop = controller.stop_flag();
    let mut signals = Signals::new()?;
    let shutdown_timeout = args.shutdown_timeout;
    tokio::spawn(async move {
        let name = signals.next().await;
        warn!(signal = name, bound_s = shutdown_timeout.as_secs(), "shutting down: finishing in-flight steps");
        stop.store(true, Ordering::SeqCst);
        tokio::select! {
            () = tokio::time::sleep(shutdown_timeout) => {
                error!("in-flight steps did not finish within the shutdown bound; exiting");
                std::process::exit(EXIT_OK.into());
            }
            name = signals.next() => {
                error!(signal = name, "second signal: aborting");
                std::process::exit(EXIT_ABORTED.into());
            }
        }
    });
    // Polled on this task (not spawned): the loop's futures borrow across awaits and need not be Send.
    controller.run().await;
    // Nothing writes any more: the lease can go to a standby at once.
    lease_stop.store(true, Ordering::SeqCst);
    if let Some(election) = election {
        match election.await {
            Ok(mut elector) => elector.release().await,
            Err(e) => error!(error = %e, "the lease election task failed"),
        }
    }
    info!("shut down cleanly");
    Ok(EXIT_OK)
}

/// Exit code after a second signal: 128 + SIGINT, as a shell reports an interrupted command.
const EXIT_ABORTED: u8 = 130;

/// `--interval`: a duration of at least [`MIN_GAP`]; shorter would make the controller a busy loop against the
/// AWS APIs.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration (e.g. 30s, 5m): {e}"))?;
    if d < MIN_GAP {
        return Err(format!(
            "must be at least {} (got {s}): a shorter interval would call the AWS APIs in a busy loop",
            humantime::format_duration(MIN_GAP)
        ));
    }
    Ok(d)
}

/// SIGTERM and SIGINT, in arrival order.
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    pub(super) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
