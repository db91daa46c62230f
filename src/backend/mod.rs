//! Ports: what reconcile needs from ECS, an image registry, a secret store, Elastic Load Balancing's target groups,
//! Application Auto Scaling (`scaling`) and a clock, in mcpfleet's own types.
//!
//! Two adapters implement them: `sim` (an in-memory ECS/ECR/Secrets Manager/ELB/Application Auto Scaling with a
//! virtual clock, the default engine of the quickstart and the tests) and `aws` (aws-sdk-ecs, aws-sdk-ecr,
//! aws-sdk-secretsmanager, aws-sdk-elasticloadbalancingv2, aws-sdk-applicationautoscaling). Images outside Amazon
//! ECR are resolved, with either, by `registry` (the OCI distribution API over reqwest), which `route` puts beside
//! the backend's ECR. SDK and HTTP types never cross this boundary, so reconcile, plan and the CLI are the same
//! code against either. `limits` wraps the ports in client-side token buckets and the single retry policy.

pub mod aws;
pub mod cache;
pub mod lease;
pub mod limits;
pub mod manifest;
pub mod op;
pub mod registry;
pub mod route;
pub mod scaling;
pub mod sim;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use op::Op;
pub use scaling::{Autoscaling, SCALABLE_TARGETS_BATCH, ScalableTarget, ScalingPolicy};

use crate::render::ecs::{
    DeploymentConfiguration, LoadBalancer as ServiceLoadBalancer, NetworkConfiguration, ServiceConnectConfiguration,
    ServiceInput, TaskDefinitionInput,
};

/// Locks `m` even when another thread panicked while holding it. The backends' mutexes guard request counters,
/// token buckets, caches and the sim's world; none is locked across anything that input or an AWS answer can
/// make panic, so a poisoned lock means a bug that its own panic already reported, and the data is used as it
/// stands rather than turning that one panic into a panic of every later call.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// AWS resource tags as a map.
pub type Tags = BTreeMap<String, String>;

/// A failure of a backend call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The API refused the call for rate (ThrottlingException); waiting and retrying helps.
    #[error("{operation}: throttled: {message}")]
    Throttled { operation: Op, message: String },
    /// A transient failure (5xx, timeout, connection); retrying helps.
    #[error("{operation}: service unavailable: {message}")]
    Unavailable { operation: Op, message: String },
    /// The named resource does not exist.
    #[error("{operation}: not found: {message}")]
    NotFound { operation: Op, message: String },
    /// The request was refused as invalid (4xx); retrying cannot help.
    #[error("{operation}: {message}")]
    Invalid { operation: Op, message: String },
    /// No usable AWS credentials: none along the provider chain, or AWS refused the ones found. Retrying cannot
    /// help, and every other call would fail the same way.
    #[error("AWS credentials are missing or invalid: {reason}; {CREDENTIALS_HINT}")]
    Credentials {
        /// The innermost reason (`no providers in chain provided credentials`, or AWS's refusal).
        reason: String,
    },
    /// The backend's own state (the sim state file) could not be read or written.
    #[error("state: {0}")]
    State(String),
    /// The sim state file is not one mcpfleet wrote: broken by hand, truncated, or of another shape.
    #[error("{at}: not a valid sim state file: {message}; fix it, or delete it to start the sim from an empty world")]
    StateFile {
        /// `FILE:LINE:COLUMN`, or `FILE` when no position applies.
        at: String,
        /// The field (`services.mcp/search.state.desiredCount`) when known, and what is wrong with it.
        message: String,
    },
    /// The sim state's journal (`<state>.journal`) holds something mcpfleet did not write there: changed by hand,
    /// or of another format.
    #[error("{at}: not a valid sim journal: {message}; fix it, or delete it to drop the changes it holds")]
    StateJournal {
        /// `JOURNAL:LINE`.
        at: String,
        /// What is wrong with the line.
        message: String,
    },
}

impl BackendError {
    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BackendError::Throttled { .. } | BackendError::Unavailable { .. })
    }

    /// Whether the call was refused for rate.
    pub fn is_throttling(&self) -> bool {
        matches!(self, BackendError::Throttled { .. })
    }
}

