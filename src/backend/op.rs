//! The API operations mcpfleet performs, as one type.
//!
//! Every place that names an operation goes through [`Op`]: the client-side token buckets
//! ([`limits::bucket`](super::limits::bucket)), the sim's and the aws adapter's request counts
//! ([`CallStats`](super::sim::CallStats), the `apiCalls` of `-o json`), the controller's metric labels, the
//! `operation` of a [`BackendError`](super::BackendError), and the IAM policy test, which checks that
//! `manifests/controller/iam-policy.json` grants exactly [`Op::iam_action`] of every operation in [`Op::ALL`] and
//! that the aws adapters send no request outside it. [`Op::as_str`] is the AWS name, so every text that shows an
//! operation (JSON keys, metric labels, error prefixes) reads as before the names became a type.
//!
//! `Op` orders, compares and hashes as its name, so maps keyed by it can also be read with the name as a `&str`
//! (`calls.get("DescribeServices")`), and serialize in the same key order as maps keyed by the names did.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{self, AtomicU64};

/// The AWS service an operation belongs to (its IAM action prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ecs,
    Ecr,
    SecretsManager,
    /// Elastic Load Balancing v2 (Application and Network Load Balancers).
    Elbv2,
    /// Application Auto Scaling (scalable targets and scaling policies of ECS services).
    ApplicationAutoScaling,
    /// Amazon S3 (the published fleet).
    S3,
    /// Amazon DynamoDB (the controller's lease).
    DynamoDb,
    /// The AWS Price List API (`cost --live-prices`).
    Pricing,
}

impl Service {
    /// The IAM action prefix (`ecs`, `ecr`, `secretsmanager`, `elasticloadbalancing`, `application-autoscaling`).
    pub const fn iam_prefix(self) -> &'static str {
        match self {
            Service::Ecs => "ecs",
            Service::Ecr => "ecr",
            Service::SecretsManager => "secretsmanager",
            Service::Elbv2 => "elasticloadbalancing",
            Service::ApplicationAutoScaling => "application-autoscaling",
            Service::S3 => "s3",
            Service::DynamoDb => "dynamodb",
            Service::Pricing => "pricing",
        }
    }
}

