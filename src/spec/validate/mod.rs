//! Validation rules: each checks one field or one relation and records a diagnostic instead of stopping, so a user
//! sees every problem of a fleet in one run.
//!
//! One module per concern, each owning its rules, patterns and codes (`super::code`): names, labels, image, task
//! size, roles, env, secrets, health check, network, logging, rollout, local stack, readiness and endpoints, MCP
//! verification, stdio servers behind the bridge. This module holds what they share (the
//! document context, field paths, durations) and walks a service through them.
//!
//! Fields inherited from FleetDefaults are checked once, where they are written; a service is checked for the
//! fields it sets itself and for the relations that only exist after merging (cpu/memory, rollout arithmetic).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use regex::Regex;

use super::code::Code;
use super::diag::{Diagnostic, path_string};
use super::types::*;
use super::valid::*;
use super::yaml::{Node, Seg};

/// A pattern compiled once, on first use.
macro_rules! re {
    ($vis:vis $name:ident, $pat:expr) => {
        $vis static $name: std::sync::LazyLock<regex::Regex> =
            std::sync::LazyLock::new(|| regex::Regex::new($pat).expect("static regex"));
    };
}

mod autoscaling;
mod env;
mod expose;
mod health;
mod image;
mod labels;
mod local;
mod logging;
mod mcp;
mod names;
mod network;
mod roles;
mod rollout;
mod rotation;
mod secrets;
mod stdio;
mod task;

pub(super) use local::check_unique_local_port;

/// Collects diagnostics for one document, resolving each field path to its line.
pub(super) struct DocCtx<'a> {
    pub file: &'a str,
    pub root: &'a Node,
    pub diags: &'a mut Vec<Diagnostic>,
}

impl DocCtx<'_> {
    pub fn err(&mut self, code: Code, path: &[Seg], message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            line: self.root.line_of(path),
            code,
            path: path_string(path),
            message: message.into(),
        });
    }
}

