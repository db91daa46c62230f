//! The simulated Application Auto Scaling: ECS services registered as scalable targets with target tracking
//! policies, and the load (`mcpfleet sim load`) their metrics come from, moved on the virtual clock.
//!
//! A service's load is the work it has, in task-units: `sim load --cpu 90` on a service of 2 tasks is 180 percent
//! of a task, which spreads over however many tasks run, so its utilisation falls as tasks are added. Every
//! virtual minute ([`EVALUATION_MS`]) each policy with a load wants `ceil(work / target)` tasks — the issue's
//! `ceil(count × utilisation / target)` — and the count moves there within [min, max]: out as soon as any policy
//! wants more and its scale-out cooldown has passed since the last scale-out, in only when every policy wants
//! fewer and their scale-in cooldowns have passed since the last scale-in (Application Auto Scaling's rules for
//! several target tracking policies). A service without a load has no metric data, so nothing moves it.
//! Registering a target puts a count outside its bounds back inside, as Application Auto Scaling does for an
//! active service.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Sim;
use super::journal::Record;
use super::world::{World, err_invalid, err_not_found, push_event};
use crate::backend::{
    Autoscaling, BackendError, DeploymentStatus, MAX_DESIRED_COUNT, Op, SCALABLE_TARGETS_BATCH, ScalableTarget,
    ScalingPolicy,
};
use crate::render::autoscaling::{
    DIMENSION, Metric, NAMESPACE, ScalableTargetInput, ScalingPolicyInput, TARGET_TRACKING, TargetTracking,
};

/// How often target tracking looks at a service's metrics.
pub const EVALUATION_MS: u64 = 60_000;
/// Policies per DescribeScalingPolicies page (Application Auto Scaling's page size).
const POLICIES_PAGE: usize = 10;

/// A registered scalable target with its policies and the times it last scaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimScalableTarget {
    pub min_capacity: u32,
    pub max_capacity: u32,
    /// Target tracking policies by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, TargetTracking>,
    /// When target tracking last looked at the service.
    #[serde(default)]
    pub evaluated_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled_out_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled_in_ms: Option<u64>,
}

/// A service's work, in task-units (utilisation percent, or requests per minute, times the tasks it was measured
/// on); absent metrics have no data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Load {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
}

impl Load {
    fn of(&self, metric: Metric) -> Option<u64> {
        match metric {
            Metric::Cpu => self.cpu,
            Metric::Memory => self.memory,
            Metric::Requests => self.requests,
        }
    }
}

/// What `sim load` sets: per-task utilisation percent and requests per minute per task, at the service's count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadSpec {
    pub cpu: Option<u32>,
    pub memory: Option<u32>,
    pub requests: Option<u32>,
}

/// `service/<cluster>/<service>` → `cluster/service`, the sim's key of the service.
fn service_of(resource_id: &str) -> Option<&str> {
    resource_id.strip_prefix("service/").filter(|k| k.split('/').count() == 2 && !k.split('/').any(str::is_empty))
}

fn check_target(op: Op, namespace: &str, dimension: &str, resource_id: &str) -> Result<(), BackendError> {
    if namespace != NAMESPACE || dimension != DIMENSION || service_of(resource_id).is_none() {
        return Err(err_invalid(
            op,
            format!(
                "ValidationException: Unsupported service namespace, resource type or scalable dimension \
                 ({namespace}, {resource_id}, {dimension})"
            ),
        ));
    }
    Ok(())
}

impl World {
    /// RegisterScalableTarget: the ECS service must exist; a count outside the new bounds is put inside them.
    pub fn register_scalable_target(&mut self, input: &ScalableTargetInput) -> Result<(), BackendError> {
        const OP: Op = Op::RegisterScalableTarget;
        check_target(OP, &input.service_namespace, &input.scalable_dimension, &input.resource_id)?;
        let (min, max) = (input.min_capacity, input.max_capacity);
        if min > max || max > MAX_DESIRED_COUNT {
            return Err(err_invalid(OP, format!("ValidationException: invalid capacity bounds {min}..{max}")));
        }
        let now = self.now_ms;
        let key = service_of(&input.resource_id).unwrap_or_default().to_string();
        let Some(svc) = self.services.get_mut(&key).filter(|s| s.state.is_active()) else {
            return Err(err_invalid(
                OP,
                format!("ValidationException: ECS service doesn't exist: {}", input.resource_id),
            ));
        };
        let count = svc.state.desired_count;
        let inside = count.clamp(min, max);
        if inside != count {
            set_count(&mut svc.state, inside, now, &format!("to stay within its scalable target's {min}..{max}"));
        }
        let target = self.scalable_targets.entry(input.resource_id.clone()).or_insert_with(|| SimScalableTarget {
            min_capacity: min,
            max_capacity: max,
            policies: BTreeMap::new(),
            evaluated_ms: now,
            scaled_out_ms: None,
            scaled_in_ms: None,
        });
        target.min_capacity = min;
        target.max_capacity = max;
        Ok(())
    }

