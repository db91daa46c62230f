//! The long-running controller (`mcpfleet run`): a reconcile loop with `/healthz`, `/readyz` and `/metrics`
//! beside it, shaped like a kube-runtime controller.
//!
//! Each pass reloads the manifests when they changed ([`manifests`]: a broken file keeps the last valid fleet and
//! is reported, never acted on), resolves with TTL caches (emptied when a manifest changes, so an edit is resolved
//! against the registry as it is now), observes every service in batches, settles rollouts in flight
//! ([`settle`]), and then reconciles each remaining service on its own: the reconcile returns an [`Action`]
//! (requeue after a while, or wait for a change) or a typed [`ReconcileFailure`], which the error policy
//! ([`backoff`]) turns into a backoff chosen by the failure's kind (throttled, refused by AWS, spec, transient),
//! counted by kind in `mcpfleet_reconcile_errors_total`. A service backing off sits passes out until its time,
//! without holding the others back; [`schedule`] wakes the loop for the earliest requeue, the jittered interval,
//! or a manifest change. Liveness and readiness live in [`health`]: liveness is measured from the loop's last
//! progress — any backend call, step or idle tick — not from the end of a pass.

pub mod backoff;
pub mod health;
pub mod heartbeat;
pub mod http;
pub mod lease;
pub mod manifests;
pub mod metrics;
pub mod probes;
pub mod schedule;
mod settle;
pub mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tracing::{Instrument, error, info, info_span, warn};

use crate::backend::cache::{CachedImages, CachedSecrets, CachedTargetGroups};
use crate::backend::limits::Limited;
use crate::backend::sim::{CallStats, Sim};
use crate::backend::{Backend, Clock, Images, Op, Secrets, ServiceState, SystemClock, TargetGroups};
use crate::plan::{Action as PlanAction, Plan, PlanReason, ServicePlan};
use crate::reconcile::verify::{GatePorts, Prober};
use crate::reconcile::{self, ApplyOptions, Desired, Observed, Outcome};
use crate::state::{self, ServiceTags};

pub use self::backoff::{Backoffs, ErrorKind, ReconcileFailure};
pub use health::{STALL_BOUND, Shared};
use manifests::{Manifests, Reload};
use metrics::{OperationLabel, ServiceLabel, StateLabel};
use probes::Probes;
pub use schedule::{Action, FAST, Key, MIN_GAP, Schedule};
use source::{FleetSource, Published};

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub paths: Vec<PathBuf>,
    /// What the command line adds to the manifests (`--bridge-image`).
    pub load: crate::spec::LoadOptions,
    /// Time between passes (±10 % jitter); passes come every few seconds while rollouts are in flight.
    pub interval: Duration,
    /// Delete managed services that leave the manifests.
    pub prune: bool,
    pub concurrency: usize,
    /// On the sim: virtual seconds that pass per real second between passes.
    pub sim_speed: f64,
    /// How long a resolved digest, secret ARN or target group is reused (until then, or until a manifest changes).
    pub cache_ttl: Duration,
    /// Time between probes of a verified service's MCP server outside rollouts.
    pub probe_interval: Duration,
    /// Restarts for rotated secrets in flight at once, across the fleet (`--rotation-concurrency`).
    pub rotation_concurrency: usize,
}

/// The reconcile loop.
pub struct Controller {
    opts: Options,
    backend: Backend,
    images: Arc<CachedImages>,
    secrets: Arc<CachedSecrets>,
    target_groups: Arc<CachedTargetGroups>,
    limited: Arc<Limited>,
    sim: Option<Arc<Sim>>,
    api_calls: Box<dyn Fn() -> CallStats + Send + Sync>,
    shared: Arc<Shared>,
    manifests: FleetSource,
    backing: Backoffs,
    schedule: Schedule,
    last_calls: CallStats,
    last_throttles: BTreeMap<Op, u64>,
    last_pass: Instant,
    passes: u64,
    /// Services seen rolling out their last good revision (a rollback), to report when it completes.
    rollbacks_in_flight: BTreeSet<(String, String)>,
    /// Services seen restarting for a rotated secret, to count and report when the restart completes.
    restarts_in_flight: BTreeSet<(String, String)>,
    stop: Arc<AtomicBool>,
    /// The MCP client of the rollout gate and the re-probes.
    prober: Arc<dyn Prober>,
    probes: Probes,
    /// The services whose MCP series exist, so a service no longer verified loses them.
    probed_labels: BTreeSet<ServiceLabel>,
    /// With `--lease`: whether this replica may observe and write.
    leadership: Option<Arc<lease::Leadership>>,
}

