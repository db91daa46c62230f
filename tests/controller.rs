//! The controller (`mcpfleet run`) as a process on the sim backend: it converges, corrects drift, rolls a bad
//! rollout back without retrying it, survives a broken manifest, serves Prometheus metrics, and a SIGTERM in the
//! middle of a rollout is finished by the next controller without duplicates.
//!
//! No test sleeps and hopes: each waits for what a user would see (the sim's state, `/metrics`, `/readyz`, the
//! log) within a generous deadline, and a test that checks that something did *not* happen first waits for the
//! controller to complete whole passes after the trigger.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::controller::Controller;
use common::lab::{ECR, Lab};
use serde_json::{Value, json};

fn status(lab: &Lab) -> Vec<Value> {
    let (_, doc) = lab.json(&["status", "--cluster", "mcp-prod", "-o", "json"]);
    doc["services"].as_array().unwrap().clone()
}

fn all_completed(lab: &Lab) -> bool {
    status(lab).iter().all(|s| s["rolloutState"] == "COMPLETED" && s["lastGood"] == s["taskDefinition"])
}

#[test]
fn converges_from_empty_corrects_drift_and_serves_metrics() {
    let lab = Lab::new();
    let c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    c.wait_for("readiness", || c.get("/readyz").is_some_and(|(code, _)| code == 200));

    lab.ok(&["sim", "edit", "documents", "--cluster", "mcp-prod", "--desired-count", "5"]);
    c.wait_for("drift to be corrected", || {
        status(&lab).iter().any(|s| s["name"] == "documents" && s["desired"] == 2 && s["running"] == 2)
            && c.metric("mcpfleet_drift_corrections_total") >= 1.0
    });
    assert_eq!(lab.world().families["documents"].len(), 1, "correcting a count needs no new revision");

    // The drift is logged as such, with the service, cluster, revision and the pass it happened in.
    let line = c.json_log_line("drift corrected");
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["fields"]["service"], "documents", "{line}");
    assert_eq!(line["fields"]["cluster"], "mcp-prod", "{line}");
    let documents = lab.world().families["documents"][0].arn.clone();
    assert_eq!(line["fields"]["revision"], documents.as_str(), "{line}");
    assert!(line["span"]["pass"].as_u64().is_some_and(|p| p >= 1), "no pass id: {line}");

    // A steady-state pass costs only DescribeServices: resolution is cached, nothing is written. Every operation
    // that moved is listed, so anything else shows up here.
    c.wait_passes(2);
    let before = api_requests(&c);
    c.wait_passes(2);
    let after = api_requests(&c);
    let moved: std::collections::BTreeMap<&str, f64> = after
        .iter()
        .map(|(op, n)| (op.as_str(), n - before.get(op).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect();
    assert_eq!(moved.keys().copied().collect::<Vec<_>>(), ["DescribeServices"], "{before:?} → {after:?}");
    assert!(moved["DescribeServices"] >= 1.0);

    // The rest of /metrics, as the reference client reads it.
    let m = metric_families(&c);
    let sample = |family: &str, name: &str, labels: Value| -> Option<f64> {
        m[family]["samples"].as_array()?.iter().find(|s| s["name"] == name && s["labels"] == labels)?["value"].as_f64()
    };
    assert_eq!(m["mcpfleet_reconciles"]["type"], "counter");
    assert!(
        sample("mcpfleet_reconciles", "mcpfleet_reconciles_total", json!({"outcome": "created"})) == Some(3.0),
        "{m}"
    );
    assert!(
        sample("mcpfleet_reconciles", "mcpfleet_reconciles_total", json!({"outcome": "unchanged"})).unwrap_or(0.0)
            >= 3.0,
        "{m}"
    );
    assert!(
        sample("mcpfleet_reconciles", "mcpfleet_reconciles_total", json!({"outcome": "updated"})).unwrap_or(0.0) >= 1.0,
        "the drift correction: {m}"
    );
    assert_eq!(sample("mcpfleet_drift_corrections", "mcpfleet_drift_corrections_total", json!({})), Some(1.0));
    assert_eq!(m["mcpfleet_reconcile_duration_seconds"]["type"], "histogram");
    let count =
        sample("mcpfleet_reconcile_duration_seconds", "mcpfleet_reconcile_duration_seconds_count", json!({})).unwrap();
    let sum =
        sample("mcpfleet_reconcile_duration_seconds", "mcpfleet_reconcile_duration_seconds_sum", json!({})).unwrap();
    let inf = sample(
        "mcpfleet_reconcile_duration_seconds",
        "mcpfleet_reconcile_duration_seconds_bucket",
        json!({"le": "+Inf"}),
    )
    .unwrap();
    assert!(count >= 5.0 && inf == count, "{m}");
    assert!(sum > 0.0 && sum / count < 1.0, "passes over three services take milliseconds: {sum}/{count}");
    assert_eq!(m["mcpfleet_services"]["type"], "gauge");
    assert_eq!(sample("mcpfleet_services", "mcpfleet_services", json!({"state": "converged"})), Some(3.0), "{m}");
    for state in ["rolling_out", "settling", "failed", "backing_off"] {
        assert_eq!(
            sample("mcpfleet_services", "mcpfleet_services", json!({"state": state})),
            Some(0.0),
            "{state}: {m}"
        );
    }
    assert_eq!(m["mcpfleet_api_throttles"]["type"], "counter", "{m}");
    for s in m["mcpfleet_api_throttles"]["samples"].as_array().unwrap() {
        assert!(s["value"].as_f64().unwrap() >= 0.0, "{s}");
    }
    assert_eq!(m["mcpfleet_spec_valid"]["type"], "gauge");
    assert_eq!(sample("mcpfleet_spec_valid", "mcpfleet_spec_valid", json!({})), Some(1.0));
    // Rollbacks are counted from the start, before there is any: a rate over them is defined at once.
    for outcome in ["started", "failed"] {
        assert_eq!(
            sample("mcpfleet_rollbacks", "mcpfleet_rollbacks_total", json!({"outcome": outcome})),
            Some(0.0),
            "{outcome}: {m}"
        );
    }
}

/// Every metric family of /metrics, parsed with the reference Python client (so the text is valid OpenMetrics):
/// {family: {"type": …, "samples": [{"name", "labels", "value"}]}}.
fn metric_families(c: &Controller) -> Value {
    let (code, body) = c.get("/metrics").unwrap();
    assert_eq!(code, 200);
    let script = "import json,sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
out={}\nfor fam in parse(sys.stdin.read()):\n    out[fam.name]={'type':fam.type,'samples':[{'name':s.name,'labels':s.labels,'value':s.value} for s in fam.samples]}\n\
print(json.dumps(out))\n";
    let mut child = Command::new(common::python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "/metrics is not valid OpenMetrics: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `mcpfleet_api_requests_total` by operation.
fn api_requests(c: &Controller) -> std::collections::BTreeMap<String, f64> {
    let m = metric_families(c);
    m["mcpfleet_api_requests"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "mcpfleet_api_requests_total")
        .map(|s| (s["labels"]["operation"].as_str().unwrap().to_string(), s["value"].as_f64().unwrap()))
        .collect()
}

#[test]
fn a_failed_rollout_is_rolled_back_and_not_retried() {
    let lab = Lab::new();
    let c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
    c.wait_for("the rollback", || c.metric("mcpfleet_rollbacks_total{outcome=\"started\"}") >= 1.0);
    c.wait_for("the service back on its last good revision", || {
        let w = lab.world();
        let s = &w.services["mcp-prod/search"].state;
        s.task_definition == w.families["search"][0].arn && s.running_count == 1
    });
    let (_, history) = lab.json(&["history", "search", "--cluster", "mcp-prod", "-o", "json"]);
    assert_eq!(history["revisions"][0]["outcome"], "rolled_back");
    // The reason is what ECS says of the stopped tasks, not only that the deployment failed.
    let failed = c.json_log_line("rollout failed; rolling back");
    assert!(
        failed["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("tasks stopped: Task failed container health checks")),
        "{failed}"
    );
    // Several more passes: the failed spec is held back each time, no new revision, no new deployment.
    c.wait_for("the failed spec to be held", || c.reached("mcpfleet_reconciles_total{outcome=\"held\"}", 1.0));
    let held = c.metric("mcpfleet_reconciles_total{outcome=\"held\"}");
    let deployments = lab.world().services["mcp-prod/search"].state.deployments.len();
    c.wait_passes(2);
    let w = lab.world();
    assert_eq!(w.families["search"].len(), 2);
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, w.families["search"][0].arn);
    assert_eq!(w.services["mcp-prod/search"].state.deployments.len(), deployments, "no new deployment");
    assert!(c.metric("mcpfleet_reconciles_total{outcome=\"held\"}") > held, "the later passes did not hold it");
}

#[test]
fn a_failed_load_balancer_attach_is_rolled_back_whole_and_not_retried() {
    let lab = Lab::new();
    // database runs an image that is alive but never ready; without a load balancer that converges.
    lab.ok(&["sim", "push", &format!("{ECR}/database:v2.1.0"), "--platform", "linux/amd64", "--unready"]);
    lab.edit_manifest("database.yaml", "database:v2.0.1", "database:v2.1.0");
    lab.ok(&["sim", "target-group", "mcp-database", "--health-path", "/health"]);
    let c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    let before = lab.world().services["mcp-prod/database"].state.clone();

    // Behind a target group its tasks never pass: the same revision goes back to how it last completed, without
    // the load balancer and with the grace period it had.
    lab.edit_manifest(
        "database.yaml",
        "  stopTimeout: 60s\n",
        "  expose:\n    loadBalancers:\n      - targetGroup: mcp-database\n  stopTimeout: 60s\n",
    );
    c.wait_for("the rollback", || c.metric("mcpfleet_rollbacks_total{outcome=\"started\"}") >= 1.0);
    c.wait_for("the service back as it last completed", || {
        let s = lab.world().services["mcp-prod/database"].state.clone();
        s.load_balancers.is_empty()
            && s.health_check_grace_period_seconds.unwrap_or(0) == 0
            && s.running_count == 2
            && s.primary().is_some_and(|p| p.rollout_state == mcpfleet::backend::RolloutState::Completed)
    });
    let failed = c.json_log_line("rollout failed; rolling back");
    assert!(
        failed["fields"]["reason"].as_str().is_some_and(|r| r.contains("Task failed ELB health checks")),
        "{failed}"
    );
    // Held on the later passes: no new revision, no new deployment, and the revision is still a good one.
    c.wait_for("the failed spec to be held", || c.reached("mcpfleet_reconciles_total{outcome=\"held\"}", 1.0));
    let deployments = lab.world().services["mcp-prod/database"].state.deployments.clone();
    c.wait_passes(2);
    let w = lab.world();
    let s = &w.services["mcp-prod/database"].state;
    assert_eq!(w.families["database"].len(), 1);
    assert_eq!(s.task_definition, before.task_definition);
    assert_eq!(s.deployments, deployments, "no new deployment");
    assert_eq!(w.families["database"][0].tags["mcpfleet.io/outcome"], "completed");
    assert_eq!(c.metric("mcpfleet_services{state=\"failed\"}"), 1.0);
}

#[test]
fn a_failed_rollout_counts_the_service_as_failed_until_its_spec_changes() {
    let lab = Lab::new();
    let c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    c.wait_for("the fleet counted as converged", || c.metric("mcpfleet_services{state=\"converged\"}") == 3.0);
    assert_eq!(c.metric("mcpfleet_services{state=\"failed\"}"), 0.0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
    c.wait_for("the rollback", || c.metric("mcpfleet_rollbacks_total{outcome=\"started\"}") >= 1.0);
    // Rolled back and running its last good revision, yet not what the manifest asks for.
    c.wait_for("the service counted as failed", || {
        c.metric("mcpfleet_services{state=\"failed\"}") == 1.0
            && c.metric("mcpfleet_services{state=\"converged\"}") == 2.0
    });
    // Any change of the spec releases it: back to the good tag, the service converges again.
    lab.edit_manifest("search.yaml", "search:v1.0.0", "search:v0.9.0");
    c.wait_for("the service counted as converged again", || {
        c.metric("mcpfleet_services{state=\"failed\"}") == 0.0
            && c.metric("mcpfleet_services{state=\"converged\"}") == 3.0
    });
}

#[test]
fn a_manifest_edit_resolves_its_tags_again_whatever_the_cache_ttl() {
    let lab = Lab::new();
    let c = Controller::start_with(&lab, &["--cache-ttl", "1h"]);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    let digest = |lab: &Lab| {
        let s = status(lab).into_iter().find(|s| s["name"] == "search").unwrap();
        s["digest"].as_str().unwrap().to_string()
    };
    let before = digest(&lab);
    // The tag is pushed again (a rebuilt image); the controller's cache still holds the old digest for an hour.
    let pushed = lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.0")]);
    let new_digest = pushed.split_whitespace().nth(1).unwrap().to_string();
    assert_ne!(new_digest, before);
    lab.edit_manifest("search.yaml", "replicas: 1", "replicas: 2");
    c.wait_for("the edit to reach the backend", || lab.world().services["mcp-prod/search"].state.desired_count == 2);
    let w = lab.world();
    assert_eq!(w.families["search"].len(), 2, "the edited service kept the cached digest");
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, w.families["search"][1].arn);
    assert_eq!(digest(&lab), new_digest);
}

/// Marks the image a tag points at now as failing its health checks (tasks already running are unaffected).
fn make_unhealthy(lab: &Lab, repository: &str, tag: &str) {
    let sim = mcpfleet::backend::sim::Sim::open(&lab.state()).unwrap();
    sim.with_world(true, |w| {
        let repo = w.repositories.get_mut(&format!("{ECR}/{repository}")).unwrap();
        let digest = repo.tags[tag].clone();
        repo.images.get_mut(&digest).unwrap().unhealthy = true;
    })
    .unwrap();
}

#[test]
fn a_rollback_whose_own_rollout_fails_is_watched_reported_once_and_not_retried() {
    let lab = Lab::new();
    let c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    // The last good image goes bad as well: rolling back to it cannot succeed.
    make_unhealthy(&lab, "search", "v0.9.0");
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
    c.wait_for("the rollback to start", || c.metric("mcpfleet_rollbacks_total{outcome=\"started\"}") >= 1.0);
    // While the rollback rolls out, the service is in flight, not converged.
    c.wait_for("the rollback to be watched", || {
        c.metric("mcpfleet_services{state=\"rolling_out\"}") >= 1.0
            || c.metric("mcpfleet_rollbacks_total{outcome=\"failed\"}") >= 1.0
    });
    assert_eq!(c.metric("mcpfleet_rollbacks_total{outcome=\"failed\"}"), 0.0, "the rollback was never seen in flight");
    c.wait_for("the failed rollback to be reported", || {
        c.metric("mcpfleet_rollbacks_total{outcome=\"failed\"}") >= 1.0
    });
    let line = c.json_log_line(
        "the rollback to the last good revision failed; the service needs attention (nothing is retried until the spec changes)",
    );
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["fields"]["service"], "search", "{line}");
    // Listed on /readyz once the pass that judged it has settled every service.
    c.wait_for("the failed rollback on /readyz", || {
        c.get("/readyz")
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .is_some_and(|body| body["failedRollbacks"] == serde_json::json!(["mcp-prod/search"]))
    });
    c.wait_for("the service counted as failed", || c.metric("mcpfleet_services{state=\"failed\"}") == 1.0);

    // Several more passes: reported once, the failed spec is not retried, nothing is redeployed.
    let w = lab.world();
    let deployments = w.services["mcp-prod/search"].state.deployments.len();
    c.wait_passes(2);
    assert_eq!(c.metric("mcpfleet_rollbacks_total{outcome=\"failed\"}"), 1.0);
    let w = lab.world();
    assert_eq!(w.families["search"].len(), 2, "no new revision");
    let s = &w.services["mcp-prod/search"].state;
    assert_eq!(s.task_definition, w.families["search"][0].arn);
    assert_eq!(s.deployments.len(), deployments, "no new deployment");
    assert_eq!(s.primary().unwrap().rollout_state, mcpfleet::backend::RolloutState::Failed);
}

#[test]
fn a_rollback_after_a_missed_progress_deadline_is_watched_until_it_completes() {
    let lab = Lab::new();
    lab.edit_manifest("fleet.yaml", "progressDeadline: 10m", "progressDeadline: 60s");
    let c = Controller::start_with(&lab, &["--sim-speed", "5"]);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    // Healthy but far too slow to start: the controller fails the rollout at its deadline and rolls back itself.
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--startup", "10m"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
    c.wait_for("the rollback to start", || c.metric("mcpfleet_rollbacks_total{outcome=\"started\"}") >= 1.0);
    c.wait_for("the rollback to be watched while it rolls out", || {
        c.metric("mcpfleet_services{state=\"rolling_out\"}") >= 1.0
    });
    c.wait_for("the rollback to complete", || {
        c.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| l["fields"]["message"] == "rollback completed" && l["fields"]["service"] == "search")
    });
    // Back on its last good revision, but the manifest's spec is held: failed until the spec changes.
    c.wait_for("the fleet to settle", || {
        c.metric("mcpfleet_services{state=\"converged\"}") == 2.0
            && c.metric("mcpfleet_services{state=\"failed\"}") == 1.0
    });
    let w = lab.world();
    let s = &w.services["mcp-prod/search"].state;
    assert_eq!(w.families["search"].len(), 2);
    assert_eq!(s.task_definition, w.families["search"][0].arn);
    assert_eq!(s.tags["mcpfleet.io/last-good"], w.families["search"][0].arn);
    assert_eq!(s.primary().unwrap().rollout_state, mcpfleet::backend::RolloutState::Completed);
    assert!(c.log().contains("progress deadline exceeded"), "{}", c.log());
    assert_eq!(c.metric("mcpfleet_rollbacks_total{outcome=\"failed\"}"), 0.0);
}

#[test]
fn a_broken_manifest_keeps_the_last_valid_fleet_until_fixed() {
    let lab = Lab::new();
    let c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    let path = lab.manifests().join("search.yaml");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace("cpu: 256", "cpu: 300")).unwrap();
    c.wait_for("readiness to drop", || c.get("/readyz").is_some_and(|(code, _)| code == 503));
    let (_, body) = c.get("/readyz").unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["specErrors"][0].as_str().unwrap().contains("spec.cpu: 300 is not a Fargate CPU size"), "{body}");
    assert_eq!(c.metric("mcpfleet_spec_valid"), 0.0);
    let line = c.json_log_line("invalid manifest; keeping the last valid fleet");
    assert_eq!(line["level"], "ERROR", "{line}");
    let diagnostic = line["fields"]["diagnostic"].as_str().unwrap_or_default();
    assert!(diagnostic.contains("search.yaml") && diagnostic.contains("spec.cpu"), "{line}");
    assert!(line["span"]["pass"].as_u64().is_some(), "{line}");
    // Still converging to the last valid fleet: drift is corrected meanwhile.
    lab.ok(&["sim", "edit", "search", "--cluster", "mcp-prod", "--desired-count", "3"]);
    c.wait_for("drift corrected while the manifest is broken", || {
        status(&lab).iter().any(|s| s["name"] == "search" && s["desired"] == 1)
    });
    assert_eq!(lab.world().families["search"].len(), 1, "the broken spec is never acted on");
    std::fs::write(&path, good).unwrap();
    c.wait_for("readiness to return", || c.get("/readyz").is_some_and(|(code, _)| code == 200));
}