    /// PutScalingPolicy: target tracking on a registered target; ALBRequestCountPerTarget's resource label must
    /// name one of the sim's target groups behind its load balancer.
    pub fn put_scaling_policy(&mut self, input: &ScalingPolicyInput) -> Result<(), BackendError> {
        const OP: Op = Op::PutScalingPolicy;
        check_target(OP, &input.service_namespace, &input.scalable_dimension, &input.resource_id)?;
        if input.policy_type != TARGET_TRACKING {
            return Err(err_invalid(OP, format!("ValidationException: the sim has no {} policies", input.policy_type)));
        }
        let tracking = &input.target_tracking_scaling_policy_configuration;
        if !(tracking.target_value.is_finite() && tracking.target_value > 0.0) {
            return Err(err_invalid(OP, format!("ValidationException: target value {}", tracking.target_value)));
        }
        let spec = &tracking.predefined_metric_specification;
        if spec.predefined_metric_type == Metric::Requests
            && !spec.resource_label.as_deref().is_some_and(|l| self.is_request_count_label(l))
        {
            return Err(err_invalid(
                OP,
                format!(
                    "ValidationException: ALBRequestCountPerTarget needs the resource label of a target group behind \
                     an Application Load Balancer, not {:?}",
                    spec.resource_label
                ),
            ));
        }
        let Some(target) = self.scalable_targets.get_mut(&input.resource_id) else {
            return Err(err_not_found(
                OP,
                format!("ObjectNotFoundException: No scalable target registered for {}", input.resource_id),
            ));
        };
        target.policies.insert(input.policy_name.clone(), tracking.clone());
        Ok(())
    }

    /// Whether `label` (`app/<lb>/<id>/targetgroup/<tg>/<id>`) names one of the sim's target groups with the
    /// load balancer routing to it.
    fn is_request_count_label(&self, label: &str) -> bool {
        let Some((lb, tg)) = label.split_once("/targetgroup/") else { return false };
        let group = self.target_groups.values().find(|g| g.arn.ends_with(&format!(":targetgroup/{tg}")));
        group.is_some_and(|g| g.load_balancer_arns.iter().any(|arn| arn.ends_with(&format!(":loadbalancer/{lb}"))))
    }

    /// DeleteScalingPolicy.
    pub fn delete_scaling_policy(&mut self, resource_id: &str, name: &str) -> Result<(), BackendError> {
        let removed = self.scalable_targets.get_mut(resource_id).and_then(|t| t.policies.remove(name));
        removed.map(|_| ()).ok_or_else(|| {
            err_not_found(
                Op::DeleteScalingPolicy,
                format!("ObjectNotFoundException: No scaling policy {name} for {resource_id}"),
            )
        })
    }

    /// DeregisterScalableTarget: the target goes, with its policies.
    pub fn deregister_scalable_target(&mut self, resource_id: &str) -> Result<(), BackendError> {
        self.scalable_targets.remove(resource_id).map(|_| ()).ok_or_else(|| {
            err_not_found(
                Op::DeregisterScalableTarget,
                format!("ObjectNotFoundException: No scalable target registered for {resource_id}"),
            )
        })
    }

    /// DescribeScalableTargets of these resource ids.
    pub fn describe_scalable_targets(&self, resource_ids: &[String]) -> Vec<ScalableTarget> {
        resource_ids
            .iter()
            .filter_map(|id| {
                let t = self.scalable_targets.get(id)?;
                Some(ScalableTarget {
                    resource_id: id.clone(),
                    min_capacity: t.min_capacity,
                    max_capacity: t.max_capacity,
                })
            })
            .collect()
    }

    /// DescribeScalingPolicies of one resource id.
    pub fn describe_scaling_policies(&self, resource_id: &str) -> Vec<ScalingPolicy> {
        let Some(t) = self.scalable_targets.get(resource_id) else { return Vec::new() };
        t.policies
            .iter()
            .map(|(name, tracking)| ScalingPolicy {
                policy_name: name.clone(),
                resource_id: resource_id.to_string(),
                target_tracking: Some(tracking.clone()),
            })
            .collect()
    }

    /// `sim load`: the service's work from per-task values at its count now. Returns the count they were taken at.
    pub fn set_load(&mut self, cluster: &str, service: &str, spec: LoadSpec) -> Result<u32, String> {
        let key = super::world::service_key(cluster, service);
        let Some(svc) = self.services.get(&key).filter(|s| s.state.is_active()) else {
            return Err(format!("service `{service}` is not running in cluster `{cluster}`"));
        };
        let count = svc.state.desired_count.max(1);
        let work = |v: Option<u32>| v.map(|v| u64::from(v) * u64::from(count));
        self.loads.insert(key, Load { cpu: work(spec.cpu), memory: work(spec.memory), requests: work(spec.requests) });
        Ok(count)
    }

