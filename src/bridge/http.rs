//! The HTTP side of the bridge: MCP's Streamable HTTP transport on `--path`, for both protocol generations, and
//! `/health` and `/ready` beside it.
//!
//! A POST whose `MCP-Protocol-Version` header names no handshake revision is a 2026-07-28 request: checked as the
//! revision asks (the `_meta` envelope, headers that match the body, a revision the bridge serves), answered by the
//! bridge for `server/discover`, otherwise passed to the shared server without the envelope. Any other POST belongs
//! to the 2025 handshake: `initialize` opens a session (shared mode: answered from the server's own `initialize`
//! result; per-session mode: a new server answers it), and later messages name it with `Mcp-Session-Id`; GET opens
//! the session's stream for server messages, DELETE ends it.
//!
//! An answer goes back as `application/json` when it is the first thing the server sends for the request, and as
//! an event stream when notifications come first (the client must accept `text/event-stream`), or when the server
//! stays quiet for [`KEEPALIVE`]: a stream then carries comment pings, so a load balancer's idle timeout does not
//! cut a long tool call.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::child::{Child, Initialized};
use super::jsonrpc::{self, Kind, Object, code};
use super::mux::{Exchange, Origin, Scope};
use super::sessions::{self, Session};
use super::{Bridge, Config, Mode, Server};

/// The largest request body taken (tool arguments may carry files).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// How long an answer may stay silent before it is turned into a stream with comment pings.
const KEEPALIVE: Duration = Duration::from_secs(15);

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";

pub(super) fn router(bridge: Arc<Bridge>) -> Router {
    let path = bridge.config.path.clone();
    Router::new()
        .route(Config::HEALTH_PATH, get(health))
        .route(Config::READY_PATH, get(ready))
        .route(&path, get(open_stream).post(post).delete(end_session))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(bridge)
}

/// Liveness: the server process runs (it may still be initializing).
async fn health(State(b): State<Arc<Bridge>>) -> Response {
    let state = b.server.borrow().clone();
    match state {
        Server::Starting { pid: Some(pid) } => {
            (StatusCode::OK, format!("ok: the MCP server process {pid} runs (initializing)\n"))
        }
        Server::Ready { child, .. } if child.alive() => {
            (StatusCode::OK, format!("ok: the MCP server process {} runs\n", child.pid))
        }
        Server::Ready { .. } | Server::Starting { pid: None } => {
            (StatusCode::SERVICE_UNAVAILABLE, "the MCP server process is not running\n".to_string())
        }
        Server::Down { reason } => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        Server::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "the bridge is stopping\n".to_string()),
    }
    .into_response()
}

/// Readiness: the server answered its initialization (and the bridge is not draining).
async fn ready(State(b): State<Arc<Bridge>>) -> Response {
    let state = b.server.borrow().clone();
    let (ready, reason) = match state {
        _ if b.draining() => (false, "the bridge is shutting down".to_string()),
        Server::Ready { child, .. } if child.alive() => (true, String::new()),
        Server::Ready { .. } => (false, "the MCP server process ended".into()),
        Server::Starting { pid: Some(pid) } => (false, format!("the MCP server process {pid} is initializing")),
        Server::Starting { pid: None } => (false, "the MCP server process is starting".into()),
        Server::Down { reason } => (false, reason),
        Server::Stopped => (false, "the bridge is stopping".into()),
    };
    let sessions = b.sessions.len();
    let body = if ready {
        json!({ "ready": true, "mode": b.config.mode.as_str(), "sessions": sessions })
    } else {
        json!({ "ready": false, "reason": reason, "mode": b.config.mode.as_str(), "sessions": sessions })
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains(media))
}

