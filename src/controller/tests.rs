//! The controller's bookkeeping rules: liveness from progress, the error policy's backoff per kind, when the next
//! pass runs, and which rollouts a pass still watches.

use std::time::{Duration, Instant};

use super::*;
use crate::backend::{BackendError, ServiceState};
use crate::reconcile::settle::{Pending, pending as unsettled};
use crate::reconcile::watch::{self, RolloutResult};
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
        delays.push(b.failed(&key("search"), ErrorKind::Transient, now));
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
    let again = b.failed(&key("search"), ErrorKind::Transient, now);
    assert!(again <= Duration::from_millis(7500), "not reset: {again:?}");
}

#[test]
fn backoffs_are_per_service() {
    let mut b = Backoffs::new(Duration::from_secs(60));
    let now = Instant::now();
    for _ in 0..6 {
        b.failed(&key("search"), ErrorKind::Transient, now);
    }
    let first = b.failed(&key("documents"), ErrorKind::Transient, now);
    assert!(first <= Duration::from_millis(7500), "another service's failures leaked: {first:?}");
    b.succeeded(&key("documents"));
    assert!(b.waiting(&key("search"), now), "one service's success reset another's backoff");
}

#[test]
fn each_error_kind_backs_off_by_its_own_policy() {
    let interval = Duration::from_secs(60);
    let now = Instant::now();
    let secs = |d: Duration| d.as_secs_f64();
    let first = |kind: ErrorKind| Backoffs::new(interval).failed(&key("search"), kind, now);
    let mut b = Backoffs::new(interval);
    let throttled: Vec<f64> = (0..3).map(|_| secs(b.failed(&key("search"), ErrorKind::Throttled, now))).collect();
    // Throttling steps back further than an outage: 30 s, ×2, ±50 %.
    for (d, nominal) in throttled.iter().zip([30.0, 60.0, 120.0]) {
        assert!(*d >= nominal * 0.5 && *d <= nominal * 1.5, "throttled {throttled:?}");
    }
    let transient = secs(first(ErrorKind::Transient));
    assert!((2.5..=7.5).contains(&transient), "transient {transient}");
    // A refused request waits at least half an interval of 60 s.
    let refused = secs(first(ErrorKind::Aws4xx));
    assert!((30.0..=90.0).contains(&refused), "aws_4xx {refused}");
    // A missing tag or secret is looked for once per interval (±10 %), never less often.
    let mut b = Backoffs::new(interval);
    let spec: Vec<f64> = (0..8).map(|_| secs(b.failed(&key("search"), ErrorKind::Spec, now))).collect();
    assert!(spec.iter().all(|d| (54.0..=66.0).contains(d)), "spec {spec:?}");

    // Another kind of failure starts that kind's policy from its first step.
    let mut b = Backoffs::new(interval);
    for _ in 0..6 {
        b.failed(&key("search"), ErrorKind::Aws4xx, now);
    }
    let switched = secs(b.failed(&key("search"), ErrorKind::Transient, now));
    assert!(switched <= 7.5, "the 4xx backoff carried over: {switched}");
}

#[test]
fn failures_are_classified_by_what_went_wrong() {
    let e =
        |make: fn(Op, String) -> BackendError| ReconcileFailure::Backend(make(Op::UpdateService, "boom".into())).kind();
    assert_eq!(e(|operation, message| BackendError::Throttled { operation, message }), ErrorKind::Throttled);
    assert_eq!(e(|operation, message| BackendError::Invalid { operation, message }), ErrorKind::Aws4xx);
    assert_eq!(e(|operation, message| BackendError::NotFound { operation, message }), ErrorKind::Aws4xx);
    assert_eq!(e(|operation, message| BackendError::Unavailable { operation, message }), ErrorKind::Transient);
    assert_eq!(ReconcileFailure::Backend(BackendError::State("locked".into())).kind(), ErrorKind::Transient);
    assert_eq!(ReconcileFailure::Unresolved(vec!["tag v9 not found".into()]).kind(), ErrorKind::Spec);
    let labels: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(labels, ["throttled", "aws_4xx", "spec", "transient"]);
}

