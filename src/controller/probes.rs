//! Watching verified services between rollouts: every `--probe-interval` the controller probes each service
//! whose rollouts are verified, with the gate's own [`verify`], and reports what it finds — the
//! `mcpfleet_mcp_probe_success`, `mcpfleet_mcp_tools` and `mcpfleet_mcp_probe_duration_seconds` series, a log
//! line, and `/readyz`'s `mcpProbeFailures` while a probe fails. A failing probe outside a rollout is never
//! rolled back: the revision was good when it rolled out, and what broke since (a dependency, the network) is
//! for an operator to judge. What changed is recorded as the gate records it (the tools on the revision, the
//! result on the service, written only when it changes).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::metrics::ServiceLabel;
use super::{Controller, Key};
use crate::backend::RolloutState;
use crate::plan;
use crate::reconcile::settle::Settled;
use crate::reconcile::verify::{self, Gate, Passed};
use crate::reconcile::{Desired, Observed};

/// When each verified service was last probed.
#[derive(Debug)]
pub struct Probes {
    interval: Duration,
    last: BTreeMap<Key, Instant>,
}

impl Probes {
    pub fn new(interval: Duration) -> Probes {
        Probes { interval, last: BTreeMap::new() }
    }

    /// Whether `key` is due at `now`: never probed (a controller that starts probes at once), or probed an
    /// interval ago.
    pub fn due(&self, key: &Key, now: Instant) -> bool {
        self.last.get(key).is_none_or(|at| now >= *at + self.interval)
    }

    /// `key` was probed (or verified by a rollout) at `at`.
    pub fn probed(&mut self, key: &Key, at: Instant) {
        self.last.insert(key.clone(), at);
    }

    /// When the next probe falls due; None when nothing was probed yet (the next pass probes).
    pub fn next_due(&self) -> Option<Instant> {
        self.last.values().map(|at| *at + self.interval).min()
    }

    /// Forgets services for which `keep` is false.
    pub fn retain(&mut self, keep: impl Fn(&Key) -> bool) {
        self.last.retain(|k, _| keep(k));
    }
}

impl Controller {
    /// Re-probes the verified services that are due: those settled on a completed deployment, not in flight.
    pub(super) async fn reprobe(&mut self, desired: &[Desired], observed: &Observed, busy: &BTreeSet<String>) {
        let verified: BTreeSet<Key> =
            desired.iter().filter(|d| d.mcp.verified()).map(|d| (d.ecs.cluster.clone(), d.ecs.name.clone())).collect();
        self.forget_unverified(&verified);
        let ecs = self.backend.ecs.clone();
        let clock = self.backend.clock.clone();
        for d in desired.iter().filter(|d| d.mcp.verified() && !busy.contains(&d.ecs.name)) {
            let key = (d.ecs.cluster.clone(), d.ecs.name.clone());
            let Some(s) = observed.get(&key.0, &key.1).filter(|s| s.is_active() && plan::is_managed(s)) else {
                continue;
            };
            let settled = s.primary().is_some_and(|p| p.rollout_state == RolloutState::Completed);
            if !settled || !self.probes.due(&key, Instant::now()) {
                continue;
            }
            let Some(gate) = Gate::of(&d.mcp, Some(self.gate_ports())) else { continue };
            let verdict = match verify::verify(ecs.as_ref(), clock.as_ref(), gate, s, &s.task_definition).await {
                Ok(v) => v,
                Err(e) => {
                    warn!(service = %key.1, cluster = %key.0, error = %e, "could not re-probe the MCP server; will retry");
                    continue;
                }
            };
            self.shared.beat();
            self.probes.probed(&key, Instant::now());
            if let Err(e) = verify::record(ecs.as_ref(), clock.as_ref(), s, &s.task_definition, &verdict).await {
                warn!(service = %key.1, cluster = %key.0, error = %e, "could not record the MCP verification");
            }
            let passed =
                Passed { tools: verdict.tools.as_ref().map(Vec::len), latency: verdict.latency, warning: None };
            self.report_probe(&key, verdict.failure.as_deref(), &passed);
        }
    }

    /// Reports what a rollout's gate found when it passed (a failure is the settle's to report, and rolls back):
    /// the probe was just made, so the next falls due an interval later.
    pub(super) fn gate_reported(&mut self, d: &Desired, settled: &Settled) {
        if let Settled::Completed { verified: Some(passed), .. } = settled {
            let key = (d.ecs.cluster.clone(), d.ecs.name.clone());
            self.probes.probed(&key, Instant::now());
            self.report_probe(&key, None, passed);
        }
    }

    /// Puts a probe's result in the metrics, the log and `/readyz`: `failure` is why it failed, `found` what
    /// it measured.
    fn report_probe(&mut self, key: &Key, failure: Option<&str>, found: &Passed) {
        let label = ServiceLabel::of(&key.0, &key.1);
        let m = &self.shared.metrics;
        m.mcp_probe_success.get_or_create(&label).set(i64::from(failure.is_none()));
        if let Some(tools) = found.tools {
            m.mcp_tools.get_or_create(&label).set(i64::try_from(tools).unwrap_or(i64::MAX));
        }
        if let Some(latency) = found.latency {
            m.mcp_probe_duration.get_or_create(&label).observe(latency.as_secs_f64());
        }
        self.probed_labels.insert(label);
        let id = format!("{}/{}", key.0, key.1);
        let mut status = crate::backend::lock(&self.shared.status);
        match failure {
            Some(why) => {
                warn!(service = %key.1, cluster = %key.0, reason = %why, "MCP probe failed; reported, not rolled back");
                status.mcp_failures.insert(id, why.to_string());
            }
            None => {
                if status.mcp_failures.remove(&id).is_some() {
                    info!(service = %key.1, cluster = %key.0, "MCP probe passes again");
                }
            }
        }
    }

    /// Drops the probe bookkeeping and series of services that are no longer verified (or left the fleet).
    fn forget_unverified(&mut self, verified: &BTreeSet<Key>) {
        self.probes.retain(|k| verified.contains(k));
        let mut status = crate::backend::lock(&self.shared.status);
        status.mcp_failures.retain(|id, _| verified.iter().any(|(c, n)| *id == format!("{c}/{n}")));
        drop(status);
        let m = &self.shared.metrics;
        self.probed_labels.retain(|label| {
            let keep = verified.contains(&(label.cluster.clone(), label.service.clone()));
            if !keep {
                m.mcp_probe_success.remove(label);
                m.mcp_tools.remove(label);
                m.mcp_probe_duration.remove(label);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("mcp-prod".to_string(), name.to_string())
    }

    #[test]
    fn a_service_is_probed_at_once_then_every_interval() {
        let mut p = Probes::new(Duration::from_secs(300));
        let t0 = Instant::now();
        assert!(p.due(&key("docs"), t0), "never probed: due at once");
        assert_eq!(p.next_due(), None);
        p.probed(&key("docs"), t0);
        assert!(!p.due(&key("docs"), t0 + Duration::from_secs(299)));
        assert!(p.due(&key("docs"), t0 + Duration::from_secs(300)));
        p.probed(&key("search"), t0 + Duration::from_secs(60));
        assert_eq!(p.next_due(), Some(t0 + Duration::from_secs(300)), "the earliest falls due first");
        p.retain(|k| k.1 == "search");
        assert_eq!(p.next_due(), Some(t0 + Duration::from_secs(360)));
        assert!(p.due(&key("docs"), t0), "forgotten: due again");
    }
}