/// A JSON-RPC message as an `application/json` answer.
fn json_answer(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// An error the bridge answers itself.
fn refuse(status: StatusCode, id: Value, code: i64, message: impl Into<String>) -> Response {
    json_answer(status, &jsonrpc::error(id, code, message))
}

fn unavailable(id: Value, why: impl Into<String>) -> Response {
    let mut response = refuse(StatusCode::SERVICE_UNAVAILABLE, id, code::INTERNAL_ERROR, why);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The shared server when it is ready; the reason it is not otherwise.
fn ready_server(b: &Bridge) -> Result<(Arc<Child>, Arc<Initialized>), String> {
    match &*b.server.borrow() {
        Server::Ready { child, init } if child.alive() => Ok((child.clone(), init.clone())),
        Server::Ready { .. } => Err("the MCP server process ended".into()),
        Server::Starting { .. } => Err("the MCP server is starting".into()),
        Server::Down { reason } => Err(format!("the MCP server is not running: {reason}")),
        Server::Stopped => Err("the bridge is stopping".into()),
    }
}

async fn post(State(b): State<Arc<Bridge>>, headers: HeaderMap, body: Bytes) -> Response {
    if b.draining() {
        return unavailable(Value::Null, "the bridge is shutting down");
    }
    let m = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        Ok(Value::Array(_)) => {
            let why = "JSON-RPC batches are not taken: send one message per request";
            return refuse(StatusCode::BAD_REQUEST, Value::Null, code::INVALID_REQUEST, why);
        }
        Ok(_) => return refuse(StatusCode::BAD_REQUEST, Value::Null, code::INVALID_REQUEST, "not a JSON-RPC message"),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, Value::Null, code::PARSE_ERROR, format!("parse error: {e}")),
    };
    let Some(kind) = jsonrpc::kind(&m) else {
        let why = "not a JSON-RPC request, notification or response";
        return refuse(StatusCode::BAD_REQUEST, Value::Null, code::INVALID_REQUEST, why);
    };
    let stream = accepts(&headers, "text/event-stream");
    match header_str(&headers, VERSION_HEADER) {
        Some(v) if !jsonrpc::is_handshake_version(v) => modern(&b, &headers, m, kind, stream).await,
        _ => handshake(&b, &headers, m, kind, stream).await,
    }
}

/// A 2026-07-28 message.
async fn modern(b: &Bridge, headers: &HeaderMap, mut m: Object, kind: Kind, stream: bool) -> Response {
    match kind {
        // No client notification of this revision means anything to a per-request server; accepted, as the SDKs do.
        Kind::Notification => return StatusCode::ACCEPTED.into_response(),
        Kind::Response => {
            let why = "a 2026-07-28 client has no server requests to answer";
            return refuse(StatusCode::BAD_REQUEST, Value::Null, code::INVALID_REQUEST, why);
        }
        Kind::Request => {}
    }
    let id = m.get("id").cloned().unwrap_or(Value::Null);
    if let Err(answer) = check_envelope(headers, &m) {
        return json_answer(status_of(&answer), &answer);
    }
    let method = jsonrpc::method(&m).to_string();
    let (child, init) = match ready_server(b) {
        Ok(ready) => ready,
        Err(why) => return unavailable(id, why),
    };
    match method.as_str() {
        "server/discover" => return json_answer(StatusCode::OK, &jsonrpc::result(id, discover(&init))),
        "initialize" | "subscriptions/listen" => {
            let why = format!("{method} is not served through the mcpfleet bridge at revision 2026-07-28");
            return refuse(StatusCode::NOT_FOUND, id, code::METHOD_NOT_FOUND, why);
        }
        _ => {}
    }
    jsonrpc::strip_envelope(&mut m);
    let shape = Shape::of(&method);
    let origin = Origin { session: None, stream, modern: true };
    match child.mux.request(m, &origin).await {
        Ok(exchange) => respond(exchange, stream, shape).await,
        Err(closed) => unavailable(id, closed.0),
    }
}

fn status_of(answer: &Value) -> StatusCode {
    StatusCode::from_u16(jsonrpc::http_status(answer)).unwrap_or(StatusCode::OK)
}

