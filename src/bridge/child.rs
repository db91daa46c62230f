//! One stdio MCP server process: started in a process group of its own (so a stop reaches whatever it started,
//! `npx` and the node it runs alike), fed JSON-RPC lines on stdin, read line by line on stdout (each line to the
//! [`Mux`]), its stderr logged line by line with the session it serves, and stopped the way the MCP specification
//! asks of a client: input closed and SIGTERM, then SIGKILL after a grace.
//!
//! Lines are bounded: a server that writes a line longer than [`MAX_LINE`] on stdout has it dropped with a log
//! line (it cannot be JSON-RPC the bridge could pass on), and long stderr lines are logged in pieces, so a server
//! gone wrong cannot make the bridge hold unbounded memory.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

use super::jsonrpc::{self, Object};
use super::mux::{Mux, Origin, Scope};
use crate::backend::lock;

/// The longest stdout line (one JSON-RPC message) passed on: tool results carry images and files, so it is large.
pub const MAX_LINE: usize = 64 * 1024 * 1024;
/// stderr lines are logged in pieces of at most this many bytes.
const MAX_LOG_LINE: usize = 16 * 1024;
/// Lines queued for the server's stdin before a sender waits.
const STDIN_QUEUE: usize = 1024;
/// How long stdout may stay open after the process exited (a grandchild may hold it) before the exit is final.
const STDOUT_AFTER_EXIT: Duration = Duration::from_secs(1);

/// Why a server could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The command could not be started (not found, not executable).
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The server did not answer `initialize` in time.
    #[error("the MCP server did not answer initialize within {0:?}")]
    InitTimeout(Duration),
    /// The server answered `initialize` with an error, or ended before answering.
    #[error("the MCP server refused initialize: {0}")]
    InitRefused(String),
}

/// A running (or ended) stdio server.
pub(crate) struct Child {
    pub pid: u32,
    pub mux: Mux,
    /// How the process ended, once it has.
    exit: watch::Receiver<Option<String>>,
    /// Closes stdin when taken.
    close_stdin: Mutex<Option<oneshot::Sender<()>>>,
}

/// What a server said about itself in its `initialize` answer.
#[derive(Debug, Clone)]
pub(crate) struct Initialized {
    /// The `initialize` result as the server sent it.
    pub result: Object,
    /// The revision it agreed to.
    pub protocol_version: String,
}

impl Child {
    /// Starts `command` (program and arguments; run directly, no shell). `on_exit` is told how the process
    /// ended, once its last answers were routed.
    pub fn start(
        command: &[String],
        label: Arc<str>,
        scope: Scope,
        on_exit: impl FnOnce(&str) + Send + 'static,
    ) -> Result<Arc<Child>, ChildError> {
        let program = command.first().cloned().unwrap_or_default();
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(command.iter().skip(1))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut proc = cmd.spawn().map_err(|source| ChildError::Spawn { program: program.clone(), source })?;
        let pid = proc.id().unwrap_or_default();
        let (stdin, stdout, stderr) = (proc.stdin.take(), proc.stdout.take(), proc.stderr.take());
        let (tx, rx) = mpsc::channel(STDIN_QUEUE);
        let mux = Mux::new(label.clone(), tx, scope);
        let (close_tx, close_rx) = oneshot::channel();
        if let Some(stdin) = stdin {
            tokio::spawn(write_stdin(stdin, rx, close_rx));
        }
        if let Some(stderr) = stderr {
            tokio::spawn(log_stderr(BufReader::new(stderr), label.clone(), pid));
        }
        let reader = stdout.map(|out| tokio::spawn(read_stdout(BufReader::with_capacity(64 * 1024, out), mux.clone())));
        let (exit_tx, exit) = watch::channel(None);
        let routed = mux.clone();
        tokio::spawn(async move {
            let status = proc.wait().await;
            if let Some(reader) = reader {
                // The answers written before the exit are routed before the requests left are failed.
                let _ = tokio::time::timeout(STDOUT_AFTER_EXIT, reader).await;
            }
            let how = describe(status);
            tracing::info!(session = %routed.label(), pid, "the MCP server process {how}");
            routed.close(&format!("the MCP server process {how} before answering"));
            on_exit(&how);
            let _ = exit_tx.send(Some(how));
        });
        tracing::info!(session = %label, pid, command = %command.join(" "), "MCP server process started");
        Ok(Arc::new(Child { pid, mux, exit, close_stdin: Mutex::new(Some(close_tx)) }))
    }

