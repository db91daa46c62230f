//! Unit tests for loading, defaults merging and every validation rule, through the public `load_*` entry points
//! so each test sees exactly what a user would.

use super::*;

const BASE: &str = "apiVersion: mcpfleet.io/v1alpha1
kind: McpService
metadata:
  name: svc
spec:
  cluster: mcp-test
  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/svc:v1
  cpu: 256
  memory: 512
  port: 8080
  executionRoleArn: arn:aws:iam::123456789012:role/mcp-exec
  network:
    subnets: [subnet-0abc1234]
";

/// The base service with `extra` appended to its spec and each `(from, to)` replacement applied.
fn svc(extra: &str, replace: &[(&str, &str)]) -> String {
    let mut text = BASE.to_string();
    for (from, to) in replace {
        assert!(text.contains(from), "{from} not in base");
        text = text.replacen(from, to, 1);
    }
    text + extra
}

fn errors(text: &str) -> Vec<String> {
    match load_str("m.yaml", text) {
        Ok(_) => vec![],
        Err(d) => d.0.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts exactly one diagnostic, containing `needle`.
fn one_error(text: &str, needle: &str) -> String {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error containing {needle:?}, got {errs:#?}");
    assert!(errs[0].contains(needle), "{:?} does not contain {needle:?}", errs[0]);
    errs[0].clone()
}

fn valid(text: &str) -> ValidService {
    match load_str("m.yaml", text) {
        Ok(f) => f.services.into_iter().next().unwrap(),
        Err(d) => panic!("unexpected diagnostics: {:#?}", d.0),
    }
}

#[test]
fn base_is_valid_and_gets_defaults() {
    let s = valid(&svc("", &[]));
    assert_eq!(s.replicas, 1);
    assert_eq!(s.stop_timeout_secs, 30);
    assert_eq!(s.architecture, Architecture::Auto);
    assert_eq!(s.transport, Transport::StreamableHttp);
    assert!(s.read_only_root_filesystem);
    assert_eq!(
        s.rollout,
        ValidRollout {
            max_percent: 200,
            min_healthy_percent: 100,
            progress_deadline_secs: 600,
            auto_rollback: true,
            history_limit: 10
        }
    );
    assert_eq!(s.source, Source { file: "m.yaml".into(), line: 1 });
}

#[test]
fn fargate_cpu_memory_pairs() {
    for (cpu, mem) in [(256, 512), (256, 2048), (512, 4096), (4096, 30720), (8192, 20480), (16384, 122880)] {
        let text = svc("", &[("cpu: 256", &format!("cpu: {cpu}")), ("memory: 512", &format!("memory: {mem}"))]);
        valid(&text);
    }
    for (cpu, mem, needle) in [
        (256, 4096, "512, 1024 or 2048"),
        (512, 512, "1024..4096 in steps of 1024"),
        (8192, 18432, "16384..61440 in steps of 4096"),
        (1024, 9216, "2048..8192"),
    ] {
        let text = svc("", &[("cpu: 256", &format!("cpu: {cpu}")), ("memory: 512", &format!("memory: {mem}"))]);
        one_error(&text, needle);
    }
    let line = one_error(&svc("", &[("cpu: 256", "cpu: 1000")]), "not a Fargate CPU size");
    assert!(line.starts_with("m.yaml:8: spec.cpu: "), "{line}");
}

#[test]
fn health_check_ranges() {
    let hc = |body: &str| svc(&format!("  healthCheck:\n    path: /health\n{body}"), &[]);
    let s = valid(&hc("    interval: 5s\n    timeout: 2s\n    retries: 10\n    startPeriod: 300s\n"));
    let h = s.health_check.unwrap();
    assert_eq!((h.interval_secs, h.timeout_secs, h.retries, h.start_period_secs), (5, 2, 10, 300));
    one_error(
        &hc("    interval: 4s\n    timeout: 2s\n"),
        "spec.healthCheck.interval: 4s is below the ECS minimum of 5s",
    );
    one_error(&hc("    interval: 301s\n"), "above the ECS maximum of 300s");
    one_error(&hc("    timeout: 1s\n"), "below the ECS minimum of 2s");
    one_error(&hc("    interval: 300s\n    timeout: 61s\n"), "above the ECS maximum of 60s");
    one_error(&hc("    retries: 0\n"), "0 is outside ECS's 1..10");
    one_error(&hc("    startPeriod: 301s\n"), "above the ECS maximum of 300s");
    one_error(&hc("    interval: 10s\n    timeout: 15s\n"), "15s must be shorter than the interval (10s)");
    one_error(&hc("    interval: 1500ms\n"), "not a whole number of seconds");
    one_error(&svc("  healthCheck:\n    interval: 10s\n", &[]), "set `path` (an HTTP probe) or `command`");
    one_error(&svc("  healthCheck:\n    path: health\n", &[]), "must start with `/`");
    one_error(&svc("  healthCheck:\n    path: \"/h'\"\n", &[]), "no spaces or quotes");
    one_error(&svc("  healthCheck:\n    command: [CMD]\n", &[]), "needs a program");
    one_error(&svc("  healthCheck:\n    command: [CMD, x]\n    probe: curl\n", &[]), "only applies with `path`");
    let s = valid(&svc("  healthCheck:\n    command: [CMD-SHELL, \"test -f /ready\"]\n", &[]));
    assert_eq!(s.health_check.unwrap().probe, HealthProbe::Command(vec!["CMD-SHELL".into(), "test -f /ready".into()]));
}

#[test]
fn stop_timeout_limits() {
    valid(&svc("  stopTimeout: 2s\n", &[]));
    valid(&svc("  stopTimeout: 2m\n", &[]));
    let line = one_error(&svc("  stopTimeout: 300s\n", &[]), "");
    assert_eq!(line, "m.yaml:14: spec.stopTimeout: 300s is above the Fargate maximum of 120s");
    one_error(&svc("  stopTimeout: 1s\n", &[]), "below the Fargate minimum of 2s");
    one_error(&svc("  stopTimeout: 30\n", &[]), "spec.stopTimeout: invalid type: integer `30`, expected a string");
}

#[test]
fn ecs_names() {
    valid(&svc("", &[("name: svc", "name: My_Service-2")]));
    one_error(&svc("", &[("name: svc", "name: a.b")]), "metadata.name: `a.b` is not a valid service name");
    one_error(&svc("", &[("name: svc", &format!("name: {}", "x".repeat(256)))]), "not a valid service name");
    one_error(&svc("", &[("name: svc", "name: ''")]), "not a valid service name");
    one_error(
        &svc("", &[("cluster: mcp-test", "cluster: mcp/test")]),
        "spec.cluster: `mcp/test` is not a valid cluster name",
    );
}

#[test]
fn duplicate_services_across_files() {
    let files = [
        SourceFile { name: "a.yaml".into(), text: svc("", &[]) },
        SourceFile { name: "b.yaml".into(), text: format!("---\n{}", svc("", &[])) },
    ];
    let err = load_sources(&files).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(
        err.0[0].to_string(),
        "b.yaml:5: metadata.name: service `svc` is already defined at a.yaml:4; names must be unique in a fleet"
    );
}

#[test]
fn local_ports_are_unprivileged_and_unique_across_files() {
    assert_eq!(valid(&svc("  local: { port: 9000 }\n", &[])).local_port, Some(9000));
    assert_eq!(valid(&svc("", &[])).local_port, None);
    for bad in ["80", "1023", "65536", "4294967295"] {
        let err = one_error(&svc(&format!("  local:\n    port: {bad}\n"), &[]), "spec.local.port");
        assert_eq!(
            err,
            format!("m.yaml:15: spec.local.port: {bad} is not a host port the local stack can publish (1024..65535)")
        );
    }
    one_error(&svc("  local: { port: -1 }\n", &[]), "m.yaml:14: spec.local.port");
    one_error(&svc("  local: { host: 9000 }\n", &[]), "m.yaml:14: spec.local");

    let other = |name: &str| svc("  local:\n    port: 9000\n", &[("name: svc", &format!("name: {name}"))]);
    let files = [
        SourceFile { name: "a.yaml".into(), text: other("first") },
        SourceFile { name: "b.yaml".into(), text: format!("---\n{}", other("second")) },
    ];
    let err = load_sources(&files).unwrap_err();
    assert_eq!(err.0.len(), 1, "{:#?}", err.0);
    assert_eq!(
        err.0[0].to_string(),
        "b.yaml:16: spec.local.port: host port 9000 is already taken by service `first` at a.yaml:15; local ports must be unique"
    );
}

#[test]
fn image_references() {
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let s = valid(&svc("", &[("svc:v1", &format!("svc@{digest}"))]));
    assert_eq!(s.image.digest.as_deref(), Some(digest));
    one_error(&svc("", &[("svc:v1", "svc")]), "neither a tag nor a digest");
    one_error(&svc("", &[("mcp/svc:v1", "mcp/SVC:v1")]), "must be lowercase");
    one_error(&svc("", &[("svc:v1", "svc@sha256:1234")]), "is not sha256:<64 lowercase hex digits>");
}

#[test]
fn secrets_forms_and_collisions() {
    let s = valid(&svc(
        "  secrets:\n    A: prod/a\n    B: { secret: prod/b, key: api_key }\n    C: { secret: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/c-AbCdEf', versionStage: AWSPREVIOUS }\n",
        &[],
    ));
    assert_eq!(s.secrets["A"].value_from("arn:x"), "arn:x");
    assert_eq!(s.secrets["B"].value_from("arn:x"), "arn:x:api_key::");
    assert_eq!(s.secrets["C"].value_from("arn:x"), "arn:x::AWSPREVIOUS:");
    one_error(
        &svc("  env:\n    A: x\n  secrets:\n    A: prod/a\n", &[]),
        "spec.secrets.A: `A` is also set in spec.env",
    );
    one_error(&svc("  secrets:\n    1A: prod/a\n", &[]), "not a valid variable name");
    one_error(&svc("  secrets:\n    A: 'prod a'\n", &[]), "is not a secret name");
    one_error(
        &svc("  secrets:\n    A: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf:key::'\n", &[]),
        "for a JSON key or version use {secret, key, versionStage}",
    );
    one_error(&svc("  secrets:\n    A: 'arn:aws:ssm:us-east-1:123456789012:parameter/x'\n", &[]), "SSM parameters");
    one_error(&svc("  secrets:\n    A: { secret: a, key: 'x:y' }\n", &[]), "spec.secrets.A.key");
    one_error(
        &svc("  secrets:\n    A: { secret: a, versionStage: S, versionId: 0123456789abcdef0123456789abcdef }\n", &[]),
        "not both",
    );
    one_error(
        &svc("  secrets:\n    A: { secrt: a }\n", &[]),
        "spec.secrets.A.secrt: unknown field (expected one of secret, key",
    );
    one_error(&svc("  secrets:\n    A: [a]\n", &[]), "expected a secret name/ARN or a mapping");
}

#[test]
fn every_bad_env_and_secret_entry_is_reported() {
    let text = svc(
        "  env:\n    A: [1]\n    OK: x\n    B: {x: 1}\n    1BAD: y\n  secrets:\n    S1: [x]\n    S2: prod/ok\n    S3: 5\n",
        &[],
    );
    assert_eq!(
        errors(&text),
        vec![
            "m.yaml:15: spec.env.A: invalid type: sequence, expected a string, number or boolean",
            "m.yaml:17: spec.env.B: invalid type: map, expected a string, number or boolean",
            "m.yaml:18: spec.env.1BAD: not a valid variable name (letters, digits and `_`, not starting with a digit)",
            "m.yaml:20: spec.secrets.S1: invalid type: sequence, expected a secret name/ARN or a mapping {secret, key, versionStage, versionId}",
            "m.yaml:22: spec.secrets.S3: invalid type: number, expected a secret name/ARN or a mapping {secret, key, versionStage, versionId}",
        ]
    );
}

#[test]
fn too_long_labels_are_told_their_length() {
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(257);
    let text =
        svc("", &[("  name: svc\n", &format!("  name: svc\n  labels:\n    {long_key}: x\n    team: {long_value}\n"))]);
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].ends_with("label keys must be 1-128 characters long; this one has 129"), "{errs:#?}");
    assert!(errs[1].ends_with("label values must be at most 256 characters long; this one has 257"), "{errs:#?}");
}

#[test]
fn credentials_in_env_are_refused_without_echoing_them() {
    for (name, value) in [
        ("DB_PASSWORD", "hunter2"),
        ("GITHUB_TOKEN", "abc"),
        ("OPENAI_API_KEY", "abc"),
        ("CLIENT_SECRET", "abc"),
        ("AWS_SECRET_ACCESS_KEY", "abc"),
        ("PASSWORD", "abc"),
        ("CONFIG", "AKIAIOSFODNN7EXAMPLE"),
        ("UPSTREAM", "sk-proj-abcdefghijklmnopqrstuvwx"),
        ("DATABASE_URL", "postgres://admin:s3cr3t@db:5432/app"),
        ("REDIS_URL", "redis://:s3cret@cache:6379/0"),
        ("CACHE", "rediss://default:s3cret@cache:6380"),
        ("KEY_PEM", "-----BEGIN RSA PRIVATE KEY-----"),
    ] {
        let line = one_error(&svc(&format!("  env:\n    {name}: '{value}'\n"), &[]), "spec.secrets");
        assert!(line.contains(&format!("spec.env.{name}")), "{line}");
        assert!(!line.contains(value), "the value leaked into {line}");
    }
    // Look-alikes that are not credentials.
    let s = valid(&svc(
        "  env:\n    MAX_TOKENS: '4096'\n    TOKEN_URL: https://auth.example.com/token\n    REDIS_URL: redis://cache:6379/0\n    UPSTREAM: 'http://[::1]:8080/x'\n    DB_PASSWORD: ''\n    DATABASE_URL: postgres://db:5432/app\n    PORT: 8080\n    DEBUG: false\n",
        &[],
    ));
    assert_eq!(s.env["PORT"], "8080");
    assert_eq!(s.env["DEBUG"], "false");
    one_error(&svc("  env:\n    ECS_CONTAINER_METADATA_URI_V4: x\n", &[]), "set by ECS");
    one_error(&svc("  env:\n    A: [1]\n", &[]), "expected a string, number or boolean");
}

#[test]
fn fleet_defaults_merge_and_are_validated_where_written() {
    let defaults = "apiVersion: mcpfleet.io/v1alpha1
kind: FleetDefaults
spec:
  cluster: from-defaults
  network: { subnets: [subnet-0def1234], securityGroups: [sg-0def1234], assignPublicIp: true }
  executionRoleArn: arn:aws:iam::123456789012:role/exec
  taskRoleArn: arn:aws:iam::123456789012:role/task
  logging: { group: /mcp/fleet, streamPrefix: mcp }
  architecture: arm64
  stopTimeout: 45s
  readOnlyRootFilesystem: false
  rollout: { minHealthyPercent: 50, progressDeadline: 15m, historyLimit: 5 }
";
    let service = "apiVersion: mcpfleet.io/v1alpha1
kind: McpService
metadata: { name: svc }
spec:
  image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/mcp/svc:v1
  cpu: 256
  memory: 512
  port: 8080
  replicas: 2
  logging: { region: eu-central-1 }
  rollout: { maxPercent: 150 }
";
    let fleet = load_str("f.yaml", &format!("{defaults}---\n{service}")).unwrap();
    let s = &fleet.services[0];
    assert_eq!(s.cluster, "from-defaults");
    assert_eq!(s.network.subnets, vec!["subnet-0def1234"]);
    assert!(s.network.assign_public_ip);
    assert_eq!(s.task_role_arn.as_deref(), Some("arn:aws:iam::123456789012:role/task"));
    assert_eq!(s.architecture, Architecture::Arm64);
    assert_eq!(s.stop_timeout_secs, 45);
    assert!(!s.read_only_root_filesystem);
    assert_eq!(
        s.logging,
        Some(ValidLogging { group: "/mcp/fleet".into(), region: "eu-central-1".into(), stream_prefix: "mcp".into() })
    );
    assert_eq!(
        s.rollout,
        ValidRollout {
            max_percent: 150,
            min_healthy_percent: 50,
            progress_deadline_secs: 900,
            auto_rollback: true,
            history_limit: 5
        }
    );

    // The region of an ECR image is the logging region when none is written.
    let fleet =
        load_str("f.yaml", &format!("{defaults}---\n{}", service.replace("  logging: { region: eu-central-1 }\n", "")))
            .unwrap();
    assert_eq!(fleet.services[0].logging.as_ref().unwrap().region, "eu-west-1");

    // A bad default is reported once, on the FleetDefaults line, not once per service.
    let bad = format!(
        "{}---\n{service}---\n{}",
        defaults.replace("stopTimeout: 45s", "stopTimeout: 500s"),
        service.replace("name: svc", "name: svc2")
    );
    let errs = errors(&bad);
    assert_eq!(errs, vec!["m.yaml:10: spec.stopTimeout: 500s is above the Fargate maximum of 120s"]);

    // Two FleetDefaults: the second is refused and the first named.
    let two = load_sources(&[
        SourceFile { name: "a.yaml".into(), text: defaults.into() },
        SourceFile { name: "b.yaml".into(), text: format!("{service}---\n{defaults}") },
    ])
    .unwrap_err();
    assert_eq!(two.0.len(), 1);
    assert_eq!(
        two.0[0].to_string(),
        "b.yaml:13: kind: only one FleetDefaults is allowed per fleet; the first is at a.yaml:1"
    );
}

#[test]
fn required_settings_without_defaults() {
    one_error(&svc("", &[("  cluster: mcp-test\n", "")]), "spec.cluster: required");
    one_error(&svc("", &[("  network:\n    subnets: [subnet-0abc1234]\n", "")]), "spec.network: required");
    one_error(
        &svc("", &[("  executionRoleArn: arn:aws:iam::123456789012:role/mcp-exec\n", "")]),
        "required to pull an ECR image",
    );
    // A public image without secrets or logs needs no execution role.
    valid(&svc(
        "",
        &[
            ("  executionRoleArn: arn:aws:iam::123456789012:role/mcp-exec\n", ""),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/svc:v1", "ghcr.io/acme/svc:v1"),
        ],
    ));
    one_error(&svc("  logging: { region: us-east-1 }\n", &[]), "spec.logging.group: required");
    one_error(&svc("  taskRoleArn: role/x\n", &[]), "is not an IAM role ARN");
}

#[test]
fn network_rules() {
    one_error(&svc("", &[("subnets: [subnet-0abc1234]", "subnets: []")]), "at least one subnet");
    one_error(
        &svc("", &[("subnets: [subnet-0abc1234]", "subnets: [subnet-0abc1234, subnet-0abc1234]")]),
        "listed twice",
    );
    one_error(
        &svc(
            "",
            &[("subnets: [subnet-0abc1234]", "subnets: [subnet-0abc1234]\n    securityGroups: [sg-1, sg-0abc1234]")],
        ),
        "spec.network.securityGroups[0]: `sg-1` is not a security group id",
    );
    let many: Vec<String> = (0..6).map(|i| format!("sg-0abc123{i}")).collect();
    one_error(
        &svc(
            "",
            &[(
                "subnets: [subnet-0abc1234]",
                &format!("subnets: [subnet-0abc1234]\n    securityGroups: [{}]", many.join(", ")),
            )],
        ),
        "at most 5",
    );
}

#[test]
fn rollout_rules() {
    valid(&svc("  replicas: 2\n  rollout: { maxPercent: 150, minHealthyPercent: 50 }\n", &[]));
    valid(&svc("  replicas: 0\n  rollout: { maxPercent: 100 }\n", &[]));
    one_error(&svc("  rollout: { maxPercent: 250 }\n", &[]), "250 is outside 100..200");
    one_error(&svc("  rollout: { minHealthyPercent: 101, maxPercent: 200 }\n", &[]), "101 is above 100");
    one_error(&svc("  rollout: { historyLimit: 0 }\n", &[]), "outside 1..100");
    one_error(&svc("  rollout: { progressDeadline: 10s }\n", &[]), "below the mcpfleet minimum of 60s");
    one_error(&svc("  replicas: 1\n  rollout: { maxPercent: 150 }\n", &[]), "could never start a new task");
    one_error(&svc("  replicas: 6000\n", &[]), "5000");
    // Huge values are one diagnostic each, never an arithmetic overflow.
    one_error(&svc("  replicas: 30000000\n", &[]), "30000000 is above ECS's 5000 tasks per service");
    let errs = errors(&svc("  replicas: 30000000\n  rollout: { maxPercent: 4000000000 }\n", &[]));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let defaults = "apiVersion: mcpfleet.io/v1alpha1\nkind: FleetDefaults\nspec:\n  rollout: { maxPercent: 4000000000, minHealthyPercent: 4000000000 }\n---\n";
    let errs = errors(&format!("{defaults}{}", svc("  replicas: 2\n", &[])));
    assert_eq!(
        errs,
        vec![
            "m.yaml:4: spec.rollout.maxPercent: 4000000000 is outside 100..200",
            "m.yaml:4: spec.rollout.minHealthyPercent: 4000000000 is above 100",
        ]
    );
    one_error(&svc("", &[("port: 8080", "port: 70000")]), "not a TCP port");
}

#[test]
fn labels_follow_tag_rules() {
    let labeled = |labels: &str| svc("", &[("  name: svc\n", &format!("  name: svc\n  labels:\n{labels}"))]);
    let s = valid(&labeled("    team: knowledge\n    cost-center: '42'\n"));
    assert_eq!(s.labels["cost-center"], "42");
    one_error(&labeled("    'aws:x': y\n"), "reserved");
    one_error(&labeled("    team: 'a|b'\n"), "label values");
    // mcpfleet.io/labels takes one of ECS's 50 tags and records every key in one 256-character value.
    let many: String = (0..40).map(|i| format!("    l{i}: x\n")).collect();
    one_error(&labeled(&many), "40 labels given; at most 39 fit beside mcpfleet's own tags");
    let long: String = (0..3).map(|i| format!("    {}{i}: x\n", "k".repeat(100))).collect();
    one_error(&labeled(&long), "label keys take 305 characters together");
}

#[test]
fn document_level_errors_are_one_located_line() {
    one_error("apiVersion: v1\nkind: McpService\n", "m.yaml:1: apiVersion: `v1` is not supported");
    one_error("kind: McpService\n", "m.yaml:1: apiVersion: required");
    one_error("apiVersion: mcpfleet.io/v1alpha1\nkind: Pod\n", "m.yaml:2: kind: `Pod` is not a mcpfleet kind");
    one_error("apiVersion: mcpfleet.io/v1alpha1\n", "kind: required");
    one_error("just text\n", "expected a mapping");
    one_error("", "m.yaml:1: empty file");
    one_error("a: [1\n", "m.yaml:2: invalid YAML");
    one_error("a: 1\na: 2\n", "m.yaml:2: invalid YAML: duplicate key `a`");
    one_error(
        &svc("  transport: grpc\n", &[]),
        "spec.transport: `grpc` is not valid; expected one of streamable-http, sse, stdio",
    );
    one_error(&svc("", &[("cpu: 256", "cpu: -1")]), "spec.cpu: invalid value: integer `-1`, expected a whole number");
    one_error(
        &svc("", &[("  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/svc:v1\n", "")]),
        "m.yaml:5: spec.image: required field is missing",
    );
    one_error(&svc("  replica: 2\n", &[]), "m.yaml:14: spec.replica: unknown field (expected one of cluster, image");
    one_error(&svc("", &[("metadata:\n", "metadata:\n  namespace: x\n")]), "metadata.namespace: unknown field");
    // A list is not a mapping, even though serde could fill a struct from it by position.
    one_error(
        &svc("", &[("subnets: [subnet-0abc1234]", "[subnet-0abc1234]")]).replace("network:\n    [", "network: ["),
        "spec.network: invalid type: sequence, expected a mapping",
    );
}

#[test]
fn every_problem_of_every_file_is_reported() {
    let files = [
        SourceFile {
            name: "a.yaml".into(),
            text: svc("  stopTimeout: 1s\n  healthCheck: { path: /h, retries: 20 }\n", &[("cpu: 256", "cpu: 300")]),
        },
        SourceFile { name: "b.yaml".into(), text: "kind: [".into() },
    ];
    let err = load_sources(&files).unwrap_err();
    let lines: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(lines[0].starts_with("a.yaml:8: spec.cpu"), "{lines:#?}");
    assert!(lines[3].starts_with("b.yaml:"), "{lines:#?}");
}

#[test]
fn a_fleet_needs_a_service() {
    let only_defaults = "apiVersion: mcpfleet.io/v1alpha1\nkind: FleetDefaults\nspec: { cluster: c }\n";
    one_error(only_defaults, "no McpService documents found");
}

#[test]
fn every_wrong_field_of_a_document_is_reported_with_its_line() {
    let text = svc(
        "  stopTimeout: 500s\n  replica: 2\n  healthCheck: { path: /h, retries: many }\n",
        &[("cpu: 256", "cpu: lots"), ("  name: svc\n", "  name: svc\n  colour: blue\n")],
    );
    assert_eq!(
        errors(&text),
        vec![
            "m.yaml:5: metadata.colour: unknown field (expected name or labels)",
            "m.yaml:9: spec.cpu: invalid type: string \"lots\", expected a whole number",
            "m.yaml:15: spec.stopTimeout: 500s is above the Fargate maximum of 120s",
            "m.yaml:16: spec.replica: unknown field (expected one of cluster, image, architecture, cpu, memory, replicas, port, transport, command, bridge, env, secrets, healthCheck, stopTimeout, taskRoleArn, executionRoleArn, registryCredentials, network, logging, rollout, readOnlyRootFilesystem, secretRotation, local, readiness, expose, mcp, autoscaling)",
            "m.yaml:17: spec.healthCheck.retries: invalid type: string \"many\", expected a whole number",
        ]
    );
    // Every missing required field, not only the first; a field that did not parse is not judged again.
    assert_eq!(
        errors(&svc(
            "",
            &[
                ("  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/svc:v1\n", ""),
                ("  port: 8080\n", ""),
                ("  name: svc\n", "  name: [svc]\n")
            ]
        )),
        vec![
            "m.yaml:4: metadata.name: invalid type: sequence, expected a string",
            "m.yaml:5: spec.image: required field is missing",
            "m.yaml:5: spec.port: required field is missing",
        ]
    );
    // Sections that are not mappings, a missing spec and unknown top-level keys.
    assert_eq!(
        errors("apiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata: [x]\nstatus: {}\n"),
        vec![
            "m.yaml:1: spec: required field is missing",
            "m.yaml:3: metadata: expected a mapping of fields, found a list",
            "m.yaml:4: status: unknown field (expected one of apiVersion, kind, metadata, spec)",
        ]
    );
    one_error(
        "apiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata: { name: x }\n",
        "m.yaml:1: spec: required field is missing",
    );
}

#[test]
fn a_broken_fleet_defaults_is_reported_once_not_once_per_service() {
    let service = |name: &str| {
        format!(
            "---\napiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata: {{ name: {name} }}\nspec: {{ image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/x:v1, cpu: 256, memory: 512, port: 8080 }}\n"
        )
    };
    let fleet = |defaults: &str| {
        format!("apiVersion: mcpfleet.io/v1alpha1\nkind: FleetDefaults\n{defaults}{}{}", service("a"), service("b"))
    };
    // The whole document unreadable: nothing it might have set is required of the services.
    assert_eq!(errors(&fleet("spec: [cluster]\n")), vec!["m.yaml:3: spec: expected a mapping of fields, found a list"]);
    assert_eq!(
        errors(&fleet("spec: { cluster: c }\n").replacen("apiVersion: mcpfleet.io/v1alpha1", "apiVersion: v2", 1)),
        vec!["m.yaml:1: apiVersion: `v2` is not supported; expected mcpfleet.io/v1alpha1"]
    );
    // One field unreadable: only that field is unknown; what the defaults do set still applies.
    assert_eq!(
        errors(&fleet(
            "spec:\n  cluster: c\n  network: { subnets: subnet-0abc1234 }\n  executionRoleArn: arn:aws:iam::123456789012:role/x\n"
        )),
        vec!["m.yaml:5: spec.network.subnets: invalid type: string \"subnet-0abc1234\", expected a sequence"]
    );
    let errs = errors(&fleet("spec:\n  network: { subnets: subnet-0abc1234 }\n"));
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert_eq!(errs.iter().filter(|e| e.contains("spec.cluster: required")).count(), 2, "{errs:#?}");
    assert_eq!(errs.iter().filter(|e| e.contains("spec.executionRoleArn: required")).count(), 2, "{errs:#?}");
}

#[test]
fn durations_follow_the_schema_grammar_exactly() {
    // Editors check durations with the schema's pattern; mcpfleet must accept exactly the same strings.
    let schema = json_schema();
    let pattern = schema["definitions"]["DurationStr"]["pattern"].as_str().expect("DurationStr has a pattern");
    let re = regex::Regex::new(pattern).unwrap();
    for (text, millis) in [
        ("30s", Some(30_000)),
        ("10m", Some(600_000)),
        ("1m30s", Some(90_000)),
        ("1h", Some(3_600_000)),
        ("0s", Some(0)),
        ("1500ms", Some(1_500)),
        (" 2m 5s ", Some(125_000)),
        ("30 s", Some(30_000)),
        ("1h1h", Some(7_200_000)),
        ("99999999999999999999999h", Some(u64::MAX - u64::MAX % 1000)),
        ("2min", None),
        ("1d", None),
        ("1M", None),
        ("1w", None),
        ("30", None),
        ("s", None),
        ("", None),
        ("1.5s", None),
        ("-5s", None),
        ("30sec", None),
        ("1h 30", None),
    ] {
        let parsed = types::DurationStr(text.to_string()).parse().map(|d| d.as_millis());
        assert_eq!(parsed, millis.map(u128::from), "parsing {text:?}");
        assert_eq!(re.is_match(text), parsed.is_some(), "schema and parser disagree on {text:?}");
    }
    // In a manifest: what the schema refuses is not a duration, and a huge one is simply above the maximum.
    one_error(&svc("  stopTimeout: 1M\n", &[]), "`1M` is not a duration");
    one_error(&svc("  stopTimeout: 2min\n", &[]), "`2min` is not a duration");
    one_error(&svc("  stopTimeout: 99999999999999999999999h\n", &[]), "above the Fargate maximum of 120s");
    assert_eq!(valid(&svc("  stopTimeout: 1m30s\n", &[])).stop_timeout_secs, 90);
}

mod read_paths {
    //! `-f` as an operator uses it: files and directories, in a stable order, each file read once.

    use super::super::*;

    const SERVICE: &str = "apiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata: { name: NAME }\nspec: { cluster: c, image: ghcr.io/x/y:v1, cpu: 256, memory: 512, port: 8080, network: { subnets: [subnet-0abc1234] } }\n";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn names(files: &[SourceFile]) -> Vec<String> {
        files.iter().map(|f| Path::new(&f.name).file_name().unwrap().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn directories_give_yaml_and_yml_files_in_name_order_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.yml", &SERVICE.replace("NAME", "b"));
        write(dir.path(), "a.yaml", &SERVICE.replace("NAME", "a"));
        write(dir.path(), "README.md", "# not a manifest: {");
        write(dir.path(), "notes.txt", "kind: [");
        write(dir.path(), "c.yaml.bak", "kind: [");
        std::fs::create_dir(dir.path().join("nested.yaml")).unwrap();
        write(&dir.path().join("nested.yaml"), "deep.yaml", "kind: [");
        let (files, diags) = read_paths(&[dir.path().to_path_buf()]);
        assert_eq!(diags, vec![]);
        assert_eq!(names(&files), vec!["a.yaml", "b.yml"]);
        let fleet = load_paths(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(fleet.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn a_file_named_twice_is_read_once() {
        // `-f manifests/ -f manifests/a.yaml` names one file twice. Reading it twice would report each of its
        // services as a duplicate of itself, blaming the manifests for how the command was typed; services defined
        // twice in different files are still duplicates.
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.yaml", &SERVICE.replace("NAME", "a"));
        let same = dir.path().join(".").join("a.yaml");
        let (files, diags) = read_paths(&[dir.path().to_path_buf(), a.clone(), same]);
        assert_eq!(diags, vec![]);
        assert_eq!(names(&files), vec!["a.yaml"]);
        assert_eq!(load_paths(&[a.clone(), a.clone()]).unwrap().services.len(), 1);

        let copy = write(dir.path(), "copy.yaml", &SERVICE.replace("NAME", "a"));
        let err = load_paths(&[a, copy]).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert!(err.0[0].message.contains("service `a` is already defined at"), "{}", err.0[0]);
    }

    #[test]
    fn empty_and_missing_paths_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "notes.txt", "not yaml");
        let err = load_paths(&[dir.path().to_path_buf()]).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err:?}");
        assert_eq!(err.0[0].file, dir.path().display().to_string());
        assert_eq!(err.0[0].message, "directory has no *.yaml or *.yml files");

        let missing = dir.path().join("missing.yaml");
        let (files, diags) = read_paths(std::slice::from_ref(&missing));
        assert!(files.is_empty());
        assert_eq!(diags.len(), 1);
        assert!(diags[0].to_string().starts_with(&format!("{}: cannot read: ", missing.display())), "{}", diags[0]);
    }

    /// The controller reloads manifests on every change: a hostile file beside a good one must come back as a
    /// located diagnostic of that file (so the controller keeps its last valid fleet), never as an abort.
    #[test]
    fn hostile_files_come_back_as_diagnostics_from_load_paths() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", &SERVICE.replace("NAME", "a"));
        let bomb =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hostile/alias-bomb.yaml"))
                .unwrap();
        let bomb = write(dir.path(), "bomb.yaml", &bomb);
        let err = load_paths(&[dir.path().to_path_buf()]).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err:?}");
        assert_eq!((err.0[0].file.as_str(), err.0[0].line), (bomb.to_str().unwrap(), 12));
        assert!(err.0[0].message.starts_with("anchors and aliases expand to more than"), "{}", err.0[0]);

        let huge = write(dir.path(), "bomb.yaml", &"# padding\n".repeat((9 << 20) / 10));
        let err = load_paths(&[dir.path().to_path_buf()]).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err:?}");
        assert_eq!((err.0[0].file.as_str(), err.0[0].line), (huge.to_str().unwrap(), (8 << 20) / 10 + 1));
    }

    /// The bounds leave room for real fleets: the benchmark's 10,000 services in one file load.
    #[test]
    fn a_ten_thousand_service_file_is_within_the_bounds() {
        let text = crate::testkit::fleet_yaml(10_000, 5, 3);
        assert_eq!(load_str("fleet.yaml", &text).map(|f| f.services.len()), Ok(10_000));
    }
}

