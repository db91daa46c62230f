//! The rollout watcher: polls every service in flight together (⌈N/10⌉ DescribeServices per poll, with capped
//! backoff) until each rollout completed, failed, or ran out of time.
//!
//! Success means the PRIMARY deployment is COMPLETED **and** the service runs the task definition that was
//! asked for — judged on the revision, never on a task count that an autoscaler may move meanwhile: a circuit-breaker rollback also ends in a COMPLETED deployment, of the old revision — or of the same
//! revision with its old networking, when the rollout changed only the networking (the target then knows the
//! networking it deploys).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::backend::{Clock, Ecs, RolloutState, ServiceState, breaker_threshold};
use crate::state::{Networking, breaker_rolled_back, short};

use super::{POLL_MAX, POLL_MIN, Progress};

/// A rollout to watch.
#[derive(Debug, Clone)]
pub struct Target {
    pub cluster: String,
    pub name: String,
    pub task_definition: String,
    /// The networking a spec's rollout deploys with its task definition, when the spec is at hand; None for a
    /// rollback (it goes back to a revision as that last completed) or a rollout whose spec is not known.
    pub networking: Option<Box<Networking>>,
    /// Epoch ms after which the rollout counts as failed.
    pub deadline_ms: u64,
    /// For the restart a secret rotation started: its deployment (its failure rolls nothing back, holds nothing).
    pub restart: Option<String>,
}

impl Target {
    /// Whether it is the way back to the service's last good revision (`last_good`), as that last completed: not
    /// the rollout of a spec, which may deploy the last good revision with new networking.
    pub fn is_rollback(&self, last_good: Option<&str>) -> bool {
        self.restart.is_none() && self.networking.is_none() && last_good == Some(self.task_definition.as_str())
    }
}

/// How a rollout ended, or that waiting for it stopped first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RolloutResult {
    /// The PRIMARY deployment completed on the revision asked for.
    Completed,
    /// The rollout failed: why, as a kind, and in ECS's words (with the stopped tasks' reasons).
    Failed { kind: FailureKind, reason: String },
    /// `--timeout` ran out while the rollout was still in progress: nothing is decided, the rollout goes on.
    TimedOut,
}

/// Why a rollout failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The service is no longer ACTIVE.
    ServiceInactive,
    /// The service has no PRIMARY deployment.
    NoDeployment,
    /// The service disappeared while being watched.
    Disappeared,
    /// ECS's deployment circuit breaker put the service back on another revision.
    RolledBackByEcs,
    /// Another deployment replaced the one asked for (someone deployed over it).
    Replaced,
    /// ECS marked the deployment FAILED.
    DeploymentFailed,
    /// Failed tasks reached the circuit breaker's threshold.
    TasksFailed,
    /// `rollout.progressDeadline` passed before the rollout completed.
    DeadlineExceeded,
    /// ECS completed the rollout, but the MCP gate failed it (see `reconcile::verify`).
    VerificationFailed,
}

impl RolloutResult {
    fn failed(kind: FailureKind, reason: String) -> Option<RolloutResult> {
        Some(RolloutResult::Failed { kind, reason })
    }
}

/// Judges one observation of a target: None while still in progress. Why tasks stopped comes from the service's
/// events only; [`watch`] asks ECS about the stopped tasks themselves.
pub fn judge(t: &Target, s: &ServiceState, now_ms: u64) -> Option<RolloutResult> {
    judge_with(t, s, now_ms, &last_failure(s))
}

/// [`judge`], and for a failure the reasons ECS gives for the stopped tasks (one ListTasks, and a DescribeTasks
/// when any stopped): only a verdict of failure costs these calls.
pub async fn judge_explained(ecs: &dyn Ecs, t: &Target, s: &ServiceState, now_ms: u64) -> Option<RolloutResult> {
    match judge_with(t, s, now_ms, "") {
        Some(RolloutResult::Failed { .. }) => judge_with(t, s, now_ms, &why_stopped(ecs, t, s).await),
        other => other,
    }
}

/// [`judge`], with `why_stopped` (`; tasks stopped: …` or empty) appended to a failure's reason.
fn judge_with(t: &Target, s: &ServiceState, now_ms: u64, why_stopped: &str) -> Option<RolloutResult> {
    let failed = RolloutResult::failed;
    let primary = s.primary();
    if !s.is_active() {
        return failed(FailureKind::ServiceInactive, format!("the service is {}", s.status));
    }
    let Some(p) = primary else { return failed(FailureKind::NoDeployment, "the service has no deployment".into()) };
    if p.task_definition != t.task_definition {
        // ECS replaced our deployment: its circuit breaker rolled back, or someone deployed over us.
        let breaker = s
            .deployments
            .iter()
            .any(|d| d.task_definition == t.task_definition && d.rollout_state == RolloutState::Failed)
            || s.events.iter().any(|e| e.message.contains("deployment failed"));
        let (kind, who) = if breaker {
            (FailureKind::RolledBackByEcs, "ECS's deployment circuit breaker rolled the service back")
        } else {
            (FailureKind::Replaced, "another deployment replaced it, moving the service")
        };
        return failed(kind, format!("{who} to {}{}", short(&p.task_definition), why_stopped));
    }
    // The same revision, but the breaker went back to the networking it last completed with.
    if t.networking.as_ref().is_some_and(|n| breaker_rolled_back(s) && n.differs_from(s)) {
        return failed(
            FailureKind::RolledBackByEcs,
            format!(
                "ECS's deployment circuit breaker rolled the service back to {} with the networking it last completed with{}",
                short(&p.task_definition),
                why_stopped
            ),
        );
    }
    match p.rollout_state {
        // ECS completes a deployment once it reached steady state on its revision; the count may move after that
        // (an autoscaler's to move), so it is not judged again.
        RolloutState::Completed => Some(RolloutResult::Completed),
        RolloutState::Failed => {
            failed(FailureKind::DeploymentFailed, format!("{}{}", p.rollout_state_reason, why_stopped))
        }
        _ if p.failed_tasks >= breaker_threshold(s.desired_count) => {
            failed(FailureKind::TasksFailed, format!("{} tasks failed to start{}", p.failed_tasks, why_stopped))
        }
        _ if now_ms > t.deadline_ms => failed(
            FailureKind::DeadlineExceeded,
            format!(
                "progress deadline exceeded: {}/{} tasks running after {}s",
                p.running_count,
                s.desired_count,
                (now_ms.saturating_sub(p.created_at_ms)) / 1000
            ),
        ),
        _ => None,
    }
}

