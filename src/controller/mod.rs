//! The long-running controller (`mcpfleet run`): a reconcile loop with `/healthz`, `/readyz` and `/metrics`
//! beside it.
//!
//! Each pass reloads the manifests when they changed (a broken file keeps the last valid fleet and is reported,
//! never acted on), resolves with TTL caches, observes every service in batches, settles rollouts in flight
//! (last-good on success, rollback on failure — decided from the service's tags and deployments, so a restarted
//! controller picks up exactly where the last one stopped; a rollback is watched like any rollout, and one that
//! fails is reported once and left alone), and converges the services that differ. A service
//! whose convergence fails backs off (jittered exponential, reset on success) without holding the others back,
//! and a service with a rollout in flight is never reconciled again until it settles. Liveness (`/healthz`) is
//! measured from the loop's last progress — any backend call, step or idle tick — not from the end of a pass.

pub mod heartbeat;
pub mod http;
pub mod metrics;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use backoff::backoff::Backoff;
use tracing::{Instrument, error, info, info_span, warn};

use crate::backend::limits::Limited;
use crate::backend::sim::{CallStats, Sim};
use crate::backend::{Backend, Op, RolloutState, ServiceState};
use crate::plan::{self, Action, Plan, PlanReason};
use crate::reconcile::settle::{self, Pending, pending as unsettled};
use crate::reconcile::watch::{self, RolloutResult, Target};
use crate::reconcile::{self, ApplyOptions, Desired, Observed, Outcome};
use crate::spec::{self, ValidFleet};
use crate::state::ServiceTags;

use metrics::{Metrics, OperationLabel, StateLabel};

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub paths: Vec<PathBuf>,
    /// Time between passes (±10 % jitter); passes come every few seconds while rollouts are in flight.
    pub interval: Duration,
    /// Delete managed services that leave the manifests.
    pub prune: bool,
    pub concurrency: usize,
    /// On the sim: virtual seconds that pass per real second between passes.
    pub sim_speed: f64,
}

/// Poll period for manifest changes and for rollouts in flight.
const FAST: Duration = Duration::from_secs(5);

/// How long the loop may go without any progress (a backend call returning, a step finishing, an idle tick)
/// before `/healthz` says it is stuck. A single ECS call with throttling retries stays well within it; a pass
/// over a large fleet makes progress every few seconds however long the pass as a whole takes.
pub const STALL_BOUND: Duration = Duration::from_secs(180);

/// Health and metrics shared with the HTTP server.
pub struct Shared {
    pub metrics: Metrics,
    status: Mutex<Status>,
    /// When the loop last made progress (starts at creation, so a first pass that hangs is caught too).
    progress: Mutex<Instant>,
}

#[derive(Default)]
struct Status {
    observe_error: Option<String>,
    spec_errors: Vec<String>,
    has_fleet: bool,
    observed_once: bool,
    /// Services whose rollout of their last good revision (a rollback) failed, as `cluster/name`.
    failed_rollbacks: Vec<String>,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            metrics: Metrics::new(),
            status: Mutex::new(Status::default()),
            progress: Mutex::new(Instant::now()),
        })
    }

    /// Records that the loop made progress.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    fn beat_at(&self, at: Instant) {
        let mut p = self.progress.lock().expect("progress lock");
        if at > *p {
            *p = at;
        }
    }

    /// The loop made progress within [`STALL_BOUND`].
    pub fn alive(&self) -> bool {
        self.alive_at(Instant::now())
    }

    /// Time since the loop last made progress.
    pub fn since_progress(&self) -> Duration {
        self.progress.lock().expect("progress lock").elapsed()
    }

    fn alive_at(&self, now: Instant) -> bool {
        now.saturating_duration_since(*self.progress.lock().expect("progress lock")) < STALL_BOUND
    }

    /// Whether the controller is ready, and a JSON body that says why not.
    pub fn readiness(&self) -> (bool, serde_json::Value) {
        let s = self.status.lock().expect("status lock");
        let mut reasons = Vec::new();
        if !s.has_fleet {
            reasons.push("no valid manifests loaded yet".to_string());
        }
        if !s.spec_errors.is_empty() {
            reasons.push("the manifests on disk are invalid; still converging to the last valid fleet".to_string());
        }
        if let Some(e) = &s.observe_error {
            reasons.push(format!("the last observe pass failed: {e}"));
        } else if !s.observed_once {
            reasons.push("no observe pass has completed yet".to_string());
        }
        let ready = reasons.is_empty();
        // A service whose rollback failed needs an operator, but the controller itself is fine: reported, not
        // counted against readiness.
        let body = serde_json::json!({
            "ready": ready,
            "reasons": reasons,
            "specErrors": s.spec_errors,
            "failedRollbacks": s.failed_rollbacks,
        });
        (ready, body)
    }
}

