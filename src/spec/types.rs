//! The manifest types exactly as users write them (apiVersion `mcpfleet.io/v1alpha1`).
//!
//! These types own the wire format: serde reads them (unknown fields rejected) and schemars describes them for
//! editors and the committed JSON Schema. Everything here is optional where FleetDefaults may supply it; the
//! validated, defaults-merged form that the rest of mcpfleet consumes lives in `spec::valid`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// The only apiVersion this release understands.
pub const API_VERSION: &str = "mcpfleet.io/v1alpha1";

/// `apiVersion` of every document.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "mcpfleet.io/v1alpha1")]
    V1alpha1,
}

/// `kind: FleetDefaults`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub enum FleetDefaultsKind {
    FleetDefaults,
}

/// `kind: McpService`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub enum McpServiceKind {
    McpService,
}

/// Any document mcpfleet accepts: the root of the JSON Schema. Loading dispatches on `kind` itself (for precise
/// errors), so this type only describes.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
#[schemars(title = "mcpfleet manifest (mcpfleet.io/v1alpha1)")]
pub enum Manifest {
    FleetDefaults(Box<FleetDefaultsDoc>),
    McpService(Box<McpServiceDoc>),
}

/// Defaults for every McpService of the fleet (at most one per fleet).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetDefaultsDoc {
    pub api_version: ApiVersion,
    pub kind: FleetDefaultsKind,
    #[serde(default)]
    pub metadata: Option<DefaultsMetadata>,
    pub spec: FleetDefaultsSpec,
}

/// Optional metadata of a FleetDefaults document.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultsMetadata {
    /// A name for humans; not used by ECS.
    pub name: Option<String>,
}

/// Fields every McpService inherits unless it sets them itself.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetDefaultsSpec {
    /// ECS cluster name.
    pub cluster: Option<String>,
    /// awsvpc networking for every service.
    pub network: Option<Network>,
    /// IAM role ECS uses to pull the image, read secrets and write logs.
    pub execution_role_arn: Option<String>,
    /// IAM role the MCP server itself runs as.
    pub task_role_arn: Option<String>,
    /// CloudWatch Logs (awslogs) settings; merged field by field.
    pub logging: Option<Logging>,
    /// Default CPU architecture.
    pub architecture: Option<Architecture>,
    /// Default graceful-stop time, e.g. `30s` (2s..120s on Fargate).
    pub stop_timeout: Option<DurationStr>,
    /// Default rollout settings; merged field by field.
    pub rollout: Option<Rollout>,
    /// Root filesystem read-only (with a writable /tmp); default true.
    pub read_only_root_filesystem: Option<bool>,
    /// What a rotation of a secret the services read does to them: `restart` (default) or `ignore`.
    pub secret_rotation: Option<SecretRotation>,
    /// Local stack only: add a Redis session store to the rendered docker-compose.yml.
    pub session_store: Option<SessionStore>,
    /// How every service is reached; FleetDefaults may only set the Service Connect namespace.
    pub expose: Option<DefaultsExpose>,
    /// MCP verification for every service: FleetDefaults may set `verify` and `timeout`.
    pub mcp: Option<DefaultsMcp>,
    /// The mcpfleet image whose static executable bridges `transport: stdio` servers, pinned by digest
    /// (`repo@sha256:…`); default the controller's `--bridge-image`.
    pub bridge_image: Option<String>,
}

/// `mcp` in FleetDefaults: how every service's rollouts are verified, unless a service says otherwise.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultsMcp {
    /// `none`, `tasks` or `endpoint`.
    pub verify: Option<Verify>,
    /// Time one probe may take (1s..60s, default 10s).
    pub timeout: Option<DurationStr>,
}

/// `expose` in FleetDefaults: every service joins one Service Connect namespace.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultsExpose {
    /// Service Connect for every service of the fleet.
    pub service_connect: Option<DefaultsServiceConnect>,
}

/// The Service Connect setting FleetDefaults may carry.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultsServiceConnect {
    /// Cloud Map namespace name (e.g. `mcp.internal`) or `arn:aws:servicediscovery:…:namespace/ns-…` ARN.
    pub namespace: String,
}