/// ACTIVE or INACTIVE (deregistered) task-definition revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TdStatus {
    Active,
    Inactive,
}

/// A registered task-definition revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinition {
    pub arn: String,
    pub family: String,
    pub revision: u32,
    pub status: TdStatus,
    /// What was registered, without tags.
    pub spec: TaskDefinitionInput,
    pub tags: Tags,
    /// Milliseconds since the Unix epoch.
    pub registered_at_ms: u64,
}

/// Where a deployment's rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

/// A deployment's place among a service's deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentStatus {
    /// The newest deployment: the one ECS is rolling out or has rolled out.
    Primary,
    /// An older deployment whose tasks are still draining.
    Active,
    /// A finished deployment.
    Inactive,
}

impl DeploymentStatus {
    /// ECS's word; anything unknown is no deployment in flight.
    pub fn from_ecs(s: &str) -> DeploymentStatus {
        match s {
            "PRIMARY" => DeploymentStatus::Primary,
            "ACTIVE" => DeploymentStatus::Active,
            _ => DeploymentStatus::Inactive,
        }
    }
}

/// A service's lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceStatus {
    /// Running (or ready to run) tasks.
    Active,
    /// Being deleted.
    Draining,
    /// Deleted (ECS keeps it visible for a while).
    Inactive,
}

impl ServiceStatus {
    /// ECS's word; anything unknown counts as gone, so it is never updated in place.
    pub fn from_ecs(s: &str) -> ServiceStatus {
        match s {
            "ACTIVE" => ServiceStatus::Active,
            "DRAINING" => ServiceStatus::Draining,
            _ => ServiceStatus::Inactive,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Active => "ACTIVE",
            ServiceStatus::Draining => "DRAINING",
            ServiceStatus::Inactive => "INACTIVE",
        }
    }
}

impl std::fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One deployment of a service: PRIMARY (the newest) or ACTIVE (an older one still draining).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    pub status: DeploymentStatus,
    pub task_definition: String,
    #[serde(deserialize_with = "desired_count")]
    pub desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    pub failed_tasks: u32,
    pub rollout_state: RolloutState,
    pub rollout_state_reason: String,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// A service event ("has reached a steady state", "failed container health checks", …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEvent {
    pub at_ms: u64,
    pub message: String,
}

/// An ECS service as DescribeServices reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceState {
    pub arn: String,
    pub cluster: String,
    pub name: String,
    pub status: ServiceStatus,
    pub task_definition: String,
    #[serde(deserialize_with = "desired_count")]
    pub desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    /// None when the API did not report it (an emulator that ignores it): then it is not compared.
    pub deployment_configuration: Option<DeploymentConfiguration>,
    pub network_configuration: NetworkConfiguration,
    /// Service Connect as the PRIMARY deployment runs it (ECS reports it only per deployment). None when the
    /// deployment reports none (an emulator that ignores it, or a service that never had it): then it is not
    /// compared; `enabled: false` when it was turned off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_connect_configuration: Option<ServiceConnectConfiguration>,
    /// The target groups the service's tasks register in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancers: Vec<ServiceLoadBalancer>,
    /// None when the API did not report it (moto drops it): then it is not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_grace_period_seconds: Option<u32>,
    pub deployments: Vec<Deployment>,
    /// Newest first.
    pub events: Vec<ServiceEvent>,
    pub tags: Tags,
}

impl ServiceState {
    /// The PRIMARY deployment (the one ECS is rolling out or has rolled out).
    pub fn primary(&self) -> Option<&Deployment> {
        self.deployments.iter().find(|d| d.status == DeploymentStatus::Primary)
    }

    /// Whether the service exists for practical purposes (ECS keeps INACTIVE services visible for a while).
    pub fn is_active(&self) -> bool {
        self.status == ServiceStatus::Active
    }
}

/// DescribeServices answer: the services found and the names ECS reported MISSING.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Described {
    pub services: Vec<ServiceState>,
    pub missing: Vec<String>,
}

