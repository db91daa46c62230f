//! Leader election among controller replicas (`run --lease dynamodb://TABLE/NAME`), in the manner of Kubernetes'
//! leader election: one lease item, written only on a condition on its record version.
//!
//! A standby reads the item every retry period. It takes the lease when there is none, when it was released
//! (empty holder), or when the holder's record version has not changed for a whole lease duration measured on
//! the standby's **own** clock (clocks of different machines are never compared). The leader renews every retry
//! period; a renewal that fails conditionally means another replica took the lease. [`Leadership::holds`] is true
//! only while the last renewal is younger than the renew deadline, which is shorter than the lease duration: a
//! leader that cannot renew stops writing before any standby may take over. The loop asks it before each batch of
//! writes. SIGTERM releases the lease (empty holder, a new record version), so a standby takes over at its next
//! read instead of after a lease duration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use crate::backend::lease::{LeaseRecord, LeaseStore, LeaseUrl, LeaseWrite};

use super::Shared;

/// The election's timings (Kubernetes' defaults: 15s, 10s, 2s).
#[derive(Debug, Clone, Copy)]
pub struct LeaseTimings {
    /// How long a holder may go without renewing before a standby takes the lease.
    pub duration: Duration,
    /// How long a leader keeps writing without a successful renewal.
    pub renew_deadline: Duration,
    /// How often a leader renews and a standby reads.
    pub retry: Duration,
}

impl LeaseTimings {
    /// The deadline must end before a standby may take over, and a retry fit in the deadline.
    pub fn check(&self) -> Result<(), String> {
        if self.renew_deadline >= self.duration {
            return Err("--renew-deadline must be shorter than --lease-duration".into());
        }
        if self.retry.is_zero() || self.retry >= self.renew_deadline {
            return Err("--retry-period must be shorter than --renew-deadline".into());
        }
        Ok(())
    }
}

/// Whether this replica leads, shared with the loop.
pub struct Leadership {
    identity: String,
    /// The lease's URL: what the services this replica converges say owns them (`state::managed_by`).
    owner: String,
    renew_deadline: Duration,
    /// When the lease was last acquired or renewed; `None` on standby.
    renewed: Mutex<Option<Instant>>,
}

impl Leadership {
    /// This replica's identity in the lease item.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The lease's URL, as the services' managed-by tag names their owner.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether this replica holds the lease and may write: its last renewal is younger than the renew deadline.
    pub fn holds(&self) -> bool {
        crate::backend::lock(&self.renewed).is_some_and(|at| at.elapsed() < self.renew_deadline)
    }
}

/// The election loop of one replica.
pub struct Elector {
    store: Arc<dyn LeaseStore>,
    url: LeaseUrl,
    timings: LeaseTimings,
    leadership: Arc<Leadership>,
    shared: Arc<Shared>,
    /// The record as this replica last wrote it, while it leads.
    mine: Option<LeaseRecord>,
    /// A standby's view of the holder: the record version it saw and when (its own clock) it first saw it.
    observed: Option<(String, Instant)>,
}

