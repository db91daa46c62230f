//! The validated fleet: every default merged, every duration in seconds, every reference parsed.
//!
//! Render, plan and the backends consume only these types, so they never re-check user input.

use std::collections::BTreeMap;

pub use super::image::ImageRef;
pub use super::types::{Architecture, BridgeMode, Probe, SecretRotation, SessionStore, Transport, Verify};

/// A fleet that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidFleet {
    /// Services sorted by name.
    pub services: Vec<ValidService>,
    /// The local stack's session store, when FleetDefaults asks for one.
    pub session_store: Option<SessionStore>,
    /// FleetDefaults' cluster, when set: `--prune` looks there too, even when no service uses it any more.
    pub default_cluster: Option<String>,
}

/// Where a service was declared, for messages about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: String,
    pub line: usize,
}

/// Lines of the fields that are only judged after validation, when AWS is asked about them (a tag that does not
/// exist, a secret that cannot be found), so those errors point at the field rather than at the document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldLines {
    /// The line of `spec.image`.
    pub image: usize,
    /// The line of each secret's reference (`spec.secrets.NAME`, or its `secret:` field), by variable name.
    pub secrets: BTreeMap<String, usize>,
    /// The line of each `spec.expose.loadBalancers[i].targetGroup`, in order.
    pub target_groups: Vec<usize>,
    /// The line of `spec.registryCredentials`.
    pub registry_credentials: usize,
    /// The line of `spec.command`, or of `spec.transport` when the image's own command is used.
    pub command: usize,
    /// The line of `spec.autoscaling.requestsPerTarget`, when set (its target group is judged at resolution).
    pub requests_per_target: Option<usize>,
}

/// One MCP server, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidService {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub source: Source,
    /// Where `spec.image` and each secret are written in `source.file`.
    pub lines: FieldLines,
    pub cluster: String,
    pub image: ImageRef,
    pub architecture: Architecture,
    pub cpu: u32,
    pub memory: u32,
    pub replicas: u32,
    pub port: u16,
    pub transport: Transport,
    pub env: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretRef>,
    pub health_check: Option<ValidHealthCheck>,
    pub stop_timeout_secs: u32,
    pub task_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    /// The Secrets Manager secret (name or ARN, as written) ECS pulls the image of a private registry with.
    pub registry_credentials: Option<String>,
    pub network: ValidNetwork,
    pub logging: Option<ValidLogging>,
    pub rollout: ValidRollout,
    pub read_only_root_filesystem: bool,
    /// What a rotation of a secret it reads does to the service.
    pub secret_rotation: SecretRotation,
    /// The local stack's host port, when the manifest pins one (`spec.local.port`).
    pub local_port: Option<u16>,
    /// The readiness path (`spec.readiness.path`), when set.
    pub readiness_path: Option<String>,
    /// Service Connect, when the service or FleetDefaults turns it on.
    pub service_connect: Option<ValidServiceConnect>,
    /// The target groups the service's tasks register in, in manifest order.
    pub load_balancers: Vec<ValidLoadBalancer>,
    /// `healthCheckGracePeriodSeconds`: as written, else the health check's start period when a load balancer
    /// is attached, else none.
    pub health_check_grace_period_secs: Option<u32>,
    /// MCP verification, with its defaults.
    pub mcp: ValidMcp,
    /// `transport: stdio`: the server's command and how the bridge serves it.
    pub stdio: Option<ValidStdio>,
    /// Application Auto Scaling, when on: `replicas` is then only the count a new service starts with.
    pub autoscaling: Option<ValidAutoscaling>,
}

/// A stdio server behind mcpfleet's bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidStdio {
    /// The server's own command in its image, program first; `None`: the image's `Entrypoint` + `Cmd`, read from
    /// its registry at resolution (an image outside Amazon ECR).
    pub command: Option<Vec<String>>,
    /// The mcpfleet image the bridge executable is copied from, pinned by digest.
    pub bridge_image: ImageRef,
    pub mode: BridgeMode,
    pub max_sessions: u32,
    pub idle_timeout_secs: u32,
}

impl ValidStdio {
    /// `bridge.idleTimeout` by default.
    pub const DEFAULT_IDLE_TIMEOUT_SECS: u32 = 600;

    /// `bridge.maxSessions` by default: processes are dear, shared-mode sessions cheap (the bridge's own default).
    pub fn default_max_sessions(mode: BridgeMode) -> u32 {
        match mode {
            BridgeMode::Shared => 1024,
            BridgeMode::PerSession => 32,
        }
    }
}

/// `spec.autoscaling` with its defaults applied: at least one target, 1 <= min <= max <= 5000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAutoscaling {
    pub min: u32,
    pub max: u32,
    /// Percent.
    pub target_cpu: Option<u32>,
    /// Percent.
    pub target_memory: Option<u32>,
    /// Requests per minute per task, on the first target group of `load_balancers`.
    pub requests_per_target: Option<u32>,
    pub scale_in_cooldown_secs: u32,
    pub scale_out_cooldown_secs: u32,
}

impl ValidAutoscaling {
    /// `scaleInCooldown` when the manifest does not set one.
    pub const DEFAULT_SCALE_IN_COOLDOWN_SECS: u32 = 300;
    /// `scaleOutCooldown` when the manifest does not set one.
    pub const DEFAULT_SCALE_OUT_COOLDOWN_SECS: u32 = 60;
}

