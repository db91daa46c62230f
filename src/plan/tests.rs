//! Plan decisions on hand-built observations: noop needs the same spec-hash, the recorded revision and no
//! out-of-band change; field changes ignore ordering.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::backend::{DeploymentStatus, RolloutState, ServiceStatus, TdStatus};
use crate::render::{Resolved, ecs};
use crate::spec::load_str;

const SVC: &str = "apiVersion: mcpfleet.io/v1alpha1
kind: McpService
metadata: { name: docs }
spec:
  cluster: mcp
  image: ghcr.io/acme/docs:v1
  architecture: arm64
  cpu: 256
  memory: 512
  replicas: 2
  port: 8080
  env: { A: '1', B: '2' }
  network: { subnets: [subnet-0abc1234, subnet-0def5678], securityGroups: [sg-0abc1234, sg-0def5678] }
";

fn desired(text: &str) -> EcsService {
    let svc = load_str("m.yaml", text).unwrap().services.remove(0);
    ecs::render(&svc, &Resolved::unresolved(&svc))
}

/// The service ECS would report right after mcpfleet applied `d` on revision 3.
fn applied(d: &EcsService) -> ServiceState {
    let td = "arn:aws:ecs:us-east-1:123456789012:task-definition/docs:3".to_string();
    let input = service_with_revision(&d.create_service, &td);
    ServiceState {
        arn: "arn:aws:ecs:us-east-1:123456789012:service/mcp/docs".into(),
        cluster: "mcp".into(),
        name: "docs".into(),
        status: ServiceStatus::Active,
        task_definition: td.clone(),
        desired_count: input.desired_count,
        running_count: input.desired_count,
        pending_count: 0,
        deployment_configuration: Some(input.deployment_configuration.clone()),
        network_configuration: input.network_configuration.clone(),
        service_connect_configuration: input.service_connect_configuration.clone(),
        load_balancers: input.load_balancers.clone(),
        health_check_grace_period_seconds: input.health_check_grace_period_seconds,
        deployments: vec![crate::backend::Deployment {
            id: "ecs-svc/1".into(),
            status: DeploymentStatus::Primary,
            task_definition: td,
            desired_count: 2,
            running_count: 2,
            pending_count: 0,
            failed_tasks: 0,
            rollout_state: RolloutState::Completed,
            rollout_state_reason: String::new(),
            created_at_ms: 0,
            updated_at_ms: 0,
        }],
        events: vec![],
        tags: input.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect(),
    }
}

#[test]
fn missing_or_inactive_services_are_created() {
    let d = desired(SVC);
    assert_eq!(plan_service(&d, None, None).action, Action::Create);
    let mut gone = applied(&d);
    gone.status = ServiceStatus::Inactive;
    assert_eq!(plan_service(&d, Some(&gone), None).action, Action::Create);
}

#[test]
fn an_applied_service_is_a_noop() {
    let d = desired(SVC);
    let p = plan_service(&d, Some(&applied(&d)), None);
    assert_eq!((p.action, p.changes.len(), p.reason), (Action::Noop, 0, None));
}

#[test]
fn drift_is_an_update_with_the_drifted_fields() {
    let d = desired(SVC);
    let mut obs = applied(&d);
    obs.desired_count = 5;
    let p = plan_service(&d, Some(&obs), None);
    assert_eq!(p.action, Action::Update);
    assert!(p.reason.unwrap().to_string().starts_with("drift"));
    assert_eq!(
        p.changes,
        vec![Change { path: "service.desiredCount".into(), from: Some(json!(5)), to: Some(json!(2)) }]
    );

    let mut obs = applied(&d);
    obs.task_definition = "arn:aws:ecs:us-east-1:123456789012:task-definition/docs:1".into();
    let p = plan_service(&d, Some(&obs), None);
    assert_eq!(p.action, Action::Update);
    assert_eq!(p.changes[0].path, "service.taskDefinition");
}

