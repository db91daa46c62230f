//! The error policy: when a service whose reconcile failed is tried again, decided from what kind of failure it
//! was. As in kube-runtime, the reconcile returns a typed error and the policy turns it into a requeue; here the
//! delay grows per service (exponential, jittered by the `backoff` crate's randomization), is cleared by any
//! successful reconcile of that service or an edit of its manifest, and never holds another service back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use backoff::ExponentialBackoff;
use backoff::backoff::Backoff;

use crate::backend::BackendError;

use super::schedule::Key;

/// What kind of failure a reconcile met; each kind has its own backoff (see [`ErrorKind::policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// AWS refused the call for rate even after the rate limiter's own retries: the account is under pressure.
    Throttled,
    /// AWS refused the request itself (4xx: invalid, not found, access denied, a quota): the same request is
    /// refused again until someone changes IAM, a quota, the cluster or the manifest.
    Aws4xx,
    /// The manifest names something that does not exist (an image tag, a secret): fixed by a push or an edit.
    Spec,
    /// An outage: 5xx, a timeout, a lost connection, the sim's state file unreadable. Retrying soon helps.
    Transient,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 4] = [ErrorKind::Throttled, ErrorKind::Aws4xx, ErrorKind::Spec, ErrorKind::Transient];

    /// The `kind` label of `mcpfleet_reconcile_errors_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::Aws4xx => "aws_4xx",
            ErrorKind::Spec => "spec",
            ErrorKind::Transient => "transient",
        }
    }

    /// The backoff of a service failing with this kind, for a controller passing every `interval`:
    ///
    /// | kind      | first wait        | growth | at most           | jitter |
    /// |-----------|-------------------|--------|-------------------|--------|
    /// | transient | 5 s               | ×1.5   | 10 × max(I, 60 s) | ±50 %  |
    /// | throttled | 30 s              | ×2     | 10 × max(I, 60 s) | ±50 %  |
    /// | aws_4xx   | max(I, 60 s)      | ×2     | 10 × max(I, 60 s) | ±50 %  |
    /// | spec      | I                 | ×1     | I                 | ±10 %  |
    ///
    /// An outage is retried soon; throttling already survived the limiter's retries, so the service steps back
    /// further; a refused request only succeeds after someone changes something, so it is retried slowly; a
    /// missing tag or secret is looked for once per interval, like a normal pass, so a push is picked up in time.
    pub fn policy(self, interval: Duration) -> ExponentialBackoff {
        let long = interval.max(Duration::from_secs(60));
        let (initial, multiplier, max, randomization) = match self {
            ErrorKind::Transient => (Duration::from_secs(5), 1.5, long * 10, 0.5),
            ErrorKind::Throttled => (Duration::from_secs(30), 2.0, long * 10, 0.5),
            ErrorKind::Aws4xx => (long, 2.0, long * 10, 0.5),
            ErrorKind::Spec => (interval, 1.0, interval, 0.1),
        };
        backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(initial)
            .with_multiplier(multiplier)
            .with_max_interval(max)
            .with_randomization_factor(randomization)
            .with_max_elapsed_time(None)
            .build()
    }
}

impl From<&BackendError> for ErrorKind {
    fn from(e: &BackendError) -> ErrorKind {
        match e {
            BackendError::Throttled { .. } => ErrorKind::Throttled,
            // Missing or refused credentials: AWS said no, and asking again soon will not change its answer.
            BackendError::NotFound { .. } | BackendError::Invalid { .. } | BackendError::Credentials { .. } => {
                ErrorKind::Aws4xx
            }
            // A hand-broken sim state file waits for someone to fix it, like a broken manifest.
            BackendError::StateFile { .. } | BackendError::StateJournal { .. } => ErrorKind::Spec,
            BackendError::Unavailable { .. } | BackendError::State(_) => ErrorKind::Transient,
        }
    }
}

/// Why reconciling one service failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileFailure {
    /// Its image, secrets or target groups did not resolve (each problem as reported by resolution); nothing was
    /// written.
    #[error("cannot resolve: {}", .0.join("; "))]
    Unresolved(Vec<String>),
    /// A call to ECS failed while converging it.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl ReconcileFailure {
    pub fn kind(&self) -> ErrorKind {
        match self {
            // Resolution reports its problems as text: a lookup that failed outright is counted here too, and is
            // then retried once per interval, as a normal pass would.
            ReconcileFailure::Unresolved(_) => ErrorKind::Spec,
            ReconcileFailure::Backend(e) => ErrorKind::from(e),
        }
    }
}

/// Per-service backoff after failed reconciles.
pub struct Backoffs {
    interval: Duration,
    services: BTreeMap<Key, Backing>,
}

struct Backing {
    kind: ErrorKind,
    policy: ExponentialBackoff,
    until: Instant,
}

impl Backoffs {
    pub fn new(interval: Duration) -> Backoffs {
        Backoffs { interval, services: BTreeMap::new() }
    }

    /// Records a failed reconcile of `key` at `now`; returns how long the service now waits. A failure of another
    /// kind than the last one starts that kind's backoff from its first step.
    pub fn failed(&mut self, key: &Key, kind: ErrorKind, now: Instant) -> Duration {
        let interval = self.interval;
        let fresh = || Backing { kind, policy: kind.policy(interval), until: now };
        let b = self.services.entry(key.clone()).or_insert_with(fresh);
        if b.kind != kind {
            *b = fresh();
        }
        let wait = b.policy.next_backoff().unwrap_or(b.policy.max_interval);
        b.until = now + wait;
        wait
    }

    /// Records a successful reconcile (any outcome but failed, a no-op included), or an edit of the service's
    /// manifest: the backoff starts over.
    pub fn succeeded(&mut self, key: &Key) {
        self.services.remove(key);
    }

    /// Whether `key` is still waiting at `now`.
    pub fn waiting(&self, key: &Key, now: Instant) -> bool {
        self.services.get(key).is_some_and(|b| b.until > now)
    }

    /// Services still waiting at `now`.
    pub fn waiting_count(&self, now: Instant) -> usize {
        self.services.values().filter(|b| b.until > now).count()
    }

    /// Forgets services for which `keep` is false (they left the manifests).
    pub fn retain(&mut self, keep: impl Fn(&Key) -> bool) {
        self.services.retain(|k, _| keep(k));
    }
}
