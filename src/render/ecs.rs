//! ECS documents: the RegisterTaskDefinition and CreateService inputs for one service, in the AWS API's JSON
//! shape (camelCase), plus the tags that carry mcpfleet's state and the spec hash that identifies a desired state.

use std::io::Write as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Resolved, bridge};
use crate::spec::{
    HealthProbe, Probe, Transport, ValidMcp, ValidRollout, ValidService, ValidServiceConnect, ValidStdio,
};
use crate::state::{self, TAG_TRANSPORT};

/// Name of the task-scoped scratch volume mounted at /tmp when the root filesystem is read-only.
const TMP_VOLUME: &str = "tmp";

/// Name of the container's one port mapping: Service Connect names the port it proxies by it.
pub const PORT_NAME: &str = "mcp";

/// An AWS resource tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// RegisterTaskDefinition input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinitionInput {
    pub family: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub task_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub execution_role_arn: Option<String>,
    pub network_mode: String,
    pub container_definitions: Vec<ContainerDefinition>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub volumes: Vec<Volume>,
    pub requires_compatibilities: Vec<String>,
    pub cpu: String,
    pub memory: String,
    pub runtime_platform: RuntimePlatform,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub tags: Vec<Tag>,
}

/// A container of an MCP server task: the server's own (essential), and for a stdio server the bridge's installer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    /// The secret ECS pulls a private registry's image with; absent otherwise, so those containers render (and
    /// hash) as before the field existed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub repository_credentials: Option<RepositoryCredentials>,
    pub essential: bool,
    /// Overrides the image's entrypoint (a stdio server: the bridge).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub entry_point: Vec<String>,
    /// Overrides the image's command (a stdio server: its own command; the installer: what it runs).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub command: Vec<String>,
    /// Containers that must have run first (the bridge's installer).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub depends_on: Vec<ContainerDependency>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user: Option<String>,
    pub port_mappings: Vec<PortMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub environment: Vec<KeyValue>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub secrets: Vec<SecretVar>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub health_check: Option<HealthCheck>,
    pub stop_timeout: u32,
    pub readonly_root_filesystem: bool,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub mount_points: Vec<MountPoint>,
    pub linux_parameters: LinuxParameters,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub log_configuration: Option<LogConfiguration>,
}

/// A container's `repositoryCredentials`: the Secrets Manager secret (ARN) with the registry's username and
/// password, read by ECS with the execution role when it pulls the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryCredentials {
    pub credentials_parameter: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub container_port: u16,
    pub protocol: String,
    pub name: String,
    pub app_protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVar {
    pub name: String,
    pub value_from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub command: Vec<String>,
    pub interval: u32,
    pub timeout: u32,
    pub retries: u32,
    pub start_period: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    pub source_volume: String,
    pub container_path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxParameters {
    pub init_process_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub capabilities: Option<KernelCapabilities>,
}

/// Linux capabilities taken from a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCapabilities {
    pub drop: Vec<String>,
}

/// A container that must reach `condition` before this one starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDependency {
    pub container_name: String,
    /// `START`, `COMPLETE`, `SUCCESS` or `HEALTHY`.
    pub condition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogConfiguration {
    pub log_driver: String,
    pub options: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimePlatform {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cpu_architecture: Option<super::CpuArch>,
    pub operating_system_family: String,
}

/// CreateService input (UpdateService takes the same settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInput {
    pub cluster: String,
    pub service_name: String,
    pub task_definition: String,
    pub desired_count: u32,
    pub launch_type: String,
    pub scheduling_strategy: String,
    pub deployment_controller: DeploymentController,
    pub deployment_configuration: DeploymentConfiguration,
    pub network_configuration: NetworkConfiguration,
    #[serde(rename = "enableECSManagedTags")]
    pub enable_ecs_managed_tags: bool,
    pub propagate_tags: String,
    /// Absent without Service Connect, so those services render (and hash) as before it existed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_connect_configuration: Option<ServiceConnectConfiguration>,
    /// Absent without load balancers, so those services render (and hash) as before they existed.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub load_balancers: Vec<LoadBalancer>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub health_check_grace_period_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub tags: Vec<Tag>,
}

/// A target group the service's tasks register in (CreateService/UpdateService `loadBalancers`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    /// The target group's ARN once resolved; `render` without AWS shows the name as written.
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
}

/// ECS Service Connect settings of a service (CreateService/UpdateService `serviceConnectConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectConfiguration {
    pub enabled: bool,
    /// Cloud Map namespace name or ARN.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub services: Vec<ServiceConnectService>,
}

impl ServiceConnectConfiguration {
    /// What UpdateService takes to turn Service Connect off.
    pub fn disabled() -> ServiceConnectConfiguration {
        ServiceConnectConfiguration { enabled: false, namespace: None, services: vec![] }
    }
}

/// One port a service offers through Service Connect.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectService {
    /// The task definition's port mapping name.
    pub port_name: String,
    /// The name registered in Cloud Map.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discovery_name: Option<String>,
    #[serde(default)]
    pub client_aliases: Vec<ServiceConnectClientAlias>,
}

