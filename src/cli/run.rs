//! `mcpfleet run`: the long-running controller, with `/healthz`, `/readyz` and `/metrics` on `--listen`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mcpfleet::controller::{self, Controller, Options, Shared};
use tracing::{error, info, warn};

use super::{Cli, EXIT_ERROR, EXIT_OK, Files};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub files: Files,
    /// Time between reconcile passes (±10 % jitter); a manifest change starts one at once.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
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
    /// How long a resolved digest or secret ARN is reused.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub cache_ttl: Duration,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let conn = super::backend::connect(cli).await?;
    let sim = conn.sim();
    if let Some(sim) = &sim {
        // Other commands (status, sim edit) may use the state between passes.
        sim.release();
    }
    let shared = Shared::new();
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
        paths: args.files.paths.clone(),
        interval: args.interval,
        prune: args.prune,
        concurrency: args.concurrency,
        sim_speed: args.sim_speed,
        cache_ttl: args.cache_ttl,
    };
    let controller =
        Controller::new(opts, conn.backend.clone(), conn.limited.clone(), sim, conn.api_calls_fn(), shared);
    let stop = controller.stop_flag();
    // Polled on this task (not spawned): the loop's futures borrow across awaits and need not be Send.
    let running = controller.run();
    tokio::pin!(running);

    let mut signals = Signals::new()?;
    tokio::select! {
        _ = &mut running => return Ok(EXIT_OK),
        name = signals.next() => {
            warn!(signal = name, bound_s = args.shutdown_timeout.as_secs(), "shutting down: finishing in-flight steps");
            stop.store(true, Ordering::SeqCst);
        }
    }
    tokio::select! {
        _ = &mut running => {
            info!("shut down cleanly");
            Ok(EXIT_OK)
        }
        _ = tokio::time::sleep(args.shutdown_timeout) => {
            error!("in-flight steps did not finish within the shutdown bound; exiting");
            Ok(EXIT_OK)
        }
        name = signals.next() => {
            error!(signal = name, "second signal: aborting");
            Ok(130)
        }
    }
}

/// SIGTERM and SIGINT, in arrival order.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
