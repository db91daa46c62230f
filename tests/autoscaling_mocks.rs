//! The Application Auto Scaling adapter against answers moto does not give, with aws-smithy-mocks: throttling and
//! concurrent updates are retried, a refusal (such as Application Auto Scaling's permission validation) fails at
//! once with AWS's message, a deletion whose answer was lost counts as done on its retry, pages are followed, the
//! requests carry the `ecs` namespace, the desired-count dimension and the rendered policy, and policies that are
//! not mcpfleet's kind are read as such.

mod common;

use std::sync::Arc;

use aws_sdk_applicationautoscaling::Client;
use aws_sdk_applicationautoscaling::operation::describe_scalable_targets::DescribeScalableTargetsOutput;
use aws_sdk_applicationautoscaling::operation::describe_scaling_policies::DescribeScalingPoliciesOutput;
use aws_sdk_applicationautoscaling::operation::put_scaling_policy::PutScalingPolicyOutput;
use aws_sdk_applicationautoscaling::operation::register_scalable_target::RegisterScalableTargetOutput;
use aws_sdk_applicationautoscaling::types as aas;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use common::clock::TestClock;
use mcpfleet::backend::aws::ApplicationAutoScaling;
use mcpfleet::backend::limits::Limited;
use mcpfleet::backend::sim::{Sim, World};
use mcpfleet::backend::{Autoscaling, BackendError, Op};
use mcpfleet::render::autoscaling::{
    DIMENSION, Metric, NAMESPACE, PredefinedMetricSpecification, ScalableTargetInput, ScalingPolicyInput,
    TARGET_TRACKING, TargetTracking,
};

fn no_sdk_retries(
    b: aws_sdk_applicationautoscaling::config::Builder,
) -> aws_sdk_applicationautoscaling::config::Builder {
    // Our own retry layer is under test; the SDK's would hide it.
    b.retry_config(aws_sdk_applicationautoscaling::config::retry::RetryConfig::disabled())
}

/// The adapter behind the client-side limits and the one retry policy, as the binary builds it.
fn limited(client: Client) -> (Arc<Limited>, Arc<dyn Autoscaling>) {
    let clock = Arc::new(TestClock::default());
    let sim = Sim::in_memory(World::default());
    let limits = Arc::new(Limited::new(sim, clock));
    let port = limits.autoscaling(Arc::new(ApplicationAutoScaling::new(client)));
    (limits, port)
}

const RESOURCE: &str = "service/mcp-prod/documents";
const LABEL: &str = "app/mcp-alb/50dc6c495c0c9188/targetgroup/mcp-documents/6d0ecf831eec9f09";

fn target(resource: &str, min: i32, max: i32) -> aas::ScalableTarget {
    aas::ScalableTarget::builder()
        .service_namespace(aas::ServiceNamespace::Ecs)
        .resource_id(resource)
        .scalable_dimension(aas::ScalableDimension::EcsServiceDesiredCount)
        .min_capacity(min)
        .max_capacity(max)
        .role_arn("arn:aws:iam::123456789012:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService")
        .creation_time(aws_smithy_types::DateTime::from_secs(0))
        .build()
        .unwrap()
}

fn requests_policy() -> ScalingPolicyInput {
    ScalingPolicyInput {
        policy_name: "documents-requests".into(),
        service_namespace: NAMESPACE.into(),
        resource_id: RESOURCE.into(),
        scalable_dimension: DIMENSION.into(),
        policy_type: TARGET_TRACKING.into(),
        target_tracking_scaling_policy_configuration: TargetTracking {
            target_value: 500.0,
            predefined_metric_specification: PredefinedMetricSpecification {
                predefined_metric_type: Metric::Requests,
                resource_label: Some(LABEL.into()),
            },
            scale_in_cooldown: 300,
            scale_out_cooldown: 60,
            disable_scale_in: false,
        },
    }
}

fn policy(name: &str, resource: &str, kind: aas::PolicyType, metric: &str) -> aas::ScalingPolicy {
    let config = aas::TargetTrackingScalingPolicyConfiguration::builder()
        .target_value(60.0)
        .predefined_metric_specification(
            aas::PredefinedMetricSpecification::builder()
                .predefined_metric_type(aas::MetricType::from(metric))
                .build()
                .unwrap(),
        )
        .scale_in_cooldown(300)
        .scale_out_cooldown(60)
        .build()
        .unwrap();
    aas::ScalingPolicy::builder()
        .policy_arn(format!(
            "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:x:resource/ecs/{resource}:policyName/{name}"
        ))
        .policy_name(name)
        .service_namespace(aas::ServiceNamespace::Ecs)
        .resource_id(resource)
        .scalable_dimension(aas::ScalableDimension::EcsServiceDesiredCount)
        .policy_type(kind)
        .target_tracking_scaling_policy_configuration(config)
        .creation_time(aws_smithy_types::DateTime::from_secs(0))
        .build()
        .unwrap()
}