/// The 2026-07-28 checks of a request: its `_meta` envelope, headers that agree with it, a revision served.
fn check_envelope(headers: &HeaderMap, m: &Object) -> Result<(), Value> {
    let id = m.get("id").cloned().unwrap_or(Value::Null);
    let meta = jsonrpc::meta(m);
    let version = meta.and_then(|meta| meta.get(jsonrpc::META_PROTOCOL_VERSION));
    if version.is_none() || meta.and_then(|meta| meta.get(jsonrpc::META_CLIENT_CAPABILITIES)).is_none() {
        let why = format!(
            "params._meta must carry {} and {}",
            jsonrpc::META_PROTOCOL_VERSION,
            jsonrpc::META_CLIENT_CAPABILITIES
        );
        return Err(jsonrpc::error(id, code::INVALID_PARAMS, why));
    }
    let version = version.and_then(Value::as_str).unwrap_or_default();
    if header_str(headers, VERSION_HEADER) != Some(version) {
        let why = "the MCP-Protocol-Version header does not match the request's protocol version";
        return Err(jsonrpc::error(id, code::HEADER_MISMATCH, why));
    }
    if header_str(headers, METHOD_HEADER) != Some(jsonrpc::method(m)) {
        let why = "the Mcp-Method header does not match the request's method";
        return Err(jsonrpc::error(id, code::HEADER_MISMATCH, why));
    }
    // A request naming a tool, prompt or resource names it in Mcp-Name too, for what routes or authorizes by
    // headers: the two must agree.
    let param = jsonrpc::name_parameter(jsonrpc::method(m));
    let named = param.and_then(|p| m.get("params")?.get(p)?.as_str());
    if let (Some(param), Some(named)) = (param, named)
        && header_str(headers, NAME_HEADER).and_then(jsonrpc::decode_header_value).as_deref() != Some(named)
    {
        let why = format!("the Mcp-Name header does not match the request's {param}");
        return Err(jsonrpc::error(id, code::HEADER_MISMATCH, why));
    }
    if !jsonrpc::modern_versions().any(|v| v == version) {
        let data = json!({ "supported": supported_versions(None), "requested": version });
        return Err(jsonrpc::error_with_data(
            id,
            code::UNSUPPORTED_PROTOCOL_VERSION,
            "unsupported protocol version",
            data,
        ));
    }
    Ok(())
}

/// The revisions the bridge serves clients: the handshake ones up to the server's own, and the stateless ones.
fn supported_versions(server: Option<&str>) -> Vec<&'static str> {
    let handshake = jsonrpc::handshake_versions().filter(|v| server.is_none_or(|s| *v <= s));
    handshake.chain(jsonrpc::modern_versions()).collect()
}

/// `server/discover`, answered from the server's `initialize` result.
fn discover(init: &Initialized) -> Value {
    let r = &init.result;
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": supported_versions(Some(&init.protocol_version)),
        "capabilities": r.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "ttlMs": 0,
        "cacheScope": "private",
    });
    if let Some(instructions) = r.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    let mut meta = r.get("_meta").and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(info) = r.get("serverInfo") {
        meta.insert("io.modelcontextprotocol/serverInfo".into(), info.clone());
    }
    if !meta.is_empty() {
        result["_meta"] = Value::Object(meta);
    }
    result
}

