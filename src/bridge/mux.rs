//! The multiplexer in front of one stdio server: many HTTP clients, one JSON-RPC stream.
//!
//! Every request a client sends gets an id of the bridge's own before it reaches the server's stdin (two clients
//! both numbering from 1 must not collide), and its answer gets the client's id back on the way out. Progress
//! tokens are renumbered the same way, so `notifications/progress` finds its request. What the server sends
//! unasked is routed to the session that caused it:
//! - `notifications/progress` by its token;
//! - `notifications/*/list_changed` to every session the server serves (they describe the server, not a request);
//! - other notifications, and server→client requests (sampling, elicitation, roots), to the one request in flight
//!   when there is exactly one, else to the owning session's stream in per-session mode, else they are dropped with
//!   a log line (a request the bridge cannot route is answered with an error, so the server does not wait);
//! - `ping` is answered by the bridge itself, the server's client.
//!
//! A client that goes away before its answer (closing a 2026-07-28 response stream is how it cancels) has its
//! request cancelled at the server with `notifications/cancelled`; when the server process ends, every request in
//! flight is answered with an error naming how it ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::jsonrpc::{self, Kind, Object, code};
use super::sessions::{Session, Sessions};
use crate::backend::lock;

/// Notifications and server requests buffered for one answer whose client reads slowly; more are dropped (with a
/// log line) rather than held without bound.
const NOTES_QUEUE: usize = 256;

/// Which clients a server's unasked messages may go to.
pub(crate) enum Scope {
    /// The shared server: every session of the bridge.
    Shared(Arc<Sessions>),
    /// A per-session server: its one session.
    Session(Weak<Session>),
    /// The per-session mode's server for stateless (2026-07-28) requests: no sessions at all.
    Stateless,
}

/// Who sent a request, and what its answer can carry besides the answer.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The 2025 session, for the handshake generation.
    pub session: Option<Arc<str>>,
    /// The client reads the answer as an event stream, which can carry notifications first.
    pub stream: bool,
    /// A 2026-07-28 request: no back-channel for server requests.
    pub modern: bool,
}

impl Origin {
    /// The bridge's own requests (the `initialize` it sends a shared server).
    pub fn bridge() -> Origin {
        Origin { session: None, stream: false, modern: false }
    }
}

/// The server is gone (or going): the reason, for the client's error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Closed(pub String);

/// One request in flight at the server.
struct Pending {
    client_id: Value,
    session: Option<Arc<str>>,
    /// The client's own progress token, given back on the way out.
    token: Option<Value>,
    /// Where notifications for this request go; None when the client reads no stream.
    notes: Option<mpsc::Sender<Value>>,
    /// A 2025 client reading a stream can be sent server requests on it.
    takes_requests: bool,
    done: oneshot::Sender<Value>,
}

/// A server→client request forwarded under an id of the bridge's.
struct Forwarded {
    server_id: Value,
    session: Arc<str>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    pending: HashMap<u64, Pending>,
    forwarded: HashMap<String, Forwarded>,
    next_forwarded: u64,
    closed: Option<String>,
}

struct Inner {
    /// The server's label in logs: `shared`, `stateless` or the session id.
    label: Arc<str>,
    stdin: mpsc::Sender<Vec<u8>>,
    scope: Scope,
    state: Mutex<State>,
}

/// The routing state of one server process; cheap to clone.
#[derive(Clone)]
pub(crate) struct Mux(Arc<Inner>);

/// A request sent to the server: its notifications and its answer. Dropping it before the answer cancels the
/// request at the server.
pub(crate) struct Exchange {
    id: u64,
    pub notes: mpsc::Receiver<Value>,
    pub done: oneshot::Receiver<Value>,
    mux: Mux,
}

impl Exchange {
    /// The id the request has at the server.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.mux.abandon(self.id);
    }
}

fn line(m: &impl serde::Serialize) -> Vec<u8> {
    // Values built from parsed JSON always serialize.
    serde_json::to_vec(m).unwrap_or_default()
}

impl Mux {
    pub fn new(label: Arc<str>, stdin: mpsc::Sender<Vec<u8>>, scope: Scope) -> Mux {
        Mux(Arc::new(Inner { label, stdin, scope, state: Mutex::new(State::default()) }))
    }

