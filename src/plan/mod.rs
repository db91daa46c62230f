//! Plans: desired × observed → create / update / noop / delete per service, with field-level changes.
//!
//! Pure: no I/O, no async. Whether a service is up to date is decided by mcpfleet's own tags (the spec-hash and
//! the task definition it was applied with) plus the few service fields someone could change out of band, never
//! by comparing ECS's echo of a task definition field by field; that is what keeps a freshly applied fleet from
//! showing false diffs. Field changes are computed only for display, against what the caller described.

pub mod labels;
pub mod moves;
pub mod scaling;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use serde::Serialize;
use serde_json::Value;

use crate::backend::{ServiceState, TaskDefinition};
use crate::render::autoscaling as scaling_docs;
use crate::render::ecs::{EcsService, ServiceInput, transport_of};
use crate::render::json_of;
use crate::state::networking::{as_set, network_as_sets, service_connect_as_sets};
use crate::state::secrets::{self, Rotated};
use crate::state::{self, ServiceTags, TAG_TASK_DEFINITION};

/// What will happen to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Noop,
    Delete,
    /// A managed service no longer in the manifests, planned without `--prune`: it is kept, and would be deleted
    /// with `--prune`. Never written as `delete`, so a reader of `plan -o json` cannot mistake it for one.
    Orphan,
}

/// One changed field: `from` is absent for additions, `to` for removals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub path: String,
    pub from: Option<Value>,
    pub to: Option<Value>,
}

/// The plan for one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServicePlan {
    pub name: String,
    pub cluster: String,
    pub action: Action,
    pub changes: Vec<Change>,
    /// Why the action was chosen, when it is not obvious (drift, a held-back failed spec).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<PlanReason>,
    /// For a delete: the desired service that replaces this one (a move or a rename). Unless it is healthy, the
    /// delete waits for it.
    #[serde(rename = "replacedBy", skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<moves::Successor>,
    /// What converging the service's autoscaling takes (its changes are among `changes`).
    #[serde(skip)]
    pub scaling: scaling::ScalingSteps,
    /// For a restart ([`PlanReason::SecretRotated`]): the secrets whose version changed since the tasks started.
    #[serde(rename = "rotatedSecrets", skip_serializing_if = "Vec::is_empty")]
    pub rotated: Vec<Rotated>,
}

/// Why a service's action was chosen, when it is not obvious. Shown (and serialized) as a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanReason {
    /// The service was changed outside mcpfleet; the update corrects it.
    Drift,
    /// The spec's rollout failed: it is held back until the manifest changes.
    Held,
    /// A managed service that no manifest names any more (deleted with `--prune`).
    Orphan,
    /// An orphan shown by a plan made without `--prune`.
    KeptWithoutPrune,
    /// A service another one replaces (a move or a rename): deleted once its successor is healthy.
    Replaced(moves::Successor),
    /// A secret the service reads rotated since its tasks started: a new deployment of the same revision restarts
    /// them (the secrets are the plan's `rotated`).
    SecretRotated,
    /// A restart for a rotated secret waits: as many restarts as `--rotation-concurrency` allows are in flight.
    RestartDeferred,
}

impl PlanReason {
    /// The sentence, for the reasons that are one fixed sentence.
    fn fixed(&self) -> Option<&'static str> {
        Some(match self {
            PlanReason::Drift => "drift: the service was changed outside mcpfleet",
            PlanReason::Held => {
                "this spec's rollout failed; it is not deployed again until the spec changes (or apply --retry-failed)"
            }
            PlanReason::Orphan => "managed by mcpfleet and no longer in the manifests",
            PlanReason::KeptWithoutPrune => "not in the manifests; would be deleted with --prune",
            PlanReason::SecretRotated => "a secret it reads rotated since its tasks started",
            PlanReason::RestartDeferred => {
                "a secret it reads rotated; restart deferred until earlier restarts complete (--rotation-concurrency)"
            }
            PlanReason::Replaced(_) => return None,
        })
    }
}

impl std::fmt::Display for PlanReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.fixed(), self) {
            (Some(s), _) => f.write_str(s),
            (None, PlanReason::Replaced(successor)) => f.write_str(&successor.reason()),
            (None, _) => Ok(()),
        }
    }
}

