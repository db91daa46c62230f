//! Scenarios on the sim backend through the real binary: what an operator sees from apply, plan and status,
//! and what ends up in the simulated account (read back from the state file).

mod common;

use serde_json::Value;

use common::lab::{ECR, Lab, TARGET_GROUP, entry, outcomes, writes};

#[test]
fn apply_from_empty_creates_pinned_services_then_converges() {
    let lab = Lab::new();
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(
        outcomes(&doc),
        [("database", "created"), ("documents", "created"), ("search", "created")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    let w = lab.world();
    let repo = |name: &str| &w.repositories[&format!("{ECR}/{name}")];
    for (name, arch, tag) in
        [("documents", "ARM64", "v1.4.2"), ("database", "X86_64", "v2.0.1"), ("search", "ARM64", "v0.9.0")]
    {
        let td = &w.families[name][0];
        let c = &td.spec.container_definitions[0];
        let digest = &repo(name).tags[tag];
        assert_eq!(c.image, format!("{ECR}/{name}@{digest}"), "{name} is pinned to the digest");
        assert_eq!(serde_json::to_value(td.spec.runtime_platform.cpu_architecture).unwrap(), arch, "{name}");
        let svc = &w.services[&format!("mcp-prod/{name}")].state;
        assert_eq!(svc.tags["mcpfleet.io/managed-by"], "mcpfleet");
        assert_eq!(svc.tags["mcpfleet.io/image-digest"], *digest);
        assert_eq!(svc.tags["mcpfleet.io/last-good"], td.arn);
        assert_eq!(svc.running_count, svc.desired_count);
    }
    let secret = &w.families["documents"][0].spec.container_definitions[0].secrets[0];
    assert_eq!(secret.value_from, format!("{}:api_key::", w.secrets["prod/mcp/openai-key"]));
    assert!(secret.value_from.starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/mcp/openai-key-"));

    // Second apply: nothing to do, no write, the state file untouched.
    let before = std::fs::read(lab.state()).unwrap();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0);
    assert!(outcomes(&doc).iter().all(|(_, o)| o == "unchanged"), "{doc:#}");
    assert_eq!(writes(&doc), 0, "{:#}", doc["apiCalls"]);
    assert_eq!(doc["apiCalls"]["calls"]["DescribeServices"], 1);
    assert_eq!(doc["apiCalls"]["calls"].get("DescribeTaskDefinition"), None);
    assert_eq!(std::fs::read(lab.state()).unwrap(), before);
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "--detailed-exitcode: no changes");
    assert!(plan["services"].as_array().unwrap().iter().all(|s| s["action"] == "noop"), "{plan:#}");

    let status = lab.ok(&["status", "-f", lab.manifests().to_str().unwrap(), "-o", "json"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    let docs = status["services"].as_array().unwrap().iter().find(|s| s["name"] == "documents").unwrap();
    assert_eq!(docs["architecture"], "ARM64");
    assert_eq!(docs["rolloutState"], "COMPLETED");
    assert_eq!(docs["revision"], 1);
    assert_eq!((docs["desired"].as_u64(), docs["running"].as_u64()), (Some(2), Some(2)));
}

#[test]
fn changing_one_tag_updates_only_that_service() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1")]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");

    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "--detailed-exitcode: changes");
    let actions: Vec<(&str, &str)> = plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("database", "noop"), ("documents", "noop"), ("search", "update")]);
    let change = &plan["services"][2]["changes"][0];
    assert_eq!(change["path"], "taskDefinition.containerDefinitions.search.image");

    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(outcomes(&doc)[2], ("search".to_string(), "updated".to_string()));
    assert_eq!(doc["apiCalls"]["calls"]["RegisterTaskDefinition"], 1);
    assert_eq!(doc["apiCalls"]["calls"]["UpdateService"], 1);
    let w = lab.world();
    assert_eq!(w.families["search"].len(), 2);
    assert_eq!(w.families["documents"].len(), 1);
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, w.families["search"][1].arn);
}

