//! The controller (`mcpfleet run`) as a process on the sim backend: it converges, corrects drift, rolls a bad
//! rollout back without retrying it, survives a broken manifest, serves Prometheus metrics, and a SIGTERM in the
//! middle of a rollout is finished by the next controller without duplicates.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{ECR, Lab};
use serde_json::Value;

/// A running controller over a lab; killed on drop.
struct Controller {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Controller {
    fn start(lab: &Lab) -> Controller {
        Controller::start_with(lab, &[])
    }

    fn start_with(lab: &Lab, extra: &[&str]) -> Controller {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = lab.manifests().with_file_name(format!("controller-{port}.log"));
        let child = Command::new(assert_cmd::cargo::cargo_bin("mcpfleet"))
            .args(["--backend", "sim", "--sim-state", lab.state().to_str().unwrap(), "--log-format", "json"])
            .args(["run", "-f", lab.manifests().to_str().unwrap(), "--interval", "1s"])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--sim-speed", "10"])
            .args(extra)
            .env_remove("MCPFLEET_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let c = Controller { child, port, log };
        c.wait_for("the HTTP server", || c.get("/healthz").is_some_and(|(code, _)| code == 200));
        c
    }

    /// (status, body) of a GET, or None when nothing answers.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let code = text.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
    }

    fn wait_for(&self, what: &str, mut ok: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "timed out waiting for {what}; controller log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    fn signal(&self, sig: &str) {
        assert!(Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success());
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics").unwrap();
        body.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status(lab: &Lab) -> Vec<Value> {
    let (_, doc) = lab.json(&["status", "--cluster", "mcp-prod", "-o", "json"]);
    doc["services"].as_array().unwrap().clone()
}

fn all_completed(lab: &Lab) -> bool {
    status(lab).iter().all(|s| s["rolloutState"] == "COMPLETED" && s["lastGood"] == s["taskDefinition"])
}

#[test]
fn converges_from_empty_corrects_drift_and_serves_metrics() {
    let lab = Lab::new();
    let c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    c.wait_for("readiness", || c.get("/readyz").is_some_and(|(code, _)| code == 200));

    lab.ok(&["sim", "edit", "documents", "--cluster", "mcp-prod", "--desired-count", "5"]);
    c.wait_for("drift to be corrected", || {
        status(&lab).iter().any(|s| s["name"] == "documents" && s["desired"] == 2 && s["running"] == 2)
            && c.metric("mcpfleet_drift_corrections_total") >= 1.0
    });
    assert_eq!(lab.world().families["documents"].len(), 1, "correcting a count needs no new revision");

    // A steady-state pass costs only DescribeServices: resolution is cached, nothing is written.
    let before: Value = serde_json::from_str(&metrics_json(&c)).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let after: Value = serde_json::from_str(&metrics_json(&c)).unwrap();
    let delta = |op: &str| after[op].as_f64().unwrap_or(0.0) - before[op].as_f64().unwrap_or(0.0);
    assert!(delta("DescribeServices") >= 1.0, "{before} → {after}");
    for op in ["BatchGetImage", "ListSecrets", "RegisterTaskDefinition", "UpdateService", "TagResource", "ListServices"]
    {
        assert_eq!(delta(op), 0.0, "{op} in steady state: {before} → {after}");
    }
}

/// The api_requests counters, parsed with the reference Python client (so the text is valid OpenMetrics).
fn metrics_json(c: &Controller) -> String {
    let (code, body) = c.get("/metrics").unwrap();
    assert_eq!(code, 200);
    let script = "import json,sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
out={}\nfor fam in parse(sys.stdin.read()):\n    for s in fam.samples:\n        if s.name=='mcpfleet_api_requests_total': out[s.labels['operation']]=s.value\nprint(json.dumps(out))\n";
    let mut child = Command::new(common::python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "/metrics is not valid OpenMetrics: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_failed_rollout_is_rolled_back_and_not_retried() {
    let lab = Lab::new();
    let c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
    c.wait_for("the rollback", || c.metric("mcpfleet_rollbacks_total{outcome=\"started\"}") >= 1.0);
    c.wait_for("the service back on its last good revision", || {
        let w = lab.world();
        let s = &w.services["mcp-prod/search"].state;
        s.task_definition == w.families["search"][0].arn && s.running_count == 1
    });
    let (_, history) = lab.json(&["history", "search", "--cluster", "mcp-prod", "-o", "json"]);
    assert_eq!(history["revisions"][0]["outcome"], "rolled_back");
    // Several more passes: the failed spec is held back, no new revision, no new deployment.
    std::thread::sleep(Duration::from_secs(4));
    let w = lab.world();
    assert_eq!(w.families["search"].len(), 2);
    assert_eq!(w.services["mcp-prod/search"].state.task_definition, w.families["search"][0].arn);
    let (_, metrics) = c.get("/metrics").unwrap();
    assert!(c.metric("mcpfleet_reconciles_total{outcome=\"held\"}") >= 1.0, "{metrics}");
}

/// Marks the image a tag points at now as failing its health checks (tasks already running are unaffected).
fn make_unhealthy(lab: &Lab, repository: &str, tag: &str) {
    let sim = mcpfleet::backend::sim::Sim::open(&lab.state()).unwrap();
    sim.with_world(true, |w| {
        let repo = w.repositories.get_mut(&format!("{ECR}/{repository}")).unwrap();
        let digest = repo.tags[tag].clone();
        repo.images.get_mut(&digest).unwrap().unhealthy = true;
    })
    .unwrap();
}

#[test]
fn a_rollback_whose_own_rollout_fails_is_watched_reported_once_and_not_retried() {
    let lab = Lab::new();
    let c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    // The last good image goes bad as well: rolling back to it cannot succeed.
    make_unhealthy(&lab, "search", "v0.9.0");
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
    c.wait_for("the rollback to start", || c.metric("mcpfleet_rollbacks_total{outcome=\"started\"}") >= 1.0);
    // While the rollback rolls out, the service is in flight, not converged.
    c.wait_for("the rollback to be watched", || {
        c.metric("mcpfleet_services{state=\"rolling_out\"}") >= 1.0
            || c.metric("mcpfleet_rollbacks_total{outcome=\"failed\"}") >= 1.0
    });
    assert_eq!(c.metric("mcpfleet_rollbacks_total{outcome=\"failed\"}"), 0.0, "the rollback was never seen in flight");
    c.wait_for("the failed rollback to be reported", || {
        c.metric("mcpfleet_rollbacks_total{outcome=\"failed\"}") >= 1.0
    });
    let log = std::fs::read_to_string(&c.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("the rollback to the last good revision failed"))
        .unwrap_or_else(|| panic!("no failed-rollback line: {log}"));
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["fields"]["service"], "search", "{line}");
    let (_, body) = c.get("/readyz").unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["failedRollbacks"], serde_json::json!(["mcp-prod/search"]), "{body}");
    c.wait_for("the service counted as failed", || c.metric("mcpfleet_services{state=\"failed\"}") == 1.0);

    // Several more passes: reported once, the failed spec is not retried, nothing is redeployed.
    let w = lab.world();
    let deployments = w.services["mcp-prod/search"].state.deployments.len();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(c.metric("mcpfleet_rollbacks_total{outcome=\"failed\"}"), 1.0);
    let w = lab.world();
    assert_eq!(w.families["search"].len(), 2, "no new revision");
    let s = &w.services["mcp-prod/search"].state;
    assert_eq!(s.task_definition, w.families["search"][0].arn);
    assert_eq!(s.deployments.len(), deployments, "no new deployment");
    assert_eq!(s.primary().unwrap().rollout_state, mcpfleet::backend::RolloutState::Failed);
}

#[test]
fn a_broken_manifest_keeps_the_last_valid_fleet_until_fixed() {
    let lab = Lab::new();
    let c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    let path = lab.manifests().join("search.yaml");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace("cpu: 256", "cpu: 300")).unwrap();
    c.wait_for("readiness to drop", || c.get("/readyz").is_some_and(|(code, _)| code == 503));
    let (_, body) = c.get("/readyz").unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["specErrors"][0].as_str().unwrap().contains("spec.cpu: 300 is not a Fargate CPU size"), "{body}");
    assert_eq!(c.metric("mcpfleet_spec_valid"), 0.0);
    // Still converging to the last valid fleet: drift is corrected meanwhile.
    lab.ok(&["sim", "edit", "search", "--cluster", "mcp-prod", "--desired-count", "3"]);
    c.wait_for("drift corrected while the manifest is broken", || {
        status(&lab).iter().any(|s| s["name"] == "search" && s["desired"] == 1)
    });
    assert_eq!(lab.world().families["search"].len(), 1, "the broken spec is never acted on");
    std::fs::write(&path, good).unwrap();
    c.wait_for("readiness to return", || c.get("/readyz").is_some_and(|(code, _)| code == 200));
}

