//! Reconcile: resolve the desired state, observe ECS, plan, and converge through the ports.
//!
//! The order is the safety contract: the whole fleet is resolved (every digest, architecture and secret ARN)
//! before anything is written, so a bad tag or a missing secret changes nothing. Each service is then converged
//! idempotently: a task-definition revision with the same content is reused rather than registered again, and
//! the service's tags are written last, so a run interrupted between register and update is finished, not
//! duplicated, by the next one.

pub mod cost;
pub mod endpoints;
pub mod resolve;
pub mod retention;
pub mod rollout;
pub mod rotation;
pub mod scaling;
pub mod settle;
pub mod verify;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use crate::backend::{
    Autoscaling, Backend, BackendError, DESCRIBE_SERVICES_BATCH, Ecs, Op, ServiceState, ServiceUpdate, TaskDefinition,
    TdStatus,
};
use crate::plan::moves::Candidate;
use crate::plan::scaling::ObservedScaling;
use crate::plan::{self, Action, Plan, PlanReason, ServicePlan};
use crate::render::autoscaling::resource_id;
use crate::render::ecs::{self, EcsService};
use crate::render::{CpuArch, Resolved};
use crate::spec::{ValidFleet, ValidMcp, ValidRollout, ValidService};
use crate::state::{self, RevisionTags, ServiceTags, TaskDefArn};

/// Why a reconcile could not proceed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReconcileError {
    /// Images, secrets or target groups that could not be resolved (or resolved to something the service cannot
    /// use); nothing was written.
    #[error(
        "{}; nothing was changed:\n  {}",
        resolve::summary(.0),
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
    )]
    Resolution(Vec<resolve::Problem>),
    /// Services that exist under a desired name but are not managed by mcpfleet; nothing was written.
    #[error("{} service(s) exist but are not managed by mcpfleet (tag them mcpfleet.io/managed-by=mcpfleet to adopt); nothing was changed:\n  {}", .0.len(), .0.join("\n  "))]
    Unmanaged(Vec<String>),
    /// A backend call failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// One service as it should be: the ECS documents rendered from its validated, resolved spec, and the rollout
/// policy that watching them needs. Only what later steps read is kept: a fleet's specs are not copied a second
/// time for every pass.
#[derive(Debug, Clone)]
pub struct Desired {
    pub rollout: ValidRollout,
    /// What a rollout must show MCP clients before it is good.
    pub mcp: ValidMcp,
    pub ecs: EcsService,
    /// Resolution's warnings about this service (see [`Resolved::warnings`]), for the caller to show.
    pub warnings: Vec<String>,
    /// The image's index lists `linux/arm64` (see [`Resolved::platforms`]): where `mcpfleet cost` suggests ARM64.
    pub arm64_image: bool,
}

impl Desired {
    /// Says, in the managed-by tag the service is created and updated with, that the controller holding the
    /// lease `owner` owns it (see `state::managed_by`).
    pub fn owned_by(mut self, owner: &str) -> Self {
        for t in self.ecs.create_service.tags.iter_mut().filter(|t| t.key == state::TAG_MANAGED_BY) {
            t.value = state::managed_by(Some(owner));
        }
        self
    }

    /// Renders one service from its spec and resolution.
    pub fn new(svc: &ValidService, res: &Resolved) -> Self {
        Desired {
            rollout: svc.rollout.clone(),
            mcp: svc.mcp.clone(),
            ecs: ecs::render(svc, res),
            warnings: res.warnings.clone(),
            arm64_image: res.platforms.iter().any(|p| p == CpuArch::Arm64.platform()),
        }
    }
}

/// Resolves and renders the whole fleet.
pub async fn desired_state(fleet: &ValidFleet, backend: &Backend) -> Result<Vec<Desired>, ReconcileError> {
    let resolved = resolve_fleet(fleet, backend).await?;
    Ok(fleet.services.iter().zip(resolved).map(|(svc, res)| Desired::new(svc, &res)).collect())
}

/// [`desired_state`] for a caller done with the specs: each service's spec is freed as soon as it is rendered,
/// so the fleet's specs and its rendered documents are never all in memory at once (at 10,000 services each
/// is tens of megabytes).
pub async fn into_desired_state(fleet: ValidFleet, backend: &Backend) -> Result<Vec<Desired>, ReconcileError> {
    let resolved = resolve_fleet(&fleet, backend).await?;
    Ok(fleet.services.into_iter().zip(resolved).map(|(svc, res)| Desired::new(&svc, &res)).collect())
}

