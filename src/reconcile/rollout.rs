//! The records and moves a settle is made of (see `settle`): a completed rollout becomes the service's
//! `last-good`, its revision records the exposure it completed with, and old revisions beyond `historyLimit` are
//! deregistered; a rollback goes to `last-good` (not "revision − 1") as it last completed, networking included.
//! Also the operator's `rollback` target and `history`.

use serde::Serialize;

use crate::backend::{BackendError, Ecs, Op, ServiceState, ServiceUpdate, TaskDefinition, TdStatus};
use crate::render::ecs::ServiceConnectConfiguration;
use crate::spec::ImageRef;
use crate::state::networking::{as_set, service_connect_as_sets};
use crate::state::{self, Exposure, Networking, RevisionTags, ServiceTags, TaskDefArn, ToolRecord, is_managed};

/// The revision a service has proven good: its PRIMARY and only deployment is COMPLETED with every task running,
/// on the revision mcpfleet last asked for. Not when ECS's circuit breaker silently moved the service to another
/// revision or networking (what runs is then not what mcpfleet asked for), nor when the spec it runs is held back
/// as failed. `applied`: the networking of the spec it was applied with, when known.
fn proven_good<'a>(state: &'a ServiceState, applied: Option<&Networking>) -> Option<&'a str> {
    (state.is_active() && state::runs_what_was_applied(state, applied)).then_some(state.task_definition.as_str())
}

/// The revision a service has proven good although no one recorded it (it was deployed by `apply` without
/// `--wait`; see [`proven_good`]) and that is not already `last-good`.
pub fn unrecorded_good<'a>(state: &'a ServiceState, applied: Option<&Networking>) -> Option<&'a str> {
    let last_good = ServiceTags::of(state).last_good;
    proven_good(state, applied).filter(|td| last_good != Some(*td))
}

/// Records the revision a service has proven good (see [`proven_good`]) with outcome `completed` and the exposure
/// it runs with, and as the service's `last-good` unless it is already (see [`unrecorded_good`]): done before a
/// service is updated, so the rollout being started has something, and the right networking, to roll back to.
/// The exposure is written even for a revision already last good: a change of its networking alone may have
/// completed since, with nobody watching. Returns the revision newly recorded as last good, if any.
pub async fn record_proven_good(
    ecs: &dyn Ecs,
    state: &ServiceState,
    applied: Option<&Networking>,
) -> Result<Option<String>, BackendError> {
    let Some(td) = proven_good(state, applied) else { return Ok(None) };
    ecs.tag_resource(td, &state::completed_with(state)).await?;
    if unrecorded_good(state, applied).is_none() {
        return Ok(None);
    }
    ecs.tag_resource(&state.arn, &state::last_good(td)).await?;
    Ok(Some(td.to_string()))
}

/// A completed rollout (`state` as it completed): the revision becomes last-good, with the exposure it completed
/// with, and revisions beyond the history limit go.
pub async fn record_success(
    ecs: &dyn Ecs,
    state: &ServiceState,
    td: &str,
    history_limit: u32,
) -> Result<(), BackendError> {
    ecs.tag_resource(&state.arn, &state::last_good(td)).await?;
    ecs.tag_resource(td, &state::completed_with(state)).await?;
    super::retention::retain(ecs, state, td, history_limit).await?;
    Ok(())
}

/// Puts a service on `target` without waiting, as that revision last completed: the task definition with the
/// load balancers, Service Connect and grace period recorded with it (its [`Exposure`]), in one UpdateService, and
/// none at all when the service already runs it so (ECS's circuit breaker went back first). The service's state
/// tags follow the target revision's, the spec being abandoned is held back so neither apply nor the controller
/// redeploys it, the revision it leaves (`left`) is marked `rolled_back` (unless it is the target: only the
/// networking failed), and the target becomes last good at once: last good never names the revision left, so a
/// second rollback cannot go "back" to it, waited for or not. Returns the target.
pub async fn start_rollback(
    ecs: &dyn Ecs,
    state: &ServiceState,
    target: &str,
    left: &str,
    abandoned_spec_hash: &str,
) -> Result<TaskDefinition, BackendError> {
    let td = ecs.describe_task_definition(target).await?;
    if let Some(update) = back_to(state, &td) {
        ecs.update_service(&update).await?;
    }
    let mut tags = state::running(&td.arn, &td.tags);
    if !abandoned_spec_hash.is_empty() {
        tags.extend(state::held(abandoned_spec_hash));
    }
    tags.extend(state::last_good(&td.arn));
    if left != td.arn {
        ecs.tag_resource(left, &state::outcome(state::Outcome::RolledBack)).await?;
    }
    ecs.tag_resource(&state.arn, &tags).await?;
    Ok(td)
}

