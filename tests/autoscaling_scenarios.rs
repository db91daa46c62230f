//! Autoscaling on the sim through the real binary: a service registered as a scalable target with its target
//! tracking policies, a count that the autoscaler moves and that mcpfleet leaves alone inside the bounds, one
//! outside them corrected to the nearest bound, a rollout that completes while the autoscaler scales, changes of
//! the autoscaling planned and applied field by field, and its removal.

mod common;

use common::lab::{ECR, Lab, TARGET_GROUP, service, writes};
use mcpfleet::backend::sim::World;
use serde_json::{Value, json};

/// documents (replicas 2) autoscaling within 2..6 on CPU at 60 % and 500 requests per task.
const SCALED: &str =
    "  replicas: 2\n  autoscaling:\n    min: 2\n    max: 6\n    targetCpu: 60\n    requestsPerTarget: 500\n";

/// A lab whose documents.yaml autoscales as [`SCALED`] says, applied with `--wait`.
fn scaled_lab() -> Lab {
    let lab = Lab::new();
    lab.edit_manifest("documents.yaml", "  replicas: 2\n", SCALED);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    lab
}

fn documents(w: &World) -> &mcpfleet::backend::ServiceState {
    &w.services["mcp-prod/documents"].state
}

/// The column (in characters) where `needle` ends in `line`.
fn end_column(line: &str, needle: &str) -> usize {
    let at = line.find(needle).unwrap_or_else(|| panic!("{needle:?} not in {line:?}"));
    line[..at + needle.len()].chars().count()
}

fn calls(doc: &Value, op: &str) -> u64 {
    doc["apiCalls"]["calls"][op].as_u64().unwrap_or(0)
}

#[test]
fn apply_registers_the_target_and_its_policies_then_a_no_op_apply_only_reads_the_targets() {
    let lab = scaled_lab();
    let w = lab.world();
    let target = &w.scalable_targets["service/mcp-prod/documents"];
    assert_eq!((target.min_capacity, target.max_capacity), (2, 6));
    let names: Vec<&str> = target.policies.keys().map(String::as_str).collect();
    assert_eq!(names, ["documents-cpu", "documents-requests"]);
    let requests = &target.policies["documents-requests"];
    assert_eq!((requests.target_value, requests.scale_in_cooldown, requests.scale_out_cooldown), (500.0, 300, 60));
    // The label of documents' target group behind the sim's ALB, from their ARNs.
    let tg = &w.target_groups[TARGET_GROUP];
    let label = requests.predefined_metric_specification.resource_label.clone().unwrap();
    let lb = tg.load_balancer_arns[0].split_once(":loadbalancer/").unwrap().1;
    let group = tg.arn.split_once(":targetgroup/").unwrap().1;
    assert_eq!(label, format!("{lb}/targetgroup/{group}"));
    assert!(label.starts_with("app/mcpfleet-sim/"), "{label}");
    assert!(documents(&w).tags.contains_key("mcpfleet.io/autoscaling"));
    assert!(!w.services["mcp-prod/search"].state.tags.contains_key("mcpfleet.io/autoscaling"));
    assert!(!w.scalable_targets.contains_key("service/mcp-prod/search"), "only documents autoscales");

    // Converged: no write, one DescribeScalableTargets for the one autoscaled service, no policy read.
    let before = std::fs::read(lab.state()).unwrap();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(writes(&doc), 0, "{:#}", doc["apiCalls"]);
    assert_eq!((calls(&doc, "DescribeScalableTargets"), calls(&doc, "DescribeScalingPolicies")), (1, 0));
    assert_eq!(std::fs::read(lab.state()).unwrap(), before, "the state file is untouched");
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "{plan:#}");

    // status shows the bounds with the count, and -o json the bounds and targets.
    let text = lab.ok(&["status", "-f", lab.manifests().to_str().unwrap()]);
    let row = text.lines().find(|l| l.starts_with("documents ")).unwrap();
    assert!(row.contains(" 2 (2–6) "), "{text}");
    let header = text.lines().next().unwrap();
    assert_eq!(end_column(header, "DESIRED"), end_column(row, " 2 (2–6)"), "right-aligned under its header:\n{text}");
    let (code, status) = lab.json(&["status", "-f", lab.manifests().to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 0);
    assert_eq!(
        service(&status, "documents")["autoscaling"],
        json!({"min": 2, "max": 6, "targets": {"targetCpu": 60, "requestsPerTarget": 500}})
    );
    assert_eq!(service(&status, "search").get("autoscaling"), None);
}

