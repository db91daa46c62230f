//! Controller replicas electing one leader over a DynamoDB lease, everything on one moto server (ECS, ECR,
//! Secrets Manager, ELB, S3 for the published fleet, DynamoDB for the lease): each replica signs with its own
//! access key, so moto's recorder tells which process sent what. Exactly one replica writes; the standby is
//! ready with `"role": "standby"` and sends nothing but lease reads; SIGTERM hands the lease over at once;
//! SIGKILL hands it over within a lease duration, and the new leader converges a newly published fleet.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::aws_lab::{AwsLab, endpoint_env};
use common::controller::Controller;
use serde_json::json;

const URL: &str = "s3://fleet-config/prod/fleet.json";
const LEASE: &str = "dynamodb://mcpfleet-leases/prod";
const LEASE_DURATION: Duration = Duration::from_secs(3);

fn replica(moto: &AwsLab, key: &str) -> Controller {
    let run = [
        "--source",
        URL,
        "--source-interval",
        "1s",
        "--lease",
        LEASE,
        "--lease-duration",
        "3s",
        "--renew-deadline",
        "2s",
        "--retry-period",
        "500ms",
    ];
    let endpoint = moto.endpoint.clone();
    Controller::spawn_with(&["--backend", "aws"], &run, moto.dir.path(), |cmd| {
        endpoint_env(cmd, &endpoint);
        cmd.env("AWS_ACCESS_KEY_ID", key);
    })
}

