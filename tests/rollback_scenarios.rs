//! Rollouts and rollback on the sim, through the binary: a bad image never stays deployed, a failed spec is not
//! retried, and an operator can always go back.

mod common;

use common::lab::{ECR, Lab, TARGET_GROUP, entry, history, outcomes, service, writes};
use serde_json::Value;

#[test]
fn an_unhealthy_image_is_rolled_back_and_not_retried_until_fixed() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let good_digest = lab.world().repositories[&format!("{ECR}/search")].tags["v0.9.0"].clone();
    point_search_at_an_unhealthy_tag(&lab);

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
    assert!(
        service(&plan, "search")["reason"]
            .as_str()
            .unwrap()
            .contains("rollout failed; it is not deployed again until the spec changes")
    );

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
    point_search_at_an_unhealthy_tag(&lab);
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
    point_search_at_an_unhealthy_tag(&lab);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let search = service(&doc, "search");
    // ECS's circuit breaker already put the service back: reported as rolled back (by ECS), not as left failed.
    assert_eq!(search["outcome"], "rolled_back");
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

    point_search_at_an_unhealthy_tag(&lab);
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
    point_search_at_an_unhealthy_tag(&lab);
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
    point_search_at_an_unhealthy_tag(&lab);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    assert_eq!(service(&doc, "search")["outcome"], "rolled_back", "by ECS's circuit breaker");
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

#[test]
fn an_operator_rollback_marks_the_abandoned_revision_rolled_back() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.5.0")]);
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v1.5.0");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    assert_eq!(history(&lab, "documents"), [(2, "running".into()), (1, "completed".into())]);
    lab.ok(&["rollback", "documents", "--cluster", "mcp-prod"]);
    assert_eq!(history(&lab, "documents"), [(2, "rolled_back".into()), (1, "running".into())]);
}