/// `host/pid/random`: unique per process, and readable in the item.
fn identity() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "mcpfleet".into());
    format!("{host}/{}/{}", std::process::id(), random_hex())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    // Without the OS's randomness the clock's nanoseconds still tell processes of one host apart.
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
        bytes = (nanos as u64).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl Elector {
    pub fn new(store: Arc<dyn LeaseStore>, url: LeaseUrl, timings: LeaseTimings, shared: Arc<Shared>) -> Elector {
        let leadership = Arc::new(Leadership {
            identity: identity(),
            owner: url.to_string(),
            renew_deadline: timings.renew_deadline,
            renewed: Mutex::new(None),
        });
        shared.set_role(Some(false));
        Elector { store, url, timings, leadership, shared, mine: None, observed: None }
    }

    /// What the loop asks before writing.
    pub fn leadership(&self) -> Arc<Leadership> {
        self.leadership.clone()
    }

    /// Reads or renews every retry period until `stop`; returns itself so the caller can release the lease.
    pub async fn run(mut self, stop: Arc<AtomicBool>) -> Elector {
        info!(lease = %self.url, identity = %self.leadership.identity, "standing by for the lease");
        while !stop.load(Ordering::SeqCst) {
            self.tick().await;
            let next = Instant::now() + self.timings.retry;
            while Instant::now() < next && !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(50).min(next - Instant::now())).await;
            }
        }
        self
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        match self.mine.clone() {
            Some(mine) => {
                let next = LeaseRecord { record_version: random_hex(), renewed_at: now_rfc3339(), ..mine.clone() };
                match self.store.write(&self.url, Some(&mine.record_version), &next).await {
                    Ok(LeaseWrite::Done) => {
                        self.mine = Some(next);
                        *crate::backend::lock(&self.leadership.renewed) = Some(now);
                    }
                    Ok(LeaseWrite::Conflict) => self.lose("another replica holds the lease now"),
                    Err(e) if !self.leadership.holds() => {
                        self.lose(&format!("could not renew the lease within the renew deadline: {e}"));
                    }
                    Err(e) => warn!(lease = %self.url, error = %e, "cannot renew the lease; retrying"),
                }
            }
            None => self.try_acquire(now).await,
        }
    }

    async fn try_acquire(&mut self, now: Instant) {
        let current = match self.store.read(&self.url).await {
            Ok(c) => c,
            Err(e) => return warn!(lease = %self.url, error = %e, "cannot read the lease"),
        };
        let free = match &current {
            None => true,
            Some(r) if r.holder.is_empty() => true,
            Some(r) => match &self.observed {
                // Unchanged for a whole lease duration on this replica's clock: the holder is gone.
                Some((rvn, since)) if *rvn == r.record_version => {
                    now.duration_since(*since) >= Duration::from_millis(r.duration_ms)
                }
                _ => {
                    self.observed = Some((r.record_version.clone(), now));
                    false
                }
            },
        };
        if !free {
            return;
        }
        let stamp = now_rfc3339();
        let record = LeaseRecord {
            holder: self.leadership.identity.clone(),
            record_version: random_hex(),
            duration_ms: self.timings.duration.as_millis() as u64,
            acquired_at: stamp.clone(),
            renewed_at: stamp,
            transitions: current.as_ref().map_or(0, |c| c.transitions + 1),
        };
        let expected = current.as_ref().map(|c| c.record_version.as_str());
        match self.store.write(&self.url, expected, &record).await {
            Ok(LeaseWrite::Done) => {
                let previous = current.map(|c| c.holder).filter(|h| !h.is_empty());
                info!(lease = %self.url, identity = %record.holder, previous = previous.as_deref().unwrap_or("-"), "acquired the lease: leading");
                self.mine = Some(record);
                self.observed = None;
                *crate::backend::lock(&self.leadership.renewed) = Some(now);
                self.shared.set_role(Some(true));
                self.shared.metrics.lease_transitions.inc();
            }
            // Another standby was faster.
            Ok(LeaseWrite::Conflict) => self.observed = None,
            Err(e) => warn!(lease = %self.url, error = %e, "cannot write the lease"),
        }
    }

    fn lose(&mut self, why: &str) {
        warn!(lease = %self.url, reason = why, "lost the lease: standing by, writing nothing");
        self.mine = None;
        self.observed = None;
        *crate::backend::lock(&self.leadership.renewed) = None;
        self.shared.set_role(Some(false));
        self.shared.metrics.lease_transitions.inc();
    }

    /// Gives the lease up at once (empty holder, a new record version) when this replica holds it.
    pub async fn release(&mut self) {
        let Some(mine) = self.mine.take() else { return };
        *crate::backend::lock(&self.leadership.renewed) = None;
        let released = LeaseRecord {
            holder: String::new(),
            record_version: random_hex(),
            renewed_at: now_rfc3339(),
            ..mine.clone()
        };
        match self.store.write(&self.url, Some(&mine.record_version), &released).await {
            Ok(LeaseWrite::Done) => info!(lease = %self.url, "released the lease"),
            Ok(LeaseWrite::Conflict) => info!(lease = %self.url, "the lease had already passed to another replica"),
            Err(e) => {
                warn!(lease = %self.url, error = %e, "cannot release the lease; a standby takes it after its duration")
            }
        }
        self.shared.set_role(Some(false));
    }
}
