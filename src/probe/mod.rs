//! The MCP probe: does the server at a URL speak MCP, which revision, and which tools does it offer?
//!
//! ECS knows whether a container answers its health check; it cannot know whether the MCP server inside completes
//! a handshake and answers `tools/list`. [`probe`] checks exactly that, as an MCP client would: for
//! `streamable-http` through the official SDK, `rmcp` ([`streamable`]), which negotiates both protocol
//! generations (2026-07-28's stateless `server/discover`, falling back to the 2025 `initialize` handshake) and
//! pages `tools/list`; for the deprecated HTTP+SSE transport through a small hand-written check ([`sse`]), since
//! rmcp no longer speaks it. `mcpfleet probe` and the rollout gate both call it.
//!
//! A probe never panics and never returns an error: every failure (unreachable, HTTP status, protocol, timeout,
//! tool list, missing tools) is a [`ProbeReport`] with `ok: false` and a [`ProbeFailure`] saying why, together with
//! whatever the probe learnt before it failed. One overall timeout bounds the whole probe, so a server that
//! accepts the connection and never answers costs at most that long.

mod sse;
mod streamable;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::backend::lock;

/// The MCP transport to probe with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeTransport {
    /// Streamable HTTP (both protocol generations).
    StreamableHttp,
    /// The deprecated HTTP+SSE transport (revision 2024-11-05).
    Sse,
}

impl ProbeTransport {
    /// The name as written in manifests and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeTransport::StreamableHttp => "streamable-http",
            ProbeTransport::Sse => "sse",
        }
    }

    /// The path a server of this transport serves MCP on when nothing else is said: `/mcp` or `/sse`.
    pub fn default_path(self) -> &'static str {
        match self {
            ProbeTransport::StreamableHttp => "/mcp",
            ProbeTransport::Sse => "/sse",
        }
    }
}

impl From<crate::spec::types::Transport> for ProbeTransport {
    fn from(t: crate::spec::types::Transport) -> ProbeTransport {
        match t {
            crate::spec::types::Transport::StreamableHttp => ProbeTransport::StreamableHttp,
            crate::spec::types::Transport::Sse => ProbeTransport::Sse,
        }
    }
}

/// What to probe with and what to expect.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub transport: ProbeTransport,
    /// Tool names the server must offer; any one absent fails the probe with [`ProbeFailure::MissingTools`].
    pub expect_tools: Vec<String>,
    /// Bounds the whole probe (connection, handshake, every `tools/list` page).
    pub timeout: Duration,
}

/// The server's name and version, as it announced them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
}

/// A step of a probe: where the time went, and where a timeout struck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProbeStep {
    /// HTTP+SSE only: opening the event stream and waiting for its `endpoint` event.
    Connect,
    /// Streamable HTTP: `server/discover`, or the `initialize` handshake it falls back to. The timing is reported
    /// under the name of the one that succeeded.
    Handshake,
    /// The 2026-07-28 stateless handshake: `server/discover` answered.
    Discover,
    /// The 2025 handshake: `initialize`, then `notifications/initialized`.
    Initialize,
    /// Every page of `tools/list`.
    ToolsList,
}

impl ProbeStep {
    /// The name timings are reported under (`timingsMs`) and timeouts name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStep::Connect => "connect",
            ProbeStep::Handshake => "handshake",
            ProbeStep::Discover => "server/discover",
            ProbeStep::Initialize => "initialize",
            ProbeStep::ToolsList => "tools/list",
        }
    }

    /// How a message names the step.
    fn describe(self) -> &'static str {
        match self {
            ProbeStep::Connect => "connect (waiting for the SSE endpoint event)",
            ProbeStep::Handshake => "the handshake (server/discover, then initialize)",
            ProbeStep::Discover => "server/discover",
            ProbeStep::Initialize => "initialize",
            ProbeStep::ToolsList => "tools/list",
        }
    }
}