#[test]
fn an_alias_bomb_committed_beside_the_fleet_is_one_error_and_the_controller_keeps_running() {
    let lab = Lab::new();
    let mut c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    let bomb = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hostile/alias-bomb.yaml"))
        .unwrap();
    std::fs::write(lab.manifests().join("laughs.yaml"), bomb).unwrap();
    c.wait_for("readiness to drop", || c.get("/readyz").is_some_and(|(code, _)| code == 503));
    let (_, body) = c.get("/readyz").unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    let errors = body["specErrors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "one located error for the file: {body}");
    assert!(errors[0].as_str().unwrap().contains("laughs.yaml:"), "{body}");
    // Whole passes go on over the last valid fleet, and the process stays alive and healthy.
    let passes = c.passes();
    c.wait_for("two more passes", || c.passes() >= passes + 2.0);
    assert!(c.child.try_wait().unwrap().is_none(), "the controller exited: {}", c.log());
    assert_eq!(c.get("/healthz").map(|(code, _)| code), Some(200));
    assert_eq!(c.metric("mcpfleet_spec_valid"), 0.0);
    std::fs::remove_file(lab.manifests().join("laughs.yaml")).unwrap();
    c.wait_for("readiness to return", || c.get("/readyz").is_some_and(|(code, _)| code == 200));
}

#[test]
fn sigterm_during_a_rollout_exits_cleanly_and_a_restart_finishes_it() {
    let lab = Lab::new();
    let mut c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1"), "--startup", "60s"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    c.wait_for("the rollout to start", || {
        status(&lab).iter().any(|s| s["name"] == "search" && s["rolloutState"] == "IN_PROGRESS")
    });
    c.signal("-TERM");
    let (code, _) = c.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", c.log());
    let log = std::fs::read_to_string(&c.log).unwrap();
    assert!(log.contains("shutting down") && log.contains("shut down cleanly"), "{log}");
    assert!(log.lines().any(|l| l.contains("\"pass\"")), "structured logs carry the pass id: {log}");

    let c2 = Controller::start(&lab);
    c2.wait_for("the restarted controller to finish the rollout", || {
        status(&lab).iter().any(|s| {
            s["name"] == "search"
                && s["rolloutState"] == "COMPLETED"
                && s["lastGood"] == s["taskDefinition"]
                && s["revision"] == 2
        })
    });
    assert_eq!(lab.world().families["search"].len(), 2, "no duplicate revision");
}