impl Serialize for PlanReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // A word a program can match on; the secrets are the plan's `rotatedSecrets`.
            PlanReason::SecretRotated => s.serialize_str("secretRotated"),
            _ => s.collect_str(self),
        }
    }
}

/// The whole plan, services in (cluster, name) order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub services: Vec<ServicePlan>,
}

impl Plan {
    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        self.services.iter().any(|s| !matches!(s.action, Action::Noop | Action::Orphan))
    }

    pub fn count(&self, action: Action) -> usize {
        self.services.iter().filter(|s| s.action == action).count()
    }

    /// The plan as made without `--prune`: deletes become orphans, kept.
    pub fn without_prune(mut self) -> Plan {
        for s in self.services.iter_mut().filter(|s| s.action == Action::Delete) {
            s.action = Action::Orphan;
            s.reason = Some(PlanReason::KeptWithoutPrune);
        }
        self
    }
}

/// A managed service: tagged managed-by=mcpfleet.
pub fn is_managed(s: &ServiceState) -> bool {
    state::is_managed(s)
}

/// Desired spec-hash of a rendered service.
pub fn spec_hash_of(e: &EcsService) -> &str {
    state::desired_spec_hash(e)
}

/// Whether an observed, managed service already runs `desired`: same spec-hash applied, still on the revision it
/// was applied with, and no out-of-band change to the service fields mcpfleet owns.
pub fn drift(desired: &EcsService, observed: &ServiceState) -> Vec<Change> {
    let mut changes = Vec::new();
    let want = &desired.create_service;
    // With autoscaling the count is the autoscaler's: only a count outside its bounds is drift, corrected to the
    // nearest bound.
    let wanted_count = match &desired.autoscaling {
        Some(a) => a.bounds().correction(observed.desired_count),
        None => Some(want.desired_count).filter(|c| *c != observed.desired_count),
    };
    if let Some(count) = wanted_count {
        changes.push(change("service.desiredCount", observed.desired_count, count));
    }
    if let Some(observed_config) = &observed.deployment_configuration
        && *observed_config != want.deployment_configuration
    {
        diff_values(
            "service.deploymentConfiguration",
            &json_of(observed_config),
            &json_of(&want.deployment_configuration),
            &mut changes,
        );
    }
    if observed.network_configuration != want.network_configuration
        && let (observed_network, wanted_network) =
            (network_as_sets(&observed.network_configuration), network_as_sets(&want.network_configuration))
        && observed_network != wanted_network
    {
        diff_values(
            "service.networkConfiguration",
            &json_of(&observed_network),
            &json_of(&wanted_network),
            &mut changes,
        );
    }
    // Not reported at all (an emulator that ignores it), it is not compared, as the deployment configuration.
    if let Some(observed_sc) = &observed.service_connect_configuration
        && let (observed_sc, wanted_sc) =
            service_connect_as_sets(Some(observed_sc), want.service_connect_configuration.as_ref())
        && observed_sc != wanted_sc
    {
        diff_values("service.serviceConnectConfiguration", &json_of(&observed_sc), &json_of(&wanted_sc), &mut changes);
    }
    if let (observed_lbs, wanted_lbs) = (as_set(&observed.load_balancers), as_set(&want.load_balancers))
        && observed_lbs != wanted_lbs
    {
        changes.push(change("service.loadBalancers", observed_lbs, wanted_lbs));
    }
    // Not reported (moto drops it), it is not compared; ECS's default, 0, is the same as none.
    if let Some(observed_grace) = observed.health_check_grace_period_seconds
        && observed_grace != want.health_check_grace_period_seconds.unwrap_or(0)
    {
        changes.push(change(
            "service.healthCheckGracePeriodSeconds",
            observed_grace,
            want.health_check_grace_period_seconds.unwrap_or(0),
        ));
    }
    if let Some(applied) = ServiceTags::of(observed).applied
        && applied != observed.task_definition
    {
        changes.push(change("service.taskDefinition", &observed.task_definition, applied));
    }
    changes
}

fn change(path: &str, from: impl Serialize + Debug, to: impl Serialize + Debug) -> Change {
    Change { path: path.into(), from: Some(json_of(&from)), to: Some(json_of(&to)) }
}

/// Decides the action for one desired service. `current` is the task definition the service runs, when the
/// caller described it (only needed for the changes of an update).
pub fn plan_service(
    desired: &EcsService,
    observed: Option<&ServiceState>,
    current: Option<&TaskDefinition>,
) -> ServicePlan {
    plan_service_with(desired, observed, current, false)
}