impl std::fmt::Display for ProbeStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeFailure {
    /// No connection could be made: a refused connection, a name that does not resolve, a TLS failure, or a URL
    /// that is not an http(s) URL.
    #[error("unreachable: {reason}")]
    Unreachable { reason: String },
    /// The server answered a step with an HTTP error status instead of MCP.
    #[error("HTTP {status} during {step}{}", detail_suffix(.detail))]
    HttpStatus {
        status: u16,
        step: ProbeStep,
        /// The start of the response body or the reason phrase, when there was one.
        detail: String,
    },
    /// The server answered, but not as an MCP server of this transport: a failed or malformed handshake, an
    /// unexpected content type, a JSON-RPC error to `initialize`.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The probe's time ([`ProbeOptions::timeout`]) ran out during this step.
    #[error("timed out during {}", .step.describe())]
    Timeout { step: ProbeStep },
    /// The handshake worked but `tools/list` failed (a JSON-RPC error, or an answer that is not a tool list).
    #[error("tools/list failed: {0}")]
    ToolList(String),
    /// Every step worked but these expected tools are absent (sorted).
    #[error("missing tools: {}", .0.join(", "))]
    MissingTools(Vec<String>),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() { String::new() } else { format!(": {detail}") }
}

impl ProbeFailure {
    /// A short camelCase name of the kind of failure, for programs (`-o json`'s `error.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeFailure::Unreachable { .. } => "unreachable",
            ProbeFailure::HttpStatus { .. } => "httpStatus",
            ProbeFailure::Protocol(_) => "protocol",
            ProbeFailure::Timeout { .. } => "timeout",
            ProbeFailure::ToolList(_) => "toolList",
            ProbeFailure::MissingTools(_) => "missingTools",
        }
    }
}

/// `{"kind", "message"}` plus the variant's own fields (`status`, `step`, `tools`), so a program can branch on
/// the kind and a person reads the message.
impl Serialize for ProbeFailure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", self.kind())?;
        m.serialize_entry("message", &self.to_string())?;
        match self {
            ProbeFailure::HttpStatus { status, step, .. } => {
                m.serialize_entry("status", status)?;
                m.serialize_entry("step", step.as_str())?;
            }
            ProbeFailure::Timeout { step, .. } => m.serialize_entry("step", step.as_str())?,
            ProbeFailure::MissingTools(tools) => m.serialize_entry("tools", tools)?,
            ProbeFailure::Unreachable { .. } | ProbeFailure::Protocol(_) | ProbeFailure::ToolList(_) => {}
        }
        m.end()
    }
}

/// What a probe of one URL found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    pub url: String,
    /// Handshake done, `tools/list` answered, every expected tool present.
    pub ok: bool,
    /// The negotiated protocol revision (`2025-06-18`, `2026-07-28`), once the handshake worked.
    pub protocol_version: Option<String>,
    pub server: Option<ServerInfo>,
    /// The server issued an `Mcp-Session-Id`: later requests of that session must reach the same task. Always
    /// true for the HTTP+SSE transport, whose messages belong to the one event stream that a task holds open.
    pub stateful: bool,
    /// Every tool name `tools/list` returned, over all its pages, in the server's order.
    pub tools: Vec<String>,
    /// Milliseconds per step ([`ProbeStep::as_str`]) that finished, and `total`.
    pub timings_ms: BTreeMap<String, u64>,
    pub error: Option<ProbeFailure>,
}

impl ProbeReport {
    /// A report of a probe that did not run at all (`url` is not a URL the probe could use).
    pub fn failed(url: &str, error: ProbeFailure) -> ProbeReport {
        ProbeReport {
            url: url.to_string(),
            ok: false,
            protocol_version: None,
            server: None,
            stateful: false,
            tools: Vec::new(),
            timings_ms: BTreeMap::new(),
            error: Some(error),
        }
    }
}

/// What a probe has learnt so far. The transports write it as they go, so a probe cut short by the timeout still
/// reports the step it was in, the handshake it completed and the timings it took.
#[derive(Debug)]
struct Progress {
    started: Instant,
    step: ProbeStep,
    step_started: Instant,
    protocol_version: Option<String>,
    server: Option<ServerInfo>,
    stateful: bool,
    timings_ms: BTreeMap<String, u64>,
    /// The tool names, once every page was listed (what follows, closing the session, cannot fail the probe).
    listed: Option<Vec<String>>,
}

