//! After a rollout: record what happened and act on it. A completed rollout becomes the service's `last-good`
//! and old revisions beyond `historyLimit` are deregistered; a failed one is rolled back to `last-good` (not
//! "revision − 1"), its spec-hash is recorded as `failed-spec-hash` so nothing retries it until the spec
//! changes, and the reason ECS gave is reported. Also the operator's `rollback` and `history`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::watch::{self, RolloutResult, Target};
use super::{Desired, Outcome, Progress, ServiceOutcome};
use crate::backend::{BackendError, Clock, Ecs, ServiceState, ServiceUpdate, Tags, TaskDefinition, TdStatus};
use crate::plan::{is_managed, spec_hash_of};
use crate::render::ecs::{
    TAG_ARCHITECTURE, TAG_FAILED_SPEC_HASH, TAG_IMAGE_DIGEST, TAG_IMAGE_TAG, TAG_LAST_GOOD, TAG_SPEC_HASH,
    TAG_TASK_DEFINITION,
};

/// What a revision's rollout came to, recorded on the task definition.
pub const TAG_OUTCOME: &str = "mcpfleet.io/outcome";

/// Watches the rollouts an apply started and settles each: last-good and retention on success, rollback (when
/// `autoRollback`) on failure. Updates `outcomes` in place; returns whether any rollout failed.
pub async fn settle(
    ecs: &dyn Ecs,
    clock: &dyn Clock,
    desired: &[Desired],
    outcomes: &mut [ServiceOutcome],
    timeout: Duration,
    progress: Progress<'_>,
) -> Result<bool, BackendError> {
    let by_name: BTreeMap<(&str, &str), &Desired> =
        desired.iter().map(|d| ((d.ecs.cluster.as_str(), d.ecs.name.as_str()), d)).collect();
    let now = clock.now_ms();
    let targets: Vec<Target> = outcomes
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Created | Outcome::Updated))
        .filter_map(|o| {
            let d = by_name.get(&(o.cluster.as_str(), o.name.as_str()))?;
            Some(Target {
                cluster: o.cluster.clone(),
                name: o.name.clone(),
                task_definition: o.task_definition.clone()?,
                deadline_ms: now + 1000 * d.rollout.progress_deadline_secs,
            })
        })
        .collect();
    if targets.is_empty() {
        return Ok(false);
    }
    let results = watch::watch(ecs, clock, &targets, timeout, progress).await;
    let states = current_states(ecs, &targets).await?;
    let mut any_failed = false;
    for o in outcomes.iter_mut() {
        let key = (o.cluster.clone(), o.name.clone());
        let (Some(result), Some(state), Some(td)) = (results.get(&key), states.get(&key), o.task_definition.clone())
        else {
            continue;
        };
        let d = by_name[&(o.cluster.as_str(), o.name.as_str())];
        match result {
            RolloutResult::Completed => {
                record_success(ecs, state, &td, d.rollout.history_limit).await?;
                o.message = format!("{}; rollout completed", o.message);
            }
            RolloutResult::Failed { reason } => {
                any_failed = true;
                ecs.tag_resource(&td, &Tags::from([(TAG_OUTCOME.to_string(), "failed".to_string())])).await?;
                let last_good = state.tags.get(TAG_LAST_GOOD).filter(|lg| **lg != td).cloned();
                match (d.rollout.auto_rollback, last_good) {
                    (true, Some(lg)) => {
                        progress(&o.name, &format!("rollout failed; rolling back to {}", short(&lg)));
                        let back = rollback_to(ecs, clock, state, &lg, spec_hash_of(&d.ecs), timeout, progress).await?;
                        ecs.tag_resource(&td, &Tags::from([(TAG_OUTCOME.to_string(), "rolled_back".to_string())]))
                            .await?;
                        match back {
                            RolloutResult::Completed => {
                                o.outcome = Outcome::RolledBack;
                                o.message = format!("rollout failed: {reason}; rolled back to {}", short(&lg));
                                o.task_definition = Some(lg);
                            }
                            RolloutResult::Failed { reason: again } => {
                                o.outcome = Outcome::Failed;
                                o.message = format!(
                                    "rollout failed: {reason}; the rollback to {} failed too: {again}",
                                    short(&lg)
                                );
                            }
                        }
                    }
                    (true, None) => {
                        hold_failed_spec(ecs, state, spec_hash_of(&d.ecs)).await?;
                        o.outcome = Outcome::Failed;
                        o.message = format!("rollout failed: {reason}; no earlier good revision to roll back to");
                    }
                    (false, _) => {
                        hold_failed_spec(ecs, state, spec_hash_of(&d.ecs)).await?;
                        o.outcome = Outcome::Failed;
                        o.message = format!("rollout failed: {reason} (autoRollback is off)");
                    }
                }
            }
        }
    }
    Ok(any_failed)
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