/// FleetDefaults naming a Service Connect namespace, followed by `service`.
fn with_namespace_defaults(namespace: &str, service: &str) -> String {
    format!(
        "apiVersion: mcpfleet.io/v1alpha1\nkind: FleetDefaults\nspec:\n  expose:\n    serviceConnect: {{ namespace: {namespace} }}\n---\n{service}"
    )
}

#[test]
fn service_connect_defaults_to_the_service_name_port_and_fleet_namespace() {
    let s = valid(&svc("", &[]));
    assert_eq!((s.service_connect, s.readiness_path), (None, None));
    let s = valid(&with_namespace_defaults("mcp.internal", &svc("  readiness: { path: /ready }\n", &[])));
    assert_eq!(
        s.service_connect,
        Some(ValidServiceConnect { namespace: "mcp.internal".into(), dns_name: "svc".into(), port: 8080 })
    );
    assert_eq!(s.readiness_path.as_deref(), Some("/ready"));
    let arn = "arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-abcdef0123456789";
    let own = svc(&format!("  expose:\n    serviceConnect: {{ namespace: {arn}, dnsName: docs-v2, port: 80 }}\n"), &[]);
    let s = valid(&with_namespace_defaults("mcp.internal", &own));
    assert_eq!(
        s.service_connect,
        Some(ValidServiceConnect { namespace: arn.into(), dns_name: "docs-v2".into(), port: 80 })
    );
}