/// Builds a field path from the schema's key names.
pub(super) fn p(keys: &[&'static str]) -> Vec<Seg> {
    keys.iter().map(|k| Seg::Key(Cow::Borrowed(k))).collect()
}

fn with(base: &[Seg], key: impl Into<Cow<'static, str>>) -> Vec<Seg> {
    let mut v = base.to_vec();
    v.push(Seg::Key(key.into()));
    v
}

fn with_index(base: &[Seg], i: usize) -> Vec<Seg> {
    let mut v = base.to_vec();
    v.push(Seg::Index(i));
    v
}

/// Whether `s` is 1..=`max` bytes and matches `re`. Lengths are checked here rather than as `{1,N}` in the
/// pattern: bounded repetition compiles into N copies of the class, which made start-up slow.
fn fits(re: &Regex, s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && re.is_match(s)
}

/// Parses a duration string into whole seconds within `[min, max]`, naming the limit's source in the message; a
/// value outside the range is reported under `range_code`, the field's own rule.
pub(super) fn seconds(
    ctx: &mut DocCtx,
    range_code: Code,
    path: &[Seg],
    value: &DurationStr,
    min: u64,
    max: u64,
    limit_source: &str,
) -> Option<u64> {
    let d: Duration = match value.parse() {
        Some(d) => d,
        None => {
            ctx.err(
                Code::NotADuration,
                path,
                format!("`{}` is not a duration; write it like `30s`, `10m` or `1m30s`", value.0),
            );
            return None;
        }
    };
    if d.subsec_nanos() != 0 {
        ctx.err(Code::FractionalSeconds, path, format!("{} is not a whole number of seconds", value.0));
        return None;
    }
    let secs = d.as_secs();
    if secs < min {
        ctx.err(range_code, path, format!("{} is below the {limit_source} minimum of {}", value.0, fmt_secs(min)));
        return None;
    }
    if secs > max {
        ctx.err(range_code, path, format!("{} is above the {limit_source} maximum of {}", value.0, fmt_secs(max)));
        return None;
    }
    Some(secs)
}

/// Seconds as users read ECS limits (`120s`); only spans of hours are shortened.
pub(super) fn fmt_secs(s: u64) -> String {
    if s >= 3600 && s.is_multiple_of(3600) { format!("{}h", s / 3600) } else { format!("{s}s") }
}

/// Validates the FleetDefaults document's own fields.
pub(super) fn check_defaults(ctx: &mut DocCtx, spec: &FleetDefaultsSpec) {
    if let Some(cluster) = &spec.cluster {
        names::check_ecs_name(ctx, Code::ClusterName, &p(&["spec", "cluster"]), "cluster name", cluster);
    }
    if let Some(net) = &spec.network {
        network::check_network(ctx, &p(&["spec", "network"]), net);
    }
    if let Some(arn) = &spec.execution_role_arn {
        roles::check_role(ctx, "executionRoleArn", arn);
    }
    if let Some(arn) = &spec.task_role_arn {
        roles::check_role(ctx, "taskRoleArn", arn);
    }
    if let Some(l) = &spec.logging {
        logging::check_logging(ctx, &p(&["spec", "logging"]), l);
    }
    if let Some(st) = &spec.stop_timeout {
        task::stop_timeout(ctx, st);
    }
    if let Some(r) = &spec.rollout {
        rollout::check_rollout(ctx, &p(&["spec", "rollout"]), r);
    }
    if let Some(sc) = spec.expose.as_ref().and_then(|e| e.service_connect.as_ref()) {
        expose::check_namespace(ctx, &p(&["spec", "expose", "serviceConnect", "namespace"]), &sc.namespace);
    }
    if let Some(m) = &spec.mcp {
        mcp::check_defaults(ctx, m);
    }
    if let Some(image) = &spec.bridge_image {
        stdio::check_bridge_image(ctx, image);
    }
}

/// The defaults after their own validation, with parsed durations, ready to merge into services.
#[derive(Debug, Clone, Default)]
pub(super) struct Defaults {
    pub spec: FleetDefaultsSpec,
    pub stop_timeout_secs: Option<u64>,
    pub progress_deadline_secs: Option<u64>,
    /// The bridge image of stdio services: FleetDefaults' `bridgeImage`, else `--bridge-image`.
    bridge_image: Option<ImageRef>,
    /// A FleetDefaults document was written but could not be read at all.
    unreadable: bool,
    /// Fields of the FleetDefaults (`spec.network`) that were written but did not parse.
    broken: BTreeSet<String>,
}

impl Defaults {
    pub fn new(
        spec: FleetDefaultsSpec,
        unreadable: bool,
        broken: BTreeSet<String>,
        bridge_image: Option<&ImageRef>,
    ) -> Defaults {
        // Durations were range-checked (with diagnostics) by check_defaults; a bad one simply does not apply.
        let parse = |d: &Option<DurationStr>| d.as_ref().and_then(DurationStr::parse).map(|d| d.as_secs());
        // A bridgeImage written in FleetDefaults wins over --bridge-image (a bad one was reported where it is
        // written, and then none applies).
        let bridge_image = match &spec.bridge_image {
            Some(written) => ImageRef::parse_pinned(written).ok(),
            None => bridge_image.cloned(),
        };
        Defaults {
            stop_timeout_secs: parse(&spec.stop_timeout),
            progress_deadline_secs: parse(&spec.rollout.as_ref().and_then(|r| r.progress_deadline.clone())),
            bridge_image,
            spec,
            unreadable,
            broken,
        }
    }

    /// The fleet's bridge image, as the stdio rules need it.
    fn bridge_image(&self) -> stdio::BridgeImage<'_> {
        match &self.bridge_image {
            Some(image) => stdio::BridgeImage::Known(image),
            None if self.spec.bridge_image.is_some() || self.lost("bridgeImage") => stdio::BridgeImage::Broken,
            None => stdio::BridgeImage::None,
        }
    }

    /// Whether FleetDefaults may have meant to set `field` but failed to parse (already reported): a service
    /// without it is then not told that it is required, which would repeat one mistake once per service.
    fn lost(&self, field: &str) -> bool {
        self.unreadable || has_spec_field(&self.broken, field)
    }
}

/// Whether `paths` holds `spec.<field>`; the set is nearly always empty, so that is checked before a path is built.
fn has_spec_field(paths: &BTreeSet<String>, field: &str) -> bool {
    !paths.is_empty() && paths.contains(&format!("spec.{field}"))
}

