//! The Streamable HTTP probe, through the official SDK (`rmcp`).
//!
//! rmcp's automatic lifecycle sends the 2026-07-28 `server/discover` first and falls back to the 2025
//! `initialize` handshake when the server answers it as a legacy server would (a JSON-RPC error or a 4xx); it reads
//! JSON and SSE responses alike and follows `nextCursor` over every `tools/list` page. What rmcp does not expose
//! is whether the server issued an `Mcp-Session-Id`: [`SessionWatch`] is the HTTP client rmcp runs on (reqwest,
//! unchanged) with a flag raised when an answer carries one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::stream::BoxStream;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::ClientInitializeError;
use rmcp::transport::DynamicTransportError;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use rmcp::{ClientLifecycleMode, ClientServiceExt, ServiceError};

use super::{ProbeFailure, ProbeStep, ServerInfo, Tracker, chain, http_client_failure};

type HttpError = StreamableHttpError<reqwest::Error>;

/// How long closing the session (rmcp's DELETE of it) may take after the tools were listed; the result is
/// already known then, so a server slow to close costs the probe no more than this.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// reqwest as rmcp uses it, noting whether any answer carried an `Mcp-Session-Id`.
#[derive(Clone)]
struct SessionWatch {
    inner: reqwest::Client,
    issued: Arc<AtomicBool>,
}

impl SessionWatch {
    fn note(&self, response: &StreamableHttpPostResponse) {
        if let StreamableHttpPostResponse::Json(_, Some(_)) | StreamableHttpPostResponse::Sse(_, Some(_)) = response {
            self.issued.store(true, Ordering::Relaxed);
        }
    }
}

impl StreamableHttpClient for SessionWatch {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: rmcp::model::ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<reqwest::header::HeaderName, reqwest::header::HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let limits = StreamableHttpResponseLimits::default();
        self.post_message_with_response_limits(uri, message, session_id, auth_header, custom_headers, limits).await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: rmcp::model::ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<reqwest::header::HeaderName, reqwest::header::HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let response = self
            .inner
            .post_message_with_response_limits(uri, message, session_id, auth_header, custom_headers, limits)
            .await?;
        self.note(&response);
        Ok(response)
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<reqwest::header::HeaderName, reqwest::header::HeaderValue>,
    ) -> Result<(), HttpError> {
        self.inner.delete_session(uri, session_id, auth_header, custom_headers).await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<reqwest::header::HeaderName, reqwest::header::HeaderValue>,
    ) -> Result<BoxStream<'static, Result<sse_stream::Sse, SseError>>, HttpError> {
        self.inner.get_stream(uri, session_id, last_event_id, auth_header, custom_headers).await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<reqwest::header::HeaderName, reqwest::header::HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<sse_stream::Sse, SseError>>, HttpError> {
        self.inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}

/// Handshake, then every page of `tools/list`; the tool names in the server's order.
pub(super) async fn run(url: &reqwest::Url, timeout: Duration, tracker: &Tracker) -> Result<Vec<String>, ProbeFailure> {
    crate::tls::install();
    let http = reqwest::Client::builder()
        .connect_timeout(timeout)
        .build()
        .map_err(|e| ProbeFailure::Unreachable { reason: chain(&e) })?;
    let watch = SessionWatch { inner: http, issued: Arc::new(AtomicBool::new(false)) };
    let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
        // A probe reports what the server does; a transparent re-handshake would hide an expiring session.
        .reinit_on_expired_session(false);
    let transport = StreamableHttpClientTransport::with_client(watch.clone(), config);
    let modern: Vec<ProtocolVersion> =
        ProtocolVersion::KNOWN_VERSIONS.iter().rev().filter(|v| !v.has_initialize()).cloned().collect();
    let lifecycle = ClientLifecycleMode::Auto {
        preferred_versions: modern,
        legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
    };
    let client_info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("mcpfleet-probe", env!("CARGO_PKG_VERSION")),
    );

    tracker.begin(ProbeStep::Handshake);
    let mut client = client_info.serve_with_lifecycle(transport, lifecycle).await.map_err(handshake_failure)?;
    if watch.issued.load(Ordering::Relaxed) {
        tracker.set_stateful();
    }
    let peer = client.peer().peer_info();
    let Some(info) = peer else {
        return Err(ProbeFailure::Protocol("the handshake finished without the server's answer".into()));
    };
    let version = info.protocol_version.clone();
    tracker.end_as(if version.has_initialize() { ProbeStep::Initialize } else { ProbeStep::Discover });
    let server = info.server_info.as_ref().map(|s| ServerInfo { name: s.name.clone(), version: s.version.clone() });
    tracker.handshake_done(version.as_str().to_string(), server);

    tracker.begin(ProbeStep::ToolsList);
    let listed = client.peer().list_all_tools().await;
    // A session may be issued on any answer (a server may also issue it late); look again after the listing.
    if watch.issued.load(Ordering::Relaxed) {
        tracker.set_stateful();
    }
    let tools: Vec<String> = listed.map_err(tools_failure)?.into_iter().map(|t| t.name.to_string()).collect();
    tracker.end();
    tracker.tools_listed(&tools);
    // Closing sends DELETE for a session; its outcome changes nothing in the report.
    let _ = client.close_with_timeout(CLOSE_WAIT).await;
    Ok(tools)
}

