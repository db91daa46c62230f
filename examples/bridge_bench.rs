//! The bridge's cost, measured (`scripts/bench.sh bridge`): `tools/call` round trips on loopback to the Python SDK's
//! test server speaking streamable HTTP itself, and to the same server speaking stdio behind `mcpfleet bridge`
//! (shared mode); one client, then 32 at once. Then the bridge's memory in per-session mode with 32 sessions (32
//! server processes, which are not counted: only the bridge process's RSS).
//!
//!     cargo run --release --example bridge_bench -- MCPFLEET PYTHON [CALLS]
//!
//! Both servers get the same request, a 2026-07-28 stateless `tools/call` of `echo`, so the difference is the
//! bridge's hop (and stdio in place of the SDK's HTTP stack).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mcp_servers.py");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and returns it with the first line of `stream` (stdout or stderr) that `pick` accepts.
fn start(cmd: &mut Command, stderr: bool, pick: impl Fn(&str) -> Option<String>) -> (Proc, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starts");
    let out: Box<dyn std::io::Read + Send> =
        if stderr { Box::new(child.stderr.take().unwrap()) } else { Box::new(child.stdout.take().unwrap()) };
    let mut lines = BufReader::new(out).lines();
    let found = lines.by_ref().map_while(Result::ok).find_map(|l| pick(&l)).expect("a ready line");
    // Keep draining, so the process never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (Proc(child), found)
}

fn call(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"message": "hello"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}})
}

async fn post(http: &reqwest::Client, url: &str, body: &Value, session: Option<&str>) -> (Value, Option<String>) {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    req = match session {
        Some(s) => req.header("mcp-session-id", s).header("mcp-protocol-version", "2025-11-25"),
        None if body["method"] == "initialize" => req,
        None => req
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", body["method"].as_str().unwrap())
            .header("mcp-name", body["params"]["name"].as_str().unwrap_or_default()),
    };
    let r = req.send().await.expect("answered");
    let sid = r.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let text = r.text().await.expect("a body");
    let data = text.lines().find_map(|l| l.strip_prefix("data:")).unwrap_or(&text).trim().to_string();
    (serde_json::from_str(&data).unwrap_or(Value::Null), sid)
}

/// `clients` concurrent clients, `calls` sequential calls each: every round trip's duration.
async fn load(url: &str, clients: usize, calls: usize) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move {
                let http = client();
                let mut times = Vec::with_capacity(calls);
                for i in 0..calls {
                    let t = Instant::now();
                    let (answer, _) = post(&http, &url, &call(i as u64), None).await;
                    assert_eq!(answer["result"]["content"][0]["text"], "hello", "{answer}");
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    (all, started.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// "median 1.23 ms, p90 …, p99 …, N calls/s".
fn summary((times, wall): &(Vec<Duration>, Duration)) -> (f64, String) {
    let q = |p: f64| times[((times.len() as f64 - 1.0) * p) as usize];
    let median = ms(q(0.5));
    let text = format!(
        "median {median:.2} ms, p90 {:.2} ms, p99 {:.2} ms, {:.0} calls/s",
        ms(q(0.9)),
        ms(q(0.99)),
        times.len() as f64 / wall.as_secs_f64()
    );
    (median, text)
}

async fn wait_ready(base: &str) {
    let http = client();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/ready")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn bridge(mcpfleet: &str, python: &str, args: &[&str]) -> (Proc, String) {
    let mut cmd = Command::new(mcpfleet);
    cmd.args(["bridge", "--host", "127.0.0.1", "--port", "0"]).args(args).args([
        "--",
        python,
        SCRIPT,
        "--transport",
        "stdio",
    ]);
    start(&mut cmd, true, |l| Some(l.split("bridge listening on ").nth(1)?.split_whitespace().next()?.to_string()))
}

/// VmRSS and VmHWM of `pid`, in MiB.
fn rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| -> f64 {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap()
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mcpfleet, python) = (&args[1], &args[2]);
    let calls: usize = args.get(3).map_or(2000, |n| n.parse().unwrap());
    assert!(Path::new(mcpfleet).exists() && Path::new(python).exists());

    let (_direct, direct_url) =
        start(Command::new(python).args([SCRIPT, "--behaviour", "tools", "--json-response"]), false, |l| {
            l.strip_prefix("READY ").map(str::to_string)
        });
    let (_shared, bridge_url) = bridge(mcpfleet, python, &[]);
    wait_ready(bridge_url.trim_end_matches("/mcp")).await;
    for url in [&direct_url, &bridge_url] {
        load(url, 4, 100).await; // warm-up: connections, the server's code paths
    }
    println!("| tools/call round trips on loopback ({calls} calls each) | median, p90, p99, throughput |");
    println!("|---|---|");
    for clients in [1, 32] {
        let per = calls / clients;
        let (direct_median, direct) = summary(&load(&direct_url, clients, per).await);
        let (bridge_median, bridged) = summary(&load(&bridge_url, clients, per).await);
        println!("| {clients} client(s): Python server over streamable HTTP | {direct} |");
        println!("| {clients} client(s): same server over stdio behind the bridge | {bridged} |");
        println!(
            "| {clients} client(s): the bridge's difference at the median | {:+.2} ms |",
            bridge_median - direct_median
        );
    }

    let (per_session, url) = bridge(mcpfleet, python, &["--mode", "per-session", "--max-sessions", "32"]);
    let base = url.trim_end_matches("/mcp").to_string();
    wait_ready(&base).await;
    let pid = per_session.0.id();
    let (idle, _) = rss(pid);
    let sessions: Vec<_> = (0..32)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = client();
                let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": format!("bench-{i}"), "version": "1"}}});
                let (_, sid) = post(&http, &url, &init, None).await;
                let sid = sid.expect("a session");
                post(&http, &url, &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}), Some(&sid)).await;
                let whoami = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
                let (answer, _) = post(&http, &url, &whoami, Some(&sid)).await;
                answer["result"]["content"][0]["text"].as_str().expect("a pid").to_string()
            })
        })
        .collect();
    let mut pids = Vec::new();
    for s in sessions {
        pids.push(s.await.unwrap());
    }
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 32, "32 sessions, 32 server processes");
    let (now, peak) = rss(pid);
    println!(
        "| per-session mode, bridge process RSS (its 33 server processes not counted) | idle {idle:.1} MiB; with 32 sessions {now:.1} MiB (peak {peak:.1} MiB) |"
    );
}

/// An HTTP client on the binary's TLS stack (reqwest is built without a provider of its own).
fn client() -> reqwest::Client {
    mcpfleet::tls::install();
    reqwest::Client::new()
}