async fn current_states(
    ecs: &dyn Ecs,
    targets: &[Target],
) -> Result<BTreeMap<(String, String), ServiceState>, BackendError> {
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in targets {
        wanted.entry(t.cluster.clone()).or_default().push(t.name.clone());
    }
    Ok(super::describe_all(ecs, &wanted).await?.into_iter().map(|s| ((s.cluster.clone(), s.name.clone()), s)).collect())
}

/// Records a failed spec that was not rolled back by mcpfleet as `failed-spec-hash`, so neither apply nor the
/// controller deploys it again (ECS's circuit breaker may have silently put the service back on an older
/// revision, which would otherwise look like drift to correct) until the spec changes.
async fn hold_failed_spec(ecs: &dyn Ecs, state: &ServiceState, spec_hash: &str) -> Result<(), BackendError> {
    ecs.tag_resource(&state.arn, &Tags::from([(TAG_FAILED_SPEC_HASH.to_string(), spec_hash.to_string())])).await
}

/// The revision a service has proven good although no one recorded it (it was deployed by `apply` without
/// `--wait`): its PRIMARY and only deployment is COMPLETED with every task running, on the revision mcpfleet last
/// asked for, and that revision is not already `last-good`. Not when ECS's circuit breaker silently moved the
/// service to another revision (what runs is then not what mcpfleet asked for), nor when the spec it runs is
/// held back as failed.
pub fn unrecorded_good(state: &ServiceState) -> Option<&str> {
    let td = state.task_definition.as_str();
    let recorded = state.tags.get(TAG_LAST_GOOD).map(String::as_str) == Some(td);
    (state.is_active() && state.runs_what_was_applied() && !recorded).then_some(td)
}

/// Records the revision a service has proven good (see [`unrecorded_good`]) as its `last-good`, with outcome
/// `completed`: done before a service is updated, so the rollout being started has something to roll back to.
/// Returns the revision recorded, if any.
pub async fn record_proven_good(ecs: &dyn Ecs, state: &ServiceState) -> Result<Option<String>, BackendError> {
    let Some(td) = unrecorded_good(state) else { return Ok(None) };
    ecs.tag_resource(td, &Tags::from([(TAG_OUTCOME.to_string(), "completed".to_string())])).await?;
    ecs.tag_resource(&state.arn, &Tags::from([(TAG_LAST_GOOD.to_string(), td.to_string())])).await?;
    Ok(Some(td.to_string()))
}

/// A completed rollout: the revision becomes last-good, and revisions beyond the history limit go.
pub async fn record_success(
    ecs: &dyn Ecs,
    state: &ServiceState,
    td: &str,
    history_limit: u32,
) -> Result<(), BackendError> {
    ecs.tag_resource(&state.arn, &Tags::from([(TAG_LAST_GOOD.to_string(), td.to_string())])).await?;
    ecs.tag_resource(td, &Tags::from([(TAG_OUTCOME.to_string(), "completed".to_string())])).await?;
    super::retention::retain(ecs, state, td, history_limit).await?;
    Ok(())
}

/// `family` of `…:task-definition/family:revision`.
pub fn family_of(td: &str) -> &str {
    let short = short(td);
    short.rsplit_once(':').map_or(short, |(f, _)| f)
}