#[test]
fn service_connect_and_readiness_errors_name_their_field() {
    let sc = |body: &str| svc(&format!("  expose:\n    serviceConnect: {body}\n"), &[]);
    one_error(&sc("{}"), "m.yaml:15: spec.expose.serviceConnect.namespace: required");
    one_error(&sc("{ namespace: 'mcp internal' }"), "spec.expose.serviceConnect.namespace: `mcp internal` is neither");
    one_error(
        &sc("{ namespace: 'arn:aws:servicediscovery:us-east-1:1234:namespace/ns-x' }"),
        "spec.expose.serviceConnect.namespace: `arn:aws:servicediscovery:us-east-1:1234:namespace/ns-x` is neither",
    );
    one_error(
        &sc("{ namespace: mcp.internal, dnsName: Docs }"),
        "spec.expose.serviceConnect.dnsName: `Docs` is not a DNS label",
    );
    one_error(&sc("{ namespace: mcp.internal, dnsName: docs- }"), "`docs-` is not a DNS label");
    one_error(&sc(&format!("{{ namespace: mcp.internal, dnsName: {} }}", "a".repeat(64))), "is not a DNS label");
    one_error(
        &sc("{ namespace: mcp.internal, port: 70000 }"),
        "spec.expose.serviceConnect.port: 70000 is not a TCP port",
    );
    one_error(&sc("{ namespace: mcp.internal, port: 0 }"), "0 is not a TCP port");
    // A service name that is no DNS label cannot be the default alias.
    one_error(
        &with_namespace_defaults("mcp.internal", &svc("", &[("name: svc", "name: Svc_1")])),
        "the service name `Svc_1` is not a DNS label",
    );
    one_error(
        &svc("  readiness: { path: ready }\n", &[]),
        "m.yaml:14: spec.readiness.path: `ready` must start with `/`",
    );
}

