//! The 2025 handshake's sessions: the `Mcp-Session-Id`s the bridge issued, each with its protocol revision, its
//! last activity (for the idle timeout), its requests in flight, its standalone event stream (`GET`), and in
//! per-session mode its own server process. At most `--max-sessions` exist at once; a slot is reserved before a
//! per-session server is started, so concurrent handshakes cannot overshoot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use super::child::Child;
use crate::backend::lock;

/// Messages buffered for a standalone stream whose client reads slowly; more are dropped with a log line.
const STREAM_QUEUE: usize = 256;

/// One session.
pub(crate) struct Session {
    pub id: Arc<str>,
    /// The revision agreed in its handshake.
    protocol_version: OnceLock<String>,
    /// Per-session mode: the session's own server process.
    pub child: OnceLock<Arc<Child>>,
    last_active: Mutex<Instant>,
    in_flight: AtomicUsize,
    stream: Mutex<Option<mpsc::Sender<Value>>>,
}

impl Session {
    pub fn new(id: Arc<str>) -> Arc<Session> {
        Arc::new(Session {
            id,
            protocol_version: OnceLock::new(),
            child: OnceLock::new(),
            last_active: Mutex::new(Instant::now()),
            in_flight: AtomicUsize::new(0),
            stream: Mutex::new(None),
        })
    }

    /// Records the revision the handshake agreed.
    pub fn agree(&self, version: String) {
        let _ = self.protocol_version.set(version);
    }

    /// The revision the handshake agreed (empty before it finished).
    pub fn protocol_version(&self) -> &str {
        self.protocol_version.get().map_or("", String::as_str)
    }

    /// Marks a request of the session in flight until the guard drops; neither counts as idle.
    pub fn busy(self: &Arc<Session>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        *lock(&self.last_active) = Instant::now();
        Busy(self.clone())
    }

    /// How long the session has been idle; None while a request is in flight (never idle then).
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(now.saturating_duration_since(*lock(&self.last_active)))
    }

    /// Opens the session's standalone stream, replacing (closing) one already open: a server message goes to one
    /// stream only.
    pub fn open_stream(&self) -> mpsc::Receiver<Value> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        *lock(&self.stream) = Some(tx);
        rx
    }

    /// Ends the standalone stream, if one is open.
    pub fn close_stream(&self) {
        lock(&self.stream).take();
    }

    /// Sends `m` on the standalone stream; false when none is open (or it is full).
    pub fn send(&self, m: Value) -> bool {
        let mut stream = lock(&self.stream);
        match stream.as_ref().map(|s| s.try_send(m)) {
            Some(Ok(())) => true,
            Some(Err(mpsc::error::TrySendError::Closed(_))) => {
                *stream = None;
                false
            }
            Some(Err(mpsc::error::TrySendError::Full(_))) => {
                tracing::warn!(session = %self.id, "a client reads its stream too slowly; a message was dropped");
                false
            }
            None => false,
        }
    }
}

/// A request of a session in flight.
pub(crate) struct Busy(Arc<Session>);

impl Drop for Busy {
    fn drop(&mut self) {
        *lock(&self.0.last_active) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every session, bounded.
pub(crate) struct Sessions {
    map: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    reserved: AtomicUsize,
    max: usize,
}

/// A slot for a session being opened; released when dropped unless the session was added with it.
pub(crate) struct Reservation<'a>(&'a Sessions);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.0.reserved.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Reservation<'_> {
    /// Adds the session in the reserved slot. Its idle time counts from now: starting its server may have taken
    /// a while.
    pub fn fill(self, session: Arc<Session>) {
        *lock(&session.last_active) = Instant::now();
        lock(&self.0.map).insert(session.id.clone(), session);
    }
}

impl Sessions {
    pub fn new(max: usize) -> Sessions {
        Sessions { map: Mutex::new(HashMap::new()), reserved: AtomicUsize::new(0), max }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for one more session, unless `max` are open or being opened.
    pub fn reserve(&self) -> Option<Reservation<'_>> {
        let map = lock(&self.map);
        let reserved = self.reserved.load(Ordering::SeqCst);
        if map.len() + reserved >= self.max {
            return None;
        }
        self.reserved.fetch_add(1, Ordering::SeqCst);
        Some(Reservation(self))
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.map).get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.map).remove(id)
    }

    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Sends `m` on every open standalone stream; how many took it.
    pub fn broadcast(&self, m: &Value) -> usize {
        let all: Vec<Arc<Session>> = lock(&self.map).values().cloned().collect();
        all.iter().filter(|s| s.send(m.clone())).count()
    }

    /// Removes and returns the sessions idle for `idle` or longer.
    pub fn take_idle(&self, idle: Duration) -> Vec<Arc<Session>> {
        let now = Instant::now();
        let mut map = lock(&self.map);
        let expired: Vec<Arc<str>> =
            map.iter().filter(|(_, s)| s.idle_for(now).is_some_and(|d| d >= idle)).map(|(k, _)| k.clone()).collect();
        expired.iter().filter_map(|id| map.remove(id)).collect()
    }

    /// Removes and returns every session (shutdown).
    pub fn take_all(&self) -> Vec<Arc<Session>> {
        lock(&self.map).drain().map(|(_, s)| s).collect()
    }

    /// Ends every standalone stream (shutdown: they would otherwise hold their connections open).
    pub fn close_streams(&self) {
        for s in lock(&self.map).values() {
            s.close_stream();
        }
    }
}

/// A new session id: 128 random bits from the operating system, in hex (visible ASCII, as the specification asks,
/// and not guessable: the id is all that ties a request to its session).
pub(crate) fn new_id() -> Result<Arc<str>, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_bound_the_sessions() {
        let sessions = Sessions::new(2);
        let a = sessions.reserve().unwrap();
        let b = sessions.reserve().unwrap();
        assert!(sessions.reserve().is_none(), "two open or opening");
        a.fill(Session::new("a".into()));
        drop(b);
        let c = sessions.reserve().expect("the unfilled slot was released");
        assert!(sessions.reserve().is_none());
        drop(c);
        assert_eq!(sessions.len(), 1);
        sessions.remove("a");
        assert!(sessions.reserve().is_some());
    }

    #[test]
    fn busy_sessions_are_never_idle() {
        let sessions = Sessions::new(4);
        let s = Session::new("s".into());
        sessions.reserve().unwrap().fill(s.clone());
        let busy = s.busy();
        assert!(sessions.take_idle(Duration::ZERO).is_empty(), "a request is in flight");
        drop(busy);
        assert_eq!(sessions.take_idle(Duration::ZERO).len(), 1);
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn streams_take_messages_only_while_open() {
        let s = Session::new("s".into());
        assert!(!s.send(Value::Null));
        let mut rx = s.open_stream();
        assert!(s.send(Value::Bool(true)));
        assert_eq!(rx.try_recv().unwrap(), Value::Bool(true));
        drop(rx);
        assert!(!s.send(Value::Null), "the client went away");
        let rx = s.open_stream();
        s.close_stream();
        drop(rx);
        assert!(!s.send(Value::Null));
    }

    #[test]
    fn ids_are_long_random_and_distinct() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
