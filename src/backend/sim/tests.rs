//! The simulator's ECS behaviour: ARNs and revisions, deployments bounded by maximumPercent and
//! minimumHealthyPercent, the circuit breaker and its silent rollback, token buckets, and persistence.

use std::time::Duration;

use super::*;
use crate::backend::RolloutState;
use crate::render::ecs::{self, Tag};
use crate::render::{CpuArch, Resolved};
use crate::spec::load_str;

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/docs";

fn docs(replicas: u32, max: u32, min: u32) -> crate::render::ecs::EcsService {
    let text = format!(
        "apiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata: {{ name: docs }}\nspec:\n  cluster: mcp\n  image: {ECR}:v1\n  cpu: 256\n  memory: 512\n  replicas: {replicas}\n  port: 8080\n  executionRoleArn: arn:aws:iam::123456789012:role/exec\n  network: {{ subnets: [subnet-0abc1234] }}\n  rollout: {{ maxPercent: {max}, minHealthyPercent: {min} }}\n"
    );
    let svc = load_str("m.yaml", &text).unwrap().services.remove(0);
    let mut res = Resolved::unresolved(&svc);
    res.architecture = Some(CpuArch::X86_64);
    ecs::render(&svc, &res)
}

/// A world with the image pushed (healthy v1, unhealthy v2) and docs registered on v1.
fn world_with_service(replicas: u32, max: u32, min: u32) -> (World, String) {
    let mut w = World::default();
    let platforms = vec!["linux/amd64".to_string()];
    let d1 = w.push_image(ECR, "v1", platforms.clone(), false);
    let d2 = w.push_image(ECR, "v2", platforms, true);
    let e = docs(replicas, max, min);
    let mut td = e.register_task_definition.clone();
    td.container_definitions[0].image = format!("{ECR}@{d1}");
    let v1 = w.register_task_definition(&td).arn;
    td.container_definitions[0].image = format!("{ECR}@{d2}");
    w.register_task_definition(&td);
    let mut svc = e.create_service.clone();
    svc.task_definition = v1.clone();
    w.create_service(&svc).unwrap();
    (w, v1)
}

fn state(w: &World) -> &ServiceState {
    &w.services["mcp/docs"].state
}

#[test]
fn arns_revisions_and_describe_batches() {
    let (mut w, v1) = world_with_service(1, 200, 100);
    assert_eq!(v1, "arn:aws:ecs:us-east-1:123456789012:task-definition/docs:1");
    assert_eq!(state(&w).arn, "arn:aws:ecs:us-east-1:123456789012:service/mcp/docs");
    assert_eq!(w.list_task_definitions("docs", TdStatus::Active).len(), 2);
    assert_eq!(w.find_task_definition("docs").unwrap().revision, 2, "a family resolves to its latest ACTIVE revision");
    w.deregister_task_definition("arn:aws:ecs:us-east-1:123456789012:task-definition/docs:2").unwrap();
    assert_eq!(w.find_task_definition("docs").unwrap().revision, 1);
    assert_eq!(w.list_task_definitions("docs", TdStatus::Inactive).len(), 1);

    let names: Vec<String> = (0..11).map(|i| format!("s{i}")).collect();
    assert!(w.describe_services("mcp", &names).is_err(), "ECS refuses more than 10 services per call");
    let (found, missing) = w.describe_services("mcp", &["docs".into(), "nope".into()]).unwrap();
    assert_eq!((found.len(), missing), (1, vec!["nope".to_string()]));

    let again = w.create_service(&{
        let mut s = docs(1, 200, 100).create_service;
        s.task_definition = v1;
        s
    });
    assert!(matches!(again, Err(BackendError::Invalid { .. })), "creating an active service twice is refused");

    let arn = w.create_secret("prod/db");
    let suffix = arn.strip_prefix("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-").unwrap();
    assert!(suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphabetic()), "{arn}");
    assert_eq!(w.create_secret("prod/db"), arn);
    assert_eq!(w.resolve_secrets(&[arn[..arn.len() - 7].to_string()]).len(), 1, "partial ARNs resolve");
}

#[test]
fn a_healthy_deployment_completes_within_its_bounds() {
    let (mut w, v1) = world_with_service(4, 150, 50);
    w.advance_to(w.now_ms + 60_000);
    let s = state(&w);
    assert_eq!((s.running_count, s.deployments.len()), (4, 1));
    assert_eq!(s.deployments[0].rollout_state, RolloutState::Completed);
    assert_eq!(w.services["mcp/docs"].last_completed.as_deref(), Some(v1.as_str()));

    // A new revision with the same (healthy) image rolls out within 150% / 50%.
    let mut td = w.find_task_definition(&v1).unwrap().spec.clone();
    td.tags = vec![Tag { key: "x".into(), value: "y".into() }];
    let v3 = w.register_task_definition(&td).arn;
    let update = ServiceUpdate { task_definition: Some(v3.clone()), ..ServiceUpdate::of("mcp", "docs") };
    w.update_service(&update).unwrap();
    let mut completed = false;
    for _ in 0..40 {
        w.advance_to(w.now_ms + TICK_MS);
        let s = state(&w);
        let total: u32 = s.deployments.iter().map(|d| d.running_count).sum::<u32>() + s.pending_count;
        let healthy: u32 = s.deployments.iter().map(|d| d.running_count).sum();
        assert!(total <= 6, "maxPercent 150 of 4 allows 6 tasks, saw {total}");
        assert!(healthy >= 2, "minHealthyPercent 50 of 4 keeps 2 healthy, saw {healthy}");
        if s.deployments.len() == 1 && s.deployments[0].rollout_state == RolloutState::Completed {
            completed = true;
            break;
        }
    }
    assert!(completed);
    assert_eq!(state(&w).task_definition, v3);
    assert_eq!(state(&w).events[0].message, "(service docs) has reached a steady state.");
}