/// [`plan_service`], optionally retrying a spec whose rollout failed and was rolled back (`apply --retry-failed`).
pub fn plan_service_with(
    desired: &EcsService,
    observed: Option<&ServiceState>,
    current: Option<&TaskDefinition>,
    retry_failed: bool,
) -> ServicePlan {
    let mut plan = ServicePlan {
        name: desired.name.clone(),
        cluster: desired.cluster.clone(),
        action: Action::Create,
        changes: vec![],
        reason: None,
        replaced_by: None,
        scaling: scaling::ScalingSteps::default(),
        rotated: vec![],
    };
    let Some(obs) = observed.filter(|o| o.is_active()) else { return plan };
    let hash = spec_hash_of(desired);
    let observed_hash = ServiceTags::of(obs).spec_hash;
    let drifted = drift(desired, obs);
    let relabel = labels::changes(desired, &obs.tags);
    if observed_hash == Some(hash) && drifted.is_empty() {
        plan.action = if relabel.is_empty() { Action::Noop } else { Action::Update };
        plan.changes = relabel;
        plan.rotated = restarts(desired, obs);
        if !plan.rotated.is_empty() {
            plan.action = Action::Update;
            plan.reason = Some(PlanReason::SecretRotated);
        }
        return plan;
    }
    if !retry_failed && state::holds(obs, hash, state::applied_networking(obs, Some(desired)).as_ref()) {
        plan.action = Action::Noop;
        plan.reason = Some(PlanReason::Held);
        return plan;
    }
    plan.action = Action::Update;
    if observed_hash == Some(hash) {
        plan.reason = Some(PlanReason::Drift);
        plan.changes = drifted;
        plan.changes.extend(relabel);
        return plan;
    }
    let mut changes = Vec::new();
    match current {
        Some(td) => {
            let mut want = desired.register_task_definition.clone();
            want.tags.clear();
            diff_values("taskDefinition", &json_of(&td.spec), &json_of(&want), &mut changes);
        }
        None => changes.push(Change {
            path: "taskDefinition".into(),
            from: Some(Value::String(obs.task_definition.clone())),
            to: Some(Value::String("(new revision)".into())),
        }),
    }
    changes.extend(drifted.into_iter().filter(|c| c.path != "service.taskDefinition"));
    changes.extend(transport_change(desired, obs));
    changes.extend(service_connect_added(desired, obs));
    changes.extend(relabel);
    plan.changes = changes;
    plan
}

/// The secrets whose rotation restarts a converged service: those whose version changed since its tasks started
/// (as its tags record), unless it ignores rotations (`secretRotation: ignore`).
pub fn restarts(desired: &EcsService, observed: &ServiceState) -> Vec<Rotated> {
    if !desired.secrets.restarts() {
        return vec![];
    }
    secrets::rotated_on(&desired.secrets.used, observed)
}

/// Adds the autoscaling steps and changes of a service to its plan (see [`scaling::plan`]): a service whose ECS
/// side is converged, or held, becomes an update when its autoscaling has something to do.
pub fn with_scaling(
    plan: &mut ServicePlan,
    desired: Option<&scaling_docs::ScalingDocs>,
    observed: &scaling::ObservedScaling,
    recorded: Option<&str>,
) {
    let (steps, changes) = scaling::plan(&plan.name, desired, observed, recorded);
    if steps.is_empty() {
        return;
    }
    if plan.action == Action::Noop {
        plan.action = Action::Update;
    }
    plan.changes.extend(changes);
    plan.scaling = steps;
}

/// Whether all an update of `observed` changes is labels or autoscaling (tags and Application Auto Scaling only:
/// no revision, no deployment, no UpdateService).
pub fn only_labels(desired: &EcsService, observed: &ServiceState) -> bool {
    ServiceTags::of(observed).spec_hash == Some(spec_hash_of(desired)) && drift(desired, observed).is_empty()
}

/// The transport reaches ECS only as a tag, so no document diff shows it: a change of it is a field of its own.
fn transport_change(desired: &EcsService, observed: &ServiceState) -> Option<Change> {
    let want = state::desired_transport(desired)?;
    let have = transport_of(ServiceTags::of(observed).image.transport);
    (have != want).then(|| change("transport", have, want))
}