impl Controller {
    /// `backend` is the plain backend (its ECS port is `limited`); the controller puts TTL caches in front of its
    /// images, secrets and target groups. `prober` is the MCP client verified services are probed with.
    pub fn new(
        opts: Options,
        backend: Backend,
        limited: Arc<Limited>,
        sim: Option<Arc<Sim>>,
        api_calls: Box<dyn Fn() -> CallStats + Send + Sync>,
        shared: Arc<Shared>,
        prober: Arc<dyn Prober>,
    ) -> Controller {
        let mut backend = backend;
        // The TTL is about how soon a moved tag is noticed: real time, even when the sim's clock runs faster.
        let wall: Arc<dyn Clock> = Arc::new(SystemClock);
        let images = Arc::new(CachedImages::new(backend.images.clone(), wall.clone(), opts.cache_ttl));
        let secrets = Arc::new(CachedSecrets::new(backend.secrets.clone(), wall.clone(), opts.cache_ttl));
        let target_groups = Arc::new(CachedTargetGroups::new(backend.target_groups.clone(), wall, opts.cache_ttl));
        // Every backend call that returns is progress for /healthz.
        backend.ecs = Arc::new(heartbeat::Beating { inner: backend.ecs, shared: shared.clone() });
        let cached_images: Arc<dyn Images> = images.clone();
        let cached_secrets: Arc<dyn Secrets> = secrets.clone();
        backend.images = Arc::new(heartbeat::Beating { inner: cached_images, shared: shared.clone() });
        backend.secrets = Arc::new(heartbeat::Beating { inner: cached_secrets, shared: shared.clone() });
        let cached_target_groups: Arc<dyn TargetGroups> = target_groups.clone();
        backend.target_groups = Arc::new(heartbeat::Beating { inner: cached_target_groups, shared: shared.clone() });
        backend.autoscaling = Arc::new(heartbeat::Beating { inner: backend.autoscaling, shared: shared.clone() });
        Controller {
            backing: Backoffs::new(opts.interval),
            schedule: Schedule::new(opts.interval),
            probes: Probes::new(opts.probe_interval),
            manifests: FleetSource::Files(Manifests::new(opts.paths.clone(), opts.load.clone())),
            opts,
            backend,
            images,
            secrets,
            target_groups,
            limited,
            sim,
            api_calls,
            shared,
            last_calls: CallStats::default(),
            last_throttles: BTreeMap::new(),
            last_pass: Instant::now(),
            passes: 0,
            rollbacks_in_flight: BTreeSet::new(),
            restarts_in_flight: BTreeSet::new(),
            stop: Arc::new(AtomicBool::new(false)),
            prober,
            probed_labels: BTreeSet::new(),
            leadership: None,
        }
    }

    /// Follows the fleet `publish` wrote instead of the files of [`Options::paths`].
    pub fn with_published(mut self, published: Published) -> Controller {
        self.manifests = FleetSource::Published(Box::new(published));
        self
    }

    /// Observes and writes only while `leadership` holds the lease.
    pub fn with_lease(mut self, leadership: Arc<lease::Leadership>) -> Controller {
        self.leadership = Some(leadership);
        self
    }

    /// The lease URL the services this replica converges are tagged as owned by (with `--lease`).
    fn owner(&self) -> Option<&str> {
        self.leadership.as_deref().map(lease::Leadership::owner)
    }