/// Puts a service on `target` and records why, then watches that rollout (see [`start_rollback`]): a target
/// that completes becomes `last-good`, one seen failing is tagged `outcome=failed`. With a zero `timeout` nothing
/// is watched.
pub async fn rollback_to(
    ecs: &dyn Ecs,
    clock: &dyn Clock,
    state: &ServiceState,
    target: &str,
    abandoned_spec_hash: &str,
    timeout: Duration,
    progress: Progress<'_>,
) -> Result<RolloutResult, BackendError> {
    let td = start_rollback(ecs, state, target, abandoned_spec_hash).await?;
    let target = Target {
        cluster: state.cluster.clone(),
        name: state.name.clone(),
        task_definition: td.arn.clone(),
        deadline_ms: clock.now_ms() + timeout.as_millis() as u64,
    };
    let results = watch::watch(ecs, clock, std::slice::from_ref(&target), timeout, progress).await;
    let result = results
        .into_values()
        .next()
        .unwrap_or(RolloutResult::Failed { reason: "the rollback was not observed".into() });
    match result {
        RolloutResult::Completed => {
            ecs.tag_resource(&state.arn, &Tags::from([(TAG_LAST_GOOD.to_string(), td.arn.clone())])).await?;
        }
        // Observed failing now: it no longer counts as a completed revision to go back to.
        RolloutResult::Failed { .. } if !timeout.is_zero() => {
            ecs.tag_resource(&td.arn, &Tags::from([(TAG_OUTCOME.to_string(), "failed".to_string())])).await?;
            retag_as_running(ecs, state, &td.arn).await?;
        }
        RolloutResult::Failed { .. } => {}
    }
    Ok(result)
}

/// Puts a service on `target` without waiting: the service's state tags follow the target revision's, and the
/// spec being abandoned is marked failed so neither apply nor the controller redeploys it. Returns the target.
pub async fn start_rollback(
    ecs: &dyn Ecs,
    state: &ServiceState,
    target: &str,
    abandoned_spec_hash: &str,
) -> Result<TaskDefinition, BackendError> {
    let td = ecs.describe_task_definition(target).await?;
    if state.task_definition != td.arn {
        ecs.update_service(&ServiceUpdate {
            cluster: state.cluster.clone(),
            service: state.name.clone(),
            task_definition: Some(td.arn.clone()),
            desired_count: None,
            deployment_configuration: None,
            network_configuration: None,
            tagging: None,
        })
        .await?;
    }
    let mut tags = service_tags_for(&td);
    if !abandoned_spec_hash.is_empty() {
        tags.insert(TAG_FAILED_SPEC_HASH.into(), abandoned_spec_hash.to_string());
    }
    ecs.tag_resource(&state.arn, &tags).await?;
    Ok(td)
}

/// After a rollback whose rollout failed: when ECS's circuit breaker has put the service back on another
/// revision, the service's state tags are made to describe that revision again, not the target that failed, so
/// `status` and the next plan start from what runs.
async fn retag_as_running(ecs: &dyn Ecs, state: &ServiceState, failed: &str) -> Result<(), BackendError> {
    let now = ecs.describe_services(&state.cluster, std::slice::from_ref(&state.name)).await?;
    let Some(running) = now.services.into_iter().find(|s| s.name == state.name && s.task_definition != failed) else {
        return Ok(());
    };
    let td = ecs.describe_task_definition(&running.task_definition).await?;
    ecs.tag_resource(&state.arn, &service_tags_for(&td)).await
}

/// The service state tags that say a service runs `td`: its spec hash, image and architecture, and its ARN.
fn service_tags_for(td: &TaskDefinition) -> Tags {
    let mut tags = Tags::new();
    for key in [TAG_SPEC_HASH, TAG_IMAGE_TAG, TAG_IMAGE_DIGEST, TAG_ARCHITECTURE] {
        if let Some(v) = td.tags.get(key) {
            tags.insert(key.to_string(), v.clone());
        }
    }
    tags.insert(TAG_TASK_DEFINITION.into(), td.arn.clone());
    tags
}

/// Records on a revision that an operator rolled the service back from it (outcome `rolled_back`), so `history`
/// and the default `rollback` target no longer count it as a completed rollout.
pub async fn mark_abandoned(ecs: &dyn Ecs, td: &str) -> Result<(), BackendError> {
    ecs.tag_resource(td, &Tags::from([(TAG_OUTCOME.to_string(), "rolled_back".to_string())])).await
}