#[test]
fn unresolvable_references_change_nothing() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&[]).0, 0);
    let before = std::fs::read(lab.state()).unwrap();

    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v9.9.9");
    lab.edit_manifest("search.yaml", "SEARCH_API_KEY: prod/mcp/search-api-key", "SEARCH_API_KEY: prod/mcp/nope");
    let m = lab.manifests();
    let out = lab.run(&["apply", "-f", m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("service `documents`") && stderr.contains("tag `v9.9.9` not found"), "{stderr}");
    assert!(stderr.contains("spec.secrets.SEARCH_API_KEY: secret `prod/mcp/nope` not found"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(std::fs::read(lab.state()).unwrap(), before, "the sim state must be byte-identical");
}

#[test]
fn an_architecture_the_image_lacks_is_refused() {
    let lab = Lab::new();
    lab.edit_manifest("database.yaml", "architecture: x86_64", "architecture: arm64");
    let m = lab.manifests();
    let out = lab.run(&["plan", "-f", m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("service `database`") && stderr.contains("arm64 requested but the image has only linux/amd64"),
        "{stderr}"
    );
}

#[test]
fn a_crash_between_register_and_update_is_finished_without_duplicates() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1")]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    let m = lab.manifests();
    let out = common::mcpfleet()
        .args(["--backend", "sim", "--sim-state", lab.state().to_str().unwrap(), "apply", "-f", m.to_str().unwrap()])
        .env("MCPFLEET_SIM_CRASH_AFTER", "RegisterTaskDefinition")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", String::from_utf8_lossy(&out.stderr));
    let w = lab.world();
    assert_eq!(w.families["search"].len(), 2, "the revision was registered before the crash");
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, w.families["search"][0].arn, "the service was not");

    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["apiCalls"]["calls"].get("RegisterTaskDefinition"), None, "the registered revision is reused");
    let w = lab.world();
    assert_eq!(w.families["search"].len(), 2);
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, w.families["search"][1].arn);
    assert_eq!(lab.plan().0, 0);
}

#[test]
fn prune_deletes_removed_managed_services_only() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&[]).0, 0);
    // Someone's hand-made service in the same cluster.
    {
        let sim = mcpfleet::backend::sim::Sim::open(&lab.state()).unwrap();
        sim.with_world(true, |w| {
            let mut input = w.services["mcp-prod/search"].state.clone();
            input.name = "hand-made".into();
            let td = w.families["search"][0].arn.clone();
            let svc = mcpfleet::render::ecs::ServiceInput {
                cluster: "mcp-prod".into(),
                service_name: "hand-made".into(),
                task_definition: td,
                desired_count: 1,
                launch_type: "FARGATE".into(),
                scheduling_strategy: "REPLICA".into(),
                deployment_controller: mcpfleet::render::ecs::DeploymentController { kind: "ECS".into() },
                deployment_configuration: input.deployment_configuration.unwrap(),
                network_configuration: input.network_configuration,
                enable_ecs_managed_tags: false,
                propagate_tags: "NONE".into(),
                service_connect_configuration: None,
                load_balancers: vec![],
                health_check_grace_period_seconds: None,
                tags: vec![],
            };
            w.create_service(&svc).unwrap();
        })
        .unwrap();
    }
    std::fs::remove_file(lab.manifests().join("search.yaml")).unwrap();
    // Without --prune the delete is shown but is not a change apply would make: --detailed-exitcode stays 0.
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "{plan:#}");
    let search = plan["services"].as_array().unwrap().iter().find(|s| s["name"] == "search").unwrap();
    assert_eq!(search["action"], "orphan", "without --prune nothing is planned as a delete");
    assert_eq!(search["reason"], "not in the manifests; would be deleted with --prune");
    assert!(!plan.to_string().contains("hand-made"), "unmanaged services are never planned");
    let (code, plan) = lab.plan_with(&["--prune"]);
    assert_eq!(code, 2, "{plan:#}");
    let search = plan["services"].as_array().unwrap().iter().find(|s| s["name"] == "search").unwrap();
    assert_eq!(search["action"], "delete");
    assert_eq!(search["reason"], "managed by mcpfleet and no longer in the manifests");
    let m = lab.manifests();
    let text = lab.ok(&["plan", "-f", m.to_str().unwrap()]);
    assert!(text.contains("- search (mcp-prod): would be deleted with --prune\n"), "{text}");
    assert!(text.contains("0 to delete, 2 unchanged. 1 no longer in the manifests would be deleted"), "{text}");

    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0);
    assert!(outcomes(&doc).contains(&("search".into(), "unchanged".into())), "without --prune nothing is deleted");
    assert!(lab.world().services["mcp-prod/search"].state.is_active());

    let (code, doc) = lab.apply(&["--prune"]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(outcomes(&doc).contains(&("search".into(), "deleted".into())));
    let w = lab.world();
    assert!(!w.services["mcp-prod/search"].state.is_active());
    assert!(w.services["mcp-prod/hand-made"].state.is_active());
    assert_eq!(lab.plan_with(&["--prune"]).0, 0, "pruned: nothing left to do");
}

