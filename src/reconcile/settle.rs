//! Settling rollouts: the one path by which a finished rollout is recorded and acted on, whoever saw it finish —
//! `apply --wait`, `rollback --wait`, the controller, or an `apply` that finds an earlier rollout nobody watched.
//!
//! [`pending`] decides from a service's tags and deployments whether a rollout still owes a verdict (so a rerun
//! after a crash, or a restarted controller, picks up exactly where the last one stopped); [`settle_service`]
//! records the verdict: a completed rollout becomes last good once it passed the MCP gate when the service's
//! rollouts are verified ([`super::verify`]: a failed verification is a failed rollout); a failed one holds back
//! the spec that was rolled out (the service's `spec-hash` tag, never the manifest of the moment: a manifest edited mid-rollout must not
//! hold a spec that was never tried) and goes back to the last good revision when `autoRollback` is on; a failed
//! rollback is reported once. Callers only wait and report. `--timeout` only ever stops the waiting.

use std::collections::BTreeMap;
use std::time::Duration;

use super::verify::{self, Gate, GatePorts};
use super::watch::{self, FailureKind, RolloutResult, Target};
use super::{Desired, Observed, Outcome, Progress, ServiceOutcome, rollout};
use crate::backend::{BackendError, Clock, Ecs, RolloutState, ServiceState};
use crate::spec::ValidRollout;
use crate::state::secrets::{self, Restart};
use crate::state::{self, Networking, ServiceTags, short};

/// What settling talks to: ECS, the clock, and the MCP gate's ports (None: no rollout is verified, e.g. an
/// operator's `rollback`, which reads no manifests).
#[derive(Clone, Copy)]
pub struct Ports<'a> {
    pub ecs: &'a dyn Ecs,
    pub clock: &'a dyn Clock,
    pub gate: Option<GatePorts<'a>>,
}

/// What a settle may do: the service's rollout settings (with its MCP gate), or an operator's rollback.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// Roll a failed rollout back to the last good revision.
    pub auto_rollback: bool,
    /// ACTIVE revisions kept after a completed rollout.
    pub history_limit: u32,
    /// How long a rollout may take before it has failed.
    pub progress_deadline_secs: u64,
    /// The MCP gate a completed rollout must pass before it is good; None when rollouts are not verified.
    pub gate: Option<Gate<'a>>,
}

impl<'a> Policy<'a> {
    /// A service's own rollout settings, without a gate.
    pub fn of(r: &ValidRollout) -> Policy<'a> {
        Policy {
            auto_rollback: r.auto_rollback,
            history_limit: r.history_limit,
            progress_deadline_secs: r.progress_deadline_secs,
            gate: None,
        }
    }

    /// A desired service's settings, with its gate when its rollouts are verified and `ports` can probe.
    pub fn for_service(d: &'a Desired, ports: Option<GatePorts<'a>>) -> Policy<'a> {
        Policy { gate: Gate::of(&d.mcp, ports), ..Policy::of(&d.rollout) }
    }

    /// An operator's `rollback`, made without the manifests: the default progress deadline, and no retention
    /// (the manifests' `historyLimit` is not known).
    pub fn operator() -> Policy<'a> {
        Policy {
            auto_rollback: false,
            history_limit: u32::MAX,
            progress_deadline_secs: ValidRollout::DEFAULT_PROGRESS_DEADLINE_SECS,
            gate: None,
        }
    }
}