#[test]
fn rollback_wait_exits_3_when_the_rollbacks_own_rollout_fails() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let old_digest = lab.world().repositories[&format!("{ECR}/documents")].tags["v1.4.2"].clone();
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.5.0")]);
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v1.5.0");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    // The old image turns out bad after all (a dependency it pulls at start went away): its tasks now fail.
    let mut w = lab.world();
    w.repositories.get_mut(&format!("{ECR}/documents")).unwrap().images.get_mut(&old_digest).unwrap().unhealthy = true;
    std::fs::write(lab.state(), serde_json::to_vec(&w).unwrap()).unwrap();

    let out = lab.run(&["rollback", "documents", "--cluster", "mcp-prod", "--wait"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("documents: the rollback to documents:1 failed: "), "{stdout}");
    assert!(stdout.contains("Task failed container health checks"), "{stdout}");
    let w = lab.world();
    let svc = &w.services["mcp-prod/documents"].state;
    assert_eq!(svc.task_definition, w.families["documents"][1].arn, "ECS kept documents:2 running");
    assert_eq!(svc.tags["mcpfleet.io/last-good"], w.families["documents"][1].arn, "the failed target is not last-good");
    // The service's state tags describe what ECS runs again, not the target that failed.
    assert_eq!(svc.tags["mcpfleet.io/task-definition"], w.families["documents"][1].arn);
    assert_eq!(svc.tags["mcpfleet.io/spec-hash"], w.families["documents"][1].tags["mcpfleet.io/spec-hash"]);
    assert_eq!(svc.tags["mcpfleet.io/image-tag"], "v1.5.0");
    let m = lab.manifests();
    let (code, doc) = lab.json(&["status", "-f", m.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 0, "{doc:#}");
    let documents = doc["services"].as_array().unwrap().iter().find(|s| s["name"] == "documents").unwrap();
    assert_eq!(documents["drift"], false, "{documents:#}");
    assert_eq!(history(&lab, "documents"), [(2, "running".into()), (1, "failed".into())]);
    let out = lab.run(&["rollback", "documents", "--cluster", "mcp-prod"]);
    assert_eq!(out.status.code(), Some(1), "a revision seen failing is no rollback target any more");
}

#[test]
fn re_pushing_a_fixed_image_under_the_same_tag_deploys_it() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    point_search_at_an_unhealthy_tag(&lab);
    assert_eq!(lab.apply(&["--wait"]).0, 3);
    let bad = lab.world().repositories[&format!("{ECR}/search")].tags["v1.0.0"].clone();
    // Same tag, new digest: a different resolved spec, so it is not held back.
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0")]);
    let fixed = lab.world().repositories[&format!("{ECR}/search")].tags["v1.0.0"].clone();
    assert_ne!(bad, fixed);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(service(&doc, "search")["outcome"], "updated");
    assert_eq!(writes(&lab.apply(&["--wait"]).1), 0, "and then it is converged");

    let (code, doc) = lab.json(&["history", "search", "--cluster", "mcp-prod", "-o", "json"]);
    assert_eq!(code, 0);
    let revs = doc["revisions"].as_array().unwrap();
    let field = |i: usize, k: &str| revs[i][k].clone();
    let w = lab.world();
    let tds = &w.families["search"];
    assert_eq!(revs.len(), 3);
    for (i, (rev, tag, digest, outcome)) in [
        (3, "v1.0.0", fixed.as_str(), "running"),
        (2, "v1.0.0", bad.as_str(), "rolled_back"),
        (1, "v0.9.0", w.repositories[&format!("{ECR}/search")].tags["v0.9.0"].as_str(), "completed"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(field(i, "revision"), rev);
        assert_eq!(field(i, "taskDefinition"), tds[rev as usize - 1].arn.as_str());
        assert_eq!(field(i, "imageTag"), tag);
        assert_eq!(field(i, "digest"), digest);
        assert_eq!(field(i, "architecture"), "ARM64", "auto picks arm64 for a multi-arch image");
        assert_eq!(field(i, "registeredAt"), tds[rev as usize - 1].registered_at_ms);
        assert_eq!(field(i, "outcome"), outcome);
    }
    assert!(
        field(0, "registeredAt").as_u64() > field(1, "registeredAt").as_u64()
            && field(1, "registeredAt").as_u64() > field(2, "registeredAt").as_u64(),
        "registered one after the other: {doc:#}"
    );
}

#[tokio::test]
async fn retention_never_deregisters_the_running_or_last_good_revision() {
    use mcpfleet::backend::TdStatus;
    use mcpfleet::reconcile::rollout::record_success;
    let sim = mcpfleet::backend::sim::Sim::in_memory(mcpfleet::testkit::seeded_world(1, 1));
    let backend = sim.backend();
    let fleet = mcpfleet::spec::load_str("fleet.yaml", &mcpfleet::testkit::fleet_yaml(1, 1, 1)).unwrap();
    let desired = mcpfleet::reconcile::desired_state(&fleet, &backend).await.unwrap();
    let observed = mcpfleet::reconcile::observe(&desired, backend.ecs.as_ref(), false).await.unwrap();
    let plan = mcpfleet::reconcile::plan_fleet(&desired, &observed, backend.ecs.as_ref()).await.unwrap();
    let opts = mcpfleet::reconcile::ApplyOptions::default();
    mcpfleet::reconcile::apply(&desired, &plan, &observed, backend.ecs.as_ref(), &opts, &|_, _| {}).await;
    // Revisions 2..5 of the family; the service is put back on revision 2 out of band.
    let arns: Vec<String> = sim
        .with_world(true, |w| {
            let spec = w.families["svc-00000"][0].spec.clone();
            (0..4).map(|_| w.register_task_definition(&spec).arn).collect()
        })
        .unwrap();
    let arn = |rev: usize| if rev == 1 { observed_td(&sim) } else { arns[rev - 2].clone() };
    let rev1 = arn(1);
    ecs_edit(&sim, &arn(2));
    backend.clock.sleep(std::time::Duration::from_secs(120)).await;
    let state = backend.ecs.describe_services("bench", &["svc-00000".into()]).await.unwrap().services.remove(0);
    assert_eq!(state.task_definition, arn(2));

    // Revision 3 completed (a reused, older revision) with a history limit of 1.
    record_success(backend.ecs.as_ref(), &state, &arn(3), 1).await.unwrap();
    let active = backend.ecs.list_task_definitions("svc-00000", TdStatus::Active).await.unwrap();
    assert_eq!(active, [arn(2), arn(3), arn(5)], "running, last good and the newest stay; {rev1} and :4 go");
    let state = backend.ecs.describe_services("bench", &["svc-00000".into()]).await.unwrap().services.remove(0);
    assert_eq!(state.tags["mcpfleet.io/last-good"], arn(3));
}

fn observed_td(sim: &mcpfleet::backend::sim::Sim) -> String {
    sim.snapshot().families["svc-00000"][0].arn.clone()
}

fn ecs_edit(sim: &mcpfleet::backend::sim::Sim, td: &str) {
    let update = mcpfleet::backend::ServiceUpdate {
        task_definition: Some(td.into()),
        ..mcpfleet::backend::ServiceUpdate::of("bench", "svc-00000")
    };
    sim.with_world(true, |w| w.update_service(&update)).unwrap().unwrap();
}

#[test]
fn rollback_finds_a_revision_that_completed_without_wait() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&[]).0, 0);
    advance(&lab, 300);
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.5.0")]);
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v1.5.0");
    assert_eq!(lab.apply(&[]).0, 0);
    advance(&lab, 300);
    assert_eq!(history(&lab, "documents"), [(2, "running".into()), (1, "completed".into())]);
    let out = lab.ok(&["rollback", "documents", "--cluster", "mcp-prod", "--wait"]);
    assert_eq!(out.trim(), "documents: rolled back from documents:2 to documents:1");
}