/// Why an operator's rollback was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// The service does not exist (or is not ACTIVE).
    #[error("service {0} not found in cluster {1}")]
    NotFound(String, String),
    /// The service is not managed by mcpfleet.
    #[error("service {0} is not managed by mcpfleet")]
    Unmanaged(String),
    /// The named revision belongs to another family.
    #[error("{revision} belongs to family {family}, not {expected}: a service can only go back to its own revisions")]
    ForeignRevision { revision: String, family: String, expected: String },
    /// The named revision was deregistered.
    #[error("{0} is INACTIVE (deregistered); ECS cannot run it again")]
    Inactive(String),
    /// No earlier good revision is known.
    #[error("no earlier good revision of {0} is known; name one with --to-revision")]
    NoGoodRevision(String),
    /// A backend call failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Resolves the revision an operator's `rollback` goes to: `to` (a revision number, `family:N` or an ARN of the
/// service's own family, ACTIVE), or else the newest completed revision other than the one running.
pub async fn rollback_target(
    ecs: &dyn Ecs,
    state: &ServiceState,
    to: Option<&str>,
) -> Result<TaskDefinition, RollbackError> {
    let family = family_of(&state.task_definition).to_string();
    if let Some(to) = to {
        let id = if to.chars().all(|c| c.is_ascii_digit()) { format!("{family}:{to}") } else { to.to_string() };
        let td = ecs.describe_task_definition(&id).await.map_err(|e| match e {
            BackendError::Invalid { .. } | BackendError::NotFound { .. } => {
                RollbackError::Backend(BackendError::NotFound {
                    operation: "DescribeTaskDefinition".into(),
                    message: format!("no revision {id}"),
                })
            }
            other => RollbackError::Backend(other),
        })?;
        if td.family != family {
            return Err(RollbackError::ForeignRevision { revision: id, family: td.family, expected: family });
        }
        if td.status == TdStatus::Inactive {
            return Err(RollbackError::Inactive(td.arn));
        }
        return Ok(td);
    }
    if let Some(lg) = state.tags.get(TAG_LAST_GOOD).filter(|lg| **lg != state.task_definition) {
        let td = ecs.describe_task_definition(lg).await?;
        if td.status == TdStatus::Active {
            return Ok(td);
        }
    }
    let current_rev = state.task_definition.rsplit(':').next().and_then(|r| r.parse::<u32>().ok()).unwrap_or(u32::MAX);
    for arn in ecs.list_task_definitions(&family, TdStatus::Active).await?.iter().rev() {
        if *arn == state.task_definition {
            continue;
        }
        let td = ecs.describe_task_definition(arn).await?;
        if td.revision < current_rev && td.tags.get(TAG_OUTCOME).map(String::as_str) == Some("completed") {
            return Ok(td);
        }
    }
    Err(RollbackError::NoGoodRevision(state.name.clone()))
}

/// Checks a service can be rolled back by mcpfleet.
pub fn check_rollbackable(state: Option<&ServiceState>, name: &str, cluster: &str) -> Result<(), RollbackError> {
    match state {
        Some(s) if s.is_active() && is_managed(s) => Ok(()),
        Some(s) if s.is_active() => Err(RollbackError::Unmanaged(s.name.clone())),
        _ => Err(RollbackError::NotFound(name.into(), cluster.into())),
    }
}

/// One revision in `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub revision: u32,
    pub task_definition: String,
    pub image_tag: Option<String>,
    pub digest: Option<String>,
    pub architecture: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub registered_at: u64,
    /// running | completed | failed | rolled_back | superseded
    pub outcome: String,
    /// Deregistered (by retention or by hand): kept in the history, but ECS cannot run it again.
    pub inactive: bool,
}

