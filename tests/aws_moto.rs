//! The aws backend through the binary against moto's server: real request and response shapes, tags, digests,
//! ARNs and request counts. (moto does not run tasks or progress deployments, so rollout outcomes are tested on
//! the sim and with aws-smithy-mocks.)

mod common;

use std::collections::BTreeMap;

use common::aws_lab::{AwsLab, tags};
use common::lab::{write_ops, writes};
use common::registry::RegistryLab;

/// Everything a no-op apply may send: reads of ECS, the registry, secret metadata, ELB and Application Auto
/// Scaling.
const NO_OP_ALLOWED: [&str; 11] = [
    "DescribeServices",
    "ListServices",
    "BatchGetImage",
    "ListSecrets",
    "DescribeSecret",
    "DescribeTargetGroups",
    "DescribeTargetGroupAttributes",
    "DescribeLoadBalancers",
    "DescribeLoadBalancerAttributes",
    "DescribeScalableTargets",
    "DescribeScalingPolicies",
];

/// search.yaml as another service: `name`, with `from` replaced by `to` in its text.
fn variant_of_search(lab: &AwsLab, name: &str, edits: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(lab.manifests().join("search.yaml")).unwrap();
    assert!(text.contains("  name: search\n"));
    text = text.replacen("  name: search\n", &format!("  name: {name}\n"), 1);
    for (from, to) in edits {
        assert!(text.contains(from), "{from} not in search.yaml");
        text = text.replacen(from, to, 1);
    }
    text
}

fn op_count(ops: &BTreeMap<String, u64>, op: &str) -> u64 {
    ops.get(op).copied().unwrap_or(0)
}

