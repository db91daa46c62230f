//! Scheduling: when the next pass runs. Each service's reconcile returns an [`Action`] (as kube-runtime's): look
//! again after a while (a rollout in flight, a backoff after a failure) or wait for a change. The loop wakes for
//! the earliest of those, for the periodic pass (the interval, jittered ±10 % by the `backoff` crate's
//! randomization so that many controllers do not pass in step), or at once when a manifest changes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use backoff::ExponentialBackoff;
use backoff::backoff::Backoff;

/// A service, as (cluster, name).
pub type Key = (String, String);

/// Poll period for rollouts in flight.
pub const FAST: Duration = Duration::from_secs(5);

/// The shortest time between two passes, whatever asks for sooner: a pass that finds work never turns the loop
/// into a busy loop (and `run` refuses intervals below it).
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// What a reconcile of one service asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Look at the service again after this long.
    Requeue(Duration),
    /// Nothing pending: the next periodic pass, or a manifest change, is soon enough.
    AwaitChange,
}

/// When each service wants to be looked at again, and the periodic pass.
pub struct Schedule {
    periodic: ExponentialBackoff,
    requeues: BTreeMap<Key, Instant>,
}

impl Schedule {
    pub fn new(interval: Duration) -> Schedule {
        let periodic = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(interval)
            .with_multiplier(1.0)
            .with_max_interval(interval)
            .with_randomization_factor(0.1)
            .with_max_elapsed_time(None)
            .build();
        Schedule { periodic, requeues: BTreeMap::new() }
    }

    /// Records what the last reconcile of `key`, at `now`, asked for.
    pub fn record(&mut self, key: &Key, action: Action, now: Instant) {
        match action {
            Action::Requeue(after) => {
                self.requeues.insert(key.clone(), now + after);
            }
            Action::AwaitChange => {
                self.requeues.remove(key);
            }
        }
    }

    /// When the next pass runs, asked at the end of a pass at `now`: the earliest requeue or the jittered interval,
    /// never sooner than [`MIN_GAP`]. Requeues that come due are consumed: the pass that runs then reconciles
    /// every service anyway.
    pub fn next_pass(&mut self, now: Instant) -> Instant {
        let periodic = now + self.periodic.next_backoff().unwrap_or(self.periodic.max_interval);
        let earliest = self.requeues.values().copied().min().map_or(periodic, |r| r.min(periodic));
        let at = earliest.max(now + MIN_GAP);
        self.requeues.retain(|_, r| *r > at);
        at
    }

    /// Forgets services for which `keep` is false (they left the manifests).
    pub fn retain(&mut self, keep: impl Fn(&Key) -> bool) {
        self.requeues.retain(|k, _| keep(k));
    }
}