#[test]
fn prune_sees_the_default_cluster_after_the_last_service_left_it() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&[]).0, 0);
    // Every remaining service moves to another cluster; mcp-prod (FleetDefaults' cluster) keeps only leftovers.
    std::fs::remove_file(lab.manifests().join("documents.yaml")).unwrap();
    std::fs::remove_file(lab.manifests().join("database.yaml")).unwrap();
    lab.edit_manifest("search.yaml", "spec:\n", "spec:\n  cluster: mcp-next\n");

    let (code, plan) = lab.plan_with(&["--prune"]);
    assert_eq!(code, 2, "{plan:#}");
    let mut actions: Vec<(String, String, String)> = plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["cluster"].as_str().unwrap().into(),
                s["name"].as_str().unwrap().into(),
                s["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    actions.sort();
    let expected: Vec<(String, String, String)> = [
        ("mcp-next", "search", "create"),
        ("mcp-prod", "database", "delete"),
        ("mcp-prod", "documents", "delete"),
        ("mcp-prod", "search", "delete"),
    ]
    .iter()
    .map(|(c, n, a)| (c.to_string(), n.to_string(), a.to_string()))
    .collect();
    assert_eq!(actions, expected);

    // search moved: its old copy goes once the new one's rollout completed, which --wait waits for.
    let (code, doc) = lab.apply(&["--prune", "--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let w = lab.world();
    for name in ["documents", "database", "search"] {
        assert!(!w.services[&format!("mcp-prod/{name}")].state.is_active(), "{name} was pruned from mcp-prod");
    }
    assert!(w.services["mcp-next/search"].state.is_active());
    assert_eq!(lab.plan_with(&["--prune"]).0, 0);
}

#[test]
fn a_service_by_a_desired_name_that_mcpfleet_does_not_manage_is_refused() {
    let lab = Lab::new();
    // Someone created `documents` by hand (no mcpfleet tags) before the fleet was applied.
    {
        let fleet = mcpfleet::spec::load_paths(&[lab.manifests()]).unwrap();
        let svc = fleet.services.iter().find(|s| s.name == "documents").unwrap();
        let rendered = mcpfleet::render::ecs::render(svc, &mcpfleet::render::Resolved::unresolved(svc));
        let sim = mcpfleet::backend::sim::Sim::open(&lab.state()).unwrap();
        sim.with_world(true, |w| {
            let mut td = rendered.register_task_definition.clone();
            td.family = "hand-made".into();
            td.tags.clear();
            let td = w.register_task_definition(&td);
            let mut input = rendered.create_service.clone();
            input.task_definition = td.arn;
            input.tags.clear();
            w.create_service(&input).unwrap();
        })
        .unwrap();
    }
    let before = std::fs::read(lab.state()).unwrap();
    let m = lab.manifests();
    for args in
        [vec!["apply", "-f", m.to_str().unwrap()], vec!["plan", "-f", m.to_str().unwrap(), "--detailed-exitcode"]]
    {
        let out = lab.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("1 service(s) exist but are not managed by mcpfleet")
                && stderr.contains("documents in cluster mcp-prod")
                && stderr.contains("mcpfleet.io/managed-by=mcpfleet")
                && stderr.contains("nothing was changed"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&out.stdout));
    }
    assert_eq!(std::fs::read(lab.state()).unwrap(), before, "nothing was written");
}

#[test]
fn reverting_an_image_reuses_the_earlier_revision() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1")]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["apiCalls"]["calls"]["RegisterTaskDefinition"], 1);
    let w = lab.world();
    let (rev1, rev2) = (w.families["search"][0].arn.clone(), w.families["search"][1].arn.clone());
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, rev2);
    assert_eq!(w.services["mcp-prod/search"].state.tags["mcpfleet.io/last-good"], rev1);

    // v0.9.1 is reverted before its rollout was ever confirmed good: revision 1 is the one to run again.
    lab.edit_manifest("search.yaml", "search:v0.9.1", "search:v0.9.0");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(outcomes(&doc)[2], ("search".to_string(), "updated".to_string()));
    assert_eq!(doc["apiCalls"]["calls"].get("RegisterTaskDefinition"), None, "{:#}", doc["apiCalls"]);
    let w = lab.world();
    assert_eq!(w.families["search"].len(), 2, "no duplicate of revision 1");
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, rev1);
    assert_eq!(lab.plan().0, 0);
}