#[test]
fn the_circuit_breaker_fails_and_silently_rolls_back() {
    let (mut w, v1) = world_with_service(2, 200, 100);
    w.advance_to(w.now_ms + 60_000);
    let v2 = w.find_task_definition("docs:2").unwrap().arn.clone();
    let update = ServiceUpdate { task_definition: Some(v2.clone()), ..ServiceUpdate::of("mcp", "docs") };
    w.update_service(&update).unwrap();
    w.advance_to(w.now_ms + 10 * 60_000);
    let s = state(&w);
    // Back on v1, COMPLETED: it "looks stable".
    assert_eq!(s.task_definition, v1);
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(s.primary().unwrap().rollout_state, RolloutState::Completed);
    assert_eq!(s.running_count, 2);
    assert!(s.events.iter().any(|e| e.message.contains("deployment failed: tasks failed to start")), "{:#?}", s.events);
    assert!(s.events.iter().any(|e| e.message.contains("failed container health checks")));
    assert_eq!(breaker_threshold(2), 3);
    assert_eq!(breaker_threshold(100), 50);
    assert_eq!(breaker_threshold(1000), 200);
}

#[test]
fn new_networking_load_balancers_or_service_connect_roll_the_same_revision_out_again() {
    use crate::render::ecs::{
        LoadBalancer, ServiceConnectClientAlias, ServiceConnectConfiguration, ServiceConnectService,
    };
    let (mut w, v1) = world_with_service(2, 200, 100);
    w.advance_to(w.now_ms + 60_000);
    let mut input = docs(2, 200, 100).create_service;
    input.task_definition = v1.clone();
    // Applies `input` as mcpfleet converges a service (every field sent); returns whether a deployment started,
    // after checking that it rolled the same revision out to completion.
    let apply = |w: &mut World, input: &ServiceInput| {
        let before = state(w).primary().unwrap().id.clone();
        w.update_service(&ServiceUpdate::converge(input, &v1, state(w))).unwrap();
        let s = state(w);
        let started = s.primary().unwrap().id != before;
        if started {
            assert_eq!((s.deployments.len(), s.primary().unwrap().rollout_state), (2, RolloutState::InProgress));
            assert_eq!(s.primary().unwrap().task_definition, v1, "the same revision");
        }
        w.advance_to(w.now_ms + 60_000);
        let s = state(w);
        assert_eq!((s.deployments.len(), s.primary().unwrap().rollout_state), (1, RolloutState::Completed));
        assert_eq!((s.task_definition.as_str(), s.running_count), (v1.as_str(), 2));
        started
    };

    assert!(!apply(&mut w, &input), "everything sent again unchanged starts nothing");
    input.service_connect_configuration = Some(ServiceConnectConfiguration {
        enabled: true,
        namespace: Some("mcp.internal".into()),
        services: vec![ServiceConnectService {
            port_name: "mcp".into(),
            discovery_name: Some("docs".into()),
            client_aliases: vec![ServiceConnectClientAlias { port: 8080, dns_name: Some("docs.mcp.internal".into()) }],
        }],
    });
    assert!(apply(&mut w, &input), "Service Connect turned on");
    assert!(!apply(&mut w, &input));
    input.load_balancers = vec![LoadBalancer {
        target_group_arn: "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/docs/0123456789abcdef"
            .into(),
        container_name: "docs".into(),
        container_port: 8080,
    }];
    assert!(apply(&mut w, &input), "a load balancer attached");
    assert!(!apply(&mut w, &input));
    input.service_connect_configuration = None;
    assert!(apply(&mut w, &input), "Service Connect turned off");
    input.load_balancers.clear();
    assert!(apply(&mut w, &input), "the load balancer detached");
    assert!(!apply(&mut w, &input), "nothing to turn off where nothing runs");
    assert_eq!(state(&w).service_connect_configuration, Some(ServiceConnectConfiguration::disabled()));
    input.network_configuration.awsvpc_configuration.subnets.push("subnet-0def5678".into());
    assert!(apply(&mut w, &input), "another subnet");
    input.desired_count = 3;
    let before = state(&w).primary().unwrap().id.clone();
    w.update_service(&ServiceUpdate::converge(&input, &v1, state(&w))).unwrap();
    assert_eq!(state(&w).primary().unwrap().id, before, "a new desired count scales the deployment that runs");
}