/// One MCP server, deployed as one ECS service and task-definition family.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct McpServiceDoc {
    pub api_version: ApiVersion,
    pub kind: McpServiceKind,
    pub metadata: Metadata,
    pub spec: McpServiceSpec,
}

/// Name and labels of a service.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// ECS service name and task-definition family: 1-255 letters, digits, `-`, `_`.
    #[schemars(pattern(r"^[A-Za-z0-9_-]{1,255}$"))]
    pub name: String,
    /// Copied to the service and task definition as AWS tags.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The desired state of one MCP server.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct McpServiceSpec {
    /// ECS cluster name (may come from FleetDefaults).
    pub cluster: Option<String>,
    /// Image reference with a tag (resolved to its digest before deploy) or an `@sha256:` digest.
    pub image: String,
    /// `auto` picks arm64 when the image index has a linux/arm64 variant.
    pub architecture: Option<Architecture>,
    /// Fargate task CPU units (256, 512, 1024, 2048, 4096, 8192, 16384).
    pub cpu: u32,
    /// Task memory in MiB; must pair with `cpu` as Fargate allows.
    pub memory: u32,
    /// Desired task count (default 1).
    pub replicas: Option<u32>,
    /// Container port the MCP server listens on.
    pub port: u32,
    /// MCP transport the server speaks (default streamable-http); `stdio` runs it behind mcpfleet's bridge.
    pub transport: Option<Transport>,
    /// `transport: stdio` only: the server's own command in its image, program and arguments. Default: the image
    /// config's Entrypoint + Cmd for the platform it runs on, read from its registry (required for an image in
    /// Amazon ECR, whose config mcpfleet cannot read).
    pub command: Option<Vec<String>>,
    /// `transport: stdio` only: how the bridge serves the server.
    pub bridge: Option<Bridge>,
    /// Plain environment variables. Credentials belong in `secrets`.
    #[serde(default)]
    pub env: BTreeMap<String, EnvValue>,
    /// Environment variables filled from Secrets Manager, by name/ARN or `{secret, key, versionStage, versionId}`.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Container health check.
    pub health_check: Option<HealthCheck>,
    /// Time ECS waits after SIGTERM before SIGKILL, e.g. `30s` (2s..120s); default 30s.
    pub stop_timeout: Option<DurationStr>,
    /// IAM role the MCP server runs as.
    pub task_role_arn: Option<String>,
    /// IAM role ECS uses to pull the image, read secrets and write logs.
    pub execution_role_arn: Option<String>,
    /// Credentials ECS pulls an image of a private registry outside Amazon ECR with: a Secrets Manager secret
    /// (name or ARN; resolved to its ARN, its value never read) holding `{"username": …, "password": …}`,
    /// rendered as the container's `repositoryCredentials`. The execution role must be allowed to read it.
    pub registry_credentials: Option<String>,
    /// awsvpc networking (replaces FleetDefaults' network as a whole).
    pub network: Option<Network>,
    /// CloudWatch Logs settings (merged field by field with FleetDefaults).
    pub logging: Option<Logging>,
    /// Deployment settings (merged field by field with FleetDefaults).
    pub rollout: Option<Rollout>,
    /// Root filesystem read-only (with a writable /tmp); default true.
    pub read_only_root_filesystem: Option<bool>,
    /// What a rotation of a secret the service reads does: `restart` (default: a new deployment, so the tasks read
    /// the new value) or `ignore` (the tasks keep the value they started with until the next deployment).
    pub secret_rotation: Option<SecretRotation>,
    /// Local stack only (`render --format compose`); ECS ignores it.
    pub local: Option<Local>,
    /// The readiness probe (dependencies reachable), as opposed to the liveness `healthCheck`.
    pub readiness: Option<Readiness>,
    /// How agents reach the service.
    pub expose: Option<Expose>,
    /// What MCP clients need of the server, checked before a rollout counts as good.
    pub mcp: Option<Mcp>,
    /// Application Auto Scaling: the desired count moves within [min, max] to keep the targets.
    pub autoscaling: Option<Autoscaling>,
}