#[test]
fn status_describes_the_revision_a_drifted_service_runs() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1")]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let w = lab.world();
    let rev1 = w.families["search"][0].clone();
    let rev2 = w.families["search"][1].arn.clone();
    let old_digest = w.repositories[&format!("{ECR}/search")].tags["v0.9.0"].clone();
    let new_digest = w.repositories[&format!("{ECR}/search")].tags["v0.9.1"].clone();
    let m = lab.manifests();
    let status = |lab: &Lab| -> (Value, Value) {
        let (code, doc) = lab.json(&["status", "-f", m.to_str().unwrap(), "-o", "json"]);
        assert_eq!(code, 0, "{doc:#}");
        let search = doc["services"].as_array().unwrap().iter().find(|s| s["name"] == "search").unwrap().clone();
        (doc, search)
    };

    let (_, search) = status(&lab);
    assert_eq!((search["image"].as_str(), search["digest"].as_str()), (Some("v0.9.1"), Some(new_digest.as_str())));
    assert_eq!(search["drift"], false);

    // Someone puts the service back on revision 1 in the console.
    lab.ok(&["sim", "edit", "search", "--cluster", "mcp-prod", "--task-definition", &rev1.arn]);
    let (doc, search) = status(&lab);
    assert_eq!(doc["apiCalls"]["calls"]["DescribeTaskDefinition"], 1, "only the running revision is described");
    assert_eq!(search["taskDefinition"], rev1.arn.as_str());
    assert_eq!(search["revision"], 1);
    assert_eq!(search["image"], "v0.9.0", "{search:#}");
    assert_eq!(search["digest"], old_digest.as_str());
    assert_eq!(search["architecture"], "ARM64");
    assert_eq!(search["drift"], true);
    assert_eq!(search["appliedTaskDefinition"], rev2.as_str());
    let text = lab.ok(&["status", "-f", m.to_str().unwrap()]);
    assert!(text.contains("drift: search runs search:1, not search:2 that mcpfleet applied"), "{text}");
}

#[test]
fn a_converged_status_describes_no_task_definition() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let m = lab.manifests();
    let (code, doc) = lab.json(&["status", "-f", m.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 0);
    assert!(doc["services"].as_array().unwrap().iter().all(|s| s["drift"] == false), "{doc:#}");
    // One DescribeServices, the ELBv2 reads that name the DNS of documents' load balancer, and the secrets'
    // versions (`staleSecrets`).
    assert_eq!(
        doc["apiCalls"]["calls"],
        serde_json::json!({
            "DescribeServices": 1,
            "DescribeTargetGroups": 1,
            "DescribeTargetGroupAttributes": 1,
            "DescribeLoadBalancers": 1,
            "DescribeLoadBalancerAttributes": 1,
            "ListSecrets": 1,
        }),
        "{doc:#}"
    );
}

#[test]
fn retention_keeps_the_revision_a_service_left_in_another_cluster_runs() {
    let lab = Lab::new();
    lab.edit_manifest("fleet.yaml", "historyLimit: 10", "historyLimit: 1");
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let rev1 = lab.world().families["search"][0].arn.clone();
    // search moves to mcp-other without --prune: the copy in mcp-prod keeps running search:1.
    lab.edit_manifest("search.yaml", "spec:\n", "spec:\n  cluster: mcp-other\n");
    for tag in ["v0.9.1", "v0.9.2", "v0.9.3"] {
        lab.deploy_tag("search", tag);
    }
    let w = lab.world();
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, rev1);
    let rev1 = w.families["search"].iter().find(|td| td.arn == rev1).unwrap();
    assert_eq!(rev1.status, mcpfleet::backend::TdStatus::Active, "mcp-prod/search still runs it");
    let active: Vec<u32> = w.families["search"]
        .iter()
        .filter(|td| td.status == mcpfleet::backend::TdStatus::Active)
        .map(|td| td.revision)
        .collect();
    assert_eq!(active, [1, 3, 4], "besides it, the running revision and the one before it");
}