/// [`Progress`] shared between the probe's future and the timeout around it. Locked only briefly, never across
/// an await.
struct Tracker(Mutex<Progress>);

impl Tracker {
    fn new() -> Tracker {
        let now = Instant::now();
        Tracker(Mutex::new(Progress {
            started: now,
            step: ProbeStep::Connect,
            step_started: now,
            protocol_version: None,
            server: None,
            stateful: false,
            timings_ms: BTreeMap::new(),
            listed: None,
        }))
    }

    /// Starts `step`.
    fn begin(&self, step: ProbeStep) {
        let mut p = lock(&self.0);
        p.step = step;
        p.step_started = Instant::now();
    }

    /// Ends the current step, recording its time under `name` (the step's own name, or for the handshake the
    /// one that succeeded).
    fn end_as(&self, name: ProbeStep) {
        let mut p = lock(&self.0);
        let ms = millis(p.step_started.elapsed());
        p.timings_ms.insert(name.as_str().to_string(), ms);
    }

    fn end(&self) {
        let step = lock(&self.0).step;
        self.end_as(step);
    }

    fn step(&self) -> ProbeStep {
        lock(&self.0).step
    }

    fn handshake_done(&self, protocol_version: String, server: Option<ServerInfo>) {
        let mut p = lock(&self.0);
        p.protocol_version = Some(protocol_version);
        p.server = server;
    }

    fn set_stateful(&self) {
        lock(&self.0).stateful = true;
    }

    /// Every page of `tools/list` was read: the probe's answer is known, and `total` is timed now.
    fn tools_listed(&self, tools: &[String]) {
        let mut p = lock(&self.0);
        let total = millis(p.started.elapsed());
        p.timings_ms.insert("total".to_string(), total);
        p.listed = Some(tools.to_vec());
    }

    fn listed(&self) -> Option<Vec<String>> {
        lock(&self.0).listed.clone()
    }