/// The UpdateService that puts `state` on `td` as it last completed (see [`start_rollback`]): the parts of its
/// exposure that differ from what the service runs, with the task definition; None when nothing differs. Parts
/// not recorded (a revision recorded before exposures were) are left as they are.
fn back_to(state: &ServiceState, td: &TaskDefinition) -> Option<ServiceUpdate> {
    let mut update =
        ServiceUpdate { task_definition: Some(td.arn.clone()), ..ServiceUpdate::of(&state.cluster, &state.name) };
    if let Some(exposure) = Exposure::recorded(td, &state.arn) {
        update.load_balancers = exposure.load_balancers(td).filter(|lbs| as_set(lbs) != as_set(&state.load_balancers));
        update.service_connect_configuration = exposure.service_connect.and_then(|wanted| {
            let (now, then) = service_connect_as_sets(state.service_connect_configuration.as_ref(), wanted.as_ref());
            (now != then).then(|| wanted.unwrap_or_else(ServiceConnectConfiguration::disabled))
        });
        update.health_check_grace_period_seconds =
            exposure.grace_period_secs.filter(|g| *g != state.health_check_grace_period_seconds.unwrap_or(0));
    }
    let changes = state.task_definition != td.arn
        || update.load_balancers.is_some()
        || update.service_connect_configuration.is_some()
        || update.health_check_grace_period_seconds.is_some();
    changes.then_some(update)
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
    let family = TaskDefArn(&state.task_definition).family().to_string();
    if let Some(to) = to {
        let id = if to.chars().all(|c| c.is_ascii_digit()) { format!("{family}:{to}") } else { to.to_string() };
        let td = ecs.describe_task_definition(&id).await.map_err(|e| match e {
            BackendError::Invalid { .. } | BackendError::NotFound { .. } => {
                RollbackError::Backend(BackendError::NotFound {
                    operation: Op::DescribeTaskDefinition,
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
    if let Some(lg) = ServiceTags::of(state).last_good.filter(|lg| *lg != state.task_definition) {
        let td = ecs.describe_task_definition(lg).await?;
        if td.status == TdStatus::Active {
            return Ok(td);
        }
    }
    let current_rev = TaskDefArn(&state.task_definition).revision().unwrap_or(u32::MAX);
    for arn in ecs.list_task_definitions(&family, TdStatus::Active).await?.iter().rev() {
        if *arn == state.task_definition {
            continue;
        }
        let td = ecs.describe_task_definition(arn).await?;
        if td.revision < current_rev && RevisionTags::parse(&td.tags).outcome == Some(state::Outcome::Completed) {
            return Ok(td);
        }
    }
    Err(RollbackError::NoGoodRevision(state.name.clone()))
}

/// The service `name` of `cluster`, when it exists and mcpfleet manages it (what `history` and `rollback` act on).
pub async fn managed_service(ecs: &dyn Ecs, name: &str, cluster: &str) -> Result<ServiceState, RollbackError> {
    let described = ecs.describe_services(cluster, &[name.to_string()]).await?;
    match described.services.into_iter().find(|s| s.name == name) {
        Some(s) if s.is_active() && is_managed(&s) => Ok(s),
        Some(s) if s.is_active() => Err(RollbackError::Unmanaged(s.name.clone())),
        _ => Err(RollbackError::NotFound(name.into(), cluster.into())),
    }
}

/// What a revision runs, as `status` and `history` show it: from its own tags when mcpfleet registered it, else
/// from its container image (`repo:tag` or `repo@digest`) and runtime platform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevisionImage {
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub architecture: Option<String>,
}

impl RevisionImage {
    pub fn of(td: &TaskDefinition) -> RevisionImage {
        let image = td.spec.container_definitions.first().map(|c| c.image.as_str()).unwrap_or_default();
        // A pinned reference names its digest; the tag it was resolved from is then only in mcpfleet's own tags.
        let (reference_tag, reference_digest) = match ImageRef::parse(image).ok() {
            Some(r) if r.digest.is_some() => (None, r.digest),
            Some(r) => (r.tag, None),
            None => (None, None),
        };
        let tags = RevisionTags::parse(&td.tags);
        RevisionImage {
            tag: tags.image.tag.map(String::from).or(reference_tag),
            digest: reference_digest.or_else(|| tags.image.digest.map(String::from)),
            architecture: td
                .spec
                .runtime_platform
                .cpu_architecture
                .map(|a| a.as_ecs().to_string())
                .or_else(|| tags.image.architecture.map(String::from)),
        }
    }
}

/// The tools a revision offered when it was verified, and how they differ from those of the last good revision
/// before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionTools {
    pub count: usize,
    /// The newest older revision that completed and recorded its tools, compared with; None when there is none
    /// (every tool then counts as added).
    pub compared_to: Option<String>,
    /// Tools it offered that the compared revision did not (sorted); None when either list is known only by its
    /// count (too many to record by name).
    pub added: Option<Vec<String>>,
    /// Tools the compared revision offered that it did not (sorted); None likewise.
    pub removed: Option<Vec<String>>,
}

impl RevisionTools {
    /// `record`'s tools compared with `before` (a revision and its record).
    pub fn compare(record: &ToolRecord, before: Option<(&str, &ToolRecord)>) -> RevisionTools {
        let diff = |a: &[String], b: &[String]| a.iter().filter(|t| !b.contains(t)).cloned().collect::<Vec<_>>();
        let (added, removed) = match (record.names(), before.map(|(_, r)| r.names())) {
            (Some(now), None) => (Some(now.to_vec()), Some(vec![])),
            (Some(now), Some(Some(then))) => (Some(diff(now, then)), Some(diff(then, now))),
            _ => (None, None),
        };
        RevisionTools { count: record.count(), compared_to: before.map(|(r, _)| r.to_string()), added, removed }
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
    /// What an MCP verification saw it offer; None when it was never verified.
    pub tools: Option<RevisionTools>,
}

/// The revisions of a service's family, newest first, with what became of each.
pub async fn history(ecs: &dyn Ecs, state: &ServiceState) -> Result<Vec<Revision>, BackendError> {
    let family = TaskDefArn(&state.task_definition).family().to_string();
    let mut arns = ecs.list_task_definitions(&family, TdStatus::Active).await?;
    arns.extend(ecs.list_task_definitions(&family, TdStatus::Inactive).await?);
    let mut out = Vec::new();
    for arn in arns {
        let td = ecs.describe_task_definition(&arn).await?;
        let tags = RevisionTags::parse(&td.tags);
        let outcome = if td.arn == state.task_definition {
            "running".to_string()
        } else {
            tags.outcome.map_or("superseded", state::Outcome::as_str).to_string()
        };
        let RevisionImage { tag: image_tag, digest, architecture } = RevisionImage::of(&td);
        let record = ToolRecord::parse(&td.tags);
        let good = tags.outcome == Some(state::Outcome::Completed);
        out.push((
            Revision {
                revision: td.revision,
                image_tag,
                digest,
                architecture,
                registered_at: td.registered_at_ms,
                outcome,
                inactive: td.status == TdStatus::Inactive,
                task_definition: td.arn,
                tools: None,
            },
            record,
            good,
        ));
    }
    out.sort_by_key(|(r, ..)| r.revision);
    // Oldest first: each verified revision is compared with the newest good (completed) one before it.
    let mut last_good: Option<(String, ToolRecord)> = None;
    for (r, record, good) in &mut out {
        if let Some(record) = record.as_ref() {
            r.tools = Some(RevisionTools::compare(record, last_good.as_ref().map(|(rev, rec)| (rev.as_str(), rec))));
        }
        if let (true, Some(record)) = (*good, record.take()) {
            last_good = Some((state::short(&r.task_definition).to_string(), record));
        }
    }
    let mut out: Vec<Revision> = out.into_iter().map(|(r, ..)| r).collect();
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Deployment, DeploymentStatus, RolloutState, ServiceStatus, Tags};
    use crate::render::ecs::{AwsVpcConfiguration, NetworkConfiguration};
    use crate::state::{TAG_FAILED_SPEC_HASH, TAG_LAST_GOOD, TAG_SPEC_HASH, TAG_TASK_DEFINITION};

    const TD1: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/docs:1";
    const TD2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/docs:2";

    fn deployment(td: &str, state: RolloutState, running: u32) -> Deployment {
        Deployment {
            id: format!("ecs-svc/{td}"),
            status: DeploymentStatus::Primary,
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
            status: ServiceStatus::Active,
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
            service_connect_configuration: None,
            load_balancers: vec![],
            health_check_grace_period_seconds: None,
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
        assert_eq!(unrecorded_good(&s, None), Some(TD1));
    }

    #[test]
    fn a_rollout_in_progress_is_not_proven_good() {
        assert_eq!(unrecorded_good(&service(TD1, TD1, deployment(TD1, RolloutState::InProgress, 1)), None), None);
        let mut draining = service(TD2, TD2, deployment(TD2, RolloutState::Completed, 2));
        let mut old = deployment(TD1, RolloutState::Completed, 1);
        old.status = DeploymentStatus::Active;
        draining.deployments.push(old);
        assert_eq!(unrecorded_good(&draining, None), None, "an older deployment is still draining");
    }

    #[test]
    fn a_silent_circuit_breaker_rollback_is_not_recorded() {
        // mcpfleet asked for docs:2; ECS's breaker put docs:1 back and it looks COMPLETED.
        let s = service(TD1, TD2, deployment(TD1, RolloutState::Completed, 2));
        assert_eq!(unrecorded_good(&s, None), None);
    }

    #[test]
    fn a_held_failed_spec_or_a_recorded_one_is_not_recorded_again() {
        let mut held = service(TD2, TD2, deployment(TD2, RolloutState::Completed, 2));
        held.tags.insert(TAG_FAILED_SPEC_HASH.into(), "h1".into());
        assert_eq!(unrecorded_good(&held, None), None);
        held.tags.insert(TAG_FAILED_SPEC_HASH.into(), "h0".into());
        assert_eq!(unrecorded_good(&held, None), Some(TD2), "an older failed spec does not hold this one");
        held.tags.insert(TAG_LAST_GOOD.into(), TD2.into());
        assert_eq!(unrecorded_good(&held, None), None);
    }
}