    pub fn label(&self) -> &Arc<str> {
        &self.0.label
    }

    /// Sends the request `m` (a client's, with the client's id) to the server under an id of the bridge's.
    pub async fn request(&self, mut m: Object, from: &Origin) -> Result<Exchange, Closed> {
        let (done_tx, done) = oneshot::channel();
        let (notes_tx, notes) = mpsc::channel(NOTES_QUEUE);
        let id = {
            let mut st = lock(&self.0.state);
            if let Some(reason) = &st.closed {
                return Err(Closed(reason.clone()));
            }
            st.next_id += 1;
            let id = st.next_id;
            let client_id = m.insert("id".into(), json!(id)).unwrap_or(Value::Null);
            let token = jsonrpc::progress_token(&m).cloned();
            if token.is_some() {
                // The bridge's id doubles as the token: unique at this server, and found again at once.
                jsonrpc::set_progress_token(&mut m, json!(id));
            }
            st.pending.insert(
                id,
                Pending {
                    client_id,
                    session: from.session.clone(),
                    token,
                    notes: from.stream.then_some(notes_tx),
                    takes_requests: from.stream && !from.modern && from.session.is_some(),
                    done: done_tx,
                },
            );
            id
        };
        let exchange = Exchange { id, notes, done, mux: self.clone() };
        if self.0.stdin.send(line(&m)).await.is_err() {
            // The writer stopped: the process is ending, and its end will answer (or has answered) the request.
            tracing::debug!(server = %self.0.label, "request sent while the MCP server's input was closing");
        }
        Ok(exchange)
    }

    /// Sends a notification to the server as it is.
    pub async fn notify(&self, m: &Object) {
        let _ = self.0.stdin.send(line(m)).await;
    }