/// The name and port clients reach a Service Connect service by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectClientAlias {
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentController {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfiguration {
    pub maximum_percent: u32,
    pub minimum_healthy_percent: u32,
    pub deployment_circuit_breaker: CircuitBreaker,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfiguration {
    pub awsvpc_configuration: AwsVpcConfiguration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsVpcConfiguration {
    pub subnets: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub security_groups: Vec<String>,
    pub assign_public_ip: String,
}

/// Both documents of one service, and its Application Auto Scaling documents when it autoscales.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsService {
    pub name: String,
    pub cluster: String,
    pub register_task_definition: TaskDefinitionInput,
    pub create_service: ServiceInput,
    /// Absent without `spec.autoscaling`, so those services render as before it existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<super::autoscaling::ScalingDocs>,
    /// The secret versions the tasks will read (recorded in the service's tags) and what a rotation does: mcpfleet's
    /// own, never sent to ECS as a document.
    #[serde(skip)]
    pub secrets: SecretsInUse,
}

/// The secrets a service reads by stage, with their versions now, and its `secretRotation`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretsInUse {
    pub used: Vec<crate::state::secrets::SecretInUse>,
    pub rotation: crate::spec::SecretRotation,
}

impl SecretsInUse {
    /// Whether a rotation restarts the service.
    pub fn restarts(&self) -> bool {
        self.rotation == crate::spec::SecretRotation::Restart
    }
}

/// The in-container HTTP probe for a `path` health check. The probe's own timeout stays a second under ECS's so
/// a slow server is reported as a failed probe rather than a killed one.
pub fn probe_command(probe: Probe, port: u16, path: &str, timeout_secs: u32) -> Vec<String> {
    let url = format!("http://localhost:{port}{path}");
    let t = timeout_secs.saturating_sub(1).max(1);
    let argv: Vec<String> = match probe {
        Probe::Python => vec![
            "python3".into(),
            "-c".into(),
            format!("import urllib.request; urllib.request.urlopen('{url}', timeout={t})"),
        ],
        Probe::Curl => {
            vec!["curl".into(), "-fsS".into(), "-o".into(), "/dev/null".into(), "--max-time".into(), t.to_string(), url]
        }
        Probe::Wget => {
            vec!["wget".into(), "-q".into(), "-O".into(), "/dev/null".into(), "-T".into(), t.to_string(), url]
        }
    };
    std::iter::once("CMD".to_string()).chain(argv).collect()
}

/// The health-check command in ECS form.
pub fn health_command(svc: &ValidService) -> Option<Vec<String>> {
    let h = svc.health_check.as_ref()?;
    Some(match &h.probe {
        HealthProbe::Http { path, probe } => probe_command(*probe, svc.port, path, h.timeout_secs),
        HealthProbe::Command(cmd) => cmd.clone(),
        HealthProbe::Bridge => bridge::health_command(svc.port, h.timeout_secs),
    })
}

/// Renders the RegisterTaskDefinition input (without tags; see [`render`]).
pub fn task_definition(svc: &ValidService, res: &Resolved) -> TaskDefinitionInput {
    let health_check = svc.health_check.as_ref().map(|h| HealthCheck {
        command: health_command(svc).unwrap_or_default(),
        interval: h.interval_secs,
        timeout: h.timeout_secs,
        retries: h.retries,
        start_period: h.start_period_secs,
    });
    let log_configuration = svc.logging.as_ref().map(|l| LogConfiguration {
        log_driver: "awslogs".into(),
        options: [
            ("awslogs-group".to_string(), l.group.clone()),
            ("awslogs-region".to_string(), l.region.clone()),
            ("awslogs-stream-prefix".to_string(), l.stream_prefix.clone()),
        ]
        .into_iter()
        .collect(),
    });
    // A read-only root keeps a compromised server from rewriting itself; MCP servers still need a scratch /tmp.
    let (mut volumes, mut mount_points) = if svc.read_only_root_filesystem {
        (
            vec![Volume { name: TMP_VOLUME.into() }],
            vec![MountPoint { source_volume: TMP_VOLUME.into(), container_path: "/tmp".into(), read_only: false }],
        )
    } else {
        (vec![], vec![])
    };
    let installer = svc.stdio.as_ref().map(|stdio| installer(svc, stdio, log_configuration.clone()));
    let (entry_point, command, depends_on) = match (&svc.stdio, &installer) {
        (Some(stdio), Some(installer)) => {
            volumes.push(Volume { name: bridge::VOLUME.into() });
            mount_points.push(MountPoint {
                source_volume: bridge::VOLUME.into(),
                container_path: bridge::DIR.into(),
                read_only: true,
            });
            let ready = ContainerDependency { container_name: installer.name.clone(), condition: "COMPLETE".into() };
            (bridge::entrypoint(svc, stdio), res.command.clone().unwrap_or_default(), vec![ready])
        }
        _ => (vec![], vec![], vec![]),
    };
    let server = ContainerDefinition {
        name: svc.name.clone(),
        image: res.image.clone(),
        repository_credentials: res
            .registry_credentials
            .as_ref()
            .map(|arn| RepositoryCredentials { credentials_parameter: arn.clone() }),
        essential: true,
        entry_point,
        command,
        depends_on,
        user: None,
        port_mappings: vec![PortMapping {
            container_port: svc.port,
            protocol: "tcp".into(),
            name: PORT_NAME.into(),
            app_protocol: "http".into(),
        }],
        environment: svc.env.iter().map(|(k, v)| KeyValue { name: k.clone(), value: v.clone() }).collect(),
        secrets: res.secrets.iter().map(|(k, v)| SecretVar { name: k.clone(), value_from: v.clone() }).collect(),
        health_check,
        stop_timeout: svc.stop_timeout_secs,
        readonly_root_filesystem: svc.read_only_root_filesystem,
        mount_points,
        // An init process reaps zombies and forwards SIGTERM, so stopTimeout really drains in-flight calls.
        linux_parameters: LinuxParameters { init_process_enabled: true, capabilities: None },
        log_configuration,
    };
    TaskDefinitionInput {
        family: svc.name.clone(),
        task_role_arn: svc.task_role_arn.clone(),
        execution_role_arn: svc.execution_role_arn.clone(),
        network_mode: "awsvpc".into(),
        // The server's container first: it is the task's (readers of a revision take the first container's image).
        container_definitions: std::iter::once(server).chain(installer).collect(),
        volumes,
        requires_compatibilities: vec!["FARGATE".into()],
        cpu: svc.cpu.to_string(),
        memory: svc.memory.to_string(),
        runtime_platform: RuntimePlatform {
            cpu_architecture: res.architecture,
            operating_system_family: "LINUX".into(),
        },
        tags: vec![],
    }
}

/// The bridge's installer: copies the static executable out of mcpfleet's image into the task's volume and exits
/// (not essential: its end does not stop the task).
fn installer(
    svc: &ValidService,
    stdio: &ValidStdio,
    log_configuration: Option<LogConfiguration>,
) -> ContainerDefinition {
    ContainerDefinition {
        name: bridge::installer_name(|n| n == svc.name),
        image: stdio.bridge_image.to_string(),
        // A private bridge image outside ECR is not supported: ECR (the execution role pulls it) or a public registry.
        repository_credentials: None,
        essential: false,
        entry_point: vec![],
        command: bridge::installer_command(),
        depends_on: vec![],
        user: Some(bridge::INSTALLER_USER.into()),
        port_mappings: vec![],
        environment: vec![],
        secrets: vec![],
        health_check: None,
        stop_timeout: 2,
        readonly_root_filesystem: true,
        mount_points: vec![MountPoint {
            source_volume: bridge::VOLUME.into(),
            container_path: bridge::DIR.into(),
            read_only: false,
        }],
        linux_parameters: LinuxParameters {
            init_process_enabled: false,
            capabilities: Some(KernelCapabilities { drop: vec!["ALL".into()] }),
        },
        log_configuration,
    }
}

/// Renders the CreateService input pointing at `task_definition` (a family, family:revision or ARN).
pub fn service(svc: &ValidService, res: &Resolved, task_definition: &str) -> ServiceInput {
    ServiceInput {
        cluster: svc.cluster.clone(),
        service_name: svc.name.clone(),
        task_definition: task_definition.to_string(),
        desired_count: svc.replicas,
        launch_type: "FARGATE".into(),
        scheduling_strategy: "REPLICA".into(),
        deployment_controller: DeploymentController { kind: "ECS".into() },
        deployment_configuration: DeploymentConfiguration {
            maximum_percent: svc.rollout.max_percent,
            minimum_healthy_percent: svc.rollout.min_healthy_percent,
            // ECS rolls back by itself even when no mcpfleet is watching; mcpfleet detects and records it.
            deployment_circuit_breaker: CircuitBreaker { enable: true, rollback: true },
        },
        network_configuration: NetworkConfiguration {
            awsvpc_configuration: AwsVpcConfiguration {
                subnets: svc.network.subnets.clone(),
                security_groups: svc.network.security_groups.clone(),
                assign_public_ip: if svc.network.assign_public_ip { "ENABLED" } else { "DISABLED" }.into(),
            },
        },
        enable_ecs_managed_tags: true,
        propagate_tags: "SERVICE".into(),
        service_connect_configuration: svc.service_connect.as_ref().map(|sc| ServiceConnectConfiguration {
            enabled: true,
            namespace: Some(sc.namespace.clone()),
            // The alias label doubles as the Cloud Map discovery name: validation made it a DNS label, which Cloud
            // Map accepts, while a service name may not be one.
            services: vec![ServiceConnectService {
                port_name: PORT_NAME.into(),
                discovery_name: Some(sc.dns_name.clone()),
                client_aliases: vec![ServiceConnectClientAlias { port: sc.port, dns_name: Some(client_alias(sc)) }],
            }],
        }),
        load_balancers: svc
            .load_balancers
            .iter()
            .zip(&res.target_groups)
            .map(|(lb, arn)| LoadBalancer {
                target_group_arn: arn.clone(),
                container_name: svc.name.clone(),
                container_port: lb.container_port,
            })
            .collect(),
        health_check_grace_period_seconds: svc.health_check_grace_period_secs,
        tags: vec![],
    }
}

/// The name clients resolve: the alias label qualified with the namespace (`documents.mcp.internal`), so the name
/// is unique beyond the namespace and reads as the endpoint it is. A namespace given as an ARN has no name to
/// qualify with (finding it needs Cloud Map): the label alone is the alias then.
pub fn client_alias(sc: &ValidServiceConnect) -> String {
    if sc.namespace.starts_with("arn:") { sc.dns_name.clone() } else { format!("{}.{}", sc.dns_name, sc.namespace) }
}

/// The hash of a desired state: the task definition and the service settings, without tags and without the
/// task-definition reference (which only exists after registering). Equal hashes mean "nothing to do".
pub fn spec_hash(td: &TaskDefinitionInput, svc: &ServiceInput) -> String {
    spec_hash_with(&task_hash(td), svc)
}

fn spec_hash_with(task_hash: &str, svc: &ServiceInput) -> String {
    // The transport reaches ECS only as a tag, yet a change of it must be applied: a non-default transport joins
    // the hash, so the hashes of streamable-http services are those of the plain (task, service) pair.
    let transport = svc
        .tags
        .iter()
        .find(|t| t.key == TAG_TRANSPORT && t.value != Transport::StreamableHttp.as_str())
        .map(|t| t.value.as_str());
    match transport {
        None => hash_json(&(task_hash, HashedService::of(svc))),
        Some(transport) => hash_json(&(task_hash, HashedService::of(svc), transport)),
    }
}

/// mcpfleet's own rollout settings, which ECS never sees (progressDeadline, autoRollback, historyLimit), are part
/// of the desired state too: any change to a service's manifest releases a spec held back after a failed rollout
/// (raising a deadline that was too short, say). Settings other than the defaults join the hash, so the hashes of
/// services on the defaults stay those of their ECS documents.
fn with_rollout_policy(hash: String, r: &ValidRollout) -> String {
    let policy = (r.progress_deadline_secs, r.auto_rollback, r.history_limit);
    let defaults = (
        ValidRollout::DEFAULT_PROGRESS_DEADLINE_SECS,
        ValidRollout::DEFAULT_AUTO_ROLLBACK,
        ValidRollout::DEFAULT_HISTORY_LIMIT,
    );
    if policy == defaults { hash } else { hash_json(&(hash, policy)) }
}

/// The MCP verification settings, which ECS never sees either, join the hash the same way: changing what a
/// rollout must pass (an expected tool, `allowToolRemoval`) releases a spec held back after a failed verification.
/// A service without an `mcp` block keeps the hash of its ECS documents.
fn with_mcp(hash: String, m: &ValidMcp) -> String {
    if *m == ValidMcp::unverified(m.transport, m.port) {
        return hash;
    }
    let settings = (&m.path, m.verify.as_str(), &m.expect_tools, m.allow_tool_removal, m.timeout_secs);
    hash_json(&(hash, settings))
}

/// A [`ServiceInput`] as the spec hash sees it: every field in the same order and JSON shape, but an empty
/// task-definition reference and no tags. Borrowed, so hashing copies nothing; the test
/// `hashed_service_serializes_as_the_cleared_input` keeps it in step with [`ServiceInput`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HashedService<'a> {
    cluster: &'a str,
    service_name: &'a str,
    task_definition: &'a str,
    desired_count: u32,
    launch_type: &'a str,
    scheduling_strategy: &'a str,
    deployment_controller: &'a DeploymentController,
    deployment_configuration: &'a DeploymentConfiguration,
    network_configuration: &'a NetworkConfiguration,
    #[serde(rename = "enableECSManagedTags")]
    enable_ecs_managed_tags: bool,
    propagate_tags: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_connect_configuration: Option<&'a ServiceConnectConfiguration>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    load_balancers: &'a [LoadBalancer],
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check_grace_period_seconds: Option<u32>,
}