/// Time allowed past the longest progress deadline before a default `--timeout` stops waiting: a poll interval and
/// the settling calls.
pub const TIMEOUT_MARGIN: Duration = Duration::from_secs(120);
/// The shortest default `--timeout`.
pub const MIN_DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The default `--timeout` for rollouts with these progress deadlines: long enough that only the deadlines (and
/// ECS) decide whether a rollout failed.
pub fn default_timeout(deadlines_secs: impl IntoIterator<Item = u64>) -> Duration {
    let longest = deadlines_secs.into_iter().max().unwrap_or(0);
    Duration::from_secs(longest).saturating_add(TIMEOUT_MARGIN).max(MIN_DEFAULT_TIMEOUT)
}

/// When a rollout started at `start_ms` runs out of its progress deadline. The start may come from an AWS answer
/// (a deployment's `createdAt`): saturating, so an absurd one means "never", not an overflow.
fn deadline_ms(start_ms: u64, progress_deadline_secs: u64) -> u64 {
    start_ms.saturating_add(progress_deadline_secs.saturating_mul(1000))
}

/// What a service owes before it may be reconciled.
#[derive(Debug, Clone)]
pub enum Pending {
    /// Nothing in flight.
    Settled,
    /// A rollout to watch until it completes or fails.
    Rollout(Target),
    /// The rollout of its last good revision failed and was reported: left as it is until the spec changes.
    FailedRollback,
}

/// The rollout a service still owes a verdict on: it was applied with a revision (`task-definition` tag) that is
/// neither its last good one nor already judged failed — or it is back on its last good revision (a rollback)
/// whose PRIMARY deployment has not completed yet. `applied` is the networking of the spec it was applied with,
/// when the caller has that spec (see [`state::applied_networking`]): a spec that kept the last good revision and
/// changed only the networking owes a verdict of its own while its deployment is in flight, or once ECS's circuit
/// breaker took its networking back.
pub fn pending(state: &ServiceState, progress_deadline_secs: u64, applied: Option<&Networking>) -> Pending {
    let tags = ServiceTags::of(state);
    let Some(td) = tags.applied else { return Pending::Settled };
    let target = |started: u64, networking: Option<&Networking>| {
        Pending::Rollout(Target {
            cluster: state.cluster.clone(),
            name: state.name.clone(),
            task_definition: td.to_string(),
            networking: networking.cloned().map(Box::new),
            deadline_ms: deadline_ms(started, progress_deadline_secs),
            restart: None,
        })
    };
    // A restart for a rotated secret: watched until it completes or fails; a failure reported is settled.
    if let (Some(restart), Some(p)) = (Restart::current(state), state.primary())
        && p.task_definition == td
    {
        if restart.failed || p.rollout_state == RolloutState::Completed {
            return Pending::Settled;
        }
        return Pending::Rollout(Target {
            cluster: state.cluster.clone(),
            name: state.name.clone(),
            task_definition: td.to_string(),
            networking: None,
            deadline_ms: deadline_ms(p.created_at_ms, progress_deadline_secs),
            restart: Some(restart.deployment.to_string()),
        });
    }
    if let Some(p) = state.primary()
        && p.task_definition == td
        && tags.rollback_failed == Some(p.id.as_str())
    {
        return Pending::FailedRollback;
    }
    if tags.last_good == Some(td) {
        let Some(p) = state.primary() else { return Pending::Settled };
        let in_flight = p.task_definition == td && p.rollout_state != RolloutState::Completed;
        return match applied.filter(|_| !tags.applied_failure_recorded()) {
            Some(n) if in_flight || state::rolled_back_by_ecs(state, Some(n)) => target(p.created_at_ms, Some(n)),
            None if in_flight => target(p.created_at_ms, None),
            _ => Pending::Settled,
        };
    }
    if tags.applied_failure_recorded() {
        return Pending::Settled;
    }
    let started = state
        .deployments
        .iter()
        .filter(|d| d.task_definition == td)
        .map(|d| d.created_at_ms)
        .max()
        .or_else(|| state.primary().filter(|p| p.rollout_state != RolloutState::Completed).map(|p| p.created_at_ms))
        .unwrap_or(0);
    target(started, applied)
}

/// What settling a rollout did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The rollout completed and its revision is last good. `rollback`: it was the way back from a failed spec.
    /// `verified`: what the MCP gate found, when the service's rollouts are verified.
    Completed { rollback: bool, verified: Option<verify::Passed> },
    /// The rollout failed and its spec is held; the service goes back to `to`: a rollback mcpfleet started
    /// (`by_ecs: false`), or where ECS's circuit breaker already put it (`by_ecs: true`, with autoRollback off).
    RolledBack { reason: String, to: String, by_ecs: bool },
    /// The rollout failed and its spec is held where it is: there is no earlier good revision (`no_good`), or
    /// autoRollback is off.
    Held { reason: String, no_good: bool },
    /// The rollout of the last good revision itself (a rollback) failed: reported once, then left alone.
    RollbackFailed { reason: String },
    /// Waiting stopped (`--timeout`) before a verdict: nothing recorded, the rollout goes on.
    Waiting,
    /// A restart for a rotated secret completed: every task reads the new version.
    Restarted,
    /// A restart for a rotated secret failed: rolling back cannot help (the old value is gone), so nothing is rolled
    /// back or held; the failure is recorded as reported, and the restart is not tried again for this rotation.
    RestartFailed { reason: String },
}