async fn resolve_fleet(fleet: &ValidFleet, backend: &Backend) -> Result<Vec<Resolved>, ReconcileError> {
    resolve::resolve(fleet, backend.images.as_ref(), backend.secrets.as_ref(), backend.target_groups.as_ref()).await
}

/// What ECS has: the desired services that exist, and managed services of the same clusters that no desired
/// service names (candidates for `--prune`); and what Application Auto Scaling has for those that have or want
/// autoscaling (filled by [`scaling::observe`]).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub services: BTreeMap<(String, String), ServiceState>,
    pub unlisted: Vec<ServiceState>,
    /// By (cluster, name); a service absent here was not read and plans no autoscaling step.
    pub scaling: BTreeMap<(String, String), ObservedScaling>,
}

impl Observed {
    pub fn get(&self, cluster: &str, name: &str) -> Option<&ServiceState> {
        self.services.get(&(cluster.to_string(), name.to_string()))
    }

    /// What Application Auto Scaling has for a service, when it was read.
    pub fn scaling_of(&self, cluster: &str, name: &str) -> Option<&ObservedScaling> {
        self.scaling.get(&(cluster.to_string(), name.to_string()))
    }
}

/// DescribeServices requests in flight at once (across clusters and batches): enough to keep ECS's
/// DescribeServices bucket busy at AWS's latency; the bucket (`backend::limits`), not this, sets the pace.
pub const DESCRIBES_AT_ONCE: usize = 8;

/// Describes services in batches of ten per cluster, up to [`DESCRIBES_AT_ONCE`] batches at a time; the answer
/// keeps the clusters' and batches' order.
pub async fn describe_all(
    ecs: &dyn Ecs,
    wanted: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<ServiceState>, BackendError> {
    let batches = wanted.iter().flat_map(|(cluster, names)| {
        names.chunks(DESCRIBE_SERVICES_BATCH).map(move |chunk| ecs.describe_services(cluster, chunk))
    });
    // Each answer is moved out as it arrives, into a list sized for every service asked about: collecting the
    // answers first, and growing the list by doubling, held about three lists' worth of services at once (at
    // 10,000 services, 8 MB more at the peak of `plan`).
    let mut answers = std::pin::pin!(futures::stream::iter(batches).buffered(DESCRIBES_AT_ONCE));
    let mut out = Vec::with_capacity(wanted.values().map(Vec::len).sum());
    while let Some(answer) = answers.next().await {
        out.extend(answer?.services);
    }
    Ok(out)
}

/// Observes the desired services (⌈N/10⌉ DescribeServices) and, with `list`, the other managed services of
/// their clusters (one ListServices per cluster, plus describes of names not in the fleet).
pub async fn observe(desired: &[Desired], ecs: &dyn Ecs, list: bool) -> Result<Observed, BackendError> {
    observe_clusters(desired, &[], ecs, list).await
}

/// [`observe`], also listing `extra_clusters` (the fleet's default cluster): a cluster the last desired service
/// moved off still has managed services that `--prune` must see.
pub async fn observe_clusters(
    desired: &[Desired],
    extra_clusters: &[String],
    ecs: &dyn Ecs,
    list: bool,
) -> Result<Observed, BackendError> {
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in desired {
        wanted.entry(d.ecs.cluster.clone()).or_default().push(d.ecs.name.clone());
    }
    let mut observed = Observed::default();
    for s in describe_all(ecs, &wanted).await? {
        observed.services.insert((s.cluster.clone(), s.name.clone()), s);
    }
    if list {
        let mut clusters: BTreeMap<&str, BTreeSet<&String>> =
            wanted.iter().map(|(c, names)| (c.as_str(), names.iter().collect())).collect();
        for c in extra_clusters {
            clusters.entry(c.as_str()).or_default();
        }
        let mut others: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (cluster, known) in clusters {
            let listed = match ecs.list_services(cluster).await {
                Ok(listed) => listed,
                // A default cluster that no service uses may not exist at all: nothing to prune there.
                Err(BackendError::NotFound { .. }) if !wanted.contains_key(cluster) => continue,
                Err(e) => return Err(e),
            };
            let rest: Vec<String> = listed.into_iter().filter(|n| !known.contains(n)).collect();
            if !rest.is_empty() {
                others.insert(cluster.to_string(), rest);
            }
        }
        observed.unlisted = describe_all(ecs, &others).await?.into_iter().filter(plan::is_managed).collect();
    }
    Ok(observed)
}

/// Plans the fleet, with field-level changes: describes the current task definition of each service that will
/// be updated; a converged fleet costs no describe at all.
pub async fn plan_fleet(desired: &[Desired], observed: &Observed, ecs: &dyn Ecs) -> Result<Plan, ReconcileError> {
    plan_fleet_with(desired, observed, ecs, PlanOptions { retry_failed: false, changes: true }).await
}

/// What a plan includes.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Plan specs whose rollout failed and was rolled back (`apply --retry-failed`).
    pub retry_failed: bool,
    /// List field changes of updates (one DescribeTaskDefinition each); apply and the controller do without.
    pub changes: bool,
}