#[test]
fn the_circuit_breaker_goes_back_to_the_last_completed_service_revision_on_the_same_task_definition() {
    use crate::backend::TargetType;
    use crate::render::ecs::{LoadBalancer, ServiceConnectConfiguration};
    let (mut w, v1) = world_with_service(2, 200, 100);
    let tg = w.create_target_group(&target_group_spec("docs", "/ready", TargetType::Ip, true)).unwrap();
    // docs:1 runs an image that is alive but never ready: fine without a load balancer.
    let digest = w.repositories[ECR].tags["v1"].clone();
    w.repositories.get_mut(ECR).unwrap().images.get_mut(&digest).unwrap().unready = true;
    w.advance_to(w.now_ms + 60_000);
    let before = state(&w).clone();
    assert_eq!(before.primary().unwrap().rollout_state, RolloutState::Completed);

    // The same revision behind a target group, with a grace period: a new deployment, whose tasks fail ELB's
    // health checks while the old deployment's tasks, outside the target group, keep serving.
    let mut input = docs(2, 200, 100).create_service;
    input.load_balancers =
        vec![LoadBalancer { target_group_arn: tg.clone(), container_name: "docs".into(), container_port: 8080 }];
    input.health_check_grace_period_seconds = Some(30);
    w.update_service(&ServiceUpdate::converge(&input, &v1, &before)).unwrap();
    let failed = state(&w).primary().unwrap().id.clone();
    w.advance_to(w.now_ms + 10 * 60_000);
    let s = state(&w);
    assert!(s.events.iter().any(|e| e.message.contains(&format!("(deployment {failed}) deployment failed"))));
    assert!(
        s.events.iter().any(|e| e.message.contains(&format!("Task failed ELB health checks in (target-group {tg})")))
    );
    // Back on the revision that completed: the same task definition without the load balancer; the grace period,
    // not part of a service revision, stays as set.
    assert_eq!(s.task_definition, v1);
    assert!(s.load_balancers.is_empty(), "{s:#?}");
    assert_eq!(s.network_configuration, before.network_configuration);
    assert_eq!(s.service_connect_configuration, before.service_connect_configuration);
    assert_eq!(s.health_check_grace_period_seconds, Some(30));
    let p = s.primary().unwrap();
    assert_ne!(p.id, failed);
    assert_eq!((p.rollout_state, s.running_count, s.deployments.len()), (RolloutState::Completed, 2, 1));

    // Service Connect is part of the revision too: turned on and failing (the image now fails every new task),
    // it is turned off again by the rollback, whose tasks start once the image is fixed.
    let sc = ServiceConnectConfiguration::disabled();
    let mut on = input.clone();
    on.load_balancers.clear();
    on.service_connect_configuration = Some(ServiceConnectConfiguration { enabled: true, ..sc });
    w.repositories.get_mut(ECR).unwrap().images.get_mut(&digest).unwrap().unhealthy = true;
    w.update_service(&ServiceUpdate::converge(&on, &v1, state(&w))).unwrap();
    assert!(state(&w).service_connect_configuration.as_ref().is_some_and(|c| c.enabled));
    while !state(&w).primary().unwrap().rollout_state_reason.contains("rolling back") {
        w.advance_to(w.now_ms + TICK_MS);
    }
    w.repositories.get_mut(ECR).unwrap().images.get_mut(&digest).unwrap().unhealthy = false;
    w.advance_to(w.now_ms + 5 * 60_000);
    let s = state(&w);
    assert_eq!(s.service_connect_configuration, before.service_connect_configuration, "{s:#?}");
    assert_eq!((s.primary().unwrap().rollout_state, s.running_count), (RolloutState::Completed, 2));

    // A service from a state file written before deployments recorded their networking still loads.
    let mut old = serde_json::to_value(&w.services["mcp/docs"]).unwrap();
    let fields = old.as_object_mut().unwrap();
    assert!(fields.remove("deployed").is_some() && fields.remove("lastCompletedNetworking").is_some());
    let back: SimService = serde_json::from_value(old).unwrap();
    assert!(back.deployed.is_empty() && back.last_completed_networking.is_none());
}

#[test]
fn a_new_service_with_a_failing_image_fails_without_rollback_target() {
    let mut w = World::default();
    let e = docs(1, 200, 100);
    let mut td = e.register_task_definition.clone();
    td.container_definitions[0].image = format!("{ECR}:v404");
    let arn = w.register_task_definition(&td).arn;
    let mut svc = e.create_service.clone();
    svc.task_definition = arn.clone();
    w.create_service(&svc).unwrap();
    w.advance_to(w.now_ms + 5 * 60_000);
    let s = state(&w);
    assert_eq!(s.task_definition, arn);
    assert_eq!(s.primary().unwrap().rollout_state, RolloutState::Failed);
    assert!(s.events.iter().any(|e| e.message.contains("CannotPullContainerError")));
}

#[tokio::test]
async fn token_buckets_throttle_past_the_burst_and_refill_on_the_clock() {
    let sim = Sim::in_memory(World::default());
    let td = docs(1, 200, 100).register_task_definition;
    for _ in 0..20 {
        sim.register_task_definition(&td).await.unwrap();
    }
    let err = sim.register_task_definition(&td).await.unwrap_err();
    assert!(err.is_throttling() && err.is_retryable(), "{err}");
    sim.sleep(Duration::from_secs(1)).await;
    sim.register_task_definition(&td).await.unwrap();
    let stats = sim.stats();
    assert_eq!((stats.get("RegisterTaskDefinition"), stats.throttled["RegisterTaskDefinition"]), (22, 1));
    assert_eq!(stats.writes(), 22);
}

#[tokio::test]
async fn the_client_side_limiter_absorbs_a_burst_without_throttling() {
    let sim = Sim::in_memory(World::default());
    let backend = sim.backend();
    let limited = crate::backend::limits::Limited::new(backend.ecs.clone(), backend.clock.clone());
    let td = docs(1, 200, 100).register_task_definition;
    let start = sim.now_ms();
    for _ in 0..100 {
        limited.register_task_definition(&td).await.unwrap();
    }
    let elapsed = (sim.now_ms() - start) as f64 / 1000.0;
    assert_eq!(sim.stats().throttled.get("RegisterTaskDefinition"), None);
    // Burst 20, then 1/s: the floor is 80 s; the limiter stays within 10 % of it.
    assert!((80.0..=88.0).contains(&elapsed), "took {elapsed} s of virtual time");
    assert!(limited.retries().is_empty());
}

#[test]
fn state_files_persist_writes_and_are_left_alone_by_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/sim.json");
    {
        let sim = Sim::open(&path).unwrap();
        sim.with_world(true, |w| w.create_secret("prod/x")).unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    {
        let sim = Sim::open(&path).unwrap();
        assert_eq!(sim.snapshot().secrets.len(), 1);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(sim.describe_services("mcp", &["docs".into()])).unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "a read-only session must not rewrite the state");
    std::fs::write(&path, "{not json").unwrap();
    let err = Sim::open(&path).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(":1:2: not a valid sim state file"), "{err}");
}

