//! The simulated world: ECS clusters, services and task definitions, an image registry, a secret store and ELB
//! target groups (with the load balancer that routes to them), on a virtual clock. Everything here is plain data
//! plus ECS's rules, so it serializes to the `--sim-state` file.
//!
//! UpdateService starts a deployment for a new revision, and for new networking on the same one (network
//! configuration, load balancers, Service Connect), as ECS does. Each deployment records what it deploys: ECS's
//! *service revision* (the task definition with that networking, see [`Deployed`]). Deployments progress in
//! ticks of [`TICK_MS`]: a task launched by a deployment becomes healthy (or fails its health checks, for images
//! pushed with `--unhealthy`) [`TASK_SETTLE_MS`] later; behind its deployment's load balancer it also has to pass
//! the target group's health check, which tasks of images pushed with `--unready` never do, so ECS stops them as
//! ELB-unhealthy; ECS's maximumPercent and minimumHealthyPercent bound how many tasks run during a rollout; the
//! deployment circuit breaker fails a rollout after half its desired count of failed tasks (min 3, max 200) and,
//! with rollback on, sends the service back to the service revision of the last deployment that completed —
//! silently, as ECS does, and even when that revision runs the same task definition with other networking.
//! Application Auto Scaling's targets and policies live here too; `sim::scaling` moves the desired counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::{
    AWSCURRENT, BackendError, Deployment, DeploymentStatus, ImageInfo, ImageSelector, LoadBalancer, LoadBalancerType,
    Op, RolloutState, SecretInfo, ServiceEvent, ServiceState, ServiceStatus, ServiceUpdate, TargetGroup,
    TargetProtocol, TargetType, TaskDefinition, TaskInfo, TaskStatus, TdStatus,
};
use crate::render::ecs::{
    CircuitBreaker, DeploymentConfiguration, LoadBalancer as ServiceLoadBalancer, NetworkConfiguration,
    ServiceConnectConfiguration, ServiceInput, TaskDefinitionInput,
};

/// Re-exported where the sim always had it; the rule itself is ECS's and lives with the ports.
pub use crate::backend::breaker_threshold;

/// Tags ECS keeps on one resource.
use crate::state::MAX_TAGS;

/// Granularity of the simulation.
pub const TICK_MS: u64 = 5_000;
/// Time from launching a task to it passing (or failing) its health checks.
pub const TASK_SETTLE_MS: u64 = 20_000;
/// Events kept per service.
const MAX_EVENTS: usize = 50;
/// The virtual clock starts at 2026-01-01T00:00:00Z.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// One image in a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimImage {
    pub platforms: Vec<String>,
    /// Tasks of this image fail their health checks.
    pub unhealthy: bool,
    /// Time its tasks take to pass (or fail) health checks, when not [`TASK_SETTLE_MS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_ms: Option<u64>,
    /// Its tasks pass the container health check but never a target group's (alive, never ready); absent from
    /// older state files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unready: bool,
    /// The real MCP endpoint its running tasks stand for (`sim push --serves`): their private IPv4 address and
    /// port are its host and port. Tasks of other images have no address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serves: Option<ServedUrl>,
}

/// The URL of a real MCP server that tasks of a sim image stand for. The sim never answers MCP itself: it only
/// reports the URL's host and port as its tasks' address, so a probe of a task reaches the real server. Only
/// `http://` with an IPv4 host qualifies, since that is what ECS reports of a task (`privateIPv4Address`) and how
/// mcpfleet reaches one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServedUrl {
    url: String,
    ip: std::net::Ipv4Addr,
    port: u16,
}

impl ServedUrl {
    pub fn parse(text: &str) -> Result<ServedUrl, String> {
        let url = reqwest::Url::parse(text).map_err(|e| format!("--serves `{text}`: {e}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "--serves `{text}`: must be an http:// URL (tasks are reached over plain HTTP at their private address)"
            ));
        }
        let Some(ip) = url.host_str().and_then(|h| h.parse::<std::net::Ipv4Addr>().ok()) else {
            return Err(format!(
                "--serves `{text}`: the host must be an IPv4 address such as 127.0.0.1 (it becomes the tasks' \
                 privateIPv4Address)"
            ));
        };
        let port = url.port_or_known_default().unwrap_or(80);
        Ok(ServedUrl { url: text.to_string(), ip, port })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn ip(&self) -> std::net::Ipv4Addr {
        self.ip
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl TryFrom<String> for ServedUrl {
    type Error = String;
    fn try_from(s: String) -> Result<ServedUrl, String> {
        ServedUrl::parse(&s)
    }
}

impl From<ServedUrl> for String {
    fn from(s: ServedUrl) -> String {
        s.url
    }
}

/// A repository: tags point at digests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    pub tags: BTreeMap<String, String>,
    pub images: BTreeMap<String, SimImage>,
}

/// A service with the simulation's private bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimService {
    pub state: ServiceState,
    /// Launch times of tasks not yet settled, per deployment id.
    pub pending: BTreeMap<String, Vec<u64>>,
    /// The task definition of the last deployment that completed (where the circuit breaker rolls back to).
    pub last_completed: Option<String>,
    /// The networking of the last deployment that completed, which the circuit breaker restores with its task
    /// definition; absent from older state files (then the service's networking of the moment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_completed_networking: Option<Deployed>,
    /// What each listed deployment deploys besides its task definition, by deployment id; a deployment missing
    /// here (an older state file) runs the service's networking of the moment. Boxed: a map's node has room for
    /// eleven values, and a service lists one or two, so inline `Deployed`s left about 1.9 KB of empty slots per
    /// service (19 MB of a 10,000-service world).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deployed: BTreeMap<String, Box<Deployed>>,
    /// Tasks that stopped, newest first (the last [`MAX_STOPPED`]), as ListTasks/DescribeTasks report them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopped: Vec<StoppedTask>,
    /// The `clientToken` the service was created with: a CreateService repeating it answers this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// The networking a deployment starts its tasks with: with its task definition, ECS's service revision. ECS
/// "rolls back the service deployment to the last successfully deployed service revision", and a service revision
/// holds the task definition, the network configuration, the load balancers and Service Connect, but not the
/// health-check grace period, which is a setting of the service that starts no deployment
/// (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-revision.html>, "Properties included in
/// an Amazon ECS service revision"; UpdateService's `healthCheckGracePeriodSeconds`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployed {
    pub network_configuration: NetworkConfiguration,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancers: Vec<ServiceLoadBalancer>,
    /// As the service reports it for this deployment (`enabled: false` once turned off; absent if never on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_connect_configuration: Option<ServiceConnectConfiguration>,
}

impl Deployed {
    /// The networking a service runs now.
    fn of(s: &ServiceState) -> Deployed {
        Deployed {
            network_configuration: s.network_configuration.clone(),
            load_balancers: s.load_balancers.clone(),
            service_connect_configuration: s.service_connect_configuration.clone(),
        }
    }