#[test]
fn a_count_outside_the_bounds_is_corrected_to_the_nearest_bound_and_one_inside_is_left_alone() {
    let lab = scaled_lab();
    lab.ok(&["sim", "edit", "documents", "--cluster", "mcp-prod", "--desired-count", "5"]);
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "a count inside 2..6 is the autoscaler's: {plan:#}");

    lab.ok(&["sim", "edit", "documents", "--cluster", "mcp-prod", "--desired-count", "9"]);
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "{plan:#}");
    let docs = service(&plan, "documents");
    assert_eq!(docs["action"], "update");
    assert_eq!(docs["reason"], "drift: the service was changed outside mcpfleet");
    assert_eq!(docs["changes"], json!([{"path": "service.desiredCount", "from": 9, "to": 6}]));
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(documents(&lab.world()).desired_count, 6, "corrected to max");

    lab.ok(&["sim", "edit", "documents", "--cluster", "mcp-prod", "--desired-count", "1"]);
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(documents(&lab.world()).desired_count, 2, "corrected to min");
    // The correction is an UpdateService of the count; nothing of the autoscaling is written.
    for op in ["RegisterScalableTarget", "PutScalingPolicy", "DeleteScalingPolicy", "DeregisterScalableTarget"] {
        assert_eq!(calls(&doc, op), 0, "{op}: {:#}", doc["apiCalls"]);
    }
    assert_eq!(calls(&doc, "UpdateService"), 1);
}

#[test]
fn a_rollout_during_scaling_completes() {
    let lab = scaled_lab();
    // Load rises while a new image rolls out slowly: the autoscaler adds tasks during the rollout.
    lab.ok(&["sim", "load", "documents", "--cluster", "mcp-prod", "--cpu", "150"]);
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.4.3"), "--startup", "150s"]);
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v1.4.3");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let docs = service(&doc, "documents");
    assert_eq!(docs["outcome"], "updated");
    assert!(docs["message"].as_str().unwrap().ends_with("rollout completed"), "{doc:#}");
    let w = lab.world();
    let svc = documents(&w);
    // ceil(2 × 150 / 60) = 5 tasks, and the service ran the new revision throughout.
    assert_eq!(svc.desired_count, 5, "{:#?}", svc.events);
    assert!(
        svc.events.iter().any(|e| e.message.contains("set from 2 to 5 by Application Auto Scaling")),
        "{:#?}",
        svc.events
    );
    assert!(svc.task_definition.ends_with("documents:2"));
    assert_eq!(svc.tags["mcpfleet.io/last-good"], svc.task_definition, "the rollout was settled as completed");
    // And the count the autoscaler set is nobody's drift.
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "{plan:#}");
}