/// A message of the 2025 handshake generation.
async fn handshake(b: &Bridge, headers: &HeaderMap, m: Object, kind: Kind, stream: bool) -> Response {
    let id = m.get("id").cloned().unwrap_or(Value::Null);
    let Some(session_id) = header_str(headers, SESSION_HEADER) else {
        if kind == Kind::Request && jsonrpc::method(&m) == "initialize" {
            return open_session(b, m).await;
        }
        let why = "no Mcp-Session-Id: start with initialize (or send MCP-Protocol-Version: 2026-07-28 for stateless requests)";
        return refuse(StatusCode::BAD_REQUEST, id, code::INVALID_REQUEST, why);
    };
    let Some(session) = b.sessions.get(session_id) else {
        // 404 tells a 2025 client to start a new session.
        return refuse(
            StatusCode::NOT_FOUND,
            id,
            code::INVALID_REQUEST,
            format!("no session {session_id} (it ended or expired)"),
        );
    };
    let _busy = session.busy();
    let child = match session_server(b, &session) {
        Ok(child) => child,
        Err(why) => return unavailable(id, why),
    };
    match kind {
        Kind::Request if jsonrpc::method(&m) == "initialize" => {
            refuse(StatusCode::BAD_REQUEST, id, code::INVALID_REQUEST, "the session is initialized already")
        }
        Kind::Request => {
            let origin = Origin { session: Some(session.id.clone()), stream, modern: false };
            match child.mux.request(m, &origin).await {
                Ok(exchange) => respond(exchange, stream, Shape::Handshake).await,
                Err(closed) => unavailable(id, closed.0),
            }
        }
        Kind::Notification => {
            client_notification(b, &session, &child, &m).await;
            StatusCode::ACCEPTED.into_response()
        }
        Kind::Response => {
            if !child.mux.answer(&session.id, m).await {
                tracing::debug!(session = %session.id, "an answer to a request the server did not send this session; dropped");
            }
            StatusCode::ACCEPTED.into_response()
        }
    }
}

/// The server process a session's requests go to.
fn session_server(b: &Bridge, session: &Session) -> Result<Arc<Child>, String> {
    match session.child.get() {
        Some(child) if child.alive() => Ok(child.clone()),
        Some(_) => Err("the session's MCP server process ended".into()),
        None => ready_server(b).map(|(child, _)| child),
    }
}

async fn client_notification(b: &Bridge, session: &Session, child: &Child, m: &Object) {
    let method = jsonrpc::method(m);
    let params = m.get("params");
    match method {
        "notifications/cancelled" => {
            let request = params.and_then(|p| p.get("requestId")).cloned().unwrap_or(Value::Null);
            child.mux.cancel(&session.id, &request, params.and_then(|p| p.get("reason"))).await;
        }
        // Per-session: the server is the client's own, and hears everything it says.
        _ if b.config.mode == Mode::PerSession => child.mux.notify(m).await,
        // Shared: the bridge initialized the server itself, and what one client says of its own session (that it is
        // initialized, that its roots changed) is not the shared server's business.
        _ => tracing::debug!(session = %session.id, method, "a client notification not passed to the shared server"),
    }
}

/// `initialize` without a session: a new session.
async fn open_session(b: &Bridge, m: Object) -> Response {
    let id = m.get("id").cloned().unwrap_or(Value::Null);
    let Some(slot) = b.sessions.reserve() else {
        return unavailable(
            id,
            format!("the bridge holds its maximum of {} sessions; try again later", b.sessions.max()),
        );
    };
    let session_id = match sessions::new_id() {
        Ok(sid) => sid,
        Err(e) => return unavailable(id, format!("no session id: the system's random source failed: {e}")),
    };
    let requested = m.get("params").and_then(|p| p.get("protocolVersion")).and_then(Value::as_str).unwrap_or_default();
    let (session, answer) = match b.config.mode {
        Mode::Shared => {
            let (_, init) = match ready_server(b) {
                Ok(ready) => ready,
                Err(why) => return unavailable(id, why),
            };
            let version = negotiate(requested, &init.protocol_version);
            let mut result = init.result.clone();
            result.insert("protocolVersion".into(), json!(version));
            let session = Session::new(session_id);
            session.agree(version);
            (session, jsonrpc::result(id, Value::Object(result)))
        }
        Mode::PerSession => match start_session_server(b, session_id, m).await {
            Ok(opened) => opened,
            Err(response) => return *response,
        },
    };
    tracing::info!(
        session = %session.id,
        pid = session.child.get().map(|c| c.pid),
        protocol = %session.protocol_version(),
        "session opened"
    );
    let sid = HeaderValue::from_str(&session.id).ok();
    slot.fill(session);
    let mut response = json_answer(StatusCode::OK, &answer);
    if let Some(sid) = sid {
        response.headers_mut().insert(SESSION_HEADER, sid);
    }
    response
}