    /// Makes it the service's networking, as reported.
    fn apply_to(&self, s: &mut ServiceState) {
        s.network_configuration.clone_from(&self.network_configuration);
        s.load_balancers.clone_from(&self.load_balancers);
        s.service_connect_configuration.clone_from(&self.service_connect_configuration);
    }
}

/// A task that stopped, with ECS's reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoppedTask {
    pub arn: String,
    pub task_definition: String,
    pub stopped_reason: String,
    pub container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_reason: Option<String>,
    pub stopped_at_ms: u64,
}

/// Stopped tasks kept per service (ECS shows stopped tasks for a while, then forgets them).
const MAX_STOPPED: usize = 100;

/// The sim's verdict on a task of an `--unhealthy` image.
const CONTAINER_UNHEALTHY: &str = "failed container health checks";

/// ECS's words for a task that stopped for `why` (the sim's health verdict): (stoppedReason, container reason).
fn stop_reasons(why: &str) -> (String, Option<String>) {
    if why == CONTAINER_UNHEALTHY {
        ("Task failed container health checks".into(), None)
    } else if why.starts_with("CannotPullContainerError") {
        (why.to_string(), Some(why.to_string()))
    } else {
        (why.to_string(), None)
    }
}

/// An ECS token bucket's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketState {
    pub tokens: f64,
    pub updated_ms: u64,
}

/// The whole simulated account and region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct World {
    pub now_ms: u64,
    pub account: String,
    pub region: String,
    /// Source of ids and digests, so runs are reproducible.
    pub seq: u64,
    /// Keyed by `cluster/name`.
    #[serde(deserialize_with = "packed_map")]
    pub services: BTreeMap<String, SimService>,
    #[serde(deserialize_with = "packed_map")]
    pub families: BTreeMap<String, Vec<TaskDefinition>>,
    /// Keyed by `registry/repository`.
    pub repositories: BTreeMap<String, Repository>,
    /// Secret name → ARN.
    pub secrets: BTreeMap<String, String>,
    /// Secret name → its versions, once `mcpfleet sim secret NAME --rotate` moved its AWSCURRENT stage (a secret
    /// never rotated holds its first version, derived from its ARN); absent from older state files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_versions: BTreeMap<String, SimSecretVersions>,
    /// ECS API token buckets by category; empty until first used.
    #[serde(default)]
    pub buckets: BTreeMap<String, BucketState>,
    /// Target group name → target group (made by `mcpfleet sim target-group`); absent from older state files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_groups: BTreeMap<String, TargetGroup>,
    /// Load balancer ARN → load balancer: the one ALB that routes to the sim's target groups.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    /// Application Auto Scaling's targets, by resource id (`service/<cluster>/<service>`), with their policies;
    /// absent from older state files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scalable_targets: BTreeMap<String, super::scaling::SimScalableTarget>,
    /// What `mcpfleet sim load` set, by `cluster/name`: the work a service's metrics come from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub loads: BTreeMap<String, super::scaling::Load>,
    /// Which journal (`<state>.journal`) applies to this snapshot: bumped each time a journal is folded in, so a
    /// journal already folded in is recognised (see `sim::journal`); absent (0) from older state files.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub journal_generation: u64,
}

/// Reads a map of the state file into full nodes: a `BTreeMap` that receives its keys in order one by one splits
/// each node it fills and leaves the left half empty, while one built from all its entries at once fills every
/// node. A node has room for eleven entries, and a service takes about half a kilobyte inline, so that is about
/// 5 MB of a 10,000-service world. Keys repeated in the file keep the last value, as one by one they would.
fn packed_map<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Entries<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Entries<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    d.deserialize_map(Entries(std::marker::PhantomData)).map(BTreeMap::from_iter)
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Which versions of a rotated secret hold AWSCURRENT and AWSPREVIOUS, and whether its rotation broke it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimSecretVersions {
    pub current: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Set by `--rotate --breaks`: tasks started since, of services that read the secret's AWSCURRENT, fail at
    /// start (as with a value the server cannot use, or a rotation that left the secret unreadable).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub broken: bool,
}

/// The ALB the sim's target groups are attached to, made with the first one that wants a load balancer.
pub const SIM_LOAD_BALANCER: &str = "mcpfleet-sim";

/// What `mcpfleet sim target-group` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupSpec {
    pub name: String,
    /// The health check's path (ELB's default is `/`).
    pub health_check_path: String,
    pub target_type: TargetType,
    /// Whether the sim's ALB routes to it (a listener forwards to it).
    pub load_balancer: bool,
}

/// ELB's rules for a target group name: 1 to 32 letters, digits and hyphens, not starting or ending with a hyphen.
fn check_target_group_name(name: &str) -> Result<(), String> {
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if name.is_empty() || name.len() > 32 || !ok_chars || name.starts_with('-') || name.ends_with('-') {
        return Err(format!(
            "target group name `{name}`: 1 to 32 letters, digits and hyphens, not starting or ending with a hyphen"
        ));
    }
    Ok(())
}

/// ELB's rule for a health-check path: starts with `/`, at most 1024 printable ASCII characters.
fn check_health_check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.len() > 1024 || !path.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "health-check path `{path}`: must start with `/` and be at most 1024 printable ASCII characters"
        ));
    }
    Ok(())
}

impl Default for World {
    fn default() -> World {
        World::new("123456789012", "us-east-1")
    }
}

pub(super) fn err_invalid(op: Op, message: impl Into<String>) -> BackendError {
    BackendError::Invalid { operation: op, message: message.into() }
}

pub(super) fn err_not_found(op: Op, message: impl Into<String>) -> BackendError {
    BackendError::NotFound { operation: op, message: message.into() }
}

pub(super) fn service_key(cluster: &str, name: &str) -> String {
    format!("{cluster}/{name}")
}

impl World {
    pub fn new(account: &str, region: &str) -> World {
        World {
            now_ms: EPOCH_MS,
            account: account.into(),
            region: region.into(),
            seq: 0,
            services: BTreeMap::new(),
            families: BTreeMap::new(),
            repositories: BTreeMap::new(),
            secrets: BTreeMap::new(),
            secret_versions: BTreeMap::new(),
            buckets: BTreeMap::new(),
            target_groups: BTreeMap::new(),
            load_balancers: BTreeMap::new(),
            scalable_targets: BTreeMap::new(),
            loads: BTreeMap::new(),
            journal_generation: 0,
        }
    }

