//! Retention: which task-definition revisions go when a family grows beyond `historyLimit`.
//!
//! Deregistering is the one write that cannot be undone (ECS never runs an INACTIVE revision again), so the rule
//! is written here once and errs on keeping: the revision running, the last good one, the newest completed
//! revision before it (the default `rollback` target) and the family's newest revision (maybe a rollout another
//! apply is starting) always stay, and so does any revision that another service
//! of the family runs or names as last good (a service moved to another cluster without `--prune` shares its
//! family with the copy it left). Failed and rolled-back revisions go before completed ones, oldest first.

use std::collections::BTreeSet;

use crate::backend::{BackendError, Ecs, ServiceState, TaskDefinition, TdStatus};
use crate::plan::is_managed;
use crate::state::{Outcome, RevisionTags, ServiceTags, TaskDefArn};

/// After `td` completed on `state`: deregisters ACTIVE revisions of its family beyond `history_limit` (at least
/// 1), never one the rules above protect, so more than `history_limit` may stay. Returns the ARNs deregistered.
pub async fn retain(
    ecs: &dyn Ecs,
    state: &ServiceState,
    td: &str,
    history_limit: u32,
) -> Result<Vec<String>, BackendError> {
    let active = ecs.list_task_definitions(TaskDefArn(td).family(), TdStatus::Active).await?;
    let keep = history_limit.max(1) as usize;
    if active.len() <= keep {
        return Ok(vec![]);
    }
    let mut revisions = Vec::with_capacity(active.len());
    for arn in &active {
        revisions.push(ecs.describe_task_definition(arn).await?);
    }
    let mut protected = named_by(state);
    protected.insert(td.to_string());
    protected.extend(active.last().cloned());
    let newest = revisions.iter().find(|r| r.arn == td).map_or(u32::MAX, |r| r.revision);
    if let Some(before) = revisions.iter().rev().find(|r| r.revision < newest && outcome(r) == Some(Outcome::Completed))
    {
        protected.insert(before.arn.clone());
    }
    let mut candidates: Vec<&TaskDefinition> = revisions.iter().filter(|r| !protected.contains(&r.arn)).collect();
    if candidates.is_empty() {
        return Ok(vec![]);
    }
    protected.extend(named_elsewhere(ecs, state).await?);
    candidates.retain(|r| !protected.contains(&r.arn));
    candidates.sort_by_key(|r| (!matches!(outcome(r), Some(Outcome::Failed | Outcome::RolledBack)), r.revision));
    let mut gone = Vec::new();
    for r in candidates.into_iter().take(active.len() - keep) {
        ecs.deregister_task_definition(&r.arn).await?;
        gone.push(r.arn.clone());
    }
    Ok(gone)
}

fn outcome(td: &TaskDefinition) -> Option<Outcome> {
    RevisionTags::parse(&td.tags).outcome
}

/// The revisions a service runs or names as last good.
fn named_by(state: &ServiceState) -> BTreeSet<String> {
    let last_good = ServiceTags::of(state).last_good;
    last_good.into_iter().chain(std::iter::once(state.task_definition.as_str())).map(str::to_string).collect()
}

/// The revisions that managed services of the same name in the account's other clusters name (one ListClusters,
/// one DescribeServices per other cluster; asked only when something would be deregistered).
async fn named_elsewhere(ecs: &dyn Ecs, state: &ServiceState) -> Result<BTreeSet<String>, BackendError> {
    let mut out = BTreeSet::new();
    for cluster in ecs.list_clusters().await?.into_iter().filter(|c| *c != state.cluster) {
        let described = match ecs.describe_services(&cluster, std::slice::from_ref(&state.name)).await {
            Ok(d) => d,
            // A cluster being deleted meanwhile holds no service.
            Err(BackendError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        for s in described.services.iter().filter(|s| s.is_active() && is_managed(s)) {
            out.extend(named_by(s));
        }
    }
    Ok(out)
}