// ---- scheduling ----

#[test]
fn the_next_pass_comes_at_the_jittered_interval_or_at_the_earliest_requeue() {
    let interval = Duration::from_secs(60);
    let mut s = Schedule::new(interval);
    let now = Instant::now();
    let waits: Vec<f64> = (0..50).map(|_| (s.next_pass(now) - now).as_secs_f64()).collect();
    assert!(waits.iter().all(|w| (54.0..=66.0).contains(w)), "not the interval ±10 %: {waits:?}");
    assert!(waits.iter().any(|w| (w - waits[0]).abs() > 0.01), "no jitter: {waits:?}");

    // A rollout in flight is looked at again soon; a service with nothing pending waits for the interval.
    s.record(&key("search"), Action::Requeue(FAST), now);
    s.record(&key("documents"), Action::Requeue(Duration::from_secs(20)), now);
    assert_eq!(s.next_pass(now), now + FAST);
    // The pass at `now + FAST` consumed search's requeue; documents' is still ahead.
    let later = now + FAST;
    assert_eq!(s.next_pass(later), now + Duration::from_secs(20));
    s.record(&key("documents"), Action::AwaitChange, later);
    let w = (s.next_pass(later) - later).as_secs_f64();
    assert!((54.0..=66.0).contains(&w), "{w}");

    // Whatever asks for sooner, passes are at least MIN_GAP apart: never a busy loop.
    s.record(&key("search"), Action::Requeue(Duration::ZERO), now);
    assert_eq!(s.next_pass(now), now + MIN_GAP);
    // A service that left the manifests asks for nothing any more.
    s.record(&key("search"), Action::Requeue(FAST), now);
    s.retain(|k| k.1 != "search");
    assert!(s.next_pass(now) > now + FAST);
}

// ---- manifests ----

#[test]
fn the_watch_lists_the_files_the_loader_reads_and_reports_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    for f in ["fleet.yaml", "search.yaml", "documents.yaml"] {
        std::fs::copy(repo.join(f), dir.path().join(f)).unwrap();
    }
    // Not manifests: a note, and a directory whose name ends in .yaml.
    std::fs::write(dir.path().join("NOTES.txt"), "x").unwrap();
    std::fs::create_dir(dir.path().join("old.yaml")).unwrap();
    let names: Vec<String> = crate::spec::manifest_files(dir.path())
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["documents.yaml", "fleet.yaml", "search.yaml"]);

    let mut m = manifests::Manifests::new(vec![dir.path().to_path_buf()]);
    let Reload::Loaded { changed } = m.reload() else { panic!("the example manifests did not load") };
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(matches!(m.reload(), Reload::Unchanged));
    std::fs::write(dir.path().join("NOTES.txt"), "a longer note").unwrap();
    assert!(!m.changed_on_disk(), "a file the loader does not read is not watched");

    let search = dir.path().join("search.yaml");
    let text = std::fs::read_to_string(&search).unwrap();
    std::fs::write(&search, text.replace("replicas: 1", "replicas: 2")).unwrap();
    assert!(m.changed_on_disk());
    let Reload::Loaded { changed } = m.reload() else { panic!("the edit did not load") };
    assert_eq!(changed, [("mcp-prod".to_string(), "search".to_string())]);

    std::fs::write(&search, text.replace("cpu: 256", "cpu: 300")).unwrap();
    let Reload::Invalid(lines) = m.reload() else { panic!("a broken file loaded") };
    assert!(lines.iter().any(|l| l.contains("spec.cpu")), "{lines:?}");
    let kept = m.fleet().unwrap().services.iter().find(|s| s.name == "search").unwrap();
    assert_eq!(kept.replicas, 2, "the last valid fleet is kept");
}

// ---- metrics ----