fn run_crashing(lab: &Lab, after: &str) {
    let m = lab.manifests();
    let out = common::mcpfleet()
        .args(["--backend", "sim", "--sim-state", lab.state().to_str().unwrap(), "apply", "-f", m.to_str().unwrap()])
        .env("MCPFLEET_SIM_CRASH_AFTER", after)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", String::from_utf8_lossy(&out.stderr));
}

fn status(lab: &Lab) -> (i32, Value) {
    let m = lab.manifests();
    lab.json(&["status", "-f", m.to_str().unwrap(), "-o", "json"])
}

#[test]
fn timeout_only_stops_waiting_and_the_rollout_goes_on() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1"), "--startup", "5m"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    let (code, doc) = lab.apply(&["--wait", "--timeout", "1m"]);
    assert_eq!(code, 4, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(search["outcome"], "updated", "{search:#}");
    assert!(search["message"].as_str().unwrap().contains("still rolling out"), "{search:#}");
    let w = lab.world();
    let svc = &w.services["mcp-prod/search"].state;
    assert_eq!(svc.task_definition, w.families["search"][1].arn, "left rolling out, not rolled back");
    assert_eq!(svc.tags.get("mcpfleet.io/failed-spec-hash"), None, "nothing held");
    assert_eq!(w.families["search"][1].tags.get("mcpfleet.io/outcome"), None, "nothing decided");

    // A rerun finds the rollout in flight, waits for it and records it.
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(service(&doc, "search")["message"].as_str().unwrap().contains("rollout completed"), "{doc:#}");
    let w = lab.world();
    assert_eq!(w.services["mcp-prod/search"].state.tags["mcpfleet.io/last-good"], w.families["search"][1].arn);
}

#[test]
fn the_default_timeout_covers_the_longest_progress_deadline() {
    let lab = Lab::new();
    search_yaml_with_rollout(&lab, "    progressDeadline: 20m\n");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1"), "--startup", "15m"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(service(&doc, "search")["outcome"], "updated", "{doc:#}");
    let w = lab.world();
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, w.families["search"][1].arn);
}