/// Service Connect wanted where none is reported: `drift` does not compare an unreported value, yet the update
/// adds it, so it is shown.
fn service_connect_added(desired: &EcsService, observed: &ServiceState) -> Option<Change> {
    let want = desired.create_service.service_connect_configuration.as_ref()?;
    observed.service_connect_configuration.is_none().then(|| Change {
        path: "service.serviceConnectConfiguration".into(),
        from: None,
        to: Some(json_of(want)),
    })
}

/// The delete plans for managed services of `clusters` that no desired service names.
pub fn plan_deletes<'a, 'd>(
    desired: impl IntoIterator<Item = &'d EcsService>,
    observed: impl IntoIterator<Item = &'a ServiceState>,
) -> Vec<ServicePlan> {
    let wanted: BTreeSet<(&str, &str)> = desired.into_iter().map(|d| (d.cluster.as_str(), d.name.as_str())).collect();
    observed
        .into_iter()
        .filter(|o| o.is_active() && is_managed(o) && !wanted.contains(&(o.cluster.as_str(), o.name.as_str())))
        .map(|o| ServicePlan {
            name: o.name.clone(),
            cluster: o.cluster.clone(),
            action: Action::Delete,
            changes: vec![],
            reason: Some(PlanReason::Orphan),
            replaced_by: None,
            scaling: scaling::ScalingSteps::default(),
            rotated: vec![],
        })
        .collect()
}

/// Sorts plans by (cluster, name).
pub fn assemble(mut services: Vec<ServicePlan>) -> Plan {
    services.sort_by(|a, b| (&a.cluster, &a.name).cmp(&(&b.cluster, &b.name)));
    Plan { services }
}

/// Field-level differences between two JSON values. Lists of objects with a `name` (environment, secrets,
/// containers, port mappings) are compared by name, so reordering is not a change.
pub fn diff_values(path: &str, from: &Value, to: &Value, out: &mut Vec<Change>) {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let sub = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_values(&sub, x, y, out),
                    (Some(x), None) => out.push(Change { path: sub, from: Some(x.clone()), to: None }),
                    (None, Some(y)) => out.push(Change { path: sub, from: None, to: Some(y.clone()) }),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if by_name(a).is_some() && by_name(b).is_some() => {
            let (ma, mb) = (by_name(a).unwrap_or_default(), by_name(b).unwrap_or_default());
            let names: BTreeSet<&str> = ma.keys().chain(mb.keys()).copied().collect();
            for n in names {
                let sub = format!("{path}.{n}");
                match (ma.get(n), mb.get(n)) {
                    (Some(x), Some(y)) => diff_values(&sub, &strip_name(x), &strip_name(y), out),
                    (Some(x), None) => out.push(Change { path: sub, from: Some(strip_name(x)), to: None }),
                    (None, Some(y)) => out.push(Change { path: sub, from: None, to: Some(strip_name(y)) }),
                    (None, None) => {}
                }
            }
        }
        _ if from != to => out.push(Change { path: path.into(), from: Some(from.clone()), to: Some(to.clone()) }),
        _ => {}
    }
}

fn by_name(items: &[Value]) -> Option<BTreeMap<&str, &Value>> {
    if items.is_empty() {
        return Some(BTreeMap::new());
    }
    items.iter().map(|v| Some((v.get("name")?.as_str()?, v))).collect()
}

/// `{name, value}` pairs collapse to their value; other objects lose only the name they are keyed by.
fn strip_name(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let rest: serde_json::Map<String, Value> =
                m.iter().filter(|(k, _)| *k != "name").map(|(k, v)| (k.clone(), v.clone())).collect();
            if rest.len() == 1
                && let Some(only) = rest.values().next()
            {
                only.clone()
            } else {
                Value::Object(rest)
            }
        }
        other => other.clone(),
    }
}

/// The service input with the revision filled in and the tag that records it.
pub fn service_with_revision(input: &ServiceInput, task_definition: &str) -> ServiceInput {
    let mut s = input.clone();
    s.task_definition = task_definition.to_string();
    s.tags.retain(|t| t.key != TAG_TASK_DEFINITION);
    s.tags.push(state::applied(task_definition));
    s.tags.sort();
    s
}

#[cfg(test)]
mod tests;
