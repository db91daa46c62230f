//! The controller's bookkeeping rules: liveness from progress, per-service backoff, and which rollouts a pass
//! still watches.

use std::time::{Duration, Instant};

use super::*;
use crate::backend::ServiceState;
use crate::state::{TAG_FAILED_SPEC_HASH, TAG_LAST_GOOD, TAG_ROLLBACK_FAILED, TAG_SPEC_HASH, TAG_TASK_DEFINITION};

// ---- liveness ----

#[test]
fn a_fresh_controller_is_alive_and_a_first_pass_that_hangs_is_not() {
    let shared = Shared::new();
    let t0 = *shared.progress.lock().unwrap();
    assert!(shared.alive_at(t0 + Duration::from_secs(1)));
    assert!(shared.alive_at(t0 + STALL_BOUND - Duration::from_secs(1)));
    // No pass ever finished and nothing moved: stuck, even though no heartbeat was ever recorded.
    assert!(!shared.alive_at(t0 + STALL_BOUND));
    assert!(!shared.alive_at(t0 + STALL_BOUND * 10));
}

#[test]
fn a_long_pass_that_keeps_making_progress_stays_alive() {
    let shared = Shared::new();
    let t0 = *shared.progress.lock().unwrap();
    // 1,000 services at one RegisterTaskDefinition a second: a pass of ~1,000 s with a step every second.
    for s in 1..=1000u64 {
        let now = t0 + Duration::from_secs(s);
        assert!(shared.alive_at(now), "dead at {s}s of a pass that is making progress");
        shared.beat_at(now);
    }
    let last = t0 + Duration::from_secs(1000);
    assert!(shared.alive_at(last + STALL_BOUND - Duration::from_millis(1)));
    // Then it hangs: staleness is measured from the last progress, not from the start of the pass.
    assert!(!shared.alive_at(last + STALL_BOUND));
    // A late, out-of-order beat never moves progress backwards.
    shared.beat_at(t0);
    assert!(!shared.alive_at(last + STALL_BOUND));
}

// ---- backoff ----

fn key(name: &str) -> (String, String) {
    ("mcp-prod".to_string(), name.to_string())
}

#[test]
fn a_failing_service_backs_off_with_growing_jittered_delays_and_resets_on_success() {
    let mut b = Backoffs::new(Duration::from_secs(60));
    let now = Instant::now();
    let mut delays = Vec::new();
    for _ in 0..8 {
        delays.push(b.failed(&key("search"), now));
    }
    // Initial 5 s, ×1.5 per failure, ±50 % jitter.
    let mut nominal = 5.0f64;
    for d in &delays {
        let d = d.as_secs_f64();
        assert!(d >= nominal * 0.5 - 1e-6 && d <= nominal * 1.5 + 1e-6, "{d}s outside {nominal}s ±50 %: {delays:?}");
        nominal *= 1.5;
    }
    assert!(delays[7] > delays[0] * 3, "the delays do not grow: {delays:?}");
    assert!(delays.windows(2).any(|w| w[1].as_secs_f64() / w[0].as_secs_f64() != 1.5), "no jitter: {delays:?}");

    // Waiting until the last delay runs out; the other services are never held back.
    assert!(b.waiting(&key("search"), now));
    assert!(b.waiting(&key("search"), now + delays[7] - Duration::from_millis(1)));
    assert!(!b.waiting(&key("search"), now + delays[7]));
    assert!(!b.waiting(&key("documents"), now));
    assert_eq!(b.waiting_count(now), 1);

    // A success (whatever it did) starts the backoff over.
    b.succeeded(&key("search"));
    assert!(!b.waiting(&key("search"), now));
    assert_eq!(b.waiting_count(now), 0);
    let again = b.failed(&key("search"), now);
    assert!(again <= Duration::from_millis(7500), "not reset: {again:?}");
}

#[test]
fn backoffs_are_per_service() {
    let mut b = Backoffs::new(Duration::from_secs(60));
    let now = Instant::now();
    for _ in 0..6 {
        b.failed(&key("search"), now);
    }
    let first = b.failed(&key("documents"), now);
    assert!(first <= Duration::from_millis(7500), "another service's failures leaked: {first:?}");
    b.succeeded(&key("documents"));
    assert!(b.waiting(&key("search"), now), "one service's success reset another's backoff");
}

// ---- what a pass watches ----

const LG: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/search:1";
const NEW: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/search:2";

