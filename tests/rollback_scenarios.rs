//! Rollouts and rollback on the sim, through the binary: a bad image never stays deployed, a failed spec is not
//! retried, and an operator can always go back.

mod common;

use common::lab::{ECR, Lab, outcomes, writes};
use serde_json::Value;

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["services"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}

fn history(lab: &Lab, name: &str) -> Vec<(u64, String)> {
    let (code, doc) = lab.json(&["history", name, "--cluster", "mcp-prod", "-o", "json"]);
    assert_eq!(code, 0, "{doc:#}");
    doc["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["revision"].as_u64().unwrap(), r["outcome"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn an_unhealthy_image_is_rolled_back_and_not_retried_until_fixed() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let good_digest = lab.world().repositories[&format!("{ECR}/search")].tags["v0.9.0"].clone();
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");

    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(search["outcome"], "rolled_back");
    let message = search["message"].as_str().unwrap();
    assert!(message.contains("circuit breaker") && message.contains("failed container health checks"), "{message}");

    let w = lab.world();
    let svc = &w.services["mcp-prod/search"].state;
    let running = w.families["search"].iter().find(|td| td.arn == svc.task_definition).unwrap();
    assert!(running.spec.container_definitions[0].image.ends_with(&good_digest), "back on the previous digest");
    assert_eq!(svc.tags["mcpfleet.io/failed-spec-hash"].len(), 32);
    assert_eq!(history(&lab, "search"), [(2, "rolled_back".into()), (1, "running".into())]);

    // The failed spec is held back: no write, and plan explains why.
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0);
    assert_eq!(writes(&doc), 0, "{doc:#}");
    let (_, plan) = lab.plan();
    assert!(service(&plan, "search")["reason"].as_str().unwrap().contains("failed and was rolled back"));

    // A fixed image under a new tag deploys normally.
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.1")]);
    lab.edit_manifest("search.yaml", "search:v1.0.0", "search:v1.0.1");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(service(&doc, "search")["outcome"], "updated");
    assert_eq!(history(&lab, "search"), [(3, "running".into()), (2, "rolled_back".into()), (1, "completed".into())]);
}

#[test]
fn retry_failed_redeploys_a_held_back_spec() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
    assert_eq!(lab.apply(&["--wait"]).0, 3);
    let (code, doc) = lab.apply(&["--retry-failed"]);
    assert_eq!(code, 0);
    assert_eq!(service(&doc, "search")["outcome"], "updated");
    assert_eq!(doc["apiCalls"]["calls"].get("RegisterTaskDefinition"), None, "the failed revision is reused");
}

#[test]
fn the_operator_rolls_back_and_apply_respects_it() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.5.0")]);
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v1.5.0");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    assert_eq!(history(&lab, "documents"), [(2, "running".into()), (1, "completed".into())]);

    let out = lab.ok(&["rollback", "documents", "--cluster", "mcp-prod", "--wait"]);
    assert_eq!(out.trim(), "documents: rolled back from documents:2 to documents:1");
    let w = lab.world();
    assert_eq!(w.services["mcp-prod/documents"].state.task_definition, w.families["documents"][0].arn);
    assert_eq!(history(&lab, "documents")[1], (1, "running".into()));

    // apply leaves the operator's choice alone while the manifests still say v1.5.0…
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0);
    assert_eq!(writes(&doc), 0, "{doc:#}");
    // …and deploys again once they change.
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.5.1")]);
    lab.edit_manifest("documents.yaml", "documents:v1.5.0", "documents:v1.5.1");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0);
    assert_eq!(service(&doc, "documents")["outcome"], "updated");
}