/// [`plan_fleet`] with options.
pub async fn plan_fleet_with(
    desired: &[Desired],
    observed: &Observed,
    ecs: &dyn Ecs,
    opts: PlanOptions,
) -> Result<Plan, ReconcileError> {
    plan_fleet_described(desired, observed, ecs, opts, &mut BTreeMap::new()).await
}

/// [`plan_fleet_with`], keeping the task definitions it described, by ARN, in `described` (the plan's cost line
/// reads the same revisions: they are not described twice).
pub async fn plan_fleet_described(
    desired: &[Desired],
    observed: &Observed,
    ecs: &dyn Ecs,
    opts: PlanOptions,
    described: &mut BTreeMap<String, TaskDefinition>,
) -> Result<Plan, ReconcileError> {
    let retry_failed = opts.retry_failed;
    let unmanaged: Vec<String> = desired
        .iter()
        .filter_map(|d| observed.get(&d.ecs.cluster, &d.ecs.name))
        .filter(|o| o.is_active() && !plan::is_managed(o))
        .map(|o| format!("{} in cluster {}", o.name, o.cluster))
        .collect();
    if !unmanaged.is_empty() {
        return Err(ReconcileError::Unmanaged(unmanaged));
    }
    let mut plans = Vec::new();
    for d in desired {
        let obs = observed.get(&d.ecs.cluster, &d.ecs.name);
        let mut p = plan::plan_service_with(&d.ecs, obs, None, retry_failed);
        if opts.changes
            && p.action == Action::Update
            && p.reason.is_none()
            && let Some(o) = obs
        {
            let current = ecs.describe_task_definition(&o.task_definition).await.ok();
            p = plan::plan_service_with(&d.ecs, obs, current.as_ref(), retry_failed);
            described.extend(current.map(|td| (o.task_definition.clone(), td)));
        }
        if let Some(scaling) = observed.scaling_of(&d.ecs.cluster, &d.ecs.name) {
            let recorded = obs.filter(|o| o.is_active()).and_then(|o| state::ServiceTags::of(o).autoscaling);
            plan::with_scaling(&mut p, d.ecs.autoscaling.as_ref(), scaling, recorded);
        }
        plans.push(p);
    }
    let mut deletes = plan::plan_deletes(desired.iter().map(|d| &d.ecs), &observed.unlisted);
    for p in &mut deletes {
        let unlisted = observed.unlisted.iter().find(|s| s.cluster == p.cluster && s.name == p.name);
        if let (Some(scaling), Some(s)) = (observed.scaling_of(&p.cluster, &p.name), unlisted) {
            plan::with_scaling(p, None, scaling, state::ServiceTags::of(s).autoscaling);
        }
    }
    plans.extend(deletes);
    let planned: BTreeSet<(&str, &str)> =
        desired.iter().map(|d| (d.ecs.cluster.as_str(), d.ecs.name.as_str())).collect();
    let unplanned = observed.services.values().filter(|s| !planned.contains(&(s.cluster.as_str(), s.name.as_str())));
    let candidates: Vec<Candidate> = desired
        .iter()
        .map(|d| Candidate::desired(&d.ecs))
        .chain(unplanned.filter(|s| s.is_active()).map(Candidate::observed))
        .collect();
    plan::moves::mark_successors(&mut plans, &candidates, &observed.unlisted, |c, n| observed.get(c, n));
    Ok(plan::assemble(plans))
}