#[test]
fn a_circuit_breaker_rollback_nobody_watched_is_a_failed_rollout_not_drift() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    point_search_at_an_unhealthy_tag(&lab);
    assert_eq!(lab.apply(&[]).0, 0);
    advance(&lab, 900);
    let w = lab.world();
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, w.families["search"][0].arn, "ECS went back");

    // Read-only commands already see a failed spec, held, not drift.
    let (code, doc) = status(&lab);
    assert_eq!(code, 0, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(
        (search["drift"].clone(), search["held"].clone()),
        (Value::Bool(false), Value::Bool(true)),
        "{search:#}"
    );
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "nothing to deploy: {plan:#}");
    assert_eq!(service(&plan, "search")["action"], "noop");
    assert!(service(&plan, "search")["reason"].as_str().unwrap().contains("rollout failed"), "{plan:#}");

    // apply records it, and does not deploy the failing image again.
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 3, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(search["outcome"], "rolled_back", "{search:#}");
    assert!(search["message"].as_str().unwrap().starts_with("rollout failed: ECS's deployment circuit breaker"));
    assert_eq!(doc["apiCalls"]["calls"].get("UpdateService"), None, "{doc:#}");
    let w = lab.world();
    let svc = &w.services["mcp-prod/search"].state;
    assert_eq!(svc.tags["mcpfleet.io/failed-spec-hash"], w.families["search"][1].tags["mcpfleet.io/spec-hash"]);
    assert_eq!(history(&lab, "search"), [(2, "rolled_back".into()), (1, "running".into())]);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!((code, writes(&doc)), (0, 0), "{doc:#}");
}

#[test]
fn a_rerun_after_a_crash_after_tagging_watches_and_settles_the_rollout_in_flight() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    point_search_at_an_unhealthy_tag(&lab);
    run_crashing(&lab, "TagResource");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(search["outcome"], "rolled_back", "{search:#}");
    let w = lab.world();
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, w.families["search"][0].arn);
    assert_eq!(history(&lab, "search"), [(2, "rolled_back".into()), (1, "running".into())]);
}

#[test]
fn a_rerun_after_a_crash_after_create_settles_the_created_service() {
    let lab = Lab::new();
    run_crashing(&lab, "CreateService");
    let created: Vec<String> = lab.world().services.keys().cloned().collect();
    assert_eq!(created.len(), 1, "{created:?}");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let w = lab.world();
    for (key, svc) in &w.services {
        assert_eq!(svc.state.tags.get("mcpfleet.io/last-good"), Some(&svc.state.task_definition), "{key}: {doc:#}");
    }
    let name = created[0].split('/').nth(1).unwrap();
    assert!(service(&doc, name)["message"].as_str().unwrap().contains("rollout completed"), "{doc:#}");
}

#[test]
fn rollback_without_wait_moves_last_good_off_the_revision_it_left() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.5.0")]);
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v1.5.0");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["rollback", "documents", "--cluster", "mcp-prod"]);
    advance(&lab, 300);
    let w = lab.world();
    let rev1 = w.families["documents"][0].arn.clone();
    assert_eq!(w.services["mcp-prod/documents"].state.tags["mcpfleet.io/last-good"], rev1);
    assert_eq!(history(&lab, "documents"), [(2, "rolled_back".into()), (1, "running".into())]);
    // A second rollback has nowhere earlier to go: never "back" to the revision rolled back from.
    let out = lab.run(&["rollback", "documents", "--cluster", "mcp-prod"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no earlier good revision"));
    assert_eq!(lab.world().services["mcp-prod/documents"].state.task_definition, rev1);
}

#[test]
fn status_plan_and_apply_agree_on_a_spec_ecs_rolled_back() {
    let lab = Lab::new();
    search_yaml_with_rollout(&lab, "    autoRollback: false\n");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    point_search_at_an_unhealthy_tag(&lab);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(search["outcome"], "rolled_back");
    let message = search["message"].as_str().unwrap();
    assert!(message.contains("ECS's circuit breaker put the service back on search:1"), "{message}");
    assert!(!message.ends_with("failed (autoRollback is off)"), "{message}");

    let m = lab.manifests();
    let text = lab.ok(&["status", "-f", m.to_str().unwrap()]);
    assert!(!text.contains("apply corrects it"), "{text}");
    assert!(text.contains("held: the rollout of search to search:2 failed"), "{text}");
    let (_, doc) = status(&lab);
    assert_eq!(service(&doc, "search")["drift"], false, "{doc:#}");
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "{plan:#}");
    assert!(service(&plan, "search")["reason"].as_str().unwrap().contains("rollout failed"), "{plan:#}");
}

