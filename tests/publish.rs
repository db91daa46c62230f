//! The fleet published to S3 (moto's server) and run from there, ECS being the sim: `publish` writes one object
//! on a condition (unchanged fleets not written, of two concurrent publishes exactly one wins and the other names
//! the winner, invalid manifests never written), `--history` lists the versions, `plan`/`status --source` read
//! it, and `run --source` follows it: a new version converges, a corrupt one keeps the last valid fleet and is
//! shown on `/readyz`, which names the version in use.

mod common;

use std::process::{Command, Output, Stdio};

use common::aws_lab::{AwsLab, endpoint_env};
use common::controller::Controller;
use common::lab::Lab;
use serde_json::{Value, json};

const BUCKET: &str = "fleet-config";
const URL: &str = "s3://fleet-config/prod/fleet.json";
const OBJECT: &str = "/fleet-config/prod/fleet.json";

/// The sim lab (ECS, images, secrets) and a moto holding a versioned bucket.
fn labs() -> (Lab, AwsLab) {
    let lab = Lab::new();
    let moto = AwsLab::bare();
    moto.s3("create_bucket", json!({ "Bucket": BUCKET }));
    moto.s3("put_bucket_versioning", json!({ "Bucket": BUCKET, "VersioningConfiguration": { "Status": "Enabled" } }));
    (lab, moto)
}

/// `mcpfleet --backend sim ARGS` with S3 at moto and `env` on top.
fn mcpfleet(lab: &Lab, moto: &AwsLab, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(lab, moto, args, env).stdin(Stdio::null()).output().unwrap()
}

