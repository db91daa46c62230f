//! The aws backend through the binary against moto's server: real request and response shapes, tags, digests,
//! ARNs and request counts. (moto does not run tasks or progress deployments, so rollout outcomes are tested on
//! the sim and with aws-smithy-mocks.)

mod common;

use common::aws_lab::{AwsLab, tags};
use common::lab::writes;

#[test]
fn apply_pins_digests_picks_architectures_and_wires_secret_arns() {
    let lab = AwsLab::new();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    let ecs = lab.dump();
    let images = &lab.seed["images"];
    let registry = lab.seed["registry"].as_str().unwrap();
    for (name, tag, arch) in
        [("documents", "v1.4.2", "ARM64"), ("database", "v2.0.1", "X86_64"), ("search", "v0.9.0", "ARM64")]
    {
        let tds = ecs["taskDefinitions"][name].as_array().unwrap();
        assert_eq!(tds.len(), 1, "{name}");
        let td = &tds[0];
        let c = &td["containerDefinitions"][0];
        let digest = images[format!("mcp/{name}:{tag}")]["digest"].as_str().unwrap();
        assert_eq!(c["image"], format!("{registry}/mcp/{name}@{digest}"), "{name} is pinned to the ECR digest");
        assert_eq!(td["runtimePlatform"]["cpuArchitecture"], arch, "{name}");
        assert_eq!(td["requiresCompatibilities"][0], "FARGATE");
        let svc = &ecs["services"][name];
        let t = tags(svc);
        assert_eq!(t["mcpfleet.io/managed-by"], "mcpfleet", "{name}");
        assert_eq!(t["mcpfleet.io/image-digest"], digest);
        assert_eq!(t["mcpfleet.io/task-definition"], td["taskDefinitionArn"].as_str().unwrap());
        assert_eq!(tags(td)["mcpfleet.io/spec-hash"], t["mcpfleet.io/spec-hash"]);
        assert_eq!(svc["launchType"], "FARGATE");
    }
    let docs = &ecs["taskDefinitions"]["documents"][0]["containerDefinitions"][0];
    let openai = lab.seed["secrets"]["prod/mcp/openai-key"].as_str().unwrap();
    assert!(openai.rsplit('-').next().unwrap().len() == 6, "moto's ARN has the 6-character suffix: {openai}");
    assert_eq!(docs["secrets"][0]["valueFrom"], format!("{openai}:api_key::"));
    assert_eq!(docs["stopTimeout"], 30);
    assert_eq!(docs["healthCheck"]["interval"], 30);
    assert_eq!(docs["healthCheck"]["timeout"], 10);
    assert_eq!(docs["healthCheck"]["startPeriod"], 15);
    let db = &ecs["taskDefinitions"]["database"][0]["containerDefinitions"][0];
    assert_eq!(db["secrets"][0]["valueFrom"], lab.seed["secrets"]["prod/mcp/db-password"]);
    assert_eq!(db["stopTimeout"], 60);

    // A second apply makes no write request at all and registers nothing.
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0);
    assert!(doc["services"].as_array().unwrap().iter().all(|s| s["outcome"] == "unchanged"), "{doc:#}");
    assert_eq!(writes(&doc), 0, "{:#}", doc["apiCalls"]);
    let calls = &doc["apiCalls"]["calls"];
    assert_eq!(calls["DescribeServices"], 1);
    assert_eq!(calls["BatchGetImage"], 3, "one ECR request per repository");
    assert_eq!(calls["ListSecrets"], 1);
    assert_eq!(calls.get("DescribeTaskDefinition"), None);
    assert_eq!(lab.dump()["taskDefinitions"]["documents"].as_array().unwrap().len(), 1);
}

#[test]
fn unresolvable_references_and_missing_architectures_change_nothing() {
    let lab = AwsLab::new();
    assert_eq!(lab.apply(&[]).0, 0);
    let before = lab.dump();

    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v9.9.9");
    lab.edit_manifest("search.yaml", "SEARCH_API_KEY: prod/mcp/search-api-key", "SEARCH_API_KEY: prod/mcp/missing");
    let m = lab.manifests();
    let out = lab.run(&["apply", "-f", m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("service `documents`") && stderr.contains("tag `v9.9.9` not found"), "{stderr}");
    assert!(stderr.contains("service `search`") && stderr.contains("secret `prod/mcp/missing` not found"), "{stderr}");
    lab.edit_manifest("documents.yaml", "documents:v9.9.9", "documents:v1.4.2");
    lab.edit_manifest("search.yaml", "SEARCH_API_KEY: prod/mcp/missing", "SEARCH_API_KEY: prod/mcp/search-api-key");

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
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
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
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
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
    let start = std::time::Instant::now();
    while lab.dump()["services"].as_object().unwrap().len() < 3 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "the controller did not create the fleet");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let before = api_requests(port);
    std::thread::sleep(std::time::Duration::from_millis(3500));
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