#[test]
fn load_balancers_default_their_port_and_the_grace_period_to_the_start_period() {
    let lb = |body: &str| svc(&format!("  expose:\n    loadBalancers:\n{body}"), &[]);
    let s = valid(&svc("", &[]));
    assert_eq!((s.load_balancers.len(), s.health_check_grace_period_secs), (0, None));
    let s = valid(&lb("      - targetGroup: mcp-docs\n"));
    assert_eq!(s.load_balancers, vec![ValidLoadBalancer { target_group: "mcp-docs".into(), container_port: 8080 }]);
    assert_eq!(s.lines.target_groups, vec![16]);
    let start = valid(&svc(
        "  healthCheck: { path: /health, startPeriod: 45s }\n  expose:\n    loadBalancers: [{ targetGroup: a }]\n",
        &[],
    ));
    assert_eq!(start.health_check_grace_period_secs, Some(45));
    let written = valid(&svc("  expose: { loadBalancers: [{ targetGroup: a }], healthCheckGracePeriod: 2m }\n", &[]));
    assert_eq!(written.health_check_grace_period_secs, Some(120));
    let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mcp-docs/0123456789abcdef";
    let s = valid(&lb(&format!("      - {{ targetGroup: '{arn}', containerPort: 8080 }}\n")));
    assert_eq!(s.load_balancers[0].target_group, arn);
}