#[test]
fn prune_removes_services_that_left_the_manifests_but_never_unresolvable_ones() {
    let lab = Lab::new();
    let c = Controller::start_with(&lab, &["--prune"]);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    // documents now names a tag that does not exist: it cannot be resolved, but it is still in the manifests.
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v9.9.9");
    std::fs::remove_file(lab.manifests().join("search.yaml")).unwrap();
    c.wait_for("search to be pruned", || !lab.world().services["mcp-prod/search"].state.is_active());
    c.wait_passes(2);
    let w = lab.world();
    assert!(w.services["mcp-prod/documents"].state.is_active(), "an unresolvable service is never pruned");
    assert!(w.services["mcp-prod/database"].state.is_active());
    // The error policy saw a spec error: counted by kind, and the service backs off by the spec policy.
    assert!(c.metric("mcpfleet_reconcile_errors_total{kind=\"spec\"}") >= 1.0);
    assert_eq!(c.metric("mcpfleet_reconcile_errors_total{kind=\"transient\"}"), 0.0);
    let line = c.json_log_line("reconcile failed; backing off");
    assert_eq!((&line["fields"]["service"], &line["fields"]["kind"]), (&json!("documents"), &json!("spec")), "{line}");
}

/// `mcpfleet healthcheck --url URL`: (exit code, stderr).
fn healthcheck(url: &str) -> (i32, String) {
    let out = common::mcpfleet().args(["healthcheck", "--url", url, "--timeout", "10s"]).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// An HTTP server on a free port that answers every request with `status`.
fn answering(status: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            // The status line in two pieces, as a slow or busy server may send it.
            let _ = s.write_all(b"HTTP/1.1 ");
            let _ = s.flush();
            std::thread::sleep(Duration::from_millis(100));
            let _ = write!(s, "{status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    port
}

#[test]
fn healthcheck_exits_0_on_a_live_controller_and_1_otherwise() {
    let lab = Lab::new();
    let c = Controller::start(&lab);
    let (code, err) = healthcheck(&format!("http://127.0.0.1:{}/healthz", c.port));
    assert_eq!(code, 0, "{err}");

    let port = answering("503 Service Unavailable");
    let url = format!("http://127.0.0.1:{port}/healthz");
    let (code, err) = healthcheck(&url);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("unhealthy: {url} answered 503")), "{err}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{closed}/healthz");
    let (code, err) = healthcheck(&url);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("unhealthy: {url}:")) && err.to_lowercase().contains("refused"), "{err}");
}