#[test]
fn autoscaling_changes_are_planned_and_applied_without_touching_the_service_and_removal_fixes_the_count() {
    let lab = scaled_lab();
    lab.edit_manifest("documents.yaml", "    max: 6\n    targetCpu: 60\n", "    max: 8\n    targetCpu: 50\n");
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "{plan:#}");
    let docs = service(&plan, "documents");
    assert_eq!(docs["action"], "update");
    assert_eq!(
        docs["changes"],
        json!([
            {"path": "autoscaling.max", "from": 6, "to": 8},
            {"path": "autoscaling.policies.documents-cpu.TargetValue", "from": 60.0, "to": 50.0}
        ])
    );
    let text = lab.plan_text();
    assert!(text.contains("~ documents (mcp-prod): update\n    autoscaling.max: 6 -> 8\n"), "{text}");
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(service(&doc, "documents")["message"], "autoscaling updated");
    assert_eq!((calls(&doc, "RegisterScalableTarget"), calls(&doc, "PutScalingPolicy")), (1, 1));
    assert_eq!(calls(&doc, "DescribeScalingPolicies"), 1, "read to compare, as the tag no longer matched");
    for op in ["UpdateService", "RegisterTaskDefinition", "DeleteScalingPolicy"] {
        assert_eq!(calls(&doc, op), 0, "{op}: {:#}", doc["apiCalls"]);
    }
    let target = &lab.world().scalable_targets["service/mcp-prod/documents"];
    assert_eq!((target.max_capacity, target.policies["documents-cpu"].target_value), (8, 50.0));
    assert_eq!(lab.plan().0, 0);

    // Editing replicas changes nothing that runs while autoscaling is on.
    lab.edit_manifest("documents.yaml", "  replicas: 2\n", "  replicas: 4\n");
    assert_eq!(lab.plan().0, 0, "replicas only says what a new service starts with");

    // Removed: the policies go, then the target, then the service gets its fixed count back.
    lab.ok(&["sim", "edit", "documents", "--cluster", "mcp-prod", "--desired-count", "7"]);
    let text = std::fs::read_to_string(lab.manifests().join("documents.yaml")).unwrap();
    let start = text.find("  autoscaling:\n").unwrap();
    let end = text.find("    requestsPerTarget: 500\n").unwrap() + "    requestsPerTarget: 500\n".len();
    std::fs::write(lab.manifests().join("documents.yaml"), format!("{}{}", &text[..start], &text[end..])).unwrap();
    let (code, plan) = lab.plan();
    assert_eq!(code, 2);
    let changes = &service(&plan, "documents")["changes"];
    assert!(
        changes.as_array().unwrap().contains(&json!({"path": "autoscaling", "from": {"min": 2, "max": 8}, "to": null})),
        "{plan:#}"
    );
    assert!(
        changes.as_array().unwrap().contains(&json!({"path": "service.desiredCount", "from": 7, "to": 4})),
        "{plan:#}"
    );
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!((calls(&doc, "DeleteScalingPolicy"), calls(&doc, "DeregisterScalableTarget")), (2, 1));
    let w = lab.world();
    assert!(w.scalable_targets.is_empty());
    assert_eq!(documents(&w).desired_count, 4);
    assert!(!documents(&w).tags.contains_key("mcpfleet.io/autoscaling"));
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "{plan:#}");
}