/// Per-session mode: a new server process for the session, initialized with the client's own `initialize`.
async fn start_session_server(
    b: &Bridge,
    session_id: Arc<str>,
    m: Object,
) -> Result<(Arc<Session>, Value), Box<Response>> {
    let id = m.get("id").cloned().unwrap_or(Value::Null);
    let pending = Session::new(session_id.clone());
    let sessions = b.sessions.clone();
    let ends = session_id.clone();
    let on_exit = move |how: &str| {
        if sessions.remove(&ends).is_some() {
            tracing::info!(session = %ends, "session ended: its MCP server process {how}");
        }
    };
    let scope = Scope::Session(Arc::downgrade(&pending));
    let child = Child::start(&b.config.command, session_id, scope, on_exit)
        .map_err(|e| Box::new(unavailable(id.clone(), e.to_string())))?;
    let opened = async {
        let mut exchange = child.mux.request(m, &Origin::bridge()).await.map_err(|e| e.0)?;
        let answer = tokio::time::timeout(super::INIT_TIMEOUT, &mut exchange.done)
            .await
            .map_err(|_| format!("the MCP server did not answer initialize within {:?}", super::INIT_TIMEOUT))?
            .map_err(|_| "the MCP server's answer was lost".to_string())?;
        Ok::<Value, String>(answer)
    };
    let answer = match opened.await {
        Ok(answer) => answer,
        Err(why) => {
            child.terminate(b.config.child_grace).await;
            return Err(Box::new(unavailable(id, why)));
        }
    };
    let Ok(init) = super::child::initialized(&answer) else {
        // The server refused this client's initialize: the client gets its answer, and no session.
        child.terminate(b.config.child_grace).await;
        return Err(Box::new(json_answer(StatusCode::OK, &answer)));
    };
    pending.agree(init.protocol_version);
    let _ = pending.child.set(child);
    Ok((pending, answer))
}

/// The revision a shared-mode session runs at: the client's when the server's is at least as new (the shared server
/// was initialized with its newest), else the server's.
fn negotiate(requested: &str, server: &str) -> String {
    if jsonrpc::is_handshake_version(requested) && requested <= server { requested } else { server }.to_string()
}