    /// Whether the process still runs.
    pub fn alive(&self) -> bool {
        self.exit.borrow().is_none()
    }

    /// Waits until the process ended; how it did.
    pub async fn exited(&self) -> String {
        let mut exit = self.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(how) => how.clone().unwrap_or_default(),
            Err(_) => "ended".into(),
        }
    }

    /// The `initialize` handshake as the server's client (shared mode): the newest handshake revision, no client
    /// capabilities (the bridge cannot answer sampling or roots for every client at once), then
    /// `notifications/initialized`.
    pub async fn initialize(&self, within: Duration) -> Result<Initialized, ChildError> {
        let request = json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": jsonrpc::latest_handshake(),
            "capabilities": {},
            "clientInfo": { "name": "mcpfleet-bridge", "version": env!("CARGO_PKG_VERSION") },
        }});
        let mut exchange = self
            .mux
            .request(jsonrpc::object(request), &Origin::bridge())
            .await
            .map_err(|e| ChildError::InitRefused(e.0))?;
        let answer = tokio::time::timeout(within, &mut exchange.done)
            .await
            .map_err(|_| ChildError::InitTimeout(within))?
            .map_err(|_| ChildError::InitRefused("the answer was lost".into()))?;
        let initialized = initialized(&answer)?;
        self.mux.notify(&notification("notifications/initialized")).await;
        Ok(initialized)
    }

    /// Stops the process: stdin closed and SIGTERM to its process group, SIGKILL after `grace`.
    pub async fn terminate(&self, grace: Duration) {
        if !self.alive() {
            return;
        }
        lock(&self.close_stdin).take();
        let group = Pid::from_raw(i32::try_from(self.pid).unwrap_or(0));
        if let Some(group) = group {
            let _ = kill_process_group(group, Signal::TERM);
        }
        if tokio::time::timeout(grace, self.exited()).await.is_ok() {
            return;
        }
        tracing::warn!(session = %self.mux.label(), pid = self.pid, "the MCP server did not stop within {grace:?} of SIGTERM; SIGKILL");
        if let Some(group) = group {
            let _ = kill_process_group(group, Signal::KILL);
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.exited()).await;
    }
}

/// Reads the server's `initialize` answer.
pub(crate) fn initialized(answer: &Value) -> Result<Initialized, ChildError> {
    if let Some(error) = answer.get("error") {
        let message = error.get("message").and_then(Value::as_str).unwrap_or("no message");
        return Err(ChildError::InitRefused(message.to_string()));
    }
    let Some(result) = answer.get("result").and_then(Value::as_object) else {
        return Err(ChildError::InitRefused("the answer has no result".into()));
    };
    let protocol_version = result.get("protocolVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(Initialized { result: result.clone(), protocol_version })
}

/// A notification without parameters.
pub(crate) fn notification(method: &str) -> Object {
    jsonrpc::object(json!({ "jsonrpc": "2.0", "method": method }))
}

/// "exited with status 3", "was killed by signal 9".
fn describe(status: std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "ended".into(),
        },
        Err(e) => format!("could not be waited for ({e})"),
    }
}