const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
const CONCURRENT: &str =
    r#"{"__type":"ConcurrentUpdateException","Message":"There is already a pending update to the scalable target"}"#;

#[tokio::test]
async fn throttling_and_concurrent_updates_are_retried_until_they_succeed() {
    let describe = mock!(Client::describe_scalable_targets)
        .match_requests(|r| {
            r.service_namespace() == Some(&aas::ServiceNamespace::Ecs)
                && r.scalable_dimension() == Some(&aas::ScalableDimension::EcsServiceDesiredCount)
                && r.resource_ids() == [RESOURCE.to_string()]
                && r.max_results() == Some(50)
        })
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(2)
        .output(|| DescribeScalableTargetsOutput::builder().scalable_targets(target(RESOURCE, 2, 20)).build())
        .build();
    let register = mock!(Client::register_scalable_target)
        .match_requests(|r| {
            r.resource_id() == Some(RESOURCE) && r.min_capacity() == Some(2) && r.max_capacity() == Some(20)
        })
        .sequence()
        .http_status(400, Some(CONCURRENT.into()))
        .output(|| RegisterScalableTargetOutput::builder().build())
        .build();
    let client =
        mock_client!(aws_sdk_applicationautoscaling, RuleMode::MatchAny, [&describe, &register], no_sdk_retries);
    let (limits, port) = limited(client);
    let found = port.scalable_targets(&[RESOURCE.into()]).await.unwrap();
    assert_eq!((found[0].resource_id.as_str(), found[0].min_capacity, found[0].max_capacity), (RESOURCE, 2, 20));
    let input = ScalableTargetInput {
        service_namespace: NAMESPACE.into(),
        resource_id: RESOURCE.into(),
        scalable_dimension: DIMENSION.into(),
        min_capacity: 2,
        max_capacity: 20,
    };
    port.register_scalable_target(&input).await.unwrap();
    assert_eq!((describe.num_calls(), register.num_calls()), (3, 2));
    let retries = limits.retries();
    assert_eq!((retries[&Op::DescribeScalableTargets], retries[&Op::RegisterScalableTarget]), (2, 1));
    assert_eq!(limits.throttles()[&Op::DescribeScalableTargets], 2);
}

#[tokio::test]
async fn a_refusal_fails_at_once_with_the_aws_message() {
    // Application Auto Scaling validates the caller's permissions on CloudWatch before it puts a policy.
    let body = r#"{"__type":"ValidationException","Message":"Missing permissions: cloudwatch:PutMetricAlarm"}"#;
    let put = mock!(Client::put_scaling_policy).sequence().http_status(400, Some(body.into())).repeatedly().build();
    let client = mock_client!(aws_sdk_applicationautoscaling, RuleMode::Sequential, [&put], no_sdk_retries);
    let (_, port) = limited(client);
    let err = port.put_scaling_policy(&requests_policy()).await.unwrap_err();
    assert_eq!(
        err,
        BackendError::Invalid {
            operation: Op::PutScalingPolicy,
            message: "ValidationException: Missing permissions: cloudwatch:PutMetricAlarm".into()
        }
    );
    assert_eq!(put.num_calls(), 1, "a refusal is not retried");
}