#[test]
fn a_manifest_edit_starts_a_pass_at_once_however_long_the_interval() {
    let lab = Lab::new();
    let c = Controller::start_with(&lab, &["--interval", "1h"]);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    // Rollouts in flight were polled every few seconds; once they settled, the controller schedules its next pass
    // an hour away: idle.
    c.wait_for("the controller to be idle until the interval", || c.next_pass_in() > 3000.0);
    let passes = c.passes();

    lab.edit_manifest("search.yaml", "replicas: 1", "replicas: 3");
    c.wait_for("the new count to reach the backend", || {
        lab.world().services["mcp-prod/search"].state.desired_count == 3
    });
    // Nothing else was due within the hour: the edit started the pass, as its log line says.
    assert!(c.log().contains("manifests changed on disk"), "{}", c.log());
    // The count is written in the middle of that pass; the pass then completes.
    c.wait_for("the pass to complete", || c.passes() > passes);
}

#[test]
fn drift_is_corrected_within_one_interval() {
    let lab = Lab::new();
    let c = Controller::start_with(&lab, &["--interval", "5s"]);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    c.wait_for("the controller to be idle", || c.metric("mcpfleet_services{state=\"rolling_out\"}") == 0.0);
    // The edit takes the sim's lock, so it lands between two passes: every pass counted now ran before it.
    lab.ok(&["sim", "edit", "documents", "--cluster", "mcp-prod", "--desired-count", "5"]);
    let before = c.passes();
    c.wait_for("the drift to be corrected", || lab.world().services["mcp-prod/documents"].state.desired_count == 2);
    // Corrected by the very next pass, and passes come one interval (5 s ±10 %) apart.
    let line = c.json_log_line("drift corrected");
    assert_eq!(line["span"]["pass"].as_f64(), Some(before + 1.0), "not the next pass: {line}");
}