/// `spec.mcp` merged with FleetDefaults and defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidMcp {
    /// The transport the server speaks (`spec.transport`): how it is probed.
    pub transport: Transport,
    /// The container port it serves on (`spec.port`): where a task is probed.
    pub port: u16,
    /// The MCP endpoint's HTTP path (`/mcp`, or `/sse` for the sse transport, unless written).
    pub path: String,
    pub verify: Verify,
    /// Tool names every verified target must offer, in manifest order, without repeats.
    pub expect_tools: Vec<String>,
    pub allow_tool_removal: bool,
    /// Time one probe may take.
    pub timeout_secs: u32,
}

impl ValidMcp {
    /// `mcp.timeout` when neither the service nor FleetDefaults sets one.
    pub const DEFAULT_TIMEOUT_SECS: u32 = 10;

    /// The endpoint path a transport serves by default.
    pub fn default_path(transport: Transport) -> &'static str {
        match transport.served() {
            Transport::Sse => "/sse",
            Transport::StreamableHttp | Transport::Stdio => "/mcp",
        }
    }

    /// No verification, the transport's default path: a service without an `mcp` block.
    pub fn unverified(transport: Transport, port: u16) -> ValidMcp {
        ValidMcp {
            transport,
            port,
            path: Self::default_path(transport).to_string(),
            verify: Verify::None,
            expect_tools: vec![],
            allow_tool_removal: false,
            timeout_secs: Self::DEFAULT_TIMEOUT_SECS,
        }
    }

    /// Whether rollouts of the service are verified.
    pub fn verified(&self) -> bool {
        self.verify != Verify::None
    }
}

/// One `spec.expose.loadBalancers` entry with its default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidLoadBalancer {
    /// Target group name or ARN, as written (resolution turns a name into its ARN).
    pub target_group: String,
    pub container_port: u16,
}

/// Service Connect with its defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidServiceConnect {
    /// Cloud Map namespace name or ARN, as written.
    pub namespace: String,
    /// The client alias (a DNS label).
    pub dns_name: String,
    /// The port clients connect to.
    pub port: u16,
}

/// A Secrets Manager reference as written (name or ARN), with optional JSON key and version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    pub secret: String,
    pub key: Option<String>,
    pub version_stage: Option<String>,
    pub version_id: Option<String>,
}

impl SecretRef {
    /// ECS `valueFrom` for a secret whose ARN is `arn`: `ARN[:key:stage:id]`, trailing empty parts omitted as ECS
    /// documents (`ARN:key::` when only a key is given).
    pub fn value_from(&self, arn: &str) -> String {
        if self.key.is_none() && self.version_stage.is_none() && self.version_id.is_none() {
            return arn.to_string();
        }
        format!(
            "{arn}:{}:{}:{}",
            self.key.as_deref().unwrap_or(""),
            self.version_stage.as_deref().unwrap_or(""),
            self.version_id.as_deref().unwrap_or("")
        )
    }
}

/// How the container is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthProbe {
    /// HTTP GET of `localhost:<port><path>` by an in-container program.
    Http { path: String, probe: Probe },
    /// An explicit ECS command (`CMD …` or `CMD-SHELL …`).
    Command(Vec<String>),
    /// A stdio service: the bridge's own `/health`, probed by the bridge executable (`mcpfleet healthcheck`), so
    /// the server image needs no shell, curl or Python.
    Bridge,
}

/// A health check with ECS's units (seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidHealthCheck {
    pub probe: HealthProbe,
    pub interval_secs: u32,
    pub timeout_secs: u32,
    pub retries: u32,
    pub start_period_secs: u32,
}

/// awsvpc settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidNetwork {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
}

/// awslogs settings with the region and prefix decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidLogging {
    pub group: String,
    pub region: String,
    pub stream_prefix: String,
}

/// Deployment settings with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRollout {
    pub max_percent: u32,
    pub min_healthy_percent: u32,
    pub progress_deadline_secs: u64,
    pub auto_rollback: bool,
    pub history_limit: u32,
}

impl ValidRollout {
    /// `progressDeadline` when neither the service nor FleetDefaults sets one.
    pub const DEFAULT_PROGRESS_DEADLINE_SECS: u64 = 600;
    /// `autoRollback` by default.
    pub const DEFAULT_AUTO_ROLLBACK: bool = true;
    /// `historyLimit` by default.
    pub const DEFAULT_HISTORY_LIMIT: u32 = 10;
}

/// Fargate's CPU sizes and the memory (MiB) each allows: (cpu, min, max, step).
pub const FARGATE_SIZES: [(u32, u32, u32, u32); 7] = [
    (256, 512, 2048, 0),
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122880, 8192),
];

/// Whether `memory` MiB is a valid Fargate pairing for `cpu` units.
pub fn fargate_pair_ok(cpu: u32, memory: u32) -> bool {
    match FARGATE_SIZES.iter().find(|(c, ..)| *c == cpu) {
        Some((256, ..)) => matches!(memory, 512 | 1024 | 2048),
        Some((_, min, max, step)) => memory >= *min && memory <= *max && (memory - min).is_multiple_of(*step),
        None => false,
    }
}