/// GET: the session's stream for what the server sends outside any request.
async fn open_stream(State(b): State<Arc<Bridge>>, headers: HeaderMap) -> Response {
    if !accepts(&headers, "text/event-stream") {
        return (StatusCode::NOT_ACCEPTABLE, "GET opens an event stream: accept text/event-stream\n").into_response();
    }
    if b.draining() {
        return unavailable(Value::Null, "the bridge is shutting down");
    }
    let Some(session) = header_str(&headers, SESSION_HEADER).and_then(|s| b.sessions.get(s)) else {
        let why = "GET needs the Mcp-Session-Id of a session that is open";
        return refuse(StatusCode::NOT_FOUND, Value::Null, code::INVALID_REQUEST, why);
    };
    let rx = session.open_stream();
    let events = futures::stream::unfold(rx, |mut rx| async move {
        let m = rx.recv().await?;
        Some((Ok::<Event, std::convert::Infallible>(event(&m)), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEPALIVE)).into_response()
}

/// DELETE: the client ends its session (per-session mode: its server process is stopped).
async fn end_session(State(b): State<Arc<Bridge>>, headers: HeaderMap) -> Response {
    let Some(session) = header_str(&headers, SESSION_HEADER).and_then(|s| b.sessions.remove(s)) else {
        return (StatusCode::NOT_FOUND, "no such session\n").into_response();
    };
    session.close_stream();
    tracing::info!(session = %session.id, "session ended by its client");
    if let Some(child) = session.child.get().cloned() {
        let grace = b.config.child_grace;
        tokio::spawn(async move { child.terminate(grace).await });
    }
    StatusCode::OK.into_response()
}

fn event(m: &Value) -> Event {
    Event::default().event("message").data(m.to_string())
}

/// How an answer goes back: as the server wrote it (the handshake generation), or completed to the shape the
/// 2026-07-28 revision requires of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Handshake,
    /// `cacheable`: a list or read method, whose results carry caching hints.
    Stateless {
        cacheable: bool,
    },
}

impl Shape {
    fn of(method: &str) -> Shape {
        Shape::Stateless { cacheable: jsonrpc::CACHEABLE_METHODS.contains(&method) }
    }
}

/// A 2026-07-28 result carries its `resultType`, and a cacheable one its `ttlMs` and `cacheScope`; a handshake-era
/// server's results have none of them. The hints added say "do not cache, and never for another user": the server
/// gave none, and the bridge cannot know how long its answers hold.
fn finish(mut answer: Value, shape: Shape) -> Value {
    let Shape::Stateless { cacheable } = shape else { return answer };
    if let Some(result) = answer.get_mut("result").and_then(Value::as_object_mut) {
        result.entry("resultType").or_insert_with(|| json!("complete"));
        if cacheable {
            result.entry("ttlMs").or_insert_with(|| json!(0));
            result.entry("cacheScope").or_insert_with(|| json!("private"));
        }
    }
    answer
}

/// What the server sent first for a request.
enum First {
    Answer(Value),
    Note(Value),
    Quiet,
}

/// The answer to a request: JSON when the answer is the first thing the server sends, else an event stream of the
/// notifications and then the answer.
async fn respond(mut ex: Exchange, stream: bool, shape: Shape) -> Response {
    let lost = |ex: &Exchange| {
        jsonrpc::error(Value::Null, code::INTERNAL_ERROR, format!("the request {} was given up", ex.id()))
    };
    let first = if stream {
        tokio::select! {
            biased;
            note = ex.notes.recv() => match note {
                Some(note) => First::Note(note),
                None => First::Answer((&mut ex.done).await.unwrap_or_else(|_| lost(&ex))),
            },
            answer = &mut ex.done => First::Answer(answer.unwrap_or_else(|_| lost(&ex))),
            _ = tokio::time::sleep(KEEPALIVE) => First::Quiet,
        }
    } else {
        First::Answer((&mut ex.done).await.unwrap_or_else(|_| lost(&ex)))
    };
    match first {
        First::Answer(answer) => {
            let answer = finish(answer, shape);
            let status = if shape == Shape::Handshake { StatusCode::OK } else { status_of(&answer) };
            json_answer(status, &answer)
        }
        First::Note(note) => streamed(ex, Some(note), shape),
        First::Quiet => streamed(ex, None, shape),
    }
}

/// The rest of an exchange as an event stream, ending with the answer. Dropping the stream (the client went away)
/// drops the exchange, which cancels the request at the server.
fn streamed(ex: Exchange, first: Option<Value>, shape: Shape) -> Response {
    struct Rest {
        ex: Exchange,
        first: Option<Value>,
        done: bool,
        shape: Shape,
    }
    let state = Rest { ex, first, done: false, shape };
    let events = futures::stream::unfold(state, |mut s| async move {
        if let Some(first) = s.first.take() {
            return Some((Ok::<Event, std::convert::Infallible>(event(&first)), s));
        }
        if s.done {
            return None;
        }
        let next = tokio::select! {
            biased;
            note = s.ex.notes.recv() => note,
            answer = &mut s.ex.done => {
                s.done = true;
                let answer = answer.unwrap_or_else(|_| jsonrpc::error(Value::Null, code::INTERNAL_ERROR, "the request was given up"));
                Some(finish(answer, s.shape))
            }
        };
        let next = match next {
            Some(m) => m,
            // Every notification sender is gone: the answer is all that is left.
            None => {
                s.done = true;
                let answer = (&mut s.ex.done).await;
                finish(
                    answer.unwrap_or_else(|_| {
                        jsonrpc::error(Value::Null, code::INTERNAL_ERROR, "the request was given up")
                    }),
                    s.shape,
                )
            }
        };
        Some((Ok(event(&next)), s))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEPALIVE)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_sessions_run_at_the_clients_revision_up_to_the_servers() {
        assert_eq!(negotiate("2025-03-26", "2025-11-25"), "2025-03-26");
        assert_eq!(negotiate("2025-11-25", "2025-06-18"), "2025-06-18");
        assert_eq!(negotiate("1999-01-01", "2025-06-18"), "2025-06-18");
        assert_eq!(negotiate("2026-07-28", "2025-11-25"), "2025-11-25");
    }

    #[test]
    fn discover_is_answered_from_the_servers_initialize_result() {
        let init = Initialized {
            result: jsonrpc::object(json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {"listChanged": true}},
                "serverInfo": {"name": "everything", "version": "2.0.0"},
                "instructions": "use the tools",
            })),
            protocol_version: "2025-06-18".into(),
        };
        let d = discover(&init);
        assert_eq!(d["supportedVersions"], json!(["2024-11-05", "2025-03-26", "2025-06-18", "2026-07-28"]));
        assert_eq!(d["capabilities"], json!({"tools": {"listChanged": true}}));
        assert_eq!(d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "everything");
        assert_eq!(d["instructions"], "use the tools");
        assert_eq!(
            (d["resultType"].as_str(), d["cacheScope"].as_str(), d["ttlMs"].as_u64()),
            (Some("complete"), Some("private"), Some(0))
        );
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (axum::http::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn the_2026_envelope_is_checked_like_the_sdks_do() {
        let m = jsonrpc::object(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }}}));
        let good = headers(&[(VERSION_HEADER, "2026-07-28"), (METHOD_HEADER, "tools/list")]);
        assert!(check_envelope(&good, &m).is_ok());
        let wrong_method = headers(&[(VERSION_HEADER, "2026-07-28"), (METHOD_HEADER, "tools/call")]);
        assert_eq!(check_envelope(&wrong_method, &m).unwrap_err()["error"]["code"], code::HEADER_MISMATCH);
        let call = jsonrpc::object(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            }}}),
        );
        let named = |name: &'static str| {
            headers(&[(VERSION_HEADER, "2026-07-28"), (METHOD_HEADER, "tools/call"), (NAME_HEADER, name)])
        };
        assert!(check_envelope(&named("echo"), &call).is_ok());
        assert!(check_envelope(&named("=?base64?ZWNobw==?="), &call).is_ok());
        let other = check_envelope(&named("crash"), &call).unwrap_err();
        assert_eq!(other["error"]["message"], "the Mcp-Name header does not match the request's name");
        let unnamed = headers(&[(VERSION_HEADER, "2026-07-28"), (METHOD_HEADER, "tools/call")]);
        assert_eq!(check_envelope(&unnamed, &call).unwrap_err()["error"]["code"], code::HEADER_MISMATCH);
        let bare = jsonrpc::object(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
        assert_eq!(check_envelope(&good, &bare).unwrap_err()["error"]["code"], code::INVALID_PARAMS);
        let future = jsonrpc::object(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2027-01-01",
            "io.modelcontextprotocol/clientCapabilities": {},
        }}}));
        let h = headers(&[(VERSION_HEADER, "2027-01-01"), (METHOD_HEADER, "tools/list")]);
        let refused = check_envelope(&h, &future).unwrap_err();
        assert_eq!(refused["error"]["code"], code::UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(refused["error"]["data"]["requested"], "2027-01-01");
        assert_eq!(status_of(&refused), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn stateless_results_get_the_members_the_revision_requires() {
        let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}});
        let listed = finish(answer.clone(), Shape::of("tools/list"));
        assert_eq!(
            listed["result"],
            json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private"})
        );
        let called = finish(answer.clone(), Shape::of("tools/call"));
        assert_eq!(called["result"], json!({"tools": [], "resultType": "complete"}));
        assert_eq!(finish(answer.clone(), Shape::Handshake), answer);
        // A server's own hints stay.
        let hinted = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [], "ttlMs": 5000, "cacheScope": "public"}});
        assert_eq!(finish(hinted, Shape::of("tools/list"))["result"]["ttlMs"], 5000);
    }
}