/// Each service of the lab is entirely on one revision: the one its tags name, and when a newer revision of its
/// family was registered, that one (never registered but not deployed).
fn assert_not_half_converged(lab: &Lab) {
    let w = lab.world();
    for (key, svc) in &w.services {
        let s = &svc.state;
        let newest = w.families[&s.name].last().unwrap();
        assert_eq!(s.task_definition, newest.arn, "{key} left between register and update");
        assert_eq!(s.tags["mcpfleet.io/task-definition"], newest.arn, "{key}: tags and revision disagree");
        assert_eq!(s.tags["mcpfleet.io/spec-hash"], newest.tags["mcpfleet.io/spec-hash"], "{key}");
    }
}

#[test]
fn sigterm_right_after_a_manifest_edit_never_leaves_a_service_half_converged() {
    let lab = Lab::new();
    let mut c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1"), "--startup", "60s"]);
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.4.3"), "--startup", "60s"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v1.4.3");
    // The signal lands once the controller noticed the edit, while its pass converges.
    c.wait_for("the edit to be noticed", || c.log().contains("manifests changed on disk"));
    c.signal("-TERM");
    let (code, _) = c.wait_exit(Duration::from_secs(25));
    assert_eq!(code, Some(0), "{}", c.log());
    assert_not_half_converged(&lab);

    let c2 = Controller::start(&lab);
    c2.wait_for("the restarted controller to finish", || {
        let w = lab.world();
        w.families["search"].len() == 2 && w.families["documents"].len() == 2 && all_completed(&lab)
    });
    assert_not_half_converged(&lab);
    let w = lab.world();
    assert_eq!((w.families["search"].len(), w.families["documents"].len()), (2, 2), "no duplicate revision");
}

