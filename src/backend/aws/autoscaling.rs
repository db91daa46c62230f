//! ECS services' scalable targets and target tracking policies through Application Auto Scaling:
//! DescribeScalableTargets (50 resource ids a request), DescribeScalingPolicies (one resource id, 10 policies a
//! page), RegisterScalableTarget, PutScalingPolicy, DeleteScalingPolicy and DeregisterScalableTarget, always on
//! namespace `ecs` and dimension `ecs:service:DesiredCount`.
//!
//! Application Auto Scaling refuses a change while another one of the same resource is pending
//! (`ConcurrentUpdateException`): that is transient, and retried like a 5xx.

use async_trait::async_trait;
use aws_sdk_applicationautoscaling::Client;
use aws_sdk_applicationautoscaling::types::{self as aas};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::map_err;
use crate::backend::{Autoscaling, BackendError, Op, ScalableTarget, ScalingPolicy};
use crate::render::autoscaling::{
    DIMENSION, Metric, NAMESPACE, PredefinedMetricSpecification, ScalableTargetInput, ScalingPolicyInput,
    TargetTracking,
};

/// The [`Autoscaling`] port over Application Auto Scaling.
pub struct ApplicationAutoScaling {
    client: Client,
}

impl ApplicationAutoScaling {
    pub fn new(client: Client) -> ApplicationAutoScaling {
        ApplicationAutoScaling { client }
    }
}

fn namespace() -> aas::ServiceNamespace {
    aas::ServiceNamespace::from(NAMESPACE)
}

fn dimension() -> aas::ScalableDimension {
    aas::ScalableDimension::from(DIMENSION)
}

/// [`map_err`], with a concurrent update of the same resource as the transient failure it is.
fn aas_err<E>(op: Op, err: SdkError<E, HttpResponse>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match map_err(op, err) {
        BackendError::Invalid { operation, message } if message.starts_with("ConcurrentUpdateException") => {
            BackendError::Unavailable { operation, message }
        }
        other => other,
    }
}

/// A count from the API, which never answers a negative one; saturated rather than wrapped should it.
fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// A count or a number of seconds as the API takes it (validated far below `i32::MAX`; saturated should one not be).
fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A policy's target tracking configuration, when it is one with a predefined metric mcpfleet puts and the
/// cooldowns it always sets; anything else is None (never equal to a policy mcpfleet wants).
fn target_tracking(p: &aas::ScalingPolicy) -> Option<TargetTracking> {
    if *p.policy_type() != aas::PolicyType::TargetTrackingScaling {
        return None;
    }
    let c = p.target_tracking_scaling_policy_configuration()?;
    let spec = c.predefined_metric_specification()?;
    Some(TargetTracking {
        target_value: c.target_value(),
        predefined_metric_specification: PredefinedMetricSpecification {
            predefined_metric_type: Metric::from_predefined(spec.predefined_metric_type().as_str())?,
            resource_label: spec.resource_label().map(str::to_string),
        },
        scale_in_cooldown: u32::try_from(c.scale_in_cooldown()?).ok()?,
        scale_out_cooldown: u32::try_from(c.scale_out_cooldown()?).ok()?,
        disable_scale_in: c.disable_scale_in().unwrap_or(false),
    })
}

