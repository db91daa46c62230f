//! Real MCP servers for the probe tests: `scripts/mcp_servers.py` on the official Python SDK (mcp 2.x from .venv,
//! mcp 1.x from .venv-mcp1), and the reference TypeScript server `@modelcontextprotocol/server-everything`
//! (scripts/npm/node_modules). Each is started on a loopback port and used once it says it is ready; a server
//! that cannot start fails the test loudly (never a skip). Dropping a server kills it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a server may take to say it is ready (Python imports the SDK first; CI runs tests in parallel).
const READY_WITHIN: Duration = Duration::from_secs(120);

/// Which generation of the Python SDK serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    /// mcp 2.x: the stateless 2026-07-28 revision and the 2025 handshake.
    V2,
    /// mcp 1.x: the 2025 handshake only.
    V1,
}

impl Sdk {
    fn python(self) -> PathBuf {
        match self {
            Sdk::V2 => super::python(),
            Sdk::V1 => {
                let path = std::env::var_os("MCPFLEET_TEST_PYTHON_MCP1")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-mcp1/bin/python"));
                assert!(
                    path.exists(),
                    "{} not found: run `scripts/test.sh` (it creates .venv-mcp1 from requirements-mcp1.txt) or set \
                     MCPFLEET_TEST_PYTHON_MCP1",
                    path.display()
                );
                path
            }
        }
    }

    /// The major version the server reports as its own version.
    pub fn major(self) -> &'static str {
        match self {
            Sdk::V2 => "2.",
            Sdk::V1 => "1.",
        }
    }
}

/// A running server; killed when dropped.
pub struct McpServer {
    pub url: String,
    child: Child,
    // Held open: the Python servers exit when their stdin closes, so a test killed mid-way leaves none behind.
    _stdin: Option<ChildStdin>,
}

impl McpServer {
    /// `scripts/mcp_servers.py ARGS` on `sdk`, once it printed `READY <url>`.
    pub fn python(sdk: Sdk, args: &[&str]) -> McpServer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/mcp_servers.py");
        let mut child = Command::new(sdk.python())
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting scripts/mcp_servers.py on {sdk:?}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let url = wait_for_line(stdout, stderr, |line| line.strip_prefix("READY ").map(str::to_string)).unwrap_or_else(
            |why| {
                let _ = child.kill();
                panic!("scripts/mcp_servers.py {args:?} on {sdk:?} did not get ready: {why}")
            },
        );
        McpServer { url, child, _stdin: stdin }
    }

    /// `server-everything streamableHttp` (the reference server) on a free loopback port, once it listens.
    pub fn everything() -> McpServer {
        let modules = std::env::var_os("MCPFLEET_TEST_NODE_MODULES")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/npm/node_modules"));
        let entry = modules.join("@modelcontextprotocol/server-everything/dist/index.js");
        assert!(
            entry.exists(),
            "{} not found: run `scripts/test.sh` (it runs npm ci in scripts/npm) or set MCPFLEET_TEST_NODE_MODULES",
            entry.display()
        );
        // The server takes its port from PORT and listens on every interface; the probe only goes to loopback.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new("node")
            .arg(entry)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting node (server-everything): {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let listening = format!("listening on port {port}");
        // It announces itself on stderr.
        wait_for_line(stderr, stdout, move |line| line.contains(&listening).then_some(())).unwrap_or_else(|why| {
            let _ = child.kill();
            panic!("server-everything did not get ready: {why}")
        });
        McpServer { url: format!("http://127.0.0.1:{port}/mcp"), child, _stdin: None }
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `watched` line by line until `ready` picks one; the other stream is collected for the error message.
/// Fails when the stream ends (the process exited) or after [`READY_WITHIN`].
fn wait_for_line<T: Send + 'static>(
    watched: impl std::io::Read + Send + 'static,
    other: impl std::io::Read + Send + 'static,
    ready: impl Fn(&str) -> Option<T> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    let (other_tx, other_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut lines = BufReader::new(watched).lines().map_while(Result::ok);
        for line in lines.by_ref() {
            if let Some(found) = ready(&line) {
                let _ = tx.send(Ok(found));
                // Keep reading to the end: a server writing to a closed pipe could fail.
                lines.for_each(drop);
                return;
            }
            seen.push(line);
        }
        let _ = tx.send(Err(format!("it exited; its output: {}", seen.join("\n"))));
    });
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(other).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            let _ = other_tx.send(text.clone());
        }
    });
    let result = rx.recv_timeout(READY_WITHIN).unwrap_or_else(|_| Err(format!("not within {READY_WITHIN:?}")));
    result.map_err(|why| format!("{why}\n{}", other_rx.try_iter().last().unwrap_or_default()))
}