impl<'a> HashedService<'a> {
    fn of(svc: &'a ServiceInput) -> Self {
        // Destructured so a new ServiceInput field does not compile until it is decided here.
        let ServiceInput {
            cluster,
            service_name,
            task_definition: _,
            desired_count,
            launch_type,
            scheduling_strategy,
            deployment_controller,
            deployment_configuration,
            network_configuration,
            enable_ecs_managed_tags,
            propagate_tags,
            service_connect_configuration,
            load_balancers,
            health_check_grace_period_seconds,
            tags: _,
        } = svc;
        HashedService {
            cluster,
            service_name,
            task_definition: "",
            desired_count: *desired_count,
            launch_type,
            scheduling_strategy,
            deployment_controller,
            deployment_configuration,
            network_configuration,
            enable_ecs_managed_tags: *enable_ecs_managed_tags,
            propagate_tags,
            service_connect_configuration: service_connect_configuration.as_ref(),
            load_balancers,
            health_check_grace_period_seconds: *health_check_grace_period_seconds,
        }
    }
}

/// The hash of a task definition's content (without tags).
pub fn task_hash(td: &TaskDefinitionInput) -> String {
    if td.tags.is_empty() {
        return hash_json(td);
    }
    let mut td = td.clone();
    td.tags.clear();
    hash_json(&td)
}