#[test]
fn a_transport_change_is_planned_as_a_field_and_tagged_on_the_revision() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.edit_manifest("search.yaml", "transport: sse", "transport: streamable-http");
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "{plan:#}");
    let search = entry(&plan, "mcp-prod", "search");
    assert_eq!(search["action"], "update");
    assert_eq!(
        search["changes"],
        serde_json::json!([{"path": "transport", "from": "sse", "to": "streamable-http"}]),
        "{plan:#}"
    );
    let text = lab.plan_text();
    assert!(text.contains("    transport: \"sse\" -> \"streamable-http\"\n"), "{text}");

    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let w = lab.world();
    let svc = &w.services["mcp-prod/search"].state;
    assert_eq!(svc.tags["mcpfleet.io/transport"], "streamable-http");
    let running = w.families["search"].iter().find(|td| td.arn == svc.task_definition).unwrap();
    assert_eq!(running.tags["mcpfleet.io/transport"], "streamable-http", "the revision says what it serves");
    assert_eq!(w.families["search"][0].tags["mcpfleet.io/transport"], "sse", "the earlier revision keeps its own");
    assert_eq!(lab.plan().0, 0);
}

#[test]
fn a_digest_whose_tag_moved_elsewhere_is_deployed_with_a_warning_naming_both() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1")]);
    let pinned = lab.world().repositories[&format!("{ECR}/search")].tags["v0.9.1"].clone();
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1")]);
    let moved = lab.world().repositories[&format!("{ECR}/search")].tags["v0.9.1"].clone();
    assert_ne!(pinned, moved);
    lab.edit_manifest("search.yaml", "search:v0.9.0", &format!("search:v0.9.1@{pinned}"));
    let m = lab.manifests();
    let warned = |stderr: &[u8]| {
        let stderr = String::from_utf8_lossy(stderr);
        assert!(
            stderr.contains("warning: service `search`")
                && stderr.contains(&format!("tag `v0.9.1` now points to {moved}"))
                && stderr.contains(&format!("the pinned digest {pinned} is deployed")),
            "{stderr}"
        );
    };
    for cmd in ["plan", "apply"] {
        let out = lab.run(&[cmd, "-f", m.to_str().unwrap(), "--wait"][..if cmd == "plan" { 3 } else { 4 }]);
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
        warned(&out.stderr);
    }
    let w = lab.world();
    let svc = &w.services["mcp-prod/search"].state;
    let running = w.families["search"].iter().find(|td| td.arn == svc.task_definition).unwrap();
    assert!(running.spec.container_definitions[0].image.ends_with(&format!("@{pinned}")), "the digest wins");
    // No warning while the tag and the digest agree.
    lab.edit_manifest("search.yaml", &format!("@{pinned}"), &format!("@{moved}"));
    let out = lab.run(&["plan", "-f", m.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn labels_are_desired_state_and_only_mcpfleets_own_tags_are_removed() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    // Someone else tags the service (a cost allocation tag): mcpfleet never owned it.
    {
        let arn = lab.world().services["mcp-prod/search"].state.arn.clone();
        let sim = mcpfleet::backend::sim::Sim::open(&lab.state()).unwrap();
        sim.with_world(true, |w| w.tag_resource(&arn, &[("cost-center".to_string(), "42".to_string())].into()))
            .unwrap()
            .unwrap();
    }
    lab.edit_manifest("search.yaml", "    team: platform\n", "    team: search\n    tier: gold\n");
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "{plan:#}");
    let search = entry(&plan, "mcp-prod", "search");
    assert_eq!(search["action"], "update");
    assert_eq!(
        search["changes"],
        serde_json::json!([
            {"path": "labels.team", "from": "platform", "to": "search"},
            {"path": "labels.tier", "from": null, "to": "gold"}
        ]),
        "{plan:#}"
    );
    let text = lab.plan_text();
    assert!(text.contains("    labels.team: \"platform\" -> \"search\"\n"), "{text}");

    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(outcomes(&doc)[2], ("search".to_string(), "updated".to_string()));
    assert_eq!(doc["apiCalls"]["calls"].get("UpdateService"), None, "labels alone are only tags");
    assert_eq!(doc["apiCalls"]["calls"].get("RegisterTaskDefinition"), None);
    let w = lab.world();
    let svc = &w.services["mcp-prod/search"].state;
    let td = w.families["search"].iter().find(|td| td.arn == svc.task_definition).unwrap();
    for tags in [&svc.tags, &td.tags] {
        assert_eq!((tags["team"].as_str(), tags["tier"].as_str()), ("search", "gold"), "{tags:?}");
    }
    assert_eq!(svc.tags["cost-center"], "42");
    assert_eq!(lab.plan().0, 0, "converged");

    lab.edit_manifest("search.yaml", "    tier: gold\n", "");
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "{plan:#}");
    let search = entry(&plan, "mcp-prod", "search");
    assert_eq!(search["changes"], serde_json::json!([{"path": "labels.tier", "from": "gold", "to": null}]));
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(doc["apiCalls"]["calls"]["UntagResource"].as_u64() >= Some(1), "{doc:#}");
    let w = lab.world();
    let svc = &w.services["mcp-prod/search"].state;
    let td = w.families["search"].iter().find(|td| td.arn == svc.task_definition).unwrap();
    assert!(!svc.tags.contains_key("tier") && !td.tags.contains_key("tier"), "{:?}", svc.tags);
    assert_eq!(svc.tags["team"], "search");
    assert_eq!(svc.tags["cost-center"], "42", "a tag mcpfleet did not put there stays");
    assert_eq!(lab.plan().0, 0);
}