/// What happened to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Unchanged,
    Created,
    Updated,
    Deleted,
    RolledBack,
    Failed,
}

impl Outcome {
    /// The word used in JSON output, tables and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Deleted => "deleted",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
        }
    }
}

/// The result of converging one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceOutcome {
    pub name: String,
    pub cluster: String,
    pub outcome: Outcome,
    pub task_definition: Option<String>,
    pub message: String,
    /// The deployment a secret rotation's restart started (see [`crate::state::secrets`]): watched like a rollout,
    /// but its failure rolls nothing back and holds nothing.
    #[serde(skip)]
    pub restart: Option<String>,
}

/// How apply runs.
#[derive(Clone)]
pub struct ApplyOptions {
    /// Delete managed services that are no longer in the manifests.
    pub prune: bool,
    /// Services converged at once.
    pub concurrency: usize,
    /// Set when shutting down: steps not yet started are skipped; started ones finish.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Where a plan's autoscaling steps go. A plan only has such steps when Application Auto Scaling was read
    /// ([`scaling::observe`]); without the port, a service that has some fails rather than half-converges.
    pub autoscaling: Option<std::sync::Arc<dyn Autoscaling>>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions { prune: false, concurrency: 8, stop: None, autoscaling: None }
    }
}

impl std::fmt::Debug for ApplyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyOptions")
            .field("prune", &self.prune)
            .field("concurrency", &self.concurrency)
            .field("stop", &self.stop)
            .field("autoscaling", &self.autoscaling.is_some())
            .finish()
    }
}

/// Apply's message for a managed service no longer in the manifests, without `--prune`.
const KEPT_ORPHAN: &str = "not in the manifests; kept (use --prune to delete)";

/// Receives progress lines: (service, what is happening).
pub type Progress<'a> = &'a (dyn Fn(&str, &str) + Sync);

/// Executes a plan. Returns one outcome per planned service, in plan order.
pub async fn apply(
    desired: &[Desired],
    plan: &Plan,
    observed: &Observed,
    ecs: &dyn Ecs,
    opts: &ApplyOptions,
    progress: Progress<'_>,
) -> Vec<ServiceOutcome> {
    let by_key: BTreeMap<(&str, &str), &Desired> =
        desired.iter().map(|d| ((d.ecs.cluster.as_str(), d.ecs.name.as_str()), d)).collect();
    let steps = plan.services.iter().map(|p| {
        let d = by_key.get(&(p.cluster.as_str(), p.name.as_str())).copied();
        let obs = observed.get(&p.cluster, &p.name);
        async move {
            apply_one(p, d, obs, ecs, opts, progress).await.unwrap_or_else(|e| {
                progress(&p.name, &format!("failed: {e}"));
                ServiceOutcome {
                    name: p.name.clone(),
                    cluster: p.cluster.clone(),
                    outcome: Outcome::Failed,
                    task_definition: None,
                    message: e.to_string(),
                    restart: None,
                }
            })
        }
    });
    futures::stream::iter(steps).buffered(opts.concurrency.max(1)).collect().await
}

/// After the rollouts of an apply were watched (`apply --prune --wait`): deletes each service kept for a successor
/// (a move or a rename, see [`plan::moves`]) that is healthy now; one whose successor is not stays, serving.
/// `outcomes` are [`apply`]'s, in plan order.
pub async fn delete_replaced(
    ecs: &dyn Ecs,
    plan: &Plan,
    outcomes: &mut [ServiceOutcome],
    opts: &ApplyOptions,
    progress: Progress<'_>,
) -> Result<(), BackendError> {
    for (p, o) in plan.services.iter().zip(outcomes.iter_mut()) {
        let Some(successor) = p.replaced_by.as_ref().filter(|s| p.action == Action::Delete && !s.healthy) else {
            continue;
        };
        let now = ecs.describe_services(&successor.cluster, std::slice::from_ref(&successor.name)).await?;
        if now.services.iter().any(|s| s.name == successor.name && plan::moves::is_healthy(s)) {
            run_scaling(p, None, ecs, opts, progress).await?;
            progress(&p.name, "deleting");
            ecs.delete_service(&p.cluster, &p.name).await?;
            o.outcome = Outcome::Deleted;
            o.message = format!("deleted: {} is healthy", successor.describe());
        } else {
            o.message = format!("kept: {} is not healthy; it keeps serving", successor.describe());
        }
    }
    Ok(())
}