/// A controller on the AWS backend whose endpoint accepts connections and never answers: its first pass hangs in
/// the middle of a backend call. Returned once the controller's connection was accepted (kept open, so the call
/// hangs rather than fails).
fn hung_controller(lab: &Lab, extra: &[&str]) -> (Controller, (std::net::TcpListener, TcpStream)) {
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", blackhole.local_addr().unwrap());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = lab.manifests().with_file_name(format!("controller-{port}.log"));
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("mcpfleet"));
    cmd.args(["--backend", "aws", "--log-format", "json"])
        .args(["run", "-f", lab.manifests().to_str().unwrap(), "--interval", "1s"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env_remove("MCPFLEET_LOG");
    common::aws_lab::endpoint_env(&mut cmd, &endpoint);
    let child = cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let c = Controller { child, port, log };
    c.wait_for("the HTTP server", || c.get("/healthz").is_some_and(|(code, _)| code == 200));
    blackhole.set_nonblocking(true).unwrap();
    let mut accepted = None;
    c.wait_for("the first backend call", || {
        accepted = blackhole.accept().ok().map(|(s, _)| s);
        accepted.is_some()
    });
    (c, (blackhole, accepted.unwrap()))
}

#[test]
fn the_shutdown_bound_is_respected_when_a_step_does_not_finish() {
    let lab = Lab::new();
    let (mut c, _blackhole) = hung_controller(&lab, &["--shutdown-timeout", "2s"]);
    assert!(c.child.try_wait().unwrap().is_none(), "exited early: {}", c.log());
    c.signal("-TERM");
    let (code, took) = c.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", c.log());
    assert!(took >= Duration::from_millis(1500), "exited after {took:?}, before the bound");
    assert!(c.log().contains("did not finish within the shutdown bound"), "{}", c.log());
}

/// On a controller whose step never finishes, the first `sig` waits for the step and a second one exits at once
/// (130), well before the 60 s bound the first one would wait for.
fn a_second_signal_aborts(lab: &Lab, sig: &str) {
    let (mut c, _blackhole) = hung_controller(lab, &["--shutdown-timeout", "60s"]);
    c.signal(sig);
    c.wait_for("the first signal to be handled", || c.log().contains("shutting down: finishing in-flight steps"));
    assert!(c.child.try_wait().unwrap().is_none(), "the first signal did not wait for the step: {}", c.log());
    c.signal(sig);
    let (code, _) = c.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(130), "a second signal exits 130: {}", c.log());
    assert!(c.log().contains("second signal: aborting"), "{}", c.log());
}