#[test]
fn raising_the_progress_deadline_releases_a_held_spec() {
    let lab = Lab::new();
    search_yaml_with_rollout(&lab, "    progressDeadline: 1m\n");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1"), "--startup", "5m"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    assert_eq!(lab.apply(&["--wait"]).0, 3);
    assert_eq!(lab.plan().0, 0, "held");

    lab.edit_manifest("search.yaml", "progressDeadline: 1m", "progressDeadline: 10m");
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "a changed manifest releases the held spec: {plan:#}");
    assert_eq!(service(&plan, "search")["action"], "update");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(service(&doc, "search")["outcome"], "updated");
    let w = lab.world();
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, w.families["search"][1].arn);
}

#[test]
fn retention_keeps_the_rollback_target_and_drops_rolled_back_revisions_first() {
    let lab = Lab::new();
    lab.edit_manifest("fleet.yaml", "historyLimit: 10", "historyLimit: 2");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.deploy_tag("search", "v0.9.1");
    lab.deploy_tag("search", "v0.9.2");
    lab.ok(&["rollback", "search", "--cluster", "mcp-prod", "--wait"]);
    lab.deploy_tag("search", "v0.9.3");

    let w = lab.world();
    let statuses: Vec<String> = w.families["search"]
        .iter()
        .map(|td| serde_json::to_value(td.status).unwrap().as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        statuses,
        ["INACTIVE", "ACTIVE", "INACTIVE", "ACTIVE"],
        "the rolled-back search:3 went, search:2 stayed"
    );
    let (code, doc) = lab.json(&["history", "search", "--cluster", "mcp-prod", "-o", "json"]);
    assert_eq!(code, 0, "{doc:#}");
    let marks: Vec<(u64, String, bool)> = doc["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["revision"].as_u64().unwrap(), r["outcome"].as_str().unwrap().into(), r["inactive"] == true))
        .collect();
    assert_eq!(
        marks,
        [
            (4, "running".into(), false),
            (3, "rolled_back".into(), true),
            (2, "completed".into(), false),
            (1, "completed".into(), true)
        ]
    );
    let text = lab.ok(&["history", "search", "--cluster", "mcp-prod"]);
    assert!(text.lines().any(|l| l.trim_start().starts_with("1 ") && l.ends_with("completed (inactive)")), "{text}");

    // The operator can still go back: search:2 is the newest completed revision before the one running.
    let out = lab.ok(&["rollback", "search", "--cluster", "mcp-prod", "--wait"]);
    assert!(out.contains("search:2"), "{out}");
    assert_eq!(lab.world().services["mcp-prod/search"].state.task_definition, w.families["search"][1].arn);
}

#[test]
fn a_moved_service_keeps_its_old_copy_when_the_new_one_fails() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "spec:\n", "spec:\n  cluster: mcp-other\n");
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");

    let (code, plan) = lab.plan_with(&["--prune"]);
    assert_eq!(code, 2, "{plan:#}");
    let old = entry(&plan, "mcp-prod", "search");
    assert_eq!(old["action"], "delete");
    assert!(old["reason"].as_str().unwrap().contains("kept until search in mcp-other is healthy"), "{plan:#}");
    let m = lab.manifests();
    let text = lab.ok(&["plan", "-f", m.to_str().unwrap(), "--prune"]);
    assert!(
        text.contains("- search (mcp-prod): delete - moved to mcp-other; kept until search in mcp-other is healthy"),
        "{text}"
    );

    let (code, doc) = lab.apply(&["--prune", "--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    assert_eq!(entry(&doc, "mcp-other", "search")["outcome"], "failed");
    let old = entry(&doc, "mcp-prod", "search");
    assert_eq!(old["outcome"], "unchanged", "{doc:#}");
    assert!(old["message"].as_str().unwrap().contains("kept"), "{doc:#}");
    let w = lab.world();
    let serving = &w.services["mcp-prod/search"].state;
    assert!(serving.is_active(), "the working copy still serves");
    assert_eq!(serving.running_count, serving.desired_count);
}

#[test]
fn a_moved_service_replaces_its_old_copy_once_the_new_one_is_healthy() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1")]);
    lab.edit_manifest("search.yaml", "spec:\n", "spec:\n  cluster: mcp-other\n");
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");

    // With --wait: the new copy's rollout completes, then the old one goes.
    let (code, doc) = lab.apply(&["--prune", "--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(entry(&doc, "mcp-other", "search")["outcome"], "created");
    assert_eq!(entry(&doc, "mcp-prod", "search")["outcome"], "deleted", "{doc:#}");
    let w = lab.world();
    assert!(!w.services["mcp-prod/search"].state.is_active());
    let new = &w.services["mcp-other/search"].state;
    assert_eq!(new.running_count, new.desired_count);
    assert_eq!(lab.plan_with(&["--prune"]).0, 0);
}

#[test]
fn without_wait_a_move_or_a_rename_deletes_the_old_service_on_a_later_apply() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.edit_manifest("search.yaml", "spec:\n", "spec:\n  cluster: mcp-other\n");
    // documents is renamed: same cluster, same image.
    lab.edit_manifest("documents.yaml", "name: documents", "name: docs");

    let (code, doc) = lab.apply(&["--prune"]);
    assert_eq!(code, 0, "{doc:#}");
    for (cluster, name, successor) in
        [("mcp-prod", "search", "search in mcp-other"), ("mcp-prod", "documents", "docs in mcp-prod")]
    {
        let old = entry(&doc, cluster, name);
        assert_eq!(old["outcome"], "unchanged", "{doc:#}");
        assert!(old["message"].as_str().unwrap().contains(&format!("kept until {successor} is healthy")), "{doc:#}");
        assert!(lab.world().services[&format!("{cluster}/{name}")].state.is_active());
    }
    let (_, plan) = lab.plan_with(&["--prune"]);
    assert!(entry(&plan, "mcp-prod", "documents")["reason"].as_str().unwrap().contains("renamed to docs"), "{plan:#}");

    advance(&lab, 300);
    let (code, plan) = lab.plan_with(&["--prune"]);
    assert_eq!(code, 2, "{plan:#}");
    assert!(entry(&plan, "mcp-prod", "search")["reason"].as_str().unwrap().contains("search in mcp-other is healthy"));
    let (code, doc) = lab.apply(&["--prune"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(entry(&doc, "mcp-prod", "search")["outcome"], "deleted", "{doc:#}");
    assert_eq!(entry(&doc, "mcp-prod", "documents")["outcome"], "deleted", "{doc:#}");
    assert_eq!(lab.plan_with(&["--prune"]).0, 0);
}

#[test]
fn rollback_wait_timeout_exits_4_holds_nothing_more_and_the_rollback_goes_on() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    // documents:2 starts slowly (5m) but is healthy; documents:3 is the revision the operator then leaves.
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.4.3"), "--startup", "5m"]);
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v1.4.3");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.5.0")]);
    lab.edit_manifest("documents.yaml", "documents:v1.4.3", "documents:v1.5.0");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let w = lab.world();
    let (rev2, rev3) = (w.families["documents"][1].clone(), w.families["documents"][2].clone());

    let out = lab.run(&["rollback", "documents", "--cluster", "mcp-prod", "--wait", "--timeout", "1m"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(4), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout,
        "documents: rolling back from documents:3 to documents:2; still in progress when --timeout ran out\n"
    );
    let w = lab.world();
    let svc = &w.services["mcp-prod/documents"].state;
    assert_eq!(svc.task_definition, rev2.arn, "the rollback is left running, not undone");
    let primary = svc.primary().unwrap();
    assert_eq!((primary.task_definition.as_str(), primary.running_count), (rev2.arn.as_str(), 0), "{svc:#?}");
    assert_eq!(svc.running_count, 2, "documents:3 keeps serving while documents:2 starts: {svc:#?}");
    // The timeout decided nothing: the only spec held is the one the operator left (as any rollback holds it),
    // and the target keeps the outcome its own rollout earned.
    assert_eq!(svc.tags["mcpfleet.io/failed-spec-hash"], rev3.tags["mcpfleet.io/spec-hash"]);
    assert_eq!(w.families["documents"][1].tags["mcpfleet.io/outcome"], "completed");
    assert_eq!(svc.tags["mcpfleet.io/last-good"], rev2.arn);
    assert_eq!(history(&lab, "documents"), [(3, "rolled_back".into()), (2, "running".into()), (1, "completed".into())]);

    // The rollout goes on without anyone watching and completes on documents:2.
    advance(&lab, 600);
    let (code, doc) = status(&lab);
    assert_eq!(code, 0, "{doc:#}");
    let documents = service(&doc, "documents");
    assert_eq!(documents["rolloutState"], "COMPLETED", "{documents:#}");
    assert_eq!(documents["taskDefinition"], rev2.arn.as_str(), "{documents:#}");
    assert_eq!((documents["running"].as_u64(), documents["drift"].as_bool()), (Some(2), Some(false)), "{documents:#}");
}

