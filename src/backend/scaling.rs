//! The Application Auto Scaling port: the scalable targets and target tracking policies of ECS services, in
//! mcpfleet's own types (the inputs are the rendered documents of `render::autoscaling`).
//!
//! Reads are batched where the API allows: DescribeScalableTargets takes the resource ids of up to
//! [`SCALABLE_TARGETS_BATCH`] services and answers them in one page; DescribeScalingPolicies takes one resource
//! id and pages 10 policies at a time (a service has at most 3 of mcpfleet's). Deleting a policy or deregistering a
//! target that is already gone answers [`BackendError::NotFound`].

use async_trait::async_trait;

use super::BackendError;
use crate::render::autoscaling::{ScalableTargetInput, ScalingPolicyInput, TargetTracking};

/// At most this many resource ids per DescribeScalableTargets (its page holds 50 targets: one per ECS service on
/// the `ecs:service:DesiredCount` dimension).
pub const SCALABLE_TARGETS_BATCH: usize = 50;

/// A registered scalable target of an ECS service, as DescribeScalableTargets reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalableTarget {
    /// `service/<cluster>/<service>`.
    pub resource_id: String,
    pub min_capacity: u32,
    pub max_capacity: u32,
}

/// A scaling policy on an ECS service's target, as DescribeScalingPolicies reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    pub policy_name: String,
    pub resource_id: String,
    /// Its target tracking configuration; None for another kind of policy (step scaling, predictive) or a
    /// metric this version does not put, which never equals a policy mcpfleet wants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_tracking: Option<TargetTracking>,
}

/// Application Auto Scaling, on the `ecs` namespace and the `ecs:service:DesiredCount` dimension.
#[async_trait]
pub trait Autoscaling: Send + Sync {
    /// The scalable targets of up to [`SCALABLE_TARGETS_BATCH`] services (by resource id); unregistered ones are
    /// absent from the answer.
    async fn scalable_targets(&self, resource_ids: &[String]) -> Result<Vec<ScalableTarget>, BackendError>;
    /// Every scaling policy on one service's target (all pages).
    async fn scaling_policies(&self, resource_id: &str) -> Result<Vec<ScalingPolicy>, BackendError>;
    /// Registers the service as a scalable target, or changes its bounds.
    async fn register_scalable_target(&self, input: &ScalableTargetInput) -> Result<(), BackendError>;
    /// Creates or replaces a target tracking policy.
    async fn put_scaling_policy(&self, input: &ScalingPolicyInput) -> Result<(), BackendError>;
    /// Deletes a policy (and the alarms Application Auto Scaling made for it).
    async fn delete_scaling_policy(&self, resource_id: &str, policy_name: &str) -> Result<(), BackendError>;
    /// Deregisters the service's target (Application Auto Scaling drops any policy left on it).
    async fn deregister_scalable_target(&self, resource_id: &str) -> Result<(), BackendError>;
}