#[test]
fn apply_pins_digests_picks_architectures_and_wires_secret_arns() {
    let lab = AwsLab::new();
    // An explicit x86_64 on a multi-arch index must pick X86_64, not the index's Graviton default.
    assert_eq!(lab.seed["images"]["mcp/search:v0.9.0"]["platforms"].as_array().unwrap().len(), 2);
    lab.add_manifest(
        "search-x86.yaml",
        &variant_of_search(&lab, "search-x86", &[("architecture: arm64", "architecture: x86_64")]),
    );
    lab.start_recording();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    let first = lab.recorded();
    assert_eq!(op_count(&first, "CreateService"), 4, "{first:?}");
    assert_eq!(op_count(&first, "GetSecretValue"), 0, "{first:?}");
    let ecs = lab.dump();
    let images = &lab.seed["images"];
    let registry = lab.seed["registry"].as_str().unwrap();
    for (name, repo, tag, arch) in [
        ("documents", "documents", "v1.4.2", "ARM64"),
        ("database", "database", "v2.0.1", "X86_64"),
        ("search", "search", "v0.9.0", "ARM64"),
        ("search-x86", "search", "v0.9.0", "X86_64"),
    ] {
        let tds = ecs["taskDefinitions"][name].as_array().unwrap();
        assert_eq!(tds.len(), 1, "{name}");
        let td = &tds[0];
        let c = &td["containerDefinitions"][0];
        let digest = images[format!("mcp/{repo}:{tag}")]["digest"].as_str().unwrap();
        assert_eq!(c["image"], format!("{registry}/mcp/{repo}@{digest}"), "{name} is pinned to the ECR digest");
        assert_eq!(td["runtimePlatform"]["cpuArchitecture"], arch, "{name}");
        assert_eq!(td["requiresCompatibilities"][0], "FARGATE");
        let svc = &ecs["services"][name];
        let t = tags(svc);
        assert_eq!(t["mcpfleet.io/managed-by"], "mcpfleet", "{name}");
        assert_eq!(t["mcpfleet.io/image-digest"], digest);
        assert_eq!(t["mcpfleet.io/task-definition"], td["taskDefinitionArn"].as_str().unwrap());
        assert_eq!(tags(td)["mcpfleet.io/spec-hash"], t["mcpfleet.io/spec-hash"]);
        assert_eq!(svc["launchType"], "FARGATE");
        // (moto drops CreateService's enableECSManagedTags; the update test below sees it round-trip.)
        assert_eq!(svc["propagateTags"], "SERVICE", "{name}");
    }
    let docs = &ecs["taskDefinitions"]["documents"][0]["containerDefinitions"][0];
    let openai = lab.seed["secrets"]["prod/mcp/openai-key"].as_str().unwrap();
    assert!(openai.rsplit('-').next().unwrap().len() == 6, "moto's ARN has the 6-character suffix: {openai}");
    assert_eq!(docs["secrets"][0]["valueFrom"], format!("{openai}:api_key::"));
    // documents registers in the seeded target group, which probes its readiness path: no warning.
    let tg = &lab.load_balancers()["targetGroups"]["mcp-documents"];
    assert_eq!(ecs["services"]["documents"]["loadBalancers"][0]["targetGroupArn"], *tg);
    assert_eq!(doc["warnings"], serde_json::json!([]), "{doc:#}");
    assert_eq!(docs["stopTimeout"], 30);
    assert_eq!(docs["healthCheck"]["interval"], 30);
    assert_eq!(docs["healthCheck"]["timeout"], 10);
    assert_eq!(docs["healthCheck"]["startPeriod"], 15);
    let db = &ecs["taskDefinitions"]["database"][0]["containerDefinitions"][0];
    assert_eq!(db["secrets"][0]["valueFrom"], lab.seed["secrets"]["prod/mcp/db-password"]);
    assert_eq!(db["stopTimeout"], 60);

    // A second apply makes no write request at all and registers nothing: every request moto receives is a read
    // from the allow-list, and no secret value is ever read.
    lab.start_recording();
    let (code, doc) = lab.apply(&[]);
    let ops = lab.recorded();
    assert_eq!(code, 0);
    assert!(doc["services"].as_array().unwrap().iter().all(|s| s["outcome"] == "unchanged"), "{doc:#}");
    assert!(!ops.is_empty());
    for op in ops.keys() {
        assert!(NO_OP_ALLOWED.contains(&op.as_str()), "a no-op apply sent {op}: {ops:?}");
    }
    assert_eq!(writes(&doc), 0, "{:#}", doc["apiCalls"]);
    let calls = &doc["apiCalls"]["calls"];
    for (op, n) in calls.as_object().unwrap() {
        assert!(NO_OP_ALLOWED.contains(&op.as_str()), "{op} ×{n}");
        assert_eq!(Some(n.as_u64().unwrap()), ops.get(op).copied(), "the binary counts what moto received: {op}");
    }
    assert_eq!(calls["DescribeServices"], 1);
    assert_eq!(calls["BatchGetImage"], 3, "one ECR request per repository");
    assert_eq!(calls["ListSecrets"], 1);
    assert_eq!(calls["DescribeTargetGroups"], 1, "documents' target group, looked up by name");
    assert_eq!(lab.dump()["taskDefinitions"]["documents"].as_array().unwrap().len(), 1);

    // Right after apply, plan sees no difference against moto's echo of what was sent.
    let m = lab.manifests();
    let (code, plan) = lab.json(&["plan", "-f", m.to_str().unwrap(), "-o", "json", "--detailed-exitcode"]);
    assert_eq!(code, 0, "no false diff: {plan:#}");

    // status reads the digest and architecture back from moto.
    let (code, status) = lab.json(&["status", "-f", m.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 0, "{status:#}");
    let rows: BTreeMap<&str, &serde_json::Value> =
        status["services"].as_array().unwrap().iter().map(|r| (r["name"].as_str().unwrap(), r)).collect();
    assert_eq!(rows.len(), 4, "{status:#}");
    for (name, key, arch) in [
        ("documents", "mcp/documents:v1.4.2", "ARM64"),
        ("database", "mcp/database:v2.0.1", "X86_64"),
        ("search-x86", "mcp/search:v0.9.0", "X86_64"),
    ] {
        assert_eq!(rows[name]["digest"], images[key]["digest"], "{name}: {status:#}");
        assert_eq!(rows[name]["architecture"], arch, "{name}");
        assert_eq!(rows[name]["revision"], 1, "{name}");
    }
}

#[test]
fn unresolvable_references_and_missing_architectures_change_nothing() {
    let lab = AwsLab::new();
    assert_eq!(lab.apply(&[]).0, 0);
    let before = lab.dump();

    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v9.9.9");
    lab.edit_manifest("search.yaml", "SEARCH_API_KEY: prod/mcp/search-api-key", "SEARCH_API_KEY: prod/mcp/missing");
    // A valid change in the same apply: it must wait for the whole fleet to resolve, so it is not made either.
    lab.edit_manifest("database.yaml", "LOG_LEVEL: INFO", "LOG_LEVEL: DEBUG");
    let m = lab.manifests();
    lab.start_recording();
    let out = lab.run(&["apply", "-f", m.to_str().unwrap()]);
    let ops = lab.recorded();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("service `documents`") && stderr.contains("tag `v9.9.9` not found"), "{stderr}");
    assert!(
        stderr.contains("service `search`")
            && stderr.contains("spec.secrets.SEARCH_API_KEY: secret `prod/mcp/missing` not found"),
        "{stderr}"
    );
    assert!(!stderr.contains("service `database`"), "{stderr}");
    for op in write_ops() {
        assert_eq!(op_count(&ops, op), 0, "{op} sent before the fleet resolved: {ops:?}");
    }
    let after = lab.dump();
    assert_eq!(before["services"]["database"]["taskDefinition"], after["services"]["database"]["taskDefinition"]);
    assert_eq!(after["taskDefinitions"]["database"].as_array().unwrap().len(), 1, "no revision registered");
    lab.edit_manifest("documents.yaml", "documents:v9.9.9", "documents:v1.4.2");
    lab.edit_manifest("search.yaml", "SEARCH_API_KEY: prod/mcp/missing", "SEARCH_API_KEY: prod/mcp/search-api-key");
    lab.edit_manifest("database.yaml", "LOG_LEVEL: DEBUG", "LOG_LEVEL: INFO");

    lab.edit_manifest("database.yaml", "architecture: x86_64", "architecture: arm64");
    let out = lab.run(&["apply", "-f", m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("service `database`") && stderr.contains("arm64 requested but the image has only linux/amd64"),
        "{stderr}"
    );

    let after = lab.dump();
    assert_eq!(before["taskDefinitions"], after["taskDefinitions"], "no new revision");
    for name in ["documents", "database", "search"] {
        assert_eq!(before["services"][name]["taskDefinition"], after["services"][name]["taskDefinition"]);
        assert_eq!(tags(&before["services"][name]), tags(&after["services"][name]));
    }
}

#[test]
fn a_tag_change_updates_one_service_and_history_and_rollback_use_real_shapes() {
    let lab = AwsLab::new();
    assert_eq!(lab.apply(&[]).0, 0);
    // A service whose tag propagation was changed behind mcpfleet's back gets it back with its next update.
    lab.ecs(
        "update_service",
        serde_json::json!({"cluster": "mcp-prod", "service": "search", "propagateTags": "NONE", "enableECSManagedTags": false}),
    );
    assert_eq!(lab.dump()["services"]["search"]["propagateTags"], "NONE");
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    let svc = &lab.dump()["services"]["search"];
    assert_eq!(svc["propagateTags"], "SERVICE");
    assert_eq!(svc["enableECSManagedTags"], true);
    let outcomes: Vec<(&str, &str)> = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(outcomes, [("database", "unchanged"), ("documents", "unchanged"), ("search", "updated")]);
    assert_eq!(doc["apiCalls"]["calls"]["RegisterTaskDefinition"], 1);
    assert_eq!(doc["apiCalls"]["calls"]["UpdateService"], 1);
    let ecs = lab.dump();
    let v2 = ecs["taskDefinitions"]["search"][1]["taskDefinitionArn"].as_str().unwrap().to_string();
    assert_eq!(ecs["services"]["search"]["taskDefinition"], v2);

    let (code, history) = lab.json(&["history", "search", "--cluster", "mcp-prod", "-o", "json"]);
    assert_eq!(code, 0, "{history:#}");
    let revs: Vec<(u64, &str, &str)> = history["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["revision"].as_u64().unwrap(), r["imageTag"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(revs, [(2, "v0.9.1", "running"), (1, "v0.9.0", "superseded")]);

    let out = lab.run(&["rollback", "search", "--cluster", "mcp-prod", "--to-revision", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ecs = lab.dump();
    let svc = &ecs["services"]["search"];
    let v1 = ecs["taskDefinitions"]["search"][0]["taskDefinitionArn"].as_str().unwrap();
    assert_eq!(svc["taskDefinition"], v1);
    let t = tags(svc);
    assert_eq!(t["mcpfleet.io/task-definition"], v1);
    assert_eq!(t["mcpfleet.io/image-tag"], "v0.9.0");
    assert_eq!(t["mcpfleet.io/failed-spec-hash"], tags(&ecs["taskDefinitions"]["search"][1])["mcpfleet.io/spec-hash"]);

    // The operator's choice holds: the manifests still say v0.9.1, and apply leaves it alone.
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0);
    assert_eq!(writes(&doc), 0, "{doc:#}");

    let out = lab.run(&["rollback", "search", "--cluster", "mcp-prod", "--to-revision", "documents:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("belongs to family documents, not search"));
}

/// `mcpfleet_api_requests_total` by operation, from the controller's /metrics.
fn api_requests(port: u16) -> std::collections::BTreeMap<String, f64> {
    common::metrics::scrape(port)
        .lines()
        .filter_map(|l| l.strip_prefix("mcpfleet_api_requests_total{operation=\""))
        .filter_map(|l| {
            let (op, rest) = l.split_once('"')?;
            Some((op.to_string(), rest.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn the_controller_converges_on_moto_and_then_only_describes() {
    let lab = AwsLab::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("mcpfleet"));
    cmd.args(["--backend", "aws", "run", "-f", lab.manifests().to_str().unwrap(), "--interval", "1s"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    lab.env(&mut cmd);
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _controller = Kill(cmd.spawn().unwrap());
    let world = || format!("{:#}", lab.dump());
    common::metrics::wait_until(
        "the controller to create the fleet",
        || lab.dump()["services"].as_object().unwrap().len() == 3,
        world,
    );
    // The pass under way may still be writing; the one after it is steady state, and so are the two measured.
    common::metrics::wait_passes(port, 2, world);
    let before = api_requests(port);
    common::metrics::wait_passes(port, 2, world);
    let after = api_requests(port);
    let delta: std::collections::BTreeMap<&str, f64> = after
        .iter()
        .map(|(op, n)| (op.as_str(), n - before.get(op).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect();
    assert!(delta.get("DescribeServices").is_some_and(|n| *n >= 2.0), "{before:?} → {after:?}");
    assert_eq!(
        delta.keys().copied().collect::<Vec<_>>(),
        ["DescribeServices"],
        "steady-state passes only describe: {delta:?}"
    );
    let world = lab.dump();
    assert_eq!(world["taskDefinitions"]["documents"].as_array().unwrap().len(), 1);
    // The service's tags say which revision and spec it runs — the same spec-hash as the revision's own tags —
    // and last-good follows what ECS reports: set once the PRIMARY deployment COMPLETED, never before (moto,
    // without MOTO_ECS_SERVICE_RUNNING, starts no tasks, so its rollouts stay IN_PROGRESS and are watched).
    let mut rolling_out = 0;
    for (name, svc) in world["services"].as_object().unwrap() {
        let t = tags(svc);
        let td = svc["taskDefinition"].as_str().unwrap();
        assert_eq!(t.get("mcpfleet.io/task-definition").map(String::as_str), Some(td), "{name}: {t:?}");
        let primary = svc["deployments"].as_array().unwrap().iter().find(|d| d["status"] == "PRIMARY").unwrap();
        assert_eq!(primary["taskDefinition"], td, "{name}");
        if primary["rolloutState"] == "COMPLETED" {
            assert_eq!(t.get("mcpfleet.io/last-good").map(String::as_str), Some(td), "{name}: {t:?}");
        } else {
            assert_eq!(primary["rolloutState"], "IN_PROGRESS", "{name}: {primary}");
            assert_eq!(t.get("mcpfleet.io/last-good"), None, "{name}: last-good before the rollout completed");
            rolling_out += 1;
        }
        let revision = world["taskDefinitions"][name]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["taskDefinitionArn"] == td)
            .unwrap_or_else(|| panic!("{name}: {td} not in its family"));
        let hash = t.get("mcpfleet.io/spec-hash").unwrap_or_else(|| panic!("{name}: no spec-hash: {t:?}"));
        assert!(!hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit()), "{name}: {hash}");
        assert_eq!(tags(revision).get("mcpfleet.io/spec-hash"), Some(hash), "{name}: {revision}");
        assert!(!t.contains_key("mcpfleet.io/failed-spec-hash"), "{name}: {t:?}");
    }
    assert_eq!(world["services"].as_object().unwrap().len(), 3);
    assert_eq!(services_gauge(port, "rolling_out"), f64::from(rolling_out), "the controller watches what is in flight");
    assert_eq!(services_gauge(port, "converged"), f64::from(3 - rolling_out));
}

/// `mcpfleet_services{state}` from the controller's /metrics.
fn services_gauge(port: u16, state: &str) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let prefix = format!("mcpfleet_services{{state=\"{state}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)?.parse().ok()).unwrap_or_else(|| panic!("no {prefix}: {text}"))
}

#[test]
fn missing_credentials_fail_at_once_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    // A closed loopback port: nothing may be sent anyway.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = std::time::Instant::now();
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("mcpfleet"))
        .args(["--backend", "aws", "apply", "-f", "manifests"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .env_remove("MCPFLEET_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("AWS credentials are missing or invalid"), "{stderr}");
    assert!(!stderr.contains("service unavailable"), "not reported as transient: {stderr}");
    // The backoff bound is ~33 s; a retried credentials failure would take seconds at least.
    assert!(elapsed < std::time::Duration::from_secs(5), "took {elapsed:?}: {stderr}");
}

#[test]
fn an_apply_interrupted_after_registering_is_finished_without_registering_again() {
    let lab = AwsLab::new();
    assert_eq!(lab.apply(&[]).0, 0);
    let before = lab.dump()["services"]["search"].clone();
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    assert_eq!(lab.apply(&[]).0, 0);
    // Back to the state of an apply that stopped right after RegisterTaskDefinition: revision 2 (with the desired
    // task-hash) exists, the service still runs revision 1 with revision 1's tags.
    let arn = before["serviceArn"].as_str().unwrap();
    let old_tags = tags(&before);
    let extra: Vec<String> =
        tags(&lab.dump()["services"]["search"]).into_keys().filter(|k| !old_tags.contains_key(k)).collect();
    lab.ecs(
        "update_service",
        serde_json::json!({"cluster": "mcp-prod", "service": "search", "taskDefinition": before["taskDefinition"]}),
    );
    if !extra.is_empty() {
        lab.ecs("untag_resource", serde_json::json!({"resourceArn": arn, "tagKeys": extra}));
    }
    let old: Vec<serde_json::Value> = old_tags.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect();
    lab.ecs("tag_resource", serde_json::json!({"resourceArn": arn, "tags": old}));
    let half = lab.dump();
    assert_eq!(half["services"]["search"]["taskDefinition"], before["taskDefinition"]);
    assert_eq!(tags(&half["services"]["search"]), old_tags);
    assert_eq!(half["taskDefinitions"]["search"].as_array().unwrap().len(), 2);

    lab.start_recording();
    let (code, doc) = lab.apply(&[]);
    let ops = lab.recorded();
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(op_count(&ops, "RegisterTaskDefinition"), 0, "revision 2 is reused: {ops:?}");
    assert_eq!(op_count(&ops, "UpdateService"), 1, "{ops:?}");
    let after = lab.dump();
    let v2 = after["taskDefinitions"]["search"][1]["taskDefinitionArn"].as_str().unwrap();
    assert_eq!(after["taskDefinitions"]["search"].as_array().unwrap().len(), 2);
    assert_eq!(after["services"]["search"]["taskDefinition"], v2);
    assert_eq!(tags(&after["services"]["search"])["mcpfleet.io/task-definition"], v2);
}

#[test]
fn the_region_flag_wins_over_the_environment() {
    let lab = AwsLab::new();
    let m = lab.manifests();
    let apply = ["apply", "-f", m.to_str().unwrap(), "-o", "json"];
    // The world is in us-east-1: the environment's eu-west-1 has no secrets and no cluster there.
    let out = lab.run_env(&apply, &[("AWS_REGION", "eu-west-1")]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(lab.dump()["services"].as_object().unwrap().is_empty());

    let mut args = vec!["--region", "us-east-1"];
    args.extend_from_slice(&apply);
    let out = lab.run_env(&args, &[("AWS_REGION", "eu-west-1")]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let ecs = lab.dump();
    assert_eq!(ecs["services"].as_object().unwrap().len(), 3);
    for svc in ecs["services"].as_object().unwrap().values() {
        assert!(svc["serviceArn"].as_str().unwrap().starts_with("arn:aws:ecs:us-east-1:"), "{svc:#}");
    }
}

#[test]
fn images_outside_ecr_resolve_through_their_registry_and_secrets_resolve_by_arn() {
    let lab = AwsLab::new();
    let registry = RegistryLab::open();
    let digest = registry.push("library/python", "3.12-slim", "oci-index", &["linux/amd64"]);
    let host = registry.host.clone();
    let image = format!("{host}/library/python@{digest}");
    let db_arn = lab.seed["secrets"]["prod/mcp/db-password"].as_str().unwrap().to_string();
    let text = variant_of_search(
        &lab,
        "tools",
        &[
            ("image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/search:v0.9.0", &format!("image: {image}")),
            ("architecture: arm64", "architecture: auto"),
            ("SEARCH_API_KEY: prod/mcp/search-api-key", &format!("SEARCH_API_KEY: {db_arn}")),
            // The log region cannot come from a registry outside ECR.
            (
                "  cpu: 256\n",
                "  logging:\n    region: us-east-1\n  registryCredentials: prod/mcp/db-password\n  cpu: 256\n",
            ),
        ],
    );
    lab.add_manifest("tools.yaml", &text);
    lab.start_recording();
    let (code, doc) = lab.apply(&["--insecure-registry", &host]);
    let ops = lab.recorded();
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["apiCalls"]["calls"]["GetManifest"], 1, "the digest read from the registry: {doc:#}");
    let td = &lab.dump()["taskDefinitions"]["tools"][0];
    let c = &td["containerDefinitions"][0];
    assert_eq!(c["image"], image, "a digest outside ECR deploys as written");
    assert_eq!(td["runtimePlatform"]["cpuArchitecture"], "X86_64", "the registry's index has only linux/amd64");
    assert_eq!(c["secrets"][0]["valueFrom"], db_arn.as_str(), "the full ARN, as DescribeSecret answered it");
    assert_eq!(c["repositoryCredentials"]["credentialsParameter"], db_arn.as_str(), "resolved by name, value unread");
    assert!(op_count(&ops, "DescribeSecret") >= 1, "{ops:?}");
    assert_eq!(op_count(&ops, "GetSecretValue"), 0);

    // The tag resolves through the registry to the same digest.
    lab.edit_manifest("tools.yaml", &image, &format!("{host}/library/python:3.12-slim"));
    let (code, doc) = lab.apply(&["--insecure-registry", &host]);
    assert_eq!(code, 0, "{doc:#}");
    let tds = &lab.dump()["taskDefinitions"]["tools"];
    let latest = &tds.as_array().unwrap().last().unwrap()["containerDefinitions"][0];
    assert_eq!(latest["image"], image, "pinned to the digest the tag names");
}

#[test]
fn a_removed_label_is_untagged_from_the_service_and_its_revision() {
    let lab = AwsLab::new();
    assert_eq!(lab.apply(&[]).0, 0);
    lab.ecs(
        "tag_resource",
        serde_json::json!({"resourceArn": lab.dump()["services"]["search"]["serviceArn"], "tags": [{"key": "cost-center", "value": "42"}]}),
    );
    lab.edit_manifest("search.yaml", "  labels:\n    team: platform\n", "");
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["apiCalls"]["calls"]["UntagResource"], 2, "{doc:#}");
    let ecs = lab.dump();
    let svc = tags(&ecs["services"]["search"]);
    let td = tags(&ecs["taskDefinitions"]["search"][0]);
    for t in [&svc, &td] {
        assert!(!t.contains_key("team") && !t.contains_key("mcpfleet.io/labels"), "{t:?}");
    }
    assert_eq!(svc["cost-center"], "42", "a tag mcpfleet did not put there stays");
    assert_eq!(lab.apply(&[]).0, 0);
    assert_eq!(writes(&lab.apply(&[]).1), 0);
}

/// The SDK configuration of an adapter on its own, pointed at the lab's moto (one attempt per request).
fn moto_config(lab: &AwsLab) -> aws_config::SdkConfig {
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&lab.endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "moto",
        )))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .http_client(mcpfleet::backend::aws::https_client())
        .build()
}

/// The ECS adapter on its own, pointed at the lab's moto.
fn moto_ecs(lab: &AwsLab) -> mcpfleet::backend::aws::AwsEcs {
    mcpfleet::backend::aws::AwsEcs::new(aws_sdk_ecs::Client::new(&moto_config(lab)))
}

/// Retention against moto's shapes (ListClusters answers cluster ARNs). moto never completes a deployment (no
/// task runs; the deployment keeps the revision the service was created with), so no rollout settles through the
/// binary and retention is run here as a completed rollout runs it: `rollout::record_success`.
#[tokio::test]
async fn retention_keeps_the_revision_a_moved_services_old_copy_runs() {
    use mcpfleet::backend::{Ecs, TdStatus};

    let lab = AwsLab::new();
    lab.ecs("create_cluster", serde_json::json!({"clusterName": "mcp-other"}));
    assert_eq!(lab.apply(&[]).0, 0);
    // Moved without --prune: the copy in mcp-prod stays and keeps running search:1.
    lab.edit_manifest("search.yaml", "spec:\n", "spec:\n  cluster: mcp-other\n");
    lab.edit_manifest("search.yaml", "  stopTimeout: 20s\n", "  stopTimeout: 20s\n  rollout: { historyLimit: 1 }\n");
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    for (from, to) in [
        ("search:v0.9.0", "search:v0.9.1"),
        ("LOG_LEVEL: WARNING", "LOG_LEVEL: INFO"),
        ("LOG_LEVEL: INFO", "LOG_LEVEL: DEBUG"),
    ] {
        lab.edit_manifest("search.yaml", from, to);
        let (code, doc) = lab.apply(&[]);
        assert_eq!(code, 0, "{doc:#}");
    }
    let ecs = moto_ecs(&lab);
    let arns = ecs.list_task_definitions("search", TdStatus::Active).await.unwrap();
    assert_eq!(arns.len(), 4, "{arns:?}");
    let old = ecs.describe_services("mcp-prod", &["search".into()]).await.unwrap().services.remove(0);
    assert_eq!(old.task_definition, arns[0], "the old copy runs search:1");
    let moved = ecs.describe_services("mcp-other", &["search".into()]).await.unwrap().services.remove(0);
    assert_eq!(moved.task_definition, arns[3]);

    lab.start_recording();
    mcpfleet::reconcile::rollout::record_success(&ecs, &moved, &arns[3], 1).await.unwrap();
    let ops = lab.recorded();
    assert_eq!(op_count(&ops, "ListClusters"), 1, "{ops:?}");
    assert_eq!(op_count(&ops, "DeregisterTaskDefinition"), 2, "{ops:?}");
    let active = ecs.list_task_definitions("search", TdStatus::Active).await.unwrap();
    assert_eq!(
        active,
        [arns[0].clone(), arns[3].clone()],
        "search:1 (the old copy's) and search:4 (the new one's) stay"
    );
    let inactive = ecs.list_task_definitions("search", TdStatus::Inactive).await.unwrap();
    assert_eq!(inactive, [arns[1].clone(), arns[2].clone()]);
    let old = ecs.describe_services("mcp-prod", &["search".into()]).await.unwrap().services.remove(0);
    assert_eq!(old.task_definition, arns[0]);
}

/// The ELBv2 adapter on its own, pointed at the lab's moto.
fn moto_elbv2(lab: &AwsLab) -> mcpfleet::backend::aws::Elbv2 {
    mcpfleet::backend::aws::Elbv2::new(aws_sdk_elasticloadbalancingv2::Client::new(&moto_config(lab)))
}

/// The ELBv2 requests recorded since the recorder started, in the order DescribeTargetGroups,
/// DescribeTargetGroupAttributes, DescribeLoadBalancers, DescribeLoadBalancerAttributes, and how many requests
/// were recorded in all.
fn elb_requests(lab: &AwsLab) -> ([u64; 4], u64) {
    let ops = lab.recorded();
    let each = [
        "DescribeTargetGroups",
        "DescribeTargetGroupAttributes",
        "DescribeLoadBalancers",
        "DescribeLoadBalancerAttributes",
    ]
    .map(|op| op_count(&ops, op));
    (each, ops.values().sum())
}

#[tokio::test]
async fn target_groups_are_described_by_name_and_arn_with_their_load_balancer() {
    use mcpfleet::backend::{LoadBalancerType, TargetGroups, TargetProtocol, TargetType};

    let lab = AwsLab::new();
    let world = lab.load_balancers();
    let ip_arn = world["targetGroups"]["mcp-documents"].as_str().unwrap().to_string();
    let instance_arn = world["targetGroups"]["legacy-instances"].as_str().unwrap().to_string();
    let lb_arn = world["loadBalancer"]["arn"].as_str().unwrap();
    let elb = moto_elbv2(&lab);

    // By name: one DescribeTargetGroups, an attributes request per group, one DescribeLoadBalancers for the one
    // ALB and its attributes.
    lab.start_recording();
    let found = elb.describe(&["mcp-documents".into(), "legacy-instances".into()]).await.unwrap();
    assert_eq!(elb_requests(&lab), ([1, 2, 1, 1], 5));
    assert_eq!(found.len(), 2, "{found:?}");
    let ip = found.iter().find(|f| f.target_group.name == "mcp-documents").unwrap();
    assert_eq!(ip.target_group.arn, ip_arn);
    assert_eq!(ip.target_group.target_type, TargetType::Ip);
    assert_eq!(ip.target_group.protocol, Some(TargetProtocol::Http));
    assert_eq!(ip.target_group.health_check_path.as_deref(), Some("/ready"));
    assert_eq!(ip.target_group.deregistration_delay_secs, Some(30));
    assert_eq!(ip.target_group.load_balancer_arns, [lb_arn]);
    assert_eq!(ip.load_balancers.len(), 1);
    let alb = &ip.load_balancers[0];
    assert_eq!((alb.arn.as_str(), alb.name.as_str(), alb.kind), (lb_arn, "mcp-alb", LoadBalancerType::Application));
    assert_eq!(alb.dns_name, world["loadBalancer"]["dnsName"].as_str().unwrap());
    assert_eq!(alb.idle_timeout_secs, Some(120));
    let instance = found.iter().find(|f| f.target_group.name == "legacy-instances").unwrap();
    assert_eq!(instance.target_group.arn, instance_arn);
    assert_eq!(instance.target_group.target_type, TargetType::Instance);
    assert_eq!(instance.target_group.deregistration_delay_secs, Some(300), "ELB's default");
    assert!(instance.target_group.load_balancer_arns.is_empty() && instance.load_balancers.is_empty());

    // By ARN: the same answer; the unattached group costs no load balancer request.
    lab.start_recording();
    let by_arn = elb.describe(std::slice::from_ref(&ip_arn)).await.unwrap();
    assert_eq!(elb_requests(&lab), ([1, 1, 1, 1], 4));
    assert_eq!(by_arn, vec![ip.clone()]);
    lab.start_recording();
    let by_arn = elb.describe(std::slice::from_ref(&instance_arn)).await.unwrap();
    assert_eq!(elb_requests(&lab), ([1, 1, 0, 0], 2));
    assert_eq!(by_arn, vec![instance.clone()]);

    // Unknown names and ARNs are absent: ELBv2 refuses the whole request, which is then repeated per id.
    lab.start_recording();
    let unknown_arn = ip_arn.replace("mcp-documents", "mcp-gone");
    let ids = ["mcp-documents".into(), "mcp-missing".into(), unknown_arn, instance_arn.clone()];
    let found = elb.describe(&ids).await.unwrap();
    let names: Vec<&str> = found.iter().map(|f| f.target_group.name.as_str()).collect();
    assert_eq!(names, ["mcp-documents", "legacy-instances"]);
    // Names: 1 refused + 2 alone; ARNs: 1 refused + 2 alone.
    assert_eq!(elb_requests(&lab), ([6, 2, 1, 1], 10));
}

/// documents.yaml of the lab exposed through `target_group`.
fn expose_documents(lab: &AwsLab, target_group: &str) {
    let path = lab.manifests().join("documents.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = match text.find("  expose:\n    loadBalancers:\n") {
        Some(at) => {
            let end = text[at..].find("  readiness:\n").unwrap() + at;
            format!("{}{}", &text[..at], &text[end..])
        }
        None => text,
    };
    assert!(text.contains("  readiness:\n"));
    let with = text.replacen(
        "  readiness:\n",
        &format!("  expose:\n    loadBalancers:\n      - targetGroup: {target_group}\n  readiness:\n"),
        1,
    );
    std::fs::write(path, with).unwrap();
}

#[test]
fn a_service_is_created_and_updated_with_its_target_group_and_an_instance_group_writes_nothing() {
    let lab = AwsLab::new();
    let world = lab.load_balancers();
    let blue = world["targetGroups"]["mcp-documents"].as_str().unwrap();
    let green = world["targetGroups"]["mcp-documents-green"].as_str().unwrap();

    // By name: CreateService carries the resolved ARN with the service's container and port.
    expose_documents(&lab, "mcp-documents");
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    let lbs = &lab.dump()["services"]["documents"]["loadBalancers"];
    assert_eq!(
        lbs,
        &serde_json::json!([{"targetGroupArn": blue, "containerName": "documents", "containerPort": 8080}]),
        "{lbs:#}"
    );
    let m = lab.manifests();
    let (code, plan) = lab.json(&["plan", "-f", m.to_str().unwrap(), "-o", "json", "--detailed-exitcode"]);
    assert_eq!(code, 0, "no false diff against moto's echo: {plan:#}");

    // Another target group: one UpdateService moves the service to it.
    expose_documents(&lab, "mcp-documents-green");
    lab.start_recording();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(op_count(&lab.recorded(), "UpdateService"), 1, "{doc:#}");
    let lbs = &lab.dump()["services"]["documents"]["loadBalancers"];
    assert_eq!(
        lbs,
        &serde_json::json!([{"targetGroupArn": green, "containerName": "documents", "containerPort": 8080}]),
        "{lbs:#}"
    );

    // status names the target group first, with the DNS name of the ALB routing to it.
    let (code, status) = lab.json(&["status", "-f", m.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 0, "{status:#}");
    let docs = status["services"].as_array().unwrap().iter().find(|s| s["name"] == "documents").unwrap();
    assert_eq!(
        docs["endpoints"][0],
        serde_json::json!({"kind": "loadBalancer", "targetGroupArn": green, "dnsName": world["loadBalancer"]["dnsName"]}),
        "{status:#}"
    );

    // An `instance` target group is refused before any write: exit 1 and no write request reaches moto.
    expose_documents(&lab, "legacy-instances");
    lab.start_recording();
    let out = lab.run(&["apply", "-f", m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.expose.loadBalancers[0].targetGroup")
            && stderr.contains("has target type `instance`")
            && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    let ops = lab.recorded();
    assert!(op_count(&ops, "DescribeTargetGroups") >= 1, "{ops:?}");
    for op in common::lab::write_ops() {
        assert_eq!(op_count(&ops, op), 0, "{op} was sent: {ops:?}");
    }
    assert_eq!(lab.dump()["services"]["documents"]["loadBalancers"][0]["targetGroupArn"], green);
}

/// documents.yaml of the lab autoscaling within 2..6 on CPU at 60 % and 500 requests per task.
const DOCUMENTS_SCALED: &str =
    "  replicas: 2\n  autoscaling:\n    min: 2\n    max: 6\n    targetCpu: 60\n    requestsPerTarget: 500\n";

/// Application Auto Scaling as moto has it for documents: its scalable targets and its policies by name.
fn documents_scaling(lab: &AwsLab) -> (Vec<serde_json::Value>, BTreeMap<String, serde_json::Value>) {
    let ids = serde_json::json!(["service/mcp-prod/documents"]);
    let targets =
        lab.aas("describe_scalable_targets", serde_json::json!({"ServiceNamespace": "ecs", "ResourceIds": ids}));
    let policies = lab.aas(
        "describe_scaling_policies",
        serde_json::json!({"ServiceNamespace": "ecs", "ResourceId": "service/mcp-prod/documents"}),
    );
    let policies = policies["ScalingPolicies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["PolicyName"].as_str().unwrap().to_string(), p.clone()))
        .collect();
    (targets["ScalableTargets"].as_array().unwrap().clone(), policies)
}

#[test]
fn autoscaling_is_registered_compared_changed_and_removed_on_moto() {
    let lab = AwsLab::new();
    lab.edit_manifest("documents.yaml", "  replicas: 2\n", DOCUMENTS_SCALED);
    lab.start_recording();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    let ops = lab.recorded();
    assert_eq!((op_count(&ops, "RegisterScalableTarget"), op_count(&ops, "PutScalingPolicy")), (1, 2), "{ops:?}");
    let (targets, policies) = documents_scaling(&lab);
    assert_eq!(targets.len(), 1, "{targets:#?}");
    assert_eq!(
        (&targets[0]["MinCapacity"], &targets[0]["MaxCapacity"]),
        (&serde_json::json!(2), &serde_json::json!(6))
    );
    assert_eq!(targets[0]["ScalableDimension"], "ecs:service:DesiredCount");
    let cpu = &policies["documents-cpu"]["TargetTrackingScalingPolicyConfiguration"];
    assert_eq!(cpu["PredefinedMetricSpecification"]["PredefinedMetricType"], "ECSServiceAverageCPUUtilization");
    assert_eq!(
        (cpu["TargetValue"].as_f64(), cpu["ScaleInCooldown"].as_u64(), cpu["ScaleOutCooldown"].as_u64()),
        (Some(60.0), Some(300), Some(60))
    );
    // The label of documents' target group behind the seeded ALB, from the two ARNs.
    let world = lab.load_balancers();
    let lb = world["loadBalancer"]["arn"].as_str().unwrap().split_once(":loadbalancer/").unwrap().1.to_string();
    let tg =
        world["targetGroups"]["mcp-documents"].as_str().unwrap().split_once(":targetgroup/").unwrap().1.to_string();
    let requests = &policies["documents-requests"]["TargetTrackingScalingPolicyConfiguration"];
    assert_eq!(requests["PredefinedMetricSpecification"]["PredefinedMetricType"], "ALBRequestCountPerTarget");
    assert_eq!(requests["PredefinedMetricSpecification"]["ResourceLabel"], format!("{lb}/targetgroup/{tg}"));
    assert!(lb.starts_with("app/mcp-alb/"), "{lb}");
    assert!(tags(&lab.dump()["services"]["documents"]).contains_key("mcpfleet.io/autoscaling"));

    // A no-op apply: reads only, one DescribeScalableTargets for the fleet, no policy read, no write.
    lab.start_recording();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    let ops = lab.recorded();
    for op in ops.keys() {
        assert!(NO_OP_ALLOWED.contains(&op.as_str()), "a no-op apply sent {op}: {ops:?}");
    }
    assert_eq!(writes(&doc), 0, "{:#}", doc["apiCalls"]);
    assert_eq!(
        (op_count(&ops, "DescribeScalableTargets"), op_count(&ops, "DescribeScalingPolicies")),
        (1, 0),
        "{ops:?}"
    );
    let m = lab.manifests();
    let (code, plan) = lab.json(&["plan", "-f", m.to_str().unwrap(), "-o", "json", "--detailed-exitcode"]);
    assert_eq!(code, 0, "no false diff against moto's echo: {plan:#}");
    let (code, status) = lab.json(&["status", "-f", m.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 0, "{status:#}");
    let row = status["services"].as_array().unwrap().iter().find(|r| r["name"] == "documents").unwrap();
    assert_eq!(
        row["autoscaling"],
        serde_json::json!({"min": 2, "max": 6, "targets": {"targetCpu": 60, "requestsPerTarget": 500}})
    );

    // Bounds changed behind mcpfleet's back are planned field by field and registered again; the policies, read
    // to compare, are as wanted and are not put again.
    lab.aas(
        "register_scalable_target",
        serde_json::json!({"ServiceNamespace": "ecs", "ResourceId": "service/mcp-prod/documents",
            "ScalableDimension": "ecs:service:DesiredCount", "MinCapacity": 3, "MaxCapacity": 9}),
    );
    let (code, plan) = lab.json(&["plan", "-f", m.to_str().unwrap(), "-o", "json", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{plan:#}");
    let planned = plan["services"].as_array().unwrap().iter().find(|s| s["name"] == "documents").unwrap();
    assert_eq!(
        planned["changes"],
        serde_json::json!([{"path": "autoscaling.min", "from": 3, "to": 2}, {"path": "autoscaling.max", "from": 9, "to": 6}])
    );
    lab.start_recording();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    let ops = lab.recorded();
    assert_eq!(op_count(&ops, "RegisterScalableTarget"), 1, "{ops:?}");
    assert_eq!(op_count(&ops, "DescribeScalingPolicies"), 1, "{ops:?}");
    for op in ["PutScalingPolicy", "UpdateService", "RegisterTaskDefinition", "TagResource"] {
        assert_eq!(op_count(&ops, op), 0, "{op}: {ops:?}");
    }
    assert_eq!(documents_scaling(&lab).0[0]["MinCapacity"], 2);

    // Removed: mcpfleet's policies, then the target, then the service's fixed count.
    let text = std::fs::read_to_string(m.join("documents.yaml")).unwrap();
    std::fs::write(m.join("documents.yaml"), text.replace(DOCUMENTS_SCALED, "  replicas: 3\n")).unwrap();
    lab.start_recording();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    let ops = lab.recorded();
    assert_eq!((op_count(&ops, "DeleteScalingPolicy"), op_count(&ops, "DeregisterScalableTarget")), (2, 1), "{ops:?}");
    assert_eq!(op_count(&ops, "UpdateService"), 1, "{ops:?}");
    let (targets, policies) = documents_scaling(&lab);
    assert!(targets.is_empty() && policies.is_empty(), "{targets:#?} {policies:#?}");
    let svc = &lab.dump()["services"]["documents"];
    assert_eq!(svc["desiredCount"], 3);
    assert!(!tags(svc).contains_key("mcpfleet.io/autoscaling"));
    let (code, plan) = lab.json(&["plan", "-f", m.to_str().unwrap(), "-o", "json", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{plan:#}");
}

/// A service's tasks as the adapter reads them from moto: ListTasks (desired status RUNNING), then DescribeTasks
/// a hundred at a time. What moto 5.2.5 gives: it runs no task for a service, and RunTask of an awsvpc task fails
/// inside moto (HTTP 500: its ENI has no `private_dns_name`), so the tasks here are RunTask's of a bridge-mode
/// revision, which have no elastic network interface and so no private address (the ENI's `privateIPv4Address` is
/// read in tests/aws_mocks.rs); moto answers ListTasks in one page whatever the count, and ignores its
/// serviceName filter, so the lab's cluster holds only these tasks.
#[tokio::test]
async fn a_services_tasks_are_listed_and_described_a_hundred_at_a_time() {
    use mcpfleet::backend::{Ecs, TaskStatus};

    let lab = AwsLab::new();
    assert_eq!(lab.apply(&[]).0, 0);
    // moto's RunTask also adds up container-level memory, which Fargate revisions need not have.
    let rendered = &lab.dump()["taskDefinitions"]["documents"][0];
    let mut container = rendered["containerDefinitions"][0].clone();
    container["memory"] = serde_json::json!(1024);
    let registered = lab.ecs(
        "register_task_definition",
        serde_json::json!({"family": "documents", "networkMode": "bridge", "containerDefinitions": [container]}),
    );
    let td = registered["taskDefinition"]["taskDefinitionArn"].as_str().unwrap().to_string();
    // (ECS starts at most 10 tasks per RunTask; moto has no such limit.)
    let run = lab.ecs(
        "run_task",
        serde_json::json!({"cluster": "mcp-prod", "taskDefinition": td, "count": 105, "launchType": "FARGATE",
                           "startedBy": "ecs-svc/documents"}),
    );
    let started = run["tasks"].as_array().unwrap();
    assert_eq!(started.len(), 105, "{run:#}");

    let ecs = moto_ecs(&lab);
    lab.start_recording();
    let tasks = ecs.service_tasks("mcp-prod", "documents").await.unwrap();
    let ops = lab.recorded();
    assert_eq!((op_count(&ops, "ListTasks"), op_count(&ops, "DescribeTasks")), (1, 2), "{ops:?}");
    let listed: Vec<&str> = tasks.iter().map(|t| t.arn.as_str()).collect();
    let sent: Vec<&str> = started.iter().map(|t| t["taskArn"].as_str().unwrap()).collect();
    assert_eq!(listed, sent, "every task, in ListTasks' order");
    for task in &tasks {
        assert_eq!(task.task_definition, td);
        // moto's state manager moves a task on (RUNNING, DEACTIVATING, STOPPING, …) each time it is described:
        // every status it reports is one of ECS's.
        assert!(!matches!(task.last_status, TaskStatus::Other(_)), "{task:?}");
        assert_eq!((task.private_ipv4.as_deref(), task.port), (None, None), "no ENI, no address: {task:?}");
    }
    assert!(ecs.describe_tasks("mcp-prod", &[]).await.unwrap().is_empty(), "no request for no ARN");
    assert_eq!(op_count(&lab.recorded(), "DescribeTasks"), 2);
}

#[test]
fn put_secret_value_restarts_exactly_the_service_that_reads_the_secret() {
    let lab = AwsLab::new();
    let m = lab.manifests();
    let plan = || lab.json(&["plan", "-f", m.to_str().unwrap(), "-o", "json", "--detailed-exitcode"]);
    assert_eq!(lab.apply(&[]).0, 0);
    assert_eq!(plan().0, 0, "converged");
    let before = lab.secretsmanager("describe_secret", serde_json::json!({"SecretId": "prod/mcp/db-password"}));
    let current = |d: &serde_json::Value| {
        let versions = d["VersionIdsToStages"].as_object().unwrap();
        let (id, _) = versions.iter().find(|(_, s)| s.as_array().unwrap().iter().any(|s| s == "AWSCURRENT")).unwrap();
        id.replace('-', "")[..12].to_string()
    };
    let old = current(&before);
    let database = tags(&lab.dump()["services"]["database"]);
    assert!(database["mcpfleet.io/secret-versions"].ends_with(&format!("={old}")), "{database:?}");

    // A new value, as an operator or a rotation Lambda puts it: AWSCURRENT moves.
    lab.secretsmanager(
        "put_secret_value",
        serde_json::json!({"SecretId": "prod/mcp/db-password", "SecretString": "rotated"}),
    );
    let new = current(&lab.secretsmanager("describe_secret", serde_json::json!({"SecretId": "prod/mcp/db-password"})));
    assert_ne!(old, new);
    let (code, doc) = plan();
    assert_eq!(code, 2, "{doc:#}");
    let actions: Vec<(&str, &str, &str)> = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["action"].as_str().unwrap(), s["reason"].as_str().unwrap_or("-")))
        .collect();
    assert_eq!(
        actions,
        [("database", "update", "secretRotated"), ("documents", "noop", "-"), ("search", "noop", "-")],
        "{doc:#}"
    );
    let rotated = &doc["services"][0]["rotatedSecrets"][0];
    assert_eq!(
        (rotated["secret"].as_str(), rotated["from"].as_str(), rotated["to"].as_str()),
        (Some("prod/mcp/db-password"), Some(old.as_str()), Some(new.as_str()))
    );
    // Versions come from the ListSecrets resolution makes anyway: no GetSecretValue, no extra request.
    assert_eq!(doc["apiCalls"]["calls"]["ListSecrets"], 1, "{:#}", doc["apiCalls"]);
    assert_eq!(doc["apiCalls"]["calls"].get("DescribeSecret"), None, "{:#}", doc["apiCalls"]);

    let deployments_before = lab.dump()["services"]["database"]["deployments"].clone();
    lab.start_recording();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    let ops = lab.recorded();
    assert_eq!((op_count(&ops, "UpdateService"), op_count(&ops, "RegisterTaskDefinition")), (1, 0), "{ops:?}");
    assert_eq!(op_count(&ops, "GetSecretValue"), 0, "{ops:?}");
    let svc = &lab.dump()["services"]["database"];
    let primary = svc["deployments"].as_array().unwrap().iter().find(|d| d["status"] == "PRIMARY").unwrap();
    assert!(
        deployments_before.as_array().unwrap().iter().all(|d| d["id"] != primary["id"]),
        "forceNewDeployment starts a deployment: {deployments_before:#} → {primary:#}"
    );
    let t = tags(svc);
    assert_eq!(t["mcpfleet.io/restart"], primary["id"].as_str().unwrap(), "{t:?}");
    assert!(t["mcpfleet.io/secret-versions"].ends_with(&format!("={new}")), "{t:?}");
    assert_eq!(t["mcpfleet.io/task-definition"], svc["taskDefinition"].as_str().unwrap(), "same revision");
    // One restart per rotation.
    assert_eq!(plan().0, 0);
}

/// (name, architecture, monthly, arm64Monthly) of each service of `cost -o json`.
fn cost_lines(doc: &serde_json::Value) -> Vec<(String, String, serde_json::Value, serde_json::Value)> {
    let services = doc["services"].as_array().unwrap_or_else(|| panic!("{doc:#}"));
    services
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap().to_string();
            (text("name"), text("architecture"), s["monthly"].clone(), s["arm64Monthly"].clone())
        })
        .collect()
}

#[test]
fn cost_and_the_plan_cost_line_on_moto() {
    use serde_json::{Value, json};
    let lab = AwsLab::new();
    // documents' image has linux/arm64 and linux/amd64; database's only linux/amd64 (scripts/moto_world.py).
    lab.edit_manifest("documents.yaml", "architecture: auto", "architecture: x86_64");
    let m = lab.manifests();
    let m = m.to_str().unwrap();
    lab.start_recording();
    let (code, doc) = lab.json(&["cost", "-f", m, "-o", "json"]);
    assert_eq!(code, 0, "{doc:#}");
    let line = |n: &str, a: &str, monthly: Value, arm: Value| (n.to_string(), a.to_string(), monthly, arm);
    // Built-in us-east-1 prices, 730 hours: database 2 × 730 × (1 × 0.04048 + 2 × 0.004445) = 72.0802 → 72.08;
    // documents on X86_64 2 × 730 × (0.5 × 0.04048 + 1 × 0.004445) = 36.0401 → 36.04, on ARM64
    // 2 × 730 × (0.5 × 0.03238 + 1 × 0.00356) = 28.835 → 28.84; search 730 × (0.25 × 0.03238 + 0.5 × 0.00356)
    // = 7.20875 → 7.21.
    assert_eq!(
        cost_lines(&doc),
        [
            line("database", "X86_64", json!(72.08), Value::Null),
            line("documents", "X86_64", json!(36.04), json!(28.84)),
            line("search", "ARM64", json!(7.21), Value::Null),
        ]
    );
    assert_eq!(
        (&doc["total"], &doc["possibleSaving"], &doc["region"]),
        (&json!(115.33), &json!(7.2), &json!("us-east-1"))
    );
    let ops = lab.recorded();
    assert!(write_ops().all(|w| op_count(&ops, w) == 0), "cost wrote: {ops:?}");
    assert_eq!(op_count(&ops, "GetSecretValue"), 0, "{ops:?}");

    let (code, applied) = lab.apply(&[]);
    assert_eq!(code, 0, "{applied:#}");
    // A resize: documents to 1 vCPU and 2 GB on X86_64, 2 × 730 × (1 × 0.04048 + 2 × 0.004445) = 72.08, from 36.04.
    lab.edit_manifest("documents.yaml", "cpu: 512\n  memory: 1024", "cpu: 1024\n  memory: 2048");
    let (code, plan) = lab.json(&["plan", "-f", m, "-o", "json", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{plan:#}");
    assert_eq!(
        plan["costDelta"]["services"],
        json!([{"name": "documents", "cluster": "mcp-prod", "from": 36.04, "to": 72.08, "change": 36.04}]),
        "{plan:#}"
    );
    assert_eq!(plan["costDelta"]["monthly"], json!(36.04));
    let out = lab.run(&["plan", "-f", m]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("Monthly cost: +$36.04 (USD, us-east-1, built-in table (us-east-1, 2026-12-01)).\n"),
        "{text}"
    );
}