/// UpdateService input: only the fields mcpfleet changes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceUpdate {
    pub cluster: String,
    pub service: String,
    pub task_definition: Option<String>,
    pub desired_count: Option<u32>,
    pub deployment_configuration: Option<DeploymentConfiguration>,
    pub network_configuration: Option<NetworkConfiguration>,
    /// Service Connect to set; `enabled: false` turns it off.
    pub service_connect_configuration: Option<ServiceConnectConfiguration>,
    /// The target groups to register in; an empty list detaches every load balancer.
    pub load_balancers: Option<Vec<ServiceLoadBalancer>>,
    pub health_check_grace_period_seconds: Option<u32>,
    /// How the service tags its tasks; a service converged by an update propagates tags as one created from the
    /// same input does.
    pub tagging: Option<TagPropagation>,
    /// Start a new deployment even when nothing else changes (`forceNewDeployment`): the tasks are replaced and
    /// read their secrets again.
    pub force_new_deployment: bool,
}

/// How a service tags its tasks (CreateService/UpdateService `propagateTags` and `enableECSManagedTags`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TagPropagation {
    /// `SERVICE`, `TASK_DEFINITION` or `NONE`.
    pub propagate_tags: String,
    pub enable_ecs_managed_tags: bool,
}

impl TagPropagation {
    /// The settings `input` creates a service with.
    pub fn of(input: &ServiceInput) -> TagPropagation {
        TagPropagation {
            propagate_tags: input.propagate_tags.clone(),
            enable_ecs_managed_tags: input.enable_ecs_managed_tags,
        }
    }
}

impl ServiceUpdate {
    /// An update of `service` in `cluster` that changes nothing yet: the fields to change are set on it.
    pub fn of(cluster: &str, service: &str) -> ServiceUpdate {
        ServiceUpdate {
            cluster: cluster.to_string(),
            service: service.to_string(),
            task_definition: None,
            desired_count: None,
            deployment_configuration: None,
            network_configuration: None,
            service_connect_configuration: None,
            load_balancers: None,
            health_check_grace_period_seconds: None,
            tagging: None,
            force_new_deployment: false,
        }
    }

    /// The update that makes `observed` match `input` pointing at `task_definition`. Service Connect is sent when
    /// wanted, and turned off only where `observed` runs it: a service that never had it gets no such field.
    pub fn converge(input: &ServiceInput, task_definition: &str, observed: &ServiceState) -> ServiceUpdate {
        let running_service_connect = observed.service_connect_configuration.as_ref().is_some_and(|c| c.enabled);
        let service_connect_configuration = match &input.service_connect_configuration {
            Some(wanted) => Some(wanted.clone()),
            None if running_service_connect => Some(ServiceConnectConfiguration::disabled()),
            None => None,
        };
        // Detached only where attached: a service that never had load balancers gets no such field.
        let load_balancers = if !input.load_balancers.is_empty() || !observed.load_balancers.is_empty() {
            Some(input.load_balancers.clone())
        } else {
            None
        };
        // A grace period no longer wanted is set back to ECS's default, 0.
        let health_check_grace_period_seconds = input
            .health_check_grace_period_seconds
            .or_else(|| observed.health_check_grace_period_seconds.filter(|g| *g != 0).map(|_| 0));
        ServiceUpdate {
            cluster: input.cluster.clone(),
            service: input.service_name.clone(),
            task_definition: Some(task_definition.to_string()),
            desired_count: Some(input.desired_count),
            deployment_configuration: Some(input.deployment_configuration.clone()),
            network_configuration: Some(input.network_configuration.clone()),
            service_connect_configuration,
            load_balancers,
            health_check_grace_period_seconds,
            tagging: Some(TagPropagation::of(input)),
            force_new_deployment: false,
        }
    }
}

/// What a credentials error tells to try: where the chain looks, how to fix it, and the way to go without AWS.
pub const CREDENTIALS_HINT: &str = "tried environment, shared config/credentials files, SSO, web identity, \
container/instance metadata; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or run `aws sso login`, \
or use --backend sim to try without AWS (-v shows each provider's answer)";