/// An API operation: an AWS request the adapters send, or one of mcpfleet's own steps that is metered and
/// reported like one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    DescribeServices,
    ListServices,
    CreateService,
    UpdateService,
    DeleteService,
    RegisterTaskDefinition,
    DeregisterTaskDefinition,
    DescribeTaskDefinition,
    ListTaskDefinitions,
    TagResource,
    UntagResource,
    ListClusters,
    ListTasks,
    DescribeTasks,
    BatchGetImage,
    ListSecrets,
    DescribeSecret,
    DescribeTargetGroups,
    DescribeTargetGroupAttributes,
    DescribeLoadBalancers,
    DescribeLoadBalancerAttributes,
    DescribeScalableTargets,
    DescribeScalingPolicies,
    RegisterScalableTarget,
    PutScalingPolicy,
    DeleteScalingPolicy,
    DeregisterScalableTarget,
    /// Not a request: one call of secret resolution (ListSecrets pages and DescribeSecret per ARN), which is
    /// metered and retried as a whole.
    ResolveSecrets,
    /// A registry's token endpoint (distribution token auth): a bearer token for one repository scope.
    RegistryToken,
    /// `HEAD /v2/<name>/manifests/<reference>` of a registry: the digest, without counting as a pull.
    HeadManifest,
    /// `GET /v2/<name>/manifests/<reference>` of a registry: the manifest itself.
    GetManifest,
    /// `GET /v2/<name>/blobs/<digest>` of a registry: a single manifest's config (its platform).
    GetBlob,
    /// The published fleet's current version (the controller's poll).
    HeadObject,
    /// The published fleet's content.
    GetObject,
    /// `publish`'s conditional write (CI's, never the controller's).
    PutObject,
    /// `publish --history` (CI's, never the controller's).
    ListObjectVersions,
    /// The lease item, read (strongly consistent).
    GetItem,
    /// The lease item, written on a condition (acquire, renew, release).
    PutItem,
    /// `lease create-table` (an operator's, never the controller's).
    CreateTable,
    /// Fargate's prices from the Price List API (`cost` and `plan` with `--live-prices`; never the
    /// controller's).
    GetProducts,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 40] = [
        Op::DescribeServices,
        Op::ListServices,
        Op::CreateService,
        Op::UpdateService,
        Op::DeleteService,
        Op::RegisterTaskDefinition,
        Op::DeregisterTaskDefinition,
        Op::DescribeTaskDefinition,
        Op::ListTaskDefinitions,
        Op::TagResource,
        Op::UntagResource,
        Op::ListClusters,
        Op::ListTasks,
        Op::DescribeTasks,
        Op::BatchGetImage,
        Op::ListSecrets,
        Op::DescribeSecret,
        Op::DescribeTargetGroups,
        Op::DescribeTargetGroupAttributes,
        Op::DescribeLoadBalancers,
        Op::DescribeLoadBalancerAttributes,
        Op::DescribeScalableTargets,
        Op::DescribeScalingPolicies,
        Op::RegisterScalableTarget,
        Op::PutScalingPolicy,
        Op::DeleteScalingPolicy,
        Op::DeregisterScalableTarget,
        Op::ResolveSecrets,
        Op::RegistryToken,
        Op::HeadManifest,
        Op::GetManifest,
        Op::GetBlob,
        Op::HeadObject,
        Op::GetObject,
        Op::PutObject,
        Op::ListObjectVersions,
        Op::GetItem,
        Op::PutItem,
        Op::CreateTable,
        Op::GetProducts,
    ];

    /// The AWS name (`DescribeServices`), or for mcpfleet's own steps the name they are reported under.
    pub const fn as_str(self) -> &'static str {
        match self {
            Op::DescribeServices => "DescribeServices",
            Op::ListServices => "ListServices",
            Op::CreateService => "CreateService",
            Op::UpdateService => "UpdateService",
            Op::DeleteService => "DeleteService",
            Op::RegisterTaskDefinition => "RegisterTaskDefinition",
            Op::DeregisterTaskDefinition => "DeregisterTaskDefinition",
            Op::DescribeTaskDefinition => "DescribeTaskDefinition",
            Op::ListTaskDefinitions => "ListTaskDefinitions",
            Op::TagResource => "TagResource",
            Op::UntagResource => "UntagResource",
            Op::ListClusters => "ListClusters",
            Op::ListTasks => "ListTasks",
            Op::DescribeTasks => "DescribeTasks",
            Op::BatchGetImage => "BatchGetImage",
            Op::ListSecrets => "ListSecrets",
            Op::DescribeSecret => "DescribeSecret",
            Op::DescribeTargetGroups => "DescribeTargetGroups",
            Op::DescribeTargetGroupAttributes => "DescribeTargetGroupAttributes",
            Op::DescribeLoadBalancers => "DescribeLoadBalancers",
            Op::DescribeLoadBalancerAttributes => "DescribeLoadBalancerAttributes",
            Op::DescribeScalableTargets => "DescribeScalableTargets",
            Op::DescribeScalingPolicies => "DescribeScalingPolicies",
            Op::RegisterScalableTarget => "RegisterScalableTarget",
            Op::PutScalingPolicy => "PutScalingPolicy",
            Op::DeleteScalingPolicy => "DeleteScalingPolicy",
            Op::DeregisterScalableTarget => "DeregisterScalableTarget",
            Op::ResolveSecrets => "ListSecrets/DescribeSecret",
            Op::RegistryToken => "RegistryToken",
            Op::HeadManifest => "HeadManifest",
            Op::GetManifest => "GetManifest",
            Op::GetBlob => "GetBlob",
            Op::HeadObject => "HeadObject",
            Op::GetObject => "GetObject",
            Op::PutObject => "PutObject",
            Op::ListObjectVersions => "ListObjectVersions",
            Op::GetItem => "GetItem",
            Op::PutItem => "PutItem",
            Op::CreateTable => "CreateTable",
            Op::GetProducts => "GetProducts",
        }
    }

    /// The operation named `name` (as [`Op::as_str`] spells it).
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// The AWS service the request goes to; `None` for mcpfleet's own steps and registry requests.
    pub const fn service(self) -> Option<Service> {
        match self {
            Op::DescribeServices
            | Op::ListServices
            | Op::CreateService
            | Op::UpdateService
            | Op::DeleteService
            | Op::RegisterTaskDefinition
            | Op::DeregisterTaskDefinition
            | Op::DescribeTaskDefinition
            | Op::ListTaskDefinitions
            | Op::TagResource
            | Op::UntagResource
            | Op::ListClusters
            | Op::ListTasks
            | Op::DescribeTasks => Some(Service::Ecs),
            Op::BatchGetImage => Some(Service::Ecr),
            Op::ListSecrets | Op::DescribeSecret => Some(Service::SecretsManager),
            Op::DescribeTargetGroups
            | Op::DescribeTargetGroupAttributes
            | Op::DescribeLoadBalancers
            | Op::DescribeLoadBalancerAttributes => Some(Service::Elbv2),
            // mcpfleet's own steps, and requests to container registries outside AWS.
            Op::ResolveSecrets | Op::RegistryToken | Op::HeadManifest | Op::GetManifest | Op::GetBlob => None,
            Op::DescribeScalableTargets
            | Op::DescribeScalingPolicies
            | Op::RegisterScalableTarget
            | Op::PutScalingPolicy
            | Op::DeleteScalingPolicy
            | Op::DeregisterScalableTarget => Some(Service::ApplicationAutoScaling),
            Op::HeadObject | Op::GetObject | Op::PutObject | Op::ListObjectVersions => Some(Service::S3),
            Op::GetItem | Op::PutItem | Op::CreateTable => Some(Service::DynamoDb),
            Op::GetProducts => Some(Service::Pricing),
        }
    }

    /// The IAM action the request needs (`ecs:DescribeServices`); `None` for mcpfleet's own steps and registry
    /// requests.
    pub fn iam_action(self) -> Option<String> {
        // S3 authorises HeadObject as s3:GetObject, and ListObjectVersions as s3:ListBucketVersions.
        let action = match self {
            Op::HeadObject => "GetObject",
            Op::ListObjectVersions => "ListBucketVersions",
            other => other.as_str(),
        };
        self.service().map(|s| format!("{}:{action}", s.iam_prefix()))
    }

    /// Whether only CI (`publish`, `cost --live-prices`) or an operator (`lease create-table`) sends the request:
    /// the controller's policy does not grant it.
    pub const fn outside_the_controller(self) -> bool {
        matches!(self, Op::PutObject | Op::ListObjectVersions | Op::CreateTable | Op::GetProducts)
    }

    /// IAM actions AWS checks that the caller holds when it serves this request, besides [`Op::iam_action`].
    /// Application Auto Scaling validates the caller's permissions on the resources a request acts on before it
    /// proceeds ("Permissions validation for Application Auto Scaling API calls on target resources"): the ECS
    /// service whose count it will set (ecs:DescribeServices and ecs:UpdateService, which mcpfleet holds for its
    /// own requests anyway) and the CloudWatch alarms a target tracking policy creates, replaces or deletes.
    pub const fn caller_checks(self) -> &'static [&'static str] {
        match self {
            Op::RegisterScalableTarget => &["ecs:DescribeServices", "ecs:UpdateService"],
            Op::PutScalingPolicy => {
                &["cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"]
            }
            Op::DeleteScalingPolicy => &["cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
            _ => &[],
        }
    }

    /// Whether the operation changes state.
    pub const fn is_write(self) -> bool {
        matches!(
            self,
            Op::RegisterTaskDefinition
                | Op::DeregisterTaskDefinition
                | Op::CreateService
                | Op::UpdateService
                | Op::DeleteService
                | Op::TagResource
                | Op::UntagResource
                | Op::RegisterScalableTarget
                | Op::PutScalingPolicy
                | Op::DeleteScalingPolicy
                | Op::DeregisterScalableTarget
                | Op::PutObject
                | Op::PutItem
                | Op::CreateTable
        )
    }

    /// The position of the operation in [`Op::ALL`] (counters kept in arrays).
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Ord for Op {
    fn cmp(&self, other: &Op) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Op {
    fn partial_cmp(&self, other: &Op) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Op {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// Sound because `Op`'s `Eq`, `Ord` and `Hash` are those of its name.
impl Borrow<str> for Op {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Op {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Op {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for Op {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A count per operation, without a lock (one atomic per [`Op`]).
#[derive(Debug)]
pub struct Counts([AtomicU64; Op::ALL.len()]);

impl Default for Counts {
    fn default() -> Counts {
        Counts(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl Counts {
    pub fn add(&self, op: Op) {
        self.add_n(op, 1);
    }

    pub fn add_n(&self, op: Op, n: u64) {
        self.0[op.index()].fetch_add(n, atomic::Ordering::Relaxed);
    }

    /// The operations counted at least once.
    pub fn snapshot(&self) -> BTreeMap<Op, u64> {
        Op::ALL
            .into_iter()
            .map(|op| (op, self.0[op.index()].load(atomic::Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut names: Vec<&str> = Op::ALL.iter().map(|op| op.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Op::ALL.len(), "two operations share a name");
        for (i, op) in Op::ALL.into_iter().enumerate() {
            assert_eq!(Op::from_name(op.as_str()), Some(op));
            assert_eq!(op.index(), i, "{op} is out of place in Op::ALL");
        }
        assert_eq!(Op::from_name("GetSecretValue"), None);
    }

    #[test]
    fn iam_actions_and_writes() {
        assert_eq!(Op::DescribeServices.iam_action().as_deref(), Some("ecs:DescribeServices"));
        assert_eq!(Op::BatchGetImage.iam_action().as_deref(), Some("ecr:BatchGetImage"));
        assert_eq!(Op::DescribeSecret.iam_action().as_deref(), Some("secretsmanager:DescribeSecret"));
        assert_eq!(Op::DescribeTargetGroups.iam_action().as_deref(), Some("elasticloadbalancing:DescribeTargetGroups"));
        assert_eq!(
            Op::DescribeLoadBalancerAttributes.iam_action().as_deref(),
            Some("elasticloadbalancing:DescribeLoadBalancerAttributes")
        );
        assert_eq!(Op::PutScalingPolicy.iam_action().as_deref(), Some("application-autoscaling:PutScalingPolicy"));
        assert_eq!(Op::ResolveSecrets.iam_action(), None);
        assert_eq!(Op::HeadObject.iam_action().as_deref(), Some("s3:GetObject"));
        assert_eq!(Op::ListObjectVersions.iam_action().as_deref(), Some("s3:ListBucketVersions"));
        assert_eq!(Op::GetProducts.iam_action().as_deref(), Some("pricing:GetProducts"));
        assert!(Op::GetProducts.outside_the_controller() && !Op::GetProducts.is_write());
        let writes: Vec<&str> = Op::ALL.into_iter().filter(|op| op.is_write()).map(Op::as_str).collect();
        assert_eq!(
            writes,
            [
                "CreateService",
                "UpdateService",
                "DeleteService",
                "RegisterTaskDefinition",
                "DeregisterTaskDefinition",
                "TagResource",
                "UntagResource",
                "RegisterScalableTarget",
                "PutScalingPolicy",
                "DeleteScalingPolicy",
                "DeregisterScalableTarget",
                "PutObject",
                "PutItem",
                "CreateTable"
            ]
        );
    }
}
