//! The MCP rollout gate end to end: the binary on the sim, whose tasks stand for real MCP servers (the official
//! Python SDK's, `scripts/mcp_servers.py`) through `sim push --serves`. A verified rollout records its tools; a
//! missing expected tool or a tool the last good revision offered rolls back with the reason, `apply --wait`
//! exiting 3; `allowToolRemoval` lets a removal through; and the controller does the same, then re-probes and
//! reports a server that stops answering without rolling anything back.
//!
//! Nothing sleeps and hopes: `apply --wait` returns when it decided, and the controller is waited on through what
//! a user sees (the sim's state, `status`, `/readyz`, `/metrics`).

mod common;

use common::controller::Controller;
use common::lab::{ECR, Lab, entry};
use common::mcp::{McpServer, Sdk};
use common::metrics;
use serde_json::Value;

const TOOLS: &str = "search_documents,get_document";

/// A Python MCP server (mcp 2.x) offering `tools`.
fn server(tools: &str) -> McpServer {
    McpServer::python(Sdk::V2, &["--tools", tools, "--name", "documents"])
}

/// Pushes `documents:TAG` standing for `server`, and points the manifest at it.
fn push_documents(lab: &Lab, tag: &str, server: &McpServer) {
    lab.ok(&["sim", "push", &format!("{ECR}/documents:{tag}"), "--serves", &server.url]);
    let text = std::fs::read_to_string(lab.manifests().join("documents.yaml")).unwrap();
    let old = text.split("documents:").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    if old != tag {
        lab.edit_manifest("documents.yaml", &format!("documents:{old}"), &format!("documents:{tag}"));
    }
}

/// Verifies documents' rollouts (`mcp` block, written under `spec`).
fn verify_documents(lab: &Lab, mcp: &str) {
    lab.edit_manifest("documents.yaml", "  stopTimeout: 30s\n", &format!("  stopTimeout: 30s\n  mcp:\n{mcp}"));
}

fn documents(doc: &Value) -> &Value {
    entry(doc, "mcp-prod", "documents")
}

/// The sim's documents service.
fn service(lab: &Lab) -> mcpfleet::backend::ServiceState {
    lab.world().services["mcp-prod/documents"].state.clone()
}

/// The tags of documents' revision `n`.
fn revision_tags(lab: &Lab, n: u32) -> mcpfleet::backend::Tags {
    lab.world().families["documents"].iter().find(|td| td.revision == n).unwrap().tags.clone()
}

