//! Secret rotation on the sim backend, through the real binary: a rotated secret restarts exactly the services that
//! read it by stage (a `versionId` reference and a `secretRotation: ignore` service stay as they are), restarts
//! are spread by `--rotation-concurrency`, a failed restart is reported loudly and holds nothing, and the
//! controller restarts within one pass.

mod common;

use serde_json::Value;

use common::controller::Controller;
use common::lab::{Lab, entry, outcomes};

const SHARED: &str = "prod/mcp/db-password";

/// `sim secret NAME --rotate [--breaks]`: (old, new) version ids.
fn rotate(lab: &Lab, name: &str, breaks: bool) -> (String, String) {
    let mut args = vec!["sim", "secret", name, "--rotate"];
    if breaks {
        args.push("--breaks");
    }
    let out = lab.ok(&args);
    let (_, versions) = out.trim().split_once("AWSCURRENT ").unwrap_or_else(|| panic!("{out}"));
    let (old, new) = versions.split_once(" -> ").unwrap();
    (old.to_string(), new.split_whitespace().next().unwrap().to_string())
}

/// Adds a copy of search.yaml as service `name`, reading `reference` as DB_PASSWORD, with `extra` spec lines.
fn add_reader(lab: &Lab, name: &str, reference: &str, extra: &str) {
    let search = std::fs::read_to_string(lab.manifests().join("search.yaml")).unwrap();
    let text = search.replacen("name: search", &format!("name: {name}"), 1).replacen(
        "    SEARCH_API_KEY: prod/mcp/search-api-key\n",
        &format!("    SEARCH_API_KEY: prod/mcp/search-api-key\n    DB_PASSWORD: {reference}\n{extra}"),
        1,
    );
    std::fs::write(lab.manifests().join(format!("{name}.yaml")), text).unwrap();
}

/// The fleet of these tests: the shared secret read by `database` (as the examples do), by `search` and two
/// copies of it (one by an explicit `versionStage`); `pinned` reads a fixed `versionId`, `steady` ignores
/// rotations. Returns the version `pinned` reads.
fn shared_fleet(lab: &Lab) -> String {
    // A first rotation gives a version id to pin (the sim's first version is derived, never printed).
    let (_, pinned) = rotate(lab, SHARED, false);
    add_reader(lab, "staged", &format!("{{ secret: {SHARED}, versionStage: AWSCURRENT }}"), "");
    add_reader(lab, "plain", SHARED, "");
    add_reader(lab, "pinned", &format!("{{ secret: {SHARED}, versionId: {pinned} }}"), "");
    add_reader(lab, "steady", SHARED, "  secretRotation: ignore\n");
    lab.edit_manifest(
        "search.yaml",
        "    SEARCH_API_KEY: prod/mcp/search-api-key\n",
        &format!("    SEARCH_API_KEY: prod/mcp/search-api-key\n    DB_PASSWORD: {SHARED}\n"),
    );
    pinned
}

fn action(plan: &Value, name: &str) -> (String, Option<String>) {
    let s = entry(plan, "mcp-prod", name);
    (s["action"].as_str().unwrap().to_string(), s["reason"].as_str().map(String::from))
}

