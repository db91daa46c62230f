//! The controller's IAM policy (`manifests/controller/iam-policy.json`) grants exactly the AWS actions the
//! adapters call — least privilege that stays true as the adapters change — and never a secret's value.
//!
//! The operations are [`Op`]'s list, each with the IAM action it needs; the adapters' source is read only to
//! hold them to that list (a request sent outside it would also go uncounted and unmetered), so the policy, the
//! list and the adapters must all agree.

use std::collections::BTreeSet;
use std::path::Path;

use mcpfleet::backend::Op;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `describe_services` → `DescribeServices`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Every `client.operation()` call in the AWS adapters, as IAM actions (`ecs:DescribeServices`): an operation of
/// [`Op`]'s list as it names its action (S3 authorises HeadObject as `s3:GetObject`), any other as AWS names it.
fn called_actions() -> BTreeSet<String> {
    let call = regex::Regex::new(r"\.client(?:\([^)]*\))?\s*\.\s*([a-z][a-z0-9_]*)\s*\(").unwrap();
    let mut out = BTreeSet::new();
    for (file, service) in [
        ("ecs.rs", "ecs"),
        ("ecr.rs", "ecr"),
        ("secrets.rs", "secretsmanager"),
        ("elbv2.rs", "elasticloadbalancing"),
        ("autoscaling.rs", "application-autoscaling"),
        ("s3.rs", "s3"),
        ("dynamodb.rs", "dynamodb"),
        ("pricing.rs", "pricing"),
    ] {
        let path = Path::new(ROOT).join("src/backend/aws").join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for m in call.captures_iter(&text) {
            let name = pascal(&m[1]);
            let listed = Op::from_name(&name).filter(|op| op.service().is_some_and(|s| s.iam_prefix() == service));
            out.insert(listed.and_then(Op::iam_action).unwrap_or_else(|| format!("{service}:{name}")));
        }
    }
    out
}

/// The IAM actions of every AWS request in [`Op`]'s list.
fn needed_actions() -> BTreeSet<String> {
    Op::ALL.into_iter().filter_map(Op::iam_action).collect()
}

/// The IAM actions of the requests the controller sends (not CI's `publish` nor an operator's
/// `lease create-table`).
fn controller_actions() -> BTreeSet<String> {
    Op::ALL.into_iter().filter(|op| !op.outside_the_controller()).filter_map(Op::iam_action).collect()
}

/// The actions AWS checks the caller holds when it serves those requests ([`Op::caller_checks`]: Application Auto
/// Scaling's permission validation on the ECS service and the target tracking alarms).
fn checked_actions() -> BTreeSet<String> {
    Op::ALL.into_iter().flat_map(|op| op.caller_checks().iter().map(|a| a.to_string())).collect()
}

fn policy() -> serde_json::Value {
    let path = Path::new(ROOT).join("manifests/controller/iam-policy.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn granted_actions(policy: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for st in policy["Statement"].as_array().expect("Statement list") {
        assert_eq!(st["Effect"], "Allow", "only Allow statements are expected: {st}");
        match &st["Action"] {
            serde_json::Value::String(a) => {
                out.insert(a.clone());
            }
            serde_json::Value::Array(list) => out.extend(list.iter().map(|a| a.as_str().unwrap().to_string())),
            other => panic!("unexpected Action {other}"),
        }
    }
    out
}

#[test]
fn the_policy_grants_exactly_the_actions_the_adapters_call() {
    let needed = controller_actions();
    assert!(needed.contains("s3:GetObject") && needed.contains("dynamodb:PutItem"), "{needed:?}");
    assert!(!needed.contains("s3:PutObject") && !needed.contains("dynamodb:CreateTable"), "{needed:?}");
    assert!(needed.contains("ecs:DescribeServices") && needed.contains("secretsmanager:ListSecrets"), "{needed:?}");
    let needed: BTreeSet<String> = needed.union(&checked_actions()).cloned().collect();
    assert!(needed.contains("cloudwatch:PutMetricAlarm"), "{needed:?}");
    let granted: BTreeSet<String> = granted_actions(&policy()).into_iter().filter(|a| !a.starts_with("iam:")).collect();
    let unused: Vec<_> = granted.difference(&needed).collect();
    let missing: Vec<_> = needed.difference(&granted).collect();
    assert!(unused.is_empty(), "the policy grants actions mcpfleet never calls: {unused:?}");
    assert!(missing.is_empty(), "mcpfleet calls actions the policy does not grant: {missing:?}");
}

#[test]
fn the_adapters_send_exactly_the_requests_of_the_operation_list() {
    let called = called_actions();
    let needed = needed_actions();
    let unlisted: Vec<_> = called.difference(&needed).collect();
    let unused: Vec<_> = needed.difference(&called).collect();
    assert!(unlisted.is_empty(), "the aws adapters send requests that are not in backend::Op: {unlisted:?}");
    assert!(unused.is_empty(), "backend::Op lists requests the aws adapters never send: {unused:?}");
}

#[test]
fn the_policy_never_grants_secret_values_or_wildcards() {
    let granted = granted_actions(&policy());
    for a in &granted {
        assert!(!a.contains('*'), "wildcard action {a}");
        assert_ne!(a, "secretsmanager:GetSecretValue");
    }
    assert!(!called_actions().contains("secretsmanager:GetSecretValue"), "the adapters must never read a secret");
    assert!(!needed_actions().contains("secretsmanager:GetSecretValue"), "no operation may read a secret");
    // iam:PassRole only to ECS tasks.
    let pass = policy()["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"] == "iam:PassRole")
        .cloned()
        .expect("a PassRole statement");
    assert_eq!(pass["Condition"]["StringEquals"]["iam:PassedToService"], "ecs-tasks.amazonaws.com");
}

#[test]
fn ecs_autoscaling_may_create_only_its_own_service_linked_role() {
    let policy = policy();
    let statements: Vec<&serde_json::Value> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"].as_str().is_some_and(|a| a.starts_with("iam:")))
        .collect();
    let iam: BTreeSet<&str> = statements.iter().map(|s| s["Action"].as_str().unwrap()).collect();
    assert_eq!(iam, BTreeSet::from(["iam:CreateServiceLinkedRole", "iam:PassRole"]), "no other IAM action");
    let slr = statements.iter().find(|s| s["Action"] == "iam:CreateServiceLinkedRole").unwrap();
    assert_eq!(
        slr["Resource"],
        "arn:aws:iam::123456789012:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService"
    );
    assert_eq!(slr["Condition"]["StringLike"]["iam:AWSServiceName"], "ecs.application-autoscaling.amazonaws.com");
    // Only an adapter that registers scalable targets needs it.
    assert!(called_actions().contains("application-autoscaling:RegisterScalableTarget"));
}