/// Target tracking on the service's desired count: Application Auto Scaling adds tasks when a metric is above its
/// target and removes them when it is below, within [min, max]. While it is on, the count is the autoscaler's:
/// `replicas` is only the count a new service starts with.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Autoscaling {
    /// The fewest tasks (1..5000).
    #[schemars(range(min = 1, max = 5000))]
    pub min: u32,
    /// The most tasks (min..5000).
    #[schemars(range(min = 1, max = 5000))]
    pub max: u32,
    /// Average CPU utilisation to keep, percent (1..100): ECSServiceAverageCPUUtilization.
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu: Option<u32>,
    /// Average memory utilisation to keep, percent (1..100): ECSServiceAverageMemoryUtilization.
    #[schemars(range(min = 1, max = 100))]
    pub target_memory: Option<u32>,
    /// Requests per minute per task to keep: ALBRequestCountPerTarget of the first target group in
    /// `expose.loadBalancers` (which an Application Load Balancer must route to).
    #[schemars(range(min = 1))]
    pub requests_per_target: Option<u32>,
    /// Time after a scale-in before the next one, e.g. `300s` (0s..1h, default 300s).
    pub scale_in_cooldown: Option<DurationStr>,
    /// Time after a scale-out before the next one, e.g. `60s` (0s..1h, default 60s).
    pub scale_out_cooldown: Option<DurationStr>,
}

/// MCP-aware verification: the server's endpoint, and what a rollout must show MCP clients before it is good.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mcp {
    /// HTTP path of the MCP endpoint; default `/mcp` for streamable-http, `/sse` for sse.
    pub path: Option<String>,
    /// What a rollout must pass besides ECS's own checks: `none` (default), `tasks` (every RUNNING task of the
    /// new revision, at its private IP) or `endpoint` (the service's load balancer or Service Connect URL). May
    /// come from FleetDefaults.
    pub verify: Option<Verify>,
    /// Tool names the server must offer (`tools/list`).
    #[serde(default)]
    pub expect_tools: Vec<String>,
    /// Accept a revision that no longer offers a tool the last good revision offered (default false).
    pub allow_tool_removal: Option<bool>,
    /// Time one probe may take (1s..60s, default 10s).
    pub timeout: Option<DurationStr>,
}

/// Where a rollout's MCP verification connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// No MCP verification: ECS's checks alone decide.
    None,
    /// Every RUNNING task of the new revision, at its private IP and `spec.port`.
    Tasks,
    /// The service's endpoint: its load balancer's DNS name, else its Service Connect URL.
    Endpoint,
}

impl Verify {
    /// The word as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::None => "none",
            Verify::Tasks => "tasks",
            Verify::Endpoint => "endpoint",
        }
    }
}

/// Readiness: the HTTP path that answers 2xx only when the server can serve (its dependencies are reachable).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Readiness {
    /// HTTP path, e.g. `/ready`.
    pub path: String,
}

/// How agents reach a service.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expose {
    /// Existing ALB/NLB target groups (made by your IaC) the service's tasks register in, 0..5.
    #[serde(default)]
    #[schemars(length(max = 5))]
    pub load_balancers: Vec<LoadBalancer>,
    /// ECS Service Connect, for agents inside the VPC.
    pub service_connect: Option<ServiceConnect>,
    /// Time ECS ignores failing load-balancer health checks of a new task, e.g. `60s` (0s..2147483647s); default
    /// `healthCheck.startPeriod` when a load balancer is attached.
    pub health_check_grace_period: Option<DurationStr>,
}

/// One target group the service's tasks register in.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadBalancer {
    /// Target group name (resolved to its ARN before deploy) or `arn:aws:elasticloadbalancing:…:targetgroup/NAME/ID`.
    pub target_group: String,
    /// The container port the target group routes to; default `spec.port`.
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: Option<u32>,
}