#[tokio::test]
async fn stopped_tasks_of_a_revision_report_ecs_reasons() {
    let (mut w, v1) = world_with_service(2, 200, 100);
    w.advance_to(w.now_ms + 60_000);
    let v2 = "arn:aws:ecs:us-east-1:123456789012:task-definition/docs:2";
    w.update_service(&ServiceUpdate { task_definition: Some(v2.into()), ..ServiceUpdate::of("mcp", "docs") }).unwrap();
    w.advance_to(w.now_ms + 5 * 60_000);
    let sim = Sim::in_memory(w);
    let reasons = sim.stopped_task_reasons("mcp", "docs", v2).await.unwrap();
    assert!(reasons.len() >= 3, "the breaker needed 3 failed tasks: {reasons:?}");
    assert!(reasons.iter().all(|r| r == "Task failed container health checks"), "{reasons:?}");
    assert!(sim.stopped_task_reasons("mcp", "docs", &v1).await.unwrap().is_empty(), "v1's tasks never stopped");
    let arns = sim.snapshot().list_stopped_tasks("mcp", "docs");
    assert!(arns.iter().all(|a| a.starts_with("arn:aws:ecs:us-east-1:123456789012:task/mcp/")), "{arns:?}");
    assert_eq!(arns.iter().collect::<std::collections::BTreeSet<_>>().len(), arns.len(), "task ids are unique");
    assert_eq!((sim.stats().get("ListTasks"), sim.stats().get("DescribeTasks")), (2, 2));
}

#[tokio::test]
async fn updates_accept_ecs_tag_propagation_values_only() {
    let (w, _) = world_with_service(1, 200, 100);
    let sim = Sim::in_memory(w);
    let update = ServiceUpdate { desired_count: Some(2), ..ServiceUpdate::of("mcp", "docs") };
    let tagging = |p: &str| crate::backend::TagPropagation { propagate_tags: p.into(), enable_ecs_managed_tags: true };
    let with = |p: &str| ServiceUpdate { tagging: Some(tagging(p)), ..update.clone() };
    for ok in ["SERVICE", "TASK_DEFINITION", "NONE"] {
        sim.update_service(&with(ok)).await.unwrap();
    }
    let err = sim.update_service(&with("service")).await.unwrap_err();
    assert!(matches!(&err, BackendError::Invalid { message, .. } if message.contains("propagateTags")), "{err}");
    assert_eq!(sim.stats().get("UpdateService"), 3, "a refused update is not applied");
}

#[test]
fn a_create_repeating_its_client_token_answers_the_service_it_created() {
    let mut w = World::default();
    let d1 = w.push_image(ECR, "v1", vec!["linux/amd64".to_string()], false);
    let e = docs(1, 200, 100);
    let mut td = e.register_task_definition.clone();
    td.container_definitions[0].image = format!("{ECR}@{d1}");
    let mut svc = e.create_service.clone();
    svc.task_definition = w.register_task_definition(&td).arn;
    let first = w.create_service_with_token(&svc, Some("token-1")).unwrap();
    // The answer was lost and the create is sent again: same service, no second deployment.
    let again = w.create_service_with_token(&svc, Some("token-1")).unwrap();
    assert_eq!(again.arn, first.arn);
    assert_eq!(state(&w).deployments.len(), 1);
    // Another create of the same name is not a retry.
    let err = w.create_service_with_token(&svc, Some("token-2")).unwrap_err();
    assert!(err.to_string().contains("not idempotent"), "{err}");
    assert!(w.create_service(&svc).is_err());
}

fn target_group_spec(name: &str, path: &str, target_type: crate::backend::TargetType, lb: bool) -> TargetGroupSpec {
    TargetGroupSpec { name: name.into(), health_check_path: path.into(), target_type, load_balancer: lb }
}

#[tokio::test]
async fn target_groups_are_described_by_name_and_arn_with_their_load_balancer() {
    use crate::backend::{LoadBalancerType, TargetProtocol, TargetType};
    let mut w = World::default();
    let docs = w.create_target_group(&target_group_spec("mcp-documents", "/ready", TargetType::Ip, true)).unwrap();
    let legacy = w.create_target_group(&target_group_spec("legacy", "/", TargetType::Instance, false)).unwrap();
    let arn = regex::Regex::new(
        r"^arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mcp-documents/[0-9a-f]{16}$",
    )
    .unwrap();
    assert!(arn.is_match(&docs), "{docs}");
    // The same settings again answer the same group; other settings are refused and change nothing.
    assert_eq!(
        w.create_target_group(&target_group_spec("mcp-documents", "/ready", TargetType::Ip, true)),
        Ok(docs.clone())
    );
    let before = w.clone();
    let err = w.create_target_group(&target_group_spec("mcp-documents", "/health", TargetType::Ip, true)).unwrap_err();
    assert!(err.contains("exists with other settings"), "{err}");
    assert!(w.create_target_group(&target_group_spec("-bad", "/", TargetType::Ip, true)).unwrap_err().contains("-bad"));
    assert!(
        w.create_target_group(&target_group_spec("ok", "ready", TargetType::Ip, true)).unwrap_err().contains("`/`")
    );
    assert_eq!(w, before);

    let sim = Sim::in_memory(w);
    let ids = vec!["mcp-documents".to_string(), legacy.clone(), "missing".to_string(), format!("{docs}0")];
    let found = sim.backend().target_groups.describe(&ids).await.unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    let d = &found[0];
    assert_eq!((d.target_group.arn.as_str(), d.target_group.name.as_str()), (docs.as_str(), "mcp-documents"));
    assert_eq!(d.target_group.target_type, TargetType::Ip);
    assert_eq!(d.target_group.protocol, Some(TargetProtocol::Http));
    assert_eq!(d.target_group.health_check_path.as_deref(), Some("/ready"));
    assert_eq!(d.target_group.deregistration_delay_secs, Some(300));
    assert_eq!(d.load_balancers.len(), 1);
    let lb = &d.load_balancers[0];
    assert_eq!(lb.kind, LoadBalancerType::Application);
    assert_eq!(lb.idle_timeout_secs, Some(60));
    assert!(
        lb.dns_name.starts_with("mcpfleet-sim-") && lb.dns_name.ends_with(".us-east-1.elb.amazonaws.com"),
        "{lb:?}"
    );
    assert!(lb.arn.contains(":loadbalancer/app/mcpfleet-sim/"), "{lb:?}");
    let l = &found[1];
    assert_eq!((l.target_group.name.as_str(), l.target_group.target_type), ("legacy", TargetType::Instance));
    assert!(l.target_group.load_balancer_arns.is_empty() && l.load_balancers.is_empty());
    // As ELBv2 would be asked: one DescribeTargetGroups, an attributes request per group found, one
    // DescribeLoadBalancers and its attributes.
    let stats = sim.stats();
    let counts: Vec<u64> = [
        Op::DescribeTargetGroups,
        Op::DescribeTargetGroupAttributes,
        Op::DescribeLoadBalancers,
        Op::DescribeLoadBalancerAttributes,
    ]
    .iter()
    .map(|op| stats.get(op))
    .collect();
    assert_eq!(counts, [1, 2, 1, 1]);
    let too_many: Vec<String> = (0..21).map(|i| format!("tg-{i}")).collect();
    let err = sim.backend().target_groups.describe(&too_many).await.unwrap_err();
    assert!(err.to_string().contains("at most 20"), "{err}");
}