fn publish(moto: &AwsLab) {
    let m = moto.manifests();
    let out = moto.run(&["publish", "-f", m.to_str().unwrap(), "--to", URL]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn leads(c: &Controller) -> bool {
    c.reached("mcpfleet_leader", 1.0)
}

fn standby(c: &Controller) -> bool {
    c.get("/readyz").is_some_and(|(code, body)| code == 200 && body.contains("\"role\":\"standby\""))
        && c.metric("mcpfleet_leader") == 0.0
}

/// ECS and Application Auto Scaling write requests per access key.
fn writes(moto: &AwsLab) -> BTreeMap<String, u64> {
    let writes: Vec<&str> = common::lab::write_ops().collect();
    moto.recorded_by_key()
        .into_iter()
        .map(|(key, ops)| {
            let n =
                ops.iter().filter(|(op, _)| writes.contains(&op.as_str()) && *op != "PutItem").map(|(_, n)| n).sum();
            (key, n)
        })
        .collect()
}

fn requests(moto: &AwsLab, key: &str, op: &str) -> u64 {
    moto.recorded_by_key().get(key).and_then(|ops| ops.get(op)).copied().unwrap_or(0)
}

fn services(moto: &AwsLab) -> Vec<String> {
    moto.dump()["services"].as_object().unwrap().keys().cloned().collect()
}

#[test]
fn one_replica_writes_sigterm_hands_over_at_once_and_sigkill_within_a_lease_duration() {
    let moto = AwsLab::new();
    moto.s3("create_bucket", json!({ "Bucket": "fleet-config" }));
    let out = moto.run(&["lease", "create-table", "dynamodb://mcpfleet-leases"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created the lease table mcpfleet-leases"));
    let table = moto.dynamodb("describe_table", json!({ "TableName": "mcpfleet-leases" }));
    assert_eq!(table["Table"]["KeySchema"], json!([{ "AttributeName": "name", "KeyType": "HASH" }]), "{table:#}");
    assert_eq!(table["Table"]["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST", "{table:#}");
    publish(&moto);
    moto.start_recording();

    let mut a = replica(&moto, "AKIDREPLICAA");
    a.wait_for("replica A to lead", || leads(&a));
    let b = replica(&moto, "AKIDREPLICAB");
    b.wait_for("replica B to stand by, ready", || standby(&b));
    a.wait_for("A to create the fleet", || services(&moto).len() == 3);
    // B has read the lease many times meanwhile, and sent nothing else.
    b.wait_for("B to read the lease repeatedly", || requests(&moto, "AKIDREPLICAB", "GetItem") >= 4);
    a.wait_passes(2);
    let by_key = moto.recorded_by_key();
    let b_ops: Vec<&String> = by_key["AKIDREPLICAB"].keys().collect();
    assert_eq!(b_ops, ["GetItem"], "the standby sent more than lease reads: {by_key:#?}");
    assert_eq!(writes(&moto).get("AKIDREPLICAA").copied(), Some(6), "{by_key:#?}"); // 3 × (register, create)
    assert_eq!(a.metric("mcpfleet_lease_transitions_total"), 1.0);
    // The lease and the published fleet are AWS requests like the others, in the metrics of whoever sent them.
    assert!(a.metric("mcpfleet_api_requests_total{operation=\"PutItem\"}") >= 1.0);
    assert!(a.metric("mcpfleet_api_requests_total{operation=\"HeadObject\"}") >= 1.0);
    assert!(b.metric("mcpfleet_api_requests_total{operation=\"GetItem\"}") >= 4.0);
    for s in moto.dump()["services"].as_object().unwrap().values() {
        let tags = s["tags"].as_array().unwrap();
        let owner = tags.iter().find(|t| t["key"] == "mcpfleet.io/managed-by").map(|t| &t["value"]);
        assert_eq!(owner, Some(&json!(format!("mcpfleet {LEASE}"))), "{s:#}");
    }

    // CI's apply does not fight the controller: refused, naming the holder and `mcpfleet publish`, nothing sent
    // but reads; with --force it goes on.
    let m = moto.manifests();
    let refused = moto.run(&["apply", "-f", m.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("3 services (") && err.contains(&format!("are owned by the controller holding {LEASE}")),
        "{err}"
    );
    assert!(err.contains("held by ") && err.contains(", renewed 20"), "{err}");
    assert!(err.contains("mcpfleet publish") && err.contains("--force"), "{err}");
    let rollback = moto.run(&["rollback", "search", "--cluster", "mcp-prod"]);
    let err = String::from_utf8_lossy(&rollback.stderr);
    assert_eq!(rollback.status.code(), Some(1), "{err}");
    assert!(
        err.contains("service search is owned by the controller") && err.contains("rolled-back spec is held"),
        "{err}"
    );
    let by_key = moto.recorded_by_key();
    assert!(by_key["testing"].contains_key("GetItem"), "the lease was not read: {by_key:#?}");
    assert_eq!(writes(&moto)["testing"], 0, "a refused command wrote: {by_key:#?}");
    let forced = moto.run(&["apply", "-f", m.to_str().unwrap(), "--force"]);
    let err = String::from_utf8_lossy(&forced.stderr);
    assert_eq!(forced.status.code(), Some(0), "{err}");
    assert!(err.contains("going on (--force)"), "{err}");

    // SIGTERM: A releases the lease on its way out, and B leads at its next read, well within a lease duration.
    a.signal("-TERM");
    let (code, _) = a.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", a.log());
    let released = Instant::now();
    assert!(a.log().contains("released the lease"), "{}", a.log());
    b.wait_for("B to lead after the release", || leads(&b));
    let handover = released.elapsed();
    assert!(handover < LEASE_DURATION, "the handover after SIGTERM took {handover:?}");
    b.wait_for("B to observe the fleet", || requests(&moto, "AKIDREPLICAB", "DescribeServices") > 0);
    b.wait_for("B to be ready as leader", || {
        b.get("/readyz").is_some_and(|(code, body)| code == 200 && body.contains("\"role\":\"leader\""))
    });

    // SIGKILL of the leader: C takes over once the lease went unrenewed for a lease duration on its own clock,
    // and converges what was published meanwhile.
    let mut b = b;
    let c = replica(&moto, "AKIDREPLICAC");
    c.wait_for("replica C to stand by", || standby(&c));
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let killed = Instant::now();
    let extra = std::fs::read_to_string(moto.manifests().join("search.yaml"))
        .unwrap()
        .replace("name: search", "name: search-two");
    moto.add_manifest("search-two.yaml", &extra);
    publish(&moto);
    c.wait_for("C to lead", || leads(&c));
    let takeover = killed.elapsed();
    assert!(takeover >= LEASE_DURATION, "C took over after {takeover:?}, before the lease expired");
    assert!(takeover < LEASE_DURATION + Duration::from_secs(2), "C took over after {takeover:?}");
    c.wait_for("C to create the newly published service", || services(&moto).contains(&"search-two".to_string()));
    let writes = writes(&moto);
    assert_eq!(writes.get("AKIDREPLICAC").copied(), Some(2), "{writes:?}");
    assert_eq!(writes.get("AKIDREPLICAA").copied(), Some(6), "{writes:?}");
}
