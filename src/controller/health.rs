//! Health and readiness state, shared between the reconcile loop and the HTTP server: liveness measured from the
//! loop's last progress (any backend call, step or idle tick — not the end of a pass, which over a large fleet can
//! take many minutes), and readiness from the last manifest load and observe pass.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::metrics::Metrics;

/// How long the loop may go without any progress (a backend call returning, a step finishing, an idle tick)
/// before `/healthz` says it is stuck. A single ECS call with throttling retries stays well within it; a pass
/// over a large fleet makes progress every few seconds however long the pass as a whole takes.
pub const STALL_BOUND: Duration = Duration::from_secs(180);

/// Health and metrics shared with the HTTP server.
pub struct Shared {
    pub metrics: Metrics,
    pub(super) status: Mutex<Status>,
    /// When the loop last made progress (starts at creation, so a first pass that hangs is caught too).
    pub(super) progress: Mutex<Instant>,
}

/// What readiness is decided from; written by the loop.
#[derive(Default)]
pub(super) struct Status {
    pub(super) observe_error: Option<String>,
    pub(super) spec_errors: Vec<String>,
    pub(super) has_fleet: bool,
    pub(super) observed_once: bool,
    /// Services whose rollout of their last good revision (a rollback) failed, as `cluster/name`.
    pub(super) failed_rollbacks: Vec<String>,
    /// When the next pass is due (unless a manifest changes first).
    pub(super) next_pass: Option<Instant>,
    /// Verified services whose last re-probe failed, as `cluster/name` → why.
    pub(super) mcp_failures: std::collections::BTreeMap<String, String>,
    /// The published fleet in use (`run --source`).
    pub(super) fleet_version: Option<super::source::FleetVersion>,
    /// With `--lease`: whether this replica leads (`Some(true)`) or stands by.
    pub(super) leading: Option<bool>,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            metrics: Metrics::new(),
            status: Mutex::new(Status::default()),
            progress: Mutex::new(Instant::now()),
        })
    }

    /// With `--lease`: whether this replica now leads (`mcpfleet_leader`, `/readyz`'s `role`).
    pub fn set_role(&self, leading: Option<bool>) {
        crate::backend::lock(&self.status).leading = leading;
        self.metrics.leader.set(i64::from(leading.unwrap_or(true)));
    }

    /// Records that the loop made progress.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    pub(super) fn beat_at(&self, at: Instant) {
        let mut p = crate::backend::lock(&self.progress);
        if at > *p {
            *p = at;
        }
    }

    /// The loop made progress within [`STALL_BOUND`].
    pub fn alive(&self) -> bool {
        self.alive_at(Instant::now())
    }

    /// Time since the loop last made progress.
    pub fn since_progress(&self) -> Duration {
        crate::backend::lock(&self.progress).elapsed()
    }

    pub(super) fn alive_at(&self, now: Instant) -> bool {
        now.saturating_duration_since(*crate::backend::lock(&self.progress)) < STALL_BOUND
    }

    /// Whether the controller is ready, and a JSON body that says why not.
    pub fn readiness(&self) -> (bool, serde_json::Value) {
        let s = crate::backend::lock(&self.status);
        // A standby is ready to take over: it neither loads nor observes until it leads.
        if s.leading == Some(false) {
            return (true, serde_json::json!({ "ready": true, "role": "standby", "reasons": [] }));
        }
        let mut reasons = Vec::new();
        if !s.has_fleet {
            reasons.push("no valid manifests loaded yet".to_string());
        }
        if !s.spec_errors.is_empty() {
            reasons.push("the manifests on disk are invalid; still converging to the last valid fleet".to_string());
        }
        if let Some(e) = &s.observe_error {
            reasons.push(format!("the last observe pass failed: {e}"));
        } else if !s.observed_once {
            reasons.push("no observe pass has completed yet".to_string());
        }
        let ready = reasons.is_empty();
        // A service whose rollback failed, or whose MCP server fails its probes, needs an operator, but the
        // controller itself is fine: reported, not counted against readiness.
        let mcp_failures: Vec<serde_json::Value> = s
            .mcp_failures
            .iter()
            .map(|(service, reason)| serde_json::json!({ "service": service, "reason": reason }))
            .collect();
        let mut body = serde_json::json!({
            "ready": ready,
            "reasons": reasons,
            "specErrors": s.spec_errors,
            "failedRollbacks": s.failed_rollbacks,
            "mcpProbeFailures": mcp_failures,
        });
        body["role"] = "leader".into();
        if let Some(v) = &s.fleet_version {
            body["fleetVersion"] = serde_json::to_value(v).unwrap_or_default();
        }
        // When the controller looks again without a manifest change: tells "idle until then" from "stuck".
        if let Some(at) = s.next_pass {
            body["nextPassInSeconds"] = at.saturating_duration_since(Instant::now()).as_secs_f64().ceil().into();
        }
        (ready, body)
    }
}