#[test]
fn load_balancer_errors_name_their_field() {
    let lb = |body: &str| svc(&format!("  expose:\n    loadBalancers:\n{body}"), &[]);
    one_error(
        &lb("      - targetGroup: -docs\n"),
        "m.yaml:16: spec.expose.loadBalancers[0].targetGroup: `-docs` is neither",
    );
    one_error(&lb(&format!("      - targetGroup: {}\n", "a".repeat(33))), "is neither a target group name");
    one_error(
        &lb("      - targetGroup: 'arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1'\n"),
        "spec.expose.loadBalancers[0].targetGroup: `arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1` is neither",
    );
    one_error(
        &lb("      - targetGroup: a\n      - targetGroup: a\n"),
        "m.yaml:17: spec.expose.loadBalancers[1].targetGroup: `a` is listed twice",
    );
    one_error(
        &lb("      - { targetGroup: a, containerPort: 9090 }\n"),
        "spec.expose.loadBalancers[0].containerPort: 9090 is not a port the container exposes (it exposes spec.port, 8080)",
    );
    let six: String = (0..6).map(|i| format!("      - targetGroup: tg{i}\n")).collect();
    one_error(&lb(&six), "spec.expose.loadBalancers: 6 load balancers; ECS attaches at most 5");
    one_error(
        &svc("  expose: { healthCheckGracePeriod: 1500ms }\n", &[]),
        "spec.expose.healthCheckGracePeriod: `1500ms` is not a whole number of seconds in 0s..2147483647s",
    );
    one_error(&svc("  expose: { healthCheckGracePeriod: 2147483648s }\n", &[]), "is not a whole number of seconds");
    one_error(&svc("  expose: { loadBalancer: [] }\n", &[]), "spec.expose.loadBalancer: unknown field");
}

