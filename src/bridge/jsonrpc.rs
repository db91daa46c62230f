//! JSON-RPC 2.0 as the bridge handles it: messages stay `serde_json` objects from end to end (a proxy must pass on
//! fields it does not know, which a typed model would drop), and this module only classifies them, builds the
//! error answers the bridge gives itself and knows the MCP protocol revisions of each generation.

use rmcp::model::ProtocolVersion;
use serde_json::{Map, Value, json};

/// One JSON-RPC message.
pub type Object = Map<String, Value>;

/// JSON-RPC's own codes and MCP's (2026-07-28) codes the bridge answers with.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// HTTP headers that do not match the body (2026-07-28).
    pub const HEADER_MISMATCH: i64 = -32020;
    /// A protocol revision the server does not serve (2026-07-28).
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// What a message is, by its members (JSON-RPC 2.0 §4, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `method` and `id`: answered by exactly one response.
    Request,
    /// `method` without `id`: never answered.
    Notification,
    /// `id` with `result` or `error`.
    Response,
}

/// The kind of `m`, or None when it is none of the three (not JSON-RPC).
pub fn kind(m: &Object) -> Option<Kind> {
    let method = m.get("method").is_some_and(Value::is_string);
    let id = m.contains_key("id");
    match (method, id) {
        (true, true) if valid_id(&m["id"]) => Some(Kind::Request),
        (true, false) => Some(Kind::Notification),
        (false, true) if m.contains_key("result") || m.contains_key("error") => Some(Kind::Response),
        _ => None,
    }
}

/// MCP request ids are strings or integers (never null).
fn valid_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

/// The members of an object value (of `json!({…})` literals, say); nothing for any other value.
pub fn object(v: Value) -> Object {
    match v {
        Value::Object(m) => m,
        _ => Object::new(),
    }
}

/// The method of a request or notification.
pub fn method(m: &Object) -> &str {
    m.get("method").and_then(Value::as_str).unwrap_or_default()
}

/// An error answer to the request `id` (`null` when the request could not be read).
pub fn error(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message.into() } })
}

/// An error answer with `data`.
pub fn error_with_data(id: Value, code: i64, message: impl Into<String>, data: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message.into(), "data": data } })
}

/// A result answer to the request `id`.
pub fn result(id: Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// The HTTP status a 2026-07-28 server sends with an error answer (the specification's table; every other error
/// travels with 200).
pub fn http_status(answer: &Value) -> u16 {
    match answer.pointer("/error/code").and_then(Value::as_i64) {
        Some(
            code::PARSE_ERROR
            | code::INVALID_REQUEST
            | code::INVALID_PARAMS
            | code::HEADER_MISMATCH
            | code::UNSUPPORTED_PROTOCOL_VERSION,
        ) => 400,
        Some(code::METHOD_NOT_FOUND) => 404,
        _ => 200,
    }
}

/// The revisions with the `initialize` handshake (2024-11-05 … 2025-11-25), oldest first.
pub fn handshake_versions() -> impl Iterator<Item = &'static str> {
    ProtocolVersion::KNOWN_VERSIONS.iter().filter(|v| v.has_initialize()).map(ProtocolVersion::as_str)
}

/// The stateless revisions (2026-07-28 and later), oldest first.
pub fn modern_versions() -> impl Iterator<Item = &'static str> {
    ProtocolVersion::KNOWN_VERSIONS.iter().filter(|v| !v.has_initialize()).map(ProtocolVersion::as_str)
}

/// The newest handshake revision: what the bridge asks a stdio server for.
pub fn latest_handshake() -> &'static str {
    ProtocolVersion::LATEST_WITH_INITIALIZE.as_str()
}

/// Whether `version` is one of the handshake revisions.
pub fn is_handshake_version(version: &str) -> bool {
    handshake_versions().any(|v| v == version)
}

/// The methods whose 2026-07-28 results carry caching hints (`ttlMs`, `cacheScope`).
pub const CACHEABLE_METHODS: [&str; 6] =
    ["prompts/list", "resources/list", "resources/read", "resources/templates/list", "server/discover", "tools/list"];

