//! The legacy HTTP+SSE probe (protocol revision 2024-11-05), written here because rmcp no longer speaks it.
//!
//! The transport: GET the SSE URL and keep the stream open; its first `endpoint` event names the URL to POST
//! JSON-RPC messages to (with the session in its query); every reply comes back on the stream as a `message`
//! event. The probe does the 2025 handshake (`initialize`, `notifications/initialized`) and every page of
//! `tools/list` on it. The messages and results are rmcp's model types, so both transports read answers with
//! the same rules; SSE framing is the `sse-stream` crate's.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use rmcp::model::{InitializeResult, ListToolsResult, ProtocolVersion};
use serde_json::{Value, json};

use super::{ProbeFailure, ProbeStep, ServerInfo, Tracker, chain, http_client_failure};

/// The most the event stream may carry over one probe: a server that streams without end fails the probe
/// instead of filling memory until the timeout.
const MAX_STREAM_BYTES: usize = 32 * 1024 * 1024;

/// How much of an error response's body is read for its message.
const ERROR_BODY_BYTES: usize = 4096;

type Events = Pin<Box<dyn Stream<Item = Result<sse_stream::Sse, sse_stream::Error>> + Send>>;

/// Connect, handshake, then every page of `tools/list`; the tool names in the server's order.
pub(super) async fn run(url: &reqwest::Url, timeout: Duration, tracker: &Tracker) -> Result<Vec<String>, ProbeFailure> {
    crate::tls::install();
    let http = reqwest::Client::builder()
        .connect_timeout(timeout)
        .build()
        .map_err(|e| ProbeFailure::Unreachable { reason: chain(&e) })?;

    tracker.begin(ProbeStep::Connect);
    let response =
        http.get(url.clone()).header(ACCEPT, "text/event-stream").send().await.map_err(|e| http_client_failure(&e))?;
    let response = success(response, ProbeStep::Connect).await?;
    let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("text/event-stream") {
        return Err(ProbeFailure::Protocol(format!(
            "GET {url} answered `{content_type}`, not an event stream (text/event-stream): is this an SSE endpoint?"
        )));
    }
    let mut events = event_stream(response);
    let endpoint = endpoint(&mut events, url).await?;
    tracker.end();
    // Every message of this transport belongs to the one stream a task holds open.
    tracker.set_stateful();

    tracker.begin(ProbeStep::Initialize);
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": ProtocolVersion::LATEST_WITH_INITIALIZE.as_str(),
            "capabilities": {},
            "clientInfo": {"name": "mcpfleet-probe", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    post(&http, &endpoint, &init, ProbeStep::Initialize).await?;
    let result = reply(&mut events, 1)
        .await?
        .map_err(|e| ProbeFailure::Protocol(format!("the server answered initialize with {e}")))?;
    let init: InitializeResult = serde_json::from_value(result)
        .map_err(|e| ProbeFailure::Protocol(format!("the answer to initialize is not an initialize result: {e}")))?;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(&http, &endpoint, &initialized, ProbeStep::Initialize).await?;
    tracker.end();
    let server = ServerInfo { name: init.server_info.name, version: init.server_info.version };
    tracker.handshake_done(init.protocol_version.as_str().to_string(), Some(server));

    tracker.begin(ProbeStep::ToolsList);
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for id in 2u64.. {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": params});
        post(&http, &endpoint, &request, ProbeStep::ToolsList).await?;
        let result = reply(&mut events, id).await?.map_err(ProbeFailure::ToolList)?;
        let page: ListToolsResult = serde_json::from_value(result)
            .map_err(|e| ProbeFailure::ToolList(format!("the answer is not a tool list: {e}")))?;
        tools.extend(page.tools.into_iter().map(|t| t.name.to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    tracker.end();
    tracker.tools_listed(&tools);
    Ok(tools)
}

/// The response if its status is a success, else the status with the start of the body.
async fn success(response: reqwest::Response, step: ProbeStep) -> Result<reqwest::Response, ProbeFailure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // Only the start of the body: an error page can be large, and one line of it is shown.
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        body.extend_from_slice(&chunk);
        if body.len() >= ERROR_BODY_BYTES {
            break;
        }
    }
    let body = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_BYTES)]);
    let detail = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let detail = match detail.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &detail[..i]),
        None if detail.is_empty() => status.canonical_reason().unwrap_or("").to_string(),
        None => detail,
    };
    Err(ProbeFailure::HttpStatus { status: status.as_u16(), step, detail })
}