    /// Tags the fleet's services this controller owns but that do not say so yet (created or last updated by
    /// `apply`, or by another fleet's controller): one TagResource each, once. From then on `apply` and
    /// `rollback` refuse them while the lease is live. Services it creates or updates carry it already.
    async fn claim(&self, desired: &[Desired], observed: &Observed) {
        let Some(owner) = self.owner() else { return };
        for d in desired {
            let Some(o) = observed.get(&d.ecs.cluster, &d.ecs.name).filter(|o| o.is_active()) else { continue };
            let tags = ServiceTags::of(o);
            if !tags.managed || tags.owner == Some(owner) {
                continue;
            }
            let owned: crate::backend::Tags =
                [state::owned_by(Some(owner))].into_iter().map(|t| (t.key, t.value)).collect();
            match self.backend.ecs.tag_resource(&o.arn, &owned).await {
                Ok(()) => {
                    info!(service = %o.name, cluster = %o.cluster, owner, previous = tags.owner.unwrap_or("-"), "tagged as owned by this controller")
                }
                Err(e) => {
                    warn!(service = %o.name, cluster = %o.cluster, error = %e, "cannot tag the service as owned by this controller")
                }
            }
        }
    }

    /// Whether this replica may write now (always, without a lease).
    fn leads(&self) -> bool {
        self.leadership.as_ref().is_none_or(|l| l.holds())
    }