#[test]
fn a_second_signal_aborts_at_once() {
    a_second_signal_aborts(&Lab::new(), "-TERM");
}

#[test]
fn run_refuses_an_interval_below_one_second() {
    let lab = Lab::new();
    for interval in ["0s", "500ms"] {
        let out = common::mcpfleet()
            .args(["--backend", "sim", "--sim-state", lab.state().to_str().unwrap()])
            .args(["run", "-f", lab.manifests().to_str().unwrap(), "--interval", interval])
            .args(["--listen", "127.0.0.1:0"])
            // Accepted, it would run until killed: the bound turns that into a failure, not a hang.
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{interval}: {stderr}");
        assert!(stderr.contains("--interval") && stderr.contains("must be at least 1s"), "{interval}: {stderr}");
    }
    assert!(lab.world().services.is_empty(), "a refused controller touched the fleet");
}

#[test]
fn sigint_drains_like_sigterm_and_a_second_one_aborts() {
    let lab = Lab::new();
    let mut c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    c.signal("-INT");
    let (code, _) = c.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", c.log());
    let log = c.log();
    assert!(log.contains("\"signal\":\"SIGINT\"") && log.contains("shut down cleanly"), "{log}");

    // A step that never finishes: the first SIGINT waits for it, the second exits at once.
    a_second_signal_aborts(&lab, "-INT");
}

