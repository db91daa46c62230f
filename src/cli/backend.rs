//! Builds the ports the global flags ask for, with the client-side rate limits and the one retry policy
//! (`backend::limits`) in front of ECS, ECR, the secret store, ELB and Application Auto Scaling, and the
//! distribution-API client (`backend::registry`, its own limits and retries) for images outside ECR, with either
//! backend.

use std::sync::Arc;

use mcpfleet::backend::Backend;
use mcpfleet::backend::aws::{self, RequestCounter};
use mcpfleet::backend::limits::{Limited, Pacing};
use mcpfleet::backend::registry::{Registries, RegistryConfig};
use mcpfleet::backend::route::ByRegistry;
use mcpfleet::backend::sim::{CallStats, Sim};

use super::{Backend as BackendKind, Cli};

/// The backend of a command, and what counts its API requests.
pub struct Connected {
    pub backend: Backend,
    /// The ECS port with the client-side limits (its throttle counts, image and secret resolution's included,
    /// feed the controller's metrics).
    pub limited: Arc<Limited>,
    counter: Counter,
    registries: Arc<Registries>,
    /// Counts the requests of the S3 and DynamoDB clients the command makes (the published fleet, the lease).
    stores: RequestCounter,
}

enum Counter {
    Sim(Arc<Sim>),
    Aws(RequestCounter),
}

impl Connected {
    /// The sim behind this backend, if it is the sim.
    pub fn sim(&self) -> Option<Arc<Sim>> {
        match &self.counter {
            Counter::Sim(sim) => Some(sim.clone()),
            Counter::Aws(_) => None,
        }
    }

    /// What counts the requests of the S3 and DynamoDB clients built for this command (see
    /// `aws::object_store`, `aws::lease_store`), so they show in [`Connected::api_calls`].
    pub fn store_requests(&self) -> &RequestCounter {
        &self.stores
    }

    /// A function that reads the request counts (for the controller's metrics).
    pub fn api_calls_fn(&self) -> Box<dyn Fn() -> CallStats + Send + Sync> {
        let (registries, stores) = (self.registries.clone(), self.stores.clone());
        match &self.counter {
            Counter::Sim(sim) => {
                let sim = sim.clone();
                Box::new(move || merged(merged(sim.stats(), stores.stats()), registries.stats()))
            }
            // The AWS clients and the stores share one counter.
            Counter::Aws(requests) => {
                let requests = requests.clone();
                Box::new(move || merged(requests.stats(), registries.stats()))
            }
        }
    }

    /// The `apiCalls` of `-o json`: API requests made so far, by operation (those to AWS or the sim, and those
    /// to container registries), the ones refused for rate, and the client-side limits' waits and pacing.
    pub fn api_calls(&self) -> ApiCalls {
        let backend = match &self.counter {
            Counter::Sim(sim) => merged(sim.stats(), self.stores.stats()),
            // AWS's refusals for rate are seen by the retry layer (the sim counts its own).
            Counter::Aws(requests) => CallStats { throttled: self.limited.throttles(), ..requests.stats() },
        };
        ApiCalls { stats: merged(backend, self.registries.stats()), pacing: self.limited.pacing() }
    }
}

/// A command's API calls as `-o json` reports them.
#[derive(Debug, serde::Serialize)]
pub struct ApiCalls {
    /// `calls` and `throttled`, by operation.
    #[serde(flatten)]
    pub stats: CallStats,
    /// `waitedMs` and `pacedTo`, by operation.
    #[serde(flatten)]
    pub pacing: Pacing,
}

/// The backend's counts and the registry client's, in one (their operations are distinct).
fn merged(mut backend: CallStats, registries: CallStats) -> CallStats {
    backend.calls.extend(registries.calls);
    backend.throttled.extend(registries.throttled);
    backend
}

pub async fn connect(cli: &Cli) -> anyhow::Result<Connected> {
    let (mut backend, counter, stores) = match cli.backend {
        BackendKind::Sim => {
            let sim = Sim::open(&cli.sim_state)?;
            (sim.backend(), Counter::Sim(sim), RequestCounter::default())
        }
        BackendKind::Aws => {
            let aws = aws::connect(cli.region.clone()).await;
            aws.check_credentials().await?;
            let stores = aws.requests.clone();
            (aws.backend, Counter::Aws(aws.requests), stores)
        }
    };
    let limited = Arc::new(Limited::new(backend.ecs.clone(), backend.clock.clone()).with_rates(&cli.api_rates));
    let registries = Arc::new(Registries::new(RegistryConfig::from_env(cli.insecure_registries.clone()))?);
    backend.ecs = limited.clone();
    // ECR behind ECR's bucket and the retry policy; other registries retry each request themselves.
    backend.images = Arc::new(ByRegistry { ecr: limited.images(backend.images.clone()), registry: registries.clone() });
    backend.secrets = limited.secrets(backend.secrets.clone());
    backend.target_groups = limited.target_groups(backend.target_groups.clone());
    backend.autoscaling = limited.autoscaling(backend.autoscaling.clone());
    Ok(Connected { backend, limited, counter, registries, stores })
}

/// Opens the sim state directly (the `sim` subcommands act on it whatever `--backend` says).
pub fn open_sim(cli: &Cli) -> anyhow::Result<Arc<Sim>> {
    Ok(Sim::open(&cli.sim_state)?)
}