/// The response body as SSE events, cut off (with an error) after [`MAX_STREAM_BYTES`].
fn event_stream(response: reqwest::Response) -> Events {
    let bytes = response.bytes_stream().scan((0usize, false), |(seen, failed), chunk| {
        if *failed {
            return futures::future::ready(None);
        }
        let item = chunk.map_err(std::io::Error::other).and_then(|b| {
            *seen += b.len();
            if *seen > MAX_STREAM_BYTES {
                Err(std::io::Error::other(format!("the event stream passed {MAX_STREAM_BYTES} bytes")))
            } else {
                Ok(b)
            }
        });
        *failed = item.is_err();
        futures::future::ready(Some(item))
    });
    Box::pin(sse_stream::SseStream::from_bytes_stream(bytes))
}

/// The next event; the stream ending is a protocol error (`waiting` says for what).
async fn next_event(events: &mut Events, waiting: &str) -> Result<sse_stream::Sse, ProbeFailure> {
    match events.next().await {
        Some(Ok(event)) => Ok(event),
        Some(Err(e)) => Err(ProbeFailure::Protocol(format!("reading the event stream ({waiting}): {}", chain(&e)))),
        None => Err(ProbeFailure::Protocol(format!("the server closed the event stream before {waiting}"))),
    }
}

/// The URL of the first `endpoint` event, resolved against the SSE URL. It must be of the same origin: a server
/// cannot send the probe's POSTs elsewhere.
async fn endpoint(events: &mut Events, url: &reqwest::Url) -> Result<reqwest::Url, ProbeFailure> {
    loop {
        let event = next_event(events, "its endpoint event").await?;
        if event.event.as_deref() != Some("endpoint") {
            continue;
        }
        let data = event.data.unwrap_or_default();
        let endpoint = url
            .join(data.trim())
            .map_err(|e| ProbeFailure::Protocol(format!("the endpoint event `{data}` is not a URL: {e}")))?;
        if endpoint.origin() != url.origin() {
            return Err(ProbeFailure::Protocol(format!(
                "the endpoint event names another origin ({endpoint}) than the SSE URL's"
            )));
        }
        return Ok(endpoint);
    }
}

async fn post(
    http: &reqwest::Client,
    endpoint: &reqwest::Url,
    message: &Value,
    step: ProbeStep,
) -> Result<(), ProbeFailure> {
    let response = http
        .post(endpoint.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(message.to_string())
        .send()
        .await
        .map_err(|e| http_client_failure(&e))?;
    success(response, step).await.map(drop)
}

/// The reply to request `id` from the `message` events: its `result`, or its JSON-RPC error as text. Other
/// messages (notifications, the server's own requests) are passed over.
async fn reply(events: &mut Events, id: u64) -> Result<Result<Value, String>, ProbeFailure> {
    loop {
        let event = next_event(events, "the reply").await?;
        if !matches!(event.event.as_deref(), None | Some("message")) {
            continue;
        }
        let Some(data) = event.data else { continue };
        let message: Value = serde_json::from_str(&data)
            .map_err(|e| ProbeFailure::Protocol(format!("a message event is not JSON ({e}): {data:.200}")))?;
        if message.get("id").and_then(Value::as_u64) != Some(id) || message.get("method").is_some() {
            continue;
        }
        if let Some(error) = message.get("error") {
            let code = error.get("code").and_then(Value::as_i64).unwrap_or_default();
            let text = error.get("message").and_then(Value::as_str).unwrap_or("(no message)");
            return Ok(Err(format!("JSON-RPC error {code}: {text}")));
        }
        return match message.get("result") {
            Some(result) => Ok(Ok(result.clone())),
            None => Err(ProbeFailure::Protocol(format!("reply {id} has neither result nor error"))),
        };
    }
}