/// Records the result of `target`'s rollout on a service (`state`, as observed when the result was known).
/// `rolled_out` is the spec-hash that rollout deployed when the caller started it itself; otherwise the
/// service's `spec-hash` tag says what was rolled out. Either way the spec that was tried is what is held back
/// on failure, never the manifest of the moment. A completed rollout of a verified service is good only once
/// it passed the MCP gate; one that fails it is failed like any other (kind [`FailureKind::VerificationFailed`]).
pub async fn settle_service(
    ports: Ports<'_>,
    state: &ServiceState,
    target: &Target,
    result: &RolloutResult,
    policy: Policy<'_>,
    rolled_out: Option<&str>,
) -> Result<Settled, BackendError> {
    let ecs = ports.ecs;
    if let Some(deployment) = &target.restart {
        return match result {
            RolloutResult::TimedOut => Ok(Settled::Waiting),
            RolloutResult::Completed => Ok(Settled::Restarted),
            RolloutResult::Failed { reason, .. } => {
                ecs.tag_resource(&state.arn, &secrets::restart_failed(deployment)).await?;
                Ok(Settled::RestartFailed { reason: reason.clone() })
            }
        };
    }
    let tags = ServiceTags::of(state);
    let td = target.task_definition.as_str();
    let rollback = target.is_rollback(tags.last_good);
    // A spec that kept the last good revision and changed only its networking: the revision keeps the outcome it
    // earned, and going back means its networking as it last completed.
    let same_revision = !rollback && tags.last_good == Some(td);
    let (kind, reason) = match result {
        RolloutResult::TimedOut => return Ok(Settled::Waiting),
        // Back on the last good revision: it is recorded already (and was verified when it became good).
        RolloutResult::Completed if rollback => {
            return Ok(Settled::Completed { rollback: tags.came_back_from_failure(), verified: None });
        }
        RolloutResult::Completed => match policy.gate {
            None => {
                rollout::record_success(ecs, state, td, policy.history_limit).await?;
                return Ok(Settled::Completed { rollback: false, verified: None });
            }
            Some(gate) => {
                let verdict = verify::verify(ecs, ports.clock, gate, state, td).await?;
                verify::record(ecs, ports.clock, state, td, &verdict).await?;
                match &verdict.failure {
                    None => {
                        rollout::record_success(ecs, state, td, policy.history_limit).await?;
                        let passed = verify::Passed {
                            tools: verdict.tools.as_ref().map(Vec::len),
                            latency: verdict.latency,
                            warning: verify::session_warning(state, &verdict),
                        };
                        return Ok(Settled::Completed { rollback: false, verified: Some(passed) });
                    }
                    Some(why) => (FailureKind::VerificationFailed, format!("MCP verification failed: {why}")),
                }
            }
        },
        RolloutResult::Failed { kind, reason } => (*kind, reason.clone()),
    };
    if rollback {
        rollback_failed(ecs, state, td).await?;
        return Ok(Settled::RollbackFailed { reason });
    }
    let spec_hash = rolled_out.or(tags.spec_hash).unwrap_or_default();
    if !same_revision {
        ecs.tag_resource(td, &state::outcome(state::Outcome::Failed)).await?;
    }
    let last_good = tags.last_good.filter(|lg| *lg != td || same_revision);
    let by_ecs = (state.task_definition != td || same_revision)
        && (kind == FailureKind::RolledBackByEcs || state::rolled_back_by_ecs(state, target.networking.as_deref()));
    let settled = match last_good {
        Some(lg) if policy.auto_rollback => {
            rollout::start_rollback(ecs, state, lg, td, spec_hash).await?;
            Settled::RolledBack { reason, to: lg.to_string(), by_ecs: false }
        }
        _ if by_ecs => {
            ecs.tag_resource(&state.arn, &state::held(spec_hash)).await?;
            if !same_revision {
                ecs.tag_resource(td, &state::outcome(state::Outcome::RolledBack)).await?;
            }
            Settled::RolledBack { reason, to: state.task_definition.clone(), by_ecs: true }
        }
        _ => {
            ecs.tag_resource(&state.arn, &state::held(spec_hash)).await?;
            Settled::Held { reason, no_good: policy.auto_rollback }
        }
    };
    Ok(settled)
}