/// The revisions of a service's family, newest first, with what became of each.
pub async fn history(ecs: &dyn Ecs, state: &ServiceState) -> Result<Vec<Revision>, BackendError> {
    let family = family_of(&state.task_definition).to_string();
    let mut arns = ecs.list_task_definitions(&family, TdStatus::Active).await?;
    arns.extend(ecs.list_task_definitions(&family, TdStatus::Inactive).await?);
    let mut out = Vec::new();
    for arn in arns {
        let td = ecs.describe_task_definition(&arn).await?;
        let outcome = if td.arn == state.task_definition {
            "running".to_string()
        } else {
            td.tags.get(TAG_OUTCOME).cloned().unwrap_or_else(|| "superseded".into())
        };
        out.push(Revision {
            revision: td.revision,
            image_tag: td.tags.get(TAG_IMAGE_TAG).cloned(),
            digest: td.tags.get(TAG_IMAGE_DIGEST).cloned(),
            architecture: td.spec.runtime_platform.cpu_architecture.map(|a| a.as_ecs().to_string()),
            registered_at: td.registered_at_ms,
            outcome,
            inactive: td.status == TdStatus::Inactive,
            task_definition: td.arn,
        });
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.revision));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Deployment, RolloutState};
    use crate::render::ecs::{AwsVpcConfiguration, NetworkConfiguration};

    const TD1: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/docs:1";
    const TD2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/docs:2";

    fn deployment(td: &str, state: RolloutState, running: u32) -> Deployment {
        Deployment {
            id: format!("ecs-svc/{td}"),
            status: "PRIMARY".into(),
            task_definition: td.into(),
            desired_count: 2,
            running_count: running,
            pending_count: 0,
            failed_tasks: 0,
            rollout_state: state,
            rollout_state_reason: String::new(),
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    /// A service on `running` whose tags say mcpfleet last asked for `asked`.
    fn service(running: &str, asked: &str, primary: Deployment) -> ServiceState {
        ServiceState {
            arn: "arn:aws:ecs:us-east-1:123456789012:service/mcp/docs".into(),
            cluster: "mcp".into(),
            name: "docs".into(),
            status: "ACTIVE".into(),
            task_definition: running.into(),
            desired_count: 2,
            running_count: primary.running_count,
            pending_count: 0,
            deployment_configuration: None,
            network_configuration: NetworkConfiguration {
                awsvpc_configuration: AwsVpcConfiguration {
                    subnets: vec![],
                    security_groups: vec![],
                    assign_public_ip: "DISABLED".into(),
                },
            },
            deployments: vec![primary],
            events: vec![],
            tags: Tags::from([
                (TAG_TASK_DEFINITION.to_string(), asked.to_string()),
                (TAG_SPEC_HASH.to_string(), "h1".to_string()),
            ]),
        }
    }

    #[test]
    fn a_completed_rollout_of_what_was_asked_is_proven_good() {
        let s = service(TD1, TD1, deployment(TD1, RolloutState::Completed, 2));
        assert_eq!(unrecorded_good(&s), Some(TD1));
    }

    #[test]
    fn a_rollout_in_progress_is_not_proven_good() {
        assert_eq!(unrecorded_good(&service(TD1, TD1, deployment(TD1, RolloutState::InProgress, 1))), None);
        let mut draining = service(TD2, TD2, deployment(TD2, RolloutState::Completed, 2));
        let mut old = deployment(TD1, RolloutState::Completed, 1);
        old.status = "ACTIVE".into();
        draining.deployments.push(old);
        assert_eq!(unrecorded_good(&draining), None, "an older deployment is still draining");
    }

    #[test]
    fn a_silent_circuit_breaker_rollback_is_not_recorded() {
        // mcpfleet asked for docs:2; ECS's breaker put docs:1 back and it looks COMPLETED.
        let s = service(TD1, TD2, deployment(TD1, RolloutState::Completed, 2));
        assert_eq!(unrecorded_good(&s), None);
    }

    #[test]
    fn a_held_failed_spec_or_a_recorded_one_is_not_recorded_again() {
        let mut held = service(TD2, TD2, deployment(TD2, RolloutState::Completed, 2));
        held.tags.insert(TAG_FAILED_SPEC_HASH.into(), "h1".into());
        assert_eq!(unrecorded_good(&held), None);
        held.tags.insert(TAG_FAILED_SPEC_HASH.into(), "h0".into());
        assert_eq!(unrecorded_good(&held), Some(TD2), "an older failed spec does not hold this one");
        held.tags.insert(TAG_LAST_GOOD.into(), TD2.into());
        assert_eq!(unrecorded_good(&held), None);
    }
}
