//! Application Auto Scaling documents for one service: the RegisterScalableTarget and PutScalingPolicy inputs, in
//! the API's JSON shape (its members are PascalCase, unlike ECS's), rendered from the validated spec and its
//! resolution.
//!
//! ECS services scale in namespace `ecs` on the dimension `ecs:service:DesiredCount` of the resource
//! `service/<cluster>/<service>`; each target of the manifest becomes one target tracking policy named after the
//! service and its metric (`documents-cpu`), which is how mcpfleet recognises its own policies on a target. The
//! same types describe what the backends observe, so plan compares like with like. Pure: no I/O.

use serde::{Deserialize, Serialize};

use super::Resolved;
use crate::spec::{ValidAutoscaling, ValidService};

/// The Application Auto Scaling namespace of ECS services.
pub const NAMESPACE: &str = "ecs";
/// The dimension of an ECS service that Application Auto Scaling moves: its desired count.
pub const DIMENSION: &str = "ecs:service:DesiredCount";
/// The type of every policy mcpfleet puts.
pub const TARGET_TRACKING: &str = "TargetTrackingScaling";
/// The longest scaling policy name Application Auto Scaling accepts.
pub const MAX_POLICY_NAME: usize = 256;

/// The scalable resource of an ECS service: `service/<cluster>/<service>`.
pub fn resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

/// A metric a target tracking policy of an ECS service follows (Application Auto Scaling's predefined metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Average CPU utilisation of the service's tasks, percent (`targetCpu`).
    #[serde(rename = "ECSServiceAverageCPUUtilization")]
    Cpu,
    /// Average memory utilisation of the service's tasks, percent (`targetMemory`).
    #[serde(rename = "ECSServiceAverageMemoryUtilization")]
    Memory,
    /// Requests per minute per target of an ALB target group (`requestsPerTarget`).
    #[serde(rename = "ALBRequestCountPerTarget")]
    Requests,
}

impl Metric {
    /// Every metric, in the order policies are rendered.
    pub const ALL: [Metric; 3] = [Metric::Cpu, Metric::Memory, Metric::Requests];

    /// Application Auto Scaling's name of the predefined metric.
    pub fn predefined(self) -> &'static str {
        match self {
            Metric::Cpu => "ECSServiceAverageCPUUtilization",
            Metric::Memory => "ECSServiceAverageMemoryUtilization",
            Metric::Requests => "ALBRequestCountPerTarget",
        }
    }

    /// The metric Application Auto Scaling names so; None for one mcpfleet does not put.
    pub fn from_predefined(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.predefined() == s)
    }

    /// The suffix of the policy's name (`cpu`, `memory`, `requests`).
    pub fn suffix(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Memory => "memory",
            Metric::Requests => "requests",
        }
    }

    /// The manifest's field (`targetCpu`, `targetMemory`, `requestsPerTarget`), as `status -o json` reports it.
    pub fn field(self) -> &'static str {
        match self {
            Metric::Cpu => "targetCpu",
            Metric::Memory => "targetMemory",
            Metric::Requests => "requestsPerTarget",
        }
    }
}

/// The name of the service's policy for `metric`: `<service>-<suffix>`.
pub fn policy_name(service: &str, metric: Metric) -> String {
    format!("{service}-{}", metric.suffix())
}

/// The metric of a policy mcpfleet put on `service`'s target, by its name; None for anyone else's policy.
pub fn owned_metric(service: &str, policy_name: &str) -> Option<Metric> {
    Metric::ALL
        .into_iter()
        .find(|m| policy_name.strip_prefix(service).and_then(|r| r.strip_prefix('-')) == Some(m.suffix()))
}

/// A target value as people write it: a whole number stays one (`60`, not `60.0`).
pub fn target_json(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&v) {
        serde_json::Value::from(v as u64)
    } else {
        serde_json::Value::from(v)
    }
}

/// RegisterScalableTarget input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalableTargetInput {
    pub service_namespace: String,
    pub resource_id: String,
    pub scalable_dimension: String,
    pub min_capacity: u32,
    pub max_capacity: u32,
}

/// The predefined metric of a target tracking policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PredefinedMetricSpecification {
    pub predefined_metric_type: Metric,
    /// For `ALBRequestCountPerTarget`: `app/<load-balancer>/<id>/targetgroup/<target-group>/<id>`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resource_label: Option<String>,
}

/// A target tracking policy's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetTracking {
    /// Percent for CPU and memory; requests per minute per target for `ALBRequestCountPerTarget`.
    pub target_value: f64,
    pub predefined_metric_specification: PredefinedMetricSpecification,
    /// Seconds.
    pub scale_in_cooldown: u32,
    /// Seconds.
    pub scale_out_cooldown: u32,
    pub disable_scale_in: bool,
}

/// PutScalingPolicy input: one target tracking policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingPolicyInput {
    pub policy_name: String,
    pub service_namespace: String,
    pub resource_id: String,
    pub scalable_dimension: String,
    pub policy_type: String,
    pub target_tracking_scaling_policy_configuration: TargetTracking,
}

impl ScalingPolicyInput {
    /// The metric the policy follows.
    pub fn metric(&self) -> Metric {
        self.target_tracking_scaling_policy_configuration.predefined_metric_specification.predefined_metric_type
    }
}

/// Every Application Auto Scaling document of an autoscaled service.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingDocs {
    pub register_scalable_target: ScalableTargetInput,
    /// One per target of the manifest, in [`Metric::ALL`]'s order.
    pub put_scaling_policies: Vec<ScalingPolicyInput>,
}

impl ScalingDocs {
    /// The bounds of the service's desired count.
    pub fn bounds(&self) -> Bounds {
        Bounds { min: self.register_scalable_target.min_capacity, max: self.register_scalable_target.max_capacity }
    }