    /// One step of target tracking for every target due for evaluation (see the module's docs).
    pub(super) fn autoscale(&mut self) {
        let now = self.now_ms;
        let World { scalable_targets, services, loads, .. } = self;
        for (resource_id, target) in scalable_targets.iter_mut() {
            if now < target.evaluated_ms.saturating_add(EVALUATION_MS) {
                continue;
            }
            target.evaluated_ms = now;
            let Some(key) = service_of(resource_id) else { continue };
            let (Some(svc), Some(load)) = (services.get_mut(key), loads.get(key)) else { continue };
            let count = svc.state.desired_count;
            if !svc.state.is_active() || count == 0 {
                continue;
            }
            // What each policy with data wants, with its cooldowns.
            let wants: Vec<(u32, u64, u64, String)> = target
                .policies
                .values()
                .filter_map(|p| {
                    let metric = p.predefined_metric_specification.predefined_metric_type;
                    let work = load.of(metric)? as f64;
                    let wanted = (work / p.target_value).ceil().clamp(0.0, f64::from(MAX_DESIRED_COUNT)) as u32;
                    let why = format!(
                        "{} {:.0} against a target of {}",
                        metric.predefined(),
                        work / f64::from(count),
                        p.target_value
                    );
                    Some((wanted, u64::from(p.scale_out_cooldown) * 1000, u64::from(p.scale_in_cooldown) * 1000, why))
                })
                .collect();
            let since = |at: Option<u64>, cooldown: u64| at.is_none_or(|at| now >= at.saturating_add(cooldown));
            let (min, max) = (target.min_capacity, target.max_capacity.max(target.min_capacity));
            let out = wants.iter().filter(|w| w.0 > count && since(target.scaled_out_ms, w.1)).max_by_key(|w| w.0);
            if let Some((wanted, _, _, why)) = out {
                let new = (*wanted).clamp(min, max);
                if new > count {
                    set_count(&mut svc.state, new, now, &format!("by Application Auto Scaling ({why})"));
                    target.scaled_out_ms = Some(now);
                }
                continue;
            }
            let all_in = !wants.is_empty() && wants.iter().all(|w| w.0 < count && since(target.scaled_in_ms, w.2));
            if let Some((wanted, _, _, why)) = wants.iter().max_by_key(|w| w.0).filter(|_| all_in) {
                let new = (*wanted).clamp(min, max);
                if new < count {
                    set_count(&mut svc.state, new, now, &format!("by Application Auto Scaling ({why})"));
                    target.scaled_in_ms = Some(now);
                }
            }
        }
    }
}

/// Sets a service's desired count (and its PRIMARY deployment's), with an event saying why.
fn set_count(s: &mut crate::backend::ServiceState, count: u32, now: u64, why: &str) {
    let before = s.desired_count;
    s.desired_count = count;
    if let Some(p) = s.deployments.iter_mut().find(|d| d.status == DeploymentStatus::Primary) {
        p.desired_count = count;
    }
    push_event(s, now, format!("(service {}) desired count set from {before} to {count} {why}.", s.name));
}

#[async_trait]
impl Autoscaling for Sim {
    async fn scalable_targets(&self, resource_ids: &[String]) -> Result<Vec<ScalableTarget>, BackendError> {
        if resource_ids.len() > SCALABLE_TARGETS_BATCH {
            return Err(err_invalid(
                Op::DescribeScalableTargets,
                format!("ValidationException: at most {SCALABLE_TARGETS_BATCH} resource ids per request"),
            ));
        }
        self.call(Op::DescribeScalableTargets, |w| Ok(w.describe_scalable_targets(resource_ids)))
    }
    async fn scaling_policies(&self, resource_id: &str) -> Result<Vec<ScalingPolicy>, BackendError> {
        let found = self.call(Op::DescribeScalingPolicies, |w| Ok(w.describe_scaling_policies(resource_id)))?;
        // Counted as Application Auto Scaling pages them: one request per 10 policies.
        for _ in 1..found.len().div_ceil(POLICIES_PAGE) {
            self.call(Op::DescribeScalingPolicies, |_| Ok(()))?;
        }
        Ok(found)
    }
    async fn register_scalable_target(&self, input: &ScalableTargetInput) -> Result<(), BackendError> {
        self.write(Record::RegisterScalableTarget(input.clone()), |w| w.register_scalable_target(input))
    }
    async fn put_scaling_policy(&self, input: &ScalingPolicyInput) -> Result<(), BackendError> {
        self.write(Record::PutScalingPolicy(input.clone()), |w| w.put_scaling_policy(input))
    }
    async fn delete_scaling_policy(&self, resource_id: &str, policy_name: &str) -> Result<(), BackendError> {
        let record = Record::DeleteScalingPolicy(resource_id.to_string(), policy_name.to_string());
        self.write(record, |w| w.delete_scaling_policy(resource_id, policy_name))
    }
    async fn deregister_scalable_target(&self, resource_id: &str) -> Result<(), BackendError> {
        self.write(Record::DeregisterScalableTarget(resource_id.to_string()), |w| {
            w.deregister_scalable_target(resource_id)
        })
    }
}