/// ECS's quota of tasks per service: the largest `desiredCount` it accepts.
pub const MAX_DESIRED_COUNT: u32 = 5000;

/// A `desiredCount` read from the sim state file, bounded as ECS bounds it (a larger one would have the sim
/// launch billions of simulated tasks).
fn desired_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n > MAX_DESIRED_COUNT {
        return Err(serde::de::Error::custom(format!("{n} is above ECS's {MAX_DESIRED_COUNT} tasks per service")));
    }
    Ok(n)
}

/// At most this many services per DescribeServices call (an ECS limit).
pub const DESCRIBE_SERVICES_BATCH: usize = 10;
/// At most this many image ids per ECR BatchGetImage call.
pub const IMAGE_BATCH: usize = 100;

/// ECS's deployment circuit breaker failed-task threshold for a desired count: half of it, at least 3, at most
/// 200. A deployment with this many failed tasks has failed, whether or not the breaker is enabled.
pub fn breaker_threshold(desired: u32) -> u32 {
    desired.div_ceil(2).clamp(3, 200)
}

/// ECS operations reconcile uses.
#[async_trait]
pub trait Ecs: Send + Sync {
    /// Describes up to [`DESCRIBE_SERVICES_BATCH`] services of one cluster, with their tags.
    async fn describe_services(&self, cluster: &str, names: &[String]) -> Result<Described, BackendError>;
    /// Names of the ACTIVE services of a cluster.
    async fn list_services(&self, cluster: &str) -> Result<Vec<String>, BackendError>;
    /// Names of the account's clusters in the region (retention looks there for other services of a family).
    async fn list_clusters(&self) -> Result<Vec<String>, BackendError>;
    /// Registers a revision (tags included in `input`).
    async fn register_task_definition(&self, input: &TaskDefinitionInput) -> Result<TaskDefinition, BackendError>;
    /// Describes a revision by ARN, `family:revision` or family (its latest ACTIVE revision), with tags.
    async fn describe_task_definition(&self, id: &str) -> Result<TaskDefinition, BackendError>;
    /// ARNs of a family's revisions with `status`, oldest first.
    async fn list_task_definitions(&self, family: &str, status: TdStatus) -> Result<Vec<String>, BackendError>;
    /// Marks a revision INACTIVE.
    async fn deregister_task_definition(&self, arn: &str) -> Result<(), BackendError>;
    /// Creates a service (tags included in `input`).
    /// Creates a service (tags included in `input`), with CreateService's idempotency token: a repeat with the
    /// same `client_token` (a retry after an answer was lost) answers the service the first request created
    /// instead of a second one or an error. The token is made once per logical create; with `None`, the
    /// rate-limiting layer ([`limits::Limited`]) makes one before its retries.
    async fn create_service(
        &self,
        input: &ServiceInput,
        client_token: Option<&str>,
    ) -> Result<ServiceState, BackendError>;
    /// Updates a service; a new task definition starts a deployment.
    async fn update_service(&self, update: &ServiceUpdate) -> Result<ServiceState, BackendError>;
    /// Deletes a service, stopping its tasks.
    async fn delete_service(&self, cluster: &str, name: &str) -> Result<(), BackendError>;
    /// Adds or overwrites tags on a service or task definition.
    async fn tag_resource(&self, arn: &str, tags: &Tags) -> Result<(), BackendError>;
    /// Removes tags (by key) from a service or task definition; keys it does not carry are ignored.
    async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), BackendError>;
    /// Why the recently stopped tasks of a service that ran `task_definition` (an ARN) stopped, newest first: one
    /// line per task, ECS's `stoppedReason` followed by its containers' reasons and exit codes (see
    /// [`stopped_task_line`]). At most [`STOPPED_TASKS_BATCH`] stopped tasks are looked at (one ListTasks and one
    /// DescribeTasks).
    async fn stopped_task_reasons(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Vec<String>, BackendError>;
    /// One page (up to [`STOPPED_TASKS_BATCH`]) of the ARNs of a service's tasks whose desired status is RUNNING
    /// (ListTasks), from `token` (the previous page's `next_token`) on.
    async fn list_tasks(&self, cluster: &str, service: &str, token: Option<&str>) -> Result<TaskPage, BackendError>;
    /// Up to [`STOPPED_TASKS_BATCH`] tasks of a cluster by ARN (DescribeTasks); unknown ones are absent.
    async fn describe_tasks(&self, cluster: &str, arns: &[String]) -> Result<Vec<TaskInfo>, BackendError>;

    /// Every task of a service that ECS keeps running (desired status RUNNING, whatever its last status), in
    /// ListTasks' order: one ListTasks per page and one DescribeTasks per [`STOPPED_TASKS_BATCH`] of them.
    async fn service_tasks(&self, cluster: &str, service: &str) -> Result<Vec<TaskInfo>, BackendError> {
        let mut arns: Vec<String> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_tasks(cluster, service, token.as_deref()).await?;
            arns.extend(page.arns);
            match page.next_token {
                // A token that repeats would page forever.
                Some(next) if token.as_ref() != Some(&next) => token = Some(next),
                _ => break,
            }
        }
        let mut tasks = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(STOPPED_TASKS_BATCH) {
            let mut found = self.describe_tasks(cluster, chunk).await?;
            found.sort_by_key(|t| chunk.iter().position(|a| *a == t.arn));
            tasks.extend(found);
        }
        Ok(tasks)
    }
}