/// Executes one service's plan (`d` is its desired state, `obs` what runs). The error stays typed, so a caller
/// can decide from its kind (the controller backs off differently for throttling, a refused request or an outage);
/// [`apply`] turns it into a failed outcome.
pub async fn apply_one(
    p: &ServicePlan,
    d: Option<&Desired>,
    obs: Option<&ServiceState>,
    ecs: &dyn Ecs,
    opts: &ApplyOptions,
    progress: Progress<'_>,
) -> Result<ServiceOutcome, BackendError> {
    let stopping = opts.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst));
    if stopping && !matches!(p.action, Action::Noop | Action::Orphan) {
        return Ok(ServiceOutcome {
            name: p.name.clone(),
            cluster: p.cluster.clone(),
            outcome: Outcome::Unchanged,
            task_definition: obs.map(|o| o.task_definition.clone()),
            message: "skipped: shutting down".into(),
            restart: None,
        });
    }
    let reason = || p.reason.as_ref().map(|r| r.to_string());
    let mut restart = None;
    let (outcome, task_definition, message) = match (p.action, d) {
        (Action::Noop, _) => (Outcome::Unchanged, obs.map(|o| o.task_definition.clone()), reason().unwrap_or_default()),
        (Action::Orphan, _) => (Outcome::Unchanged, None, KEPT_ORPHAN.into()),
        (Action::Delete, _) if !opts.prune => (Outcome::Unchanged, None, KEPT_ORPHAN.into()),
        (Action::Delete, _) if p.replaced_by.as_ref().is_some_and(|s| !s.healthy) => {
            (Outcome::Unchanged, None, reason().unwrap_or_default())
        }
        (Action::Delete, _) => {
            // Its autoscaling goes first, so the autoscaler does not act on a service being deleted.
            run_scaling(p, None, ecs, opts, progress).await?;
            progress(&p.name, "deleting");
            ecs.delete_service(&p.cluster, &p.name).await?;
            (Outcome::Deleted, None, "deleted".into())
        }
        (Action::Create, Some(d)) => {
            let (td, arn) = converge(ecs, d, None, progress).await?;
            run_scaling(p, Some(&arn), ecs, opts, progress).await?;
            (Outcome::Created, Some(td), "created".into())
        }
        (Action::Update, Some(d)) if let Some(o) = obs.filter(|_| p.reason == Some(PlanReason::SecretRotated)) => {
            relabel(ecs, d, o, progress).await?;
            let rotated: Vec<String> = p.rotated.iter().map(ToString::to_string).collect();
            restart = Some(rotation::restart(ecs, d, o, &rotated.join(", "), progress).await?);
            run_scaling(p, Some(&o.arn), ecs, opts, progress).await?;
            (Outcome::Updated, Some(o.task_definition.clone()), format!("restarted: {}", rotated.join(", ")))
        }
        (Action::Update, Some(d)) if let Some(o) = obs.filter(|o| held(p) || plan::only_labels(&d.ecs, o)) => {
            let relabelled = relabel(ecs, d, o, progress).await?;
            run_scaling(p, Some(&o.arn), ecs, opts, progress).await?;
            let what = match (relabelled, !p.scaling.is_empty()) {
                (true, true) => "labels and autoscaling updated",
                (true, false) => "labels updated",
                _ => "autoscaling updated",
            };
            // A held spec stays held: the revision it runs is not one this apply rolled out, so it is not watched.
            match held(p) {
                true => (Outcome::Updated, None, format!("{what}; {}", reason().unwrap_or_default())),
                false => (Outcome::Updated, Some(o.task_definition.clone()), what.into()),
            }
        }
        (Action::Update, Some(d)) => {
            // Autoscaling taken away goes before the update that sets the fixed count; added or changed
            // autoscaling follows the update.
            let removes = p.scaling.removes();
            if removes {
                run_scaling(p, obs.map(|o| o.arn.as_str()), ecs, opts, progress).await?;
            }
            let (td, arn) = converge(ecs, d, obs, progress).await?;
            if !removes {
                run_scaling(p, Some(&arn), ecs, opts, progress).await?;
            }
            (Outcome::Updated, Some(td), reason().unwrap_or_else(|| "updated".into()))
        }
        (_, None) => (Outcome::Unchanged, None, String::new()),
    };
    Ok(ServiceOutcome { name: p.name.clone(), cluster: p.cluster.clone(), outcome, task_definition, message, restart })
}