/// The methods whose 2026-07-28 requests name their target in the `Mcp-Name` header, and the parameter named.
pub fn name_parameter(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// An `Mcp-Name` header's value: as written, or decoded from its `=?base64?…?=` form (names that are not
/// visible ASCII). None for a base64 form that does not decode to UTF-8.
pub fn decode_header_value(value: &str) -> Option<String> {
    use base64::Engine;
    match value.strip_prefix("=?base64?").and_then(|v| v.strip_suffix("?=")) {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(value.to_string()),
    }
}

/// The `_meta` keys a 2026-07-28 request carries the client's context in. A stdio server that was initialized
/// with the handshake has its context from `initialize` and never negotiated these.
pub const ENVELOPE_PREFIX: &str = "io.modelcontextprotocol/";
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// The request's `params._meta`, when it is an object.
pub fn meta(m: &Object) -> Option<&Object> {
    m.get("params")?.get("_meta")?.as_object()
}

/// Removes the 2026-07-28 envelope keys from `params._meta` (and `_meta` itself when nothing else is left in it).
pub fn strip_envelope(m: &mut Object) {
    let Some(params) = m.get_mut("params").and_then(Value::as_object_mut) else { return };
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else { return };
    meta.retain(|k, _| !k.starts_with(ENVELOPE_PREFIX));
    if meta.is_empty() {
        params.remove("_meta");
    }
}

/// The request's progress token (`params._meta.progressToken`).
pub fn progress_token(m: &Object) -> Option<&Value> {
    meta(m)?.get("progressToken")
}

/// Replaces the request's progress token.
pub fn set_progress_token(m: &mut Object, token: Value) {
    if let Some(meta) = m.get_mut("params").and_then(|p| p.get_mut("_meta")).and_then(Value::as_object_mut) {
        meta.insert("progressToken".into(), token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Object {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn classifies_by_members() {
        assert_eq!(kind(&obj(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))), Some(Kind::Request));
        assert_eq!(kind(&obj(json!({"jsonrpc": "2.0", "id": "a", "method": "x"}))), Some(Kind::Request));
        assert_eq!(kind(&obj(json!({"jsonrpc": "2.0", "method": "notifications/x"}))), Some(Kind::Notification));
        assert_eq!(kind(&obj(json!({"jsonrpc": "2.0", "id": 3, "result": {}}))), Some(Kind::Response));
        assert_eq!(kind(&obj(json!({"jsonrpc": "2.0", "id": 3, "error": {}}))), Some(Kind::Response));
        assert_eq!(kind(&obj(json!({"jsonrpc": "2.0", "id": null, "method": "x"}))), None);
        assert_eq!(kind(&obj(json!({"jsonrpc": "2.0", "id": 1.5, "method": "x"}))), None);
        assert_eq!(kind(&obj(json!({"jsonrpc": "2.0", "id": 3}))), None);
        assert_eq!(kind(&obj(json!({"hello": "world"}))), None);
    }

    #[test]
    fn strips_only_the_envelope() {
        let mut m = obj(json!({"id": 1, "method": "tools/call", "params": {"name": "x", "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "progressToken": 7
        }}}));
        strip_envelope(&mut m);
        assert_eq!(m["params"], json!({"name": "x", "_meta": {"progressToken": 7}}));
        let mut m = obj(json!({"id": 1, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28"
        }}}));
        strip_envelope(&mut m);
        assert_eq!(m["params"], json!({}));
    }

    #[test]
    fn header_values_decode_plain_and_base64() {
        assert_eq!(decode_header_value("echo").as_deref(), Some("echo"));
        assert_eq!(decode_header_value("=?base64?w6ljaG8=?=").as_deref(), Some("écho"));
        assert_eq!(decode_header_value("=?base64?not base64?="), None);
        assert_eq!(name_parameter("resources/read"), Some("uri"));
        assert_eq!(name_parameter("tools/list"), None);
    }

    #[test]
    fn knows_both_generations() {
        assert!(is_handshake_version("2025-06-18") && is_handshake_version("2024-11-05"));
        assert!(!is_handshake_version("2026-07-28"));
        assert_eq!(modern_versions().collect::<Vec<_>>(), ["2026-07-28"]);
        assert_eq!(latest_handshake(), "2025-11-25");
        assert_eq!(http_status(&error(json!(1), code::METHOD_NOT_FOUND, "x")), 404);
        assert_eq!(http_status(&error(json!(1), code::INTERNAL_ERROR, "x")), 200);
    }
}