fn handshake_failure(e: ClientInitializeError) -> ProbeFailure {
    match e {
        ClientInitializeError::TransportError { error, .. } => transport_failure(&error, ProbeStep::Handshake),
        // The server answered server/discover as a legacy server, then failed the initialize handshake: that
        // second failure is the one to report.
        ClientInitializeError::LegacyFallbackFailed { discover, fallback } => match *fallback {
            ClientInitializeError::TransportError { error, .. } => transport_failure(&error, ProbeStep::Initialize),
            other => ProbeFailure::Protocol(format!(
                "server/discover failed ({}), then initialize failed: {}",
                summary(&discover),
                summary(&other)
            )),
        },
        other => ProbeFailure::Protocol(summary(&other)),
    }
}

/// One line about a handshake failure (rmcp's Debug dumps of unexpected answers are cut short).
fn summary(e: &ClientInitializeError) -> String {
    let text = match e {
        ClientInitializeError::JsonRpcError(data) => {
            format!("the server answered with JSON-RPC error {}: {}", data.code.0, data.message)
        }
        other => chain(other),
    };
    shorten(&text)
}

fn tools_failure(e: ServiceError) -> ProbeFailure {
    match e {
        ServiceError::McpError(data) => {
            ProbeFailure::ToolList(shorten(&format!("JSON-RPC error {}: {}", data.code.0, data.message)))
        }
        ServiceError::TransportSend(error) => transport_failure(&error, ProbeStep::ToolsList),
        ServiceError::TransportClosed => ProbeFailure::ToolList("the connection closed before the answer".into()),
        ServiceError::UnexpectedResponse => ProbeFailure::ToolList("the answer is not a tool list".into()),
        other => ProbeFailure::ToolList(shorten(&chain(&other))),
    }
}

/// A failure below MCP during `step`: the HTTP status the server answered with, no connection, or a protocol
/// error for anything else (content type, SSE framing, a body that is not JSON-RPC).
fn transport_failure(error: &DynamicTransportError, step: ProbeStep) -> ProbeFailure {
    let Some(http) = error.error.downcast_ref::<HttpError>() else {
        return ProbeFailure::Protocol(shorten(&chain(error)));
    };
    match http {
        StreamableHttpError::HttpStatus(s) => {
            ProbeFailure::HttpStatus { status: s.status, step, detail: String::new() }
        }
        StreamableHttpError::AuthRequired(_) => {
            ProbeFailure::HttpStatus { status: 401, step, detail: "authorization required".into() }
        }
        StreamableHttpError::InsufficientScope(_) => {
            ProbeFailure::HttpStatus { status: 403, step, detail: "insufficient scope".into() }
        }
        StreamableHttpError::UnexpectedServerResponse(text) => match http_status(text.as_ref()) {
            Some((status, detail)) => ProbeFailure::HttpStatus { status, step, detail },
            None => ProbeFailure::Protocol(shorten(text.as_ref())),
        },
        StreamableHttpError::Client(e) => http_client_failure(e),
        _ => ProbeFailure::Protocol(shorten(&chain(http))),
    }
}

/// rmcp reports a 4xx answer that is not JSON-RPC as `HTTP 404 Not Found: <body>`: the status and the body.
fn http_status(text: &str) -> Option<(u16, String)> {
    let rest = text.strip_prefix("HTTP ")?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let after = &rest[3..];
    let (reason, body) = after.split_once(": ").unwrap_or((after, ""));
    let detail = if body.trim().is_empty() { reason.trim() } else { body.trim() };
    Some((status, shorten(detail)))
}

/// At most one line of 200 characters: server answers can be whole HTML pages.
fn shorten(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_out_of_rmcps_4xx_text() {
        assert_eq!(http_status("HTTP 404 Not Found: Not Found"), Some((404, "Not Found".into())));
        assert_eq!(http_status("HTTP 405 Method Not Allowed: "), Some((405, "Method Not Allowed".into())));
        assert_eq!(
            http_status("HTTP 400 Bad Request: {\"error\": \"bad\"}\n"),
            Some((400, "{\"error\": \"bad\"}".into()))
        );
        assert_eq!(http_status("expect initialized, accepted"), None);
        assert_eq!(http_status("HTTP x"), None);
    }

    #[test]
    fn shortens_to_one_line() {
        assert_eq!(shorten("a\n  b\tc"), "a b c");
        let long = "é".repeat(300);
        assert_eq!(shorten(&long).chars().count(), 201);
    }
}