/// Registers (or reuses) the task definition, then creates or updates the service and records the new state in
/// its tags. Returns the task-definition ARN and the service's.
async fn converge(
    ecs: &dyn Ecs,
    d: &Desired,
    observed: Option<&ServiceState>,
    progress: Progress<'_>,
) -> Result<(String, String), BackendError> {
    let td = ensure_task_definition(ecs, &d.ecs, observed, progress).await?;
    let input = plan::service_with_revision(&d.ecs.create_service, &td);
    let arn = match observed.filter(|o| o.is_active()) {
        None => {
            progress(&d.ecs.name, "creating service");
            ecs.create_service(&input, None).await?.arn
        }
        Some(o) => {
            record_unwatched_good(ecs, d, o, progress).await?;
            progress(&d.ecs.name, "updating service");
            let mut update = ServiceUpdate::converge(&input, &td, o);
            // A secret rotated as well: the update restarts the tasks even where it would start no deployment.
            let rotated = !plan::restarts(&d.ecs, o).is_empty();
            update.force_new_deployment = rotated;
            // While autoscaling is on the count is the autoscaler's: only one outside its bounds is set (to the
            // nearest bound).
            if let Some(a) = &d.ecs.autoscaling {
                update.desired_count = a.bounds().correction(o.desired_count);
            }
            ecs.update_service(&update).await?;
            let mut tags: crate::backend::Tags = input.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect();
            let mut gone = plan::labels::removed(&d.ecs, &o.tags);
            rotation::keep_versions(d, o, &td, rotated, &mut tags, &mut gone);
            // A service no longer verified drops its last verification: the tag is room its labels may need.
            if !d.mcp.verified() && o.tags.contains_key(state::TAG_VERIFICATION) {
                gone.push(state::TAG_VERIFICATION.to_string());
            }
            // Removed first, so a swap of labels at ECS's 50 tags never passes through 51.
            if !gone.is_empty() {
                ecs.untag_resource(&o.arn, &gone).await?;
            }
            ecs.tag_resource(&o.arn, &tags).await?;
            o.arn.clone()
        }
    };
    Ok((td, arn))
}

/// The revision running now may have completed without anyone watching (apply without --wait): it is recorded
/// as last-good before a new rollout starts, so a failure of that rollout can be rolled back. A verified service's
/// revision is good only once the MCP gate passed it, which the settle path did before planning (see
/// `settle::settle_found`): what it has not recorded is not good.
pub(crate) async fn record_unwatched_good(
    ecs: &dyn Ecs,
    d: &Desired,
    o: &ServiceState,
    progress: Progress<'_>,
) -> Result<(), BackendError> {
    if !d.mcp.verified()
        && let Some(good) =
            rollout::record_proven_good(ecs, o, state::applied_networking(o, Some(&d.ecs)).as_ref()).await?
    {
        progress(&d.ecs.name, &format!("recorded {} as last good", TaskDefArn(&good)));
    }
    Ok(())
}

/// Whether a plan holds its spec back (a failed rollout): only its labels and autoscaling may change.
fn held(p: &ServicePlan) -> bool {
    p.reason == Some(PlanReason::Held)
}

/// A plan's autoscaling steps on the service `arn` (None for a service being deleted: its tag goes with it).
async fn run_scaling(
    p: &ServicePlan,
    arn: Option<&str>,
    ecs: &dyn Ecs,
    opts: &ApplyOptions,
    progress: Progress<'_>,
) -> Result<(), BackendError> {
    if p.scaling.is_empty() {
        return Ok(());
    }
    let Some(port) = opts.autoscaling.as_deref() else {
        return Err(BackendError::Invalid {
            operation: Op::RegisterScalableTarget,
            message: format!("{}: autoscaling steps were planned without Application Auto Scaling", p.name),
        });
    };
    scaling::converge(port, ecs, &p.name, &resource_id(&p.cluster, &p.name), arn, &p.scaling, progress).await
}