    /// The hash of the documents (the `mcpfleet.io/autoscaling` tag records the one applied).
    pub fn hash(&self) -> String {
        super::ecs::hash_json(self)
    }
}

/// The range Application Auto Scaling keeps a service's desired count in: the autoscaler's to move within.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

impl Bounds {
    /// The bound nearest to `count` when it is outside them (what drift correction sets); None inside them.
    pub fn correction(self, count: u32) -> Option<u32> {
        let nearest = count.clamp(self.min, self.max.max(self.min));
        (nearest != count).then_some(nearest)
    }
}

/// The documents of `svc`, when it autoscales. `res.request_count_label` is the resource label of the target
/// group `requestsPerTarget` follows, once resolved; before that (`render` without AWS) the target group is
/// shown as written.
pub fn render(svc: &ValidService, res: &Resolved) -> Option<ScalingDocs> {
    let a = svc.autoscaling.as_ref()?;
    let resource = resource_id(&svc.cluster, &svc.name);
    let policy = |metric: Metric, target: u32| {
        let resource_label = (metric == Metric::Requests).then(|| {
            res.request_count_label
                .clone()
                .unwrap_or_else(|| svc.load_balancers.first().map(|lb| lb.target_group.clone()).unwrap_or_default())
        });
        ScalingPolicyInput {
            policy_name: policy_name(&svc.name, metric),
            service_namespace: NAMESPACE.into(),
            resource_id: resource.clone(),
            scalable_dimension: DIMENSION.into(),
            policy_type: TARGET_TRACKING.into(),
            target_tracking_scaling_policy_configuration: TargetTracking {
                target_value: f64::from(target),
                predefined_metric_specification: PredefinedMetricSpecification {
                    predefined_metric_type: metric,
                    resource_label,
                },
                scale_in_cooldown: a.scale_in_cooldown_secs,
                scale_out_cooldown: a.scale_out_cooldown_secs,
                disable_scale_in: false,
            },
        }
    };
    Some(ScalingDocs {
        register_scalable_target: ScalableTargetInput {
            service_namespace: NAMESPACE.into(),
            resource_id: resource.clone(),
            scalable_dimension: DIMENSION.into(),
            min_capacity: a.min,
            max_capacity: a.max,
        },
        put_scaling_policies: targets(a).map(|(m, t)| policy(m, t)).collect(),
    })
}

/// The targets a spec asks for, in [`Metric::ALL`]'s order.
pub fn targets(a: &ValidAutoscaling) -> impl Iterator<Item = (Metric, u32)> + use<> {
    targets_of(a.target_cpu, a.target_memory, a.requests_per_target)
}

/// The targets set among a CPU, a memory and a requests target, in [`Metric::ALL`]'s order.
pub fn targets_of(
    cpu: Option<u32>,
    memory: Option<u32>,
    requests: Option<u32>,
) -> impl Iterator<Item = (Metric, u32)> + use<> {
    Metric::ALL.into_iter().zip([cpu, memory, requests]).filter_map(|(m, t)| Some((m, t?)))
}

/// The resource label `ALBRequestCountPerTarget` needs, from the ARNs of an Application Load Balancer and a target
/// group it routes to: `app/<lb-name>/<lb-id>/targetgroup/<tg-name>/<tg-id>`. None when either is not such an ARN.
pub fn request_count_label(load_balancer_arn: &str, target_group_arn: &str) -> Option<String> {
    let (_, lb) = load_balancer_arn.split_once(":loadbalancer/")?;
    let (_, tg) = target_group_arn.split_once(":targetgroup/")?;
    let lb_ok = lb.starts_with("app/") && lb.split('/').count() == 3 && lb.split('/').all(|p| !p.is_empty());
    let tg_ok = tg.split('/').count() == 2 && tg.split('/').all(|p| !p.is_empty());
    (lb_ok && tg_ok).then(|| format!("{lb}/targetgroup/{tg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_count_label_joins_the_load_balancer_and_target_group() {
        let lb = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/mcp-alb/50dc6c495c0c9188";
        let tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mcp-documents/6d0ecf831eec9f09";
        assert_eq!(
            request_count_label(lb, tg).as_deref(),
            Some("app/mcp-alb/50dc6c495c0c9188/targetgroup/mcp-documents/6d0ecf831eec9f09")
        );
        let nlb = lb.replace("/app/", "/net/");
        assert_eq!(request_count_label(&nlb, tg), None, "a Network Load Balancer counts no requests");
        assert_eq!(request_count_label(lb, "mcp-documents"), None);
        assert_eq!(request_count_label("arn:aws:elasticloadbalancing:r:a:loadbalancer/app//x", tg), None);
    }

    #[test]
    fn a_count_outside_the_bounds_is_corrected_to_the_nearest_one() {
        let b = Bounds { min: 2, max: 20 };
        assert_eq!((b.correction(1), b.correction(2), b.correction(7), b.correction(20)), (Some(2), None, None, None));
        assert_eq!(b.correction(21), Some(20));
        assert_eq!(b.correction(0), Some(2));
    }

    #[test]
    fn policies_are_recognised_by_their_names() {
        assert_eq!(policy_name("documents", Metric::Memory), "documents-memory");
        assert_eq!(owned_metric("documents", "documents-requests"), Some(Metric::Requests));
        assert_eq!(owned_metric("documents", "documents-cpu-old"), None);
        assert_eq!(owned_metric("documents", "docs-cpu"), None);
        assert_eq!(owned_metric("documents", "my-step-policy"), None);
        for m in Metric::ALL {
            assert_eq!(Metric::from_predefined(m.predefined()), Some(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.predefined());
        }
    }
}