#[test]
fn fleet_defaults_may_only_name_the_namespace() {
    let defaults = |expose: &str| {
        format!(
            "apiVersion: mcpfleet.io/v1alpha1\nkind: FleetDefaults\nspec:\n  expose: {expose}\n---\n{}",
            svc("", &[])
        )
    };
    one_error(
        &defaults("{ serviceConnect: { namespace: a.b, dnsName: x } }"),
        "spec.expose.serviceConnect.dnsName: unknown field",
    );
    one_error(
        &defaults("{ serviceConnect: { namespace: 'a b' } }"),
        "m.yaml:4: spec.expose.serviceConnect.namespace: `a b` is neither",
    );
    // A broken FleetDefaults namespace is reported once, not again as missing for each service.
    let errs = errors(
        &defaults("{ serviceConnect: { namespace: 7 } }")
            .replace(&svc("", &[]), &svc("  expose: { serviceConnect: { port: 80 } }\n", &[])),
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

/// The base service with `body` under `spec.autoscaling` (and `extra` after it).
fn scaled(body: &str, extra: &str) -> String {
    svc(&format!("  autoscaling:\n{body}{extra}"), &[])
}

/// Every diagnostic as (line, code, field path).
fn coded(text: &str) -> Vec<(usize, &'static str, String)> {
    match load_str("m.yaml", text) {
        Ok(_) => vec![],
        Err(d) => d.0.iter().map(|d| (d.line, d.code.as_str(), d.path.clone())).collect(),
    }
}

#[test]
fn autoscaling_starts_new_services_at_min_with_the_default_cooldowns() {
    let s = valid(&scaled("    min: 2\n    max: 20\n    targetCpu: 60\n", ""));
    assert_eq!(s.replicas, 2, "replicas defaults to min");
    let a = s.autoscaling.expect("autoscaling");
    assert_eq!((a.min, a.max, a.target_cpu, a.target_memory, a.requests_per_target), (2, 20, Some(60), None, None));
    assert_eq!((a.scale_in_cooldown_secs, a.scale_out_cooldown_secs), (300, 60));
    let s = valid(&svc(
        "  replicas: 5\n  autoscaling: { min: 1, max: 5, targetMemory: 75, scaleInCooldown: 10m, scaleOutCooldown: 0s }\n",
        &[],
    ));
    assert_eq!(s.replicas, 5);
    let a = s.autoscaling.unwrap();
    assert_eq!((a.target_memory, a.scale_in_cooldown_secs, a.scale_out_cooldown_secs), (Some(75), 600, 0));
    // requestsPerTarget follows the first load balancer; its line is kept for resolution's messages.
    let s = valid(&svc(
        "  expose: { loadBalancers: [{ targetGroup: docs }] }\n  autoscaling:\n    min: 1\n    max: 3\n    requestsPerTarget: 500\n",
        &[],
    ));
    assert_eq!(s.autoscaling.unwrap().requests_per_target, Some(500));
    assert_eq!(s.lines.requests_per_target, Some(18));
    assert!(valid(&svc("", &[])).autoscaling.is_none());
}

#[test]
fn autoscaling_errors_name_their_field_line_and_code() {
    let one = |text: &str| {
        let c = coded(text);
        assert_eq!(c.len(), 1, "{c:#?}");
        c.into_iter().next().unwrap()
    };
    assert_eq!(one(&scaled("    min: 1\n    max: 2\n", "")), (14, "E1701", "spec.autoscaling".into()));
    assert_eq!(
        one(&scaled("    min: 0\n    max: 2\n    targetCpu: 50\n", "")),
        (15, "E1702", "spec.autoscaling.min".into())
    );
    assert_eq!(
        one(&scaled("    min: 1\n    max: 5001\n    targetCpu: 50\n", "")),
        (16, "E1702", "spec.autoscaling.max".into())
    );
    assert_eq!(
        one(&scaled("    min: 3\n    max: 2\n    targetCpu: 50\n", "")),
        (15, "E1702", "spec.autoscaling.min".into())
    );
    let text = svc("  replicas: 9\n  autoscaling: { min: 2, max: 4, targetCpu: 50 }\n", &[]);
    assert_eq!(one(&text), (14, "E1703", "spec.replicas".into()));
    assert!(errors(&text)[0].contains("9 is outside the autoscaling bounds 2..4"), "{:?}", errors(&text));
    assert_eq!(
        one(&scaled("    min: 1\n    max: 2\n    targetCpu: 101\n", "")),
        (17, "E1704", "spec.autoscaling.targetCpu".into())
    );
    assert_eq!(
        one(&scaled("    min: 1\n    max: 2\n    targetMemory: 0\n", "")),
        (17, "E1704", "spec.autoscaling.targetMemory".into())
    );
    let no_lb = scaled("    min: 1\n    max: 2\n    requestsPerTarget: 100\n", "");
    assert_eq!(one(&no_lb), (17, "E1705", "spec.autoscaling.requestsPerTarget".into()));
    assert!(errors(&no_lb)[0].contains("list one in spec.expose.loadBalancers"), "{:?}", errors(&no_lb));
    let zero = svc(
        "  expose: { loadBalancers: [{ targetGroup: a }] }\n  autoscaling: { min: 1, max: 2, requestsPerTarget: 0 }\n",
        &[],
    );
    assert_eq!(one(&zero), (15, "E1704", "spec.autoscaling.requestsPerTarget".into()));
    assert_eq!(
        one(&scaled("    min: 1\n    max: 2\n    targetCpu: 50\n    scaleInCooldown: 2h\n", "")),
        (18, "E1706", "spec.autoscaling.scaleInCooldown".into())
    );
    assert_eq!(
        one(&scaled("    min: 1\n    max: 2\n    targetCpu: 50\n    scaleOutCooldown: 1500ms\n", "")),
        (18, "E0209", "spec.autoscaling.scaleOutCooldown".into())
    );
    let long = svc(
        "  autoscaling: { min: 1, max: 2, targetMemory: 50 }\n",
        &[("name: svc", &format!("name: {}", "s".repeat(250)))],
    );
    assert_eq!(one(&long), (4, "E1707", "metadata.name".into()));
    // A name that fits with `-cpu` but not with `-requests` is judged by the targets it has.
    let fits = "s".repeat(251);
    assert!(
        valid(&svc("  autoscaling: { min: 1, max: 2, targetCpu: 50 }\n", &[("name: svc", &format!("name: {fits}"))]))
            .autoscaling
            .is_some()
    );
    // Every problem at once, and the types and unknown fields of the schema.
    let all = coded(&scaled("    min: 0\n    max: 2\n    targetCpu: 200\n    scaleInCooldown: 5h\n", ""));
    let codes: Vec<&str> = all.iter().map(|c| c.1).collect();
    assert_eq!(codes, ["E1702", "E1704", "E1706"], "{all:#?}");
    assert_eq!(one(&scaled("    min: 1\n    max: 2\n    targetCPU: 50\n", "")).1, "E0205");
    assert_eq!(one(&scaled("    max: 2\n    targetCpu: 50\n", "")).1, "E0206");
    assert_eq!(one(&scaled("    min: one\n    max: 2\n    targetCpu: 50\n", "")).1, "E0207");
}

/// FleetDefaults with `mcp: {defaults}`, followed by `service`.
fn with_mcp_defaults(defaults: &str, service: &str) -> String {
    format!("apiVersion: mcpfleet.io/v1alpha1\nkind: FleetDefaults\nspec:\n  mcp: {defaults}\n---\n{service}")
}

#[test]
fn mcp_defaults_to_no_verification_on_the_transports_path() {
    let s = valid(&svc("", &[]));
    assert_eq!(s.mcp, ValidMcp::unverified(Transport::StreamableHttp, 8080));
    assert_eq!((s.mcp.path.as_str(), s.mcp.verify, s.mcp.timeout_secs), ("/mcp", Verify::None, 10));
    assert_eq!(valid(&svc("  transport: sse\n", &[])).mcp.path, "/sse");
    let s = valid(&svc(
        "  mcp:\n    path: /v1/mcp\n    verify: tasks\n    expectTools: [search_documents, get.document-2]\n    allowToolRemoval: true\n    timeout: 30s\n",
        &[],
    ));
    assert_eq!(
        s.mcp,
        ValidMcp {
            transport: Transport::StreamableHttp,
            port: 8080,
            path: "/v1/mcp".into(),
            verify: Verify::Tasks,
            expect_tools: vec!["search_documents".into(), "get.document-2".into()],
            allow_tool_removal: true,
            timeout_secs: 30,
        }
    );
}

#[test]
fn mcp_verify_and_timeout_come_from_fleet_defaults_unless_the_service_says_otherwise() {
    let s = valid(&with_mcp_defaults("{ verify: tasks, timeout: 20s }", &svc("  mcp: { expectTools: [a] }\n", &[])));
    assert_eq!((s.mcp.verify, s.mcp.timeout_secs, s.mcp.expect_tools), (Verify::Tasks, 20, vec!["a".to_string()]));
    let s = valid(&with_mcp_defaults("{ verify: tasks }", &svc("  mcp: { verify: none, timeout: 5s }\n", &[])));
    assert_eq!((s.mcp.verify, s.mcp.timeout_secs), (Verify::None, 5));
    // A bad default timeout is reported once, where it is written.
    let errs = errors(&with_mcp_defaults("{ verify: tasks, timeout: 90s }", &svc("", &[])));
    assert_eq!(errs, ["m.yaml:4: spec.mcp.timeout: 90s is above the mcpfleet maximum of 60s"]);
    one_error(&with_mcp_defaults("{ path: /x }", &svc("", &[])), "m.yaml:4: spec.mcp.path: unknown field");
}

#[test]
fn mcp_errors_name_their_field() {
    let mcp = |body: &str| svc(&format!("  mcp: {body}\n"), &[]);
    one_error(&mcp("{ path: mcp }"), "m.yaml:14: spec.mcp.path: `mcp` must start with `/` and contain no spaces");
    one_error(&mcp("{ verify: always }"), "spec.mcp.verify");
    one_error(
        &mcp("{ verify: endpoint }"),
        "spec.mcp.verify: `endpoint` verifies the service's load balancer or Service Connect URL, and `expose` has neither",
    );
    valid(&mcp("{ verify: endpoint }").replace("  mcp:", "  expose: { loadBalancers: [{ targetGroup: a }] }\n  mcp:"));
    valid(&with_namespace_defaults("mcp.internal", &mcp("{ verify: endpoint }")));
    one_error(&mcp("{ verify: tasks, expectTools: [a, ''] }"), "spec.mcp.expectTools[1]: `` is not a tool name");
    one_error(&mcp("{ verify: tasks, expectTools: ['get document'] }"), "`get document` is not a tool name");
    one_error(&mcp(&format!("{{ verify: tasks, expectTools: [{}] }}", "t".repeat(129))), "is not a tool name");
    valid(&mcp(&format!("{{ verify: tasks, expectTools: [{}] }}", "t".repeat(128))));
    one_error(&mcp("{ verify: tasks, expectTools: [a, b, a] }"), "spec.mcp.expectTools[2]: `a` is listed twice");
    one_error(&mcp("{ verify: tasks, timeout: 0s }"), "spec.mcp.timeout: 0s is below the mcpfleet minimum of 1s");
    one_error(&mcp("{ verify: tasks, timeout: 61s }"), "spec.mcp.timeout: 61s is above the mcpfleet maximum of 60s");
    one_error(&mcp("{ verify: tasks, timeout: 1500ms }"), "spec.mcp.timeout: 1500ms is not a whole number of seconds");
    one_error(
        &mcp("{ expectTools: [a] }"),
        "spec.mcp.expectTools: expectTools only applies to verified rollouts: set `verify: tasks` or `verify: endpoint`",
    );
    one_error(&mcp("{ verify: none, allowToolRemoval: true }"), "spec.mcp.allowToolRemoval: allowToolRemoval only");
}

/// A service with `n` labels and the spec lines `extra`: `labels(n)(extra)`.
fn labels(n: usize) -> impl Fn(&str) -> String {
    let body: String = (0..n).map(|i| format!("    l{i}: v\n")).collect();
    move |extra: &str| svc(extra, &[("  name: svc\n", &format!("  name: svc\n  labels:\n{body}"))])
}

#[test]
fn a_verified_service_leaves_one_tag_for_its_verification() {
    valid(&labels(39)(""));
    valid(&labels(38)("  mcp: { verify: tasks }\n"));
    one_error(
        &labels(39)("  mcp: { verify: tasks }\n"),
        "m.yaml:5: metadata.labels: 39 labels given; a verified service records its last verification in a tag of its own, so at most 38 fit",
    );
}

#[test]
fn a_service_that_follows_its_secrets_leaves_two_tags_for_their_versions() {
    let by_stage = "  secrets:\n    DB_PASSWORD: prod/db\n";
    let pinned = "  secrets:\n    DB_PASSWORD: { secret: prod/db, versionId: 0123456789abcdef0123456789abcdef }\n";
    valid(&labels(37)(by_stage));
    valid(&labels(39)(pinned));
    let s = valid(&labels(3)(&format!("{by_stage}  secretRotation: ignore\n")));
    assert_eq!(s.secret_rotation, crate::spec::SecretRotation::Ignore);
    one_error(
        &labels(38)(by_stage),
        "m.yaml:5: metadata.labels: 38 labels given; a service that reads secrets by stage records their versions and its restarts in two tags of their own, so at most 37 fit",
    );
    one_error(&labels(37)(&format!("{by_stage}  mcp: {{ verify: tasks }}\n")), "so at most 36 fit");
    // Too many for any service: told once, by the labels' own rule.
    one_error(&labels(40)(by_stage), "40 labels given; at most 39 fit beside mcpfleet's own tags");
    one_error(
        &svc("  secretRotation: sometimes\n", &[]),
        "spec.secretRotation: `sometimes` is not valid; expected restart or ignore",
    );
}

#[test]
fn registry_credentials_name_a_secret_for_an_image_outside_ecr() {
    let ghcr = ("image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/svc:v1", "image: ghcr.io/acme/svc:v1");
    let s = valid(&svc("  registryCredentials: prod/registry/ghcr\n", &[ghcr]));
    assert_eq!(s.registry_credentials.as_deref(), Some("prod/registry/ghcr"));
    assert_eq!(s.lines.registry_credentials, 14);
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/registry/ghcr-AbCdEf";
    assert_eq!(
        valid(&svc(&format!("  registryCredentials: {arn}\n"), &[ghcr])).registry_credentials.as_deref(),
        Some(arn)
    );
    assert_eq!(valid(&svc("", &[ghcr])).registry_credentials, None);

    let coded = |text: &str| -> Vec<String> {
        load_str("m.yaml", text).unwrap_err().0.iter().map(|d| d.coded().to_string()).collect()
    };
    assert_eq!(
        coded(&svc("  registryCredentials: prod/registry/ghcr\n", &[])),
        [
            "m.yaml:14: spec.registryCredentials: `123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/svc` is in Amazon ECR, \
          which ECS pulls from with the execution role; registryCredentials are for private registries outside ECR [E0910]"
        ]
    );
    for (value, code) in [
        ("arn:aws:ssm:us-east-1:123456789012:parameter/registry", "E0903"),
        ("arn:aws:secretsmanager:us-east-1:123:secret:x", "E0904"),
        ("'arn:aws:secretsmanager:us-east-1:123456789012:secret:x:username::'", "E0904"),
        ("'prod registry'", "E0905"),
    ] {
        let errs = coded(&svc(&format!("  registryCredentials: {value}\n"), &[ghcr]));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].starts_with("m.yaml:14: spec.registryCredentials: ") && errs[0].ends_with(&format!("[{code}]")),
            "{errs:#?}"
        );
        assert!(!errs[0].contains("use {secret, key"), "no JSON-key hint for registryCredentials: {errs:#?}");
    }
    let no_role = svc(
        "  registryCredentials: prod/registry/ghcr\n",
        &[ghcr, ("  executionRoleArn: arn:aws:iam::123456789012:role/mcp-exec\n", "")],
    );
    assert_eq!(
        coded(&no_role),
        [
            "m.yaml:5: spec.executionRoleArn: required to read the registry credentials: set it here or in FleetDefaults [E0702]"
        ]
    );
}

