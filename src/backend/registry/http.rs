//! The registry client's HTTP side (reqwest over rustls; its types stay in this file): one request with its
//! retries, the per-registry limit on requests in flight, and the answer read into plain data.
//!
//! Each attempt holds one of the registry's [`IN_FLIGHT`] permits while it is sent and its body read, and gives
//! it back before any backoff wait. A 429, a 5xx, or a connection or timeout failure is retried with the
//! project's policy (`backend::limits`: up to [`MAX_RETRIES`] retries, 0.2 s doubling to 10 s, ±50 % jitter);
//! a `Retry-After` of up to [`RETRY_AFTER_LIMIT`] is waited out when longer than the backoff, and a longer one
//! (Docker Hub's pull limit asks for hours) ends the retries at once with the registry's words. Bodies are
//! read up to a bound per kind of request, so a hostile registry cannot fill memory.

use std::time::Duration;

use backoff::backoff::Backoff;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};

use super::RegistryStats;
use crate::backend::limits::{MAX_BACKOFF, MAX_RETRIES, backoff_policy};
use crate::backend::manifest::MEDIA_TYPES;
use crate::backend::{BackendError, Op};

/// Requests in flight to one registry at most.
pub const IN_FLIGHT: usize = 4;
/// The longest `Retry-After` that is waited out; a registry asking for longer fails the lookup at once.
pub const RETRY_AFTER_LIMIT: Duration = Duration::from_secs(30);
/// The largest manifest, token answer or error body read (the distribution registry's own manifest limit).
pub const MAX_BODY: usize = 4 << 20;
/// The largest image config blob read (configs carry the build history; real ones are a few KiB).
pub const MAX_CONFIG: usize = 8 << 20;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Head,
    Get,
}

/// The `Authorization` a request carries.
#[derive(Clone, PartialEq, Eq)]
pub enum Authorization {
    None,
    Bearer(String),
    Basic { username: String, password: String },
}

/// One request: where, how, and which [`Op`] it counts as.
pub struct Request<'a> {
    pub op: Op,
    pub method: Method,
    pub url: &'a str,
    /// Whether it asks for a manifest (the `Accept` header lists the media types we read).
    pub manifest: bool,
    pub auth: &'a Authorization,
    /// The most body bytes read.
    pub limit: usize,
}

/// A registry's answer, read.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    /// `Docker-Content-Digest`, when the registry sent one.
    pub digest: Option<String>,
    pub www_authenticate: Vec<String>,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
    /// The body was longer than the request's limit and was not read to its end.
    pub too_large: bool,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The status line, and the registry's own words when its body has some: the distribution error envelope
    /// (`CODE: message`), a token service's `details`/`error`, else the start of the body as text. A wait asked
    /// for with `Retry-After` is said too.
    pub fn message(&self) -> String {
        let mut text = status_line(self.status);
        if let Some(words) = registry_message(&self.body) {
            text = format!("{text}: {words}");
        }
        if let Some(wait) = self.retry_after {
            text = format!("{text} (it asks to retry after {} s)", wait.as_secs());
        }
        text
    }

    /// The distribution error codes of the body (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, …).
    pub fn error_codes(&self) -> Vec<String> {
        serde_json::from_slice::<Envelope>(&self.body)
            .map(|e| e.errors.into_iter().filter_map(|e| e.code).collect())
            .unwrap_or_default()
    }
}

#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(serde::Deserialize)]
struct ErrorEntry {
    code: Option<String>,
    message: Option<String>,
}