/// ECS Service Connect: a client alias in a Cloud Map namespace.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceConnect {
    /// Cloud Map namespace name or ARN (may come from FleetDefaults).
    pub namespace: Option<String>,
    /// Client alias: a DNS label (1-63 lowercase letters, digits, `-`); default the service name.
    pub dns_name: Option<String>,
    /// Port clients connect to (1..65535); default `spec.port`.
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u32>,
}

/// How the service runs in the local stack.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Local {
    /// Host port on 127.0.0.1 (1024..65535, unique in the fleet); default: a port derived from the service name.
    #[schemars(range(min = 1024, max = 65535))]
    pub port: Option<u32>,
}

/// What a rotation of a secret a service reads does to it. ECS reads `secrets` only when a task starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretRotation {
    /// Start a new deployment of the same revision, so every task reads the new version.
    #[default]
    Restart,
    /// Leave the tasks running: they keep the old value until the next deployment.
    Ignore,
}

/// CPU architecture choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    Auto,
    Arm64,
    X86_64,
}

/// MCP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    StreamableHttp,
    Sse,
    /// The server speaks MCP on stdin/stdout; mcpfleet's bridge serves it as streamable-http.
    Stdio,
}

impl Transport {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::StreamableHttp => "streamable-http",
            Transport::Sse => "sse",
            Transport::Stdio => "stdio",
        }
    }

    /// The transport clients connect with (tags, labels, probes): a stdio server is reached through its bridge.
    pub fn served(self) -> Transport {
        match self {
            Transport::Stdio => Transport::StreamableHttp,
            other => other,
        }
    }
}

/// How mcpfleet's bridge serves a stdio server.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bridge {
    /// `shared` (default): one server process for every client; `per-session`: one per MCP session.
    pub mode: Option<BridgeMode>,
    /// The most MCP sessions at once, 1..10000 (default 32 per-session, 1024 shared).
    pub max_sessions: Option<u32>,
    /// A session without requests for this long is closed (per-session: its process stopped); 10s..24h, default 10m.
    pub idle_timeout: Option<DurationStr>,
}

/// How clients map to a stdio server's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BridgeMode {
    Shared,
    PerSession,
}

impl BridgeMode {
    /// The word as written in manifests and on the bridge's command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BridgeMode::Shared => "shared",
            BridgeMode::PerSession => "per-session",
        }
    }
}

/// Session store for the local stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStore {
    Redis,
}

/// awsvpc network configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Network {
    /// Subnet ids (1-16), e.g. `subnet-0abc1234`.
    pub subnets: Vec<String>,
    /// Security group ids (1-5), e.g. `sg-0abc1234`.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Give tasks a public IP (default false).
    #[serde(default)]
    pub assign_public_ip: bool,
}

/// awslogs log driver settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Logging {
    /// CloudWatch Logs group.
    pub group: Option<String>,
    /// Region of the log group (default: the region of the ECR image).
    pub region: Option<String>,
    /// Stream prefix (default: the service name).
    pub stream_prefix: Option<String>,
}

/// Container health check: either `path` (an HTTP probe run inside the container) or `command` in ECS form.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthCheck {
    /// HTTP path probed on `localhost:<port>`, e.g. `/health`.
    pub path: Option<String>,
    /// Program that performs the HTTP probe (default python).
    pub probe: Option<Probe>,
    /// Explicit ECS command, e.g. `["CMD", "/bin/health"]` or `["CMD-SHELL", "..."]`.
    pub command: Option<Vec<String>>,
    /// Time between checks (5s..300s, default 30s).
    pub interval: Option<DurationStr>,
    /// Time a check may take (2s..60s, default 5s; below interval).
    pub timeout: Option<DurationStr>,
    /// Grace period before failures count (0s..300s, default 0s).
    pub start_period: Option<DurationStr>,
    /// Consecutive failures before unhealthy (1..10, default 3).
    pub retries: Option<u32>,
}

/// The in-container program used for a `path` health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    Python,
    Curl,
    Wget,
}