#[test]
fn a_spec_change_lists_field_changes_against_the_running_revision() {
    let old = desired(SVC);
    let new = desired(
        &SVC.replace("ghcr.io/acme/docs:v1", "ghcr.io/acme/docs:v2").replace("A: '1', B: '2'", "B: '2', C: '3'"),
    );
    let mut spec = old.register_task_definition.clone();
    spec.tags.clear();
    let current = TaskDefinition {
        arn: "arn:aws:ecs:us-east-1:123456789012:task-definition/docs:3".into(),
        family: "docs".into(),
        revision: 3,
        status: TdStatus::Active,
        spec,
        tags: BTreeMap::new(),
        registered_at_ms: 0,
    };
    let p = plan_service(&new, Some(&applied(&old)), Some(&current));
    assert_eq!(p.action, Action::Update);
    let paths: Vec<&str> = p.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "taskDefinition.containerDefinitions.docs.environment.A",
            "taskDefinition.containerDefinitions.docs.environment.C",
            "taskDefinition.containerDefinitions.docs.image",
        ]
    );
    assert_eq!(p.changes[0], Change { path: paths[0].into(), from: Some(json!("1")), to: None });
    assert_eq!(p.changes[1].from, None);
    assert_eq!(p.changes[2].to, Some(json!("ghcr.io/acme/docs:v2")));
}

