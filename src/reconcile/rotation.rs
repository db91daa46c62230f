//! Restarts for rotated secrets: a service whose secret rotated since its tasks started gets a new deployment of
//! the revision it runs (`forceNewDeployment`), so every task reads the new version. The versions read and the
//! deployment started are recorded on the service at once (see [`crate::state::secrets`]), so a restart is never
//! started twice for one rotation, and whoever settles the deployment later knows it for a restart.
//!
//! Restarts are spread: at most `--rotation-concurrency` of them in flight at once ([`Spread`]), the next ones
//! started only once earlier ones completed (a later apply, or the controller's next passes).

use crate::backend::{BackendError, Ecs, ServiceState, ServiceUpdate, Tags};
use crate::plan::{Action, Plan, PlanReason};
use crate::state::secrets::{self, Restart, TAG_SECRET_VERSIONS};

use super::{Desired, Observed, Progress};

/// Default of `--rotation-concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Starts the restart of `o` (its secrets `what` rotated): records the revision it runs as last good when it
/// completed unwatched, forces a new deployment, then records the versions the new tasks read and the deployment.
/// Returns the deployment's id.
pub async fn restart(
    ecs: &dyn Ecs,
    d: &Desired,
    o: &ServiceState,
    what: &str,
    progress: Progress<'_>,
) -> Result<String, BackendError> {
    super::record_unwatched_good(ecs, d, o, progress).await?;
    progress(&o.name, &format!("restarting: {what}"));
    let update = ServiceUpdate { force_new_deployment: true, ..ServiceUpdate::of(&o.cluster, &o.name) };
    let after = ecs.update_service(&update).await?;
    let deployment = after.primary().map(|p| p.id.clone()).unwrap_or_default();
    ecs.tag_resource(&o.arn, &secrets::restarted(&d.ecs.secrets.used, &deployment)).await?;
    Ok(deployment)
}

/// The versions an update of `o` to revision `td` records: those the desired state reads, unless the service
/// ignores rotations and keeps its revision (its tasks keep what they read, so the record stays as it was).
/// `forced`: the update forces a new deployment. A service that reads no secret by stage any more drops its record.
pub fn keep_versions(d: &Desired, o: &ServiceState, td: &str, forced: bool, tags: &mut Tags, gone: &mut Vec<String>) {
    let recorded = secrets::recorded(&o.tags);
    if !tags.contains_key(TAG_SECRET_VERSIONS) {
        if recorded.is_some() {
            gone.push(TAG_SECRET_VERSIONS.to_string());
        }
        return;
    }
    if forced || d.ecs.secrets.restarts() || o.task_definition != td {
        return;
    }
    match recorded {
        Some(v) => tags.insert(TAG_SECRET_VERSIONS.to_string(), v.to_string()),
        None => tags.remove(TAG_SECRET_VERSIONS),
    };
}

/// Restarts in flight: a service's PRIMARY deployment is a restart that has not completed nor failed.
pub fn in_flight(observed: &Observed) -> usize {
    observed
        .services
        .values()
        .filter(|s| s.is_active())
        .filter(|s| {
            Restart::current(s).is_some_and(|r| {
                !r.failed && s.primary().is_some_and(|p| p.rollout_state == crate::backend::RolloutState::InProgress)
            })
        })
        .count()
}

/// Bounds the restarts of a plan to `room` (at most `--rotation-concurrency` minus those in flight): the others
/// stay as they are this time, with a reason saying so. Returns how many were deferred.
pub fn spread(plan: &mut Plan, room: usize) -> usize {
    let mut left = room;
    let mut deferred = 0;
    for p in plan.services.iter_mut().filter(|p| p.reason == Some(PlanReason::SecretRotated)) {
        if left > 0 {
            left -= 1;
            continue;
        }
        p.action = Action::Noop;
        p.reason = Some(PlanReason::RestartDeferred);
        deferred += 1;
    }
    deferred
}