/// Per-service backoff after a failed convergence: jittered exponential per service, cleared by any successful
/// reconcile of that service. One service backing off never delays another.
pub struct Backoffs {
    interval: Duration,
    services: BTreeMap<(String, String), Backing>,
}

struct Backing {
    policy: backoff::ExponentialBackoff,
    until: Instant,
}

impl Backoffs {
    pub fn new(interval: Duration) -> Backoffs {
        Backoffs { interval, services: BTreeMap::new() }
    }

    /// Records a failed reconcile of `key` at `now`; returns how long the service now waits.
    pub fn failed(&mut self, key: &(String, String), now: Instant) -> Duration {
        let interval = self.interval;
        let b = self
            .services
            .entry(key.clone())
            .or_insert_with(|| Backing { policy: backoff_policy(interval), until: now });
        let wait = b.policy.next_backoff().unwrap_or(interval);
        b.until = now + wait;
        wait
    }

    /// Records a successful reconcile (any outcome but failed, a no-op included): the backoff starts over.
    pub fn succeeded(&mut self, key: &(String, String)) {
        self.services.remove(key);
    }

    /// Whether `key` is still waiting at `now`.
    pub fn waiting(&self, key: &(String, String), now: Instant) -> bool {
        self.services.get(key).is_some_and(|b| b.until > now)
    }

    /// Services still waiting at `now`.
    pub fn waiting_count(&self, now: Instant) -> usize {
        self.services.values().filter(|b| b.until > now).count()
    }
}

/// The reconcile loop.
pub struct Controller {
    opts: Options,
    backend: Backend,
    limited: Arc<Limited>,
    sim: Option<Arc<Sim>>,
    api_calls: Box<dyn Fn() -> CallStats + Send + Sync>,
    shared: Arc<Shared>,
    fleet: Option<ValidFleet>,
    fingerprint: Vec<(PathBuf, Option<SystemTime>, u64)>,
    backing: Backoffs,
    last_calls: CallStats,
    last_throttles: BTreeMap<Op, u64>,
    last_pass: Instant,
    passes: u64,
    /// Services seen rolling out their last good revision (a rollback), to report when it completes.
    rollbacks_in_flight: std::collections::BTreeSet<(String, String)>,
    stop: Arc<AtomicBool>,
}