#[test]
fn series_with_known_labels_exist_from_the_start() {
    let text = metrics::Metrics::new().encode();
    for series in [
        "mcpfleet_rollbacks_total{outcome=\"started\"} 0",
        "mcpfleet_rollbacks_total{outcome=\"failed\"} 0",
        "mcpfleet_reconcile_errors_total{kind=\"throttled\"} 0",
        "mcpfleet_reconcile_errors_total{kind=\"aws_4xx\"} 0",
        "mcpfleet_reconcile_errors_total{kind=\"spec\"} 0",
        "mcpfleet_reconcile_errors_total{kind=\"transient\"} 0",
    ] {
        assert!(text.lines().any(|l| l == series), "no `{series}`:\n{text}");
    }
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
    match unsettled(&s, 600, None) {
        Pending::Rollout(t) => {
            assert_eq!(t.task_definition, LG);
            assert_eq!(t.deadline_ms, 1_000_000 + 600_000);
        }
        other => panic!("{other:?}"),
    }
    // Completed: settled.
    let s = service(LG, "COMPLETED", &[(TAG_TASK_DEFINITION, LG), (TAG_LAST_GOOD, LG)]);
    assert!(matches!(unsettled(&s, 600, None), Pending::Settled));
}

#[test]
fn a_failed_rollback_is_judged_once_then_left_alone() {
    let tags = [(TAG_TASK_DEFINITION, LG), (TAG_LAST_GOOD, LG), (TAG_FAILED_SPEC_HASH, "x")];
    let s = service(LG, "FAILED", &tags);
    let Pending::Rollout(t) = unsettled(&s, 600, None) else { panic!("a failed rollback is not judged") };
    assert!(matches!(watch::judge(&t, &s, 1_000_001), Some(RolloutResult::Failed { .. })));
    let mut reported = s.clone();
    reported.tags.insert(TAG_ROLLBACK_FAILED.into(), "ecs-svc/7".into());
    assert!(matches!(unsettled(&reported, 600, None), Pending::FailedRollback));
    // A later deployment of the same revision is watched again.
    reported.tags.insert(TAG_ROLLBACK_FAILED.into(), "ecs-svc/3".into());
    assert!(matches!(unsettled(&reported, 600, None), Pending::Rollout(_)));
}

#[test]
fn a_new_revision_is_watched_and_drift_to_another_revision_is_left_to_the_plan() {
    let s = service(NEW, "IN_PROGRESS", &[(TAG_TASK_DEFINITION, NEW), (TAG_LAST_GOOD, LG)]);
    assert!(matches!(unsettled(&s, 600, None), Pending::Rollout(t) if t.task_definition == NEW));
    // Someone deployed another revision over the last good one: drift, corrected by the plan, not a rollback.
    let s = service(NEW, "IN_PROGRESS", &[(TAG_TASK_DEFINITION, LG), (TAG_LAST_GOOD, LG)]);
    assert!(matches!(unsettled(&s, 600, None), Pending::Settled));
    // The failed spec of a service without a good revision is settled.
    let s = service(NEW, "FAILED", &[(TAG_TASK_DEFINITION, NEW), (TAG_SPEC_HASH, "h"), (TAG_FAILED_SPEC_HASH, "h")]);
    assert!(matches!(unsettled(&s, 600, None), Pending::Settled));
}

#[tokio::test]
async fn every_backend_call_that_returns_is_progress() {
    use crate::backend::Ecs;
    let shared = Shared::new();
    let sim = crate::backend::sim::Sim::in_memory(crate::backend::sim::World::default());
    let ecs = heartbeat::Beating { inner: sim.backend().ecs, shared: shared.clone() };
    // The last progress a minute ago, so that any beat now is visibly later.
    let before = Instant::now().checked_sub(Duration::from_secs(60)).unwrap();
    *shared.progress.lock().unwrap() = before;
    // An error answer is progress too: the loop is moving, just not succeeding.
    let _ = ecs.describe_task_definition("nope").await;
    let after = *shared.progress.lock().unwrap();
    assert!(after > before, "a backend call did not count as progress");
}
