//! Adaptive pacing against moto behind ECS's token buckets (`scripts/ecs_throttle_proxy.py`), through the binary:
//! mcpfleet is told the account has more than it has, AWS-style ThrottlingExceptions come back, and the user still
//! sees a clean apply while mcpfleet paces itself down. moto and the proxy are started here; either missing is a
//! loud failure, never a skip.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::aws_lab::AwsLab;
use serde_json::Value;

/// Services in the fleet: more than the halved buckets' bursts of UpdateService (25) and TagResource (10).
const SERVICES: usize = 30;

/// `scripts/ecs_throttle_proxy.py` in front of a moto server, killed on drop.
struct Proxy {
    url: String,
    child: Child,
}

impl Proxy {
    /// Starts the proxy with `--scale scale` in front of `upstream` and waits for the URL it prints once it listens.
    fn start(upstream: &str, scale: &str) -> Proxy {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ecs_throttle_proxy.py");
        let mut child = Command::new(common::python())
            .arg(&script)
            .args(["--upstream", upstream, "--scale", scale])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", script.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "the proxy printed {line:?} instead of its URL");
        Proxy { url, child }
    }

    /// `GET /_proxy/counts`: {"requests": {op: n}, "throttled": {op: n}}.
    fn counts(&self) -> Value {
        let addr = self.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET /_proxy/counts HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
        assert!(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"), "{head}");
        serde_json::from_str(body).unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn total(counts: &Value) -> u64 {
    counts.as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

/// The lab's fleet defaults and `SERVICES` copies of search.yaml (`search-00`…), nothing else.
fn fleet_of_searches(lab: &AwsLab) -> Vec<String> {
    let search = std::fs::read_to_string(lab.manifests().join("search.yaml")).unwrap();
    for f in ["documents.yaml", "database.yaml", "search.yaml"] {
        std::fs::remove_file(lab.manifests().join(f)).unwrap();
    }
    assert!(search.contains("  name: search\n") && search.contains("  replicas: 1\n"));
    (0..SERVICES)
        .map(|i| {
            let name = format!("search-{i:02}");
            lab.add_manifest(
                &format!("{name}.yaml"),
                &search.replacen("  name: search\n", &format!("  name: {name}\n"), 1),
            );
            name
        })
        .collect()
}

#[test]
fn apply_through_halved_buckets_paces_itself_down_and_shows_no_throttling() {
    let lab = AwsLab::new();
    let names = fleet_of_searches(&lab);
    // The fleet, straight to moto (no limits there; a raised registration rate keeps this step short).
    let (code, doc) = lab.apply(&["--api-rate", "RegisterTaskDefinition=100/100"]);
    assert_eq!(code, 0, "{doc:#}");

    // Every bucket halved, while mcpfleet believes the account has 100 burst and 100/s for the two buckets a
    // replica change draws on (far above ECS's 50/5 and 20/10): only AWS's answers can slow it down.
    let proxy = Proxy::start(&lab.endpoint, "0.5");
    for name in &names {
        lab.edit_manifest(&format!("{name}.yaml"), "  replicas: 1\n", "  replicas: 2\n");
    }
    let m = lab.manifests();
    let args = ["apply", "-f", m.to_str().unwrap(), "-o", "json"];
    let rates = ["--api-rate", "ServiceWrite=100/100", "--api-rate", "TagResource=100/100"];
    let out = lab.run_env(&[&args[..], &rates[..]].concat(), &[("AWS_ENDPOINT_URL", &proxy.url)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (code, doc) = common::json_output(&args, &out);

    // What the user sees: success, every service updated, not a word about throttling or errors.
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    for s in doc["services"].as_array().unwrap() {
        assert_eq!(s["outcome"], "updated", "{s:#}\n{stderr}");
    }
    assert_eq!(doc["services"].as_array().unwrap().len(), SERVICES);
    let lower = stderr.to_lowercase();
    for word in ["throttl", "rate exceeded", "error", "retry", "failed"] {
        assert!(!lower.contains(word), "`{word}` reached the user:\n{stderr}");
    }
    // moto has the change, for every service.
    let ecs = lab.dump();
    for name in &names {
        assert_eq!(ecs["services"][name]["desiredCount"], 2, "{name}: {:#}", ecs["services"][name]);
    }

    // ECS throttled it, and mcpfleet saw every one of those answers (and retried it).
    let counts = proxy.counts();
    let throttled = counts["throttled"].as_object().unwrap().clone();
    assert!(total(&counts["throttled"]) > 0, "the halved buckets never throttled: {counts}");
    assert_eq!(doc["apiCalls"]["throttled"], counts["throttled"], "mcpfleet's count of throttles vs the proxy's");
    // Each throttled operation's bucket was paced down from its 100/s, and mcpfleet then waited for its own
    // tokens: without the cut it never would, as the 100-token burst is more than all its calls of it.
    for op in throttled.keys() {
        let paced = doc["apiCalls"]["pacedTo"][op].as_f64().unwrap_or_else(|| panic!("{op} not paced: {doc:#}"));
        assert!(paced <= 50.0, "{op} paced to {paced}/s only");
        let sent = counts["requests"][op].as_u64().unwrap();
        assert!(sent < 100, "{op}: {sent} requests, enough to drain the burst without pacing");
        let waited = doc["apiCalls"]["waitedMs"][op].as_u64().unwrap();
        assert!(waited > 0, "{op} never waited for its own tokens after the throttles: {:#}", doc["apiCalls"]);
    }
}