    /// What the MCP gate probes with.
    fn gate_ports(&self) -> GatePorts<'_> {
        GatePorts { prober: self.prober.as_ref(), target_groups: self.backend.target_groups.as_ref() }
    }

    /// The flag that makes the loop stop starting new work.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Runs passes until the stop flag is set; the pass in progress finishes first.
    pub async fn run(mut self) {
        while !self.stop.load(Ordering::SeqCst) {
            if !self.leads() {
                // A standby neither observes nor writes; it waits to lead (its lease reads are counted).
                tokio::time::sleep(Duration::from_millis(100)).await;
                self.record_api_calls();
                self.shared.beat();
                continue;
            }
            self.pass().await;
            let now = Instant::now();
            let mut next = self.schedule.next_pass(now);
            // A verified service's probe falling due wakes the loop too (never sooner than the minimum gap).
            if let Some(probe) = self.probes.next_due() {
                next = next.min(probe.max(now + MIN_GAP));
            }
            crate::backend::lock(&self.shared.status).next_pass = Some(next);
            // Wake early for a manifest change or a stop.
            loop {
                let now = Instant::now();
                if now >= next || self.stop.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250).min(next - now)).await;
                self.shared.beat();
                if self.manifests.changed().await {
                    match &self.manifests {
                        FleetSource::Files(_) => info!("manifests changed on disk"),
                        FleetSource::Published(_) => info!("the published fleet changed"),
                    }
                    break;
                }
            }
        }
        info!("stopped");
    }

    /// One reconcile pass.
    pub async fn pass(&mut self) {
        self.passes += 1;
        let id = self.passes;
        let span = info_span!("pass", pass = id);
        let started = Instant::now();
        async {
            if let Some(sim) = &self.sim {
                if let Err(e) = sim.reacquire() {
                    error!(error = %e, "cannot open the sim state");
                    return;
                }
                // The simulated world moves as fast as real time between passes.
                let elapsed = self.last_pass.elapsed().mul_f64(self.opts.sim_speed.max(0.0));
                self.backend.clock.sleep(elapsed).await;
            }
            self.last_pass = Instant::now();
            self.reconcile_once().await;
            if let Some(sim) = &self.sim {
                sim.release();
            }
        }
        .instrument(span)
        .await;
        self.shared.metrics.pass_duration.observe(started.elapsed().as_secs_f64());
        self.record_api_calls();
        self.shared.beat();
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
        for (op, rate) in self.limited.rates() {
            self.shared.metrics.api_rate.get_or_create(&OperationLabel::from(op)).set(rate);
        }
    }

    async fn reload_manifests(&mut self) {
        match self.manifests.reload().await {
            Reload::Unchanged => {}
            Reload::Loaded { changed } => {
                let services = self.manifests.fleet().map_or(0, |f| f.services.len());
                let version = self.manifests.version().cloned();
                match &version {
                    Some(v) => {
                        info!(services, changed = changed.len(), source = %v.source, etag = %v.etag, version_id = v.version_id.as_deref().unwrap_or("-"), published_by = v.published_by.as_deref().unwrap_or("-"), "manifests loaded")
                    }
                    None => info!(services, changed = changed.len(), "manifests loaded"),
                }
                crate::backend::lock(&self.shared.status).fleet_version = version;
                if !changed.is_empty() {
                    // A tag re-pushed since it was cached must not be deployed by its old digest: an edit is
                    // resolved against the registry and the secret store as they are now.
                    self.images.forget();
                    self.secrets.forget();
                    self.target_groups.forget();
                }
                // An edited service is reconciled at once, whatever its backoff.
                for key in &changed {
                    self.backing.succeeded(key);
                }
                self.shared.metrics.spec_valid.set(1);
                let mut s = crate::backend::lock(&self.shared.status);
                s.spec_errors.clear();
                s.has_fleet = true;
            }
            Reload::Invalid(lines) => {
                for l in &lines {
                    error!(diagnostic = %l, "invalid manifest; keeping the last valid fleet");
                }
                self.shared.metrics.spec_valid.set(0);
                self.shared.metrics.spec_errors.inc();
                crate::backend::lock(&self.shared.status).spec_errors = lines;
            }
        }
    }

    async fn reconcile_once(&mut self) {
        self.reload_manifests().await;
        let Some(fleet) = self.manifests.fleet().cloned() else { return };
        let ecs = self.backend.ecs.clone();
        let named: BTreeSet<Key> = fleet.services.iter().map(|s| (s.cluster.clone(), s.name.clone())).collect();
        self.backing.retain(|k| named.contains(k));
        self.schedule.retain(|k| named.contains(k));

        // A service backing off sits this pass out until its time: not resolved, observed or converged.
        let started = Instant::now();
        let mut due = fleet.clone();
        due.services.retain(|s| !self.backing.waiting(&(s.cluster.clone(), s.name.clone()), started));

        // Resolve each service on its own: one missing tag does not stop the rest of the fleet.
        let resolved = match reconcile::resolve::resolve_each(
            &due,
            self.backend.images.as_ref(),
            self.backend.secrets.as_ref(),
            self.backend.target_groups.as_ref(),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => return self.observe_failed(&e.to_string(), None),
        };
        let mut desired = Vec::new();
        for (svc, res) in due.services.iter().zip(resolved) {
            match res {
                Ok(res) => desired.push(match self.owner() {
                    Some(owner) => Desired::new(svc, &res).owned_by(owner),
                    None => Desired::new(svc, &res),
                }),
                Err(problems) => {
                    for p in &problems {
                        warn!(service = %svc.name, cluster = %svc.cluster, problem = %p, "cannot resolve; service left as it is");
                    }
                    self.shared.metrics.reconcile("unresolved");
                    let key = (svc.cluster.clone(), svc.name.clone());
                    let problems = problems.iter().map(ToString::to_string).collect();
                    self.error_policy(&key, &ReconcileFailure::Unresolved(problems));
                }
            }
        }
        let extra: Vec<String> = fleet.default_cluster.iter().cloned().collect();
        let mut observed = match reconcile::observe_clusters(&desired, &extra, ecs.as_ref(), self.opts.prune).await {
            Ok(o) => o,
            Err(e) => return self.observe_failed(&e.to_string(), Some(ErrorKind::from(&e))),
        };
        // A service that is in the manifests but did not resolve or is backing off is not "gone": never prune it.
        observed.unlisted.retain(|s| !named.contains(&(s.cluster.clone(), s.name.clone())));
        if let Err(e) = reconcile::scaling::observe(&desired, &mut observed, self.backend.autoscaling.as_ref()).await {
            return self.observe_failed(&e.to_string(), Some(ErrorKind::from(&e)));
        }
        {
            let mut s = crate::backend::lock(&self.shared.status);
            s.observe_error = None;
            s.observed_once = true;
        }

        // The lease is checked again before each batch of writes: a leader that could not renew writes nothing.
        if !self.leads() {
            return warn!("the lease is no longer held: this pass writes nothing");
        }
        let in_flight = self.settle_in_flight(&desired, &observed).await;
        let (busy, mut states) = (in_flight.busy, in_flight.states);
        let failed_rollbacks: BTreeSet<String> = in_flight.failed_rollbacks.iter().cloned().collect();
        crate::backend::lock(&self.shared.status).failed_rollbacks = in_flight.failed_rollbacks;
        for d in desired.iter().filter(|d| busy.contains(&d.ecs.name)) {
            self.schedule.record(&(d.ecs.cluster.clone(), d.ecs.name.clone()), Action::Requeue(FAST), started);
        }

        let mut plan = self.plan(&desired, &observed, &busy).await;
        let room = self.opts.rotation_concurrency.saturating_sub(reconcile::rotation::in_flight(&observed));
        reconcile::rotation::spread(&mut plan, room);
        // A held spec (its rollout failed) is settled, on its last good revision or on the failed deployment, but
        // it is not what the manifest asks for: the service counts as failed until the spec changes. (A failed
        // rollback is counted as failed already.)
        let held = plan
            .services
            .iter()
            .filter(|p| held(p) && !failed_rollbacks.contains(&format!("{}/{}", p.cluster, p.name)))
            .count() as u64;
        let converged = states.entry("converged").or_default();
        *converged = converged.saturating_sub(held);
        *states.entry("failed").or_default() += held;

        if !self.leads() {
            return warn!("the lease is no longer held: this pass writes nothing");
        }
        self.claim(&desired, &observed).await;
        let results = self.reconcile_services(&desired, &plan, &observed).await;
        let now = Instant::now();
        // A service this pass changed (or failed to) runs something other than what was observed: not probed.
        let mut moving = busy;
        for (key, result) in results {
            if !matches!(result, Ok(Action::AwaitChange)) {
                moving.insert(key.1.clone());
            }
            match result {
                Ok(action) => {
                    self.backing.succeeded(&key);
                    self.schedule.record(&key, action, now);
                }
                Err(e) => {
                    self.shared.metrics.reconcile(Outcome::Failed.as_str());
                    self.error_policy(&key, &e);
                }
            }
        }
        self.reprobe(&desired, &observed, &moving).await;
        let backing_off = self.backing.waiting_count(Instant::now()) as i64;
        for state in ["converged", "rolling_out", "settling", "failed"] {
            let n = states.get(state).copied().unwrap_or(0) as i64;
            self.shared.metrics.services.get_or_create(&StateLabel { state: state.into() }).set(n);
        }
        self.shared.metrics.services.get_or_create(&StateLabel { state: "backing_off".into() }).set(backing_off);
        self.shared.metrics.passes.get_or_create(&metrics::OutcomeLabel { outcome: "ok".into() }).inc();
    }

    /// Reconciles every planned service, `concurrency` at a time; results in plan order.
    async fn reconcile_services(
        &self,
        desired: &[Desired],
        plan: &Plan,
        observed: &Observed,
    ) -> Vec<(Key, Result<Action, ReconcileFailure>)> {
        let by_key: BTreeMap<(&str, &str), &Desired> =
            desired.iter().map(|d| ((d.ecs.cluster.as_str(), d.ecs.name.as_str()), d)).collect();
        let opts = ApplyOptions {
            prune: self.opts.prune,
            concurrency: self.opts.concurrency,
            stop: Some(self.stop.clone()),
            autoscaling: Some(self.backend.autoscaling.clone()),
        };
        let opts = &opts;
        let steps = plan.services.iter().map(|p| {
            let d = by_key.get(&(p.cluster.as_str(), p.name.as_str())).copied();
            let obs = observed.get(&p.cluster, &p.name);
            async move { ((p.cluster.clone(), p.name.clone()), self.reconcile_service(p, d, obs, opts).await) }
        });
        futures::stream::iter(steps).buffered(self.opts.concurrency.max(1)).collect().await
    }

    /// Converges one service to its plan and says when to look at it again: soon while the rollout it started is
    /// in flight, otherwise at the next change or periodic pass.
    async fn reconcile_service(
        &self,
        p: &ServicePlan,
        d: Option<&Desired>,
        obs: Option<&ServiceState>,
        opts: &ApplyOptions,
    ) -> Result<Action, ReconcileFailure> {
        let progress = |service: &str, step: &str| {
            self.shared.beat();
            info!(service, step, "converging");
        };
        let o = reconcile::apply_one(p, d, obs, self.backend.ecs.as_ref(), opts, &progress).await?;
        let outcome = if held(p) { "held" } else { o.outcome.as_str() };
        self.shared.metrics.reconcile(outcome);
        if p.action != PlanAction::Noop {
            if p.reason == Some(PlanReason::Drift) {
                self.shared.metrics.drift_corrections.inc();
                warn!(service = %o.name, cluster = %o.cluster, revision = o.task_definition.as_deref().unwrap_or("-"), changes = ?p.changes.iter().map(|c| &c.path).collect::<Vec<_>>(), "drift corrected");
            }
            if let Some(deployment) = &o.restart {
                self.shared.metrics.secret_restart("started");
                info!(service = %o.name, cluster = %o.cluster, deployment, reason = %o.message, "restarting for a rotated secret");
            }
            info!(service = %o.name, cluster = %o.cluster, revision = o.task_definition.as_deref().unwrap_or("-"), outcome, "reconciled");
        }
        Ok(match o.outcome {
            Outcome::Created | Outcome::Updated => Action::Requeue(FAST),
            _ => Action::AwaitChange,
        })
    }

    /// The error policy: counts the failure by kind and backs the service off by its kind's policy.
    fn error_policy(&mut self, key: &Key, failure: &ReconcileFailure) {
        let kind = failure.kind();
        self.shared.metrics.reconcile_error(kind);
        let now = Instant::now();
        let wait = self.backing.failed(key, kind, now);
        self.schedule.record(key, Action::Requeue(wait), now);
        error!(service = %key.1, cluster = %key.0, error = %failure, kind = kind.as_str(), backoff_s = wait.as_secs_f64(), "reconcile failed; backing off");
    }

    /// A pass that could not resolve or observe at all; `kind` is counted when the failure has one.
    fn observe_failed(&self, error: &str, kind: Option<ErrorKind>) {
        error!(error, "observe pass failed");
        if let Some(kind) = kind {
            self.shared.metrics.reconcile_error(kind);
        }
        crate::backend::lock(&self.shared.status).observe_error = Some(error.to_string());
        self.shared.metrics.passes.get_or_create(&metrics::OutcomeLabel { outcome: "failed".into() }).inc();
    }

    /// The plan for services that are not in flight.
    async fn plan(&self, desired: &[Desired], observed: &Observed, busy: &BTreeSet<String>) -> Plan {
        let free: Vec<Desired> = desired.iter().filter(|d| !busy.contains(&d.ecs.name)).cloned().collect();
        let opts = reconcile::PlanOptions { retry_failed: false, changes: false };
        match reconcile::plan_fleet_with(&free, observed, self.backend.ecs.as_ref(), opts).await {
            Ok(p) => p,
            Err(e) => {
                error!(error = %e, "planning failed");
                Plan::default()
            }
        }
    }
}

/// Whether a plan holds back a spec whose rollout failed (nothing to do, for a reason).
fn held(p: &ServicePlan) -> bool {
    p.action == PlanAction::Noop && p.reason == Some(PlanReason::Held)
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

#[cfg(test)]
mod tests;