/// A rollback's own rollout failed: the target is no revision to go back to any more, and the failure is
/// reported once (the deployment is recorded). When ECS's circuit breaker put the service back on the revision it
/// left, that revision ran to completion (the breaker only returns to a completed deployment): it is last good
/// again and the service's state tags describe it.
async fn rollback_failed(ecs: &dyn Ecs, state: &ServiceState, td: &str) -> Result<(), BackendError> {
    ecs.tag_resource(td, &state::outcome(state::Outcome::Failed)).await?;
    let mut tags = state::rollback_failed(state.primary().map_or("", |p| p.id.as_str()));
    if state.task_definition != td {
        let running = ecs.describe_task_definition(&state.task_definition).await?;
        ecs.tag_resource(&running.arn, &state::completed_with(state)).await?;
        tags.extend(state::running(&running.arn, &running.tags));
        tags.extend(state::last_good(&running.arn));
    }
    ecs.tag_resource(&state.arn, &tags).await
}

/// The outcome and message an apply reports for a settled rollout (`back`: how the rollback it started settled,
/// when it was watched). None when the rollout did not fail.
fn report(settled: &Settled, back: Option<&Settled>) -> Option<(Outcome, String)> {
    let out = match (settled, back) {
        (Settled::Completed { .. } | Settled::Waiting | Settled::Restarted, _) => return None,
        (Settled::RestartFailed { reason }, _) => (Outcome::Failed, restart_failed_message(reason)),
        (Settled::RolledBack { reason, to, by_ecs: true }, _) => (
            Outcome::RolledBack,
            format!(
                "rollout failed: {reason}; ECS's circuit breaker put the service back on {} (autoRollback is off)",
                short(to)
            ),
        ),
        (Settled::RolledBack { reason, to, .. }, None) => {
            (Outcome::RolledBack, format!("rollout failed: {reason}; rolling back to {}", short(to)))
        }
        (Settled::RolledBack { reason, to, .. }, Some(Settled::Completed { .. })) => {
            (Outcome::RolledBack, format!("rollout failed: {reason}; rolled back to {}", short(to)))
        }
        (Settled::RolledBack { reason, to, .. }, Some(Settled::RollbackFailed { reason: again })) => {
            (Outcome::Failed, format!("rollout failed: {reason}; the rollback to {} failed too: {again}", short(to)))
        }
        (Settled::RolledBack { reason, to, .. }, Some(_)) => (
            Outcome::RolledBack,
            format!(
                "rollout failed: {reason}; rolling back to {} (still in progress when --timeout ran out)",
                short(to)
            ),
        ),
        (Settled::Held { reason, no_good: true }, _) => {
            (Outcome::Failed, format!("rollout failed: {reason}; no earlier good revision to roll back to"))
        }
        (Settled::Held { reason, no_good: false }, _) => {
            (Outcome::Failed, format!("rollout failed: {reason} (autoRollback is off)"))
        }
        (Settled::RollbackFailed { reason }, _) => {
            (Outcome::Failed, format!("rollout failed: the rollback to the last good revision failed: {reason}"))
        }
    };
    Some(out)
}