#[test]
fn a_rotation_restarts_exactly_the_services_that_read_it_spread_by_the_concurrency() {
    let lab = Lab::new();
    shared_fleet(&lab);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(lab.plan().0, 0, "converged");
    let w = lab.world();
    let recorded = w.services["mcp-prod/database"].state.tags["mcpfleet.io/secret-versions"].clone();
    assert!(recorded.len() < 64, "one compact tag: {recorded}");

    let (old, new) = rotate(&lab, SHARED, false);
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "--detailed-exitcode: a restart is a change\n{plan:#}");
    let restart = ("update".to_string(), Some("secretRotated".to_string()));
    for name in ["database", "search", "staged", "plain"] {
        assert_eq!(action(&plan, name), restart, "{name}: {plan:#}");
        let rotated = &entry(&plan, "mcp-prod", name)["rotatedSecrets"][0];
        assert_eq!(rotated["secret"], SHARED, "{rotated}");
        assert_eq!(rotated["stage"], "AWSCURRENT", "{rotated}");
        assert_eq!(rotated["from"].as_str().unwrap(), &old.replace('-', "")[..12], "{rotated}");
        assert_eq!(rotated["to"].as_str().unwrap(), &new.replace('-', "")[..12], "{rotated}");
    }
    for name in ["documents", "pinned", "steady"] {
        assert_eq!(action(&plan, name), ("noop".to_string(), None), "{name}: {plan:#}");
    }
    let text = lab.plan_text();
    let line = format!(
        "~ database (mcp-prod): restart - secret {SHARED} rotated (AWSCURRENT {}… → {}…)",
        &old[..8],
        &new[..8]
    );
    assert!(text.contains(&line), "{line}\nnot in:\n{text}");

    // status shows which services still run the old version, `ignore` ones included.
    let stale = |lab: &Lab| -> Vec<(String, usize)> {
        let m = lab.manifests();
        let (code, doc) = lab.json(&["status", "-f", m.to_str().unwrap(), "-o", "json"]);
        assert_eq!(code, 0, "{doc:#}");
        let rows = doc["services"].as_array().unwrap().iter();
        rows.map(|r| (r["name"].as_str().unwrap().to_string(), r["staleSecrets"].as_array().unwrap().len())).collect()
    };
    let stale_before = stale(&lab);
    let all = ["database", "documents", "pinned", "plain", "search", "staged", "steady"];
    let restarting = ["database", "plain", "search", "staged", "steady"];
    let expected = |stale: &[&str]| -> Vec<(String, usize)> {
        all.iter().map(|n| (n.to_string(), usize::from(stale.contains(n)))).collect()
    };
    assert_eq!(stale_before, expected(&restarting));

    let (code, doc) = lab.apply(&["--wait", "--rotation-concurrency", "2"]);
    assert_eq!(code, 0, "{doc:#}");
    let restarted: Vec<String> =
        outcomes(&doc).into_iter().filter(|(_, o)| o == "updated").map(|(name, _)| name).collect();
    assert_eq!(restarted, ["database", "plain", "search", "staged"], "{doc:#}");
    let message = entry(&doc, "mcp-prod", "plain")["message"].as_str().unwrap().to_string();
    assert!(message.starts_with(&format!("restarted: secret {SHARED} rotated")), "{message}");
    assert!(message.ends_with("; rollout completed"), "{message}");
    assert_eq!(doc["apiCalls"]["calls"]["UpdateService"], 4, "{:#}", doc["apiCalls"]);
    assert_eq!(doc["apiCalls"]["calls"].get("RegisterTaskDefinition"), None, "a restart keeps the revision");

    // Two at a time: the third and fourth started once the first two had completed.
    let w = lab.world();
    let mut deployments: Vec<(u64, u64)> = restarted
        .iter()
        .map(|name| {
            let s = &w.services[&format!("mcp-prod/{name}")].state;
            assert_eq!(s.deployments.len(), 1, "{name}");
            assert_eq!(s.task_definition, w.families[name.as_str()][0].arn, "{name} keeps its revision");
            (s.deployments[0].created_at_ms, s.deployments[0].updated_at_ms)
        })
        .collect();
    deployments.sort();
    let first_done = deployments[..2].iter().map(|d| d.1).max().unwrap();
    assert!(deployments[2].0 >= first_done && deployments[3].0 >= first_done, "not spread: {deployments:?}");
    for name in ["documents", "pinned", "steady"] {
        let s = &w.services[&format!("mcp-prod/{name}")].state;
        assert!(s.deployments[0].created_at_ms < deployments[0].0, "{name} was restarted");
    }
    // One restart per rotation: nothing is left to do, and only the service that ignores rotations is stale.
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "{plan:#}");
    assert_eq!(stale(&lab), expected(&["steady"]));
}