/// At most this many tasks per ListTasks page and DescribeTasks call (ECS limits).
pub const STOPPED_TASKS_BATCH: usize = 100;

/// A task's `lastStatus`: where it is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    Provisioning,
    Pending,
    Activating,
    /// Its containers run: the only status in which it serves.
    Running,
    Deactivating,
    Stopping,
    Deprovisioning,
    Stopped,
    /// A status this version does not know, as ECS spelled it.
    #[serde(untagged)]
    Other(String),
}

impl TaskStatus {
    /// ECS's word (`RUNNING`, …).
    pub fn from_ecs(s: &str) -> TaskStatus {
        match s {
            "PROVISIONING" => TaskStatus::Provisioning,
            "PENDING" => TaskStatus::Pending,
            "ACTIVATING" => TaskStatus::Activating,
            "RUNNING" => TaskStatus::Running,
            "DEACTIVATING" => TaskStatus::Deactivating,
            "STOPPING" => TaskStatus::Stopping,
            "DEPROVISIONING" => TaskStatus::Deprovisioning,
            "STOPPED" => TaskStatus::Stopped,
            other => TaskStatus::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            TaskStatus::Provisioning => "PROVISIONING",
            TaskStatus::Pending => "PENDING",
            TaskStatus::Activating => "ACTIVATING",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Deactivating => "DEACTIVATING",
            TaskStatus::Stopping => "STOPPING",
            TaskStatus::Deprovisioning => "DEPROVISIONING",
            TaskStatus::Stopped => "STOPPED",
            TaskStatus::Other(s) => s,
        }
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task of a service, as DescribeTasks reports it: where to reach it and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInfo {
    pub arn: String,
    /// The task definition (ARN) the task runs.
    pub task_definition: String,
    pub last_status: TaskStatus,
    /// The `privateIPv4Address` of its elastic network interface (awsvpc); None before the interface is attached.
    pub private_ipv4: Option<String>,
    /// The port it serves on, when the backend knows it: only the sim's tasks of images pushed with `--serves`
    /// (the port of the URL they serve). ECS reports none for awsvpc tasks: the task definition's container port
    /// applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// One ListTasks page: task ARNs and the token of the next page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPage {
    pub arns: Vec<String>,
    pub next_token: Option<String>,
}

/// One container of a stopped task, as far as explaining the stop goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoppedContainer {
    pub name: String,
    /// ECS's `reason` for the container (e.g. `CannotPullContainerError: …`), when it gave one.
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
}

/// A stopped task's line: `stoppedReason`, then containers with a reason or a non-zero exit code in parentheses,
/// e.g. `Essential container in task exited (search: exit code 1)`.
pub fn stopped_task_line(stopped_reason: Option<&str>, containers: &[StoppedContainer]) -> String {
    let details: Vec<String> = containers
        .iter()
        .filter_map(|c| {
            let mut parts: Vec<String> = c.reason.iter().cloned().collect();
            if let Some(code) = c.exit_code.filter(|code| *code != 0) {
                parts.push(format!("exit code {code}"));
            }
            (!parts.is_empty()).then(|| format!("{}: {}", c.name, parts.join(", ")))
        })
        .collect();
    let reason = stopped_reason.filter(|r| !r.is_empty()).unwrap_or("stopped for an unknown reason");
    if details.is_empty() { reason.to_string() } else { format!("{reason} ({})", details.join("; ")) }
}

/// What an image reference resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// `sha256:…` of the manifest or index.
    pub digest: String,
    /// `os/architecture` platforms: those an image index lists (`linux/amd64`, `linux/arm64`; one entry for a
    /// one-platform index), or the one a single manifest's config blob records (read for registries outside
    /// ECR). Empty when unknown: ECR's BatchGetImage answers a single manifest without its config.
    pub platforms: Vec<String>,
}