#[test]
fn an_autoscaled_service_leaves_one_tag_for_its_autoscaling() {
    let scaled = "  autoscaling: { min: 1, max: 2, targetCpu: 50 }\n";
    let both = "  autoscaling: { min: 1, max: 2, targetCpu: 50 }\n  mcp: { verify: tasks }\n";
    valid(&labels(38)(scaled));
    valid(&labels(37)(both));
    let c = coded(&labels(39)(scaled));
    assert_eq!(c, [(5, "E1708", "metadata.labels".to_string())]);
    one_error(
        &labels(39)(scaled),
        "m.yaml:5: metadata.labels: 39 labels given; an autoscaled service records its autoscaling in a tag of its own, so at most 38 fit beside mcpfleet's tags",
    );
    one_error(&labels(38)(both), "so at most 37 fit beside mcpfleet's tags and its last verification");
    // Beyond what verification allows, its own rule tells it, once.
    assert_eq!(coded(&labels(39)(both)).iter().map(|c| c.1).collect::<Vec<_>>(), ["E1607"]);
    assert_eq!(coded(&labels(40)(scaled)).iter().map(|c| c.1).collect::<Vec<_>>(), ["E0401"]);
}

const BRIDGE_IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mcpfleet@sha256:e1220a2663527a2734e4b06aa3dba3bd16ef08e9c9b8ffa90f484acd82f5bab3";