fn service(primary_td: &str, state: &str, tags: &[(&str, &str)]) -> ServiceState {
    let tags: serde_json::Map<String, serde_json::Value> =
        tags.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect();
    serde_json::from_value(serde_json::json!({
        "arn": "arn:aws:ecs:us-east-1:123456789012:service/mcp-prod/search",
        "cluster": "mcp-prod",
        "name": "search",
        "status": "ACTIVE",
        "taskDefinition": primary_td,
        "desiredCount": 1,
        "runningCount": 0,
        "pendingCount": 1,
        "deploymentConfiguration": null,
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": [], "assignPublicIp": "DISABLED"}},
        "deployments": [{
            "id": "ecs-svc/7",
            "status": "PRIMARY",
            "taskDefinition": primary_td,
            "desiredCount": 1,
            "runningCount": 0,
            "pendingCount": 1,
            "failedTasks": 0,
            "rolloutState": state,
            "rolloutStateReason": "",
            "createdAtMs": 1_000_000,
            "updatedAtMs": 1_000_000,
        }],
        "events": [],
        "tags": tags,
    }))
    .expect("a service state")
}

#[test]
fn a_rollback_in_progress_is_watched_not_counted_as_converged() {
    let s = service(LG, "IN_PROGRESS", &[(TAG_TASK_DEFINITION, LG), (TAG_LAST_GOOD, LG), (TAG_FAILED_SPEC_HASH, "x")]);
    match unsettled(&s, 600) {
        Pending::Rollout(t) => {
            assert_eq!(t.task_definition, LG);
            assert_eq!(t.deadline_ms, 1_000_000 + 600_000);
        }
        other => panic!("{other:?}"),
    }
    // Completed: settled.
    let s = service(LG, "COMPLETED", &[(TAG_TASK_DEFINITION, LG), (TAG_LAST_GOOD, LG)]);
    assert!(matches!(unsettled(&s, 600), Pending::Settled));
}

#[test]
fn a_failed_rollback_is_judged_once_then_left_alone() {
    let tags = [(TAG_TASK_DEFINITION, LG), (TAG_LAST_GOOD, LG), (TAG_FAILED_SPEC_HASH, "x")];
    let s = service(LG, "FAILED", &tags);
    let Pending::Rollout(t) = unsettled(&s, 600) else { panic!("a failed rollback is not judged") };
    assert!(matches!(watch::judge(&t, &s, 1_000_001), Some(RolloutResult::Failed { .. })));
    let mut reported = s.clone();
    reported.tags.insert(TAG_ROLLBACK_FAILED.into(), "ecs-svc/7".into());
    assert!(matches!(unsettled(&reported, 600), Pending::FailedRollback));
    // A later deployment of the same revision is watched again.
    reported.tags.insert(TAG_ROLLBACK_FAILED.into(), "ecs-svc/3".into());
    assert!(matches!(unsettled(&reported, 600), Pending::Rollout(_)));
}

#[test]
fn a_new_revision_is_watched_and_drift_to_another_revision_is_left_to_the_plan() {
    let s = service(NEW, "IN_PROGRESS", &[(TAG_TASK_DEFINITION, NEW), (TAG_LAST_GOOD, LG)]);
    assert!(matches!(unsettled(&s, 600), Pending::Rollout(t) if t.task_definition == NEW));
    // Someone deployed another revision over the last good one: drift, corrected by the plan, not a rollback.
    let s = service(NEW, "IN_PROGRESS", &[(TAG_TASK_DEFINITION, LG), (TAG_LAST_GOOD, LG)]);
    assert!(matches!(unsettled(&s, 600), Pending::Settled));
    // The failed spec of a service without a good revision is settled.
    let s = service(NEW, "FAILED", &[(TAG_TASK_DEFINITION, NEW), (TAG_SPEC_HASH, "h"), (TAG_FAILED_SPEC_HASH, "h")]);
    assert!(matches!(unsettled(&s, 600), Pending::Settled));
}

#[tokio::test]
async fn every_backend_call_that_returns_is_progress() {
    use crate::backend::Ecs;
    let shared = Shared::new();
    let sim = crate::backend::sim::Sim::in_memory(crate::backend::sim::World::default());
    let ecs = heartbeat::Beating { inner: sim.backend().ecs, shared: shared.clone() };
    let before = *shared.progress.lock().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    // An error answer is progress too: the loop is moving, just not succeeding.
    let _ = ecs.describe_task_definition("nope").await;
    let after = *shared.progress.lock().unwrap();
    assert!(after > before, "a backend call did not count as progress");
}