#[test]
fn rollback_refuses_foreign_and_inactive_revisions_and_changes_nothing() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let before = std::fs::read(lab.state()).unwrap();
    let out = lab.run(&["rollback", "documents", "--cluster", "mcp-prod", "--to-revision", "search:1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("belongs to family search, not documents"), "{stderr}");
    assert_eq!(std::fs::read(lab.state()).unwrap(), before, "nothing changed");

    let out = lab.run(&["rollback", "documents", "--cluster", "mcp-prod", "--to-revision", "7"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains("no revision documents:7"));

    let out = lab.run(&["rollback", "documents", "--cluster", "mcp-prod"]);
    assert_eq!(out.status.code(), Some(1), "a first deploy has nothing earlier to go back to");
    assert!(String::from_utf8(out.stderr).unwrap().contains("no earlier good revision"));

    let out = lab.run(&["rollback", "nope", "--cluster", "mcp-prod"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(lab.state()).unwrap(), before);
}

#[test]
fn a_rollout_past_its_progress_deadline_is_rolled_back() {
    let lab = Lab::new();
    lab.edit_manifest(
        "search.yaml",
        "  stopTimeout: 20s\n",
        "  stopTimeout: 20s\n  rollout:\n    progressDeadline: 1m\n",
    );
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1"), "--startup", "10m"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(search["outcome"], "rolled_back");
    assert!(search["message"].as_str().unwrap().contains("progress deadline exceeded"), "{search:#}");
    let w = lab.world();
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, w.families["search"][0].arn);
}

#[test]
fn without_auto_rollback_ecs_rollback_is_still_detected() {
    let lab = Lab::new();
    lab.edit_manifest(
        "search.yaml",
        "  stopTimeout: 20s\n",
        "  stopTimeout: 20s\n  rollout:\n    autoRollback: false\n",
    );
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(search["outcome"], "failed");
    let message = search["message"].as_str().unwrap();
    assert!(message.contains("ECS's deployment circuit breaker rolled the service back to search:1"), "{message}");
    assert!(message.contains("autoRollback is off"), "{message}");
}

#[test]
fn revisions_beyond_the_history_limit_are_deregistered() {
    let lab = Lab::new();
    lab.edit_manifest("fleet.yaml", "historyLimit: 10", "historyLimit: 2");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    for tag in ["v0.9.1", "v0.9.2", "v0.9.3"] {
        lab.ok(&["sim", "push", &format!("{ECR}/search:{tag}")]);
        let current = std::fs::read_to_string(lab.manifests().join("search.yaml")).unwrap();
        let old = current.split("search:").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
        lab.edit_manifest("search.yaml", &format!("search:{old}"), &format!("search:{tag}"));
        let (code, doc) = lab.apply(&["--wait"]);
        assert_eq!(code, 0, "{doc:#}");
    }
    let w = lab.world();
    let statuses: Vec<String> = w.families["search"]
        .iter()
        .map(|td| serde_json::to_value(td.status).unwrap().as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["INACTIVE", "INACTIVE", "ACTIVE", "ACTIVE"]);
    let before = std::fs::read(lab.state()).unwrap();
    let out = lab.run(&["rollback", "search", "--cluster", "mcp-prod", "--to-revision", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("search:1 is INACTIVE (deregistered)"), "{stderr}");
    assert_eq!(std::fs::read(lab.state()).unwrap(), before, "nothing changed");
    assert_eq!(outcomes(&lab.apply(&[]).1).len(), 3);
}

/// Moves the sim's virtual clock on, as time passing between two commands would (deployments progress).
fn advance(lab: &Lab, secs: u64) {
    let mut w = lab.world();
    w.advance_to(w.now_ms + secs * 1000);
    std::fs::write(lab.state(), serde_json::to_vec(&w).unwrap()).unwrap();
}

fn search_yaml_with_rollout(lab: &Lab, rollout: &str) {
    lab.edit_manifest("search.yaml", "  stopTimeout: 20s\n", &format!("  stopTimeout: 20s\n  rollout:\n{rollout}"));
}

#[test]
fn a_fleet_first_applied_without_wait_still_rolls_back_a_bad_image() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&[]).0, 0);
    advance(&lab, 300);
    let rev1 = lab.world().families["search"][0].arn.clone();
    assert_eq!(lab.world().services["mcp-prod/search"].state.tags.get("mcpfleet.io/last-good"), None);

    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(search["outcome"], "rolled_back", "{search:#}");
    let message = search["message"].as_str().unwrap();
    assert!(message.ends_with("rolled back to search:1"), "{message}");
    // Why, in ECS's words for the stopped tasks (ListTasks + DescribeTasks), not the service's event text.
    assert!(message.contains("; tasks stopped: Task failed container health checks;"), "{message}");
    assert_eq!(doc["apiCalls"]["calls"]["DescribeTasks"], 1, "{doc:#}");
    let w = lab.world();
    let svc = &w.services["mcp-prod/search"].state;
    assert_eq!(svc.task_definition, rev1, "back on the revision that had completed");
    assert_eq!(svc.tags["mcpfleet.io/last-good"], rev1);
    assert_eq!(history(&lab, "search"), [(2, "rolled_back".into()), (1, "running".into())]);
}

#[test]
fn a_rollout_that_is_never_completed_is_not_recorded_as_good() {
    let lab = Lab::new();
    // Applied without --wait and updated before the first rollout finished: nothing has proven good yet.
    assert_eq!(lab.apply(&[]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(search["outcome"], "failed");
    assert!(search["message"].as_str().unwrap().contains("no earlier good revision"), "{search:#}");
    assert_eq!(lab.world().services["mcp-prod/search"].state.tags.get("mcpfleet.io/last-good"), None);
}

#[test]
fn a_failure_without_rollback_is_held_back_not_redeployed_as_drift() {
    let lab = Lab::new();
    search_yaml_with_rollout(&lab, "    autoRollback: false\n");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    assert_eq!(service(&doc, "search")["outcome"], "failed");
    let w = lab.world();
    let svc = &w.services["mcp-prod/search"].state;
    assert_eq!(svc.task_definition, w.families["search"][0].arn, "ECS's circuit breaker put search:1 back");
    assert_eq!(svc.tags["mcpfleet.io/failed-spec-hash"], svc.tags["mcpfleet.io/spec-hash"]);

    // The service runs search:1 while its tags say search:2: not drift to correct, a failed spec held back.
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(writes(&doc), 0, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(search["outcome"], "unchanged");
    let message = search["message"].as_str().unwrap();
    assert!(message.contains("rollout failed") && message.contains("--retry-failed"), "{message}");
}