#[async_trait]
impl Autoscaling for ApplicationAutoScaling {
    async fn scalable_targets(&self, resource_ids: &[String]) -> Result<Vec<ScalableTarget>, BackendError> {
        if resource_ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .client
            .describe_scalable_targets()
            .service_namespace(namespace())
            .scalable_dimension(dimension())
            .set_resource_ids(Some(resource_ids.to_vec()))
            .max_results(crate::backend::SCALABLE_TARGETS_BATCH as i32)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| aas_err(Op::DescribeScalableTargets, e))?;
        Ok(found
            .iter()
            .filter(|t| *t.scalable_dimension() == dimension())
            .map(|t| ScalableTarget {
                resource_id: t.resource_id().to_string(),
                min_capacity: count(t.min_capacity()),
                max_capacity: count(t.max_capacity()),
            })
            .collect())
    }

    async fn scaling_policies(&self, resource_id: &str) -> Result<Vec<ScalingPolicy>, BackendError> {
        let found = self
            .client
            .describe_scaling_policies()
            .service_namespace(namespace())
            .resource_id(resource_id)
            .scalable_dimension(dimension())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| aas_err(Op::DescribeScalingPolicies, e))?;
        // The filter is the API's; an answer about another resource is not this one's policy.
        Ok(found
            .iter()
            .filter(|p| p.resource_id() == resource_id)
            .map(|p| ScalingPolicy {
                policy_name: p.policy_name().to_string(),
                resource_id: p.resource_id().to_string(),
                target_tracking: target_tracking(p),
            })
            .collect())
    }

    async fn register_scalable_target(&self, input: &ScalableTargetInput) -> Result<(), BackendError> {
        self.client
            .register_scalable_target()
            .service_namespace(aas::ServiceNamespace::from(input.service_namespace.as_str()))
            .resource_id(&input.resource_id)
            .scalable_dimension(aas::ScalableDimension::from(input.scalable_dimension.as_str()))
            .min_capacity(int(input.min_capacity))
            .max_capacity(int(input.max_capacity))
            .send()
            .await
            .map_err(|e| aas_err(Op::RegisterScalableTarget, e))?;
        Ok(())
    }

    async fn put_scaling_policy(&self, input: &ScalingPolicyInput) -> Result<(), BackendError> {
        let c = &input.target_tracking_scaling_policy_configuration;
        let spec = aas::PredefinedMetricSpecification::builder()
            .predefined_metric_type(aas::MetricType::from(
                c.predefined_metric_specification.predefined_metric_type.predefined(),
            ))
            .set_resource_label(c.predefined_metric_specification.resource_label.clone())
            .build()
            .map_err(|e| BackendError::Invalid { operation: Op::PutScalingPolicy, message: e.to_string() })?;
        let config = aas::TargetTrackingScalingPolicyConfiguration::builder()
            .target_value(c.target_value)
            .predefined_metric_specification(spec)
            .scale_in_cooldown(int(c.scale_in_cooldown))
            .scale_out_cooldown(int(c.scale_out_cooldown))
            .disable_scale_in(c.disable_scale_in)
            .build()
            .map_err(|e| BackendError::Invalid { operation: Op::PutScalingPolicy, message: e.to_string() })?;
        self.client
            .put_scaling_policy()
            .policy_name(&input.policy_name)
            .service_namespace(aas::ServiceNamespace::from(input.service_namespace.as_str()))
            .resource_id(&input.resource_id)
            .scalable_dimension(aas::ScalableDimension::from(input.scalable_dimension.as_str()))
            .policy_type(aas::PolicyType::from(input.policy_type.as_str()))
            .target_tracking_scaling_policy_configuration(config)
            .send()
            .await
            .map_err(|e| aas_err(Op::PutScalingPolicy, e))?;
        Ok(())
    }

    async fn delete_scaling_policy(&self, resource_id: &str, policy_name: &str) -> Result<(), BackendError> {
        self.client
            .delete_scaling_policy()
            .policy_name(policy_name)
            .service_namespace(namespace())
            .resource_id(resource_id)
            .scalable_dimension(dimension())
            .send()
            .await
            .map_err(|e| aas_err(Op::DeleteScalingPolicy, e))?;
        Ok(())
    }

    async fn deregister_scalable_target(&self, resource_id: &str) -> Result<(), BackendError> {
        self.client
            .deregister_scalable_target()
            .service_namespace(namespace())
            .resource_id(resource_id)
            .scalable_dimension(dimension())
            .send()
            .await
            .map_err(|e| aas_err(Op::DeregisterScalableTarget, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(kind: aas::PolicyType, metric: &str, cooldowns: Option<i32>) -> aas::ScalingPolicy {
        let mut config = aas::TargetTrackingScalingPolicyConfiguration::builder()
            .target_value(60.0)
            .predefined_metric_specification(
                aas::PredefinedMetricSpecification::builder()
                    .predefined_metric_type(aas::MetricType::from(metric))
                    .build()
                    .unwrap(),
            );
        if let Some(c) = cooldowns {
            config = config.scale_in_cooldown(c).scale_out_cooldown(c);
        }
        aas::ScalingPolicy::builder()
            .policy_arn("arn")
            .policy_name("docs-cpu")
            .service_namespace(namespace())
            .resource_id("service/mcp/docs")
            .scalable_dimension(dimension())
            .policy_type(kind)
            .target_tracking_scaling_policy_configuration(config.build().unwrap())
            .creation_time(aws_smithy_types::DateTime::from_secs(0))
            .build()
            .unwrap()
    }

    #[test]
    fn only_target_tracking_on_a_known_metric_with_cooldowns_is_read_as_one() {
        let ours = target_tracking(&policy(
            aas::PolicyType::TargetTrackingScaling,
            "ECSServiceAverageCPUUtilization",
            Some(60),
        ));
        let ours = ours.expect("a target tracking policy");
        assert_eq!(ours.predefined_metric_specification.predefined_metric_type, Metric::Cpu);
        assert_eq!((ours.target_value, ours.scale_in_cooldown, ours.scale_out_cooldown), (60.0, 60, 60));
        assert!(
            target_tracking(&policy(aas::PolicyType::StepScaling, "ECSServiceAverageCPUUtilization", Some(60)))
                .is_none()
        );
        assert!(
            target_tracking(&policy(aas::PolicyType::TargetTrackingScaling, "KafkaBrokerStorageUtilization", Some(60)))
                .is_none()
        );
        assert!(
            target_tracking(&policy(aas::PolicyType::TargetTrackingScaling, "ECSServiceAverageCPUUtilization", None))
                .is_none()
        );
        assert!(
            target_tracking(&policy(
                aas::PolicyType::TargetTrackingScaling,
                "ECSServiceAverageCPUUtilization",
                Some(-1)
            ))
            .is_none()
        );
    }
}