#[test]
fn a_failed_restart_is_reported_holds_nothing_and_is_not_retried() {
    let lab = Lab::new();
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let before = lab.world().services["mcp-prod/search"].state.clone();

    rotate(&lab, "prod/mcp/search-api-key", true);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "a failed restart is a failed rollout\n{doc:#}");
    let search = entry(&doc, "mcp-prod", "search");
    assert_eq!(search["outcome"], "failed", "{search}");
    let message = search["message"].as_str().unwrap();
    assert!(message.starts_with("restart for a rotated secret failed: "), "{message}");
    assert!(message.contains("ResourceInitializationError"), "the tasks' reason: {message}");
    assert!(message.contains("not rolled back"), "{message}");
    for name in ["database", "documents"] {
        assert_eq!(entry(&doc, "mcp-prod", name)["outcome"], "unchanged", "{doc:#}");
    }

    // Nothing held or marked failed; the old tasks keep serving; the same rotation is not restarted again.
    let w = lab.world();
    let s = &w.services["mcp-prod/search"].state;
    assert!(!s.tags.contains_key("mcpfleet.io/failed-spec-hash"), "{:?}", s.tags);
    assert_eq!(s.tags["mcpfleet.io/last-good"], before.tags["mcpfleet.io/last-good"]);
    assert_eq!(w.families["search"].len(), 1);
    assert!(
        !w.families["search"][0].tags.contains_key("mcpfleet.io/outcome")
            || w.families["search"][0].tags["mcpfleet.io/outcome"] == "completed"
    );
    assert!(s.running_count >= s.desired_count, "the old tasks keep running: {s:?}");
    let (code, plan) = lab.plan();
    assert_eq!((code, action(&plan, "search")), (0, ("noop".to_string(), None)), "{plan:#}");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "reported once, not again: {doc:#}");
    assert_eq!(entry(&doc, "mcp-prod", "search")["outcome"], "unchanged", "{doc:#}");

    // A fixed value, rotated in, restarts it again, and this time it completes.
    rotate(&lab, "prod/mcp/search-api-key", false);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(entry(&doc, "mcp-prod", "search")["outcome"], "updated", "{doc:#}");
}

#[test]
fn the_controller_restarts_within_one_pass_and_counts_restarts() {
    let lab = Lab::new();
    let c = Controller::start_with(&lab, &["--cache-ttl", "0s"]);
    c.wait_for("the fleet to converge", || {
        let w = lab.world();
        w.services.len() == 3
            && w.services
                .values()
                .all(|s| s.state.deployments.len() == 1 && s.state.running_count == s.state.desired_count)
            && c.metric("mcpfleet_services{state=\"converged\"}") == 3.0
    });
    assert_eq!(c.metric("mcpfleet_secret_restarts_total{outcome=\"started\"}"), 0.0);
    // The rotation takes the sim's lock, so it lands between two passes: every pass counted now ran before it.
    rotate(&lab, SHARED, false);
    let before = c.passes();
    let line = c.json_log_line("restarting for a rotated secret");
    assert_eq!(line["fields"]["service"], "database", "{line}");
    assert_eq!(line["span"]["pass"].as_f64(), Some(before + 1.0), "not the next pass: {line}");
    c.wait_for("the restart to complete", || c.metric("mcpfleet_secret_restarts_total{outcome=\"completed\"}") >= 1.0);
    assert_eq!(c.metric("mcpfleet_secret_restarts_total{outcome=\"started\"}"), 1.0, "only database reads it");
    assert_eq!(c.metric("mcpfleet_secret_restarts_total{outcome=\"failed\"}"), 0.0);
    let w = lab.world();
    assert_eq!(w.families["database"].len(), 1, "a restart keeps the revision");
}