#[test]
fn service_connect_is_applied_reported_as_an_endpoint_and_removed_by_an_update() {
    // The example fleet puts every service in the `mcp.internal` namespace, and documents behind the target group
    // the quickstart makes, which probes its readiness path: no warning.
    let lab = Lab::new();
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["warnings"], serde_json::json!([]), "{doc:#}");
    let w = lab.world();
    let tg = w.target_groups.values().find(|g| g.name == TARGET_GROUP).unwrap().arn.clone();
    let dns = w.load_balancers.values().next().unwrap().dns_name.clone();
    let sc = w.services["mcp-prod/documents"].state.service_connect_configuration.clone().unwrap();
    assert!(sc.enabled);
    assert_eq!(sc.namespace.as_deref(), Some("mcp.internal"));
    assert_eq!(sc.services[0].port_name, "mcp");
    assert_eq!(sc.services[0].client_aliases[0].dns_name.as_deref(), Some("documents.mcp.internal"));

    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "--detailed-exitcode: converged with Service Connect: {plan:#}");
    let status = lab.ok(&["status", "-f", lab.manifests().to_str().unwrap(), "-o", "json"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    let endpoints = |name: &str| {
        status["services"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["endpoints"].clone()
    };
    assert_eq!(
        endpoints("documents"),
        serde_json::json!([
            {"kind": "loadBalancer", "targetGroupArn": tg, "dnsName": dns},
            {"kind": "serviceConnect", "url": "http://documents.mcp.internal:8080"},
        ])
    );
    assert_eq!(
        endpoints("search"),
        serde_json::json!([{"kind": "serviceConnect", "url": "http://search.mcp.internal:3000"}])
    );
    let table = lab.ok(&["status", "-f", lab.manifests().to_str().unwrap()]);
    assert!(table.lines().next().unwrap().ends_with("ENDPOINT"), "{table}");
    let row = table.lines().find(|l| l.starts_with("database ")).unwrap();
    assert!(row.ends_with(" http://database.mcp.internal:8080"), "{table}");

    // One service moves to its own alias and port: only it is updated, in place.
    lab.edit_manifest("search.yaml", "  port: ", "  expose: { serviceConnect: { dnsName: find, port: 80 } }\n  port: ");
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "{plan:#}");
    let search = plan["services"].as_array().unwrap().iter().find(|s| s["name"] == "search").unwrap();
    assert_eq!(search["action"], "update", "{plan:#}");
    assert!(
        plan["services"].as_array().unwrap().iter().filter(|s| s["name"] != "search").all(|s| s["action"] == "noop")
    );
    // Its tasks are started again on the same revision, as ECS does for new Service Connect settings, and the
    // rollout is watched like any other.
    let before = lab.world().services["mcp-prod/search"].state.clone();
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(entry(&doc, "mcp-prod", "search")["outcome"], "updated", "{doc:#}");
    let after = lab.world().services["mcp-prod/search"].state.clone();
    assert_eq!(after.task_definition, before.task_definition);
    assert_ne!(after.deployments[0].id, before.deployments[0].id, "a new deployment");
    assert_eq!((after.deployments.len(), after.running_count), (1, 1));
    assert_eq!(after.deployments[0].rollout_state, mcpfleet::backend::RolloutState::Completed);

    // Removing it from the fleet plans an update of every service, and apply turns it off.
    lab.edit_manifest("fleet.yaml", "  expose:\n    serviceConnect:\n      namespace: mcp.internal\n", "");
    std::fs::copy("manifests/search.yaml", lab.manifests().join("search.yaml")).unwrap();
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "{plan:#}");
    assert!(plan["services"].as_array().unwrap().iter().all(|s| s["action"] == "update"), "{plan:#}");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let w = lab.world();
    assert_eq!(
        w.services["mcp-prod/documents"].state.service_connect_configuration.as_ref().map(|c| c.enabled),
        Some(false)
    );
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "{plan:#}");
    let status = lab.ok(&["status", "-f", lab.manifests().to_str().unwrap(), "-o", "json"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    // Only documents' load balancer is left.
    for s in status["services"].as_array().unwrap() {
        let kinds: Vec<&str> = s["endpoints"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        let want: &[&str] = if s["name"] == "documents" { &["loadBalancer"] } else { &[] };
        assert_eq!(kinds, want, "{status:#}");
    }
}

#[test]
fn a_load_balancer_is_resolved_checked_before_any_write_and_applied() {
    let lab = Lab::new();
    let m = lab.manifests();
    // documents.yaml as the example has it, behind target group `tg` instead of the example's.
    let example_line = format!("      - targetGroup: {TARGET_GROUP}");
    let attach = |tg: &str| {
        std::fs::copy("manifests/documents.yaml", m.join("documents.yaml")).unwrap();
        lab.edit_manifest("documents.yaml", &example_line, &format!("      - targetGroup: {tg}"));
    };
    let example = std::fs::read_to_string("manifests/documents.yaml").unwrap();
    let line = example.lines().position(|l| l.starts_with(&example_line)).unwrap() + 1;
    lab.ok(&["sim", "target-group", "legacy", "--target-type", "instance"]);
    lab.ok(&["sim", "target-group", "orphan", "--health-path", "/ready", "--no-load-balancer"]);
    let before = std::fs::read(lab.state()).unwrap();
    for (tg, why) in [
        ("nope", "target group `nope` not found".to_string()),
        ("legacy", "has target type `instance`; Fargate tasks register only in `ip` target groups".into()),
        ("orphan", "is not attached to a load balancer".into()),
    ] {
        attach(tg);
        let out = lab.run(&["apply", "-f", m.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{tg}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let at = format!("documents.yaml:{line}): spec.expose.loadBalancers[0].targetGroup: ");
        assert!(stderr.contains(&at) && stderr.contains(&why), "{tg}: {stderr}");
        let header = "error: 1 problem resolving the fleet's references (1 target group); nothing was changed:\n";
        assert!(stderr.starts_with(header), "the header names what failed: {stderr}");
        assert_eq!(std::fs::read(lab.state()).unwrap(), before, "{tg}: the sim state must be byte-identical");
    }

    // A target group probing another path than readiness is applied, with a warning.
    let arn = lab.ok(&["sim", "target-group", "mcp-liveness", "--health-path", "/health"]).trim().to_string();
    attach("mcp-liveness");
    let out = lab.run(&["apply", "-f", m.to_str().unwrap(), "--wait", "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let applied: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("warning: service `documents`")
            && stderr.contains(
                "target group `mcp-liveness` health-checks `/health`, not the service's readiness.path `/ready`"
            ),
        "{stderr}"
    );
    let w = lab.world();
    let svc = &w.services["mcp-prod/documents"].state;
    assert_eq!(svc.load_balancers.len(), 1);
    assert_eq!(svc.load_balancers[0].target_group_arn, arn);
    assert_eq!(
        (svc.load_balancers[0].container_name.as_str(), svc.load_balancers[0].container_port),
        ("documents", 8080)
    );
    assert_eq!(svc.health_check_grace_period_seconds, Some(15), "the health check's startPeriod");
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "converged with a load balancer: {plan:#}");
    // -o json lists the warnings printed on stderr.
    let listed = plan["warnings"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{plan:#}");
    let listed = listed[0].as_str().unwrap();
    assert!(
        listed.starts_with("service `documents` (")
            && listed.contains("documents.yaml:")
            && listed.contains("health-checks `/health`, not the service's readiness.path `/ready`"),
        "{plan:#}"
    );
    assert!(stderr.contains(&format!("warning: {listed}")), "the same text as on stderr: {stderr}");
    assert_eq!(applied["warnings"], serde_json::json!([listed]), "apply -o json lists it too: {applied:#}");

    // status: the load balancer comes first among the endpoints, with the DNS name of the ALB routing to it, and
    // it is what the table shows.
    let dns = w.load_balancers.values().next().unwrap().dns_name.clone();
    let (code, status) = lab.json(&["status", "-f", m.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 0, "{status:#}");
    let docs = status["services"].as_array().unwrap().iter().find(|s| s["name"] == "documents").unwrap();
    assert_eq!(
        docs["endpoints"],
        serde_json::json!([
            {"kind": "loadBalancer", "targetGroupArn": arn, "dnsName": dns},
            {"kind": "serviceConnect", "url": "http://documents.mcp.internal:8080"},
        ]),
        "{status:#}"
    );
    assert_eq!(status["apiCalls"]["calls"]["DescribeTargetGroups"], 1, "{:#}", status["apiCalls"]);
    let table = lab.ok(&["status", "-f", m.to_str().unwrap()]);
    let line = table.lines().find(|l| l.starts_with("documents ")).unwrap();
    assert!(line.ends_with(&format!(" {dns}")), "{table}");
    let line = table.lines().find(|l| l.starts_with("search ")).unwrap();
    assert!(line.ends_with(" http://search.mcp.internal:3000"), "{table}");

    // Removing it is an update that detaches it.
    let expose = example.find("  expose:\n").unwrap();
    let readiness = example.find("  readiness:\n").unwrap();
    assert!(example[expose..readiness].lines().all(|l| l == "  expose:" || l.starts_with("    ")), "{example}");
    std::fs::write(m.join("documents.yaml"), format!("{}{}", &example[..expose], &example[readiness..])).unwrap();
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "{plan:#}");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["warnings"], serde_json::json!([]), "no target group, no warning: {doc:#}");
    let w = lab.world();
    let svc = &w.services["mcp-prod/documents"].state;
    assert!(svc.load_balancers.is_empty());
    assert_eq!(svc.health_check_grace_period_seconds, Some(0));
    assert_eq!(lab.plan().0, 0);
}

#[test]
fn the_example_stdio_server_rolls_out_with_its_bridge_installer_and_a_new_bridge_image_rolls_it_again() {
    let lab = Lab::new();
    std::fs::copy("manifests/everything.yaml", lab.manifests().join("everything.yaml")).unwrap();
    lab.ok(&["sim", "push", &format!("{ECR}/everything:2026.8.31")]);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let w = lab.world();
    let svc = &w.services["mcp-prod/everything"];
    assert_eq!(svc.state.running_count, 1);
    let td = &w.families["everything"].iter().find(|t| t.arn == svc.state.task_definition).unwrap().spec;
    let names: Vec<&str> = td.container_definitions.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["everything", "mcpfleet-bridge"]);
    assert_eq!(td.container_definitions[0].command, ["node", "/app/dist/index.js", "stdio"]);
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "converged: {plan:#}");

    // A new mcpfleet release (another bridge image) is a new revision of every stdio service, and of nothing else.
    let new_digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let fleet = std::fs::read_to_string(lab.manifests().join("fleet.yaml")).unwrap();
    let old = fleet.split("mcpfleet@").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    lab.edit_manifest("fleet.yaml", &old, new_digest);
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "{plan:#}");
    let changed: Vec<&str> = plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] != "noop")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["everything"], "{plan:#}");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let w = lab.world();
    let running = &w.services["mcp-prod/everything"].state.task_definition;
    let td = &w.families["everything"].iter().find(|t| &t.arn == running).unwrap().spec;
    assert!(td.container_definitions[1].image.ends_with(new_digest), "{td:#?}");
}