    /// A client's `notifications/cancelled` for its request `request_id`: passed on under the bridge's id. False
    /// when no such request of the session is in flight.
    pub async fn cancel(&self, session: &str, request_id: &Value, reason: Option<&Value>) -> bool {
        let id = {
            let mut st = lock(&self.0.state);
            let found = st
                .pending
                .iter()
                .find(|(_, p)| p.session.as_deref() == Some(session) && &p.client_id == request_id)
                .map(|(id, _)| *id);
            // The client gives up on the answer: its request ends here, without one.
            found.inspect(|id| {
                st.pending.remove(id);
            })
        };
        let Some(id) = id else { return false };
        let mut params = json!({ "requestId": id });
        if let Some(reason) = reason {
            params["reason"] = reason.clone();
        }
        let _ = self
            .0
            .stdin
            .send(line(&json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": params })))
            .await;
        true
    }

    /// A client's answer to a server request the bridge forwarded to it: passed on under the server's id. False
    /// when the bridge forwarded no such request to this session.
    pub async fn answer(&self, session: &str, mut m: Object) -> bool {
        let key = m.get("id").map(id_key).unwrap_or_default();
        let forwarded = {
            let mut st = lock(&self.0.state);
            match st.forwarded.get(&key) {
                Some(f) if &*f.session == session => st.forwarded.remove(&key),
                _ => None,
            }
        };
        let Some(f) = forwarded else { return false };
        m.insert("id".into(), f.server_id);
        let _ = self.0.stdin.send(line(&m)).await;
        true
    }

    /// The client of `id` went away before its answer.
    fn abandon(&self, id: u64) {
        let gone = lock(&self.0.state).pending.remove(&id).is_some();
        if gone {
            let cancel = json!({ "jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": { "requestId": id, "reason": "the client went away" } });
            // From a destructor: no waiting. A server whose input is that full is stuck anyway.
            if self.0.stdin.try_send(line(&cancel)).is_err() {
                tracing::debug!(server = %self.0.label, request = id, "could not pass a cancellation on");
            }
        }
    }

    /// The server ended: every request in flight is answered with an error saying how, and no more are taken.
    pub fn close(&self, reason: &str) {
        let pending: Vec<Pending> = {
            let mut st = lock(&self.0.state);
            st.closed = Some(reason.to_string());
            st.forwarded.clear();
            st.pending.drain().map(|(_, p)| p).collect()
        };
        for p in pending {
            let _ = p.done.send(jsonrpc::error(p.client_id, code::INTERNAL_ERROR, reason));
        }
    }

    /// Requests in flight.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        lock(&self.0.state).pending.len()
    }

    /// Routes one message the server wrote.
    pub fn route(&self, m: Object) {
        match jsonrpc::kind(&m) {
            Some(Kind::Response) => self.complete(m),
            Some(Kind::Notification) => self.notification(m),
            Some(Kind::Request) => self.server_request(m),
            None => {
                tracing::warn!(server = %self.0.label, "the MCP server wrote a message that is not JSON-RPC; ignored")
            }
        }
    }

    fn complete(&self, mut m: Object) {
        let id = m.get("id").and_then(Value::as_u64);
        let pending = id.and_then(|id| lock(&self.0.state).pending.remove(&id));
        let Some(p) = pending else {
            // Cancelled, or an id the bridge never sent.
            tracing::debug!(server = %self.0.label, id = ?m.get("id"), "an answer nobody waits for; dropped");
            return;
        };
        m.insert("id".into(), p.client_id);
        let _ = p.done.send(Value::Object(m));
    }

    fn notification(&self, mut m: Object) {
        let method = jsonrpc::method(&m).to_string();
        if method == "notifications/progress" {
            let token = m.get("params").and_then(|p| p.get("progressToken")).and_then(Value::as_u64);
            let st = lock(&self.0.state);
            let Some(p) = token.and_then(|t| st.pending.get(&t)) else {
                tracing::debug!(server = %self.0.label, "progress for a request no longer in flight; dropped");
                return;
            };
            if let (Some(params), Some(token)) = (m.get_mut("params").and_then(Value::as_object_mut), &p.token) {
                params.insert("progressToken".into(), token.clone());
            }
            deliver_note(&self.0.label, p, Value::Object(m));
            return;
        }
        if method.ends_with("/list_changed") {
            self.broadcast(&Value::Object(m));
            return;
        }
        if method == "notifications/cancelled" {
            // The server withdraws a request it sent a client.
            let key = m.get("params").and_then(|p| p.get("requestId")).map(id_key).unwrap_or_default();
            let target = lock(&self.0.state)
                .forwarded
                .iter()
                .find(|(_, f)| id_key(&f.server_id) == key)
                .map(|(k, f)| (k.clone(), f.session.clone()));
            if let Some((bridge_id, session)) = target {
                if let Some(params) = m.get_mut("params").and_then(Value::as_object_mut) {
                    params.insert("requestId".into(), Value::String(bridge_id.clone()));
                }
                lock(&self.0.state).forwarded.remove(&bridge_id);
                self.to_session(&session, Value::Object(m));
            }
            return;
        }
        let st = lock(&self.0.state);
        let mut streams = st.pending.values().filter(|p| p.notes.is_some());
        if let (Some(only), None) = (streams.next(), streams.next()) {
            deliver_note(&self.0.label, only, Value::Object(m));
            return;
        }
        drop(st);
        if !self.to_owner(Value::Object(m)) {
            tracing::info!(
                server = %self.0.label,
                method = %method,
                "a notification of the MCP server that no session can be told it belongs to; dropped"
            );
        }
    }

    fn server_request(&self, mut m: Object) {
        let method = jsonrpc::method(&m).to_string();
        let server_id = m.get("id").cloned().unwrap_or(Value::Null);
        if method == "ping" {
            // The bridge is the server's client: it answers for itself.
            self.reply(&jsonrpc::result(server_id, json!({})));
            return;
        }
        let mut st = lock(&self.0.state);
        let target = {
            let mut takers = st.pending.values().filter(|p| p.takes_requests);
            match (takers.next(), takers.next()) {
                (Some(only), None) => only.session.clone().map(|s| (s, only.notes.clone())),
                _ => self.owner().map(|s| (s.id.clone(), None)),
            }
        };
        let Some((session, notes)) = target else {
            drop(st);
            tracing::info!(server = %self.0.label, method = %method, "a request of the MCP server that no client can answer now; refused");
            let refusal = format!("no client of the mcpfleet bridge can answer {method} now");
            self.reply(&jsonrpc::error(server_id, code::METHOD_NOT_FOUND, refusal));
            return;
        };
        st.next_forwarded += 1;
        let bridge_id = format!("mcpfleet-{}", st.next_forwarded);
        st.forwarded.insert(bridge_id.clone(), Forwarded { server_id: server_id.clone(), session: session.clone() });
        drop(st);
        m.insert("id".into(), Value::String(bridge_id.clone()));
        let m = Value::Object(m);
        let sent = match notes {
            Some(notes) => notes.try_send(m).is_ok(),
            None => self.to_session(&session, m),
        };
        if !sent {
            lock(&self.0.state).forwarded.remove(&bridge_id);
            self.reply(&jsonrpc::error(
                server_id,
                code::INTERNAL_ERROR,
                format!("the client of session {session} cannot be reached"),
            ));
        }
    }

    /// Writes the bridge's own answer to a server request.
    fn reply(&self, answer: &Value) {
        if self.0.stdin.try_send(line(answer)).is_err() {
            tracing::debug!(server = %self.0.label, "could not answer the MCP server: its input is full or closed");
        }
    }

    /// The session a per-session server belongs to.
    fn owner(&self) -> Option<Arc<Session>> {
        match &self.0.scope {
            Scope::Session(s) => s.upgrade(),
            Scope::Shared(_) | Scope::Stateless => None,
        }
    }

    /// Sends `m` on the owning session's stream (per-session mode); false when there is none open.
    fn to_owner(&self, m: Value) -> bool {
        self.owner().is_some_and(|s| s.send(m))
    }

    /// Sends `m` on the stream of session `id`.
    fn to_session(&self, id: &str, m: Value) -> bool {
        match &self.0.scope {
            Scope::Shared(sessions) => sessions.get(id).is_some_and(|s| s.send(m)),
            Scope::Session(_) => self.owner().is_some_and(|s| &*s.id == id && s.send(m)),
            Scope::Stateless => false,
        }
    }

    fn broadcast(&self, m: &Value) {
        let told = match &self.0.scope {
            Scope::Shared(sessions) => sessions.broadcast(m),
            Scope::Session(_) => usize::from(self.to_owner(m.clone())),
            Scope::Stateless => 0,
        };
        tracing::debug!(server = %self.0.label, method = ?m.get("method"), sessions = told, "notification passed to every session's stream");
    }
}

/// A request id as a map key (ids are strings or integers; both spellings of one id are the same id).
fn id_key(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn deliver_note(label: &str, p: &Pending, m: Value) {
    let Some(notes) = &p.notes else {
        tracing::debug!(server = %label, "a notification for a client that reads no stream; dropped");
        return;
    };
    if notes.try_send(m).is_err() {
        tracing::warn!(server = %label, "a client reads its stream too slowly; a notification was dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Object {
        v.as_object().cloned().unwrap()
    }

    fn mux() -> (Mux, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(16);
        (Mux::new("shared".into(), tx, Scope::Stateless), rx)
    }

    fn sent(rx: &mut mpsc::Receiver<Vec<u8>>) -> Value {
        serde_json::from_slice(&rx.try_recv().expect("a line for the server")).unwrap()
    }

    fn streaming(session: &str) -> Origin {
        Origin { session: Some(session.into()), stream: true, modern: false }
    }

    #[tokio::test]
    async fn ids_are_the_bridges_at_the_server_and_the_clients_on_the_way_back() {
        let (mux, mut rx) = mux();
        let mut a = mux
            .request(obj(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})), &streaming("a"))
            .await
            .unwrap();
        let mut b = mux
            .request(obj(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})), &streaming("b"))
            .await
            .unwrap();
        let (ida, idb) = (sent(&mut rx)["id"].clone(), sent(&mut rx)["id"].clone());
        assert_ne!(ida, idb);
        // Answered in the other order.
        mux.route(obj(json!({"jsonrpc": "2.0", "id": idb, "result": {"who": "b"}})));
        mux.route(obj(json!({"jsonrpc": "2.0", "id": ida, "result": {"who": "a"}})));
        assert_eq!((&mut a.done).await.unwrap(), json!({"jsonrpc": "2.0", "id": 1, "result": {"who": "a"}}));
        assert_eq!((&mut b.done).await.unwrap(), json!({"jsonrpc": "2.0", "id": 1, "result": {"who": "b"}}));
        assert_eq!(mux.in_flight(), 0);
    }

    #[tokio::test]
    async fn progress_tokens_are_renumbered_and_given_back() {
        let (mux, mut rx) = mux();
        let req =
            json!({"jsonrpc": "2.0", "id": "x", "method": "tools/call", "params": {"_meta": {"progressToken": "tok"}}});
        let mut ex = mux.request(obj(req), &streaming("a")).await.unwrap();
        let at_server = sent(&mut rx);
        let token = at_server["params"]["_meta"]["progressToken"].clone();
        assert_eq!(token, at_server["id"]);
        mux.route(obj(json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": 1}})));
        let note = ex.notes.try_recv().unwrap();
        assert_eq!(note["params"]["progressToken"], "tok");
    }

    #[tokio::test]
    async fn an_abandoned_request_is_cancelled_at_the_server() {
        let (mux, mut rx) = mux();
        let ex = mux
            .request(obj(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call"})), &streaming("a"))
            .await
            .unwrap();
        let id = sent(&mut rx)["id"].clone();
        drop(ex);
        let cancel = sent(&mut rx);
        assert_eq!(cancel["method"], "notifications/cancelled");
        assert_eq!(cancel["params"]["requestId"], id);
        assert_eq!(mux.in_flight(), 0);
        // Its late answer goes nowhere.
        mux.route(obj(json!({"jsonrpc": "2.0", "id": id, "result": {}})));
    }

    #[tokio::test]
    async fn closing_answers_everything_in_flight_and_refuses_more() {
        let (mux, _rx) = mux();
        let mut ex = mux
            .request(obj(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call"})), &Origin::bridge())
            .await
            .unwrap();
        mux.close("the MCP server process exited with status 3");
        let answer = (&mut ex.done).await.unwrap();
        assert_eq!(answer["id"], 9);
        assert_eq!(answer["error"]["message"], "the MCP server process exited with status 3");
        let again = mux.request(obj(json!({"jsonrpc": "2.0", "id": 10, "method": "x"})), &Origin::bridge()).await;
        assert!(again.is_err());
    }

    #[tokio::test]
    async fn server_requests_go_to_the_one_client_that_can_answer_and_back() {
        let (mux, mut rx) = mux();
        let mut ex = mux
            .request(obj(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"})), &streaming("s1"))
            .await
            .unwrap();
        sent(&mut rx);
        mux.route(obj(json!({"jsonrpc": "2.0", "id": 77, "method": "sampling/createMessage", "params": {}})));
        let forwarded = ex.notes.try_recv().unwrap();
        assert_eq!(forwarded["method"], "sampling/createMessage");
        let bridge_id = forwarded["id"].clone();
        // Another session cannot answer it; its own session can, and the server sees its own id.
        assert!(!mux.answer("s2", obj(json!({"jsonrpc": "2.0", "id": bridge_id, "result": {}}))).await);
        assert!(mux.answer("s1", obj(json!({"jsonrpc": "2.0", "id": bridge_id, "result": {"ok": true}}))).await);
        assert_eq!(sent(&mut rx), json!({"jsonrpc": "2.0", "id": 77, "result": {"ok": true}}));
    }

    #[tokio::test]
    async fn requests_nobody_can_answer_are_refused_and_pings_answered() {
        let (mux, mut rx) = mux();
        mux.route(obj(json!({"jsonrpc": "2.0", "id": 3, "method": "roots/list"})));
        let refusal = sent(&mut rx);
        assert_eq!(refusal["id"], 3);
        assert_eq!(refusal["error"]["code"], code::METHOD_NOT_FOUND);
        mux.route(obj(json!({"jsonrpc": "2.0", "id": "p", "method": "ping"})));
        assert_eq!(sent(&mut rx), json!({"jsonrpc": "2.0", "id": "p", "result": {}}));
    }
}