/// What is reported for a failed restart: loudly, and what to do, since nothing was rolled back or held.
pub fn restart_failed_message(reason: &str) -> String {
    format!(
        "{RESTART_FAILED}: {reason}; not rolled back (the secret's old value is gone) and not retried for this \
         rotation: fix the secret's value (or the server), then rotate it again or redeploy"
    )
}

/// How the message of a failed restart starts.
pub const RESTART_FAILED: &str = "restart for a rotated secret failed";

/// Rollouts an apply found before planning: those it settled (a failure nobody watched, or with `--wait` a
/// completion) and those still in flight (watched with `--wait`).
#[derive(Debug, Default)]
pub struct Found {
    /// What to report for a service the plan leaves unchanged, by (cluster, name).
    reports: BTreeMap<(String, String), (Outcome, String)>,
    /// Rollouts still in flight, to watch with `--wait`.
    in_flight: Vec<Target>,
    /// Something was recorded: the services must be observed again before planning.
    pub changed: bool,
    /// What the MCP gate warned about in the rollouts settled (see [`Settled::Completed`]).
    pub warnings: Vec<String>,
}

/// Judges the rollouts the observed services still owe a verdict on (see [`pending`]). A failure is settled at
/// once, whoever started the rollout, so its spec is held before it is planned again (a rollout that ECS's
/// circuit breaker rolled back while nobody watched is a failure, not drift); so is a completed rollout of a
/// verified service, which is good only once it passed the MCP gate (nobody may record it good unverified
/// later). With `wait` (the `--timeout`), the rollback that starts is watched, any completed rollout is settled
/// and one in flight is kept for watching. Another deployment over ours is drift: left to the plan.
pub async fn settle_found(
    ports: Ports<'_>,
    desired: &[Desired],
    observed: &Observed,
    wait: Option<Duration>,
    progress: Progress<'_>,
) -> Result<Found, BackendError> {
    let mut found = Found::default();
    let now = ports.clock.now_ms();
    for d in desired {
        let Some(s) = observed.get(&d.ecs.cluster, &d.ecs.name).filter(|s| s.is_active() && state::is_managed(s))
        else {
            continue;
        };
        let policy = Policy::for_service(d, ports.gate);
        let applied = state::applied_networking(s, Some(&d.ecs));
        let Pending::Rollout(target) = pending(s, policy.progress_deadline_secs, applied.as_ref()) else { continue };
        let key = (s.cluster.clone(), s.name.clone());
        let result = match watch::judge_explained(ports.ecs, &target, s, now).await {
            None if wait.is_some() => {
                found.reports.insert(key, (Outcome::Unchanged, "a rollout in flight was watched".into()));
                found.in_flight.push(target);
                continue;
            }
            Some(RolloutResult::Completed) if wait.is_some() || policy.gate.is_some() => RolloutResult::Completed,
            Some(r @ RolloutResult::Failed { kind, .. }) if kind != FailureKind::Replaced => r,
            _ => continue,
        };
        let settled = settle_service(ports, s, &target, &result, policy, None).await?;
        found.changed = true;
        found.warnings.extend(warning(&settled));
        let back = match (&settled, wait) {
            (Settled::RolledBack { to, by_ecs: false, .. }, Some(timeout)) => {
                Some(watch_back(ports, s, to, policy, timeout, progress).await?)
            }
            _ => None,
        };
        found.reports.extend(report(&settled, back.as_ref()).map(|r| (key, r)));
    }
    Ok(found)
}