    /// The report of what was learnt, with `total` timed now.
    fn report(&self, url: &str, tools: Vec<String>, error: Option<ProbeFailure>) -> ProbeReport {
        let p = lock(&self.0);
        let mut timings_ms = p.timings_ms.clone();
        timings_ms.entry("total".to_string()).or_insert_with(|| millis(p.started.elapsed()));
        ProbeReport {
            url: url.to_string(),
            ok: error.is_none(),
            protocol_version: p.protocol_version.clone(),
            server: p.server.clone(),
            stateful: p.stateful,
            tools,
            timings_ms,
            error,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Probes the MCP server at `url`: handshake, every page of `tools/list`, and the expected tools. Never panics;
/// every failure is a report with `ok: false`.
pub async fn probe(url: &str, opts: &ProbeOptions) -> ProbeReport {
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        Ok(u) => {
            let reason = format!("`{url}` is not an http:// or https:// URL (scheme `{}`)", u.scheme());
            return ProbeReport::failed(url, ProbeFailure::Unreachable { reason });
        }
        Err(e) => {
            return ProbeReport::failed(url, ProbeFailure::Unreachable { reason: format!("`{url}`: {e}") });
        }
    };
    let tracker = Tracker::new();
    let run = async {
        match opts.transport {
            ProbeTransport::StreamableHttp => streamable::run(&parsed, opts.timeout, &tracker).await,
            ProbeTransport::Sse => sse::run(&parsed, opts.timeout, &tracker).await,
        }
    };
    let outcome = tokio::time::timeout(opts.timeout, run).await;
    // Time that ran out after the tools were listed (while closing the session) changes nothing.
    let outcome = match (outcome, tracker.listed()) {
        (Err(_), Some(tools)) => Ok(tools),
        (Err(_), None) => Err(ProbeFailure::Timeout { step: tracker.step() }),
        (Ok(result), _) => result,
    };
    let (tools, error) = match outcome {
        Ok(tools) => {
            let missing = missing_tools(&opts.expect_tools, &tools);
            let error = (!missing.is_empty()).then_some(ProbeFailure::MissingTools(missing));
            (tools, error)
        }
        Err(failure) => (Vec::new(), Some(failure)),
    };
    tracker.report(url, tools, error)
}

/// The expected tools absent from `offered`, sorted and without repeats.
pub fn missing_tools(expected: &[String], offered: &[String]) -> Vec<String> {
    let mut missing: Vec<String> = expected.iter().filter(|t| !offered.contains(t)).cloned().collect();
    missing.sort();
    missing.dedup();
    missing
}

/// The messages of an error and its sources, outermost first, without repeats (many errors repeat their
/// source's text in their own).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// A failure of the HTTP client itself (no answer to classify): unreachable when no connection was made, a
/// protocol error otherwise (a connection dropped mid-answer, a body that is not what it claims).
fn http_client_failure(e: &reqwest::Error) -> ProbeFailure {
    if e.is_connect() || e.is_builder() {
        ProbeFailure::Unreachable { reason: chain(e) }
    } else {
        ProbeFailure::Protocol(chain(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(transport: ProbeTransport) -> ProbeOptions {
        ProbeOptions { transport, expect_tools: vec!["search".into()], timeout: Duration::from_secs(5) }
    }

    #[test]
    fn a_probe_can_run_on_any_worker_thread() {
        // The controller and the rollout gate spawn probes onto the runtime: the future must be Send.
        fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}
        spawnable(async { probe("http://127.0.0.1:1/mcp", &opts(ProbeTransport::Sse)).await });
    }

    #[test]
    fn missing_tools_are_sorted_and_unique() {
        let expected: Vec<String> = ["b", "a", "c", "a"].map(String::from).to_vec();
        let offered: Vec<String> = ["c"].map(String::from).to_vec();
        assert_eq!(missing_tools(&expected, &offered), ["a", "b"]);
        assert!(missing_tools(&[], &offered).is_empty());
    }

    #[test]
    fn failures_serialize_with_kind_message_and_fields() {
        let timeout = ProbeFailure::Timeout { step: ProbeStep::ToolsList };
        assert_eq!(
            serde_json::to_value(&timeout).unwrap(),
            serde_json::json!({"kind": "timeout", "message": "timed out during tools/list", "step": "tools/list"})
        );
        let status = ProbeFailure::HttpStatus { status: 404, step: ProbeStep::Initialize, detail: "Not Found".into() };
        assert_eq!(status.to_string(), "HTTP 404 during initialize: Not Found");
        let missing = ProbeFailure::MissingTools(vec!["a".into(), "b".into()]);
        assert_eq!(serde_json::to_value(&missing).unwrap()["tools"], serde_json::json!(["a", "b"]));
        assert_eq!(missing.to_string(), "missing tools: a, b");
    }

    #[tokio::test]
    async fn a_url_that_is_no_http_url_is_unreachable_without_a_request() {
        for (url, transport) in
            [("ftp://example.com/mcp", ProbeTransport::StreamableHttp), ("not a url", ProbeTransport::Sse)]
        {
            let report = probe(url, &opts(transport)).await;
            assert!(!report.ok);
            assert!(matches!(report.error, Some(ProbeFailure::Unreachable { .. })), "{report:?}");
            let json = serde_json::to_value(&report).unwrap();
            for key in ["url", "ok", "protocolVersion", "server", "stateful", "tools", "timingsMs", "error"] {
                assert!(json.get(key).is_some(), "{key} missing from {json}");
            }
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable() {
        // A port nothing listens on: bind one, note it, and close it again.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        for transport in [ProbeTransport::StreamableHttp, ProbeTransport::Sse] {
            let url = format!("http://127.0.0.1:{port}{}", transport.default_path());
            let report = probe(&url, &opts(transport)).await;
            assert!(matches!(report.error, Some(ProbeFailure::Unreachable { .. })), "{transport:?}: {report:?}");
            assert!(report.timings_ms.contains_key("total"));
        }
    }
}