/// `404 Not Found`, `401 Unauthorized`, … (the reason phrase when the status has one).
fn status_line(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()) {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// The message of an error body; `None` when it has nothing readable.
fn registry_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Other {
        details: Option<String>,
        error: Option<String>,
        error_description: Option<String>,
        message: Option<String>,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body)
        && !env.errors.is_empty()
    {
        let parts: Vec<String> = env
            .errors
            .iter()
            .map(|e| match (&e.code, &e.message) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => "unknown error".into(),
            })
            .collect();
        return Some(clean(&parts.join("; ")));
    }
    if let Ok(o) = serde_json::from_slice::<Other>(body)
        && let Some(m) = o.details.or(o.error_description).or(o.message).or(o.error)
    {
        return Some(clean(&m));
    }
    let text = String::from_utf8_lossy(body);
    let text = clean(text.trim());
    (!text.is_empty()).then_some(text)
}

/// Text from a registry, as one printable line of at most 300 characters.
fn clean(s: &str) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let trimmed: String = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    if trimmed.chars().count() > 300 {
        format!("{}…", trimmed.chars().take(300).collect::<String>())
    } else {
        trimmed
    }
}

/// `Retry-After`: seconds, or an HTTP date (as a wait from now).
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The HTTP client every registry request goes through.
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Result<Http, BackendError> {
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            // Blobs are redirected to storage; never from HTTPS down to plain HTTP.
            let downgrade =
                attempt.previous().last().is_some_and(|p| p.scheme() == "https") && attempt.url().scheme() != "https";
            if attempt.previous().len() > 5 {
                attempt.error("more than 5 redirects")
            } else if downgrade {
                attempt.error("a redirect from HTTPS to plain HTTP")
            } else {
                attempt.follow()
            }
        });
        crate::tls::install();
        let client = reqwest::Client::builder()
            .user_agent(concat!("mcpfleet/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .redirect(redirects)
            .build()
            .map_err(|e| BackendError::Invalid {
                operation: Op::HeadManifest,
                message: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(Http { client })
    }

    /// Sends `req` with retries, holding one of `permits` per attempt; counts each attempt in `stats`. A 429 or
    /// 5xx still there after the last retry is returned as the answer (the caller words it).
    pub async fn send(
        &self,
        req: &Request<'_>,
        permits: &tokio::sync::Semaphore,
        stats: &RegistryStats,
    ) -> Result<Answer, BackendError> {
        let mut policy = backoff_policy();
        let mut attempt = 0;
        loop {
            let outcome = {
                // The semaphore is never closed; were it, the request would go without a permit.
                let _permit = permits.acquire().await.ok();
                stats.calls.add(req.op);
                self.attempt(req).await
            };
            let retry = match &outcome {
                Ok(a) if a.status == 429 => {
                    stats.throttled.add(req.op);
                    true
                }
                Ok(a) => a.status >= 500,
                Err(e) => (e.is_timeout() || e.is_connect() || e.is_request() || e.is_body()) && !is_tls_failure(e),
            };
            if !retry || attempt >= MAX_RETRIES {
                return outcome.map_err(|e| transport_error(req, &e));
            }
            let backoff = policy.next_backoff().unwrap_or(MAX_BACKOFF);
            let wait = match outcome.as_ref().ok().and_then(|a| a.retry_after) {
                Some(asked) if asked > RETRY_AFTER_LIMIT => return outcome.map_err(|e| transport_error(req, &e)),
                Some(asked) => asked.max(backoff),
                None => backoff,
            };
            attempt += 1;
            stats.retries.add(req.op);
            tracing::debug!(
                operation = req.op.as_str(),
                url = req.url,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying a registry request"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, req: &Request<'_>) -> Result<Answer, reqwest::Error> {
        let method = match req.method {
            Method::Head => reqwest::Method::HEAD,
            Method::Get => reqwest::Method::GET,
        };
        let mut builder = self.client.request(method, req.url);
        if req.manifest {
            builder = builder.header(ACCEPT, MEDIA_TYPES.join(", "));
        }
        builder = match req.auth {
            Authorization::None => builder,
            Authorization::Bearer(token) => builder.bearer_auth(token),
            Authorization::Basic { username, password } => builder.basic_auth(username, Some(password)),
        };
        let mut response = builder.send().await?;
        let headers = response.headers();
        let text = |v: &HeaderValue| v.to_str().ok().map(str::to_string);
        let mut answer = Answer {
            status: response.status().as_u16(),
            content_type: headers.get(CONTENT_TYPE).and_then(text),
            digest: headers.get("docker-content-digest").and_then(text),
            www_authenticate: headers.get_all(WWW_AUTHENTICATE).iter().filter_map(text).collect(),
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(text)
                .and_then(|v| parse_retry_after(&v, std::time::SystemTime::now())),
            body: Vec::new(),
            too_large: false,
        };
        if req.method == Method::Get {
            while let Some(chunk) = response.chunk().await? {
                if answer.body.len() + chunk.len() > req.limit {
                    answer.too_large = true;
                    break;
                }
                answer.body.extend_from_slice(&chunk);
            }
        }
        Ok(answer)
    }
}

/// Whether a transport error is TLS refusing the peer (a certificate it does not trust, or a server that does
/// not speak TLS at all, as a plain-HTTP registry not named with --insecure-registry): retrying cannot help.
fn is_tls_failure(e: &reqwest::Error) -> bool {
    // TLS failures reach us as an `InvalidData` I/O error, possibly wrapped in another I/O error, whose `source`
    // skips the wrapped one: I/O errors are looked into with `get_ref`.
    fn invalid_data(e: &(dyn std::error::Error + 'static)) -> bool {
        match e.downcast_ref::<std::io::Error>() {
            Some(io) => {
                io.kind() == std::io::ErrorKind::InvalidData || io.get_ref().is_some_and(|inner| invalid_data(inner))
            }
            None => e.source().is_some_and(invalid_data),
        }
    }
    invalid_data(e)
}

/// A request that got no HTTP answer: unreachable, timed out, refused TLS, or a redirect we do not follow.
fn transport_error(req: &Request<'_>, e: &reqwest::Error) -> BackendError {
    // The chain says why (connection refused, certificate unknown, …); the URL is named once, by us.
    let mut why = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        why.push(s.to_string());
        source = s.source();
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_redirect() {
        "refused redirect"
    } else {
        "request failed"
    };
    let message = if why.is_empty() {
        format!("{}: {kind}", req.url)
    } else {
        format!("{}: {kind}: {}", req.url, why.join(": "))
    };
    if e.is_redirect() || is_tls_failure(e) {
        BackendError::Invalid { operation: req.op, message }
    } else {
        BackendError::Unavailable { operation: req.op, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("5", now), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now), Some(Duration::ZERO), "a past date");
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn registry_messages_in_their_several_shapes() {
        let answer = |status: u16, body: &[u8]| Answer { status, body: body.to_vec(), ..Answer::default() };
        let a = answer(
            401,
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Name":"private/x","Action":"pull"}]}]}"#,
        );
        assert_eq!(a.message(), "401 Unauthorized: UNAUTHORIZED: authentication required");
        assert_eq!(
            answer(404, br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#).error_codes(),
            ["MANIFEST_UNKNOWN"]
        );
        assert_eq!(
            answer(401, br#"{"details":"incorrect username or password"}"#).message(),
            "401 Unauthorized: incorrect username or password"
        );
        assert_eq!(
            answer(403, b"<html>\n<b>denied</b>\n</html>").message(),
            "403 Forbidden: <html> <b>denied</b> </html>"
        );
        assert_eq!(answer(404, b"").message(), "404 Not Found");
        let throttled = Answer { retry_after: Some(Duration::from_secs(3600)), ..answer(429, b"") };
        assert_eq!(throttled.message(), "429 Too Many Requests (it asks to retry after 3600 s)");
        let long = answer(500, "x".repeat(1000).as_bytes()).message();
        let words = long.strip_prefix("500 Internal Server Error: ").unwrap();
        assert_eq!(words.chars().count(), 301, "cut at 300 characters and an ellipsis");
    }
}