/// What an image runs when nothing overrides it: its config's `Entrypoint` and `Cmd`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageCommand {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl ImageCommand {
    /// The command line as Docker runs it: the entrypoint followed by the cmd (the cmd alone without an
    /// entrypoint); empty when the image names neither.
    pub fn command(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// A tag or digest of one repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ImageSelector {
    Tag(String),
    Digest(String),
}

/// An image registry.
#[async_trait]
pub trait Images: Send + Sync {
    /// Resolves up to [`IMAGE_BATCH`] tags/digests of one repository (`registry/repository`). Unknown ones are
    /// absent from the answer.
    async fn lookup(
        &self,
        repository: &str,
        selectors: &[ImageSelector],
    ) -> Result<BTreeMap<ImageSelector, ImageInfo>, BackendError>;

    /// The `Entrypoint` and `Cmd` of the image `digest` of `repository` (one [`Images::lookup`] answered) on
    /// `platform` (`linux/arm64`): a single manifest's own config, or the config of the manifest an index lists
    /// for that platform. Asked only for a stdio service without `command`.
    async fn image_command(&self, repository: &str, digest: &str, platform: &str)
    -> Result<ImageCommand, BackendError>;
}

/// Amazon ECR's answer to [`Images::image_command`]: BatchGetImage returns manifests without their config blobs,
/// and mcpfleet does not download layers or configs from ECR (validation asks for `command` on such images).
pub fn ecr_command_unreadable(repository: &str) -> BackendError {
    BackendError::Invalid {
        operation: Op::BatchGetImage,
        message: format!(
            "{repository} is in Amazon ECR, whose BatchGetImage answers without the image config: its Entrypoint \
             and Cmd cannot be read"
        ),
    }
}

/// The stage every secret reference reads unless it names another (`versionStage`) or pins a `versionId`.
pub const AWSCURRENT: &str = "AWSCURRENT";

/// A secret as the store describes it: its full ARN and which version holds each staging label (from ListSecrets'
/// `SecretVersionsToStages` or DescribeSecret's `VersionIdsToStages`). Never its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretInfo {
    pub arn: String,
    /// Staging label (`AWSCURRENT`, `AWSPREVIOUS`, a custom one) → the version id that holds it.
    pub stages: BTreeMap<String, String>,
}

impl SecretInfo {
    /// A secret whose answer listed no versions (an emulator or an old state file): its ARN alone.
    pub fn arn_only(arn: impl Into<String>) -> SecretInfo {
        SecretInfo { arn: arn.into(), stages: BTreeMap::new() }
    }

    /// Builds the stage map from a version id → stages answer.
    pub fn from_versions<'a>(
        arn: impl Into<String>,
        versions: impl IntoIterator<Item = (&'a str, impl IntoIterator<Item = &'a str>)>,
    ) -> SecretInfo {
        let mut stages = BTreeMap::new();
        for (version, labels) in versions {
            for label in labels {
                stages.insert(label.to_string(), version.to_string());
            }
        }
        SecretInfo { arn: arn.into(), stages }
    }
}