/// A change of labels alone: the service and the revision it runs are retagged (labels added or changed, those
/// mcpfleet owns and no longer wants removed); nothing is registered or deployed. Returns whether the labels
/// changed (an update of autoscaling alone leaves them).
async fn relabel(ecs: &dyn Ecs, d: &Desired, o: &ServiceState, progress: Progress<'_>) -> Result<bool, BackendError> {
    if plan::labels::changes(&d.ecs, &o.tags).is_empty() {
        return Ok(false);
    }
    progress(&d.ecs.name, "updating labels");
    let (tags, gone) = (plan::labels::tags(&d.ecs), plan::labels::removed(&d.ecs, &o.tags));
    // The revision's tool record (of a verification, now or before) may fill the tags new labels need.
    if tags.keys().any(|k| !o.tags.contains_key(k)) {
        verify::make_room(ecs, &o.task_definition, &tags).await?;
    }
    for arn in [&o.arn, &o.task_definition] {
        // Removed first, so a swap of labels at ECS's 50 tags never passes through 51.
        if !gone.is_empty() {
            ecs.untag_resource(arn, &gone).await?;
        }
        if !tags.is_empty() {
            ecs.tag_resource(arn, &tags).await?;
        }
    }
    Ok(true)
}

/// The ARN of a revision with exactly the desired content, else a new one. Looked for, in order: the family's
/// latest ACTIVE revision (a re-run, a replica-only change, or a run interrupted after registering), then the
/// revisions the observed service names (its `task-definition` and `last-good` tags, the revision it runs): a
/// spec reverted to one of those reuses it instead of registering a duplicate.
async fn ensure_task_definition(
    ecs: &dyn Ecs,
    d: &EcsService,
    observed: Option<&ServiceState>,
    progress: Progress<'_>,
) -> Result<String, BackendError> {
    let want = state::desired_task_hash(&d.register_task_definition);
    let transport = ecs::transport_of(state::rendered_transport(&d.register_task_definition));
    // The transport is only a tag, but a revision records what it was deployed as: a transport change registers a
    // revision of the same content rather than reusing one tagged with the other transport.
    let reusable = |td: &crate::backend::TaskDefinition| {
        let tags = RevisionTags::parse(&td.tags);
        td.status == TdStatus::Active
            && td.family == d.register_task_definition.family
            && tags.task_hash == want
            && ecs::transport_of(tags.image.transport) == transport
    };
    // Describing the bare family answers its latest ACTIVE revision: one request, and an error when there is none.
    let mut seen = BTreeSet::new();
    match ecs.describe_task_definition(&d.register_task_definition.family).await {
        Ok(td) if reusable(&td) => return Ok(td.arn),
        Ok(td) => {
            seen.insert(td.arn);
        }
        Err(BackendError::Invalid { .. } | BackendError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    for arn in reuse_candidates(observed) {
        if !seen.insert(arn.to_string()) {
            continue;
        }
        match ecs.describe_task_definition(arn).await {
            Ok(td) if reusable(&td) => return Ok(td.arn),
            Ok(_) | Err(BackendError::Invalid { .. } | BackendError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    progress(&d.name, "registering task definition");
    Ok(ecs.register_task_definition(&d.register_task_definition).await?.arn)
}

/// Revisions an observed service names, without repeats: the one it was applied with, its last good one, the
/// one it runs.
fn reuse_candidates(observed: Option<&ServiceState>) -> Vec<&str> {
    let Some(o) = observed.filter(|o| o.is_active()) else { return vec![] };
    let mut out: Vec<&str> = Vec::new();
    let tags = ServiceTags::of(o);
    for arn in [tags.applied, tags.last_good].into_iter().flatten().chain(std::iter::once(o.task_definition.as_str())) {
        if !arn.is_empty() && !out.contains(&arn) {
            out.push(arn);
        }
    }
    out
}

/// Default poll interval bounds of the rollout watcher.
pub const POLL_MIN: Duration = Duration::from_secs(5);
pub const POLL_MAX: Duration = Duration::from_secs(30);