#[test]
fn a_state_file_from_before_target_groups_loads_and_saves_as_before() {
    let w = World::default();
    let text = serde_json::to_string(&w).unwrap();
    assert!(!text.contains("targetGroups") && !text.contains("loadBalancers"), "{text}");
    let back: World = serde_json::from_str(&text).unwrap();
    assert_eq!(back, w);
    let mut with = World::default();
    with.create_target_group(&target_group_spec("tg", "/", crate::backend::TargetType::Ip, true)).unwrap();
    let back: World = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
    assert_eq!(back, with);
}

#[test]
fn an_image_from_a_state_file_before_unready_loads_and_saves_as_before() {
    let old = r#"{"platforms":["linux/amd64"],"unhealthy":false}"#;
    let image: SimImage = serde_json::from_str(old).unwrap();
    assert!(!image.unready);
    assert_eq!(serde_json::to_string(&image).unwrap(), old);
    let unready = SimImage { unready: true, ..image };
    let text = serde_json::to_string(&unready).unwrap();
    assert!(text.contains(r#""unready":true"#), "{text}");
    assert_eq!(serde_json::from_str::<SimImage>(&text).unwrap(), unready);
}

/// docs's scalable target, `min..max`.
fn docs_target(min: u32, max: u32) -> crate::render::autoscaling::ScalableTargetInput {
    use crate::render::autoscaling as aas;
    aas::ScalableTargetInput {
        service_namespace: aas::NAMESPACE.into(),
        resource_id: aas::resource_id("mcp", "docs"),
        scalable_dimension: aas::DIMENSION.into(),
        min_capacity: min,
        max_capacity: max,
    }
}

/// docs's target tracking policy on `metric`, cooldowns 60 s out and 300 s in.
fn docs_policy(
    metric: crate::render::autoscaling::Metric,
    value: u32,
) -> crate::render::autoscaling::ScalingPolicyInput {
    use crate::render::autoscaling::{self as aas, PredefinedMetricSpecification, TargetTracking};
    aas::ScalingPolicyInput {
        policy_name: aas::policy_name("docs", metric),
        service_namespace: aas::NAMESPACE.into(),
        resource_id: aas::resource_id("mcp", "docs"),
        scalable_dimension: aas::DIMENSION.into(),
        policy_type: aas::TARGET_TRACKING.into(),
        target_tracking_scaling_policy_configuration: TargetTracking {
            target_value: f64::from(value),
            predefined_metric_specification: PredefinedMetricSpecification {
                predefined_metric_type: metric,
                resource_label: None,
            },
            scale_in_cooldown: 300,
            scale_out_cooldown: 60,
            disable_scale_in: false,
        },
    }
}

/// Registers docs as a scalable target with one policy per (metric, target).
fn autoscale(w: &mut World, min: u32, max: u32, targets: &[(crate::render::autoscaling::Metric, u32)]) {
    w.register_scalable_target(&docs_target(min, max)).unwrap();
    for (metric, value) in targets {
        w.put_scaling_policy(&docs_policy(*metric, *value)).unwrap();
    }
}

#[test]
fn target_tracking_moves_the_count_toward_the_load_within_the_bounds_each_minute() {
    use crate::render::autoscaling::Metric;
    let (mut w, _) = world_with_service(2, 200, 100);
    autoscale(&mut w, 2, 5, &[(Metric::Cpu, 60)]);
    let t0 = w.now_ms;
    // No load, no metric data: nothing moves.
    w.advance_to(t0 + 5 * EVALUATION_MS);
    assert_eq!(state(&w).desired_count, 2);

    // 90 % on 2 tasks is 180 % of a task: ceil(180 / 60) = 3 tasks, at the next evaluation.
    w.set_load("mcp", "docs", LoadSpec { cpu: Some(90), ..LoadSpec::default() }).unwrap();
    let t1 = w.now_ms;
    w.advance_to(t1 + EVALUATION_MS - TICK_MS);
    assert_eq!(state(&w).desired_count, 2, "not before a minute passed");
    w.advance_to(t1 + EVALUATION_MS + TICK_MS);
    assert_eq!(state(&w).desired_count, 3);
    assert!(
        state(&w).events[0].message.contains("set from 2 to 3 by Application Auto Scaling"),
        "{:?}",
        state(&w).events[0]
    );
    // The work spread over 3 tasks is 60 % each: the target. The count stays, and the new task is started.
    w.advance_to(w.now_ms + 3 * EVALUATION_MS);
    assert_eq!((state(&w).desired_count, state(&w).running_count), (3, 3));

    // Five times the work: the count goes to max, never beyond.
    w.set_load("mcp", "docs", LoadSpec { cpu: Some(300), ..LoadSpec::default() }).unwrap();
    w.advance_to(w.now_ms + 2 * EVALUATION_MS);
    assert_eq!(state(&w).desired_count, 5);

    // Little work: in, but only after the scale-in cooldown (300 s), and never below min.
    w.set_load("mcp", "docs", LoadSpec { cpu: Some(1), ..LoadSpec::default() }).unwrap();
    let t2 = w.now_ms;
    w.advance_to(t2 + 2 * EVALUATION_MS);
    assert_eq!(state(&w).desired_count, 2, "the first scale-in has no cooldown to wait for");
    w.set_load("mcp", "docs", LoadSpec { cpu: Some(100), ..LoadSpec::default() }).unwrap();
    w.advance_to(w.now_ms + 2 * EVALUATION_MS);
    assert_eq!(state(&w).desired_count, 4, "out again at once: ceil(200 / 60)");
}

#[test]
fn several_policies_scale_out_on_any_and_in_only_on_all() {
    use crate::render::autoscaling::Metric;
    let (mut w, _) = world_with_service(4, 200, 100);
    autoscale(&mut w, 1, 10, &[(Metric::Cpu, 50), (Metric::Memory, 50)]);
    // CPU wants 2 (100 / 50), memory wants 6 (300 / 50): out to 6.
    w.set_load("mcp", "docs", LoadSpec { cpu: Some(25), memory: Some(75), requests: None }).unwrap();
    w.advance_to(w.now_ms + EVALUATION_MS + TICK_MS);
    assert_eq!(state(&w).desired_count, 6);
    // Memory drops to what 5 tasks hold but CPU wants 2: in to the larger, 5.
    w.set_load("mcp", "docs", LoadSpec { cpu: Some(10), memory: Some(40), requests: None }).unwrap();
    w.advance_to(w.now_ms + EVALUATION_MS + TICK_MS);
    assert_eq!(state(&w).desired_count, 5);
}

#[test]
fn registering_puts_the_count_inside_the_bounds_and_policies_need_a_target() {
    use crate::render::autoscaling::{self as aas, Metric};
    let (mut w, _) = world_with_service(9, 200, 100);
    autoscale(&mut w, 2, 4, &[]);
    assert_eq!(state(&w).desired_count, 4, "registering clamps an active service's count");
    assert_eq!(w.describe_scalable_targets(&[aas::resource_id("mcp", "docs"), "service/mcp/x".into()]).len(), 1);
    w.deregister_scalable_target(&aas::resource_id("mcp", "docs")).unwrap();
    let err = w.deregister_scalable_target(&aas::resource_id("mcp", "docs")).unwrap_err();
    assert!(matches!(err, BackendError::NotFound { .. }), "{err:?}");
    // A policy on an unregistered target: ObjectNotFound; a requests policy needs a real target group's label.
    let err = w.put_scaling_policy(&docs_policy(Metric::Cpu, 50)).unwrap_err();
    assert!(matches!(err, BackendError::NotFound { .. }), "{err:?}");
    w.register_scalable_target(&docs_target(2, 4)).unwrap();
    let err = w.put_scaling_policy(&docs_policy(Metric::Requests, 500)).unwrap_err();
    assert!(err.to_string().contains("ALBRequestCountPerTarget needs the resource label"), "{err}");
    let tg = w
        .create_target_group(&TargetGroupSpec {
            name: "docs".into(),
            health_check_path: "/".into(),
            target_type: crate::backend::TargetType::Ip,
            load_balancer: true,
        })
        .unwrap();
    let lb = w.target_groups["docs"].load_balancer_arns[0].clone();
    let mut requests = docs_policy(Metric::Requests, 500);
    requests.target_tracking_scaling_policy_configuration.predefined_metric_specification.resource_label =
        aas::request_count_label(&lb, &tg);
    w.put_scaling_policy(&requests).unwrap();
    assert_eq!(w.describe_scaling_policies(&aas::resource_id("mcp", "docs")).len(), 1);
    // A service that does not exist cannot be registered.
    let target = aas::ScalableTargetInput {
        service_namespace: aas::NAMESPACE.into(),
        resource_id: aas::resource_id("mcp", "gone"),
        scalable_dimension: aas::DIMENSION.into(),
        min_capacity: 1,
        max_capacity: 2,
    };
    assert!(matches!(w.register_scalable_target(&target), Err(BackendError::Invalid { .. })));
}

#[tokio::test]
async fn running_tasks_have_ids_statuses_and_the_address_of_the_url_their_image_serves() {
    let (mut w, v1) = world_with_service(3, 200, 100);
    // One tick launches v1's tasks; they are still starting: listed as PENDING, without an address yet.
    w.advance_to(w.now_ms + TICK_MS);
    let sim = Sim::in_memory(w.clone());
    let tasks = sim.service_tasks("mcp", "docs").await.unwrap();
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    assert!(tasks.iter().all(|t| t.last_status == crate::backend::TaskStatus::Pending && t.private_ipv4.is_none()));

    w.advance_to(w.now_ms + 60_000);
    let sim = Sim::in_memory(w.clone());
    let running = sim.service_tasks("mcp", "docs").await.unwrap();
    assert_eq!(running.len(), 3);
    assert!(running.iter().all(|t| t.last_status == crate::backend::TaskStatus::Running && t.task_definition == v1));
    assert!(running.iter().all(|t| t.arn.starts_with("arn:aws:ecs:us-east-1:123456789012:task/mcp/")), "{running:?}");
    let pending_arns: Vec<&String> = tasks.iter().map(|t| &t.arn).collect();
    let running_arns: Vec<&String> = running.iter().map(|t| &t.arn).collect();
    assert_eq!(pending_arns, running_arns, "a launch that settles keeps its ARN");
    assert!(running.iter().all(|t| t.private_ipv4.is_none() && t.port.is_none()), "v1 serves nothing: no address");
    assert_eq!((sim.stats().get("ListTasks"), sim.stats().get("DescribeTasks")), (1, 1));

    // An image pushed with --serves: its tasks report the URL's host and port.
    let served = ServedUrl::parse("http://127.0.0.1:45678/mcp").unwrap();
    let repo = w.repositories.get_mut(ECR).unwrap();
    let digest = repo.tags["v1"].clone();
    repo.images.get_mut(&digest).unwrap().serves = Some(served);
    let sim = Sim::in_memory(w);
    let served = sim.service_tasks("mcp", "docs").await.unwrap();
    assert!(
        served.iter().all(|t| t.private_ipv4.as_deref() == Some("127.0.0.1") && t.port == Some(45678)),
        "{served:?}"
    );
    let one =
        sim.describe_tasks("mcp", &[served[1].arn.clone(), "arn:aws:ecs:x:1:task/mcp/nope".into()]).await.unwrap();
    assert_eq!(one, vec![served[1].clone()], "DescribeTasks answers the known ARNs");
    assert!(sim.describe_tasks("other", &[served[1].arn.clone()]).await.unwrap().is_empty(), "another cluster's");
}

#[tokio::test]
async fn list_tasks_pages_a_hundred_at_a_time() {
    let (mut w, _) = world_with_service(250, 200, 100);
    w.advance_to(w.now_ms + 60_000);
    let sim = Sim::in_memory(w);
    sim.set_throttling(false);
    let first = sim.list_tasks("mcp", "docs", None).await.unwrap();
    assert_eq!((first.arns.len(), first.next_token.as_deref()), (100, Some("100")));
    let tasks = sim.service_tasks("mcp", "docs").await.unwrap();
    assert_eq!(tasks.len(), 250);
    assert_eq!(tasks.iter().map(|t| &t.arn).collect::<std::collections::BTreeSet<_>>().len(), 250, "unique ARNs");
    // One page was listed above; service_tasks lists 3 and describes 3 batches.
    assert_eq!((sim.stats().get("ListTasks"), sim.stats().get("DescribeTasks")), (4, 3));
    let err = sim.list_tasks("mcp", "docs", Some("x")).await.unwrap_err();
    assert!(err.to_string().contains("invalid nextToken"), "{err}");
}

#[test]
fn served_urls_must_be_http_with_an_ipv4_host() {
    let ok = ServedUrl::parse("http://127.0.0.1:8081/mcp").unwrap();
    assert_eq!((ok.ip().to_string(), ok.port()), ("127.0.0.1".to_string(), 8081));
    assert_eq!(ServedUrl::parse("http://127.0.0.1/mcp").unwrap().port(), 80);
    for bad in ["https://127.0.0.1:8081/mcp", "http://localhost:8081/mcp", "127.0.0.1:8081", "http://[::1]:1/"] {
        assert!(ServedUrl::parse(bad).is_err(), "{bad}");
    }
    // A hand-edited state file with a bad URL is an error naming it, not a crash.
    let err = serde_json::from_str::<SimImage>(r#"{"platforms":[],"unhealthy":false,"serves":"ftp://x"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--serves `ftp://x`: must be an http:// URL"), "{err}");
}

#[test]
fn a_resource_keeps_at_most_fifty_tags_as_on_ecs() {
    let (mut w, v1) = world_with_service(1, 200, 100);
    let have = w.describe_task_definition(&v1).unwrap().tags.len();
    let tags = |from: usize, n: usize| -> BTreeMap<String, String> {
        (from..from + n).map(|i| (format!("k{i}"), "v".to_string())).collect()
    };
    w.tag_resource(&v1, &tags(0, 50 - have)).unwrap();
    // Overwriting a tag it has, or an `aws:` one, is no new tag.
    w.tag_resource(&v1, &tags(0, 1)).unwrap();
    w.tag_resource(&v1, &BTreeMap::from([("aws:cloudformation:stack-name".to_string(), "s".to_string())])).unwrap();
    let err = w.tag_resource(&v1, &tags(100, 1)).unwrap_err();
    assert!(err.to_string().contains("at most 50 tags; this would leave it 51"), "{err}");
    assert_eq!(w.describe_task_definition(&v1).unwrap().tags.len(), 51, "50 of its users' and the aws: one");
}

/// A file-backed sim at `path` seeded with docs' images and task definitions (written whole, as `sim push` does).
fn seeded(path: &Path) -> Arc<Sim> {
    let sim = Sim::open(path).unwrap();
    let (w, _) = world_with_service(2, 200, 100);
    sim.with_world(true, |world| *world = w).unwrap();
    sim
}

/// What a state holds, without the journal's bookkeeping and the token buckets (which replay does not
/// reproduce: they are ECS's, not the account's resources).
fn resources(mut w: World) -> World {
    w.journal_generation = 0;
    w.buckets.clear();
    w
}

/// A copy of the state files of `from` in `to`, as a crash at this point would leave them.
fn crash_copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    if journal::path_of(from).exists() {
        std::fs::copy(journal::path_of(from), journal::path_of(to)).unwrap();
    }
}

/// Writes to the sim: a revision, a service update and an hour of rollout.
async fn some_writes(sim: &Sim) {
    let mut td = docs(2, 200, 100).register_task_definition;
    td.container_definitions[0].image = format!("{ECR}:v1");
    let v3 = sim.register_task_definition(&td).await.unwrap().arn;
    sim.update_service(&ServiceUpdate { task_definition: Some(v3), ..ServiceUpdate::of("mcp", "docs") }).await.unwrap();
    sim.sleep(Duration::from_secs(3600)).await;
    sim.tag_resource(&state(&sim.snapshot()).arn, &[("team".to_string(), "a".to_string())].into()).await.unwrap();
}

#[tokio::test]
async fn a_crashed_command_leaves_exactly_its_writes_through_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (path, crashed) = (dir.path().join("sim.json"), dir.path().join("crashed.json"));
    let sim = seeded(&path);
    let snapshot_before = std::fs::read(&path).unwrap();
    some_writes(&sim).await;
    assert_eq!(std::fs::read(&path).unwrap(), snapshot_before, "writes are journaled, not rewritten whole");
    let lines = std::fs::read_to_string(journal::path_of(&path)).unwrap().lines().count();
    assert_eq!(lines, 5, "a header and one record per write or sleep");
    crash_copy(&path, &crashed);
    let live = resources(sim.snapshot());
    assert_eq!(resources(read_state(&crashed).unwrap()), live, "replaying the journal rebuilds the world");
    drop(Sim::open(&crashed).unwrap());
    assert!(!journal::path_of(&crashed).exists(), "opening folds the journal into the state file");
    assert_eq!(resources(read_state(&crashed).unwrap()), live);
    drop(sim);
    assert!(!journal::path_of(&path).exists(), "a command that ends folds its journal in");
    assert_eq!(resources(read_state(&path).unwrap()), live);
}

#[tokio::test]
async fn a_torn_last_record_is_ignored_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (path, crashed) = (dir.path().join("sim.json"), dir.path().join("crashed.json"));
    let sim = seeded(&path);
    let mut td = docs(2, 200, 100).register_task_definition;
    td.container_definitions[0].image = format!("{ECR}:v1");
    sim.register_task_definition(&td).await.unwrap();
    let whole = resources(sim.snapshot());
    sim.delete_service("mcp", "docs").await.unwrap();
    crash_copy(&path, &crashed);
    // The crash cut the last record (the delete) short.
    let journal = journal::path_of(&crashed);
    let text = std::fs::read(&journal).unwrap();
    std::fs::write(&journal, &text[..text.len() - 9]).unwrap();
    assert_eq!(resources(read_state(&crashed).unwrap()), whole, "the delete was not made");
    let reopened = Sim::open(&crashed).unwrap();
    assert!(!journal.exists(), "the torn record is gone with the compaction");
    assert_eq!(reopened.snapshot().families["docs"].len(), 3);
    assert!(reopened.snapshot().services["mcp/docs"].state.is_active());
}