/// A secret store. Secret values are never read: only names, ARNs and which version holds which stage.
#[async_trait]
pub trait Secrets: Send + Sync {
    /// Resolves secret names or ARNs to full ARNs and their versions' stages. Unknown ones are absent from the
    /// answer.
    async fn resolve(&self, ids: &[String]) -> Result<BTreeMap<String, SecretInfo>, BackendError>;
}

/// At most this many names or ARNs per DescribeTargetGroups or DescribeLoadBalancers request (ELBv2's limit, and
/// so the most a [`TargetGroups`] call takes).
pub const DESCRIBE_TARGET_GROUPS_BATCH: usize = 20;

/// What a target group registers: ECS tasks on Fargate (awsvpc) can only be `ip` targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    Ip,
    Instance,
    Lambda,
    /// An Application Load Balancer as the target of a Network Load Balancer.
    Alb,
}

impl TargetType {
    /// ELBv2's word (`ip`, `instance`, `lambda`, `alb`); `None` for one this version does not know.
    pub fn from_elb(s: &str) -> Option<TargetType> {
        match s {
            "ip" => Some(TargetType::Ip),
            "instance" => Some(TargetType::Instance),
            "lambda" => Some(TargetType::Lambda),
            "alb" => Some(TargetType::Alb),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Ip => "ip",
            TargetType::Instance => "instance",
            TargetType::Lambda => "lambda",
            TargetType::Alb => "alb",
        }
    }
}

/// The protocol a target group routes with (an ALB's must be HTTP or HTTPS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetProtocol {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "TLS")]
    Tls,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "TCP_UDP")]
    TcpUdp,
    #[serde(rename = "GENEVE")]
    Geneve,
    /// A protocol this version does not know, as ELBv2 spelled it.
    Other(String),
}

impl TargetProtocol {
    /// ELBv2's word (`HTTP`, `TCP_UDP`, …).
    pub fn from_elb(s: &str) -> TargetProtocol {
        match s {
            "HTTP" => TargetProtocol::Http,
            "HTTPS" => TargetProtocol::Https,
            "TCP" => TargetProtocol::Tcp,
            "TLS" => TargetProtocol::Tls,
            "UDP" => TargetProtocol::Udp,
            "TCP_UDP" => TargetProtocol::TcpUdp,
            "GENEVE" => TargetProtocol::Geneve,
            other => TargetProtocol::Other(other.to_string()),
        }
    }

    /// Whether an Application Load Balancer can route with it.
    pub fn is_http(&self) -> bool {
        matches!(self, TargetProtocol::Http | TargetProtocol::Https)
    }
}

/// A target group as DescribeTargetGroups and DescribeTargetGroupAttributes report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    pub target_type: TargetType,
    /// None for a `lambda` target group.
    pub protocol: Option<TargetProtocol>,
    /// The path its health check probes (HTTP/HTTPS health checks only).
    pub health_check_path: Option<String>,
    /// The load balancers that route to it; empty when no listener or rule forwards to it.
    pub load_balancer_arns: Vec<String>,
    /// `deregistration_delay.timeout_seconds`: how long a deregistered target drains (every deployment waits it).
    pub deregistration_delay_secs: Option<u32>,
}

/// Application, network or gateway load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadBalancerType {
    Application,
    Network,
    Gateway,
}

impl LoadBalancerType {
    /// ELBv2's word; `None` for one this version does not know.
    pub fn from_elb(s: &str) -> Option<LoadBalancerType> {
        match s {
            "application" => Some(LoadBalancerType::Application),
            "network" => Some(LoadBalancerType::Network),
            "gateway" => Some(LoadBalancerType::Gateway),
            _ => None,
        }
    }
}