#[tokio::test]
async fn the_policy_is_sent_as_rendered() {
    let put = mock!(Client::put_scaling_policy)
        .match_requests(|r| {
            let c = r.target_tracking_scaling_policy_configuration().unwrap();
            let spec = c.predefined_metric_specification().unwrap();
            r.policy_name() == Some("documents-requests")
                && r.policy_type() == Some(&aas::PolicyType::TargetTrackingScaling)
                && r.resource_id() == Some(RESOURCE)
                && c.target_value() == 500.0
                && (c.scale_in_cooldown(), c.scale_out_cooldown(), c.disable_scale_in())
                    == (Some(300), Some(60), Some(false))
                && *spec.predefined_metric_type() == aas::MetricType::AlbRequestCountPerTarget
                && spec.resource_label() == Some(LABEL)
        })
        .then_output(|| PutScalingPolicyOutput::builder().policy_arn("arn:policy").build().unwrap());
    let client = mock_client!(aws_sdk_applicationautoscaling, RuleMode::Sequential, [&put], no_sdk_retries);
    let (_, port) = limited(client);
    port.put_scaling_policy(&requests_policy()).await.unwrap();
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn a_deletion_whose_answer_was_lost_is_done_on_its_retry_and_not_before() {
    let gone = r#"{"__type":"ObjectNotFoundException","Message":"No scaling policy found"}"#;
    let delete = mock!(Client::delete_scaling_policy)
        .sequence()
        .http_status(503, None)
        .http_status(400, Some(gone.into()))
        .build();
    let deregister = mock!(Client::deregister_scalable_target).sequence().http_status(400, Some(gone.into())).build();
    let client =
        mock_client!(aws_sdk_applicationautoscaling, RuleMode::MatchAny, [&delete, &deregister], no_sdk_retries);
    let (_, port) = limited(client);
    port.delete_scaling_policy(RESOURCE, "documents-cpu").await.unwrap();
    assert_eq!(delete.num_calls(), 2);
    // Gone on the first attempt: that is an answer to report, not one to assume done.
    let err = port.deregister_scalable_target(RESOURCE).await.unwrap_err();
    assert!(matches!(err, BackendError::NotFound { operation: Op::DeregisterScalableTarget, .. }), "{err:?}");
}

#[tokio::test]
async fn pages_are_followed_and_foreign_policies_read_as_such() {
    let targets =
        mock!(Client::describe_scalable_targets).match_requests(|r| r.next_token().is_none()).then_output(|| {
            DescribeScalableTargetsOutput::builder().scalable_targets(target(RESOURCE, 2, 20)).next_token("p2").build()
        });
    let targets_2 =
        mock!(Client::describe_scalable_targets).match_requests(|r| r.next_token() == Some("p2")).then_output(|| {
            DescribeScalableTargetsOutput::builder().scalable_targets(target("service/mcp-prod/search", 1, 3)).build()
        });
    let policies = mock!(Client::describe_scaling_policies)
        .match_requests(|r| r.next_token().is_none() && r.resource_id() == Some(RESOURCE))
        .then_output(|| {
            DescribeScalingPoliciesOutput::builder()
                .scaling_policies(policy(
                    "documents-cpu",
                    RESOURCE,
                    aas::PolicyType::TargetTrackingScaling,
                    "ECSServiceAverageCPUUtilization",
                ))
                // A filter the API should have applied: another resource's policy is not this one's.
                .scaling_policies(policy(
                    "documents-cpu",
                    "service/mcp-prod/documents-v2",
                    aas::PolicyType::TargetTrackingScaling,
                    "ECSServiceAverageCPUUtilization",
                ))
                .next_token("p2")
                .build()
        });
    let policies_2 =
        mock!(Client::describe_scaling_policies).match_requests(|r| r.next_token() == Some("p2")).then_output(|| {
            DescribeScalingPoliciesOutput::builder()
                .scaling_policies(policy(
                    "documents-memory",
                    RESOURCE,
                    aas::PolicyType::StepScaling,
                    "ECSServiceAverageMemoryUtilization",
                ))
                .scaling_policies(policy(
                    "documents-requests",
                    RESOURCE,
                    aas::PolicyType::TargetTrackingScaling,
                    "SageMakerVariantInvocationsPerInstance",
                ))
                .build()
        });
    let client = mock_client!(
        aws_sdk_applicationautoscaling,
        RuleMode::MatchAny,
        [&targets, &targets_2, &policies, &policies_2],
        no_sdk_retries
    );
    let (_, port) = limited(client);
    let found = port.scalable_targets(&[RESOURCE.into(), "service/mcp-prod/search".into()]).await.unwrap();
    assert_eq!(found.iter().map(|t| t.max_capacity).collect::<Vec<_>>(), [20, 3]);
    let found = port.scaling_policies(RESOURCE).await.unwrap();
    let read: Vec<(&str, Option<Metric>)> = found
        .iter()
        .map(|p| {
            let metric = p.target_tracking.as_ref().map(|t| t.predefined_metric_specification.predefined_metric_type);
            (p.policy_name.as_str(), metric)
        })
        .collect();
    assert_eq!(
        read,
        [("documents-cpu", Some(Metric::Cpu)), ("documents-memory", None), ("documents-requests", None)],
        "a step policy and an unknown metric are not mcpfleet's kind, whatever their names"
    );
    assert_eq!((policies.num_calls(), policies_2.num_calls()), (1, 1));
}