fn command(lab: &Lab, moto: &AwsLab, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("mcpfleet"));
    cmd.args(["--backend", "sim", "--sim-state", lab.state().to_str().unwrap()])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("MCPFLEET_LOG")
        .env_remove("GITHUB_SHA")
        .env_remove("CI_COMMIT_SHA")
        .env_remove("GITHUB_ACTOR")
        .env_remove("GITLAB_USER_LOGIN");
    endpoint_env(&mut cmd, &moto.endpoint);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn publish(lab: &Lab, moto: &AwsLab, message: &str, env: &[(&str, &str)]) -> Output {
    let m = lab.manifests();
    mcpfleet(lab, moto, &["publish", "-f", m.to_str().unwrap(), "--to", URL, "--message", message], env)
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn history(lab: &Lab, moto: &AwsLab) -> Vec<Value> {
    let out = mcpfleet(lab, moto, &["publish", "--history", "--to", URL, "-o", "json"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["versions"].as_array().unwrap().clone()
}

/// Requests moto recorded for the published object, by `METHOD PATH`.
fn object_requests(moto: &AwsLab, method: &str) -> u64 {
    moto.recorded().iter().filter(|(k, _)| k.starts_with(&format!("{method} {OBJECT}"))).map(|(_, n)| n).sum()
}

#[test]
fn publish_writes_one_object_once_and_history_lists_its_versions() {
    let (lab, moto) = labs();
    let out = publish(&lab, &moto, "first fleet", &[("GITHUB_SHA", "1a2b3c4d"), ("GITHUB_ACTOR", "alice")]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with(&format!("published 3 services to {URL} (version ")), "{stdout}");

    // The same fleet again: nothing written, and it says which version already holds it.
    moto.start_recording();
    let out = publish(&lab, &moto, "again", &[("GITHUB_ACTOR", "bob")]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("already holds this fleet") && stdout.contains("alice (commit 1a2b3c4d, \"first fleet\")"),
        "{stdout}"
    );
    assert_eq!(object_requests(&moto, "PUT"), 0, "{:?}", moto.recorded());

    lab.edit_manifest("search.yaml", "replicas: 1", "replicas: 3");
    let out = publish(&lab, &moto, "search: 3 replicas", &[("GITHUB_ACTOR", "bob"), ("CI_COMMIT_SHA", "99ff")]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(object_requests(&moto, "PUT"), 1, "{:?}", moto.recorded());

    let versions = history(&lab, &moto);
    let summary: Vec<(bool, &str, &str, &str)> = versions
        .iter()
        .map(|v| {
            (
                v["latest"].as_bool().unwrap(),
                v["publisher"].as_str().unwrap(),
                v["commit"].as_str().unwrap(),
                v["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(true, "bob", "99ff", "search: 3 replicas"), (false, "alice", "1a2b3c4d", "first fleet")]);
    let text_out = mcpfleet(&lab, &moto, &["publish", "--history", "--to", URL], &[]);
    let (stdout, _) = text(&text_out);
    assert!(stdout.lines().nth(1).is_some_and(|l| l.contains(" *") && l.contains("bob")), "{stdout}");
}

#[test]
fn invalid_manifests_are_never_published() {
    let (lab, moto) = labs();
    lab.edit_manifest("search.yaml", "replicas: 1", "replicas: many");
    moto.start_recording();
    let out = publish(&lab, &moto, "broken", &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("search.yaml:14: spec.replicas") && stderr.contains("[E0207]"), "{stderr}");
    assert_eq!(object_requests(&moto, "PUT") + object_requests(&moto, "HEAD"), 0, "{:?}", moto.recorded());

    // An image that does not resolve is refused too, before anything is read or written.
    lab.edit_manifest("search.yaml", "replicas: many", "replicas: 1");
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v9.9.9");
    let out = publish(&lab, &moto, "unresolvable", &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("v9.9.9"), "{stderr}");
    assert_eq!(object_requests(&moto, "PUT"), 0, "{:?}", moto.recorded());

    // Nothing was published: plan --source says so, with its code.
    let out = mcpfleet(&lab, &moto, &["plan", "--source", URL], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("{URL}: no fleet is published here")) && stderr.contains("[E1903]"), "{stderr}");
}

#[test]
fn of_two_concurrent_publishes_exactly_one_wins_and_the_loser_names_the_winner() {
    let (lab, moto) = labs();
    assert_eq!(publish(&lab, &moto, "base", &[]).status.code(), Some(0));
    // Two different fleets, both read against the same version before either writes.
    let other = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(lab.manifests()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, other.path().join(f.file_name().unwrap())).unwrap();
    }
    let search = other.path().join("search.yaml");
    std::fs::write(&search, std::fs::read_to_string(&search).unwrap().replace("replicas: 1", "replicas: 2")).unwrap();
    lab.edit_manifest("search.yaml", "replicas: 1", "replicas: 3");

    let barrier = tempfile::tempdir().unwrap();
    let gate = barrier.path().to_str().unwrap();
    let spawn = |dir: &str, actor: &str| {
        command(
            &lab,
            &moto,
            &["publish", "-f", dir, "--to", URL, "--message", &format!("from {actor}")],
            &[("GITHUB_ACTOR", actor), ("MCPFLEET_PUBLISH_BARRIER", gate)],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let a = spawn(lab.manifests().to_str().unwrap(), "alice");
    let b = spawn(other.path().to_str().unwrap(), "bob");
    let both_read = || std::fs::read_dir(barrier.path()).unwrap().count() == 2;
    common::metrics::wait_until("both publishes to read the current version", both_read, String::new);
    std::fs::write(barrier.path().join("go"), b"").unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());

    let results = [("alice", &a), ("bob", &b)];
    let winners: Vec<&str> = results.iter().filter(|(_, o)| o.status.success()).map(|(n, _)| *n).collect();
    assert_eq!(winners.len(), 1, "alice: {:?}\nbob: {:?}", text(&a), text(&b));
    let winner = winners[0];
    let (_, loser) = results.iter().find(|(n, _)| *n != winner).unwrap();
    let (_, stderr) = text(loser);
    assert_eq!(loser.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "was published by {winner} (\"from {winner}\") after this publish read it; nothing written"
        )),
        "{stderr}"
    );
    let versions = history(&lab, &moto);
    assert_eq!(versions.len(), 2, "{versions:#?}");
    assert_eq!(versions[0]["publisher"], winner);
}

#[test]
fn plan_and_status_read_the_published_fleet_like_files() {
    let (lab, moto) = labs();
    assert_eq!(publish(&lab, &moto, "v1", &[]).status.code(), Some(0));
    let m = lab.manifests();
    let from_files = mcpfleet(&lab, &moto, &["plan", "-f", m.to_str().unwrap()], &[]);
    let from_s3 = mcpfleet(&lab, &moto, &["plan", "--source", URL], &[]);
    assert_eq!(from_s3.status.code(), Some(0), "{:?}", text(&from_s3));
    assert_eq!(text(&from_s3).0, text(&from_files).0);
    assert!(text(&from_s3).0.contains("+ search (mcp-prod): create"), "{}", text(&from_s3).0);

    // Not applied yet: status exits 1 naming the services that do not run; after apply, 0.
    let out = mcpfleet(&lab, &moto, &["status", "--source", URL, "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(text(&out).1.contains("search"), "{:?}", text(&out));
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    let out = mcpfleet(&lab, &moto, &["status", "--source", URL, "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["services"].as_array().unwrap().len(), 3, "{doc:#}");

    // A bundle that is not one publish wrote is one located error, exit 1.
    moto.s3("put_object", json!({ "Bucket": BUCKET, "Key": "prod/fleet.json", "Body": "kind: McpService" }));
    let out = mcpfleet(&lab, &moto, &["plan", "--source", URL], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("{URL}: not a fleet published by `mcpfleet publish`")), "{stderr}");
    assert!(stderr.contains("[E1901]"), "{stderr}");
}

fn desired(lab: &Lab, name: &str) -> Option<u64> {
    let (_, doc) = lab.json(&["status", "--cluster", "mcp-prod", "-o", "json"]);
    doc["services"].as_array()?.iter().find(|s| s["name"] == name).and_then(|s| s["desired"].as_u64())
}

#[test]
fn the_controller_follows_the_published_fleet_and_keeps_the_last_valid_one() {
    let (lab, moto) = labs();
    assert_eq!(publish(&lab, &moto, "v1", &[("GITHUB_ACTOR", "alice")]).status.code(), Some(0));
    let endpoint = moto.endpoint.clone();
    let c = Controller::spawn(&lab, &["--source", URL, "--source-interval", "1s"], |cmd| endpoint_env(cmd, &endpoint));
    c.wait_for("the published fleet to run", || desired(&lab, "search") == Some(1));
    c.wait_for("readiness", || c.get("/readyz").is_some_and(|(code, _)| code == 200));
    let first = c.readyz()["fleetVersion"].clone();
    assert_eq!(first["source"], URL, "{first:#}");
    assert_eq!(first["publishedBy"], "alice (\"v1\")", "{first:#}");
    assert!(first["versionId"].is_string() && first["etag"].is_string(), "{first:#}");

    // A new version reaches the controller by publish alone.
    lab.edit_manifest("search.yaml", "replicas: 1", "replicas: 3");
    assert_eq!(publish(&lab, &moto, "v2", &[("GITHUB_ACTOR", "bob")]).status.code(), Some(0));
    c.wait_for("the new version to converge", || desired(&lab, "search") == Some(3));
    c.wait_for("/readyz to name v2", || c.readyz()["fleetVersion"]["publishedBy"] == "bob (\"v2\")");
    let loaded = c.json_log_line("manifests loaded");
    assert_eq!(loaded["fields"]["source"], URL, "{loaded:#}");

    // A corrupt object: reported, never acted on; the last valid fleet (v2) stays in use.
    moto.s3("put_object", json!({ "Bucket": BUCKET, "Key": "prod/fleet.json", "Body": "{\"apiVersion\": 1" }));
    c.wait_for("/readyz to report the corrupt bundle", || {
        let r = c.readyz();
        r["ready"] == false
            && r["specErrors"].as_array().is_some_and(|e| {
                e.iter().any(|l| l.as_str().is_some_and(|l| l.starts_with(&format!("{URL}: not a fleet published"))))
            })
    });
    assert_eq!(c.readyz()["fleetVersion"]["publishedBy"], "bob (\"v2\")");
    // Drift is still corrected to v2 while the bundle is broken.
    lab.ok(&["sim", "edit", "search", "--cluster", "mcp-prod", "--desired-count", "5"]);
    c.wait_for("drift corrected to the last valid fleet", || desired(&lab, "search") == Some(3));

    // A valid publish again heals it.
    lab.edit_manifest("search.yaml", "replicas: 3", "replicas: 2");
    assert_eq!(publish(&lab, &moto, "v3", &[("GITHUB_ACTOR", "carol")]).status.code(), Some(0));
    c.wait_for("v3 to converge and readiness to return", || {
        desired(&lab, "search") == Some(2) && c.get("/readyz").is_some_and(|(code, _)| code == 200)
    });
    assert_eq!(c.readyz()["fleetVersion"]["publishedBy"], "carol (\"v3\")");
}