async fn write_stdin(
    mut stdin: tokio::process::ChildStdin,
    mut lines: mpsc::Receiver<Vec<u8>>,
    mut close: oneshot::Receiver<()>,
) {
    loop {
        let line = tokio::select! {
            line = lines.recv() => line,
            _ = &mut close => None,
        };
        let Some(mut line) = line else { break };
        line.push(b'\n');
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            // The process closed its input or ended; its end is reported by the exit watcher.
            break;
        }
    }
}

/// Reads one line of at most `max` bytes into `buf` (without the newline). `Ok(false)` at the end of the stream;
/// a longer line is skipped to its end and reported as `Err(len)`.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Result<bool, usize>> {
    buf.clear();
    let n = (&mut *r).take(max as u64 + 1).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(Ok(false));
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(Ok(true));
    }
    if buf.len() <= max {
        // The stream ended without a final newline.
        return Ok(Ok(true));
    }
    let mut skipped = buf.len();
    let mut rest = Vec::new();
    loop {
        rest.clear();
        let n = (&mut *r).take(64 * 1024).read_until(b'\n', &mut rest).await?;
        skipped += n;
        if n == 0 || rest.last() == Some(&b'\n') {
            return Ok(Err(skipped));
        }
    }
}

async fn read_stdout<R: AsyncBufRead + Unpin>(mut out: R, mux: Mux) {
    let mut buf = Vec::new();
    loop {
        match read_line(&mut out, &mut buf, MAX_LINE).await {
            Ok(Ok(false)) => return,
            Ok(Ok(true)) if buf.iter().all(u8::is_ascii_whitespace) => {}
            Ok(Ok(true)) => match serde_json::from_slice::<Value>(&buf) {
                Ok(Value::Object(m)) => mux.route(m),
                _ => {
                    let start = String::from_utf8_lossy(&buf[..buf.len().min(200)]).into_owned();
                    tracing::warn!(session = %mux.label(), "the MCP server wrote a stdout line that is not JSON-RPC (stdout is the protocol; logs belong on stderr); ignored: {start}");
                }
            },
            Ok(Err(len)) => {
                tracing::warn!(session = %mux.label(), "the MCP server wrote a stdout line of {len} bytes, above the {MAX_LINE}-byte bound; dropped")
            }
            Err(e) => {
                tracing::warn!(session = %mux.label(), "reading the MCP server's stdout failed: {e}");
                return;
            }
        }
    }
}

async fn log_stderr<R: AsyncBufRead + Unpin>(mut err: R, label: Arc<str>, pid: u32) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut err).take(MAX_LOG_LINE as u64).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim_end_matches(['\n', '\r']);
                tracing::info!(target: "mcpfleet::bridge::stderr", session = %label, pid, "{text}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_long_ones_skipped_whole() {
        let data = b"short\r\n0123456789abcdef\nnext\nlast".to_vec();
        let mut r = BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 8).await.unwrap(), Ok(true));
        assert_eq!(buf, b"short");
        assert_eq!(read_line(&mut r, &mut buf, 8).await.unwrap(), Err(17));
        assert_eq!(read_line(&mut r, &mut buf, 8).await.unwrap(), Ok(true));
        assert_eq!(buf, b"next");
        assert_eq!(read_line(&mut r, &mut buf, 8).await.unwrap(), Ok(true));
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut r, &mut buf, 8).await.unwrap(), Ok(false));
    }

    #[test]
    fn initialize_answers_are_read_or_refused() {
        let ok = json!({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-06-18", "capabilities": {}}});
        assert_eq!(initialized(&ok).unwrap().protocol_version, "2025-06-18");
        let refused = json!({"jsonrpc": "2.0", "id": 0, "error": {"code": -32602, "message": "unsupported"}});
        assert_eq!(initialized(&refused).unwrap_err().to_string(), "the MCP server refused initialize: unsupported");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_clear_error() {
        let err = Child::start(&["/no/such/mcp-server".into()], "t".into(), Scope::Stateless, |_| {}).err().unwrap();
        assert!(err.to_string().starts_with("cannot start `/no/such/mcp-server`: "), "{err}");
    }
}
