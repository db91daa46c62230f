//! `mcpfleet bridge` through the binary, in front of real stdio MCP servers: the reference server
//! `@modelcontextprotocol/server-everything` (node) and the official Python SDK's stdio server (mcp 2.x and 1.x,
//! `scripts/mcp_servers.py --transport stdio`). Clients of both protocol generations: plain HTTP as the
//! specification writes it, the Python SDK's clients (`scripts/mcp_client.py`, both SDK generations) and rmcp's (`mcpfleet
//! probe`). Every wait is for something the bridge shows (a log line, `/ready`, an answer, an exit).

mod common;

use std::time::Duration;

use common::bridge::{Bridge, everything_stdio, process_exists, python_stdio, wait_gone};
use common::mcp::Sdk;
use common::mcpfleet;
use serde_json::{Value, json};

/// The one text item of a `tools/call` answer.
fn call_text(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("not a text result: {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_of_both_generations_get_their_own_answers_from_server_everything() {
    let bridge = Bridge::start(&[], &everything_stdio());
    bridge.wait_ready().await;
    let a = bridge.open_session(json!({})).await;
    let b = bridge.open_session(json!({})).await;
    assert_ne!(a, b);

    // Three clients at once, numbering their requests alike (ids 1..=40): each must get its own answers, under its
    // own ids, through the one server process.
    let client = |who: &'static str, session: Option<String>| {
        let bridge = &bridge;
        async move {
            for i in 1..=40 {
                let message = format!("{who}-{i}");
                let params = json!({"name": "echo", "arguments": {"message": message}});
                let answer = match &session {
                    Some(s) => bridge.call_in(s, json!(i), "tools/call", params).await,
                    None => bridge.call_stateless(json!(i), "tools/call", params).await,
                };
                assert_eq!(answer.status, 200, "{answer:?}");
                assert_eq!(answer.answer()["id"], json!(i), "{answer:?}");
                assert_eq!(call_text(answer.answer()), format!("Echo: {message}"), "{answer:?}");
            }
        }
    };
    tokio::join!(client("a", Some(a.clone())), client("b", Some(b.clone())), client("stateless", None));

    // tools/list in both generations; the stateless one has the 2026-07-28 members.
    let listed = bridge.call_in(&a, json!("list"), "tools/list", json!({})).await;
    let names: Vec<&str> =
        listed.answer()["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"echo") && names.contains(&"get-sum"), "{names:?}");
    let stateless = bridge.call_stateless(json!(7), "tools/list", json!({})).await;
    let result = &stateless.answer()["result"];
    assert_eq!((result["resultType"].as_str(), result["cacheScope"].as_str()), (Some("complete"), Some("private")));
    assert!(listed.answer()["result"].get("resultType").is_none(), "2025 answers stay as the server wrote them");

    // server/discover is answered from the server's initialize result.
    let discover = bridge.call_stateless(json!(1), "server/discover", json!({})).await;
    let d = &discover.answer()["result"];
    assert_eq!(d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "mcp-servers/everything");
    assert!(d["supportedVersions"].as_array().unwrap().contains(&json!("2026-07-28")), "{d}");
    assert!(d["capabilities"]["tools"].is_object(), "{d}");

    // rmcp's client, as `mcpfleet probe` uses it, negotiates the stateless revision through the bridge.
    let out = mcpfleet()
        .args(["probe", &bridge.url, "--expect-tool", "echo", "--expect-tool", "get-sum", "-o", "json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &doc["targets"][0];
    assert_eq!(t["ok"], true, "{doc:#}");
    assert_eq!(t["protocolVersion"], "2026-07-28");
    assert_eq!(t["server"]["name"], "mcp-servers/everything");
    assert_eq!(t["stateful"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_clients_of_both_generations_and_progress_through_a_python_stdio_server() {
    for server_sdk in [Sdk::V2, Sdk::V1] {
        let bridge = Bridge::start(&[], &python_stdio(server_sdk));
        bridge.wait_ready().await;
        // (client SDK, mode, the revision it must end up on)
        let cases =
            [(Sdk::V2, "auto", "2026-07-28"), (Sdk::V2, "legacy", "2025-11-25"), (Sdk::V1, "auto", "2025-11-25")];
        for (client_sdk, mode, revision) in cases {
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mcp_client.py");
            let out = tokio::process::Command::new(client_sdk.python())
                .arg(script)
                .args([&bridge.url, "--mode", mode, "--call", "count", "--arguments", r#"{"steps": 3}"#])
                .output()
                .await
                .unwrap();
            let what = format!("{client_sdk:?} client ({mode}) of a {server_sdk:?} server");
            assert!(out.status.success(), "{what}: {}\n{}", String::from_utf8_lossy(&out.stderr), bridge.log_text());
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(doc["protocolVersion"], revision, "{what}: {doc}");
            assert_eq!(doc["result"], json!(["counted 3"]), "{what}: {doc}");
            assert_eq!(
                doc["progress"],
                json!([1.0, 2.0, 3.0]),
                "{what}: progress reaches the client that asked: {doc}"
            );
            assert!(doc["tools"].as_array().unwrap().contains(&json!("block")), "{what}: {doc}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_tool_call_completes_during_the_sigterm_drain_then_the_server_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    let mut bridge = Bridge::start(&["--drain-timeout", "60s"], &python_stdio(Sdk::V2));
    bridge.wait_ready().await;
    let server_pid: u32 = {
        let who = bridge.call_stateless(json!(1), "tools/call", json!({"name": "whoami", "arguments": {}})).await;
        call_text(who.answer()).parse().unwrap()
    };
    let path = release.display().to_string();
    let call = {
        let (http, url) = (bridge.http.clone(), bridge.url.clone());
        let body = common::bridge::stateless(
            json!("long"),
            "tools/call",
            json!({"name": "block", "arguments": {"path": path}}),
        );
        tokio::spawn(async move {
            let r = http
                .post(url)
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", "block")
                .body(body.to_string())
                .send()
                .await
                .expect("answered");
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    // The server says (on stderr, which the bridge logs with its session) that the call is in progress.
    let line = bridge.wait_log("of the blocking call", |l| l.contains("blocking until") && l.contains(&path)).await;
    assert!(line.contains("session=shared"), "{line}");

    bridge.sigterm();
    bridge.wait_log("about the drain", |l| l.contains("shutting down: no new connections")).await;
    // No new connections once draining...
    let start = std::time::Instant::now();
    while tokio::net::TcpStream::connect(bridge.base.trim_start_matches("http://")).await.is_ok() {
        assert!(start.elapsed() < common::bridge::WITHIN, "the bridge still accepts connections");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // ...while the call in flight goes on, and so do the bridge and its server.
    assert!(!call.is_finished());
    assert!(process_exists(bridge.pid()) && process_exists(server_pid));

    std::fs::write(&release, b"").unwrap();
    let (status, body) = call.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(call_text(&answer), "released", "{answer}");
    let exit = bridge.wait_exit().await;
    assert_eq!(exit.code(), Some(0), "{}", bridge.log_text());
    assert!(!process_exists(server_pid), "the server process was stopped");
    let log = bridge.log_text();
    assert!(log.contains("was killed by signal 15"), "SIGTERM stopped the server:\n{log}");
    assert!(log.contains("bridge stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_crashes_is_restarted_and_not_ready_meanwhile() {
    let bridge = Bridge::start(&[], &python_stdio(Sdk::V2));
    bridge.wait_ready().await;
    let whoami = || bridge.call_stateless(json!("who"), "tools/call", json!({"name": "whoami", "arguments": {}}));
    let first: u32 = call_text(whoami().await.answer()).parse().unwrap();
    let session = bridge.open_session(json!({})).await;

    let crash =
        bridge.call_in(&session, json!(9), "tools/call", json!({"name": "crash", "arguments": {"code": 3}})).await;
    let error = &crash.answer()["error"];
    assert_eq!(crash.answer()["id"], 9);
    assert_eq!(error["message"], "the MCP server process exited with status 3 before answering", "{crash:?}");
    // By the time a client learns of the crash, /ready says so.
    let (status, body) = bridge.get("/ready").await;
    assert_eq!(status, 503, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["ready"], false);
    assert!(doc["reason"].as_str().unwrap().contains("exited with status 3"), "{doc}");
    // Requests meanwhile are refused with 503 and the reason, not left hanging (or, should the restart have been
    // that quick, served by the new process).
    let meanwhile = whoami().await;
    match meanwhile.status {
        503 => {
            let message = meanwhile.answer()["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with("the MCP server is not running: the MCP server process exited with status 3"),
                "{message}"
            );
        }
        200 => assert_ne!(meanwhile.text().parse::<u32>().unwrap(), first),
        _ => panic!("{meanwhile:?}"),
    }

    bridge.wait_ready().await;
    let second: u32 = call_text(whoami().await.answer()).parse().unwrap();
    assert_ne!(first, second, "a new process serves");
    wait_gone(first).await;
    // The session of the 2025 handshake outlives the restart (the bridge is its peer, not the process).
    let echo = bridge
        .call_in(&session, json!(10), "tools/call", json!({"name": "echo", "arguments": {"message": "again"}}))
        .await;
    assert_eq!(echo.text(), "again", "{echo:?}");
    let log = bridge.log_text();
    assert!(log.contains("the MCP server process exited with status 3; starting it again in"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_session_mode_runs_a_server_per_session_up_to_the_limit_and_stops_idle_ones() {
    let bridge = Bridge::start(
        &["--mode", "per-session", "--max-sessions", "2", "--idle-timeout", "10s"],
        &python_stdio(Sdk::V2),
    );
    bridge.wait_ready().await;
    let whoami = |session: String| {
        let bridge = &bridge;
        async move {
            let a = bridge.call_in(&session, json!(1), "tools/call", json!({"name": "whoami", "arguments": {}})).await;
            a.text().parse::<u32>().unwrap()
        }
    };
    let stateless: u32 = {
        let a = bridge.call_stateless(json!(1), "tools/call", json!({"name": "whoami", "arguments": {}})).await;
        a.text().parse().unwrap()
    };
    let (a, b) = (bridge.open_session(json!({})).await, bridge.open_session(json!({})).await);
    let (pa, pb) = (whoami(a.clone()).await, whoami(b.clone()).await);
    assert!(pa != pb && pa != stateless && pb != stateless, "{pa} {pb} {stateless}");

    // A third session is over the limit.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "third", "version": "1"}}});
    let third = bridge.post(&init, &[]).await;
    assert_eq!(third.status, 503, "{third:?}");
    assert!(third.answer()["error"]["message"].as_str().unwrap().contains("maximum of 2 sessions"), "{third:?}");

    // stderr of a session's server is logged with that session.
    let said =
        bridge.call_in(&b, json!(2), "tools/call", json!({"name": "say", "arguments": {"text": "hello from b"}})).await;
    assert_eq!(said.text(), "said");
    let line = bridge.wait_log("with b's stderr", |l| l.contains("hello from b")).await;
    assert!(line.contains(&format!("session={b}")) && line.contains(&format!("pid={pb}")), "{line}");

    // A client may end its session; its server is stopped, and the id is gone.
    let ended = bridge.http.delete(&bridge.url).header("mcp-session-id", &a).send().await.unwrap();
    assert_eq!(ended.status().as_u16(), 200);
    wait_gone(pa).await;
    let gone = bridge.call_in(&a, json!(3), "tools/list", json!({})).await;
    assert_eq!(gone.status, 404, "{gone:?}");

    // b goes quiet: closed after the idle timeout, its server stopped; the stateless server stays.
    bridge.wait_log("closing b", |l| l.contains("session closed after 10s without requests") && l.contains(&*b)).await;
    wait_gone(pb).await;
    assert_eq!(bridge.call_in(&b, json!(4), "tools/list", json!({})).await.status, 404);
    assert!(process_exists(stateless));
    // Slots are free again.
    let c = bridge.open_session(json!({})).await;
    assert_ne!(whoami(c).await, stateless);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_requests_reach_the_session_that_caused_them_and_its_answer_goes_back() {
    // Per-session: the client's own initialize (declaring sampling) reaches its server, which may then ask it.
    let bridge = Bridge::start(&["--mode", "per-session"], &everything_stdio());
    bridge.wait_ready().await;
    let session = bridge.open_session(json!({"sampling": {}})).await;
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "trigger-sampling-request", "arguments": {"prompt": "hi", "maxTokens": 10}}});
    let mut call = bridge
        .http
        .post(&bridge.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(call.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    // Read the stream until the server's request arrives, answer it, then read on to the tool's result.
    let mut text = String::new();
    let request = loop {
        let chunk = call.chunk().await.unwrap().expect("the stream goes on");
        text.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(r) = common::bridge::sse_data(&text).into_iter().find(|m| m["method"] == "sampling/createMessage") {
            break r;
        }
    };
    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {
        "role": "assistant", "content": {"type": "text", "text": "sampled!"}, "model": "test-model"}});
    let ack = bridge.post(&answer, &[("mcp-session-id", &session), ("mcp-protocol-version", "2025-06-18")]).await;
    assert_eq!(ack.status, 202);
    while let Some(chunk) = call.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let messages = common::bridge::sse_data(&text);
    let result = messages.last().unwrap();
    assert_eq!(result["id"], 5, "{messages:?}");
    assert!(call_text(result).contains("sampled!"), "{result}");

    // Shared mode: the bridge is the server's one client and declares no sampling, so the tool is not offered.
    let shared = Bridge::start(&[], &everything_stdio());
    shared.wait_ready().await;
    let s = shared.open_session(json!({"sampling": {}})).await;
    let listed = shared.call_in(&s, json!(1), "tools/list", json!({})).await;
    let names: Vec<&str> =
        listed.answer()["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(!names.contains(&"trigger-sampling-request"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_bridge_cannot_take_is_refused_with_a_reason() {
    let bridge = Bridge::start(&[], &python_stdio(Sdk::V2));
    bridge.wait_ready().await;
    let raw = |body: &'static str| {
        let bridge = &bridge;
        async move {
            let r = bridge
                .http
                .post(&bridge.url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = raw("{not json").await;
    assert_eq!(status, 400);
    assert!(body.contains("-32700"), "{body}");
    let (status, body) = raw(r#"[{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]"#).await;
    assert_eq!(status, 400);
    assert!(body.contains("batches are not taken"), "{body}");
    let (status, body) = raw(r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}"#).await;
    assert_eq!(status, 400);
    assert!(body.contains("no Mcp-Session-Id"), "{body}");
    let unknown = bridge.call_in("0123", json!(1), "tools/list", json!({})).await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    // 2026-07-28 requests are checked as the revision asks.
    let mismatch = bridge
        .post(
            &common::bridge::stateless(json!(1), "tools/list", json!({})),
            &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call")],
        )
        .await;
    assert_eq!(mismatch.status, 400);
    assert_eq!(mismatch.answer()["error"]["code"], -32020);
    let bare = bridge
        .post(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/list")],
        )
        .await;
    assert_eq!((bare.status, bare.answer()["error"]["code"].as_i64()), (400, Some(-32602)));
    // A tools/call whose Mcp-Name header names another tool than its body.
    let body =
        common::bridge::stateless(json!(3), "tools/call", json!({"name": "echo", "arguments": {"message": "x"}}));
    let headers = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "crash")];
    let renamed = bridge.post(&body, &headers).await;
    assert_eq!((renamed.status, renamed.answer()["error"]["code"].as_i64()), (400, Some(-32020)), "{renamed:?}");
    // A method the server lacks: its own error, with the revision's status.
    let missing = bridge.call_stateless(json!(2), "no/such/method", json!({})).await;
    assert_eq!((missing.status, missing.answer()["error"]["code"].as_i64()), (404, Some(-32601)), "{missing:?}");
    // GET without a session.
    let (status, _) = {
        let r = bridge.http.get(&bridge.url).header("accept", "text/event-stream").send().await.unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_start_is_reported_on_health_and_ready() {
    let bridge = Bridge::start(&[], &["/no/such/mcp-server".to_string()]);
    let line = bridge.wait_log("about the command", |l| l.contains("cannot start `/no/such/mcp-server`")).await;
    assert!(line.contains("No such file or directory"), "{line}");
    let (status, body) = bridge.get("/health").await;
    assert_eq!(status, 503, "{body}");
    let body = bridge.wait_ready_status(503).await;
    assert!(body.contains("cannot start `/no/such/mcp-server`"), "{body}");
    let answer = bridge.call_stateless(json!(1), "tools/list", json!({})).await;
    assert_eq!(answer.status, 503, "{answer:?}");
}

#[test]
fn usage_errors_name_what_is_wrong() {
    mcpfleet().args(["bridge", "--port", "8080"]).assert().code(1).stderr(predicates::str::contains("<CMD>"));
    mcpfleet()
        .args(["bridge", "--port", "0", "--path", "/health", "--", "true"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("--path `/health` must start with `/` and be neither /health nor /ready"));
    mcpfleet()
        .args(["bridge", "--port", "0", "--idle-timeout", "10ms", "--", "true"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("must be at least 1s"));
}

#[test]
fn install_bridge_copies_a_working_executable() {
    let dir = tempfile::tempdir().unwrap();
    mcpfleet()
        .args(["install-bridge", dir.path().to_str().unwrap()])
        .assert()
        .success()
        .stdout(format!("installed {}/mcpfleet\n", dir.path().display()));
    let copy = dir.path().join("mcpfleet");
    let out = std::process::Command::new(&copy).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("mcpfleet "));
}