/// A load balancer as DescribeLoadBalancers and DescribeLoadBalancerAttributes report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    pub kind: LoadBalancerType,
    pub dns_name: String,
    /// `idle_timeout.timeout_seconds` (Application Load Balancers only): an idle connection, such as a quiet SSE
    /// stream, is cut after it.
    pub idle_timeout_secs: Option<u32>,
}

/// A target group with the load balancers that route to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupInfo {
    pub target_group: TargetGroup,
    /// Those of `target_group.load_balancer_arns` that were found, in that order.
    pub load_balancers: Vec<LoadBalancer>,
}

/// Elastic Load Balancing (v2) target groups and load balancers, read only.
///
/// Requests per [`TargetGroups::describe`] of `n` ≤ [`DESCRIBE_TARGET_GROUPS_BATCH`] ids finding `t` target groups
/// on `l` distinct load balancers: one DescribeTargetGroups for the names and one for the ARNs (each only when
/// there are some), one DescribeTargetGroupAttributes per target group found (the API takes one ARN), one
/// DescribeLoadBalancers per 20 of the `l` (none when `l` = 0) and one DescribeLoadBalancerAttributes per load
/// balancer. One target group behind one ALB by name: 4 requests. When
/// an id is unknown ELBv2 fails the whole request (TargetGroupNotFound), so that request is repeated with each
/// of its ids alone, which costs one more request per id only on the path that ends in an error anyway.
#[async_trait]
pub trait TargetGroups: Send + Sync {
    /// Target groups by name or ARN (up to [`DESCRIBE_TARGET_GROUPS_BATCH`]), with their attributes. Unknown
    /// ones are absent from the answer.
    async fn target_groups(&self, ids: &[String]) -> Result<Vec<TargetGroup>, BackendError>;
    /// Load balancers by ARN (up to [`DESCRIBE_TARGET_GROUPS_BATCH`]), with their attributes. Unknown ones are
    /// absent from the answer.
    async fn load_balancers(&self, arns: &[String]) -> Result<Vec<LoadBalancer>, BackendError>;

    /// Target groups by name or ARN (up to [`DESCRIBE_TARGET_GROUPS_BATCH`]) with the load balancers that route
    /// to them. Unknown ones are absent from the answer.
    async fn describe(&self, ids: &[String]) -> Result<Vec<TargetGroupInfo>, BackendError> {
        let groups = self.target_groups(ids).await?;
        let mut arns: Vec<String> = groups.iter().flat_map(|g| g.load_balancer_arns.iter().cloned()).collect();
        arns.sort();
        arns.dedup();
        let mut balancers = Vec::new();
        for chunk in arns.chunks(DESCRIBE_TARGET_GROUPS_BATCH) {
            balancers.extend(self.load_balancers(chunk).await?);
        }
        Ok(groups
            .into_iter()
            .map(|g| {
                let load_balancers = g
                    .load_balancer_arns
                    .iter()
                    .filter_map(|arn| balancers.iter().find(|b| &b.arn == arn).cloned())
                    .collect();
                TargetGroupInfo { target_group: g, load_balancers }
            })
            .collect())
    }
}

/// Time as the backend sees it: real for AWS, virtual for the sim (sleeping advances the simulated world).
#[async_trait]
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    async fn sleep(&self, d: Duration);
    /// Waits `d` for an API's rate: a token, or a backoff after a throttled or failed call. Only the sim tells
    /// it from [`Clock::sleep`]: time a read-only command spends waiting for rate leaves its state unchanged.
    async fn wait_for_rate(&self, d: Duration) {
        self.sleep(d).await;
    }
    /// Whether time only moves when slept on (the sim): a long-running loop must then also wait in real time.
    fn is_virtual(&self) -> bool {
        false
    }
}

/// The real clock.
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// Everything reconcile talks to.
#[derive(Clone)]
pub struct Backend {
    pub ecs: Arc<dyn Ecs>,
    pub images: Arc<dyn Images>,
    pub secrets: Arc<dyn Secrets>,
    pub target_groups: Arc<dyn TargetGroups>,
    pub autoscaling: Arc<dyn Autoscaling>,
    pub clock: Arc<dyn Clock>,
}