/// At most this many distinct stopped-task reasons are quoted in a failure.
const MAX_REASONS: usize = 3;

/// Why the target's tasks stopped, asked of ECS (ListTasks + DescribeTasks): `; tasks stopped: …` with the
/// distinct reasons, newest first. Falls back to the service's events when ECS reports no stopped task or the
/// question fails (a failed rollout is reported either way).
async fn why_stopped(ecs: &dyn Ecs, t: &Target, s: &ServiceState) -> String {
    match ecs.stopped_task_reasons(&t.cluster, &t.name, &t.task_definition).await {
        Ok(reasons) if !reasons.is_empty() => {
            let mut distinct: Vec<String> = Vec::new();
            for r in reasons {
                if !distinct.contains(&r) && distinct.len() < MAX_REASONS {
                    distinct.push(r);
                }
            }
            format!("; tasks stopped: {}", distinct.join("; "))
        }
        Ok(_) => last_failure(s),
        Err(e) => {
            tracing::warn!(service = %t.name, error = %e, "could not ask ECS why tasks stopped");
            last_failure(s)
        }
    }
}

/// Why tasks stopped, from the newest event that says so.
fn last_failure(s: &ServiceState) -> String {
    s.events
        .iter()
        .find_map(|e| e.message.split_once("task stopped: ").map(|(_, why)| format!("; tasks stopped: {why}")))
        .unwrap_or_default()
}

/// Watches all targets until each has a result or `timeout` passes (then the rest are [`RolloutResult::TimedOut`]:
/// waiting stopped, the rollouts go on and nothing is decided about them).
pub async fn watch(
    ecs: &dyn Ecs,
    clock: &dyn Clock,
    targets: &[Target],
    timeout: Duration,
    progress: Progress<'_>,
) -> BTreeMap<(String, String), RolloutResult> {
    let start = clock.now_ms();
    let mut results = BTreeMap::new();
    let mut last_said: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut interval = POLL_MIN;
    loop {
        let pending: Vec<&Target> =
            targets.iter().filter(|t| !results.contains_key(&(t.cluster.clone(), t.name.clone()))).collect();
        if pending.is_empty() {
            return results;
        }
        let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in &pending {
            wanted.entry(t.cluster.clone()).or_default().push(t.name.clone());
        }
        let now = clock.now_ms();
        match super::describe_all(ecs, &wanted).await {
            Ok(states) => {
                let by_key: BTreeMap<(String, String), ServiceState> =
                    states.into_iter().map(|s| ((s.cluster.clone(), s.name.clone()), s)).collect();
                for t in pending {
                    let key = (t.cluster.clone(), t.name.clone());
                    let Some(s) = by_key.get(&key) else {
                        let reason = "the service disappeared".to_string();
                        results.insert(key, RolloutResult::Failed { kind: FailureKind::Disappeared, reason });
                        continue;
                    };
                    let verdict = judge_explained(ecs, t, s, now).await;
                    match verdict {
                        Some(r) => {
                            match &r {
                                RolloutResult::Completed => progress(&t.name, "rollout completed"),
                                RolloutResult::Failed { reason, .. } => {
                                    progress(&t.name, &format!("rollout failed: {reason}"))
                                }
                                RolloutResult::TimedOut => {}
                            }
                            results.insert(key, r);
                        }
                        None => {
                            let running = s.primary().map_or(0, |p| p.running_count);
                            let said = format!("rolling out {running}/{}", s.desired_count);
                            if last_said.get(&key) != Some(&said) {
                                progress(&t.name, &said);
                                last_said.insert(key, said);
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "describing rollouts failed; will retry"),
        }
        if results.len() == targets.len() {
            return results;
        }
        if clock.now_ms().saturating_sub(start) >= timeout.as_millis() as u64 {
            for t in targets {
                results.entry((t.cluster.clone(), t.name.clone())).or_insert(RolloutResult::TimedOut);
            }
            return results;
        }
        clock.sleep(interval).await;
        interval = (interval * 3 / 2).min(POLL_MAX);
    }
}