/// How an apply's waiting ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Waited {
    /// A rollout failed (exit 3).
    pub failed: bool,
    /// `--timeout` ran out with rollouts still in flight (exit 4 when none failed).
    pub timed_out: bool,
    /// What the MCP gate warned about in the rollouts settled (see [`Settled::Completed`]).
    pub warnings: Vec<String>,
}

/// Puts what [`settle_found`] settled on the outcomes of services the plan left unchanged. Returns whether any
/// of them was a failed rollout.
pub fn report_found(found: &Found, outcomes: &mut [ServiceOutcome]) -> bool {
    let mut failed = false;
    for o in outcomes.iter_mut().filter(|o| o.outcome == Outcome::Unchanged) {
        if let Some((outcome, message)) = found.reports.get(&(o.cluster.clone(), o.name.clone())) {
            failed |= matches!(outcome, Outcome::RolledBack | Outcome::Failed);
            o.outcome = *outcome;
            o.message = message.clone();
        }
    }
    failed
}

/// `apply --wait`: watches the rollouts the apply started and those it found in flight, and settles each (see
/// [`settle_service`]); a rollback it starts is watched too. Updates `outcomes` in place.
pub async fn settle_apply(
    ports: Ports<'_>,
    desired: &[Desired],
    found: &Found,
    outcomes: &mut [ServiceOutcome],
    timeout: Duration,
    progress: Progress<'_>,
) -> Result<Waited, BackendError> {
    let (ecs, clock) = (ports.ecs, ports.clock);
    let by_name: BTreeMap<(&str, &str), &Desired> =
        desired.iter().map(|d| ((d.ecs.cluster.as_str(), d.ecs.name.as_str()), d)).collect();
    let start = clock.now_ms();
    let mut targets: Vec<Target> = outcomes
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Created | Outcome::Updated))
        .filter_map(|o| {
            let d = by_name.get(&(o.cluster.as_str(), o.name.as_str()))?;
            Some(Target {
                cluster: o.cluster.clone(),
                name: o.name.clone(),
                task_definition: o.task_definition.clone()?,
                networking: o.restart.is_none().then(|| Box::new(Networking::of(&d.ecs.create_service))),
                deadline_ms: deadline_ms(start, d.rollout.progress_deadline_secs),
                restart: o.restart.clone(),
            })
        })
        .collect();
    // A rollout found in flight is watched unless this apply replaced it.
    let unchanged: Vec<(&str, &str)> = outcomes
        .iter()
        .filter(|o| o.outcome == Outcome::Unchanged)
        .map(|o| (o.cluster.as_str(), o.name.as_str()))
        .collect();
    targets
        .extend(found.in_flight.iter().filter(|t| unchanged.contains(&(t.cluster.as_str(), t.name.as_str()))).cloned());
    let mut waited = Waited::default();
    if targets.is_empty() {
        return Ok(waited);
    }
    let results = watch::watch(ecs, clock, &targets, timeout, progress).await;
    let states = current_states(ecs, &targets).await?;
    for t in &targets {
        let key = (t.cluster.clone(), t.name.clone());
        let (Some(result), Some(state), Some(d), Some(o)) = (
            results.get(&key),
            states.get(&key),
            by_name.get(&(t.cluster.as_str(), t.name.as_str())),
            outcomes.iter_mut().find(|o| o.cluster == t.cluster && o.name == t.name),
        ) else {
            continue;
        };
        let policy = Policy::for_service(d, ports.gate);
        // This apply knows what it rolled out; a rollout found in flight is described by the service's tags.
        let started = matches!(o.outcome, Outcome::Created | Outcome::Updated);
        let rolled_out = started.then(|| crate::plan::spec_hash_of(&d.ecs));
        let new_revision = ServiceTags::of(state).last_good != Some(t.task_definition.as_str());
        if policy.gate.is_some() && new_revision && *result == RolloutResult::Completed {
            progress(&o.name, "verifying the MCP server");
        }
        let settled = settle_service(ports, state, t, result, policy, rolled_out).await?;
        waited.warnings.extend(warning(&settled));
        let back = match &settled {
            Settled::RolledBack { to, by_ecs: false, .. } => {
                progress(&o.name, &format!("rollout failed; rolling back to {}", short(to)));
                let remaining = timeout.saturating_sub(Duration::from_millis(clock.now_ms().saturating_sub(start)));
                Some(watch_back(ports, state, to, policy, remaining, progress).await?)
            }
            _ => None,
        };
        match report(&settled, back.as_ref()) {
            Some((outcome, message)) => {
                waited.failed = true;
                if let (Settled::RolledBack { to, .. }, Outcome::RolledBack) = (&settled, outcome) {
                    o.task_definition = Some(to.clone());
                }
                o.outcome = outcome;
                o.message = message;
            }
            None if settled == Settled::Waiting => {
                waited.timed_out = true;
                o.message = format!(
                    "{}; still rolling out when --timeout ran out (the rollout goes on; nothing was held)",
                    o.message
                );
            }
            None => o.message = format!("{}; rollout completed{}", o.message, verified_note(&settled)),
        }
    }
    Ok(waited)
}