    /// Gives back the room the lists of services and task definitions have beyond what they hold. A list read
    /// from the state file, or grown by a call, has room for four items as soon as it has one (JSON does not say
    /// how long a list is, so it grows item by item), and a service or a task definition mostly holds one
    /// deployment, one revision, one container and a few variables: at 10,000 services that room was about a
    /// third of the world's memory (40 MB). Lists grow again as calls add to them.
    pub(super) fn shrink_to_fit(&mut self) {
        for svc in self.services.values_mut() {
            svc.state.deployments.shrink_to_fit();
            svc.state.events.shrink_to_fit();
            svc.stopped.shrink_to_fit();
        }
        for revisions in self.families.values_mut() {
            revisions.shrink_to_fit();
            for td in revisions {
                td.spec.container_definitions.shrink_to_fit();
                for c in &mut td.spec.container_definitions {
                    c.port_mappings.shrink_to_fit();
                    c.environment.shrink_to_fit();
                    c.secrets.shrink_to_fit();
                    c.mount_points.shrink_to_fit();
                    if let Some(check) = &mut c.health_check {
                        check.command.shrink_to_fit();
                    }
                }
            }
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn hex(&mut self, what: &str, len: usize) -> String {
        let seq = self.next_seq();
        let digest = Sha256::digest(format!("{what}/{seq}").as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect::<String>()[..len].to_string()
    }

    // ---- registry and secrets (seeded by `mcpfleet sim push` / `sim secret`) ----

    /// Pushes a new image for `repository:tag` and returns its digest.
    pub fn push_image(&mut self, repository: &str, tag: &str, platforms: Vec<String>, unhealthy: bool) -> String {
        self.push_image_with(
            repository,
            tag,
            SimImage { platforms, unhealthy, startup_ms: None, unready: false, serves: None },
        )
    }

    /// Pushes `image` for `repository:tag` and returns its new digest.
    pub fn push_image_with(&mut self, repository: &str, tag: &str, image: SimImage) -> String {
        let digest = format!("sha256:{}", self.hex(&format!("{repository}:{tag}"), 64));
        let repo = self.repositories.entry(repository.to_string()).or_default();
        repo.images.insert(digest.clone(), image);
        repo.tags.insert(tag.to_string(), digest.clone());
        digest
    }

    /// Creates a secret (if absent) and returns its ARN, with the 6-character suffix AWS adds.
    pub fn create_secret(&mut self, name: &str) -> String {
        if let Some(arn) = self.secrets.get(name) {
            return arn.clone();
        }
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let raw = Sha256::digest(format!("{name}/{}", self.next_seq()).as_bytes());
        let suffix: String = raw.iter().take(6).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
        let arn = format!("arn:aws:secretsmanager:{}:{}:secret:{name}-{suffix}", self.region, self.account);
        self.secrets.insert(name.to_string(), arn.clone());
        arn
    }

    /// The version id holding a secret's AWSCURRENT stage: the first one (derived from its ARN, so older state files
    /// need no version) until the secret is rotated.
    fn current_version(&self, name: &str, arn: &str) -> String {
        match self.secret_versions.get(name) {
            Some(v) => v.current.clone(),
            None => uuid_like(&Sha256::digest(format!("{arn}/version/0").as_bytes())),
        }
    }

    /// Moves a secret's AWSCURRENT stage to a new version (AWSPREVIOUS to the old one), as PutSecretValue or a
    /// rotation does; `breaks`: tasks started from now on of services that read it fail at start. Returns the old
    /// and the new version id; an unknown secret is an error.
    pub fn rotate_secret(&mut self, name: &str, breaks: bool) -> Result<(String, String), String> {
        let Some(arn) = self.secrets.get(name).cloned() else {
            return Err(format!("secret `{name}` not found (make it with `mcpfleet sim secret {name}`)"));
        };
        let old = self.current_version(name, &arn);
        let seq = self.next_seq();
        let new = uuid_like(&Sha256::digest(format!("{arn}/version/{seq}").as_bytes()));
        self.secret_versions.insert(
            name.to_string(),
            SimSecretVersions { current: new.clone(), previous: Some(old.clone()), broken: breaks },
        );
        Ok((old, new))
    }

    /// Why a task of `td` cannot start because of a secret a `--breaks` rotation broke (one it reads by its
    /// current stage), if any.
    fn broken_secret(&self, td: &TaskDefinition) -> Option<String> {
        let broken = self.secret_versions.iter().filter(|(_, v)| v.broken);
        let arns: Vec<(&String, &String)> =
            broken.filter_map(|(name, _)| Some((name, self.secrets.get(name)?))).collect();
        td.spec.container_definitions.iter().flat_map(|c| &c.secrets).find_map(|s| {
            let (name, _) = arns.iter().find(|(_, arn)| reads_current(&s.value_from, arn))?;
            Some(format!(
                "ResourceInitializationError: unable to pull secrets or registry auth: the value of secret {name} \
                 could not be used"
            ))
        })
    }

    /// BatchGetImage: the selectors found; a repository that does not exist is an error, as in ECR.
    pub fn lookup_images(
        &self,
        repository: &str,
        selectors: &[ImageSelector],
    ) -> Result<BTreeMap<ImageSelector, ImageInfo>, BackendError> {
        let Some(repo) = self.repositories.get(repository) else {
            return Err(err_not_found(
                Op::BatchGetImage,
                format!("RepositoryNotFoundException: The repository with name '{repository}' does not exist"),
            ));
        };
        Ok(selectors
            .iter()
            .filter_map(|sel| {
                let digest = match sel {
                    ImageSelector::Tag(t) => repo.tags.get(t)?.clone(),
                    ImageSelector::Digest(d) => d.clone(),
                };
                let image = repo.images.get(&digest)?;
                Some((sel.clone(), ImageInfo { digest, platforms: image.platforms.clone() }))
            })
            .collect())
    }

    /// Creates a target group (HTTP, deregistration delay 300 s, as ELB's defaults) and returns its ARN. Creating
    /// one that exists with the same settings answers its ARN, as ELB does; other settings are refused.
    pub fn create_target_group(&mut self, spec: &TargetGroupSpec) -> Result<String, String> {
        check_target_group_name(&spec.name)?;
        check_health_check_path(&spec.health_check_path)?;
        if let Some(existing) = self.target_groups.get(&spec.name) {
            let same = existing.target_type == spec.target_type
                && existing.health_check_path.as_deref() == Some(spec.health_check_path.as_str())
                && existing.load_balancer_arns.is_empty() != spec.load_balancer;
            return if same {
                Ok(existing.arn.clone())
            } else {
                Err(format!("target group `{}` exists with other settings", spec.name))
            };
        }
        let load_balancer_arns = if spec.load_balancer { vec![self.sim_load_balancer()] } else { Vec::new() };
        let id = self.hex(&format!("targetgroup/{}", spec.name), 16);
        let arn =
            format!("arn:aws:elasticloadbalancing:{}:{}:targetgroup/{}/{id}", self.region, self.account, spec.name);
        self.target_groups.insert(
            spec.name.clone(),
            TargetGroup {
                arn: arn.clone(),
                name: spec.name.clone(),
                target_type: spec.target_type,
                protocol: Some(TargetProtocol::Http),
                health_check_path: Some(spec.health_check_path.clone()),
                load_balancer_arns,
                deregistration_delay_secs: Some(300),
            },
        );
        Ok(arn)
    }

    /// The ARN of the sim's ALB ([`SIM_LOAD_BALANCER`], idle timeout 60 s as ELB's default), made on first use.
    fn sim_load_balancer(&mut self) -> String {
        if let Some(lb) = self.load_balancers.values().find(|lb| lb.name == SIM_LOAD_BALANCER) {
            return lb.arn.clone();
        }
        let id = self.hex("loadbalancer", 16);
        let arn = format!(
            "arn:aws:elasticloadbalancing:{}:{}:loadbalancer/app/{SIM_LOAD_BALANCER}/{id}",
            self.region, self.account
        );
        let number = u64::from_str_radix(&id[..8], 16).unwrap_or_default();
        let balancer = LoadBalancer {
            arn: arn.clone(),
            name: SIM_LOAD_BALANCER.to_string(),
            kind: LoadBalancerType::Application,
            dns_name: format!("{SIM_LOAD_BALANCER}-{number}.{}.elb.amazonaws.com", self.region),
            idle_timeout_secs: Some(60),
        };
        self.load_balancers.insert(arn.clone(), balancer);
        arn
    }

    /// DescribeTargetGroups: the groups named or whose ARN is given; unknown ones are left out.
    pub fn describe_target_groups(&self, ids: &[String]) -> Vec<TargetGroup> {
        let mut out: Vec<TargetGroup> = Vec::new();
        for id in ids {
            let found = if id.starts_with("arn:") {
                self.target_groups.values().find(|g| &g.arn == id)
            } else {
                self.target_groups.get(id)
            };
            if let Some(g) = found.filter(|g| !out.iter().any(|o| o.arn == g.arn)) {
                out.push(g.clone());
            }
        }
        out
    }

    /// DescribeLoadBalancers: the load balancers of these ARNs; unknown ones are left out.
    pub fn describe_load_balancers(&self, arns: &[String]) -> Vec<LoadBalancer> {
        arns.iter().filter_map(|arn| self.load_balancers.get(arn).cloned()).collect()
    }

    pub fn resolve_secrets(&self, ids: &[String]) -> BTreeMap<String, SecretInfo> {
        ids.iter()
            .filter_map(|id| {
                let (name, arn) = if id.starts_with("arn:") {
                    self.secrets.iter().find(|(_, arn)| *arn == id || arn_without_suffix(arn) == id)?
                } else {
                    self.secrets.get_key_value(id)?
                };
                let mut stages = BTreeMap::from([(AWSCURRENT.to_string(), self.current_version(name, arn))]);
                if let Some(previous) = self.secret_versions.get(name).and_then(|v| v.previous.clone()) {
                    stages.insert("AWSPREVIOUS".to_string(), previous);
                }
                Some((id.clone(), SecretInfo { arn: arn.clone(), stages }))
            })
            .collect()
    }

    // ---- task definitions ----

    fn td_arn(&self, family: &str, revision: u32) -> String {
        format!("arn:aws:ecs:{}:{}:task-definition/{family}:{revision}", self.region, self.account)
    }

    pub fn register_task_definition(&mut self, input: &TaskDefinitionInput) -> TaskDefinition {
        let family = input.family.clone();
        let revision = self.families.get(&family).map_or(0, Vec::len) as u32 + 1;
        let mut spec = input.clone();
        let tags = std::mem::take(&mut spec.tags).into_iter().map(|t| (t.key, t.value)).collect();
        let td = TaskDefinition {
            arn: self.td_arn(&family, revision),
            family: family.clone(),
            revision,
            status: TdStatus::Active,
            spec,
            tags,
            registered_at_ms: self.now_ms,
        };
        self.families.entry(family).or_default().push(td.clone());
        td
    }

    /// Finds a revision by ARN, `family:revision`, or family (latest ACTIVE).
    pub fn find_task_definition(&self, id: &str) -> Option<&TaskDefinition> {
        let short = id.rsplit_once("task-definition/").map_or(id, |(_, s)| s);
        match short.rsplit_once(':') {
            Some((family, rev)) => {
                let rev: u32 = rev.parse().ok()?;
                self.families.get(family)?.get(rev.checked_sub(1)? as usize)
            }
            None => self.families.get(short)?.iter().rev().find(|td| td.status == TdStatus::Active),
        }
    }

    pub fn describe_task_definition(&self, id: &str) -> Result<TaskDefinition, BackendError> {
        self.find_task_definition(id)
            .cloned()
            .ok_or_else(|| err_invalid(Op::DescribeTaskDefinition, format!("Unable to describe task definition: {id}")))
    }

    pub fn list_task_definitions(&self, family: &str, status: TdStatus) -> Vec<String> {
        self.families
            .get(family)
            .map(|tds| tds.iter().filter(|td| td.status == status).map(|td| td.arn.clone()).collect())
            .unwrap_or_default()
    }

    pub fn deregister_task_definition(&mut self, arn: &str) -> Result<(), BackendError> {
        let short = arn.rsplit_once("task-definition/").map_or(arn, |(_, s)| s);
        let (family, rev) = short
            .rsplit_once(':')
            .ok_or_else(|| err_invalid(Op::DeregisterTaskDefinition, "a revision is required"))?;
        let rev: usize = rev.parse().map_err(|_| err_invalid(Op::DeregisterTaskDefinition, "bad revision"))?;
        let td = self.families.get_mut(family).and_then(|tds| tds.get_mut(rev.wrapping_sub(1))).ok_or_else(|| {
            err_invalid(Op::DeregisterTaskDefinition, format!("The specified task definition does not exist: {arn}"))
        })?;
        td.status = TdStatus::Inactive;
        Ok(())
    }

    // ---- services ----

    fn service_arn(&self, cluster: &str, name: &str) -> String {
        format!("arn:aws:ecs:{}:{}:service/{cluster}/{name}", self.region, self.account)
    }

    pub fn describe_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<(Vec<ServiceState>, Vec<String>), BackendError> {
        if names.len() > crate::backend::DESCRIBE_SERVICES_BATCH {
            return Err(err_invalid(Op::DescribeServices, "services can have at most 10 items"));
        }
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            let short = name.rsplit('/').next().unwrap_or(name);
            match self.services.get(&service_key(cluster, short)) {
                Some(s) => found.push(s.state.clone()),
                None => missing.push(name.clone()),
            }
        }
        Ok((found, missing))
    }

    pub fn list_services(&self, cluster: &str) -> Vec<String> {
        self.services
            .values()
            .filter(|s| s.state.cluster == cluster && s.state.is_active())
            .map(|s| s.state.name.clone())
            .collect()
    }

    /// Clusters exist in the sim once a service was created in them.
    pub fn list_clusters(&self) -> Vec<String> {
        let clusters: std::collections::BTreeSet<&String> = self.services.values().map(|s| &s.state.cluster).collect();
        clusters.into_iter().cloned().collect()
    }

    fn new_deployment(&mut self, task_definition: &str, desired: u32) -> Deployment {
        let id = format!("ecs-svc/{:019}", self.next_seq());
        Deployment {
            id,
            status: DeploymentStatus::Primary,
            task_definition: task_definition.into(),
            desired_count: desired,
            running_count: 0,
            pending_count: 0,
            failed_tasks: 0,
            rollout_state: RolloutState::InProgress,
            rollout_state_reason: "ECS deployment in progress.".into(),
            created_at_ms: self.now_ms,
            updated_at_ms: self.now_ms,
        }
    }

    fn active_td_arn(&self, op: Op, id: &str) -> Result<String, BackendError> {
        match self.find_task_definition(id) {
            Some(td) if td.status == TdStatus::Active => Ok(td.arn.clone()),
            Some(_) => Err(err_invalid(op, format!("TaskDefinition is inactive: {id}"))),
            None => Err(err_invalid(op, format!("Unable to describe task definition: {id}"))),
        }
    }

    pub fn create_service(&mut self, input: &ServiceInput) -> Result<ServiceState, BackendError> {
        self.create_service_with_token(input, None)
    }

    /// CreateService with ECS's idempotency token: a repeat of a create that succeeded answers that service.
    pub fn create_service_with_token(
        &mut self,
        input: &ServiceInput,
        client_token: Option<&str>,
    ) -> Result<ServiceState, BackendError> {
        const OP: Op = Op::CreateService;
        let key = service_key(&input.cluster, &input.service_name);
        if let Some(existing) = self.services.get(&key).filter(|s| s.state.is_active()) {
            if client_token.is_some() && existing.client_token.as_deref() == client_token {
                return Ok(existing.state.clone());
            }
            return Err(err_invalid(OP, "Creation of service was not idempotent."));
        }
        let td = self.active_td_arn(OP, &input.task_definition)?;
        let deployment = self.new_deployment(&td, input.desired_count);
        let now = self.now_ms;
        let state = ServiceState {
            arn: self.service_arn(&input.cluster, &input.service_name),
            cluster: input.cluster.clone(),
            name: input.service_name.clone(),
            status: ServiceStatus::Active,
            task_definition: td,
            desired_count: input.desired_count,
            running_count: 0,
            pending_count: 0,
            deployment_configuration: Some(input.deployment_configuration.clone()),
            network_configuration: input.network_configuration.clone(),
            service_connect_configuration: input.service_connect_configuration.clone(),
            load_balancers: input.load_balancers.clone(),
            health_check_grace_period_seconds: input.health_check_grace_period_seconds,
            deployments: vec![deployment],
            events: vec![ServiceEvent {
                at_ms: now,
                message: format!("(service {}) was created.", input.service_name),
            }],
            tags: input.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect(),
        };
        let deployed = state.deployments.iter().map(|d| (d.id.clone(), Box::new(Deployed::of(&state)))).collect();
        self.services.insert(
            key,
            SimService {
                state: state.clone(),
                pending: BTreeMap::new(),
                last_completed: None,
                last_completed_networking: None,
                deployed,
                stopped: Vec::new(),
                client_token: client_token.map(str::to_string),
            },
        );
        Ok(state)
    }

    pub fn update_service(&mut self, u: &ServiceUpdate) -> Result<ServiceState, BackendError> {
        const OP: Op = Op::UpdateService;
        let key = service_key(&u.cluster, &u.service);
        match self.services.get(&key) {
            None => return Err(err_not_found(OP, format!("Service not found: {}", u.service))),
            Some(s) if !s.state.is_active() => {
                return Err(err_invalid(OP, format!("Service was not ACTIVE: {}", u.service)));
            }
            Some(_) => {}
        }
        let new_td = match &u.task_definition {
            Some(id) => Some(self.active_td_arn(OP, id)?),
            None => None,
        };
        let Some(current) = self.services.get(&key).map(|s| &s.state) else {
            return Err(err_not_found(OP, format!("Service not found: {}", u.service)));
        };
        let desired = u.desired_count.unwrap_or(current.desired_count);
        // A new revision starts a deployment, and so does new networking on the same one (its tasks have to be
        // started again to join other subnets, target groups or a Service Connect mesh), or forceNewDeployment.
        let deploy = match new_td.filter(|td| *td != current.task_definition) {
            Some(td) => Some(td),
            None if reconfigures_tasks(current, u) || u.force_new_deployment => Some(current.task_definition.clone()),
            None => None,
        };
        let deployment = deploy.map(|td| self.new_deployment(&td, desired));
        let Some(svc) = self.services.get_mut(&key) else {
            return Err(err_not_found(OP, format!("Service not found: {}", u.service)));
        };
        let s = &mut svc.state;
        if let Some(c) = &u.deployment_configuration {
            s.deployment_configuration = Some(c.clone());
        }
        if let Some(n) = &u.network_configuration {
            s.network_configuration = n.clone();
        }
        if let Some(c) = &u.service_connect_configuration {
            s.service_connect_configuration = Some(reported_service_connect(c));
        }
        if let Some(lbs) = &u.load_balancers {
            s.load_balancers.clone_from(lbs);
        }
        if let Some(g) = u.health_check_grace_period_seconds {
            s.health_check_grace_period_seconds = Some(g);
        }
        s.desired_count = desired;
        if let Some(d) = deployment {
            for old in &mut s.deployments {
                old.status = DeploymentStatus::Active;
            }
            s.task_definition = d.task_definition.clone();
            svc.deployed.insert(d.id.clone(), Box::new(Deployed::of(s)));
            s.deployments.insert(0, d);
        }
        if let Some(p) = s.deployments.first_mut() {
            p.desired_count = desired;
        }
        Ok(s.clone())
    }

    /// Deletes a service (as `--force`): tasks stop and the service turns INACTIVE.
    pub fn delete_service(&mut self, cluster: &str, name: &str) -> Result<(), BackendError> {
        let now = self.now_ms;
        let svc = self
            .services
            .get_mut(&service_key(cluster, name))
            .filter(|s| s.state.is_active())
            .ok_or_else(|| err_not_found(Op::DeleteService, format!("Service not found: {name}")))?;
        svc.state.status = ServiceStatus::Inactive;
        svc.state.desired_count = 0;
        svc.state.running_count = 0;
        svc.state.pending_count = 0;
        svc.state.deployments.clear();
        svc.pending.clear();
        push_event(&mut svc.state, now, format!("(service {name}) was deleted."));
        Ok(())
    }

    /// ARNs of a service's stopped tasks, newest first (ListTasks desiredStatus=STOPPED serviceName=…).
    pub fn list_stopped_tasks(&self, cluster: &str, name: &str) -> Vec<String> {
        self.services
            .get(&service_key(cluster, name))
            .map(|s| s.stopped.iter().take(crate::backend::STOPPED_TASKS_BATCH).map(|t| t.arn.clone()).collect())
            .unwrap_or_default()
    }

    /// Why the named stopped tasks of a service that ran `task_definition` stopped (DescribeTasks), newest first.
    pub fn stopped_task_reasons(
        &self,
        cluster: &str,
        name: &str,
        arns: &[String],
        task_definition: &str,
    ) -> Vec<String> {
        let Some(s) = self.services.get(&service_key(cluster, name)) else { return Vec::new() };
        s.stopped
            .iter()
            .filter(|t| arns.contains(&t.arn) && t.task_definition == task_definition)
            .map(|t| {
                let container = crate::backend::StoppedContainer {
                    name: t.container.clone(),
                    reason: t.container_reason.clone(),
                    exit_code: None,
                };
                crate::backend::stopped_task_line(Some(&t.stopped_reason), &[container])
            })
            .collect()
    }

    /// The tasks ECS keeps running for a service (desired status RUNNING), deployment by deployment: its running
    /// tasks, then its launches that have not settled yet (PENDING, no address yet). A task's id follows its place
    /// in its deployment, so the launch that settles keeps its ARN.
    pub fn service_tasks(&self, cluster: &str, name: &str) -> Vec<TaskInfo> {
        let Some(svc) = self.services.get(&service_key(cluster, name)).filter(|s| s.state.is_active()) else {
            return Vec::new();
        };
        let mut tasks = Vec::new();
        for d in &svc.state.deployments {
            let serves = self.image_of(&d.task_definition).and_then(|i| i.serves);
            let pending = svc.pending.get(&d.id).map_or(0, Vec::len);
            let running = d.running_count as usize;
            for i in 0..running.saturating_add(pending) {
                let id = Sha256::digest(format!("{}/task/{i}", d.id).as_bytes());
                let id: String = id.iter().take(16).map(|b| format!("{b:02x}")).collect();
                let up = i < running;
                tasks.push(TaskInfo {
                    arn: format!("{}/{id}", task_arn_prefix(&svc.state.arn)),
                    task_definition: d.task_definition.clone(),
                    last_status: if up { TaskStatus::Running } else { TaskStatus::Pending },
                    private_ipv4: serves.as_ref().filter(|_| up).map(|s| s.ip().to_string()),
                    port: serves.as_ref().filter(|_| up).map(ServedUrl::port),
                });
            }
        }
        tasks
    }

    /// The tasks of a cluster's services by ARN (DescribeTasks); unknown ARNs are absent.
    pub fn describe_tasks(&self, cluster: &str, arns: &[String]) -> Vec<TaskInfo> {
        self.services
            .values()
            .filter(|s| s.state.cluster == cluster)
            .flat_map(|s| self.service_tasks(cluster, &s.state.name))
            .filter(|t| arns.contains(&t.arn))
            .collect()
    }

    /// Adds or overwrites tags, refusing (as ECS does) to leave a resource with more than [`MAX_TAGS`] tags of
    /// its users (`aws:` ones do not count).
    pub fn tag_resource(&mut self, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), BackendError> {
        let found = self.tags_of(arn, Op::TagResource)?;
        let user = |k: &String| !k.starts_with("aws:");
        let after = found.keys().filter(|k| user(k)).count()
            + tags.keys().filter(|k| user(k) && !found.contains_key(*k)).count();
        if after > MAX_TAGS {
            return Err(err_invalid(
                Op::TagResource,
                format!(
                    "InvalidParameterException: a resource can have at most {MAX_TAGS} tags; this would leave it {after}"
                ),
            ));
        }
        found.extend(tags.clone());
        Ok(())
    }

    pub fn untag_resource(&mut self, arn: &str, keys: &[String]) -> Result<(), BackendError> {
        let found = self.tags_of(arn, Op::UntagResource)?;
        found.retain(|k, _| !keys.contains(k));
        Ok(())
    }

    /// The tags of a service or task definition, by ARN.
    fn tags_of(&mut self, arn: &str, op: Op) -> Result<&mut BTreeMap<String, String>, BackendError> {
        if let Some(svc) = self.services.values_mut().find(|s| s.state.arn == arn) {
            return Ok(&mut svc.state.tags);
        }
        let td = self.families.values_mut().flat_map(|tds| tds.iter_mut()).find(|td| td.arn == arn);
        td.map(|td| &mut td.tags)
            .ok_or_else(|| err_not_found(op, format!("The specified resource could not be found: {arn}")))
    }

    // ---- the clock ----

    /// Moves the clock to `t`, progressing every deployment tick by tick (and, each virtual minute, target
    /// tracking: see `sim::scaling`).
    pub fn advance_to(&mut self, t: u64) {
        while let Some(next) = self.now_ms.checked_add(TICK_MS).filter(|next| *next <= t) {
            self.now_ms = next;
            self.autoscale();
            self.tick();
        }
        if t > self.now_ms {
            self.now_ms = t;
        }
    }

    /// How long tasks of a task definition take to settle.
    fn settle_ms(&self, td_arn: &str) -> u64 {
        self.image_of(td_arn).and_then(|i| i.startup_ms).unwrap_or(TASK_SETTLE_MS)
    }

    fn image_of(&self, td_arn: &str) -> Option<SimImage> {
        let td = self.find_task_definition(td_arn)?;
        let image = td.spec.container_definitions.first()?.image.as_str();
        let (name, tag, digest) = match image.split_once('@') {
            Some((name, digest)) => (name, None, Some(digest)),
            None => {
                let (name, tag) = image.rsplit_once(':')?;
                (name, Some(tag), None)
            }
        };
        let Some(repo) = self.repositories.get(name) else { return outside_ecr(image) };
        let digest = match (digest, tag) {
            (Some(digest), _) => digest,
            (None, Some(tag)) => repo.tags.get(tag)?.as_str(),
            (None, None) => return None,
        };
        repo.images.get(digest).cloned()
    }

    /// Whether tasks of a task definition pass their health checks, and why not. Behind load balancers (the
    /// service's target groups, first first) a task must also pass the target group's check, as ECS requires.
    fn task_health(&self, td_arn: &str, load_balancers: &[ServiceLoadBalancer]) -> Result<(), String> {
        let Some(td) = self.find_task_definition(td_arn) else { return Err("task definition missing".into()) };
        if let Some(why) = self.broken_secret(td) {
            return Err(why);
        }
        match self.image_of(td_arn) {
            None => Err("CannotPullContainerError: image not found".into()),
            Some(img) if img.unhealthy => Err(CONTAINER_UNHEALTHY.into()),
            Some(img) => {
                let arch = td.spec.runtime_platform.cpu_architecture.unwrap_or(crate::render::CpuArch::X86_64);
                if !img.platforms.iter().any(|p| p == arch.platform()) {
                    return Err("CannotPullContainerError: no matching manifest for the task's architecture".into());
                }
                match load_balancers.first() {
                    Some(lb) if img.unready => {
                        Err(format!("Task failed ELB health checks in (target-group {})", lb.target_group_arn))
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    fn tick(&mut self) {
        let now = self.now_ms;
        let keys: Vec<String> = self
            .services
            .iter()
            .filter(|(_, s)| s.state.is_active() && !is_steady(s))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let svc = &self.services[&key];
            // Each deployment's tasks register in its own target groups.
            let health: BTreeMap<String, (Result<(), String>, u64)> = svc
                .state
                .deployments
                .iter()
                .map(|d| {
                    let lbs = svc.deployed.get(&d.id).map_or(&svc.state.load_balancers, |n| &n.load_balancers);
                    let verdict = self.task_health(&d.task_definition, lbs);
                    (d.id.clone(), (verdict, self.settle_ms(&d.task_definition)))
                })
                .collect();
            let seq = self.seq.wrapping_add(1);
            let Some(svc) = self.services.get_mut(&key) else { continue };
            if tick_service(svc, now, &health, seq) {
                self.seq = seq;
            }
        }
    }
}

/// `arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER` of a service's ARN: where its tasks' ARNs start.
fn task_arn_prefix(service_arn: &str) -> String {
    service_arn.rsplit_once('/').map_or("", |(head, _)| head).replace(":service/", ":task/")
}

/// Service Connect as a service reports it once `c` is set: ECS reports it per deployment, and one turned off as
/// `enabled: false` alone.
fn reported_service_connect(c: &ServiceConnectConfiguration) -> ServiceConnectConfiguration {
    if c.enabled { c.clone() } else { ServiceConnectConfiguration::disabled() }
}

/// Whether UpdateService `u` changes what `current`'s tasks were started with besides their task definition: its
/// network configuration, load balancers or Service Connect. ECS then starts a new deployment, as it does for a
/// new revision; a field sent again unchanged (or Service Connect turned off where it never ran) starts none.
fn reconfigures_tasks(current: &ServiceState, u: &ServiceUpdate) -> bool {
    let network = u.network_configuration.as_ref().is_some_and(|n| *n != current.network_configuration);
    let load_balancers = u.load_balancers.as_ref().is_some_and(|l| *l != current.load_balancers);
    let service_connect = u.service_connect_configuration.as_ref().is_some_and(|c| {
        match current.service_connect_configuration.as_ref().filter(|now| now.enabled) {
            Some(now) => reported_service_connect(c) != *now,
            None => c.enabled,
        }
    });
    network || load_balancers || service_connect
}

/// Whether a container secret's `valueFrom` reads the AWSCURRENT version of the secret `arn` (the whole secret or
/// a JSON key, with no other stage and no pinned version).
fn reads_current(value_from: &str, arn: &str) -> bool {
    match value_from.strip_prefix(arn) {
        Some("") => true,
        Some(rest) if rest.starts_with(':') => {
            let mut parts = rest[1..].split(':').skip(1);
            let stage = parts.next().unwrap_or("");
            let id = parts.next().unwrap_or("");
            (stage.is_empty() || stage == AWSCURRENT) && id.is_empty()
        }
        _ => false,
    }
}

/// A version id shaped as Secrets Manager makes them (a UUID), from a hash.
fn uuid_like(raw: &[u8]) -> String {
    let hex: String = raw.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn arn_without_suffix(arn: &str) -> &str {
    // Secrets Manager accepts an ARN without the random 6-character suffix ("partial ARN").
    arn.rsplit_once('-').map_or(arn, |(head, tail)| if tail.len() == 6 { head } else { arn })
}

pub(super) fn push_event(s: &mut ServiceState, at_ms: u64, message: String) {
    s.events.insert(0, ServiceEvent { at_ms, message });
    s.events.truncate(MAX_EVENTS);
}

/// The sum of counts, at most `u32::MAX`.
fn saturating_sum(counts: impl Iterator<Item = u32>) -> u32 {
    counts.fold(0, u32::saturating_add)
}

/// A service with one completed deployment running exactly its desired count: nothing to simulate.
fn is_steady(s: &SimService) -> bool {
    let st = &s.state;
    st.deployments.len() == 1
        && st.deployments[0].rollout_state == RolloutState::Completed
        && st.running_count == st.desired_count
        && st.pending_count == 0
}

/// One tick of one service (`health`: the verdict on each deployment's tasks and how long they take, by
/// deployment id). Returns true when it started a rollback deployment (which used sequence `seq`).
fn tick_service(
    svc: &mut SimService,
    now: u64,
    health: &BTreeMap<String, (Result<(), String>, u64)>,
    seq: u64,
) -> bool {
    let name = svc.state.name.clone();
    let desired = svc.state.desired_count;
    // The sim records the configuration it was given; a state file edited without one gets ECS's defaults.
    let cfg = svc.state.deployment_configuration.clone().unwrap_or(DeploymentConfiguration {
        maximum_percent: 200,
        minimum_healthy_percent: 100,
        deployment_circuit_breaker: CircuitBreaker { enable: false, rollback: false },
    });
    let mut started_rollback = false;

    // 1. Tasks launched long enough ago pass or fail their health checks.
    for d in &mut svc.state.deployments {
        let (healthy, settle) =
            health.get(&d.id).cloned().unwrap_or_else(|| (Err("task definition missing".into()), TASK_SETTLE_MS));
        let launches = svc.pending.entry(d.id.clone()).or_default();
        let settled = launches.iter().filter(|t| t.saturating_add(settle) <= now).count();
        launches.retain(|t| t.saturating_add(settle) > now);
        let settled = u32::try_from(settled).unwrap_or(u32::MAX);
        match healthy {
            Ok(()) => d.running_count = d.running_count.saturating_add(settled),
            Err(why) => {
                let (stopped_reason, container_reason) = stop_reasons(&why);
                let task_prefix = task_arn_prefix(&svc.state.arn);
                for n in 0..settled {
                    let id = Sha256::digest(format!("{}/{}", d.id, d.failed_tasks.wrapping_add(n)).as_bytes());
                    let id: String = id.iter().take(16).map(|b| format!("{b:02x}")).collect();
                    svc.stopped.insert(
                        0,
                        StoppedTask {
                            arn: format!("{task_prefix}/{id}"),
                            task_definition: d.task_definition.clone(),
                            stopped_reason: stopped_reason.clone(),
                            container: name.clone(),
                            container_reason: container_reason.clone(),
                            stopped_at_ms: now,
                        },
                    );
                    svc.state.events.insert(
                        0,
                        ServiceEvent {
                            at_ms: now,
                            message: format!("(service {name}) (deployment {}) task stopped: {why}", d.id),
                        },
                    );
                }
                d.failed_tasks = d.failed_tasks.saturating_add(settled);
                svc.stopped.truncate(MAX_STOPPED);
            }
        }
    }
    svc.state.events.truncate(MAX_EVENTS);

    // 2. The circuit breaker.
    let breaker = cfg.deployment_circuit_breaker.clone();
    if let Some(p) = svc.state.deployments.first_mut()
        && breaker.enable
        && p.rollout_state == RolloutState::InProgress
        && p.failed_tasks >= breaker_threshold(desired)
    {
        p.rollout_state = RolloutState::Failed;
        p.rollout_state_reason = "ECS deployment circuit breaker: tasks failed to start.".into();
        p.updated_at_ms = now;
        let failed_id = p.id.clone();
        let failed_td = p.task_definition.clone();
        push_event(
            &mut svc.state,
            now,
            format!("(service {name}) (deployment {failed_id}) deployment failed: tasks failed to start."),
        );
        // The service revision to go back to: the last completed deployment's task definition and networking
        // (the service's own networking when an older state file did not record it).
        let current = Deployed::of(&svc.state);
        let failed_networking = svc.deployed.get(&failed_id).map_or(&current, |n| &**n);
        let back = svc.last_completed.clone().map(|td| {
            let networking = svc.last_completed_networking.clone().unwrap_or_else(|| current.clone());
            (td, networking)
        });
        if breaker.rollback
            && let Some((prev, networking)) = back.filter(|(td, n)| *td != failed_td || n != failed_networking)
        {
            for d in &mut svc.state.deployments {
                d.status = DeploymentStatus::Active;
            }
            svc.pending.remove(&failed_id);
            let id = format!("ecs-svc/{seq:019}");
            svc.state.deployments.insert(
                0,
                Deployment {
                    id: id.clone(),
                    status: DeploymentStatus::Primary,
                    task_definition: prev.clone(),
                    desired_count: desired,
                    running_count: 0,
                    pending_count: 0,
                    failed_tasks: 0,
                    rollout_state: RolloutState::InProgress,
                    rollout_state_reason: format!("ECS deployment circuit breaker: rolling back to deployment {id}."),
                    created_at_ms: now,
                    updated_at_ms: now,
                },
            );
            svc.state.task_definition = prev;
            networking.apply_to(&mut svc.state);
            svc.deployed.insert(id.clone(), Box::new(networking));
            push_event(&mut svc.state, now, format!("(service {name}) rolling back to deployment {id}."));
            started_rollback = true;
        }
    }

    // 3. Stop old deployments' unsettled launches; launch and drain within the deployment bounds.
    let primary_id = svc.state.deployments.first().map(|d| d.id.clone());
    svc.pending.retain(|id, _| Some(id) == primary_id.as_ref());
    // Counts and percentages come from a file the user may edit: saturate rather than overflow.
    let percent_of = |p: u32| u32::try_from((u64::from(desired) * u64::from(p)).div_ceil(100)).unwrap_or(u32::MAX);
    let max_total = u32::try_from(u64::from(desired) * u64::from(cfg.maximum_percent) / 100).unwrap_or(u32::MAX);
    let min_healthy = percent_of(cfg.minimum_healthy_percent);
    let old_running = saturating_sum(svc.state.deployments.iter().skip(1).map(|d| d.running_count));
    if let Some(primary_id) = primary_id {
        let launches = svc.pending.entry(primary_id).or_default();
        let Some(p) = svc.state.deployments.first_mut() else { return started_rollback };
        // Scale the primary down first when the desired count dropped.
        if p.running_count > desired {
            p.running_count = desired;
            launches.clear();
        }
        let in_flight = p.running_count.saturating_add(u32::try_from(launches.len()).unwrap_or(u32::MAX));
        let need = desired.saturating_sub(in_flight);
        let room = max_total.saturating_sub(old_running.saturating_add(in_flight));
        let launch = need.min(room);
        launches.extend(std::iter::repeat_n(now, launch as usize));
        let healthy = p.running_count.saturating_add(old_running);
        let excess = healthy.saturating_sub(desired);
        let blocked = need - launch;
        let can_stop = healthy.saturating_sub(min_healthy);
        let mut stop = old_running.min(excess.max(blocked.min(can_stop)));
        for old in svc.state.deployments.iter_mut().skip(1).rev() {
            let n = stop.min(old.running_count);
            old.running_count -= n;
            stop -= n;
        }
    }
    svc.state.deployments.retain(|d| d.status == DeploymentStatus::Primary || d.running_count > 0);
    let listed: Vec<&str> = svc.state.deployments.iter().map(|d| d.id.as_str()).collect();
    svc.deployed.retain(|id, _| listed.contains(&id.as_str()));

    // 4. Counts and completion.
    let pending_total = saturating_sum(svc.pending.values().map(|v| u32::try_from(v.len()).unwrap_or(u32::MAX)));
    if let Some(p) = svc.state.deployments.first_mut() {
        p.pending_count = pending_total;
        p.desired_count = desired;
    }
    svc.state.running_count = saturating_sum(svc.state.deployments.iter().map(|d| d.running_count));
    svc.state.pending_count = pending_total;
    let single = svc.state.deployments.len() == 1;
    if let Some(p) = svc.state.deployments.first_mut()
        && p.rollout_state == RolloutState::InProgress
        && single
        && p.running_count == desired
        && p.pending_count == 0
    {
        p.rollout_state = RolloutState::Completed;
        p.rollout_state_reason = format!("ECS deployment {} completed.", p.id);
        p.updated_at_ms = now;
        svc.last_completed = Some(p.task_definition.clone());
        svc.last_completed_networking =
            Some(svc.deployed.get(&p.id).map_or_else(|| Deployed::of(&svc.state), |n| Deployed::clone(n)));
        push_event(&mut svc.state, now, format!("(service {name}) has reached a steady state."));
    }
    started_rollback
}

/// An image of a registry outside Amazon ECR, as the sim's tasks pull it. The sim has no such registry: the image
/// was resolved (digest and platforms) through the real one, so its tasks start and pass their health checks on
/// any architecture; only ECR images are the sim's to make unhealthy, slow or unready (`sim push`).
fn outside_ecr(image: &str) -> Option<SimImage> {
    let r = crate::spec::ImageRef::parse(image).ok()?;
    r.ecr().is_none().then(|| SimImage {
        platforms: vec![
            crate::render::CpuArch::Arm64.platform().into(),
            crate::render::CpuArch::X86_64.platform().into(),
        ],
        unhealthy: false,
        startup_ms: None,
        unready: false,
        serves: None,
    })
}