#[test]
fn reordered_lists_are_not_changes() {
    let mut out = Vec::new();
    diff_values(
        "x",
        &json!({"environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}),
        &json!({"environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}),
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_failed_spec_is_held_back_until_it_changes() {
    let d = desired(SVC);
    let mut obs = applied(&desired(&SVC.replace("replicas: 2", "replicas: 3")));
    obs.tags.insert(crate::state::TAG_FAILED_SPEC_HASH.into(), spec_hash_of(&d).into());
    let p = plan_service(&d, Some(&obs), None);
    assert_eq!(p.action, Action::Noop);
    assert!(p.reason.unwrap().to_string().contains("failed"));
}

#[test]
fn only_managed_services_missing_from_the_manifests_are_deleted() {
    let d = desired(SVC);
    let mut other = applied(&d);
    other.name = "old".into();
    let mut unmanaged = other.clone();
    unmanaged.name = "hand-made".into();
    unmanaged.tags.clear();
    let deletes = plan_deletes(std::slice::from_ref(&d), [&applied(&d), &other, &unmanaged]);
    assert_eq!(deletes.len(), 1);
    assert_eq!((deletes[0].name.as_str(), deletes[0].action), ("old", Action::Delete));
}

#[test]
fn reordered_subnets_and_security_groups_are_not_drift() {
    let d = desired(SVC);
    let mut obs = applied(&d);
    let vpc = &mut obs.network_configuration.awsvpc_configuration;
    vpc.subnets.reverse();
    vpc.security_groups.reverse();
    assert_ne!(obs.network_configuration, d.create_service.network_configuration, "the lists are reordered");
    assert!(drift(&d, &obs).is_empty());
    let p = plan_service(&d, Some(&obs), None);
    assert_eq!((p.action, p.changes.len()), (Action::Noop, 0));

    // A different set still is drift.
    obs.network_configuration.awsvpc_configuration.subnets = vec!["subnet-0def5678".into()];
    let p = plan_service(&d, Some(&obs), None);
    assert_eq!(p.action, Action::Update);
    assert!(p.changes.iter().all(|c| c.path.starts_with("service.networkConfiguration.awsvpcConfiguration.subnets")));
}

const SC: &str = "  expose:\n    serviceConnect: { namespace: mcp.internal, dnsName: documents }\n";

#[test]
fn service_connect_changes_are_updates_and_its_echo_is_not_drift() {
    let with_sc = desired(&format!("{SVC}{SC}"));
    let mut obs = applied(&with_sc);
    assert_eq!(plan_service(&with_sc, Some(&obs), None).action, Action::Noop);
    // ECS echoes the namespace as its ARN and the lists in any order: the same configuration.
    let sc = obs.service_connect_configuration.as_mut().unwrap();
    sc.namespace = Some("arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-abcdef0123456789".into());
    let alias = sc.services[0].client_aliases[0].clone();
    sc.services[0].client_aliases = vec![alias.clone(), alias];
    assert!(drift(&with_sc, &obs).is_empty(), "{:#?}", drift(&with_sc, &obs));
    // Not reported at all (moto never does), it is not compared.
    let mut unreported = applied(&with_sc);
    unreported.service_connect_configuration = None;
    assert_eq!(plan_service(&with_sc, Some(&unreported), None).action, Action::Noop);
    // Turned off outside mcpfleet: drift, corrected by an update.
    obs.service_connect_configuration = Some(ecs::ServiceConnectConfiguration::disabled());
    let p = plan_service(&with_sc, Some(&obs), None);
    assert_eq!((p.action, p.reason), (Action::Update, Some(PlanReason::Drift)));
    assert_eq!(p.changes[0].path, "service.serviceConnectConfiguration");
    // A service without it, observed with it off, is converged.
    let without = desired(SVC);
    let mut plain = applied(&without);
    plain.service_connect_configuration = Some(ecs::ServiceConnectConfiguration::disabled());
    assert_eq!(plan_service(&without, Some(&plain), None).action, Action::Noop);
    // Adding, changing and removing it are updates that show the field.
    for (from, to) in [
        (&without, &with_sc),
        (&with_sc, &desired(&format!("{SVC}{}", SC.replace("documents", "docs")))),
        (&with_sc, &without),
    ] {
        let p = plan_service(to, Some(&applied(from)), None);
        assert_eq!(p.action, Action::Update);
        assert!(
            p.changes.iter().any(|c| c.path.starts_with("service.serviceConnectConfiguration")),
            "{:#?}",
            p.changes
        );
    }
}

#[test]
fn removing_service_connect_sends_it_disabled_and_a_service_without_it_gets_no_field() {
    let with_sc = desired(&format!("{SVC}{SC}"));
    let without = desired(SVC);
    let update = |d: &EcsService, obs: &ServiceState| {
        crate::backend::ServiceUpdate::converge(&d.create_service, "docs:4", obs).service_connect_configuration
    };
    assert_eq!(update(&without, &applied(&with_sc)), Some(ecs::ServiceConnectConfiguration::disabled()));
    assert_eq!(update(&without, &applied(&without)), None);
    assert_eq!(update(&with_sc, &applied(&without)), with_sc.create_service.service_connect_configuration);
}

/// docs with `spec.autoscaling` set to `body` (a flow mapping).
fn scaled(body: &str) -> EcsService {
    desired(&format!("{SVC}  autoscaling: {body}\n"))
}

/// What Application Auto Scaling reports after `d`'s autoscaling was applied, with `extra` foreign policies.
fn scaling_applied(d: &EcsService, extra: &[&str]) -> scaling::ObservedScaling {
    let docs = d.autoscaling.as_ref().unwrap();
    let t = &docs.register_scalable_target;
    let mut policies: Vec<crate::backend::ScalingPolicy> = docs
        .put_scaling_policies
        .iter()
        .map(|p| crate::backend::ScalingPolicy {
            policy_name: p.policy_name.clone(),
            resource_id: p.resource_id.clone(),
            target_tracking: Some(p.target_tracking_scaling_policy_configuration.clone()),
        })
        .collect();
    policies.extend(extra.iter().map(|name| crate::backend::ScalingPolicy {
        policy_name: name.to_string(),
        resource_id: t.resource_id.clone(),
        target_tracking: None,
    }));
    scaling::ObservedScaling {
        target: Some(crate::backend::ScalableTarget {
            resource_id: t.resource_id.clone(),
            min_capacity: t.min_capacity,
            max_capacity: t.max_capacity,
        }),
        policies: Some(policies),
    }
}

#[test]
fn a_count_inside_the_autoscaling_bounds_is_never_drift_and_one_outside_goes_to_the_nearest_bound() {
    let d = scaled("{ min: 2, max: 20, targetCpu: 60 }");
    let mut obs = applied(&d);
    for count in [2, 7, 20] {
        obs.desired_count = count;
        assert_eq!(plan_service(&d, Some(&obs), None).action, Action::Noop, "{count} is the autoscaler's");
    }
    for (count, bound) in [(21, 20), (1, 2), (0, 2)] {
        obs.desired_count = count;
        let p = plan_service(&d, Some(&obs), None);
        assert_eq!((p.action, p.reason.clone()), (Action::Update, Some(PlanReason::Drift)));
        assert_eq!(p.changes[0].path, "service.desiredCount");
        assert_eq!((p.changes[0].from.clone(), p.changes[0].to.clone()), (Some(json!(count)), Some(json!(bound))));
    }
    // Editing replicas changes nothing that runs while autoscaling is on: the spec hash leaves the count out.
    let started_at_5 = scaled("{ min: 2, max: 20, targetCpu: 60 }").create_service.tags.clone();
    let mut text = format!("{SVC}  autoscaling: {{ min: 2, max: 20, targetCpu: 60 }}\n");
    text = text.replace("replicas: 2", "replicas: 5");
    assert_eq!(desired(&text).create_service.tags, started_at_5);
    assert_ne!(desired(SVC).create_service.tags, started_at_5, "turning autoscaling on is a change");
}

#[test]
fn autoscaling_is_planned_field_by_field() {
    let d = scaled("{ min: 2, max: 20, targetCpu: 60, targetMemory: 75 }");
    let docs = d.autoscaling.as_ref().unwrap();
    let hash = docs.hash();

    // Nothing yet: register, both policies, then the tag.
    let (steps, changes) = scaling::plan("docs", Some(docs), &scaling::ObservedScaling::default(), None);
    assert_eq!(steps.register.as_ref().map(|t| (t.min_capacity, t.max_capacity)), Some((2, 20)));
    let put: Vec<&str> = steps.put.iter().map(|p| p.policy_name.as_str()).collect();
    assert_eq!(put, ["docs-cpu", "docs-memory"]);
    assert_eq!(steps.record, scaling::Record::Set(hash.clone()));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].to, Some(json!({"min": 2, "max": 20, "targetCpu": 60, "targetMemory": 75})));

    // Converged, its policies not read (the tag records these documents): nothing to do.
    let mut seen = scaling_applied(&d, &["someone-elses-step-policy"]);
    seen.policies = None;
    let (steps, changes) = scaling::plan("docs", Some(docs), &seen, Some(&hash));
    assert!(steps.is_empty() && changes.is_empty(), "{steps:?} {changes:?}");
    assert!(!scaling::needs_policies(Some(docs), seen.target.as_ref(), Some(&hash)));
    assert!(scaling::needs_policies(Some(docs), seen.target.as_ref(), Some("an older hash")));

    // New bounds and a new CPU target, memory dropped: register, put cpu, delete memory; the foreign policy stays.
    let changed = scaled("{ min: 1, max: 30, targetCpu: 50 }");
    let seen = scaling_applied(&d, &["someone-elses-step-policy"]);
    let want = changed.autoscaling.as_ref().unwrap();
    assert!(scaling::needs_policies(Some(want), seen.target.as_ref(), Some(&hash)));
    let (steps, changes) = scaling::plan("docs", Some(want), &seen, Some(&hash));
    assert_eq!(steps.register.as_ref().map(|t| (t.min_capacity, t.max_capacity)), Some((1, 30)));
    assert_eq!(steps.put.iter().map(|p| p.policy_name.as_str()).collect::<Vec<_>>(), ["docs-cpu"]);
    assert_eq!(steps.delete, ["docs-memory"]);
    assert!(!steps.deregister);
    assert_eq!(steps.record, scaling::Record::Set(want.hash()));
    let paths: Vec<(&str, Option<serde_json::Value>, Option<serde_json::Value>)> =
        changes.iter().map(|c| (c.path.as_str(), c.from.clone(), c.to.clone())).collect();
    assert_eq!(paths[0], ("autoscaling.min", Some(json!(2)), Some(json!(1))));
    assert_eq!(paths[1], ("autoscaling.max", Some(json!(20)), Some(json!(30))));
    assert_eq!(paths[2], ("autoscaling.policies.docs-cpu.TargetValue", Some(json!(60.0)), Some(json!(50.0))));
    assert_eq!(paths[3].0, "autoscaling.policies.docs-memory");
    assert_eq!(paths[3].2, None);
    assert_eq!(paths.len(), 4, "{paths:#?}");

    // Autoscaling removed: mcpfleet's policies deleted, then the target deregistered, and the tag removed.
    let (steps, changes) = scaling::plan("docs", None, &seen, Some(&hash));
    assert_eq!(steps.delete, ["docs-cpu", "docs-memory"]);
    assert!(steps.deregister && steps.removes() && steps.register.is_none() && steps.put.is_empty());
    assert_eq!(steps.record, scaling::Record::Remove);
    assert_eq!(changes[0].path, "autoscaling");
    assert_eq!(changes[0].to, None);
    // Without autoscaling wanted or recorded, nothing.
    assert!(scaling::plan("docs", None, &scaling::ObservedScaling::default(), None).0.is_empty());
}

#[test]
fn an_autoscaling_change_makes_a_converged_or_held_service_an_update() {
    let d = scaled("{ min: 2, max: 20, targetCpu: 60 }");
    let obs = applied(&d);
    let mut p = plan_service(&d, Some(&obs), None);
    assert_eq!(p.action, Action::Noop);
    with_scaling(&mut p, d.autoscaling.as_ref(), &scaling::ObservedScaling::default(), None);
    assert_eq!(p.action, Action::Update);
    assert!(only_labels(&d, &obs), "nothing of the ECS service changes");
    assert_eq!(p.changes[0].path, "autoscaling");
    assert!(!p.scaling.is_empty());
}
