//! `mcpfleet bridge` as a process for the bridge tests: started on a port the system picks (read back from its
//! "listening" log line), its log collected line by line so tests can wait for what it says, and MCP spoken to it
//! over plain HTTP (reqwest), as any client would, in either protocol generation. Nothing here sleeps and hopes:
//! every wait is for a log line, an HTTP answer or the process's exit, bounded by [`WITHIN`].

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

use super::mcp::{Sdk, everything_entry};

/// The longest any one wait may take (a Python server imports its SDK first; CI runs tests side by side).
pub const WITHIN: Duration = Duration::from_secs(120);
/// How often an observable condition is looked at again.
const POLL: Duration = Duration::from_millis(25);

/// The command of the Python SDK's stdio test server (`scripts/mcp_servers.py --transport stdio`) on `sdk`.
pub fn python_stdio(sdk: Sdk) -> Vec<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/mcp_servers.py");
    vec![sdk.python().display().to_string(), script.display().to_string(), "--transport".into(), "stdio".into()]
}

/// The command of the reference server over stdio.
pub fn everything_stdio() -> Vec<String> {
    vec!["node".into(), everything_entry().display().to_string(), "stdio".into()]
}

/// A running bridge; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Bridge {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The MCP endpoint.
    pub url: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
}

impl Bridge {
    /// `mcpfleet bridge --host 127.0.0.1 --port 0 ARGS -- COMMAND`, once it listens (not yet ready).
    pub fn start(args: &[&str], command: &[String]) -> Bridge {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("mcpfleet"))
            .args(["bridge", "--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .arg("--")
            .args(command)
            .env_remove("MCPFLEET_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mcpfleet bridge starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut bridge = Bridge { base: String::new(), url: String::new(), child, log, http: client() };
        let start = Instant::now();
        let url = loop {
            let found = bridge.lines().iter().find_map(|l| {
                let rest = l.split("bridge listening on ").nth(1)?;
                Some(rest.split_whitespace().next()?.to_string())
            });
            if let Some(url) = found {
                break url;
            }
            if let Ok(Some(status)) = bridge.child.try_wait() {
                panic!("the bridge exited ({status}) before listening:\n{}", bridge.log_text());
            }
            assert!(start.elapsed() < WITHIN, "the bridge did not listen within {WITHIN:?}:\n{}", bridge.log_text());
            std::thread::sleep(POLL);
        };
        bridge.base = url.trim_end_matches(&*path_of(&url)).to_string();
        bridge.url = url;
        bridge
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn log_text(&self) -> String {
        self.lines().join("\n")
    }

    /// Waits for a log line for which `pred` holds; returns it.
    pub async fn wait_log(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| pred(l)) {
                return line;
            }
            assert!(start.elapsed() < WITHIN, "no log line {what} within {WITHIN:?}:\n{}", self.log_text());
            tokio::time::sleep(POLL).await;
        }
    }

    /// GET `path` on the bridge's port: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.expect("the bridge answers");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    /// Waits until `/ready` answers `status`.
    pub async fn wait_ready_status(&self, status: u16) -> String {
        let start = Instant::now();
        loop {
            let (got, body) = self.get("/ready").await;
            if got == status {
                return body;
            }
            assert!(
                start.elapsed() < WITHIN,
                "/ready did not answer {status} within {WITHIN:?} (last {got} {body}):\n{}",
                self.log_text()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn wait_ready(&self) {
        self.wait_ready_status(200).await;
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        signal(self.pid(), Signal::TERM);
    }

    /// Waits for the bridge to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                return status;
            }
            assert!(start.elapsed() < WITHIN, "the bridge did not exit within {WITHIN:?}:\n{}", self.log_text());
            tokio::time::sleep(POLL).await;
        }
    }

    /// A 2025 session: `initialize` (with `capabilities`) and `notifications/initialized`; its id.
    pub async fn open_session(&self, capabilities: Value) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": capabilities,
            "clientInfo": {"name": "bridge-test", "version": "1"}}});
        let answer = self.post(&init, &[]).await;
        assert_eq!(answer.status, 200, "{answer:?}\n{}", self.log_text());
        let session = answer.session.clone().unwrap_or_else(|| panic!("no Mcp-Session-Id: {answer:?}"));
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let ack =
            self.post(&initialized, &[("mcp-session-id", &session), ("mcp-protocol-version", "2025-06-18")]).await;
        assert_eq!(ack.status, 202, "{ack:?}");
        session
    }

    /// POSTs one message with `headers` (and an Accept of both JSON and event streams).
    pub async fn post(&self, body: &Value, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("the bridge answers");
        Answer::read(r).await
    }

    /// A request of session `session` (2025 generation).
    pub async fn call_in(&self, session: &str, id: Value, method: &str, params: Value) -> Answer {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.post(&body, &[("mcp-session-id", session), ("mcp-protocol-version", "2025-06-18")]).await
    }

    /// A stateless request (2026-07-28), with the envelope and headers the revision requires.
    pub async fn call_stateless(&self, id: Value, method: &str, params: Value) -> Answer {
        // A tools/call names its tool in Mcp-Name too.
        let name = params.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut headers = vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", method)];
        if !name.is_empty() {
            headers.push(("mcp-name", &name));
        }
        self.post(&stateless(id, method, params), &headers).await
    }
}

/// A 2026-07-28 request body: `params` with the `_meta` envelope added.
pub fn stateless(id: Value, method: &str, mut params: Value) -> Value {
    let meta = params.as_object_mut().expect("params is an object").entry("_meta").or_insert_with(|| json!({}));
    meta["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({});
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn path_of(url: &str) -> String {
    url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap_or_default()
}

fn signal(pid: u32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pid as i32) {
        let _ = kill_process(pid, sig);
    }
}

/// Whether process `pid` still exists.
pub fn process_exists(pid: u32) -> bool {
    Pid::from_raw(pid as i32).is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// Waits until process `pid` is gone.
pub async fn wait_gone(pid: u32) {
    let start = Instant::now();
    while process_exists(pid) {
        assert!(start.elapsed() < WITHIN, "process {pid} still runs after {WITHIN:?}");
        tokio::time::sleep(POLL).await;
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.sigterm();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(POLL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the bridge answered a POST.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub session: Option<String>,
    /// The JSON-RPC messages of the body: one for `application/json`, every event's for a stream.
    pub messages: Vec<Value>,
}

impl Answer {
    async fn read(r: reqwest::Response) -> Answer {
        let status = r.status().as_u16();
        let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_type = header("content-type").unwrap_or_default();
        let session = header("mcp-session-id");
        let text = r.text().await.unwrap_or_default();
        let messages = if content_type.starts_with("text/event-stream") {
            sse_data(&text)
        } else if text.trim().is_empty() {
            vec![]
        } else {
            vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))]
        };
        Answer { status, content_type, session, messages }
    }

    /// The last message: the answer to the request.
    pub fn answer(&self) -> &Value {
        self.messages.last().unwrap_or_else(|| panic!("no message: {self:?}"))
    }

    /// The text of a `tools/call` result's first content item.
    pub fn text(&self) -> &str {
        self.answer()["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text content: {self:?}"))
    }
}

/// The JSON of every `data:` line of an event stream.
pub fn sse_data(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {d}")))
        .collect()
}

/// An HTTP client for the bridge, on the binary's TLS stack (reqwest is built without a provider of its own).
pub fn client() -> reqwest::Client {
    mcpfleet::tls::install();
    reqwest::Client::new()
}
