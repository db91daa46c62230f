//! Settling rollouts in flight, as a pass does before it plans: last-good on success, rollback on failure —
//! decided from the service's tags and deployments, so a restarted controller picks up exactly where the last one
//! stopped; a rollback is watched like any rollout, and one that fails is reported once and left alone.

use std::collections::BTreeMap;

use tracing::{error, info, warn};

use crate::backend::{RolloutState, ServiceState, Tags};
use crate::plan;
use crate::reconcile::rollout::{self, TAG_OUTCOME};
use crate::reconcile::watch::{self, RolloutResult, Target};
use crate::reconcile::{Desired, Observed};
use crate::render::ecs::{TAG_FAILED_SPEC_HASH, TAG_LAST_GOOD, TAG_SPEC_HASH, TAG_TASK_DEFINITION};

use super::Controller;

/// What settling found: the services still in flight (left alone this pass), services by state, and the services
/// whose rollback failed (`cluster/name`).
pub(super) struct InFlight {
    pub busy: std::collections::BTreeSet<String>,
    pub states: BTreeMap<&'static str, u64>,
    pub failed_rollbacks: Vec<String>,
}

impl Controller {
    /// Settles the rollouts in flight of `desired` as `observed`.
    pub(super) async fn settle_in_flight(&mut self, desired: &[Desired], observed: &Observed) -> InFlight {
        let ecs = self.backend.ecs.clone();
        // Settle rollouts in flight; those still moving are left alone this pass.
        let mut busy = std::collections::BTreeSet::new();
        let now = self.backend.clock.now_ms();
        let mut states: BTreeMap<&str, u64> = BTreeMap::new();
        let mut failed_rollbacks = Vec::new();
        for d in desired {
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
                        let revision = state.tags.get(TAG_TASK_DEFINITION).map_or("-", String::as_str);
                        let what = if rolled_back(state) { "rollback completed" } else { "rollout completed" };
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
                    if state.tags.get(TAG_LAST_GOOD) == Some(&target.task_definition) {
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

        InFlight { busy, states, failed_rollbacks }
    }

    /// Records a finished rollout: last-good on success; on failure a rollback (started, watched by later passes)
    /// or, without autoRollback or an earlier good revision, the failed spec-hash. A failed rollout of the last
    /// good revision itself (a rollback that failed) is reported once and left alone: nothing is retried.
    /// Returns whether a rollback failed.
    async fn settle(
        &self,
        d: &Desired,
        state: &ServiceState,
        target: &Target,
        result: RolloutResult,
    ) -> Result<bool, crate::backend::BackendError> {
        let ecs = self.backend.ecs.as_ref();
        let td = &target.task_definition;
        let on_last_good = state.tags.get(TAG_LAST_GOOD) == Some(td);
        match result {
            RolloutResult::Completed => {
                rollout::record_success(ecs, state, td, d.rollout.history_limit).await?;
                if on_last_good && rolled_back(state) {
                    info!(service = %state.name, cluster = %state.cluster, revision = %td, "rollback completed");
                } else {
                    info!(service = %state.name, cluster = %state.cluster, revision = %td, "rollout completed");
                }
            }
            RolloutResult::Failed { reason } if on_last_good => {
                let deployment = state.primary().map(|p| p.id.clone()).unwrap_or_default();
                ecs.tag_resource(&state.arn, &Tags::from([(TAG_ROLLBACK_FAILED.to_string(), deployment)])).await?;
                self.shared.metrics.rollback("failed");
                error!(service = %state.name, cluster = %state.cluster, revision = %td, reason, "the rollback to the last good revision failed; the service needs attention (nothing is retried until the spec changes)");
                return Ok(true);
            }
            RolloutResult::Failed { reason } => {
                let spec_hash = state.tags.get(TAG_SPEC_HASH).cloned().unwrap_or_default();
                ecs.tag_resource(td, &Tags::from([(TAG_OUTCOME.to_string(), "failed".to_string())])).await?;
                let last_good = state.tags.get(TAG_LAST_GOOD).filter(|lg| *lg != td).cloned();
                match (d.rollout.auto_rollback, last_good) {
                    (true, Some(lg)) => {
                        rollout::start_rollback(ecs, state, &lg, &spec_hash).await?;
                        ecs.tag_resource(td, &Tags::from([(TAG_OUTCOME.to_string(), "rolled_back".to_string())]))
                            .await?;
                        self.shared.metrics.rollback("started");
                        error!(service = %state.name, cluster = %state.cluster, revision = %td, reason, rolled_back_to = %lg, "rollout failed; rolling back");
                    }
                    _ => {
                        ecs.tag_resource(&state.arn, &Tags::from([(TAG_FAILED_SPEC_HASH.to_string(), spec_hash)]))
                            .await?;
                        error!(service = %state.name, cluster = %state.cluster, revision = %td, reason, "rollout failed; not retried until the spec changes");
                    }
                }
            }
        }
        Ok(false)
    }
}

/// Service tag: the id of the deployment whose failed rollback was reported, so it is reported once.
pub const TAG_ROLLBACK_FAILED: &str = "mcpfleet.io/rollback-failed";

/// What a pass owes a service before it may be reconciled.
#[derive(Debug, Clone)]
pub(super) enum Pending {
    /// Nothing in flight.
    Settled,
    /// A rollout to watch until it completes or fails.
    Rollout(Target),
    /// The rollout of its last good revision failed and was reported: left as it is until the spec changes.
    FailedRollback,
}

/// The rollout a service still owes a verdict on: it was applied with a revision (`task-definition` tag) that is
/// neither its last good one nor already judged failed — or it is back on its last good revision (a rollback)
/// whose PRIMARY deployment has not completed yet.
pub(super) fn unsettled(state: &ServiceState, progress_deadline_secs: u64) -> Pending {
    let Some(td) = state.tags.get(TAG_TASK_DEFINITION) else { return Pending::Settled };
    let target = |started: u64| {
        Pending::Rollout(Target {
            cluster: state.cluster.clone(),
            name: state.name.clone(),
            task_definition: td.clone(),
            deadline_ms: started + 1000 * progress_deadline_secs,
        })
    };
    if state.tags.get(TAG_LAST_GOOD) == Some(td) {
        let Some(p) = state.primary() else { return Pending::Settled };
        if p.task_definition != *td || p.rollout_state == RolloutState::Completed {
            return Pending::Settled;
        }
        if state.tags.get(TAG_ROLLBACK_FAILED) == Some(&p.id) {
            return Pending::FailedRollback;
        }
        return target(p.created_at_ms);
    }
    if state.tags.contains_key(TAG_FAILED_SPEC_HASH)
        && state.tags.get(TAG_FAILED_SPEC_HASH) == state.tags.get(TAG_SPEC_HASH)
    {
        return Pending::Settled;
    }
    let started = state
        .deployments
        .iter()
        .filter(|d| d.task_definition == *td)
        .map(|d| d.created_at_ms)
        .max()
        .or_else(|| state.primary().filter(|p| p.rollout_state != RolloutState::Completed).map(|p| p.created_at_ms))
        .unwrap_or(0);
    target(started)
}

/// Whether a service on its last good revision got there by a rollback: the spec it abandoned is recorded.
fn rolled_back(state: &ServiceState) -> bool {
    state.tags.get(TAG_FAILED_SPEC_HASH).is_some_and(|f| Some(f) != state.tags.get(TAG_SPEC_HASH))
}