/// Deployment settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rollout {
    /// Upper bound of running tasks during a deployment, percent of replicas (100..200, default 200).
    pub max_percent: Option<u32>,
    /// Lower bound of healthy tasks during a deployment, percent (0..100, default 100).
    pub min_healthy_percent: Option<u32>,
    /// A rollout not complete after this long is failed (default 10m).
    pub progress_deadline: Option<DurationStr>,
    /// Roll back to the last good revision when a rollout fails (default true).
    pub auto_rollback: Option<bool>,
    /// Task-definition revisions kept per family (1..100, default 10).
    pub history_limit: Option<u32>,
}

/// A duration written as a string: `30s`, `10m`, `1m30s`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct DurationStr(#[schemars(pattern(r"^\s*([0-9]+\s*(ms|s|m|h)\s*)+$"))] pub String);

impl DurationStr {
    /// Parses exactly the grammar of the schema's pattern: one or more `<digits><unit>` terms, unit `ms`, `s`,
    /// `m` (minutes) or `h`, blanks allowed around them. Editors validate with that pattern, so anything it refuses
    /// (`2min`, `1d`, `1M`) is refused here too rather than meaning something the editor called an error.
    /// Values too large to count saturate, so range checks report them as above the maximum.
    pub fn parse(&self) -> Option<std::time::Duration> {
        let mut rest = self.0.trim();
        if rest.is_empty() {
            return None;
        }
        let mut millis: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return None;
            }
            let n: u64 = rest[..digits].parse().unwrap_or(u64::MAX);
            rest = rest[digits..].trim_start();
            let (unit, len) = if rest.starts_with("ms") {
                (1, 2)
            } else if rest.starts_with('s') {
                (1_000, 1)
            } else if rest.starts_with('m') {
                (60_000, 1)
            } else if rest.starts_with('h') {
                (3_600_000, 1)
            } else {
                return None;
            };
            millis = millis.saturating_add(n.saturating_mul(unit));
            rest = rest[len..].trim_start();
        }
        // A saturated sum is kept a whole number of seconds, so it is reported as too long, not as fractional.
        Some(std::time::Duration::from_millis(if millis == u64::MAX { millis - millis % 1000 } else { millis }))
    }
}

/// An environment value; numbers and booleans are accepted and passed on as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvValue(pub String);

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Int(i64),
            Float(f64),
            Bool(bool),
        }
        // Deserialize via a JSON value so a wrong type gets one plain sentence, not serde's untagged-enum dump.
        let value = serde_json::Value::deserialize(d)?;
        match serde_json::from_value::<Raw>(value.clone()) {
            Ok(Raw::Str(s)) => Ok(EnvValue(s)),
            Ok(Raw::Int(i)) => Ok(EnvValue(i.to_string())),
            Ok(Raw::Float(f)) => Ok(EnvValue(f.to_string())),
            Ok(Raw::Bool(b)) => Ok(EnvValue(b.to_string())),
            Err(_) => Err(serde::de::Error::custom(format!(
                "invalid type: {}, expected a string, number or boolean",
                json_type(&value)
            ))),
        }
    }
}

impl JsonSchema for EnvValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EnvValue".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// Where a secret env var comes from.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum SecretSource {
    /// A secret name (`prod/mcp/db-password`) or full ARN; the whole secret value.
    Name(String),
    /// One JSON key or version of a secret.
    Ref(SecretRefSpec),
}

/// A secret with an optional JSON key and version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretRefSpec {
    /// Secret name or ARN.
    pub secret: String,
    /// A key of the secret's JSON value.
    pub key: Option<String>,
    /// Version stage, e.g. `AWSCURRENT`.
    pub version_stage: Option<String>,
    /// Version id.
    pub version_id: Option<String>,
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        match value {
            serde_json::Value::String(s) => Ok(SecretSource::Name(s)),
            serde_json::Value::Object(_) => {
                serde_json::from_value(value).map(SecretSource::Ref).map_err(serde::de::Error::custom)
            }
            other => Err(serde::de::Error::custom(format!(
                "invalid type: {}, expected a secret name/ARN or a mapping {{secret, key, versionStage, versionId}}",
                json_type(&other)
            ))),
        }
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "sequence",
        serde_json::Value::Object(_) => "map",
    }
}