fn tool_record(lab: &Lab, n: u32) -> Option<mcpfleet::state::ToolRecord> {
    mcpfleet::state::ToolRecord::parse(&revision_tags(lab, n))
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn status_of(lab: &Lab) -> Value {
    let (code, doc) = lab.json(&["status", "--cluster", "mcp-prod", "-o", "json"]);
    assert_eq!(code, 0, "{doc:#}");
    doc["services"].as_array().unwrap().iter().find(|s| s["name"] == "documents").unwrap().clone()
}

fn history(lab: &Lab) -> Vec<Value> {
    let (code, doc) = lab.json(&["history", "documents", "--cluster", "mcp-prod", "-o", "json"]);
    assert_eq!(code, 0, "{doc:#}");
    doc["revisions"].as_array().unwrap().clone()
}

fn warnings(doc: &Value) -> Vec<&str> {
    doc["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect()
}

#[test]
fn a_verified_rollout_records_its_tools_and_warns_of_a_stateful_server_behind_a_load_balancer() {
    // mcp 1.x knows only the handshake, and issues a session id unless it is told not to.
    let v1 = McpServer::python(Sdk::V1, &["--tools", TOOLS, "--name", "documents"]);
    let v2 = McpServer::python(Sdk::V1, &["--tools", TOOLS, "--name", "documents", "--stateless"]);
    let lab = Lab::new();
    push_documents(&lab, "v1.4.2", &v1);
    verify_documents(&lab, "    verify: tasks\n    expectTools: [search_documents, get_document]\n");
    // The example fleet's documents already sits behind the lab's `mcp-documents` target group.

    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(documents(&doc)["outcome"], "created");
    let message = documents(&doc)["message"].as_str().unwrap();
    assert!(message.ends_with("rollout completed; MCP verification passed (2 tools)"), "{message}");
    // The server issued a session id, and two tasks share the target group.
    assert!(
        warnings(&doc).iter().any(|w| w.starts_with(
            "documents: the MCP server is stateful (it issued a session id) and 2 tasks share a load balancer"
        )),
        "{doc:#}"
    );

    // The tools are on the revision, and the result on the service.
    assert_eq!(
        tool_record(&lab, 1),
        Some(mcpfleet::state::ToolRecord::Names(names(&["get_document", "search_documents"])))
    );
    assert_eq!(revision_tags(&lab, 1)["mcpfleet.io/tools-1"], "get_document/search_documents");
    let s = status_of(&lab);
    assert_eq!(s["tools"], 2);
    assert_eq!(s["verification"]["result"], "passed");
    assert_eq!(s["verification"]["revision"], "documents:1");
    assert_eq!(s["lastGood"], s["taskDefinition"]);
    let table = lab.ok(&["status", "--cluster", "mcp-prod"]);
    let row = table.lines().find(|l| l.starts_with("documents ")).unwrap();
    assert!(row.contains("    2  passed 2026-"), "{table}");
    let revs = history(&lab);
    assert_eq!(
        revs[0]["tools"],
        serde_json::json!({"count": 2, "comparedTo": null, "added": ["get_document", "search_documents"], "removed": []})
    );

    // Nothing changed: the next apply writes nothing.
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(common::lab::writes(&doc), 0, "{doc:#}");

    // A stateless server behind the same load balancer is no cause for a warning; the same tools, none changed.
    push_documents(&lab, "v1.5.0", &v2);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(warnings(&doc).iter().all(|w| !w.contains("stateful")), "{doc:#}");
    let revs = history(&lab);
    assert_eq!(
        revs[0]["tools"],
        serde_json::json!({"count": 2, "comparedTo": "documents:1", "added": [], "removed": []})
    );
}

#[test]
fn a_missing_expected_tool_rolls_back_with_the_reason_and_exit_3() {
    let v1 = server(TOOLS);
    let v2 = server("search_documents");
    let lab = Lab::new();
    push_documents(&lab, "v1.4.2", &v1);
    verify_documents(&lab, "    verify: tasks\n    expectTools: [search_documents, get_document]\n");
    assert_eq!(lab.apply(&["--wait"]).0, 0);

    push_documents(&lab, "v1.5.0", &v2);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let d = documents(&doc);
    assert_eq!(d["outcome"], "rolled_back");
    let message = d["message"].as_str().unwrap();
    assert!(message.starts_with("rollout failed: MCP verification failed: "), "{message}");
    // `<task id> at <address>`: the task's address is the one its image serves (the v2 server's).
    let address = v2.url.trim_start_matches("http://").trim_end_matches("/mcp");
    assert!(
        message.contains(&format!(" at {address}: missing expected tools: get_document; rolled back to documents:1")),
        "{message}"
    );

    let s = service(&lab);
    assert!(s.task_definition.ends_with("documents:1"), "back on the last good revision");
    assert!(s.tags.contains_key("mcpfleet.io/failed-spec-hash"), "the failed spec is held");
    let st = status_of(&lab);
    assert_eq!(st["verification"]["result"], "failed");
    assert_eq!(st["verification"]["revision"], "documents:2");
    assert!(st["verification"]["reason"].as_str().unwrap().ends_with("missing expected tools: get_document"), "{st:#}");
    // What the failed revision offered is recorded too: history shows the tool it lost.
    let revs = history(&lab);
    assert_eq!((revs[0]["revision"].as_u64(), revs[0]["outcome"].as_str()), (Some(2), Some("rolled_back")));
    assert_eq!(revs[0]["tools"]["comparedTo"], "documents:1");
    assert_eq!(revs[0]["tools"]["removed"], serde_json::json!(["get_document"]));
    let text = lab.ok(&["history", "documents", "--cluster", "mcp-prod"]);
    assert!(text.contains("documents:2: tools added since documents:1: -; removed: get_document"), "{text}");

    // Held: the same spec is not tried again.
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!((code, common::lab::writes(&doc)), (0, 0), "{doc:#}");
}

#[test]
fn a_tool_the_last_good_revision_offered_cannot_disappear_unless_removal_is_allowed() {
    let v1 = server("search_documents,get_document,summarize");
    let v2 = server(TOOLS);
    let lab = Lab::new();
    push_documents(&lab, "v1.4.2", &v1);
    verify_documents(&lab, "    verify: tasks\n    expectTools: [search_documents]\n");
    assert_eq!(lab.apply(&["--wait"]).0, 0);

    push_documents(&lab, "v1.5.0", &v2);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let message = documents(&doc)["message"].as_str().unwrap();
    assert!(
        message.contains(": no longer offers a tool that documents:1 offered: summarize (set mcp.allowToolRemoval: true to accept); rolled back to documents:1"),
        "{message}"
    );
    assert!(service(&lab).task_definition.ends_with("documents:1"));

    // Allowing the removal changes the spec: the held revision is rolled out again, and passes.
    lab.edit_manifest(
        "documents.yaml",
        "    expectTools: [search_documents]\n",
        "    expectTools: [search_documents]\n    allowToolRemoval: true\n",
    );
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(documents(&doc)["outcome"], "updated");
    assert!(documents(&doc)["message"].as_str().unwrap().ends_with("MCP verification passed (2 tools)"), "{doc:#}");
    let s = service(&lab);
    assert!(
        s.task_definition.ends_with("documents:2"),
        "the revision that dropped the tool runs: {}",
        s.task_definition
    );
    assert_eq!(mcpfleet::state::ServiceTags::of(&s).last_good, Some(s.task_definition.as_str()));
    assert_eq!(
        tool_record(&lab, 2),
        Some(mcpfleet::state::ToolRecord::Names(names(&["get_document", "search_documents"])))
    );
    let revs = history(&lab);
    assert_eq!(
        (revs[0]["outcome"].as_str(), &revs[0]["tools"]["removed"]),
        (Some("running"), &serde_json::json!(["summarize"]))
    );
}

#[test]
fn a_task_the_gate_cannot_reach_fails_the_rollout() {
    let lab = Lab::new();
    // documents' image serves nothing: ECS (the sim) gives its tasks no address.
    verify_documents(&lab, "    verify: tasks\n");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let message = documents(&doc)["message"].as_str().unwrap();
    assert!(
        message.contains("MCP verification failed: ")
            && message.ends_with(": unreachable: ECS reports no private IPv4 address for the task; no earlier good revision to roll back to"),
        "{message}"
    );
    assert_eq!(documents(&doc)["outcome"], "failed");
}

/// The value of `series`, when the controller exports it.
fn series(c: &Controller, series: &str) -> Option<f64> {
    metrics::find(&metrics::scrape(c.port), series)
}

/// The controller's `/readyz` document.
fn readyz(c: &Controller) -> Value {
    let (_, body) = metrics::get(c.port, "/readyz").expect("/readyz answers");
    serde_json::from_str(&body).unwrap()
}

const SUCCESS: &str = r#"mcpfleet_mcp_probe_success{service="documents",cluster="mcp-prod"}"#;
const TOOL_COUNT: &str = r#"mcpfleet_mcp_tools{service="documents",cluster="mcp-prod"}"#;

#[test]
fn the_controller_gates_rollouts_and_reports_a_failing_server_without_rolling_back() {
    let v1 = server(TOOLS);
    let v2 = server("search_documents");
    let lab = Lab::new();
    push_documents(&lab, "v1.4.2", &v1);
    verify_documents(&lab, "    verify: tasks\n    expectTools: [search_documents, get_document]\n");
    let c = Controller::start_with(&lab, &["--probe-interval", "1s"]);

    // A verified rollout: last good once the gate passed, its tools on the revision, the series exported.
    c.wait_for("documents verified and good", || {
        let s = status_of(&lab);
        s["lastGood"] == s["taskDefinition"] && s["verification"]["result"] == "passed"
    });
    assert!(tool_record(&lab, 1).is_some_and(|r| r.count() == 2));
    c.wait_for("the MCP series", || series(&c, SUCCESS) == Some(1.0) && series(&c, TOOL_COUNT) == Some(2.0));
    let body = metrics::scrape(c.port);
    assert!(
        body.contains(r#"mcpfleet_mcp_probe_duration_seconds_count{service="documents",cluster="mcp-prod"}"#),
        "{body}"
    );

    // A revision without an expected tool is rolled back by the controller, with the reason in its log.
    push_documents(&lab, "v1.5.0", &v2);
    c.wait_for("the rollback to documents:1", || {
        let s = service(&lab);
        s.tags.contains_key("mcpfleet.io/failed-spec-hash") && s.task_definition.ends_with("documents:1")
    });
    c.wait_for("the rollback counted", || series(&c, r#"mcpfleet_rollbacks_total{outcome="started"}"#) == Some(1.0));
    let log = std::fs::read_to_string(&c.log).unwrap();
    assert!(log.contains("MCP verification failed: ") && log.contains("missing expected tools: get_document"), "{log}");

    // The server of the revision that runs stops: the re-probe reports it, and nothing is rolled back.
    c.wait_for("documents settled on documents:1", || status_of(&lab)["rolloutState"] == "COMPLETED");
    drop(v1);
    c.wait_for("the failing probe on /readyz", || {
        readyz(&c)["mcpProbeFailures"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["service"] == "mcp-prod/documents"))
    });
    let readyz = readyz(&c);
    assert_eq!(readyz["ready"], true, "a failing MCP server is the service's problem, not the controller's: {readyz}");
    let failure = &readyz["mcpProbeFailures"][0];
    assert!(failure["reason"].as_str().unwrap().contains("unreachable"), "{readyz}");
    c.wait_for("the failing probe in /metrics", || series(&c, SUCCESS) == Some(0.0));
    assert_eq!(series(&c, r#"mcpfleet_rollbacks_total{outcome="started"}"#), Some(1.0), "no second rollback");
    let s = service(&lab);
    assert!(s.task_definition.ends_with("documents:1"), "still on the revision it ran");
    assert_eq!(status_of(&lab)["verification"]["result"], "failed");
}

#[test]
fn a_long_tool_list_is_recorded_in_parts_and_gives_way_to_labels() {
    // 250 tools (tool_000 … tool_249, listed over three pages): about 2,250 characters of names.
    let v1 = McpServer::python(Sdk::V2, &["--behaviour", "paged", "--name", "documents"]);
    let lab = Lab::new();
    push_documents(&lab, "v1.4.2", &v1);
    verify_documents(&lab, "    verify: tasks\n    expectTools: [tool_000, tool_249]\n");
    // Its secret pinned to a version: a service that reads secrets by stage keeps two service tags for their
    // versions (E2001), and this test needs every label a verified service may have.
    lab.edit_manifest(
        "documents.yaml",
        "key: api_key }",
        "key: api_key, versionId: 0b6a3f1e-2c4d-4e5f-8a9b-0c1d2e3f4a5b }",
    );
    let labels: String = (0..30).map(|i| format!("    l{i:02}: v\n")).collect();
    lab.edit_manifest("documents.yaml", "  labels:\n    team: knowledge\n", &format!("  labels:\n{labels}"));
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(documents(&doc)["message"].as_str().unwrap().ends_with("MCP verification passed (250 tools)"), "{doc:#}");
    let tags = revision_tags(&lab, 1);
    let parts = tags.keys().filter(|k| k.starts_with("mcpfleet.io/tools-")).count();
    assert!(parts >= 9, "{parts} parts: {tags:?}");
    assert!(tags.len() <= 50, "{} tags", tags.len());
    let record = tool_record(&lab, 1).unwrap();
    assert_eq!(record.names().map(<[String]>::len), Some(250));

    // Eight more labels (38, the most a verified service may have) need the room the parts take: the record
    // shrinks to its count, and the labels are applied to the service and the revision it runs.
    let more: String = (30..38).map(|i| format!("    l{i:02}: v\n")).collect();
    lab.edit_manifest("documents.yaml", "    l29: v\n", &format!("    l29: v\n{more}"));
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(documents(&doc)["message"].as_str().unwrap().starts_with("labels updated"), "{doc:#}");
    let tags = revision_tags(&lab, 1);
    assert_eq!(tags["l37"], "v");
    assert!(tags.len() <= 50, "{} tags", tags.len());
    assert_eq!(tool_record(&lab, 1), Some(mcpfleet::state::ToolRecord::Count(250)));
    assert_eq!(
        history(&lab)[0]["tools"],
        serde_json::json!({"count": 250, "comparedTo": null, "added": null, "removed": null})
    );

    // Held to the count: a revision with fewer tools fails, one with as many passes.
    let v2 = McpServer::python(Sdk::V2, &["--tools", "tool_000,tool_249", "--name", "documents"]);
    push_documents(&lab, "v1.5.0", &v2);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let message = documents(&doc)["message"].as_str().unwrap();
    assert!(
        message.contains(": offers 2 tools, fewer than the 250 that documents:1 offered (too many to record by name"),
        "{message}"
    );
}