/// Validates one McpService merged with the defaults. Returns the service only when it has no problem.
pub(super) fn check_service(
    ctx: &mut DocCtx,
    doc: &McpServiceDoc,
    doc_line: usize,
    d: &Defaults,
    unparsed: &BTreeSet<String>,
) -> Option<ValidService> {
    let before = ctx.diags.len();
    // Fields that did not parse were reported then and hold placeholders now: no rule judges them, and a value
    // that depends on them is not required again.
    let broken = |field: &str| has_spec_field(unparsed, field);
    let unknown = |field: &str| broken(field) || d.lost(field);
    let s = &doc.spec;
    let name = &doc.metadata.name;
    if !unparsed.contains("metadata.name") {
        names::check_ecs_name(ctx, Code::ServiceName, &p(&["metadata", "name"]), "service name", name);
    }
    labels::check_labels(ctx, &doc.metadata.labels);

    let cluster = match (&s.cluster, &d.spec.cluster) {
        (Some(c), _) => {
            names::check_ecs_name(ctx, Code::ClusterName, &p(&["spec", "cluster"]), "cluster name", c);
            c.clone()
        }
        (None, Some(c)) => c.clone(),
        (None, None) => {
            if !unknown("cluster") {
                ctx.err(Code::ClusterMissing, &p(&["spec", "cluster"]), "required: set it here or in FleetDefaults");
            }
            String::new()
        }
    };

    let image = if broken("image") { None } else { image::check_image(ctx, &s.image) };

    if !broken("cpu") && !broken("memory") {
        task::check_fargate_size(ctx, s.cpu, s.memory);
    }

    // With autoscaling, a new service starts with its minimum unless replicas says otherwise.
    let replicas = s.replicas.or(s.autoscaling.as_ref().map(|a| a.min)).unwrap_or(1);
    task::check_replicas(ctx, replicas);
    if !broken("port") {
        task::check_port(ctx, s.port);
    }
    let local_port = s.local.as_ref().and_then(|l| l.port);
    local::check_local_port(ctx, local_port);

    let env: BTreeMap<String, String> = s.env.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    env::check_env(ctx, &env);
    let secrets = secrets::check_secrets(ctx, &s.secrets, &env);

    let transport = s.transport.unwrap_or(Transport::StreamableHttp);
    let stdio = transport == Transport::Stdio;
    // A stdio server always has the bridge's health check, with the timings written (or ECS's defaults).
    let health_check = match (&s.health_check, stdio) {
        (Some(h), _) => health::check_health(ctx, h, stdio),
        (None, true) => health::check_health(ctx, &HealthCheck::default(), true),
        (None, false) => None,
    };

    let stop_timeout_secs = match &s.stop_timeout {
        Some(st) => task::stop_timeout(ctx, st),
        None => Some(d.stop_timeout_secs.unwrap_or(30)),
    };

    if let Some(arn) = &s.task_role_arn {
        roles::check_role(ctx, "taskRoleArn", arn);
    }
    if let Some(arn) = &s.execution_role_arn {
        roles::check_role(ctx, "executionRoleArn", arn);
    }
    let execution_role_arn = s.execution_role_arn.clone().or_else(|| d.spec.execution_role_arn.clone());
    if let Some(id) = &s.registry_credentials {
        secrets::check_registry_credentials(ctx, id, image.as_ref());
    }
    let task_role_arn = s.task_role_arn.clone().or_else(|| d.spec.task_role_arn.clone());

    let network = match (&s.network, &d.spec.network) {
        (Some(n), _) => {
            network::check_network(ctx, &p(&["spec", "network"]), n);
            Some(n.clone())
        }
        (None, Some(n)) => Some(n.clone()),
        (None, None) => {
            if !unknown("network") {
                ctx.err(
                    Code::NetworkMissing,
                    &p(&["spec", "network"]),
                    "required: Fargate tasks need subnets (set it here or in FleetDefaults)",
                );
            }
            None
        }
    };

    let logging = if unknown("logging") {
        // Only the service's own fields can be judged; whether a group is missing cannot.
        if let Some(l) = &s.logging {
            logging::check_logging(ctx, &p(&["spec", "logging"]), l);
        }
        None
    } else {
        logging::merge_logging(ctx, s.logging.as_ref(), d.spec.logging.as_ref(), image.as_ref(), name)
    };

    if execution_role_arn.is_none() && !unknown("executionRoleArn") {
        let needs = roles::ExecutionNeeds {
            // A stdio service's task pulls the bridge image too.
            ecr_image: image.as_ref().is_some_and(|i| i.ecr().is_some())
                || (stdio && d.bridge_image.as_ref().is_some_and(|i| i.ecr().is_some())),
            secrets: !secrets.is_empty(),
            registry_credentials: s.registry_credentials.is_some(),
            awslogs: logging.is_some(),
        };
        roles::require_execution_role(ctx, needs);
    }

    // The rollout relation needs the real replica count and both bounds; without them only the service's own
    // fields can be judged.
    let rollout = if unknown("rollout") || broken("replicas") {
        if let Some(r) = &s.rollout {
            rollout::check_rollout(ctx, &p(&["spec", "rollout"]), r);
        }
        None
    } else {
        rollout::merge_rollout(ctx, s.rollout.as_ref(), d, replicas)
    };

    let readiness_path = match &s.readiness {
        Some(r) => expose::check_readiness(ctx, r),
        None if stdio => Some(stdio::READY.to_string()),
        None => None,
    };
    let service_connect = if broken("expose") || broken("port") {
        Err(())
    } else {
        let default_namespace = d.spec.expose.as_ref().and_then(|e| e.service_connect.as_ref());
        expose::merge_service_connect(ctx, s, name, default_namespace.map(|sc| sc.namespace.as_str()), d.lost("expose"))
    };
    let load_balancers =
        if broken("expose") || broken("port") { Err(()) } else { expose::check_load_balancers(ctx, s) };
    let grace_period = expose::grace_period(
        ctx,
        s.expose.as_ref().and_then(|e| e.health_check_grace_period.as_ref()),
        load_balancers.as_ref().is_ok_and(|l| !l.is_empty()),
        health_check.as_ref().map(|h| h.start_period_secs),
    );
    let has_endpoint = match (&load_balancers, &service_connect) {
        (Ok(lbs), Ok(sc)) => Some(!lbs.is_empty() || sc.is_some()),
        _ => None,
    };
    let mcp_context = mcp::Context {
        transport,
        port: u16::try_from(s.port).ok().filter(|p| *p > 0),
        has_endpoint,
        labels: doc.metadata.labels.len(),
        defaults_lost: d.lost("mcp"),
    };
    let mcp = if broken("mcp") { None } else { mcp::merge(ctx, s.mcp.as_ref(), d, &mcp_context) };
    let mcp_path = s.mcp.as_ref().and_then(|m| m.path.as_deref());
    let stdio = if broken("command") || broken("bridge") {
        Err(())
    } else {
        stdio::check(ctx, s, transport, image.as_ref(), d.bridge_image(), mcp_path)
    };
    let scaling = match &s.autoscaling {
        Some(a) if !broken("autoscaling") => {
            // A load balancer list that did not parse cannot be judged; one that parsed but has a problem still
            // says whether there is one.
            let listed = s.expose.as_ref().is_some_and(|e| !e.load_balancers.is_empty());
            let around = autoscaling::Context {
                name,
                replicas: s.replicas.filter(|_| !broken("replicas")),
                load_balanced: (!broken("expose")).then_some(listed),
                labels: doc.metadata.labels.len(),
                verified: mcp.as_ref().map(|m| m.verified()),
            };
            autoscaling::check_autoscaling(ctx, a, &around).map(Some)
        }
        Some(_) => Err(()),
        None => Ok(None),
    };

    if !broken("secrets") && !broken("autoscaling") {
        let around = rotation::Context {
            labels: doc.metadata.labels.len(),
            follows_secrets: secrets.values().any(|r| r.version_id.is_none()),
            verified: mcp.as_ref().map(|m| m.verified()),
            autoscaled: s.autoscaling.is_some(),
        };
        rotation::check_labels(ctx, &around);
    }

    if ctx.diags.len() > before || !unparsed.is_empty() {
        return None;
    }
    let network = network?;
    Some(ValidService {
        name: name.clone(),
        labels: doc.metadata.labels.clone(),
        source: Source { file: ctx.file.to_string(), line: doc_line },
        lines: FieldLines {
            image: ctx.root.line_of(&p(&["spec", "image"])),
            secrets: secrets
                .keys()
                .map(|name| {
                    let at = with(&with(&p(&["spec", "secrets"]), name.clone()), "secret");
                    (name.clone(), ctx.root.line_of(&at))
                })
                .collect(),
            target_groups: (0..load_balancers.as_ref().map_or(0, Vec::len))
                .map(|i| {
                    let at = with(&with_index(&p(&["spec", "expose", "loadBalancers"]), i), "targetGroup");
                    ctx.root.line_of(&at)
                })
                .collect(),
            registry_credentials: ctx.root.line_of(&p(&["spec", "registryCredentials"])),
            command: ctx.root.line_of(&p(&["spec", if s.command.is_some() { "command" } else { "transport" }])),
            requests_per_target: s
                .autoscaling
                .as_ref()
                .and_then(|a| a.requests_per_target)
                .map(|_| ctx.root.line_of(&p(&["spec", "autoscaling", "requestsPerTarget"]))),
        },
        cluster,
        image: image?,
        architecture: s.architecture.or(d.spec.architecture).unwrap_or(Architecture::Auto),
        cpu: s.cpu,
        memory: s.memory,
        replicas,
        port: u16::try_from(s.port).ok()?,
        transport,
        env,
        secrets,
        health_check,
        stop_timeout_secs: u32::try_from(stop_timeout_secs?).ok()?,
        task_role_arn,
        execution_role_arn,
        registry_credentials: s.registry_credentials.clone(),
        network: ValidNetwork {
            subnets: network.subnets,
            security_groups: network.security_groups,
            assign_public_ip: network.assign_public_ip,
        },
        logging,
        rollout: rollout?,
        read_only_root_filesystem: s.read_only_root_filesystem.or(d.spec.read_only_root_filesystem).unwrap_or(true),
        secret_rotation: s.secret_rotation.or(d.spec.secret_rotation).unwrap_or_default(),
        local_port: local_port.map(u16::try_from).transpose().ok()?,
        readiness_path,
        service_connect: service_connect.ok()?,
        load_balancers: load_balancers.ok()?,
        health_check_grace_period_secs: grace_period.ok()?,
        mcp: mcp?,
        stdio: stdio.ok()?,
        autoscaling: scaling.ok()?,
    })
}