/// A seeded sim that made [`some_writes`], and `crashed.json`: its files as a crash after those writes left them
/// (state file and journal, not yet folded). The directory lives as long as the returned guard.
async fn crashed_after_some_writes() -> (tempfile::TempDir, Arc<Sim>, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (path, crashed) = (dir.path().join("sim.json"), dir.path().join("crashed.json"));
    let sim = seeded(&path);
    some_writes(&sim).await;
    crash_copy(&path, &crashed);
    (dir, sim, crashed)
}

#[tokio::test]
async fn a_journal_already_folded_in_is_not_applied_twice() {
    let (_dir, sim, crashed) = crashed_after_some_writes().await;
    let old_journal = std::fs::read(journal::path_of(&crashed)).unwrap();
    drop(Sim::open(&crashed).unwrap());
    // A crash between writing the folded state file and removing the journal leaves both.
    std::fs::write(journal::path_of(&crashed), old_journal).unwrap();
    let reopened = Sim::open(&crashed).unwrap();
    assert_eq!(reopened.snapshot().families["docs"].len(), 3, "the registration is not made again");
    assert_eq!(resources(reopened.snapshot()), resources(sim.snapshot()));
}

#[tokio::test]
async fn a_journal_changed_by_hand_is_refused_naming_the_line() {
    let (_dir, _sim, crashed) = crashed_after_some_writes().await;
    let journal = journal::path_of(&crashed);
    let text = std::fs::read_to_string(&journal).unwrap().replacen("\"updateService\"", "\"updateServise\"", 1);
    std::fs::write(&journal, &text).unwrap();
    let err = Sim::open(&crashed).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(&format!("{}:3: not a valid sim journal: not a record", journal.display())), "{err}");
    assert!(err.contains("delete it to drop the changes it holds"), "{err}");
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), text, "nothing is changed");
}