impl Controller {
    /// `backend` must already have caches in front of its images and secrets; `limited` is its ECS port.
    pub fn new(
        opts: Options,
        backend: Backend,
        limited: Arc<Limited>,
        sim: Option<Arc<Sim>>,
        api_calls: Box<dyn Fn() -> CallStats + Send + Sync>,
        shared: Arc<Shared>,
    ) -> Controller {
        let mut backend = backend;
        let interval = opts.interval;
        // Every backend call that returns is progress for /healthz.
        backend.ecs = Arc::new(heartbeat::Beating { inner: backend.ecs, shared: shared.clone() });
        backend.images = Arc::new(heartbeat::Beating { inner: backend.images, shared: shared.clone() });
        backend.secrets = Arc::new(heartbeat::Beating { inner: backend.secrets, shared: shared.clone() });
        Controller {
            opts,
            backend,
            limited,
            sim,
            api_calls,
            shared,
            fleet: None,
            fingerprint: vec![],
            backing: Backoffs::new(interval),
            last_calls: CallStats::default(),
            last_throttles: BTreeMap::new(),
            last_pass: Instant::now(),
            passes: 0,
            rollbacks_in_flight: std::collections::BTreeSet::new(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag that makes the loop stop starting new work.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Runs passes until the stop flag is set; the pass in progress finishes first.
    pub async fn run(mut self) {
        while !self.stop.load(Ordering::SeqCst) {
            let in_flight = self.pass().await;
            let jitter = 0.9 + 0.2 * fastrand_unit();
            let wait = if in_flight { FAST.min(self.opts.interval) } else { self.opts.interval.mul_f64(jitter) };
            let deadline = Instant::now() + wait;
            // Wake early for a manifest change or a stop.
            while Instant::now() < deadline && !self.stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(250).min(deadline - Instant::now())).await;
                self.shared.beat();
                if self.manifests_changed() {
                    info!("manifests changed on disk");
                    break;
                }
            }
        }
        info!("stopped");
    }

    fn manifests_changed(&self) -> bool {
        fingerprint(&self.opts.paths) != self.fingerprint
    }

    /// One reconcile pass. Returns whether rollouts are in flight.
    pub async fn pass(&mut self) -> bool {
        self.passes += 1;
        let id = self.passes;
        let span = info_span!("pass", pass = id);
        let started = Instant::now();
        let in_flight = async {
            if let Some(sim) = &self.sim {
                if let Err(e) = sim.reacquire() {
                    error!(error = %e, "cannot open the sim state");
                    return false;
                }
                // The simulated world moves as fast as real time between passes.
                let elapsed = self.last_pass.elapsed().mul_f64(self.opts.sim_speed.max(0.0));
                self.backend.clock.sleep(elapsed).await;
            }
            self.last_pass = Instant::now();
            let in_flight = self.reconcile_once().await;
            if let Some(sim) = &self.sim {
                sim.release();
            }
            in_flight
        }
        .instrument(span)
        .await;
        self.shared.metrics.pass_duration.observe(started.elapsed().as_secs_f64());
        self.record_api_calls();
        self.shared.beat();
        in_flight
    }

    /// Moves the request and throttle counters of the backend into the metrics.
    fn record_api_calls(&mut self) {
        let now = (self.api_calls)();
        add_deltas(&self.shared.metrics.api_requests, &now.calls, &self.last_calls.calls);
        // Every operation called has a throttle count, zero included, so the series exist before the first one.
        for op in now.calls.keys() {
            let _ = self.shared.metrics.api_throttles.get_or_create(&OperationLabel::from(*op));
        }
        self.last_calls = now;
        let throttles = self.limited.throttles();
        add_deltas(&self.shared.metrics.api_throttles, &throttles, &self.last_throttles);
        self.last_throttles = throttles;
    }

    fn reload_manifests(&mut self) {
        let fp = fingerprint(&self.opts.paths);
        if fp == self.fingerprint && self.fleet.is_some() {
            return;
        }
        self.fingerprint = fp;
        match spec::load_paths(&self.opts.paths) {
            Ok(fleet) => {
                info!(services = fleet.services.len(), "manifests loaded");
                self.fleet = Some(fleet);
                self.shared.metrics.spec_valid.set(1);
                let mut s = self.shared.status.lock().expect("status lock");
                s.spec_errors.clear();
                s.has_fleet = true;
            }
            Err(diags) => {
                let lines: Vec<String> = diags.0.iter().map(ToString::to_string).collect();
                for l in &lines {
                    error!(diagnostic = %l, "invalid manifest; keeping the last valid fleet");
                }
                self.shared.metrics.spec_valid.set(0);
                self.shared.metrics.spec_errors.inc();
                self.shared.status.lock().expect("status lock").spec_errors = lines;
            }
        }
    }

    async fn reconcile_once(&mut self) -> bool {
        self.reload_manifests();
        let Some(fleet) = self.fleet.clone() else { return false };
        let ecs = self.backend.ecs.clone();

        // Resolve each service on its own: one missing tag does not stop the rest of the fleet.
        let resolved =
            match reconcile::resolve::resolve_each(&fleet, self.backend.images.as_ref(), self.backend.secrets.as_ref())
                .await
            {
                Ok(r) => r,
                Err(e) => return self.observe_failed(&e.to_string()),
            };
        let mut desired = Vec::new();
        for (svc, res) in fleet.services.iter().zip(resolved) {
            match res {
                Ok(res) => desired.push(Desired::new(svc, &res)),
                Err(problems) => {
                    for p in problems {
                        warn!(service = %svc.name, cluster = %svc.cluster, problem = %p, "cannot resolve; service left as it is");
                    }
                    self.shared.metrics.reconcile("unresolved");
                }
            }
        }
        let extra: Vec<String> = fleet.default_cluster.iter().cloned().collect();
        let mut observed = match reconcile::observe_clusters(&desired, &extra, ecs.as_ref(), self.opts.prune).await {
            Ok(o) => o,
            Err(e) => return self.observe_failed(&e.to_string()),
        };
        // A service that is in the manifests but did not resolve this pass is not "gone": never prune it.
        let named: std::collections::BTreeSet<(&str, &str)> =
            fleet.services.iter().map(|s| (s.cluster.as_str(), s.name.as_str())).collect();
        observed.unlisted.retain(|s| !named.contains(&(s.cluster.as_str(), s.name.as_str())));
        {
            let mut s = self.shared.status.lock().expect("status lock");
            s.observe_error = None;
            s.observed_once = true;
        }

        // Settle rollouts in flight; those still moving are left alone this pass.
        let mut busy = std::collections::BTreeSet::new();
        let now = self.backend.clock.now_ms();
        let mut states: BTreeMap<&str, u64> = BTreeMap::new();
        let mut failed_rollbacks = Vec::new();
        for d in &desired {
            let Some(state) =
                observed.get(&d.ecs.cluster, &d.ecs.name).filter(|s| s.is_active() && plan::is_managed(s))
            else {
                continue;
            };
            let key = (state.cluster.clone(), state.name.clone());
            let target = match unsettled(state, d.rollout.progress_deadline_secs) {
                Pending::Settled => {
                    // A rollback seen in flight whose deployment has completed since: the service is back.
                    if self.rollbacks_in_flight.remove(&key)
                        && state.primary().is_some_and(|p| p.rollout_state == RolloutState::Completed)
                    {
                        let revision = ServiceTags::of(state).applied.unwrap_or("-");
                        let back = ServiceTags::of(state).came_back_from_failure();
                        let what = if back { "rollback completed" } else { "rollout completed" };
                        info!(service = %state.name, cluster = %state.cluster, revision, "{what}");
                    }
                    *states.entry("converged").or_default() += 1;
                    continue;
                }
                Pending::FailedRollback => {
                    self.rollbacks_in_flight.remove(&key);
                    *states.entry("failed").or_default() += 1;
                    failed_rollbacks.push(format!("{}/{}", state.cluster, state.name));
                    continue;
                }
                Pending::Rollout(target) => {
                    if ServiceTags::of(state).last_good == Some(target.task_definition.as_str()) {
                        self.rollbacks_in_flight.insert(key);
                    }
                    target
                }
            };
            match watch::judge_explained(ecs.as_ref(), &target, state, now).await {
                None => {
                    busy.insert(d.ecs.name.clone());
                    *states.entry("rolling_out").or_default() += 1;
                }
                Some(result) => {
                    match self.settle(d, state, &target, result).await {
                        Ok(true) => failed_rollbacks.push(format!("{}/{}", state.cluster, state.name)),
                        Ok(false) => {}
                        Err(e) => warn!(service = %d.ecs.name, error = %e, "settling the rollout failed; will retry"),
                    }
                    self.shared.beat();
                    busy.insert(d.ecs.name.clone());
                    *states.entry("settling").or_default() += 1;
                }
            }
        }

        self.shared.status.lock().expect("status lock").failed_rollbacks = failed_rollbacks;

        let plan = self.plan(&desired, &observed, &busy).await;
        let outcomes = reconcile::apply(
            &desired,
            &plan,
            &observed,
            ecs.as_ref(),
            &ApplyOptions { prune: self.opts.prune, concurrency: self.opts.concurrency, stop: Some(self.stop.clone()) },
            &|service, step| {
                self.shared.beat();
                info!(service, step, "converging");
            },
        )
        .await;
        for (p, o) in plan.services.iter().zip(&outcomes) {
            let key = (o.cluster.clone(), o.name.clone());
            let held = o.outcome == Outcome::Unchanged && p.reason == Some(PlanReason::Held);
            let outcome = if held { "held" } else { o.outcome.as_str() };
            self.shared.metrics.reconcile(outcome);
            if o.outcome == Outcome::Failed {
                let wait = self.backing.failed(&key, Instant::now());
                error!(service = %o.name, cluster = %o.cluster, error = %o.message, backoff_s = wait.as_secs_f64(), "reconcile failed; backing off");
                continue;
            }
            self.backing.succeeded(&key);
            if p.action != Action::Noop {
                if p.reason == Some(PlanReason::Drift) {
                    self.shared.metrics.drift_corrections.inc();
                    warn!(service = %o.name, cluster = %o.cluster, revision = o.task_definition.as_deref().unwrap_or("-"), changes = ?p.changes.iter().map(|c| &c.path).collect::<Vec<_>>(), "drift corrected");
                }
                info!(service = %o.name, cluster = %o.cluster, revision = o.task_definition.as_deref().unwrap_or("-"), outcome, "reconciled");
            }
        }
        let backing_off = self.backing.waiting_count(Instant::now()) as i64;
        for state in ["converged", "rolling_out", "settling", "failed"] {
            let n = states.get(state).copied().unwrap_or(0) as i64;
            self.shared.metrics.services.get_or_create(&StateLabel { state: state.into() }).set(n);
        }
        self.shared.metrics.services.get_or_create(&StateLabel { state: "backing_off".into() }).set(backing_off);
        self.shared.metrics.passes.get_or_create(&metrics::OutcomeLabel { outcome: "ok".into() }).inc();
        !busy.is_empty() || outcomes.iter().any(|o| matches!(o.outcome, Outcome::Created | Outcome::Updated))
    }

    fn observe_failed(&self, error: &str) -> bool {
        error!(error, "observe pass failed");
        self.shared.status.lock().expect("status lock").observe_error = Some(error.to_string());
        self.shared.metrics.passes.get_or_create(&metrics::OutcomeLabel { outcome: "failed".into() }).inc();
        false
    }

    /// The plan for services that are neither in flight nor backing off.
    async fn plan(&self, desired: &[Desired], observed: &Observed, busy: &std::collections::BTreeSet<String>) -> Plan {
        let free: Vec<Desired> = desired
            .iter()
            .filter(|d| !busy.contains(&d.ecs.name))
            .filter(|d| !self.backing.waiting(&(d.ecs.cluster.clone(), d.ecs.name.clone()), Instant::now()))
            .cloned()
            .collect();
        let opts = reconcile::PlanOptions { retry_failed: false, changes: false };
        match reconcile::plan_fleet_with(&free, observed, self.backend.ecs.as_ref(), opts).await {
            Ok(p) => p,
            Err(e) => {
                error!(error = %e, "planning failed");
                Plan::default()
            }
        }
    }

    /// Settles a finished rollout (see [`settle::settle_service`]) and reports it. A rollback that starts is
    /// watched by later passes; a failed rollback is reported once and left alone. Returns whether a rollback
    /// failed.
    async fn settle(
        &self,
        d: &Desired,
        state: &ServiceState,
        target: &Target,
        result: RolloutResult,
    ) -> Result<bool, crate::backend::BackendError> {
        let ecs = self.backend.ecs.as_ref();
        let td = &target.task_definition;
        let (service, cluster) = (&state.name, &state.cluster);
        match settle::settle_service(ecs, state, target, &result, settle::Policy::of(&d.rollout), None).await? {
            settle::Settled::Completed { rollback: true } => {
                info!(service, cluster, revision = %td, "rollback completed")
            }
            settle::Settled::Completed { rollback: false } => {
                info!(service, cluster, revision = %td, "rollout completed")
            }
            settle::Settled::RollbackFailed { reason } => {
                self.shared.metrics.rollback("failed");
                error!(service, cluster, revision = %td, reason, "the rollback to the last good revision failed; the service needs attention (nothing is retried until the spec changes)");
                return Ok(true);
            }
            settle::Settled::RolledBack { reason, to, by_ecs: false } => {
                self.shared.metrics.rollback("started");
                error!(service, cluster, revision = %td, reason, rolled_back_to = %to, "rollout failed; rolling back");
            }
            settle::Settled::RolledBack { reason, to, by_ecs: true } => {
                error!(service, cluster, revision = %td, reason, rolled_back_to = %to, "rollout failed; ECS's circuit breaker rolled it back; not retried until the spec changes");
            }
            settle::Settled::Held { reason, .. } => {
                error!(service, cluster, revision = %td, reason, "rollout failed; not retried until the spec changes");
            }
            settle::Settled::Waiting => {}
        }
        Ok(false)
    }
}

fn add_deltas(
    family: &prometheus_client::metrics::family::Family<OperationLabel, prometheus_client::metrics::counter::Counter>,
    now: &BTreeMap<Op, u64>,
    before: &BTreeMap<Op, u64>,
) {
    for (op, n) in now {
        let delta = n.saturating_sub(before.get(op).copied().unwrap_or(0));
        family.get_or_create(&OperationLabel::from(*op)).inc_by(delta);
    }
}

fn backoff_policy(interval: Duration) -> backoff::ExponentialBackoff {
    backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(Duration::from_secs(5))
        .with_max_interval(interval.max(Duration::from_secs(60)) * 10)
        .with_randomization_factor(0.5)
        .with_max_elapsed_time(None)
        .build()
}

/// A number in [0, 1) from the clock, for interval jitter (no crate needed for this much randomness).
fn fastrand_unit() -> f64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

/// Modification times and sizes of every manifest, to notice edits.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut out = Vec::new();
    for p in paths {
        let mut files = vec![p.clone()];
        if p.is_dir() {
            files = std::fs::read_dir(p)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|f| matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
        }
        for f in files {
            let meta = std::fs::metadata(&f).ok();
            out.push((f, meta.as_ref().and_then(|m| m.modified().ok()), meta.map_or(0, |m| m.len())));
        }
    }
    out
}

#[cfg(test)]
mod tests;
