//! Prometheus metrics of the controller, exposed on `/metrics` (OpenMetrics text). Counters whose labels are
//! known in advance (rollbacks by outcome, reconcile errors by kind) have every series from the start, at 0, so
//! a dashboard or an alert on their rate sees them before the first event.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::backoff::ErrorKind;
use crate::backend::Op;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

/// An API operation, labelled with its AWS name ([`Op::as_str`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: Op,
}

impl From<Op> for OperationLabel {
    fn from(operation: Op) -> OperationLabel {
        OperationLabel { operation }
    }
}

impl EncodeLabelValue for Op {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

/// A service of the fleet: its name, and its cluster (the same name may run in two clusters while it moves).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
    pub cluster: String,
}

impl ServiceLabel {
    pub fn of(cluster: &str, service: &str) -> ServiceLabel {
        ServiceLabel { service: service.into(), cluster: cluster.into() }
    }
}

/// A histogram of probe latencies, in seconds: 10 ms to about 40 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

/// Every metric, registered once.
pub struct Metrics {
    pub registry: Registry,
    /// Service reconciles by outcome (unchanged, created, updated, deleted, rolled_back, failed, held).
    pub reconciles: Family<OutcomeLabel, Counter>,
    pub drift_corrections: Counter,
    /// Automatic rollbacks by outcome: started, failed (the last good revision did not come back either).
    pub rollbacks: Family<OutcomeLabel, Counter>,
    /// Restarts for rotated secrets by outcome: started, completed, failed (not rolled back, not retried).
    pub secret_restarts: Family<OutcomeLabel, Counter>,
    /// Failed service reconciles (and failed observe passes) by the kind of error: throttled, aws_4xx, spec,
    /// transient; the kind decides the backoff.
    pub reconcile_errors: Family<KindLabel, Counter>,
    pub api_requests: Family<OperationLabel, Counter>,
    pub api_throttles: Family<OperationLabel, Counter>,
    /// The rate each metered operation's bucket allows now (requests per second): AWS's quota, or `--api-rate`'s,
    /// or less while adaptive pacing holds it down after throttling.
    pub api_rate: Family<OperationLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Seconds per reconcile pass.
    pub pass_duration: Histogram,
    pub passes: Family<OutcomeLabel, Counter>,
    pub services: Family<StateLabel, Gauge>,
    pub spec_valid: Gauge,
    pub spec_errors: Counter,
    /// 1 when the last MCP verification of a verified service passed, 0 when it failed.
    pub mcp_probe_success: Family<ServiceLabel, Gauge>,
    /// The tools a verified service offered at its last verification that listed them.
    pub mcp_tools: Family<ServiceLabel, Gauge>,
    /// Seconds an MCP verification's slowest probe took.
    pub mcp_probe_duration: Family<ServiceLabel, Histogram, fn() -> Histogram>,
    /// 1 while this replica leads (always, without `--lease`), 0 while it stands by.
    pub leader: Gauge,
    /// Times this replica became leader or stopped being one.
    pub lease_transitions: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mcpfleet");
        let m = Metrics {
            reconciles: Family::default(),
            drift_corrections: Counter::default(),
            rollbacks: Family::default(),
            secret_restarts: Family::default(),
            reconcile_errors: Family::default(),
            api_requests: Family::default(),
            api_throttles: Family::default(),
            api_rate: Family::default(),
            pass_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            passes: Family::default(),
            services: Family::default(),
            spec_valid: Gauge::default(),
            spec_errors: Counter::default(),
            mcp_probe_success: Family::default(),
            mcp_tools: Family::default(),
            mcp_probe_duration: Family::new_with_constructor(latency_histogram),
            leader: Gauge::default(),
            lease_transitions: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("reconciles", "Service reconciles by outcome", m.reconciles.clone());
        registry.register("drift_corrections", "Out-of-band changes corrected", m.drift_corrections.clone());
        registry.register(
            "rollbacks",
            "Rollbacks of failed rollouts to the last good revision, by outcome (started, failed)",
            m.rollbacks.clone(),
        );
        registry.register(
            "secret_restarts",
            "Restarts of services whose secret rotated, by outcome (started, completed, failed)",
            m.secret_restarts.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by error kind (throttled, aws_4xx, spec, transient)",
            m.reconcile_errors.clone(),
        );
        registry.register("api_requests", "AWS API requests by operation", m.api_requests.clone());
        registry.register("api_throttles", "AWS API requests refused for rate, by operation", m.api_throttles.clone());
        registry.register(
            "api_rate",
            "Requests per second each operation's client-side bucket allows now (adaptive pacing included)",
            m.api_rate.clone(),
        );
        registry.register("reconcile_duration_seconds", "Duration of a reconcile pass", m.pass_duration.clone());
        registry.register("reconcile_passes", "Reconcile passes by outcome", m.passes.clone());
        registry.register("services", "Managed services by state", m.services.clone());
        registry.register("spec_valid", "1 when the manifests on disk are valid", m.spec_valid.clone());
        registry.register("spec_errors", "Times the manifests on disk were found invalid", m.spec_errors.clone());
        registry.register(
            "mcp_probe_success",
            "1 when the last MCP verification of a verified service passed, else 0",
            m.mcp_probe_success.clone(),
        );
        registry.register(
            "mcp_tools",
            "Tools a verified service offered at its last verification",
            m.mcp_tools.clone(),
        );
        registry.register(
            "mcp_probe_duration_seconds",
            "Duration of the slowest probe of an MCP verification",
            m.mcp_probe_duration.clone(),
        );
        registry.register("leader", "1 while this replica holds the lease and writes, 0 on standby", m.leader.clone());
        registry.register(
            "lease_transitions",
            "Times this replica became leader or stopped being one",
            m.lease_transitions.clone(),
        );
        for outcome in ["started", "failed"] {
            let _ = m.rollbacks.get_or_create(&OutcomeLabel { outcome: outcome.into() });
        }
        for outcome in ["started", "completed", "failed"] {
            let _ = m.secret_restarts.get_or_create(&OutcomeLabel { outcome: outcome.into() });
        }
        for kind in ErrorKind::ALL {
            let _ = m.reconcile_errors.get_or_create(&KindLabel { kind: kind.as_str().into() });
        }
        Metrics { registry, ..m }
    }

    pub fn reconcile(&self, outcome: &str) {
        self.reconciles.get_or_create(&OutcomeLabel { outcome: outcome.into() }).inc();
    }

    pub fn reconcile_error(&self, kind: ErrorKind) {
        self.reconcile_errors.get_or_create(&KindLabel { kind: kind.as_str().into() }).inc();
    }

    pub fn rollback(&self, outcome: &str) {
        self.rollbacks.get_or_create(&OutcomeLabel { outcome: outcome.into() }).inc();
    }

    pub fn secret_restart(&self, outcome: &str) {
        self.secret_restarts.get_or_create(&OutcomeLabel { outcome: outcome.into() }).inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