#[test]
fn sigterm_during_a_rollout_exits_cleanly_and_a_restart_finishes_it() {
    let lab = Lab::new();
    let mut c = Controller::start(&lab);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.1"), "--startup", "60s"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v0.9.1");
    c.wait_for("the rollout to start", || {
        status(&lab).iter().any(|s| s["name"] == "search" && s["rolloutState"] == "IN_PROGRESS")
    });
    c.signal("-TERM");
    let start = Instant::now();
    let code = loop {
        if let Some(status) = c.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(start.elapsed() < Duration::from_secs(25), "did not exit within the shutdown bound");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, Some(0), "{}", std::fs::read_to_string(&c.log).unwrap());
    let log = std::fs::read_to_string(&c.log).unwrap();
    assert!(log.contains("shutting down") && log.contains("shut down cleanly"), "{log}");
    assert!(log.lines().any(|l| l.contains("\"pass\"")), "structured logs carry the pass id: {log}");

    let c2 = Controller::start(&lab);
    c2.wait_for("the restarted controller to finish the rollout", || {
        status(&lab).iter().any(|s| {
            s["name"] == "search"
                && s["rolloutState"] == "COMPLETED"
                && s["lastGood"] == s["taskDefinition"]
                && s["revision"] == 2
        })
    });
    assert_eq!(lab.world().families["search"].len(), 2, "no duplicate revision");
}

#[test]
fn prune_removes_services_that_left_the_manifests_but_never_unresolvable_ones() {
    let lab = Lab::new();
    let c = Controller::start_with(&lab, &["--prune"]);
    c.wait_for("the fleet to converge", || all_completed(&lab));
    // documents now names a tag that does not exist: it cannot be resolved, but it is still in the manifests.
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v9.9.9");
    std::fs::remove_file(lab.manifests().join("search.yaml")).unwrap();
    c.wait_for("search to be pruned", || !lab.world().services["mcp-prod/search"].state.is_active());
    std::thread::sleep(Duration::from_secs(2));
    let w = lab.world();
    assert!(w.services["mcp-prod/documents"].state.is_active(), "an unresolvable service is never pruned");
    assert!(w.services["mcp-prod/database"].state.is_active());
}