#[test]
fn an_unready_image_fails_elb_health_checks_behind_a_target_group_and_rolls_out_without_one() {
    // The example fleet exposes documents through the lab's target group (made again: the same ARN).
    let lab = Lab::new();
    let arn = lab.ok(&["sim", "target-group", TARGET_GROUP, "--health-path", "/ready"]).trim().to_string();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    assert_eq!(lab.world().services["mcp-prod/documents"].state.load_balancers[0].target_group_arn, arn);
    let good_digest = lab.world().repositories[&format!("{ECR}/documents")].tags["v1.4.2"].clone();
    let pushed = lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.5.0"), "--unready"]);
    assert!(pushed.trim_end().ends_with(", unready)"), "{pushed}");
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v1.5.0");

    // Behind the target group its tasks never become healthy: ECS stops them as ELB-unhealthy, the circuit
    // breaker trips and the service goes back to the last good revision.
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let documents = service(&doc, "documents");
    assert_eq!(documents["outcome"], "rolled_back", "{doc:#}");
    let message = documents["message"].as_str().unwrap();
    let elb = format!("Task failed ELB health checks in (target-group {arn})");
    assert!(message.contains("circuit breaker") && message.contains(&elb), "{message}");
    assert!(!message.contains("container health checks"), "the container health check passed: {message}");

    let w = lab.world();
    let sim = &w.services["mcp-prod/documents"];
    let running = w.families["documents"].iter().find(|td| td.arn == sim.state.task_definition).unwrap();
    assert!(running.spec.container_definitions[0].image.ends_with(&good_digest), "back on the previous digest");
    let failed: Vec<_> = sim.stopped.iter().filter(|t| t.stopped_reason == elb).collect();
    assert!(failed.len() >= 3, "the breaker's minimum of failed tasks: {:#?}", sim.stopped);
    assert!(failed.iter().all(|t| t.task_definition != sim.state.task_definition && t.container_reason.is_none()));
    assert_eq!(history(&lab, "documents")[0], (2, "rolled_back".into()));

    // The same image on a service without a load balancer passes its container health check and rolls out.
    lab.edit_manifest("search.yaml", "mcp/search:v0.9.0", "mcp/documents:v1.5.0");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(service(&doc, "search")["outcome"], "updated", "{doc:#}");
    let w = lab.world();
    let svc = &w.services["mcp-prod/search"].state;
    let running = w.families["search"].iter().find(|td| td.arn == svc.task_definition).unwrap();
    let unready_digest = &w.repositories[&format!("{ECR}/documents")].tags["v1.5.0"];
    assert!(running.spec.container_definitions[0].image.ends_with(unready_digest.as_str()));
    assert_eq!(svc.running_count, svc.desired_count);
    assert!(w.services["mcp-prod/search"].stopped.is_empty(), "no task failed");
}

/// Pushes `search:v1.0.0` as an image whose tasks fail their health checks, and points search.yaml at it.
fn point_search_at_an_unhealthy_tag(lab: &Lab) {
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
}