/// What the gate warned about, when a settled rollout passed it with a warning.
fn warning(settled: &Settled) -> Option<String> {
    match settled {
        Settled::Completed { verified: Some(passed), .. } => passed.warning.clone(),
        _ => None,
    }
}

/// `; MCP verification passed (N tools)` after a completed rollout that the gate verified.
fn verified_note(settled: &Settled) -> String {
    match settled {
        Settled::Completed { verified: Some(passed), .. } => match passed.tools {
            Some(n) => format!("; MCP verification passed ({n} tool{})", if n == 1 { "" } else { "s" }),
            None => "; MCP verification passed".to_string(),
        },
        _ => String::new(),
    }
}

/// Watches the way back to `to` (a rollback just started) and settles it.
async fn watch_back(
    ports: Ports<'_>,
    state: &ServiceState,
    to: &str,
    policy: Policy<'_>,
    timeout: Duration,
    progress: Progress<'_>,
) -> Result<Settled, BackendError> {
    let (ecs, clock) = (ports.ecs, ports.clock);
    let target = Target {
        cluster: state.cluster.clone(),
        name: state.name.clone(),
        task_definition: to.to_string(),
        networking: None,
        deadline_ms: deadline_ms(clock.now_ms(), policy.progress_deadline_secs),
        restart: None,
    };
    let result = watch::watch(ecs, clock, std::slice::from_ref(&target), timeout, progress)
        .await
        .into_values()
        .next()
        .unwrap_or(RolloutResult::TimedOut);
    // Only a failure needs the service as it is now (where ECS left it).
    let now = match result {
        RolloutResult::Failed { .. } => current_states(ecs, std::slice::from_ref(&target)).await?,
        _ => BTreeMap::new(),
    };
    let state = now.get(&(target.cluster.clone(), target.name.clone())).unwrap_or(state);
    let mut state = state.clone();
    // The rollback's own tags (last good = the target) are what it is settled against.
    state.tags.extend(state::last_good(to));
    settle_service(ports, &state, &target, &result, policy, None).await
}

/// An operator's rollback: puts the service on `target` (see [`rollout::start_rollback`]), holding back the spec
/// it abandons, and with a `wait` of Some watches and settles that rollout like any other. Returns the revision
/// gone back to and, when waited for, how it settled.
pub async fn rollback_to(
    ecs: &dyn Ecs,
    clock: &dyn Clock,
    state: &ServiceState,
    target: &str,
    abandoned_spec_hash: &str,
    wait: Option<Duration>,
    progress: Progress<'_>,
) -> Result<Option<Settled>, BackendError> {
    let td = rollout::start_rollback(ecs, state, target, &state.task_definition, abandoned_spec_hash).await?;
    let Some(timeout) = wait else { return Ok(None) };
    let ports = Ports { ecs, clock, gate: None };
    watch_back(ports, state, &td.arn, Policy::operator(), timeout, progress).await.map(Some)
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