#[test]
fn run_prune_deletes_a_moved_services_old_copy_only_once_the_new_one_is_healthy() {
    let lab = Lab::new();
    let c = Controller::start_with(&lab, &["--prune"]);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "spec:\n", "spec:\n  cluster: mcp-other\n");
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    c.wait_for("the new copy's rollout to fail", || {
        lab.world()
            .services
            .get("mcp-other/search")
            .is_some_and(|s| s.state.tags.contains_key("mcpfleet.io/failed-spec-hash"))
    });
    let passes = c.passes();
    c.wait_for("two more passes", || c.passes() >= passes + 2.0);
    let w = lab.world();
    let old = &w.services["mcp-prod/search"].state;
    assert!(old.is_active() && old.running_count == old.desired_count, "the old copy keeps serving");

    // A fixed image: the new copy becomes healthy, and only then does the old one go.
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.2")]);
    lab.edit_manifest("search.yaml", "search:v0.9.1", "search:v0.9.2");
    c.wait_for("the old copy to be deleted", || !lab.world().services["mcp-prod/search"].state.is_active());
    assert!(mcpfleet::state::runs_what_was_applied(&lab.world().services["mcp-other/search"].state, None));
}

/// documents.yaml autoscaling within 2..6 on CPU at 60 % (the count starts at replicas, 2).
fn autoscale_documents(lab: &Lab) {
    lab.edit_manifest(
        "documents.yaml",
        "  replicas: 2\n",
        "  replicas: 2\n  autoscaling: { min: 2, max: 6, targetCpu: 60 }\n",
    );
}

fn documents_count(lab: &Lab) -> u32 {
    lab.world().services["mcp-prod/documents"].state.desired_count
}

#[test]
fn the_controller_leaves_the_autoscalers_count_alone_and_corrects_one_outside_the_bounds() {
    let lab = Lab::new();
    autoscale_documents(&lab);
    let c = Controller::start(&lab);
    c.wait_for("the fleet to converge, documents autoscaled", || {
        all_completed(&lab) && lab.world().scalable_targets.contains_key("service/mcp-prod/documents")
    });

    // Below the bounds (someone in the console): corrected to the nearest bound, as drift.
    lab.ok(&["sim", "edit", "documents", "--cluster", "mcp-prod", "--desired-count", "1"]);
    c.wait_for("the count to be put back to min", || documents_count(&lab) == 2);
    let line = c.json_log_line("drift corrected");
    assert_eq!(line["fields"]["service"], "documents", "{line}");
    let corrections = c.metric("mcpfleet_drift_corrections_total");
    assert!(corrections >= 1.0);

    // Load rises: the autoscaler grows the count (ceil(2 × 150 / 60) = 5), and whole passes later the
    // controller has corrected nothing.
    lab.ok(&["sim", "load", "documents", "--cluster", "mcp-prod", "--cpu", "150"]);
    c.wait_for("the autoscaler to add tasks", || documents_count(&lab) == 5);
    c.wait_passes(3);
    assert_eq!(documents_count(&lab), 5, "the autoscaler's count stays");
    assert_eq!(c.metric("mcpfleet_drift_corrections_total"), corrections, "nothing was corrected:\n{}", c.log());

    // A rollout while the autoscaler holds 5 tasks completes on the new revision, with no rollback.
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.4.3"), "--startup", "40s"]);
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v1.4.3");
    c.wait_for("the new revision to complete", || {
        let w = lab.world();
        let s = &w.services["mcp-prod/documents"].state;
        s.task_definition.ends_with("documents:2") && s.tags.get("mcpfleet.io/last-good") == Some(&s.task_definition)
    });
    assert_eq!(documents_count(&lab), 5);
    assert_eq!(c.metric("mcpfleet_rollbacks_total{outcome=\"started\"}"), 0.0, "{}", c.log());
    assert_eq!(c.metric("mcpfleet_drift_corrections_total"), corrections);
}
