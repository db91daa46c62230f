//! `mcpfleet probe` through the binary against real MCP servers: the official Python SDK in both generations
//! (mcp 2.x: the stateless 2026-07-28 revision; mcp 1.x: the 2025 handshake only), JSON and SSE responses,
//! stateless and stateful, the legacy HTTP+SSE transport, pagination, failures of every kind, the reference
//! TypeScript server, and `probe SERVICE --cluster` on the sim with images that `--serves` a real server.

mod common;

use std::time::{Duration, Instant};

use common::lab::{ECR, Lab};
use common::mcp::{McpServer, Sdk};
use common::{json_output, mcpfleet};
use serde_json::Value;

/// `mcpfleet probe ARGS -o json`: (exit code, the document).
fn probe_json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["probe"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = mcpfleet().args(&all).output().unwrap();
    json_output(&all, &out)
}

/// The one target of a URL probe.
fn target(doc: &Value) -> &Value {
    let targets = doc["targets"].as_array().unwrap_or_else(|| panic!("no targets: {doc:#}"));
    assert_eq!(targets.len(), 1, "{doc:#}");
    &targets[0]
}

fn tools(t: &Value) -> Vec<&str> {
    t["tools"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
}

fn timing_keys(t: &Value) -> Vec<&str> {
    t["timingsMs"].as_object().unwrap().keys().map(String::as_str).collect()
}

/// The human output with what changes from run to run (ports, milliseconds) replaced.
fn redacted(text: &str) -> String {
    let port = regex::Regex::new(r"127\.0\.0\.1:\d+").unwrap();
    let ms = regex::Regex::new(r"\d+ms").unwrap();
    ms.replace_all(&port.replace_all(text, "127.0.0.1:PORT"), "Nms").into_owned()
}

const TOOLS: [&str; 2] = ["search_documents", "get_document"];

#[test]
fn streamable_http_in_every_combination_of_sdk_response_kind_and_session() {
    // Started together, probed one by one: the servers' start-up (importing the SDK) is most of the time.
    let mut servers = Vec::new();
    for sdk in [Sdk::V2, Sdk::V1] {
        for json in [false, true] {
            for stateless in [false, true] {
                let mut args = vec!["--name", "documents"];
                if json {
                    args.push("--json-response");
                }
                if stateless {
                    args.push("--stateless");
                }
                servers.push(((sdk, json, stateless), std::thread::spawn(move || McpServer::python(sdk, &args))));
            }
        }
    }
    for ((sdk, json, stateless), server) in servers {
        let server = server.join().unwrap();
        let case = format!("{sdk:?} json={json} stateless={stateless}");
        let (code, doc) = probe_json(&[&server.url, "--expect-tool", "search_documents"]);
        assert_eq!(code, 0, "{case}: {doc:#}");
        let t = target(&doc);
        assert_eq!(t["ok"], true, "{case}");
        assert_eq!(t["error"], Value::Null, "{case}");
        assert_eq!(t["url"], server.url.as_str());
        assert_eq!(t["transport"], "streamable-http");
        assert_eq!(t["server"]["name"], "documents", "{case}");
        assert!(t["server"]["version"].as_str().unwrap().starts_with(sdk.major()), "{case}: {t}");
        assert_eq!(tools(t), TOOLS, "{case}");
        match sdk {
            // mcp 2.x answers server/discover: the stateless revision, which has no sessions at all.
            Sdk::V2 => {
                assert_eq!(t["protocolVersion"], "2026-07-28", "{case}");
                assert_eq!(t["stateful"], false, "{case}");
                assert_eq!(timing_keys(t), ["server/discover", "tools/list", "total"], "{case}");
            }
            // mcp 1.x rejects server/discover as a legacy server does; the probe falls back to initialize, and
            // a stateful server issues a session id.
            Sdk::V1 => {
                assert_eq!(t["protocolVersion"], "2025-11-25", "{case}");
                assert_eq!(t["stateful"], !stateless, "{case}");
                assert_eq!(timing_keys(t), ["initialize", "tools/list", "total"], "{case}");
            }
        }
    }
}

#[test]
fn the_legacy_sse_transport_on_both_sdk_generations() {
    for sdk in [Sdk::V1, Sdk::V2] {
        let server = McpServer::python(sdk, &["--transport", "sse", "--name", "search"]);
        assert!(server.url.ends_with("/sse"), "{}", server.url);
        let (code, doc) = probe_json(&[&server.url, "--transport", "sse", "--expect-tool", "get_document"]);
        assert_eq!(code, 0, "{sdk:?}: {doc:#}");
        let t = target(&doc);
        assert_eq!((t["ok"].clone(), t["transport"].clone()), (Value::Bool(true), Value::from("sse")));
        assert_eq!(t["protocolVersion"], "2025-11-25", "{sdk:?}");
        assert_eq!(t["server"]["name"], "search");
        assert_eq!(t["stateful"], true, "an SSE session lives on one event stream");
        assert_eq!(tools(t), TOOLS);
        assert_eq!(timing_keys(t), ["connect", "initialize", "tools/list", "total"]);

        // A wrong path: the SSE check's GET is answered 404.
        let (code, doc) = probe_json(&[&server.url.replace("/sse", "/nope"), "--transport", "sse"]);
        assert_eq!(code, 1);
        assert_eq!(
            target(&doc)["error"],
            serde_json::json!({"kind": "httpStatus", "message": "HTTP 404 during connect: Not Found", "status": 404,
                               "step": "connect"})
        );

        // The other transport against it is a clear failure, not a hang: the SSE URL does not take POSTs.
        let (code, doc) = probe_json(&[&server.url, "--timeout", "5s"]);
        assert_eq!(code, 1);
        assert_eq!(target(&doc)["error"]["kind"], "httpStatus", "{doc:#}");
        assert_eq!(target(&doc)["error"]["status"], 405, "{doc:#}");
    }
}

#[test]
fn every_page_of_tools_list_is_read() {
    for sdk in [Sdk::V2, Sdk::V1] {
        let server = McpServer::python(sdk, &["--behaviour", "paged"]);
        let (code, doc) = probe_json(&[&server.url, "--expect-tool", "tool_249"]);
        assert_eq!(code, 0, "{sdk:?}: {doc:#}");
        let names = tools(target(&doc));
        let want: Vec<String> = (0..250).map(|i| format!("tool_{i:03}")).collect();
        assert_eq!(names, want, "{sdk:?}: 250 tools over three pages, in order");
    }
    let server = McpServer::python(Sdk::V1, &["--transport", "sse", "--behaviour", "paged"]);
    let (code, doc) = probe_json(&[&server.url, "--transport", "sse"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(tools(target(&doc)).len(), 250, "the SSE check follows nextCursor too");
}

#[test]
fn missing_expected_tools_fail_by_name() {
    let server = McpServer::python(Sdk::V2, &["--tools", "search_documents", "--name", "documents"]);
    let args = [
        server.url.as_str(),
        "--expect-tool",
        "search_documents",
        "--expect-tool",
        "get_document",
        "--expect-tool",
        "delete_document",
    ];
    let (code, doc) = probe_json(&args);
    assert_eq!(code, 1, "{doc:#}");
    let t = target(&doc);
    assert_eq!(t["ok"], false);
    assert_eq!(
        t["error"],
        serde_json::json!({
            "kind": "missingTools",
            "message": "missing tools: delete_document, get_document",
            "tools": ["delete_document", "get_document"],
        })
    );
    assert_eq!(tools(t), ["search_documents"], "what the server does offer is reported");

    let out = mcpfleet().arg("probe").args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(redacted(&String::from_utf8_lossy(&out.stdout)), @r"
    http://127.0.0.1:PORT/mcp
      result     FAILED: missing tools: delete_document, get_document
      protocol   2026-07-28
      server     documents 2.3.0
      stateful   no
      tools (1)  search_documents
      timings    server/discover Nms, tools/list Nms, total Nms
    ");
}

#[test]
fn a_passing_probe_reads_as_a_person_expects() {
    let server = McpServer::python(Sdk::V1, &["--name", "documents"]);
    let out = mcpfleet().args(["probe", &server.url, "--expect-tool", "get_document"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    insta::assert_snapshot!(redacted(&String::from_utf8_lossy(&out.stdout)), @r"
    http://127.0.0.1:PORT/mcp
      result     ok
      protocol   2025-11-25
      server     documents 1.30.0
      stateful   yes (the server issued a session id)
      tools (2)  search_documents, get_document
      timings    initialize Nms, tools/list Nms, total Nms
    ");
}

#[test]
fn a_failing_tools_list_is_reported_with_the_servers_error() {
    for (sdk, says) in [(Sdk::V1, "the tool registry is unavailable"), (Sdk::V2, "Internal server error")] {
        let server = McpServer::python(sdk, &["--behaviour", "error"]);
        let (code, doc) = probe_json(&[&server.url]);
        assert_eq!(code, 1, "{sdk:?}: {doc:#}");
        let t = target(&doc);
        assert_eq!(t["error"]["kind"], "toolList", "{sdk:?}: {doc:#}");
        let message = t["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("tools/list failed: JSON-RPC error") && message.contains(says), "{message}");
        assert!(t["protocolVersion"].is_string(), "the handshake worked and is reported: {t}");
    }
}

#[test]
fn a_server_that_hangs_times_out_in_the_step_it_hangs_in() {
    let server = McpServer::python(Sdk::V2, &["--behaviour", "hang"]);
    let started = Instant::now();
    let (code, doc) = probe_json(&[&server.url, "--timeout", "2s"]);
    let took = started.elapsed();
    assert_eq!(code, 1, "{doc:#}");
    let t = target(&doc);
    assert_eq!(
        t["error"],
        serde_json::json!({"kind": "timeout", "message": "timed out during tools/list", "step": "tools/list"})
    );
    assert_eq!(t["protocolVersion"], "2026-07-28", "what was learnt before the hang is kept");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(10), "the timeout bounds the probe: {took:?}");
    let out = mcpfleet().args(["probe", &server.url, "--timeout", "1s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("result     FAILED: timed out during tools/list (--timeout 1s)"), "{text}");

    // A port that accepts connections and never answers at all: the handshake times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", silent.local_addr().unwrap());
    for (transport, step) in [("streamable-http", "handshake"), ("sse", "connect")] {
        let (code, doc) = probe_json(&[&url, "--transport", transport, "--timeout", "1s"]);
        assert_eq!(code, 1);
        assert_eq!(target(&doc)["error"]["kind"], "timeout", "{transport}: {doc:#}");
        assert_eq!(target(&doc)["error"]["step"], step, "{transport}: {doc:#}");
    }
}

#[test]
fn unreachable_servers_wrong_paths_and_bad_urls_fail_with_the_reason() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for transport in ["streamable-http", "sse"] {
        let (code, doc) = probe_json(&[&format!("http://127.0.0.1:{closed}/mcp"), "--transport", transport]);
        assert_eq!(code, 1);
        let message = target(&doc)["error"]["message"].as_str().unwrap();
        assert_eq!(target(&doc)["error"]["kind"], "unreachable", "{transport}: {doc:#}");
        assert!(message.contains("Connection refused"), "{message}");
    }

    let server = McpServer::python(Sdk::V2, &[]);
    let wrong = server.url.replace("/mcp", "/nope");
    let (code, doc) = probe_json(&[&wrong]);
    assert_eq!(code, 1);
    let error = &target(&doc)["error"];
    assert_eq!((error["kind"].as_str(), error["status"].as_u64()), (Some("httpStatus"), Some(404)), "{doc:#}");
    assert_eq!(error["message"], "HTTP 404 during initialize: Not Found");
    // The SSE check against a Streamable HTTP endpoint: its GET stream is no legacy SSE endpoint.
    let (code, doc) = probe_json(&[&server.url, "--transport", "sse", "--timeout", "5s"]);
    assert_eq!(code, 1, "{doc:#}");
    assert_ne!(target(&doc)["ok"], true);

    let out = mcpfleet().args(["probe", "documents"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`documents` is not a URL") && stderr.contains("--cluster"), "{stderr}");
    let out = mcpfleet().args(["probe", &server.url, "--timeout", "0s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be more than 0s"));
}

#[test]
fn the_reference_server_everything() {
    let server = McpServer::everything();
    let (code, doc) = probe_json(&[&server.url, "--expect-tool", "echo", "--expect-tool", "get-sum"]);
    assert_eq!(code, 0, "{doc:#}");
    let t = target(&doc);
    assert_eq!(t["server"]["name"], "mcp-servers/everything");
    assert_eq!(t["protocolVersion"], "2025-11-25", "a handshake-era server: server/discover falls back");
    assert_eq!(t["stateful"], true, "it issues a session id");
    assert!(tools(t).len() >= 10, "{t}");
}

#[test]
fn a_services_running_tasks_are_probed_at_the_address_their_image_serves() {
    let documents = McpServer::python(Sdk::V2, &["--name", "documents"]);
    let search = McpServer::python(Sdk::V1, &["--transport", "sse", "--name", "search"]);
    let lab = Lab::new();
    lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.4.2"), "--serves", &documents.url]);
    // The SSE server's URL ends in /sse; the probe of a task uses the service's MCP path, /sse for an sse service.
    let out = lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.0"), "--serves", &search.url]);
    assert!(out.contains(&format!("serves {}", search.url)), "{out}");
    assert_eq!(lab.apply(&["--wait"]).0, 0);

    let (code, doc) =
        lab.json(&["probe", "documents", "--cluster", "mcp-prod", "--expect-tool", "get_document", "-o", "json"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!((doc["service"].as_str(), doc["cluster"].as_str()), (Some("documents"), Some("mcp-prod")));
    let targets = doc["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "one per RUNNING task (replicas: 2): {doc:#}");
    let mut arns = Vec::new();
    for t in targets {
        assert_eq!(t["kind"], "task");
        assert_eq!(t["ok"], true, "{t}");
        assert_eq!(t["url"], documents.url.as_str(), "the task's address is the served URL's host and port, at /mcp");
        assert!(t["taskDefinition"].as_str().unwrap().ends_with("task-definition/documents:1"), "{t}");
        assert_eq!(tools(t), TOOLS);
        arns.push(t["task"].as_str().unwrap().to_string());
    }
    assert_ne!(arns[0], arns[1]);
    // documents' load balancer and Service Connect alias exist only in the sim's state: listed, not probed.
    let not_probed: Vec<(&str, &str)> = doc["notProbed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["kind"].as_str().unwrap(), n["url"].as_str().unwrap()))
        .collect();
    assert_eq!(not_probed.len(), 2, "{doc:#}");
    assert_eq!(not_probed[0].0, "loadBalancer");
    assert!(not_probed[0].1.starts_with("http://mcpfleet-sim-") && not_probed[0].1.ends_with(".elb.amazonaws.com/mcp"));
    assert_eq!(not_probed[1], ("serviceConnect", "http://documents.mcp.internal:8080/mcp"));
    assert!(doc["notProbed"][0]["reason"].as_str().unwrap().contains("sim push --serves"), "{doc:#}");

    // search is tagged as an sse service: its task is probed with the SSE transport at /sse.
    let (code, doc) = lab.json(&["probe", "search", "--cluster", "mcp-prod", "-o", "json"]);
    assert_eq!(code, 0, "{doc:#}");
    let t = &doc["targets"][0];
    assert_eq!((t["transport"].as_str(), t["url"].as_str()), (Some("sse"), Some(search.url.as_str())), "{doc:#}");

    // A tool the tasks do not offer fails every task, by name, and the text says which tasks.
    let out = lab.run(&["probe", "documents", "--cluster", "mcp-prod", "--expect-tool", "delete_document"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("FAILED: missing tools: delete_document").count(), 2, "{text}");
    assert!(text.contains("0 of 2 targets passed"), "{text}");
    assert!(text.contains("not probed: http://documents.mcp.internal:8080/mcp (Service Connect)"), "{text}");

    // database's image serves nothing: its tasks have no address, which fails them with the reason.
    let (code, doc) = lab.json(&["probe", "database", "--cluster", "mcp-prod", "-o", "json"]);
    assert_eq!(code, 1, "{doc:#}");
    for t in doc["targets"].as_array().unwrap() {
        let message = t["error"]["message"].as_str().unwrap();
        assert!(message.contains("no private IPv4 address") && message.contains("--serves"), "{message}");
    }
    // A service that does not exist is an error.
    let out = lab.run(&["probe", "nope", "--cluster", "mcp-prod"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("service `nope` is not running in cluster `mcp-prod`"));
}

#[test]
fn sim_push_serves_takes_only_an_http_url_with_an_ipv4_host() {
    let lab = Lab::new();
    for bad in ["http://localhost:8081/mcp", "https://127.0.0.1:8081/mcp", "127.0.0.1:8081"] {
        let out = lab.run(&["sim", "push", &format!("{ECR}/documents:v2"), "--serves", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("--serves `{bad}`")), "{stderr}");
    }
    assert!(!lab.world().repositories[&format!("{ECR}/documents")].tags.contains_key("v2"), "nothing was pushed");
}