#[test]
fn requests_per_target_without_an_alb_is_refused_before_any_write() {
    let lab = Lab::new();
    lab.ok(&["sim", "target-group", "lonely", "--no-load-balancer"]);
    lab.edit_manifest("documents.yaml", "  replicas: 2\n", SCALED);
    let out = lab.run(&["validate", "-f", lab.manifests().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Without a load balancer in expose at all, validation refuses it with its code.
    let text = std::fs::read_to_string(lab.manifests().join("documents.yaml")).unwrap();
    let unexposed = text.replace("  expose:\n    loadBalancers:\n      - targetGroup: mcp-documents  # an existing ALB target group (type ip), made by your IaC\n", "");
    std::fs::write(lab.manifests().join("documents.yaml"), &unexposed).unwrap();
    let out = lab.run(&["validate", "-f", lab.manifests().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "spec.autoscaling.requestsPerTarget: requests are counted by an Application Load Balancer's target group"
        ) && stderr.contains("[E1705]"),
        "{stderr}"
    );
    // Behind a target group no load balancer routes to: refused at resolution, nothing written.
    std::fs::write(
        lab.manifests().join("documents.yaml"),
        text.replace("targetGroup: mcp-documents", "targetGroup: lonely"),
    )
    .unwrap();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 1, "{doc:#}");
    let error = doc["error"].as_str().unwrap();
    assert!(
        error.contains(
            "spec.autoscaling.requestsPerTarget: no Application Load Balancer routes to target group `lonely`"
        ),
        "{error}"
    );
    assert!(lab.world().services.is_empty(), "nothing was created");
}

/// Applies fleet.yaml and search.yaml alone with `--wait` after pushing `tag` of search with `startup`: virtual
/// time passes (the rollout's) while no other service is watched.
fn let_time_pass(lab: &Lab, tag: &str, startup: &str) {
    lab.ok(&["sim", "push", &format!("{ECR}/search:{tag}"), "--startup", startup]);
    let file = lab.manifests().join("search.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let old = text.split("search:").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    std::fs::write(&file, text.replace(&format!("search:{old}"), &format!("search:{tag}"))).unwrap();
    let m = lab.manifests();
    let (fleet, search) = (m.join("fleet.yaml"), m.join("search.yaml"));
    let (code, doc) =
        lab.json(&["apply", "-f", fleet.to_str().unwrap(), "-f", search.to_str().unwrap(), "--wait", "-o", "json"]);
    assert_eq!(code, 0, "{doc:#}");
}

#[test]
fn a_rollout_that_completed_unwatched_is_not_failed_while_the_autoscaler_adds_tasks() {
    let lab = scaled_lab();
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.4.3"), "--startup", "150s"]);
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v1.4.3");
    let (code, doc) = lab.apply(&[]);
    assert_eq!((code, service(&doc, "documents")["outcome"].as_str()), (0, Some("updated")), "{doc:#}");
    // Past the rollout's progress deadline (10m) nobody watched it; it completed on documents:2.
    let_time_pass(&lab, "v0.9.1", "6m");
    let_time_pass(&lab, "v0.9.2", "6m");
    let svc = documents(&lab.world()).clone();
    assert!(svc.task_definition.ends_with("documents:2"));
    assert_eq!(svc.tags["mcpfleet.io/last-good"], svc.task_definition.replace(":2", ":1"), "not recorded yet");
    // Load rises; the autoscaler adds tasks, which take 150 s to start.
    lab.ok(&["sim", "load", "documents", "--cluster", "mcp-prod", "--cpu", "150"]);
    let_time_pass(&lab, "v0.9.3", "90s");
    let svc = documents(&lab.world()).clone();
    assert_eq!(svc.desired_count, 5, "{:#?}", svc.events);
    assert!(svc.running_count < svc.desired_count, "the new tasks are still starting: {svc:#?}");
    // The next apply judges the rollout on its revision: completed, not failed for the count moving after it.
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(service(&doc, "documents")["outcome"], "unchanged", "{doc:#}");
    let svc = documents(&lab.world()).clone();
    assert!(svc.task_definition.ends_with("documents:2"), "not rolled back: {svc:#?}");
    assert!(!svc.tags.contains_key("mcpfleet.io/failed-spec-hash"), "{:?}", svc.tags);
}

#[test]
fn render_shows_the_autoscaling_documents_as_application_auto_scaling_takes_them() {
    let lab = Lab::new();
    lab.edit_manifest("documents.yaml", "  replicas: 2\n", SCALED);
    let out = lab.run(&["render", "-f", lab.manifests().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let scaling = &service(&doc, "documents")["autoscaling"];
    assert_eq!(
        scaling["registerScalableTarget"],
        json!({"ServiceNamespace": "ecs", "ResourceId": "service/mcp-prod/documents",
               "ScalableDimension": "ecs:service:DesiredCount", "MinCapacity": 2, "MaxCapacity": 6})
    );
    let requests = &scaling["putScalingPolicies"][1];
    assert_eq!(requests["PolicyName"], "documents-requests");
    assert_eq!(
        requests["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"],
        json!({"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": "mcp-documents"}),
        "without AWS the label is the target group as written"
    );
    assert_eq!(service(&doc, "search").get("autoscaling"), None);
    let (ok, report) = common::run_python_script("scripts/check_ecs_shapes.py", &["-"], &out.stdout);
    assert!(ok, "botocore rejected the rendered Application Auto Scaling input:\n{report}");

    // The checker catches what Application Auto Scaling would refuse, or the check above proves nothing.
    let mut bad = doc.clone();
    let docs = bad["services"].as_array_mut().unwrap().iter_mut().find(|s| s["name"] == "documents").unwrap();
    docs["autoscaling"]["registerScalableTarget"]["ScalableDimension"] = json!("ecs:service:Count");
    docs["autoscaling"]["putScalingPolicies"][0]["PolicyType"] = json!("TargetTracking");
    docs["autoscaling"]["putScalingPolicies"][0]["Cooldown"] = json!(60);
    docs["autoscaling"]["putScalingPolicies"][1]["ResourceId"] = json!("service/mcp-prod/search");
    let (ok, report) = common::run_python_script("scripts/check_ecs_shapes.py", &["-"], bad.to_string().as_bytes());
    assert!(!ok, "{report}");
    for expected in [
        "autoscaling.registerScalableTarget: ScalableDimension: 'ecs:service:Count' is not one of",
        "autoscaling.putScalingPolicies[0]: PolicyType: 'TargetTracking' is not one of",
        "Cooldown",
        "autoscaling.putScalingPolicies[1].ResourceId 'service/mcp-prod/search' is not 'service/mcp-prod/documents'",
    ] {
        assert!(report.contains(expected), "{expected:?} not in:\n{report}");
    }
}