/// FleetDefaults naming the bridge image, followed by the base service as a stdio server with `extra`.
fn stdio(extra: &str) -> String {
    format!(
        "apiVersion: mcpfleet.io/v1alpha1\nkind: FleetDefaults\nspec:\n  bridgeImage: {BRIDGE_IMAGE}\n---\n{}",
        svc(
            &format!("  transport: stdio\n  command: [npx, -y, '@modelcontextprotocol/server-everything']\n{extra}"),
            &[]
        )
    )
}

#[test]
fn a_stdio_server_gets_the_bridges_defaults_health_check_and_readiness() {
    let s = valid(&stdio(""));
    let b = s.stdio.clone().unwrap();
    assert_eq!(b.command.as_ref().unwrap(), &["npx", "-y", "@modelcontextprotocol/server-everything"]);
    assert_eq!(b.bridge_image.to_string(), BRIDGE_IMAGE);
    assert_eq!((b.mode, b.max_sessions, b.idle_timeout_secs), (BridgeMode::Shared, 1024, 600));
    let h = s.health_check.clone().unwrap();
    assert_eq!((h.probe, h.interval_secs, h.timeout_secs, h.retries), (HealthProbe::Bridge, 30, 5, 3));
    assert_eq!(s.readiness_path.as_deref(), Some("/ready"));
    assert_eq!(
        (s.transport, s.transport.served(), s.mcp.path.as_str()),
        (Transport::Stdio, Transport::StreamableHttp, "/mcp")
    );

    let s = valid(&stdio(
        "  bridge: { mode: per-session, idleTimeout: 1m }\n  healthCheck: { path: /health, interval: 10s }\n  readiness: { path: /ready }\n",
    ));
    let b = s.stdio.unwrap();
    assert_eq!((b.mode, b.max_sessions, b.idle_timeout_secs), (BridgeMode::PerSession, 32, 60));
    assert_eq!(s.health_check.unwrap().interval_secs, 10);
    // An explicit command is kept as written.
    let s = valid(&stdio("  healthCheck: { command: [CMD, /bin/true] }\n"));
    assert_eq!(s.health_check.unwrap().probe, HealthProbe::Command(vec!["CMD".into(), "/bin/true".into()]));
    // Other transports have none of it.
    assert_eq!(valid(&svc("", &[])).stdio, None);
}

#[test]
fn the_bridge_image_comes_from_fleet_defaults_or_the_command_line() {
    let without = svc("  transport: stdio\n  command: [server]\n", &[]);
    one_error(&without, "m.yaml:14: spec.transport: a stdio server runs behind the bridge from mcpfleet's image");
    let flag = ImageRef::parse_pinned(
        "registry.example.com/mcpfleet@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let opts = LoadOptions { bridge_image: Some(flag.clone()) };
    let load = |text: &str| load_sources_with(&[SourceFile { name: "m.yaml".into(), text: text.into() }], &opts);
    assert_eq!(load(&without).unwrap().services[0].stdio.as_ref().unwrap().bridge_image, flag);
    // FleetDefaults wins over the flag.
    assert_eq!(load(&stdio("")).unwrap().services[0].stdio.as_ref().unwrap().bridge_image.to_string(), BRIDGE_IMAGE);
    // A bad one is reported once, where it is written, and the services are not told again.
    let tagged = stdio("").replace(BRIDGE_IMAGE, "registry.example.com/mcpfleet:v1");
    assert_eq!(
        errors(&tagged),
        [
            "m.yaml:4: spec.bridgeImage: `registry.example.com/mcpfleet:v1` is not pinned by digest: write it `registry.example.com/mcpfleet@sha256:…`"
        ]
    );
    one_error(&stdio("").replace(BRIDGE_IMAGE, "Not An Image"), "spec.bridgeImage: `Not An Image` contains whitespace");
    // The bridge image in ECR needs the execution role even when the server's image does not.
    let foreign = stdio("").replace("123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/svc:v1", "ghcr.io/acme/svc:v1");
    valid(&foreign);
    one_error(
        &foreign.replace("  executionRoleArn: arn:aws:iam::123456789012:role/mcp-exec\n", ""),
        "spec.executionRoleArn: required to pull an ECR image",
    );
}

#[test]
fn a_stdio_server_outside_ecr_may_leave_command_to_its_image() {
    let without = stdio("").replace("  command: [npx, -y, '@modelcontextprotocol/server-everything']\n", "");
    let foreign = without.replace("123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/svc:v1", "ghcr.io/acme/svc:v1");
    let s = valid(&foreign);
    assert_eq!(s.stdio.as_ref().unwrap().command, None, "read from the image config at resolution");
    let transport = foreign.lines().position(|l| l == "  transport: stdio").unwrap() + 1;
    assert_eq!(s.lines.command, transport, "a problem with the image's command points at `transport: stdio`");
    // In ECR it cannot be read: `command` stays required, and the error says why.
    let e = errors(&without);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("when its image is in Amazon ECR") && e[0].contains("cannot be read"), "{e:?}");
}

#[test]
fn stdio_errors_name_their_field() {
    one_error(
        &stdio("").replace("  command: [npx, -y, '@modelcontextprotocol/server-everything']\n", ""),
        "spec.transport: a stdio server needs `command`",
    );
    one_error(
        &stdio("").replace("[npx, -y, '@modelcontextprotocol/server-everything']", "[]"),
        "spec.command: needs a program as its first word",
    );
    one_error(
        &stdio("").replace("[npx, -y, '@modelcontextprotocol/server-everything']", "['', x]"),
        "spec.command: needs a program",
    );
    one_error(
        &svc("  command: [x]\n", &[]),
        "spec.command: command applies to `transport: stdio` only (the transport is streamable-http)",
    );
    one_error(
        &svc("  transport: sse\n  bridge: { mode: shared }\n", &[]),
        "spec.bridge: bridge applies to `transport: stdio` only (the transport is sse)",
    );
    one_error(&stdio("  bridge: { maxSessions: 0 }\n"), "spec.bridge.maxSessions: 0 is outside 1..10000");
    one_error(&stdio("  bridge: { maxSessions: 10001 }\n"), "spec.bridge.maxSessions: 10001 is outside 1..10000");
    one_error(
        &stdio("  bridge: { idleTimeout: 5s }\n"),
        "spec.bridge.idleTimeout: 5s is below the bridge minimum of 10s",
    );
    one_error(
        &stdio("  bridge: { idleTimeout: 25h }\n"),
        "spec.bridge.idleTimeout: 25h is above the bridge maximum of 24h",
    );
    one_error(&stdio("  bridge: { mode: pooled }\n"), "spec.bridge.mode");
    one_error(
        &stdio("  healthCheck: { path: /healthz }\n"),
        "spec.healthCheck.path: `/healthz`: the bridge answers a stdio server's health check at /health",
    );
    one_error(
        &stdio("  healthCheck: { path: /health, probe: curl }\n"),
        "spec.healthCheck.probe: the bridge probes its own /health",
    );
    one_error(
        &stdio("  readiness: { path: /readyz }\n"),
        "spec.readiness.path: `/readyz`: the bridge answers a stdio server's readiness at /ready",
    );
    one_error(&stdio("  mcp: { path: /health }\n"), "spec.mcp.path: `/health` is the bridge's own endpoint");
    // Each problem has its code.
    let codes: Vec<Code> = match load_str(
        "m.yaml",
        &stdio("  bridge: { maxSessions: 0, idleTimeout: 1s }\n  healthCheck: { probe: wget }\n"),
    ) {
        Err(d) => d.0.iter().map(|d| d.code).collect(),
        Ok(_) => panic!("invalid"),
    };
    assert_eq!(codes, [Code::BridgeMaxSessions, Code::BridgeIdleTimeout, Code::StdioHealthProbe]);
}
