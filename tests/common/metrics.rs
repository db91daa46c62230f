//! A controller's HTTP endpoints as tests read them: `/metrics` series by exact name (a series that is not there
//! is a failure, never read as 0), the number of passes it completed, and `/readyz`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a test waits for a condition before failing: generous, so a loaded machine is slow, not red.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// (status, body) of a GET on the controller at `port`, or None when nothing answers.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
}

/// The `/metrics` text; panics when the controller does not answer.
pub fn scrape(port: u16) -> String {
    match get(port, "/metrics") {
        Some((200, body)) => body,
        other => panic!("GET /metrics on port {port}: {other:?}"),
    }
}

/// The value of exactly `series` (e.g. `mcpfleet_services{state="failed"}`) in an OpenMetrics text.
pub fn find(body: &str, series: &str) -> Option<f64> {
    body.lines().filter_map(|l| l.rsplit_once(' ')).find(|(name, _)| *name == series).and_then(|(_, v)| v.parse().ok())
}

/// The value of `series`; panics, with the whole text, when the series is missing.
pub fn value(port: u16, series: &str) -> f64 {
    let body = scrape(port);
    find(&body, series).unwrap_or_else(|| panic!("no series `{series}` in /metrics:\n{body}"))
}

/// Passes completed (`mcpfleet_reconcile_passes_total`, every outcome); panics when the counter is missing.
pub fn passes(port: u16) -> f64 {
    let body = scrape(port);
    let counts: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with("mcpfleet_reconcile_passes_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .collect();
    assert!(!counts.is_empty(), "no mcpfleet_reconcile_passes_total in /metrics:\n{body}");
    counts.iter().sum()
}

/// Polls `ok` until it holds; after [`DEADLINE`] fails with `what` and `context()` (a log, a state dump).
pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool, context: impl Fn() -> String) {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {DEADLINE:?} waiting for {what}:\n{}", context());
}

/// Waits until the controller at `port` has completed `n` more passes than now: a pass that was under way when
/// this was called counts as one, so `n = 2` proves a whole pass ran after the call.
pub fn wait_passes(port: u16, n: u32, context: impl Fn() -> String) {
    let start = passes(port);
    wait_until(&format!("{n} more passes after {start}"), || passes(port) >= start + f64::from(n), context);
}