/// The first 16 bytes of the SHA-256 of the value's compact JSON, in hex. The JSON is streamed into the hasher
/// through a small buffer rather than built in memory first.
pub(crate) fn hash_json(value: &(impl Serialize + std::fmt::Debug)) -> String {
    let mut out = std::io::BufWriter::with_capacity(1024, HashWriter(Sha256::new()));
    let streamed = serde_json::to_writer(&mut out, value).map_err(std::io::Error::from).and_then(|()| out.flush());
    let (HashWriter(mut hasher), _) = out.into_parts();
    if streamed.is_err() {
        // Unreachable for mcpfleet's documents (derived impls, string map keys, a writer that never fails); should
        // a type ever break that, its Debug form is hashed instead: still a function of every field, so a changed
        // desired state still changes its hash.
        hasher = Sha256::new();
        hasher.update(super::debug_form(value));
    }
    hasher.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// An `io::Write` that feeds a hasher.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// mcpfleet's own tags plus the user's labels, sorted by key.
pub fn tags(svc: &ValidService, res: &Resolved, spec_hash: &str) -> Vec<Tag> {
    let mut tags: Vec<Tag> = svc.labels.iter().map(|(k, v)| Tag { key: k.clone(), value: v.clone() }).collect();
    let stamp = state::Stamp {
        spec_hash,
        transport: svc.transport.served().as_str(),
        architecture: res.architecture.map(|a| a.as_ecs()),
        image_tag: svc.image.tag.as_deref(),
        image_digest: res.digest.as_deref(),
    };
    tags.extend(stamp.tags());
    if !svc.labels.is_empty() {
        tags.push(state::owned_labels(svc.labels.keys().map(String::as_str)));
    }
    tags.sort();
    tags
}

/// The transport a `mcpfleet.io/transport` tag value names; resources tagged before transports were tagged serve
/// the default, streamable HTTP.
pub fn transport_of(tag: Option<&str>) -> &str {
    tag.unwrap_or(Transport::StreamableHttp.as_str())
}

fn transport_tag(svc: &ValidService) -> Tag {
    state::transport(svc.transport.served().as_str())
}

/// Both documents of a service, tagged, with the service pointing at the task-definition family.
pub fn render(svc: &ValidService, res: &Resolved) -> EcsService {
    let mut td = task_definition(svc, res);
    let mut service = service(svc, res, &svc.name);
    // The one tag the spec-hash reads (see `spec_hash_with`); the full set is added once the hash is known.
    service.tags = vec![transport_tag(svc)];
    let td_hash = task_hash(&td);
    let hash = with_mcp(
        with_rollout_policy(autoscaled_hash(&td_hash, &service, svc.autoscaling.is_some()), &svc.rollout),
        &svc.mcp,
    );
    let tags = tags(svc, res, &hash);
    td.tags = tags.clone();
    td.tags.push(state::task_hash(&td_hash));
    td.tags.sort();
    service.tags = tags;
    // The versions are the service's state, not its revision's: a restart keeps the revision.
    if let Some(versions) = state::secrets::record(&res.secret_versions) {
        service.tags.push(Tag { key: state::secrets::TAG_SECRET_VERSIONS.into(), value: versions });
        service.tags.sort();
    }
    // Grown one tag at a time, each list has room for up to twice its tags; a plan keeps every service's
    // documents (at 10,000 services that room was 7 MB).
    td.tags.shrink_to_fit();
    service.tags.shrink_to_fit();
    EcsService {
        name: svc.name.clone(),
        cluster: svc.cluster.clone(),
        register_task_definition: td,
        create_service: service,
        autoscaling: super::autoscaling::render(svc, res),
        secrets: SecretsInUse { used: res.secret_versions.clone(), rotation: svc.secret_rotation },
    }
}

/// The spec hash of a service that autoscales leaves its count out: the count is the autoscaler's, and `replicas`
/// only says what a new service starts with, so editing it changes nothing that runs. (The autoscaling settings
/// themselves are recorded apart, in the `mcpfleet.io/autoscaling` tag.) Services without autoscaling hash as
/// before it existed.
fn autoscaled_hash(td_hash: &str, service: &ServiceInput, autoscaled: bool) -> String {
    if !autoscaled {
        return spec_hash_with(td_hash, service);
    }
    let mut uncounted = service.clone();
    uncounted.desired_count = 0;
    hash_json(&(spec_hash_with(td_hash, &uncounted), "autoscaled"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load_str;
    use crate::state::{
        TAG_ARCHITECTURE, TAG_IMAGE_DIGEST, TAG_IMAGE_TAG, TAG_MANAGED_BY, TAG_SPEC_HASH, TAG_TASK_HASH,
    };

    const SVC: &str = "apiVersion: mcpfleet.io/v1alpha1
kind: McpService
metadata: { name: docs, labels: { team: knowledge } }
spec:
  cluster: mcp
  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/docs:v1.4.2
  architecture: arm64
  cpu: 512
  memory: 1024
  replicas: 2
  port: 8080
  env: { LOG_LEVEL: INFO }
  secrets:
    OPENAI_API_KEY: { secret: prod/openai, key: api_key }
  healthCheck: { path: /health, interval: 30s, timeout: 10s, startPeriod: 15s }
  stopTimeout: 45s
  executionRoleArn: arn:aws:iam::123456789012:role/exec
  network: { subnets: [subnet-0abc1234], securityGroups: [sg-0abc1234] }
  logging: { group: /mcp/fleet }
";

    fn service(text: &str) -> ValidService {
        load_str("m.yaml", text).unwrap().services.remove(0)
    }

    const BRIDGE: &str =
        "registry.example.com/mcpfleet@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// SVC as a stdio server named `name`, behind the bridge.
    fn stdio_service(name: &str) -> ValidService {
        let text = format!(
            "apiVersion: mcpfleet.io/v1alpha1\nkind: FleetDefaults\nspec: {{ bridgeImage: '{BRIDGE}' }}\n---\n{}",
            SVC.replace("name: docs", &format!("name: {name}"))
                .replace("  healthCheck: { path: /health, interval: 30s, timeout: 10s, startPeriod: 15s }\n", "")
                .replace("  port: 8080\n", "  port: 8080\n  transport: stdio\n  command: [uvx, mcp-server-fetch]\n  bridge: { mode: per-session, idleTimeout: 5m }\n")
        );
        service(&text)
    }

    #[test]
    fn a_stdio_server_runs_the_bridge_copied_in_by_an_installer() {
        let svc = stdio_service("fetch");
        let out = render(&svc, &Resolved::unresolved(&svc));
        let td = &out.register_task_definition;
        assert_eq!(td.volumes, vec![Volume { name: "tmp".into() }, Volume { name: "mcpfleet-bridge".into() }]);
        let [server, installer] = &td.container_definitions[..] else { panic!("two containers: {td:#?}") };
        // The server's container first, running the bridge from the volume it mounts read-only.
        assert_eq!((server.name.as_str(), server.essential), ("fetch", true));
        assert_eq!(
            server.entry_point,
            [
                "/mcpfleet-bridge/mcpfleet",
                "bridge",
                "--port",
                "8080",
                "--path",
                "/mcp",
                "--mode",
                "per-session",
                "--max-sessions",
                "32",
                "--idle-timeout",
                "300s",
                "--drain-timeout",
                "40s",
                "--child-grace",
                "3s",
                "--",
            ]
        );
        assert_eq!(server.command, ["uvx", "mcp-server-fetch"]);
        assert_eq!(
            server.depends_on,
            [ContainerDependency { container_name: "mcpfleet-bridge".into(), condition: "COMPLETE".into() }]
        );
        let bridge_mount = MountPoint {
            source_volume: "mcpfleet-bridge".into(),
            container_path: "/mcpfleet-bridge".into(),
            read_only: true,
        };
        assert!(server.mount_points.contains(&bridge_mount), "{:?}", server.mount_points);
        let hc = server.health_check.as_ref().unwrap();
        assert_eq!(
            hc.command,
            [
                "CMD",
                "/mcpfleet-bridge/mcpfleet",
                "healthcheck",
                "--url",
                "http://127.0.0.1:8080/health",
                "--timeout",
                "4s"
            ]
        );
        assert_eq!((hc.interval, hc.timeout, hc.retries, hc.start_period), (30, 5, 3, 0));
        // The installer: mcpfleet's image, copying the executable into the volume and exiting.
        assert_eq!(
            (installer.name.as_str(), installer.image.as_str(), installer.essential),
            ("mcpfleet-bridge", BRIDGE, false)
        );
        assert_eq!(installer.command, ["install-bridge", "/mcpfleet-bridge"]);
        assert_eq!(installer.user.as_deref(), Some("0"));
        assert!(installer.readonly_root_filesystem && installer.port_mappings.is_empty());
        assert_eq!(installer.mount_points, [MountPoint { read_only: false, ..bridge_mount }]);
        assert_eq!(installer.linux_parameters.capabilities, Some(KernelCapabilities { drop: vec!["ALL".into()] }));
        assert_eq!(installer.log_configuration, server.log_configuration);
        // Clients speak streamable HTTP to it.
        assert!(td.tags.contains(&Tag { key: TAG_TRANSPORT.into(), value: "streamable-http".into() }));
        // The bridge image is part of the desired state: a new mcpfleet release rolls the service out.
        let mut newer = svc.clone();
        newer.stdio.as_mut().unwrap().bridge_image =
            crate::spec::ImageRef::parse_pinned(&BRIDGE.replace("0123", "4567")).unwrap();
        let again = render(&newer, &Resolved::unresolved(&newer));
        assert_ne!(task_hash(td), task_hash(&again.register_task_definition));
    }

    #[test]
    fn the_installer_never_shares_the_servers_name() {
        let svc = stdio_service("mcpfleet-bridge");
        let td = render(&svc, &Resolved::unresolved(&svc)).register_task_definition;
        let names: Vec<&str> = td.container_definitions.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["mcpfleet-bridge", "mcpfleet-bridge-1"]);
        assert_eq!(td.container_definitions[0].depends_on[0].container_name, "mcpfleet-bridge-1");
    }

    #[test]
    fn task_definition_carries_every_setting() {
        let svc = service(SVC);
        let out = render(&svc, &Resolved::unresolved(&svc));
        let td = &out.register_task_definition;
        let c = &td.container_definitions[0];
        assert_eq!((td.cpu.as_str(), td.memory.as_str(), td.network_mode.as_str()), ("512", "1024", "awsvpc"));
        assert_eq!(td.requires_compatibilities, vec!["FARGATE"]);
        assert_eq!(td.runtime_platform.cpu_architecture, Some(super::super::CpuArch::Arm64));
        assert_eq!(c.image, "123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/docs:v1.4.2");
        assert_eq!(c.stop_timeout, 45);
        assert!(c.essential && c.readonly_root_filesystem && c.linux_parameters.init_process_enabled);
        assert_eq!(c.mount_points[0].container_path, "/tmp");
        assert_eq!(
            c.secrets,
            vec![SecretVar { name: "OPENAI_API_KEY".into(), value_from: "prod/openai:api_key::".into() }]
        );
        let hc = c.health_check.as_ref().unwrap();
        assert_eq!((hc.interval, hc.timeout, hc.retries, hc.start_period), (30, 10, 3, 15));
        assert_eq!(hc.command[..2], ["CMD".to_string(), "python3".to_string()]);
        assert!(hc.command[3].contains("'http://localhost:8080/health', timeout=9"), "{:?}", hc.command);
        let logs = c.log_configuration.as_ref().unwrap();
        assert_eq!(logs.options["awslogs-region"], "us-east-1");
        assert_eq!(logs.options["awslogs-stream-prefix"], "docs");

        let s = &out.create_service;
        assert_eq!((s.cluster.as_str(), s.service_name.as_str(), s.task_definition.as_str()), ("mcp", "docs", "docs"));
        assert_eq!(s.desired_count, 2);
        assert_eq!(
            s.deployment_configuration.deployment_circuit_breaker,
            CircuitBreaker { enable: true, rollback: true }
        );
        assert_eq!(s.network_configuration.awsvpc_configuration.assign_public_ip, "DISABLED");
        assert_eq!(s.propagate_tags, "SERVICE");
    }

    #[test]
    fn resolution_pins_the_digest_and_records_it_in_tags() {
        let svc = service(SVC);
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let res = Resolved {
            image: svc.image.pinned(digest),
            digest: Some(digest.into()),
            architecture: Some(super::super::CpuArch::Arm64),
            secrets: [(
                "OPENAI_API_KEY".to_string(),
                svc.secrets["OPENAI_API_KEY"]
                    .value_from("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/openai-AbCdEf"),
            )]
            .into(),
            target_groups: vec![],
            registry_credentials: None,
            secret_versions: vec![],
            command: None,
            warnings: vec![],
            platforms: vec!["linux/arm64".into()],
            request_count_label: None,
        };
        let out = render(&svc, &res);
        let c = &out.register_task_definition.container_definitions[0];
        assert_eq!(c.image, format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/docs@{digest}"));
        assert_eq!(
            c.secrets[0].value_from,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/openai-AbCdEf:api_key::"
        );
        let tags: std::collections::BTreeMap<_, _> =
            out.create_service.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())).collect();
        assert_eq!(tags[TAG_MANAGED_BY], "mcpfleet");
        assert_eq!(tags[TAG_IMAGE_TAG], "v1.4.2");
        assert_eq!(tags[TAG_IMAGE_DIGEST], digest);
        assert_eq!(tags["team"], "knowledge");
        let td_tags: Vec<_> =
            out.register_task_definition.tags.iter().filter(|t| t.key != TAG_TASK_HASH).cloned().collect();
        assert_eq!(td_tags, out.create_service.tags);
        assert_eq!(tags[TAG_ARCHITECTURE], "ARM64");
    }

    #[test]
    fn spec_hash_changes_with_the_desired_state_only() {
        let svc = service(SVC);
        let a = render(&svc, &Resolved::unresolved(&svc));
        let b = render(&svc, &Resolved::unresolved(&svc));
        assert_eq!(a, b);
        let hash =
            |e: &EcsService| e.create_service.tags.iter().find(|t| t.key == TAG_SPEC_HASH).unwrap().value.clone();
        assert_eq!(hash(&a).len(), 32);
        // The task-definition reference is not part of the desired state.
        let pointed_elsewhere = super::service(&svc, &Resolved::unresolved(&svc), "docs:7");
        assert_eq!(spec_hash(&a.register_task_definition, &pointed_elsewhere), hash(&a));
        for change in [
            ("replicas: 2", "replicas: 3"),
            ("v1.4.2", "v1.4.3"),
            ("LOG_LEVEL: INFO", "LOG_LEVEL: DEBUG"),
            ("stopTimeout: 45s", "stopTimeout: 40s"),
        ] {
            let other = service(&SVC.replace(change.0, change.1));
            assert_ne!(hash(&render(&other, &Resolved::unresolved(&other))), hash(&a), "{change:?}");
        }
    }

    #[test]
    fn transport_is_a_tag_and_a_change_of_it_is_applied() {
        let tag = |e: &EcsService| e.create_service.tags.iter().find(|t| t.key == TAG_TRANSPORT).unwrap().value.clone();
        let hash =
            |e: &EcsService| e.create_service.tags.iter().find(|t| t.key == TAG_SPEC_HASH).unwrap().value.clone();
        let http = service(SVC);
        let http = render(&http, &Resolved::unresolved(&http));
        assert_eq!(tag(&http), "streamable-http");
        assert!(http.register_task_definition.tags.iter().any(|t| t.key == TAG_TRANSPORT));
        // The default transport leaves the hash as it was before transports were tagged: no fleet-wide update.
        let plain = service(SVC);
        let untagged = super::service(&plain, &Resolved::unresolved(&plain), "docs");
        assert_eq!(spec_hash(&http.register_task_definition, &untagged), hash(&http));
        let sse = service(&format!("{SVC}  transport: sse\n"));
        let sse = render(&sse, &Resolved::unresolved(&sse));
        assert_eq!(tag(&sse), "sse");
        assert_ne!(hash(&sse), hash(&http), "a transport change must be applied");
        // The task definition's content is unchanged (same task hash); apply registers a revision of it tagged with
        // the new transport, so each revision records what it served.
        assert_eq!(task_hash(&sse.register_task_definition), task_hash(&http.register_task_definition));
    }

    #[test]
    fn hashed_service_serializes_as_the_cleared_input() {
        let svc = service(SVC);
        let rendered = render(&svc, &Resolved::unresolved(&svc));
        let mut input = rendered.create_service.clone();
        input.task_definition = "arn:aws:ecs:us-east-1:123456789012:task-definition/docs:7".into();
        let mut cleared = input.clone();
        cleared.tags.clear();
        cleared.task_definition.clear();
        assert_eq!(
            serde_json::to_string(&HashedService::of(&input)).unwrap(),
            serde_json::to_string(&cleared).unwrap()
        );
        // The hash of the compact JSON, as it always was: stored spec-hash tags stay valid.
        let canonical = serde_json::to_vec(&("abc", &cleared)).unwrap();
        let expected: String = Sha256::digest(&canonical).iter().take(16).map(|b| format!("{b:02x}")).collect();
        assert_eq!(spec_hash_with("abc", &input), expected);
        let td = &rendered.register_task_definition;
        let mut bare = td.clone();
        bare.tags.clear();
        let expected: String =
            Sha256::digest(serde_json::to_vec(&bare).unwrap()).iter().take(16).map(|b| format!("{b:02x}")).collect();
        assert_eq!(task_hash(td), expected);
    }

    #[test]
    fn probes_and_writable_root() {
        assert_eq!(
            probe_command(Probe::Curl, 3000, "/healthz", 5),
            ["CMD", "curl", "-fsS", "-o", "/dev/null", "--max-time", "4", "http://localhost:3000/healthz"]
        );
        assert_eq!(
            probe_command(Probe::Wget, 80, "/", 2),
            ["CMD", "wget", "-q", "-O", "/dev/null", "-T", "1", "http://localhost:80/"]
        );
        let svc =
            service(&SVC.replace("  stopTimeout: 45s\n", "  stopTimeout: 45s\n  readOnlyRootFilesystem: false\n"));
        let td = task_definition(&svc, &Resolved::unresolved(&svc));
        assert!(!td.container_definitions[0].readonly_root_filesystem);
        assert!(td.volumes.is_empty() && td.container_definitions[0].mount_points.is_empty());
    }

    #[test]
    fn service_connect_renders_a_named_alias_and_joins_the_hash_only_when_on() {
        let hash =
            |e: &EcsService| e.create_service.tags.iter().find(|t| t.key == TAG_SPEC_HASH).unwrap().value.clone();
        let plain = service(SVC);
        let plain = render(&plain, &Resolved::unresolved(&plain));
        let json = serde_json::to_value(&plain.create_service).unwrap();
        assert!(json.get("serviceConnectConfiguration").is_none(), "{json:#}");
        let sc = |body: &str| {
            let svc = service(&format!("{SVC}  expose:\n    serviceConnect: {body}\n"));
            render(&svc, &Resolved::unresolved(&svc))
        };
        let on = sc("{ namespace: mcp.internal, dnsName: documents }");
        assert_eq!(
            serde_json::to_value(&on.create_service).unwrap()["serviceConnectConfiguration"],
            serde_json::json!({
                "enabled": true,
                "namespace": "mcp.internal",
                "services": [{
                    "portName": "mcp",
                    "discoveryName": "documents",
                    "clientAliases": [{"port": 8080, "dnsName": "documents.mcp.internal"}]
                }]
            })
        );
        let mapping = &on.register_task_definition.container_definitions[0].port_mappings[0];
        assert_eq!((mapping.name.as_str(), mapping.app_protocol.as_str()), (PORT_NAME, "http"));
        // The task definition is the same: Service Connect is a service setting.
        assert_eq!(task_hash(&on.register_task_definition), task_hash(&plain.register_task_definition));
        assert_ne!(hash(&on), hash(&plain));
        let other_port = sc("{ namespace: mcp.internal, dnsName: documents, port: 9090 }");
        assert_ne!(hash(&other_port), hash(&on));
        // A namespace ARN has no name to qualify the alias with.
        let arn =
            sc("{ namespace: 'arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-abc', dnsName: docs }");
        let alias = &arn.create_service.service_connect_configuration.as_ref().unwrap().services[0].client_aliases[0];
        assert_eq!(alias.dns_name.as_deref(), Some("docs"));
        // Readiness is recorded for later use and is no ECS setting: the hash does not move.
        let ready = service(&format!("{SVC}  readiness: {{ path: /ready }}\n"));
        assert_eq!(hash(&render(&ready, &Resolved::unresolved(&ready))), hash(&plain));
    }

    #[test]
    fn mcp_verification_settings_join_the_spec_hash_but_not_the_task_definition() {
        let hash =
            |e: &EcsService| e.create_service.tags.iter().find(|t| t.key == TAG_SPEC_HASH).unwrap().value.clone();
        let rendered = |mcp: &str| {
            let svc = service(&format!("{SVC}{mcp}"));
            render(&svc, &Resolved::unresolved(&svc))
        };
        let plain = rendered("");
        // Writing the defaults changes nothing: the hashes of services without verification stay what they were.
        assert_eq!(hash(&rendered("  mcp: { path: /mcp, verify: none, timeout: 10s }\n")), hash(&plain));
        let verified = rendered("  mcp: { verify: tasks, expectTools: [search] }\n");
        let allowed = rendered("  mcp: { verify: tasks, expectTools: [search], allowToolRemoval: true }\n");
        let another_tool = rendered("  mcp: { verify: tasks, expectTools: [search, fetch] }\n");
        let hashes = [hash(&plain), hash(&verified), hash(&allowed), hash(&another_tool)];
        assert_eq!(hashes.iter().collect::<std::collections::BTreeSet<_>>().len(), 4, "{hashes:?}");
        // What runs is the same revision: a changed contract releases a held spec without a new task definition.
        assert_eq!(task_hash(&allowed.register_task_definition), task_hash(&plain.register_task_definition));
    }
}
