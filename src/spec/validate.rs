//! Validation rules: each checks one field or one relation and records a diagnostic instead of stopping, so a user
//! sees every problem of a fleet in one run.
//!
//! Fields inherited from FleetDefaults are checked once, where they are written; a service is checked for the
//! fields it sets itself and for the relations that only exist after merging (cpu/memory, rollout arithmetic).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use super::diag::{Diagnostic, path_string};
use super::image::ImageRef;
use super::types::*;
use super::valid::*;
use super::yaml::{Node, Seg};

/// Collects diagnostics for one document, resolving each field path to its line.
pub(super) struct DocCtx<'a> {
    pub file: &'a str,
    pub root: &'a Node,
    pub diags: &'a mut Vec<Diagnostic>,
}

impl DocCtx<'_> {
    pub fn err(&mut self, path: &[Seg], message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            line: self.root.line_of(path),
            path: path_string(path),
            message: message.into(),
        });
    }
}

/// Builds a field path from the schema's key names.
fn p(keys: &[&'static str]) -> Vec<Seg> {
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

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new($pat).expect("static regex"));
    };
}

re!(ECS_NAME, r"^[A-Za-z0-9_-]+$");
re!(ENV_NAME, r"^[A-Za-z_][A-Za-z0-9_]*$");
re!(ROLE_ARN, r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$");
re!(SUBNET, r"^subnet-[0-9a-f]{8,17}$");
re!(SECURITY_GROUP, r"^sg-[0-9a-f]{8,17}$");
re!(LOG_GROUP, r"^[A-Za-z0-9._/#-]+$");
re!(REGION, r"^[a-z]{2}(-[a-z]+)+-[0-9]$");
re!(STREAM_PREFIX, r"^[^:*]+$");
re!(SECRET_NAME, r"^[A-Za-z0-9/_+=.@-]+$");
re!(SECRET_ARN, r"^arn:aws(-[a-z]+)*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$");
re!(VERSION_STAGE, r"^[A-Za-z0-9_.@-]+$");
re!(VERSION_ID, r"^[A-Za-z0-9-]+$");
re!(TAG_CHARS, r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$");
re!(HEALTH_PATH, r"^/[A-Za-z0-9._~!$&()*+,;=:@%/?-]*$");

/// Host ports `spec.local.port` may name: unprivileged, so `docker compose up` needs no root.
pub const LOCAL_PORTS: std::ops::RangeInclusive<u32> = 1024..=65535;

/// Values that are credentials whatever their variable is called, and what each is.
const CREDENTIAL_VALUES: [(&str, &str); 9] = [
    (r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", "an AWS access key id"),
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----", "a private key"),
    (r"\bsk-[A-Za-z0-9_-]{20,}", "an API secret key (sk-…)"),
    (r"\bgh[pousr]_[A-Za-z0-9]{30,}", "a GitHub token"),
    (r"\bxox[abprs]-[A-Za-z0-9-]{10,}", "a Slack token"),
    (r"\bglpat-[A-Za-z0-9_-]{20,}", "a GitLab token"),
    (r"\bAIza[0-9A-Za-z_-]{35}\b", "a Google API key"),
    (r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.", "a JSON web token"),
    // The user part may be empty: Redis passwords are written `redis://:PASSWORD@host`.
    (r"://[^/\s:@]*:[^/\s@]+@", "a URL with an embedded password"),
];

/// All credential patterns in one automaton: one pass per value.
static CREDENTIAL_SET: LazyLock<regex::RegexSet> =
    LazyLock::new(|| regex::RegexSet::new(CREDENTIAL_VALUES.iter().map(|(p, _)| p)).expect("static regexes"));

/// Variable-name endings that say "this is a credential".
const CREDENTIAL_SUFFIXES: [&str; 12] = [
    "PASSWORD",
    "PASSWD",
    "_SECRET",
    "SECRET_KEY",
    "_TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "ACCESS_KEY",
    "_CREDENTIALS",
    "CLIENT_SECRET",
    "_PASS",
];

/// Variables ECS sets itself; overriding them breaks credentials or metadata inside the task.
const RESERVED_ENV_PREFIXES: [&str; 3] =
    ["AWS_CONTAINER_CREDENTIALS_", "ECS_CONTAINER_METADATA_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"];

/// Parses a duration string into whole seconds within `[min, max]`, naming the limit's source in the message.
pub(super) fn seconds(
    ctx: &mut DocCtx,
    path: &[Seg],
    value: &DurationStr,
    min: u64,
    max: u64,
    limit_source: &str,
) -> Option<u64> {
    let d: Duration = match value.parse() {
        Some(d) => d,
        None => {
            ctx.err(path, format!("`{}` is not a duration; write it like `30s`, `10m` or `1m30s`", value.0));
            return None;
        }
    };
    if d.subsec_nanos() != 0 {
        ctx.err(path, format!("{} is not a whole number of seconds", value.0));
        return None;
    }
    let secs = d.as_secs();
    if secs < min {
        ctx.err(path, format!("{} is below the {limit_source} minimum of {}", value.0, fmt_secs(min)));
        return None;
    }
    if secs > max {
        ctx.err(path, format!("{} is above the {limit_source} maximum of {}", value.0, fmt_secs(max)));
        return None;
    }
    Some(secs)
}

/// Seconds as users read ECS limits (`120s`); only spans of hours are shortened.
fn fmt_secs(s: u64) -> String {
    if s >= 3600 && s.is_multiple_of(3600) { format!("{}h", s / 3600) } else { format!("{s}s") }
}

fn check_ecs_name(ctx: &mut DocCtx, path: &[Seg], what: &str, name: &str) -> bool {
    if fits(&ECS_NAME, name, 255) {
        return true;
    }
    ctx.err(path, format!("`{name}` is not a valid {what}: use 1-255 letters, digits, `-` or `_`"));
    false
}

fn check_role(ctx: &mut DocCtx, path: &[Seg], arn: &str) {
    if !fits(&ROLE_ARN, arn, 2048) {
        ctx.err(path, format!("`{arn}` is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"));
    }
}

fn check_network(ctx: &mut DocCtx, path: &[Seg], net: &Network) {
    let subnets = with(path, "subnets");
    if net.subnets.is_empty() {
        ctx.err(&subnets, "at least one subnet is required for awsvpc networking");
    }
    if net.subnets.len() > 16 {
        ctx.err(&subnets, format!("{} subnets given; ECS allows at most 16", net.subnets.len()));
    }
    check_ids(ctx, &subnets, &net.subnets, &SUBNET, "subnet id (subnet-…)");
    let sgs = with(path, "securityGroups");
    if net.security_groups.len() > 5 {
        ctx.err(&sgs, format!("{} security groups given; ECS allows at most 5", net.security_groups.len()));
    }
    check_ids(ctx, &sgs, &net.security_groups, &SECURITY_GROUP, "security group id (sg-…)");
}

fn check_ids(ctx: &mut DocCtx, path: &[Seg], ids: &[String], re: &Regex, what: &str) {
    let mut seen = BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        let at = with_index(path, i);
        if !re.is_match(id) {
            ctx.err(&at, format!("`{id}` is not a {what}"));
        } else if !seen.insert(id) {
            ctx.err(&at, format!("`{id}` is listed twice"));
        }
    }
}

fn check_logging(ctx: &mut DocCtx, path: &[Seg], logging: &Logging) {
    if let Some(group) = &logging.group
        && !fits(&LOG_GROUP, group, 512)
    {
        ctx.err(&with(path, "group"), format!("`{group}` is not a CloudWatch Logs group name"));
    }
    if let Some(region) = &logging.region
        && !REGION.is_match(region)
    {
        ctx.err(&with(path, "region"), format!("`{region}` is not an AWS region name such as us-east-1"));
    }
    if let Some(prefix) = &logging.stream_prefix
        && !fits(&STREAM_PREFIX, prefix, 512)
    {
        ctx.err(&with(path, "streamPrefix"), "must be 1-512 characters without `:` or `*`");
    }
}

/// Checks the rollout fields that are set; returns the parsed progress deadline.
fn check_rollout(ctx: &mut DocCtx, path: &[Seg], r: &Rollout) -> Option<u64> {
    if let Some(max) = r.max_percent
        && !(100..=200).contains(&max)
    {
        ctx.err(&with(path, "maxPercent"), format!("{max} is outside 100..200"));
    }
    if let Some(min) = r.min_healthy_percent
        && min > 100
    {
        ctx.err(&with(path, "minHealthyPercent"), format!("{min} is above 100"));
    }
    if let Some(limit) = r.history_limit
        && !(1..=100).contains(&limit)
    {
        ctx.err(&with(path, "historyLimit"), format!("{limit} is outside 1..100"));
    }
    r.progress_deadline
        .as_ref()
        .and_then(|d| seconds(ctx, &with(path, "progressDeadline"), d, 60, 24 * 3600, "mcpfleet"))
}

/// Validates the FleetDefaults document's own fields.
pub(super) fn check_defaults(ctx: &mut DocCtx, spec: &FleetDefaultsSpec) {
    if let Some(cluster) = &spec.cluster {
        check_ecs_name(ctx, &p(&["spec", "cluster"]), "cluster name", cluster);
    }
    if let Some(net) = &spec.network {
        check_network(ctx, &p(&["spec", "network"]), net);
    }
    if let Some(arn) = &spec.execution_role_arn {
        check_role(ctx, &p(&["spec", "executionRoleArn"]), arn);
    }
    if let Some(arn) = &spec.task_role_arn {
        check_role(ctx, &p(&["spec", "taskRoleArn"]), arn);
    }
    if let Some(logging) = &spec.logging {
        check_logging(ctx, &p(&["spec", "logging"]), logging);
    }
    if let Some(st) = &spec.stop_timeout {
        seconds(ctx, &p(&["spec", "stopTimeout"]), st, 2, 120, "Fargate");
    }
    if let Some(r) = &spec.rollout {
        check_rollout(ctx, &p(&["spec", "rollout"]), r);
    }
}

/// The defaults after their own validation, with parsed durations, ready to merge into services.
#[derive(Debug, Clone, Default)]
pub(super) struct Defaults {
    pub spec: FleetDefaultsSpec,
    pub stop_timeout_secs: Option<u64>,
    pub progress_deadline_secs: Option<u64>,
    /// A FleetDefaults document was written but could not be read at all.
    unreadable: bool,
    /// Fields of the FleetDefaults (`spec.network`) that were written but did not parse.
    broken: BTreeSet<String>,
}

impl Defaults {
    pub fn new(spec: FleetDefaultsSpec, unreadable: bool, broken: BTreeSet<String>) -> Defaults {
        // Durations were range-checked (with diagnostics) by check_defaults; a bad one simply does not apply.
        let parse = |d: &Option<DurationStr>| d.as_ref().and_then(DurationStr::parse).map(|d| d.as_secs());
        Defaults {
            stop_timeout_secs: parse(&spec.stop_timeout),
            progress_deadline_secs: parse(&spec.rollout.as_ref().and_then(|r| r.progress_deadline.clone())),
            spec,
            unreadable,
            broken,
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
        check_ecs_name(ctx, &p(&["metadata", "name"]), "service name", name);
    }
    check_labels(ctx, &doc.metadata.labels);

    let cluster = match (&s.cluster, &d.spec.cluster) {
        (Some(c), _) => {
            check_ecs_name(ctx, &p(&["spec", "cluster"]), "cluster name", c);
            c.clone()
        }
        (None, Some(c)) => c.clone(),
        (None, None) => {
            if !unknown("cluster") {
                ctx.err(&p(&["spec", "cluster"]), "required: set it here or in FleetDefaults");
            }
            String::new()
        }
    };

    let image = match ImageRef::parse(&s.image) {
        _ if broken("image") => None,
        Ok(i) => Some(i),
        Err(e) => {
            ctx.err(&p(&["spec", "image"]), e);
            None
        }
    };

    if !broken("cpu") && !broken("memory") {
        check_fargate_size(ctx, s.cpu, s.memory);
    }

    let replicas = s.replicas.unwrap_or(1);
    if replicas > 5000 {
        ctx.err(&p(&["spec", "replicas"]), format!("{replicas} is above ECS's 5000 tasks per service"));
    }
    if !broken("port") && !(1..=65535).contains(&s.port) {
        ctx.err(&p(&["spec", "port"]), format!("{} is not a TCP port (1..65535)", s.port));
    }
    let local_port = s.local.as_ref().and_then(|l| l.port);
    if let Some(port) = local_port.filter(|port| !LOCAL_PORTS.contains(port)) {
        ctx.err(
            &p(&["spec", "local", "port"]),
            format!(
                "{port} is not a host port the local stack can publish ({}..{})",
                LOCAL_PORTS.start(),
                LOCAL_PORTS.end()
            ),
        );
    }

    let env: BTreeMap<String, String> = s.env.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    check_env(ctx, &env);
    let secrets = check_secrets(ctx, &s.secrets, &env);

    let health_check = s.health_check.as_ref().and_then(|h| check_health(ctx, h));

    let stop_timeout_secs = match &s.stop_timeout {
        Some(st) => seconds(ctx, &p(&["spec", "stopTimeout"]), st, 2, 120, "Fargate"),
        None => Some(d.stop_timeout_secs.unwrap_or(30)),
    };

    if let Some(arn) = &s.task_role_arn {
        check_role(ctx, &p(&["spec", "taskRoleArn"]), arn);
    }
    if let Some(arn) = &s.execution_role_arn {
        check_role(ctx, &p(&["spec", "executionRoleArn"]), arn);
    }
    let execution_role_arn = s.execution_role_arn.clone().or_else(|| d.spec.execution_role_arn.clone());
    let task_role_arn = s.task_role_arn.clone().or_else(|| d.spec.task_role_arn.clone());

    let network = match (&s.network, &d.spec.network) {
        (Some(n), _) => {
            check_network(ctx, &p(&["spec", "network"]), n);
            Some(n.clone())
        }
        (None, Some(n)) => Some(n.clone()),
        (None, None) => {
            if !unknown("network") {
                ctx.err(
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
            check_logging(ctx, &p(&["spec", "logging"]), l);
        }
        None
    } else {
        merge_logging(ctx, s.logging.as_ref(), d.spec.logging.as_ref(), image.as_ref(), name)
    };

    if execution_role_arn.is_none() && !unknown("executionRoleArn") {
        let needs = if image.as_ref().is_some_and(|i| i.ecr().is_some()) {
            Some("to pull an ECR image")
        } else if !secrets.is_empty() {
            Some("to read secrets")
        } else if logging.is_some() {
            Some("to write awslogs")
        } else {
            None
        };
        if let Some(why) = needs {
            ctx.err(&p(&["spec", "executionRoleArn"]), format!("required {why}: set it here or in FleetDefaults"));
        }
    }

    // The rollout relation needs the real replica count and both bounds; without them only the service's own
    // fields can be judged.
    let rollout = if unknown("rollout") || broken("replicas") {
        if let Some(r) = &s.rollout {
            check_rollout(ctx, &p(&["spec", "rollout"]), r);
        }
        None
    } else {
        merge_rollout(ctx, s.rollout.as_ref(), d, replicas)
    };

    if ctx.diags.len() > before || !unparsed.is_empty() {
        return None;
    }
    let network = network?;
    Some(ValidService {
        name: name.clone(),
        labels: doc.metadata.labels.clone(),
        source: Source { file: ctx.file.to_string(), line: doc_line },
        cluster,
        image: image?,
        architecture: s.architecture.or(d.spec.architecture).unwrap_or(Architecture::Auto),
        cpu: s.cpu,
        memory: s.memory,
        replicas,
        port: u16::try_from(s.port).ok()?,
        transport: s.transport.unwrap_or(Transport::StreamableHttp),
        env,
        secrets,
        health_check,
        stop_timeout_secs: u32::try_from(stop_timeout_secs?).ok()?,
        task_role_arn,
        execution_role_arn,
        network: ValidNetwork {
            subnets: network.subnets,
            security_groups: network.security_groups,
            assign_public_ip: network.assign_public_ip,
        },
        logging,
        rollout: rollout?,
        read_only_root_filesystem: s.read_only_root_filesystem.or(d.spec.read_only_root_filesystem).unwrap_or(true),
        local_port: local_port.map(u16::try_from).transpose().ok()?,
    })
}

/// ECS allows 50 tags a resource; mcpfleet's own take up to 11 (state, and `mcpfleet.io/labels`).
const MAX_LABELS: usize = 39;

fn check_labels(ctx: &mut DocCtx, labels: &BTreeMap<String, String>) {
    let base = p(&["metadata", "labels"]);
    if labels.len() > MAX_LABELS {
        ctx.err(&base, format!("{} labels given; at most {MAX_LABELS} fit beside mcpfleet's own tags", labels.len()));
    }
    // mcpfleet records the keys it put there in one tag value (at most 256 characters), comma-separated.
    let keys_len = labels.keys().map(|k| k.chars().count()).sum::<usize>() + labels.len().saturating_sub(1);
    if keys_len > 256 {
        ctx.err(&base, format!("label keys take {keys_len} characters together (with a comma between); at most 256 fit in the tag that records them"));
    }
    for (k, v) in labels {
        let at = with(&base, k.clone());
        if k.is_empty() || k.chars().count() > 128 || !TAG_CHARS.is_match(k) {
            ctx.err(&at, "label keys must be 1-128 letters, digits, spaces or `_ . : / = + - @`");
        } else if k.to_ascii_lowercase().starts_with("aws:") || k.starts_with("mcpfleet.io/") {
            ctx.err(&at, "the prefixes `aws:` and `mcpfleet.io/` are reserved");
        }
        if v.chars().count() > 256 || !TAG_CHARS.is_match(v) {
            ctx.err(&at, "label values must be 0-256 letters, digits, spaces or `_ . : / = + - @`");
        }
    }
}

fn check_fargate_size(ctx: &mut DocCtx, cpu: u32, memory: u32) {
    match FARGATE_SIZES.iter().find(|(c, ..)| *c == cpu) {
        None => {
            let sizes: Vec<String> = FARGATE_SIZES.iter().map(|(c, ..)| c.to_string()).collect();
            ctx.err(&p(&["spec", "cpu"]), format!("{cpu} is not a Fargate CPU size ({})", sizes.join(", ")));
        }
        Some((c, min, max, step)) if !fargate_pair_ok(cpu, memory) => {
            let allowed =
                if *step == 0 { "512, 1024 or 2048".to_string() } else { format!("{min}..{max} in steps of {step}") };
            ctx.err(
                &p(&["spec", "memory"]),
                format!("{memory} MiB is not a valid Fargate size for cpu {c} (allowed: {allowed})"),
            );
        }
        Some(_) => {}
    }
}

fn check_env(ctx: &mut DocCtx, env: &BTreeMap<String, String>) {
    for (name, value) in env {
        let at = with(&p(&["spec", "env"]), name.clone());
        if !ENV_NAME.is_match(name) {
            ctx.err(&at, "not a valid variable name (letters, digits and `_`, not starting with a digit)");
            continue;
        }
        let upper = name.to_ascii_uppercase();
        if RESERVED_ENV_PREFIXES.iter().any(|pre| upper.starts_with(pre)) {
            ctx.err(&at, "is set by ECS inside every task; overriding it breaks task credentials or metadata");
            continue;
        }
        if value.is_empty() {
            continue;
        }
        // The value itself is never echoed: it may be a real credential.
        if let Some(i) = CREDENTIAL_SET.matches(value).iter().next() {
            let what = CREDENTIAL_VALUES[i].1;
            ctx.err(&at, format!("value looks like {what}; move it to spec.secrets (a Secrets Manager reference)"));
        } else if let Some(suffix) =
            CREDENTIAL_SUFFIXES.iter().find(|s| upper.ends_with(*s) || upper == s.trim_start_matches('_'))
        {
            ctx.err(
                &at,
                format!(
                    "a literal value for a credential-like name (…{}); move it to spec.secrets (a Secrets Manager reference)",
                    suffix.trim_start_matches('_')
                ),
            );
        }
    }
}

fn check_secrets(
    ctx: &mut DocCtx,
    secrets: &BTreeMap<String, SecretSource>,
    env: &BTreeMap<String, String>,
) -> BTreeMap<String, SecretRef> {
    let mut out = BTreeMap::new();
    for (name, source) in secrets {
        let at = with(&p(&["spec", "secrets"]), name.clone());
        if !ENV_NAME.is_match(name) {
            ctx.err(&at, "not a valid variable name (letters, digits and `_`, not starting with a digit)");
        }
        if env.contains_key(name) {
            ctx.err(&at, format!("`{name}` is also set in spec.env; a variable comes from env or secrets, not both"));
        }
        let r = match source {
            SecretSource::Name(s) => SecretRef { secret: s.clone(), key: None, version_stage: None, version_id: None },
            SecretSource::Ref(r) => SecretRef {
                secret: r.secret.clone(),
                key: r.key.clone(),
                version_stage: r.version_stage.clone(),
                version_id: r.version_id.clone(),
            },
        };
        let field = if matches!(source, SecretSource::Ref(_)) { with(&at, "secret") } else { at.clone() };
        let id = &r.secret;
        if id.starts_with("arn:") {
            if id.contains(":ssm:") {
                ctx.err(&field, "SSM parameters are not supported; reference a Secrets Manager secret");
            } else if !fits(&SECRET_ARN, id, 2048) {
                let hint = if id.matches(':').count() > 6 {
                    " (for a JSON key or version use {secret, key, versionStage})"
                } else {
                    ""
                };
                ctx.err(&field, format!("`{id}` is not a Secrets Manager secret ARN{hint}"));
            }
        } else if !fits(&SECRET_NAME, id, 512) {
            ctx.err(&field, format!("`{id}` is not a secret name (1-512 of letters, digits and `/_+=.@-`)"));
        }
        if let Some(key) = &r.key
            && (key.is_empty() || key.contains(':'))
        {
            ctx.err(&with(&at, "key"), "a JSON key must be non-empty and must not contain `:`");
        }
        if let Some(stage) = &r.version_stage
            && !fits(&VERSION_STAGE, stage, 256)
        {
            ctx.err(&with(&at, "versionStage"), format!("`{stage}` is not a version stage"));
        }
        if let Some(vid) = &r.version_id
            && !(vid.len() >= 32 && fits(&VERSION_ID, vid, 64))
        {
            ctx.err(&with(&at, "versionId"), format!("`{vid}` is not a version id"));
        }
        if r.version_stage.is_some() && r.version_id.is_some() {
            ctx.err(&at, "set versionStage or versionId, not both");
        }
        out.insert(name.clone(), r);
    }
    out
}

fn check_health(ctx: &mut DocCtx, h: &HealthCheck) -> Option<ValidHealthCheck> {
    let base = p(&["spec", "healthCheck"]);
    let before = ctx.diags.len();
    let probe = match (&h.path, &h.command) {
        (Some(_), Some(_)) => {
            ctx.err(&base, "set either `path` or `command`, not both");
            None
        }
        (None, None) => {
            ctx.err(&base, "set `path` (an HTTP probe) or `command`");
            None
        }
        (Some(path), None) => {
            if !HEALTH_PATH.is_match(path) {
                ctx.err(&with(&base, "path"), format!("`{path}` must start with `/` and contain no spaces or quotes"));
            }
            Some(HealthProbe::Http { path: path.clone(), probe: h.probe.unwrap_or(Probe::Python) })
        }
        (None, Some(cmd)) => {
            if h.probe.is_some() {
                ctx.err(&with(&base, "probe"), "only applies with `path`");
            }
            let at = with(&base, "command");
            match cmd.first().map(String::as_str) {
                Some("CMD" | "CMD-SHELL") if cmd.len() >= 2 && cmd[1..].iter().all(|c| !c.is_empty()) => {}
                Some("CMD" | "CMD-SHELL") => ctx.err(&at, "needs a program after CMD/CMD-SHELL"),
                _ => ctx.err(&at, "must start with \"CMD\" or \"CMD-SHELL\" as in ECS, e.g. [\"CMD\", \"/bin/check\"]"),
            }
            Some(HealthProbe::Command(cmd.clone()))
        }
    };
    let dur = |ctx: &mut DocCtx, field: &'static str, v: &Option<DurationStr>, default: u64, min: u64, max: u64| match v
    {
        Some(v) => seconds(ctx, &with(&base, field), v, min, max, "ECS"),
        None => Some(default),
    };
    let interval = dur(ctx, "interval", &h.interval, 30, 5, 300);
    let timeout = dur(ctx, "timeout", &h.timeout, 5, 2, 60);
    let start_period = dur(ctx, "startPeriod", &h.start_period, 0, 0, 300);
    let retries = h.retries.unwrap_or(3);
    if !(1..=10).contains(&retries) {
        ctx.err(&with(&base, "retries"), format!("{retries} is outside ECS's 1..10"));
    }
    if let (Some(i), Some(t)) = (interval, timeout)
        && t >= i
    {
        ctx.err(
            &with(&base, "timeout"),
            format!("{} must be shorter than the interval ({})", fmt_secs(t), fmt_secs(i)),
        );
    }
    if ctx.diags.len() > before {
        return None;
    }
    Some(ValidHealthCheck {
        probe: probe?,
        interval_secs: interval? as u32,
        timeout_secs: timeout? as u32,
        retries,
        start_period_secs: start_period? as u32,
    })
}

fn merge_logging(
    ctx: &mut DocCtx,
    own: Option<&Logging>,
    defaults: Option<&Logging>,
    image: Option<&ImageRef>,
    name: &str,
) -> Option<ValidLogging> {
    if let Some(l) = own {
        check_logging(ctx, &p(&["spec", "logging"]), l);
    }
    if own.is_none() && defaults.is_none() {
        return None;
    }
    let pick = |f: fn(&Logging) -> Option<&String>| own.and_then(f).or_else(|| defaults.and_then(f)).cloned();
    let group = pick(|l| l.group.as_ref());
    let region = pick(|l| l.region.as_ref()).or_else(|| image.and_then(ImageRef::ecr).map(|e| e.region));
    let at = p(&["spec", "logging"]);
    let Some(group) = group else {
        ctx.err(&with(&at, "group"), "required when logging is configured (here or in FleetDefaults)");
        return None;
    };
    let Some(region) = region else {
        if image.is_some() {
            ctx.err(&with(&at, "region"), "required: the image is not in ECR, so its region cannot be assumed");
        }
        return None;
    };
    Some(ValidLogging {
        group,
        region,
        stream_prefix: pick(|l| l.stream_prefix.as_ref()).unwrap_or_else(|| name.to_string()),
    })
}

fn merge_rollout(ctx: &mut DocCtx, own: Option<&Rollout>, d: &Defaults, replicas: u32) -> Option<ValidRollout> {
    let at = p(&["spec", "rollout"]);
    let before = ctx.diags.len();
    let own_deadline = own.and_then(|r| check_rollout(ctx, &at, r));
    if ctx.diags.len() > before {
        return None;
    }
    let dflt = d.spec.rollout.clone().unwrap_or_default();
    let own = own.cloned().unwrap_or_default();
    let r = ValidRollout {
        max_percent: own.max_percent.or(dflt.max_percent).unwrap_or(200),
        min_healthy_percent: own.min_healthy_percent.or(dflt.min_healthy_percent).unwrap_or(100),
        progress_deadline_secs: own_deadline.or(d.progress_deadline_secs).unwrap_or(600),
        auto_rollback: own.auto_rollback.or(dflt.auto_rollback).unwrap_or(true),
        history_limit: own.history_limit.or(dflt.history_limit).unwrap_or(10),
    };
    // A bound that is already out of range (here, in FleetDefaults, or too many replicas) has its own diagnostic;
    // the relation between them would only add noise, and its arithmetic is meaningless on such values.
    let bounds_ok = (100..=200).contains(&r.max_percent) && r.min_healthy_percent <= 100 && replicas <= 5000;
    if !bounds_ok {
        return None;
    }
    // ECS rounds the upper bound down and the lower bound up; when they meet, no task can ever be replaced.
    // u64: the product of a task count and a percentage must not wrap whatever the inputs.
    if replicas > 0 {
        let replicas64 = u64::from(replicas);
        let max_tasks = replicas64 * u64::from(r.max_percent) / 100;
        let min_tasks = (replicas64 * u64::from(r.min_healthy_percent)).div_ceil(100);
        if max_tasks <= min_tasks {
            ctx.err(
                &at,
                format!(
                    "with {replicas} replica(s), maxPercent {} allows {max_tasks} task(s) and minHealthyPercent {} keeps {min_tasks}: a deployment could never start a new task",
                    r.max_percent, r.min_healthy_percent
                ),
            );
            return None;
        }
    }
    Some(r)
}
