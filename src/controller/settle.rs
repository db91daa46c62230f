//! Settling rollouts in flight, as a pass does before it plans. The decisions (last-good on success, rollback or
//! a held spec on failure, a failed rollback reported once) are the one settle path's,
//! [`crate::reconcile::settle`], shared with `apply --wait` and `rollback --wait`; this module only finds the
//! rollouts a pass owes a verdict on, counts them, and reports what settling did.

use std::collections::BTreeMap;

use tracing::{error, info, warn};

use crate::backend::{RolloutState, ServiceState};
use crate::plan;
use crate::reconcile::settle::{self, Pending, pending as unsettled};
use crate::reconcile::watch::{self, RolloutResult, Target};
use crate::reconcile::{Desired, Observed};
use crate::state::{self, ServiceTags};

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
            let applied = state::applied_networking(state, Some(&d.ecs));
            let target = match unsettled(state, d.rollout.progress_deadline_secs, applied.as_ref()) {
                Pending::Settled => {
                    // A restart seen in flight that has completed since (a failed one was settled and reported).
                    if self.restarts_in_flight.remove(&key)
                        && state.primary().is_some_and(|p| p.rollout_state == RolloutState::Completed)
                    {
                        self.shared.metrics.secret_restart("completed");
                        info!(service = %state.name, cluster = %state.cluster, "restart for a rotated secret completed");
                    }
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
                    if target.restart.is_some() {
                        self.restarts_in_flight.insert(key.clone());
                    }
                    if target.is_rollback(ServiceTags::of(state).last_good) {
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

    /// Settles a finished rollout (see [`settle::settle_service`]) and reports it. A rollback that starts is
    /// watched by later passes; a failed rollback is reported once and left alone. Returns whether a rollback
    /// failed.
    async fn settle(
        &mut self,
        d: &Desired,
        state: &ServiceState,
        target: &Target,
        result: RolloutResult,
    ) -> Result<bool, crate::backend::BackendError> {
        let ecs = self.backend.ecs.as_ref();
        let td = &target.task_definition;
        let (service, cluster) = (&state.name, &state.cluster);
        let ports = settle::Ports { ecs, clock: self.backend.clock.as_ref(), gate: Some(self.gate_ports()) };
        let policy = settle::Policy::for_service(d, ports.gate);
        let settled = settle::settle_service(ports, state, target, &result, policy, None).await?;
        self.gate_reported(d, &settled);
        match settled {
            settle::Settled::Completed { rollback: true, .. } => {
                info!(service, cluster, revision = %td, "rollback completed")
            }
            settle::Settled::Completed { rollback: false, verified: None } => {
                info!(service, cluster, revision = %td, "rollout completed")
            }
            settle::Settled::Completed { rollback: false, verified: Some(passed) } => {
                info!(service, cluster, revision = %td, tools = passed.tools, "rollout completed; MCP verification passed");
                if let Some(w) = passed.warning {
                    warn!(service, cluster, warning = %w, "stateful MCP server behind a load balancer");
                }
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
            // Seen only by the pass that finds it completed: counted there (see `settle_in_flight`).
            settle::Settled::Restarted => {}
            settle::Settled::RestartFailed { reason } => {
                self.restarts_in_flight.remove(&(cluster.clone(), service.clone()));
                self.shared.metrics.secret_restart("failed");
                let message = settle::restart_failed_message(&reason);
                error!(service, cluster, revision = %td, reason = %message, "restart for a rotated secret failed; the service needs attention");
            }
            settle::Settled::Waiting => {}
        }
        Ok(false)
    }
}