#[tokio::test]
async fn waiting_for_tokens_in_a_read_only_command_leaves_the_state_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    drop(seeded(&path));
    let before = std::fs::read(&path).unwrap();
    let sim = Sim::open(&path).unwrap();
    let backend = sim.backend();
    let limited = crate::backend::limits::Limited::new(backend.ecs.clone(), backend.clock.clone());
    let start = sim.now_ms();
    // DescribeServices: burst 100, then 20/s: the last 50 calls wait for tokens.
    for _ in 0..150 {
        limited.describe_services("mcp", &["docs".into()]).await.unwrap();
    }
    assert!(sim.now_ms() >= start + 2_000, "the calls waited on the virtual clock");
    drop((limited, backend, sim));
    assert_eq!(std::fs::read(&path).unwrap(), before, "neither the clock nor the buckets were persisted");
    assert!(!journal::path_of(&path).exists());
}

#[test]
fn concurrent_commands_take_turns_and_both_writes_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    drop(seeded(&path));
    let first = Sim::open(&path).unwrap();
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let second = std::thread::spawn({
        let path = path.clone();
        move || {
            opened_tx.send(()).unwrap();
            // Blocks until the first command ends, then sees what it wrote.
            let sim = Sim::open(&path).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(
                sim.tag_resource(&state(&sim.snapshot()).arn, &[("by".to_string(), "second".to_string())].into()),
            )
            .unwrap();
            sim.snapshot().services["mcp/docs"].state.desired_count
        }
    });
    opened_rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(first.update_service(&ServiceUpdate { desired_count: Some(5), ..ServiceUpdate::of("mcp", "docs") }))
        .unwrap();
    drop(first);
    assert_eq!(second.join().unwrap(), 5, "the second command saw the first one's write");
    let w = read_state(&path).unwrap();
    assert_eq!(w.services["mcp/docs"].state.desired_count, 5);
    assert_eq!(w.services["mcp/docs"].state.tags.get("by").map(String::as_str), Some("second"));
}
