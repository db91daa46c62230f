//! The AWS adapters against responses moto cannot produce, with aws-smithy-mocks: throttling and 5xx sequences
//! are retried until they succeed (ECS, ECR and Secrets Manager alike) and never beyond the documented bound, a
//! validation error fails at once with AWS's message, writes are retried without duplicates (CreateService's
//! client token, RegisterTaskDefinition's task-hash re-check), and DescribeServices/BatchGetImage failures are
//! split into "absent" and "report it".

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::types::{Failure, Service, Tag};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use common::clock::TestClock;
use mcpfleet::backend::aws::AwsEcs;
use mcpfleet::backend::limits::Limited;
use mcpfleet::backend::{BackendError, Clock, Ecs};

fn limited(client: Client) -> (Limited, Arc<TestClock>) {
    let clock = Arc::new(TestClock::default());
    (Limited::new(Arc::new(AwsEcs::new(client)), clock.clone()), clock)
}

fn no_sdk_retries(b: aws_sdk_ecs::config::Builder) -> aws_sdk_ecs::config::Builder {
    // Our own retry layer is under test; the SDK's would hide it.
    b.retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())
}

fn service(name: &str) -> Service {
    Service::builder()
        .service_name(name)
        .service_arn(format!("arn:aws:ecs:us-east-1:123456789012:service/mcp/{name}"))
        .status("ACTIVE")
        .desired_count(2)
        .running_count(2)
        .task_definition(format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{name}:3"))
        .tags(Tag::builder().key("mcpfleet.io/managed-by").value("mcpfleet").build())
        .build()
}

fn found(names: &[&str]) -> DescribeServicesOutput {
    DescribeServicesOutput::builder().set_services(Some(names.iter().map(|n| service(n)).collect())).build()
}

const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

#[tokio::test]
async fn throttling_is_retried_until_it_succeeds() {
    let rule = mock!(Client::describe_services)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(3)
        .output(|| found(&["docs"]))
        .build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, clock) = limited(client);
    let out = ecs.describe_services("mcp", &["docs".into()]).await.unwrap();
    assert_eq!(out.services[0].name, "docs");
    assert_eq!(rule.num_calls(), 4);
    assert_eq!(ecs.retries()["DescribeServices"], 3);
    assert!(clock.now_ms() >= 300, "backoff must wait between attempts, waited {} ms", clock.now_ms());
}

#[tokio::test]
async fn service_unavailable_is_retried_until_it_succeeds() {
    let rule =
        mock!(Client::describe_services).sequence().http_status(503, None).times(2).output(|| found(&["docs"])).build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, _) = limited(client);
    assert_eq!(ecs.describe_services("mcp", &["docs".into()]).await.unwrap().services.len(), 1);
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn persistent_throttling_gives_up_with_a_throttling_error() {
    let rule =
        mock!(Client::describe_services).sequence().http_status(400, Some(THROTTLED.into())).repeatedly().build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, _) = limited(client);
    let err = ecs.describe_services("mcp", &["docs".into()]).await.unwrap_err();
    assert!(err.is_throttling(), "{err}");
    assert_eq!(rule.num_calls(), 9, "one attempt and eight retries");
}

#[tokio::test]
async fn a_validation_error_fails_at_once_with_the_aws_message() {
    let body =
        r#"{"__type":"InvalidParameterException","message":"Task definition does not support launch_type FARGATE."}"#;
    let rule = mock!(Client::update_service).sequence().http_status(400, Some(body.into())).repeatedly().build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, clock) = limited(client);
    let update = mcpfleet::backend::ServiceUpdate {
        task_definition: Some("docs:4".into()),
        desired_count: Some(2),
        ..mcpfleet::backend::ServiceUpdate::of("mcp", "docs")
    };
    let err = ecs.update_service(&update).await.unwrap_err();
    assert_eq!(
        err,
        BackendError::Invalid {
            operation: mcpfleet::backend::Op::UpdateService,
            message: "InvalidParameterException: Task definition does not support launch_type FARGATE.".into()
        }
    );
    assert!(!err.is_retryable());
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(clock.now_ms(), 0, "no backoff for an error retrying cannot fix");
}

#[tokio::test]
async fn describe_services_splits_found_and_missing() {
    let rule = mock!(Client::describe_services)
        .match_requests(|r| r.services().len() == 3 && r.include() == [aws_sdk_ecs::types::ServiceField::Tags])
        .then_output(|| {
            DescribeServicesOutput::builder()
                .services(service("docs"))
                .services(service("search"))
                .failures(
                    Failure::builder()
                        .arn("arn:aws:ecs:us-east-1:123456789012:service/mcp/gone")
                        .reason("MISSING")
                        .build(),
                )
                .build()
        });
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, _) = limited(client);
    let out = ecs.describe_services("mcp", &["docs".into(), "search".into(), "gone".into()]).await.unwrap();
    let names: Vec<&str> = out.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["docs", "search"]);
    assert_eq!(out.missing, ["gone"]);
    assert_eq!(out.services[0].cluster, "mcp");
    assert_eq!(out.services[0].tags["mcpfleet.io/managed-by"], "mcpfleet");
    assert_eq!(out.services[0].task_definition, "arn:aws:ecs:us-east-1:123456789012:task-definition/docs:3");
}

/// A service on `td` whose PRIMARY deployment is in `state`, as DescribeServices returns it.
fn rolling(
    name: &str,
    primary_td: &str,
    state: aws_sdk_ecs::types::DeploymentRolloutState,
    events: &[&str],
) -> Service {
    let td = |rev: &str| format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{name}:{rev}");
    let mut b = Service::builder()
        .service_name(name)
        .service_arn(format!("arn:aws:ecs:us-east-1:123456789012:service/mcp/{name}"))
        .status("ACTIVE")
        .desired_count(2)
        .running_count(2)
        .task_definition(td(primary_td))
        .deployments(
            aws_sdk_ecs::types::Deployment::builder()
                .id("ecs-svc/1")
                .status("PRIMARY")
                .task_definition(td(primary_td))
                .desired_count(2)
                .running_count(if state == aws_sdk_ecs::types::DeploymentRolloutState::Completed { 2 } else { 0 })
                .failed_tasks(0)
                .rollout_state(state)
                .rollout_state_reason("reason from ECS")
                .build(),
        );
    for e in events {
        b = b.events(aws_sdk_ecs::types::ServiceEvent::builder().message(*e).build());
    }
    b.build()
}

fn target(name: &str, rev: &str, deadline_ms: u64) -> mcpfleet::reconcile::watch::Target {
    mcpfleet::reconcile::watch::Target {
        cluster: "mcp".into(),
        name: name.into(),
        task_definition: format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{name}:{rev}"),
        networking: None,
        deadline_ms,
        restart: None,
    }
}

async fn watch_one(
    rule: &aws_smithy_mocks::Rule,
    t: mcpfleet::reconcile::watch::Target,
) -> mcpfleet::reconcile::watch::RolloutResult {
    // A failed rollout asks ECS why its tasks stopped; here none did.
    let no_stopped_tasks = mock!(Client::list_tasks).then_output(|| ListTasksOutput::builder().build());
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [rule, &no_stopped_tasks], no_sdk_retries);
    watch_with(client, t).await
}

/// Watches one target through a client whose rules answer every call the watcher makes.
async fn watch_with(
    client: Client,
    t: mcpfleet::reconcile::watch::Target,
) -> mcpfleet::reconcile::watch::RolloutResult {
    let (ecs, clock) = limited(client);
    let results =
        mcpfleet::reconcile::watch::watch(&ecs, clock.as_ref(), &[t], Duration::from_secs(3600), &|_, _| {}).await;
    results.into_values().next().unwrap()
}

#[tokio::test]
async fn a_failed_rollout_state_is_a_failure_with_the_ecs_reason() {
    use aws_sdk_ecs::types::DeploymentRolloutState as S;
    let rule = mock!(Client::describe_services)
        .sequence()
        .output(|| DescribeServicesOutput::builder().services(rolling("docs", "4", S::InProgress, &[])).build())
        .output(|| {
            DescribeServicesOutput::builder()
                .services(rolling(
                    "docs",
                    "4",
                    S::Failed,
                    &["(service docs) (deployment ecs-svc/1) task stopped: Essential container exited"],
                ))
                .build()
        })
        .build();
    let result = watch_one(&rule, target("docs", "4", u64::MAX)).await;
    let mcpfleet::reconcile::watch::RolloutResult::Failed { reason, .. } = result else { panic!("{result:?}") };
    assert!(reason.contains("reason from ECS") && reason.contains("Essential container exited"), "{reason}");
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn a_circuit_breaker_rollback_that_looks_stable_is_a_failure() {
    use aws_sdk_ecs::types::DeploymentRolloutState as S;
    // ECS already rolled back: the service is COMPLETED — on revision 3, not the 4 that was asked for.
    let rule = mock!(Client::describe_services).then_output(|| {
        DescribeServicesOutput::builder()
            .services(rolling(
                "docs",
                "3",
                S::Completed,
                &["(service docs) (deployment ecs-svc/2) deployment failed: tasks failed to start."],
            ))
            .build()
    });
    let result = watch_one(&rule, target("docs", "4", u64::MAX)).await;
    let mcpfleet::reconcile::watch::RolloutResult::Failed { reason, .. } = result else { panic!("{result:?}") };
    assert!(reason.contains("circuit breaker rolled the service back to docs:3"), "{reason}");
}

#[tokio::test]
async fn a_rollout_past_its_deadline_is_a_failure() {
    use aws_sdk_ecs::types::DeploymentRolloutState as S;
    let rule = mock!(Client::describe_services)
        .sequence()
        .output(|| DescribeServicesOutput::builder().services(rolling("docs", "4", S::InProgress, &[])).build())
        .repeatedly()
        .build();
    let result = watch_one(&rule, target("docs", "4", 60_000)).await;
    let mcpfleet::reconcile::watch::RolloutResult::Failed { reason, .. } = result else { panic!("{result:?}") };
    assert!(reason.starts_with("progress deadline exceeded: 0/2 tasks running"), "{reason}");
}

#[tokio::test]
async fn a_completed_rollout_on_the_asked_revision_succeeds() {
    use aws_sdk_ecs::types::DeploymentRolloutState as S;
    let rule = mock!(Client::describe_services)
        .then_output(|| DescribeServicesOutput::builder().services(rolling("docs", "4", S::Completed, &[])).build());
    assert_eq!(
        watch_one(&rule, target("docs", "4", u64::MAX)).await,
        mcpfleet::reconcile::watch::RolloutResult::Completed
    );
}

// ---- stopped tasks: ListTasks + DescribeTasks, as ECS answers them ----

use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::types::{Container, DeploymentRolloutState, DesiredStatus, Task};
use aws_smithy_types::DateTime;

const ACCOUNT: &str = "arn:aws:ecs:us-east-1:123456789012";

fn td_arn(name: &str, rev: u32) -> String {
    format!("{ACCOUNT}:task-definition/{name}:{rev}")
}

fn task_arn(id: &str) -> String {
    format!("{ACCOUNT}:task/mcp/{id}")
}

/// A STOPPED Fargate task of `name:rev`, as DescribeTasks returns it.
fn stopped_task(name: &str, rev: u32, id: &str, stopped_at: i64, reason: &str, container: Container) -> Task {
    Task::builder()
        .task_arn(task_arn(id))
        .cluster_arn(format!("{ACCOUNT}:cluster/mcp"))
        .task_definition_arn(td_arn(name, rev))
        .group(format!("service:{name}"))
        .started_by("ecs-svc/1234567890123456789")
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .last_status("STOPPED")
        .desired_status("STOPPED")
        .stop_code(aws_sdk_ecs::types::TaskStopCode::EssentialContainerExited)
        .stopped_reason(reason)
        .stopped_at(DateTime::from_secs(stopped_at))
        .containers(container)
        .build()
}

fn container(name: &str, exit_code: Option<i32>, reason: Option<&str>) -> Container {
    Container::builder()
        .name(name)
        .last_status("STOPPED")
        .set_exit_code(exit_code)
        .set_reason(reason.map(Into::into))
        .health_status(aws_sdk_ecs::types::HealthStatus::Unhealthy)
        .build()
}

/// ListTasks for the service's STOPPED tasks answers `ids`; DescribeTasks of exactly those answers `tasks`.
fn stopped_tasks_rules(
    service: &'static str,
    ids: &'static [&'static str],
    tasks: Vec<Task>,
) -> [aws_smithy_mocks::Rule; 2] {
    let list = mock!(Client::list_tasks)
        .match_requests(move |r| {
            r.cluster() == Some("mcp")
                && r.service_name() == Some(service)
                && r.desired_status() == Some(&DesiredStatus::Stopped)
                && r.max_results().is_some_and(|m| m <= 100)
        })
        .then_output(move || {
            ListTasksOutput::builder().set_task_arns(Some(ids.iter().map(|i| task_arn(i)).collect())).build()
        });
    let describe = mock!(Client::describe_tasks)
        .match_requests(move |r| {
            r.cluster() == Some("mcp") && r.tasks() == ids.iter().map(|i| task_arn(i)).collect::<Vec<_>>()
        })
        .then_output(move || DescribeTasksOutput::builder().set_tasks(Some(tasks.clone())).build());
    [list, describe]
}

#[tokio::test]
async fn stopped_task_reasons_come_from_list_tasks_and_describe_tasks() {
    let [list, describe] = stopped_tasks_rules(
        "docs",
        &["a1", "b2", "c3"],
        vec![
            stopped_task(
                "docs",
                4,
                "a1",
                1_700_000_100,
                "Essential container in task exited",
                container("docs", Some(1), None),
            ),
            // An older revision's task: not this rollout's.
            stopped_task(
                "docs",
                3,
                "b2",
                1_700_000_300,
                "Scaling activity initiated by (deployment ecs-svc/1)",
                container("docs", Some(0), None),
            ),
            stopped_task(
                "docs",
                4,
                "c3",
                1_700_000_200,
                "Task failed container health checks",
                container("docs", Some(137), None),
            ),
        ],
    );
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &describe], no_sdk_retries);
    let (ecs, _) = limited(client);
    let reasons = ecs.stopped_task_reasons("mcp", "docs", &td_arn("docs", 4)).await.unwrap();
    assert_eq!(
        reasons,
        [
            "Task failed container health checks (docs: exit code 137)",
            "Essential container in task exited (docs: exit code 1)",
        ],
        "newest first, only tasks of the asked revision"
    );
    assert_eq!((list.num_calls(), describe.num_calls()), (1, 1));
}

#[tokio::test]
async fn no_stopped_tasks_costs_no_describe_tasks() {
    let list = mock!(Client::list_tasks).then_output(|| ListTasksOutput::builder().build());
    let describe = mock!(Client::describe_tasks).then_output(|| DescribeTasksOutput::builder().build());
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &describe], no_sdk_retries);
    let (ecs, _) = limited(client);
    assert!(ecs.stopped_task_reasons("mcp", "docs", &td_arn("docs", 4)).await.unwrap().is_empty());
    assert_eq!((list.num_calls(), describe.num_calls()), (1, 0));
}

#[tokio::test]
async fn a_throttled_list_tasks_is_retried() {
    let list = mock!(Client::list_tasks)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .output(|| ListTasksOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&list], no_sdk_retries);
    let (ecs, _) = limited(client);
    assert!(ecs.stopped_task_reasons("mcp", "docs", &td_arn("docs", 4)).await.unwrap().is_empty());
    assert_eq!(ecs.retries()["ListTasks"], 1);
}

// ---- a service's running tasks: ListTasks pages + DescribeTasks, with the ENI's private address ----

/// A Fargate task of `docs:4` with `status`, and its ENI attachment when it has an address, as ECS answers it.
fn running_task(id: &str, status: &str, ip: Option<&str>) -> Task {
    use aws_sdk_ecs::types::{Attachment, KeyValuePair};
    let detail = |name: &str, value: &str| KeyValuePair::builder().name(name).value(value).build();
    let mut task = Task::builder()
        .task_arn(task_arn(id))
        .task_definition_arn(td_arn("docs", 4))
        .last_status(status)
        .desired_status("RUNNING")
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate);
    if let Some(ip) = ip {
        task = task.attachments(
            Attachment::builder()
                .id("eni-attachment-1")
                .r#type("ElasticNetworkInterface")
                .status("ATTACHED")
                .details(detail("subnetId", "subnet-0abc"))
                .details(detail("networkInterfaceId", "eni-0abc"))
                .details(detail("privateDnsName", "ip-10-0-1-23.ec2.internal"))
                .details(detail("privateIPv4Address", ip))
                .build(),
        );
    }
    task.build()
}

#[tokio::test]
async fn service_tasks_follow_next_token_and_read_the_eni_address() {
    use mcpfleet::backend::{TaskInfo, TaskStatus};
    let first = mock!(Client::list_tasks)
        .match_requests(|r| {
            r.cluster() == Some("mcp")
                && r.service_name() == Some("docs")
                && r.desired_status() == Some(&DesiredStatus::Running)
                && r.next_token().is_none()
        })
        .then_output(|| ListTasksOutput::builder().task_arns(task_arn("a1")).next_token("page-2").build());
    let second = mock!(Client::list_tasks)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(|| ListTasksOutput::builder().task_arns(task_arn("b2")).build());
    let describe = mock!(Client::describe_tasks)
        .match_requests(|r| r.cluster() == Some("mcp") && r.tasks() == [task_arn("a1"), task_arn("b2")])
        .then_output(|| {
            DescribeTasksOutput::builder()
                // Answered out of order, as DescribeTasks may: the result keeps ListTasks' order.
                .tasks(running_task("b2", "PROVISIONING", None))
                .tasks(running_task("a1", "RUNNING", Some("10.0.1.23")))
                .build()
        });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&first, &second, &describe], no_sdk_retries);
    let (ecs, _) = limited(client);
    let tasks = ecs.service_tasks("mcp", "docs").await.unwrap();
    assert_eq!(
        tasks,
        [
            TaskInfo {
                arn: task_arn("a1"),
                task_definition: td_arn("docs", 4),
                last_status: TaskStatus::Running,
                private_ipv4: Some("10.0.1.23".into()),
                port: None,
            },
            TaskInfo {
                arn: task_arn("b2"),
                task_definition: td_arn("docs", 4),
                last_status: TaskStatus::Provisioning,
                private_ipv4: None,
                port: None,
            },
        ]
    );
    assert_eq!((first.num_calls(), second.num_calls(), describe.num_calls()), (1, 1, 1));
}

/// A service whose PRIMARY deployment of `docs:rev` is in `state` with `failed` failed tasks, with real ECS
/// event text, tagged as mcpfleet leaves it (last good: docs:3).
fn docs_service(rev: u32, state: DeploymentRolloutState, running: i32, failed: i32) -> Service {
    fleet_service("docs", rev, state, running, failed)
}

/// [`docs_service`] for any service name.
fn fleet_service(name: &str, rev: u32, state: DeploymentRolloutState, running: i32, failed: i32) -> Service {
    Service::builder()
        .service_name(name)
        .service_arn(format!("{ACCOUNT}:service/mcp/{name}"))
        .cluster_arn(format!("{ACCOUNT}:cluster/mcp"))
        .status("ACTIVE")
        .desired_count(2)
        .running_count(running)
        .task_definition(td_arn(name, rev))
        .deployments(
            aws_sdk_ecs::types::Deployment::builder()
                .id("ecs-svc/1234567890123456789")
                .status("PRIMARY")
                .task_definition(td_arn(name, rev))
                .desired_count(2)
                .running_count(running)
                .pending_count(0)
                .failed_tasks(failed)
                .rollout_state(state.clone())
                .rollout_state_reason(if state == DeploymentRolloutState::Completed {
                    "ECS deployment ecs-svc/1234567890123456789 completed."
                } else {
                    "ECS deployment ecs-svc/1234567890123456789 in progress."
                })
                .build(),
        )
        .events(
            aws_sdk_ecs::types::ServiceEvent::builder()
                .id("e2")
                .message(format!("(service {name}) has started 1 tasks: (task c3)."))
                .build(),
        )
        .events(
            aws_sdk_ecs::types::ServiceEvent::builder()
                .id("e1")
                .message(format!("(service {name}) has started 2 tasks: (task a1) (task b2)."))
                .build(),
        )
        .tags(Tag::builder().key("mcpfleet.io/managed-by").value("mcpfleet").build())
        .tags(Tag::builder().key("mcpfleet.io/last-good").value(td_arn(name, 3)).build())
        .tags(Tag::builder().key("mcpfleet.io/spec-hash").value("0123456789abcdef0123456789abcdef").build())
        .build()
}

#[tokio::test]
async fn failed_tasks_past_the_threshold_fail_a_rollout_still_in_progress() {
    // Desired 2: ECS's threshold is 3 failed tasks. Two are not a verdict yet; the third is, although the
    // deployment still says IN_PROGRESS (the circuit breaker is off, or ECS has not acted yet).
    let rule = mock!(Client::describe_services)
        .sequence()
        .output(|| {
            DescribeServicesOutput::builder()
                .services(docs_service(4, DeploymentRolloutState::InProgress, 0, 2))
                .build()
        })
        .output(|| {
            DescribeServicesOutput::builder()
                .services(docs_service(4, DeploymentRolloutState::InProgress, 0, 3))
                .build()
        })
        .build();
    let [list, describe] = stopped_tasks_rules(
        "docs",
        &["a1", "b2", "c3"],
        ["a1", "b2", "c3"]
            .iter()
            .enumerate()
            .map(|(n, id)| {
                stopped_task(
                    "docs",
                    4,
                    id,
                    1_700_000_000 + n as i64,
                    "Task failed container health checks",
                    container("docs", Some(137), None),
                )
            })
            .collect(),
    );
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&rule, &list, &describe], no_sdk_retries);
    let mcpfleet::reconcile::watch::RolloutResult::Failed { reason, .. } =
        watch_with(client, target("docs", "4", u64::MAX)).await
    else {
        panic!("a rollout with 3 failed tasks of 2 must fail")
    };
    assert_eq!(
        reason,
        "3 tasks failed to start; tasks stopped: Task failed container health checks (docs: exit code 137)"
    );
    assert_eq!(rule.num_calls(), 2, "two failed tasks were not yet a failure");
}

#[tokio::test]
async fn a_circuit_breaker_rollback_reports_why_ecs_stopped_the_tasks() {
    let rule = mock!(Client::describe_services).then_output(|| {
        let mut s = docs_service(3, DeploymentRolloutState::Completed, 2, 0);
        s.events.get_or_insert_with(Vec::new).insert(
            0,
            aws_sdk_ecs::types::ServiceEvent::builder()
                .id("e3")
                .message(
                    "(service docs) (deployment ecs-svc/9876543210987654321) deployment failed: tasks failed to start.",
                )
                .build(),
        );
        DescribeServicesOutput::builder().services(s).build()
    });
    let [list, describe] = stopped_tasks_rules(
        "docs",
        &["a1"],
        vec![stopped_task(
            "docs",
            4,
            "a1",
            1_700_000_000,
            "CannotPullContainerError: pull image manifest has been retried 7 time(s): failed to resolve ref",
            container("docs", None, Some("CannotPullContainerError: pull image manifest has been retried 7 time(s)")),
        )],
    );
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&rule, &list, &describe], no_sdk_retries);
    let mcpfleet::reconcile::watch::RolloutResult::Failed { reason, .. } =
        watch_with(client, target("docs", "4", u64::MAX)).await
    else {
        panic!("a circuit-breaker rollback is a failure")
    };
    assert!(
        reason.starts_with("ECS's deployment circuit breaker rolled the service back to docs:3; tasks stopped: CannotPullContainerError: pull image manifest"),
        "{reason}"
    );
    assert!(reason.contains("(docs: CannotPullContainerError"), "the container's reason too: {reason}");
}

// ---- settle's actions on the AWS adapter ----

use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::tag_resource::TagResourceOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use mcpfleet::reconcile::{Desired, Outcome, ServiceOutcome};

/// The one service of the test fleet (`svc-00000`), resolved on a seeded sim.
async fn one_desired(auto_rollback: bool) -> Vec<Desired> {
    let mut text = mcpfleet::testkit::fleet_yaml(1, 1, 1).replace("cluster: bench", "cluster: mcp");
    if !auto_rollback {
        text = text.replace("  stopTimeout: 20s\n", "  stopTimeout: 20s\n  rollout: { autoRollback: false }\n");
    }
    let fleet = mcpfleet::spec::load_str("fleet.yaml", &text).unwrap();
    let sim = mcpfleet::backend::sim::Sim::in_memory(mcpfleet::testkit::seeded_world(1, 1));
    mcpfleet::reconcile::desired_state(&fleet, &sim.backend()).await.unwrap()
}

type TagLog = Arc<std::sync::Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// TagResource answers success and logs (resource, tags).
fn logged_tag_resource() -> (aws_smithy_mocks::Rule, TagLog) {
    let log = TagLog::default();
    let seen = log.clone();
    let rule = mock!(Client::tag_resource)
        .match_requests(move |r| {
            let tags =
                r.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())).collect();
            seen.lock().unwrap().push((r.resource_arn().unwrap().to_string(), tags));
            true
        })
        .then_output(|| TagResourceOutput::builder().build());
    (rule, log)
}

fn tagged(log: &TagLog, resource: &str, key: &str) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r == resource)
        .flat_map(|(_, tags)| tags.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect::<Vec<_>>())
        .collect()
}

const SVC: &str = "svc-00000";

/// Settles the rollout [`updated_outcome`] started, through `client`: whether it failed, and the outcomes after.
async fn settle_updated(client: Client, desired: &[Desired]) -> (bool, Vec<ServiceOutcome>) {
    let (ecs, clock) = limited(client);
    let mut outcomes = updated_outcome();
    let found = mcpfleet::reconcile::settle::Found::default();
    let ports = mcpfleet::reconcile::settle::Ports { ecs: &ecs, clock: clock.as_ref(), gate: None };
    let waited = mcpfleet::reconcile::settle::settle_apply(
        ports,
        desired,
        &found,
        &mut outcomes,
        Duration::from_secs(600),
        &|_, _| {},
    )
    .await
    .unwrap();
    (waited.failed, outcomes)
}

fn updated_outcome() -> Vec<ServiceOutcome> {
    vec![ServiceOutcome {
        name: SVC.into(),
        cluster: "mcp".into(),
        outcome: Outcome::Updated,
        task_definition: Some(td_arn(SVC, 4)),
        message: "updated".into(),
        restart: None,
    }]
}

#[tokio::test]
async fn settle_rolls_a_failed_rollout_back_to_last_good_and_holds_the_spec() {
    use DeploymentRolloutState as S;
    let desired = one_desired(true).await;
    let spec_hash = mcpfleet::plan::spec_hash_of(&desired[0].ecs).to_string();
    let describe = mock!(Client::describe_services)
        .sequence()
        // The watcher's verdict, then settle's look at the service: 3 of 2 tasks failed on svc:4.
        .output(|| DescribeServicesOutput::builder().services(fleet_service(SVC, 4, S::InProgress, 0, 3)).build())
        .times(2)
        // The rollback's own rollout completes on svc:3.
        .output(|| DescribeServicesOutput::builder().services(fleet_service(SVC, 3, S::Completed, 2, 0)).build())
        .build();
    let list = mock!(Client::list_tasks).then_output(|| ListTasksOutput::builder().build());
    let last_good = mock!(Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some(td_arn(SVC, 3).as_str()))
        .then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    aws_sdk_ecs::types::TaskDefinition::builder()
                        .task_definition_arn(td_arn(SVC, 3))
                        .family(SVC)
                        .revision(3)
                        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
                        .build(),
                )
                .tags(Tag::builder().key("mcpfleet.io/spec-hash").value("33333333333333333333333333333333").build())
                .build()
        });
    let update = mock!(Client::update_service)
        .match_requests(|r| {
            r.cluster() == Some("mcp")
                && r.service() == Some(SVC)
                && r.task_definition() == Some(td_arn(SVC, 3).as_str())
        })
        .then_output(|| UpdateServiceOutput::builder().service(fleet_service(SVC, 3, S::InProgress, 0, 0)).build());
    let (tag, log) = logged_tag_resource();
    let client =
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe, &list, &last_good, &update, &tag], no_sdk_retries);
    let (failed, outcomes) = settle_updated(client, &desired).await;
    assert!(failed);
    assert_eq!(outcomes[0].outcome, Outcome::RolledBack, "{outcomes:?}");
    assert_eq!(outcomes[0].message, format!("rollout failed: 3 tasks failed to start; rolled back to {SVC}:3"));
    assert_eq!(update.num_calls(), 1, "one UpdateService, back to the last good revision");
    let service_arn = format!("{ACCOUNT}:service/mcp/{SVC}");
    assert_eq!(tagged(&log, &service_arn, "mcpfleet.io/failed-spec-hash"), [spec_hash]);
    assert_eq!(tagged(&log, &service_arn, "mcpfleet.io/spec-hash"), ["33333333333333333333333333333333"]);
    assert_eq!(tagged(&log, &service_arn, "mcpfleet.io/last-good"), [td_arn(SVC, 3)]);
    assert_eq!(tagged(&log, &td_arn(SVC, 4), "mcpfleet.io/outcome"), ["failed", "rolled_back"]);
}

#[tokio::test]
async fn settle_without_auto_rollback_only_holds_the_failed_spec() {
    use DeploymentRolloutState as S;
    let desired = one_desired(false).await;
    let spec_hash = mcpfleet::plan::spec_hash_of(&desired[0].ecs).to_string();
    let describe = mock!(Client::describe_services)
        .then_output(|| DescribeServicesOutput::builder().services(fleet_service(SVC, 4, S::Failed, 0, 3)).build());
    let list = mock!(Client::list_tasks).then_output(|| ListTasksOutput::builder().build());
    let update = mock!(Client::update_service)
        .then_output(|| UpdateServiceOutput::builder().service(fleet_service(SVC, 3, S::InProgress, 0, 0)).build());
    let (tag, log) = logged_tag_resource();
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe, &list, &update, &tag], no_sdk_retries);
    let (failed, outcomes) = settle_updated(client, &desired).await;
    assert!(failed);
    assert_eq!(outcomes[0].outcome, Outcome::Failed);
    assert!(outcomes[0].message.ends_with("(autoRollback is off)"), "{}", outcomes[0].message);
    assert_eq!(update.num_calls(), 0, "nothing is rolled back");
    let service_arn = format!("{ACCOUNT}:service/mcp/{SVC}");
    assert_eq!(tagged(&log, &service_arn, "mcpfleet.io/failed-spec-hash"), [spec_hash]);
    assert_eq!(tagged(&log, &td_arn(SVC, 4), "mcpfleet.io/outcome"), ["failed"]);
}

#[tokio::test]
async fn a_describe_services_failure_other_than_missing_is_reported() {
    let rule = mock!(Client::describe_services).then_output(|| {
        DescribeServicesOutput::builder()
            .services(service("docs"))
            .failures(
                Failure::builder()
                    .arn("arn:aws:ecs:us-east-1:123456789012:service/mcp/search")
                    .reason("ACCESS_DENIED")
                    .detail("not authorized")
                    .build(),
            )
            .build()
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, _) = limited(client);
    let err = ecs.describe_services("mcp", &["docs".into(), "search".into()]).await.unwrap_err();
    let BackendError::Invalid { operation, message } = &err else { panic!("{err:?}") };
    assert_eq!(operation, "DescribeServices");
    assert!(message.contains("service/mcp/search") && message.contains("ACCESS_DENIED"), "{message}");
    assert_eq!(rule.num_calls(), 1, "not retried");
}

/// Image and secret ports behind the retry layer, the layer itself and its clock.
type Resolution =
    (Arc<dyn mcpfleet::backend::Images>, Arc<dyn mcpfleet::backend::Secrets>, Arc<Limited>, Arc<TestClock>);

/// The retry layer over ECR and Secrets Manager, as `cli::backend` builds it.
fn resolution(
    images: impl mcpfleet::backend::Images + 'static,
    secrets: impl mcpfleet::backend::Secrets + 'static,
) -> Resolution {
    let clock = Arc::new(TestClock::default());
    let unused = mock_client!(aws_sdk_ecs, RuleMode::Sequential, &Vec::<&aws_smithy_mocks::Rule>::new());
    let limits = Arc::new(Limited::new(Arc::new(AwsEcs::new(unused)), clock.clone()));
    (limits.images(Arc::new(images)), limits.secrets(Arc::new(secrets)), limits, clock)
}

const REPO: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/docs";
const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
    {"digest":"sha256:a","platform":{"os":"linux","architecture":"arm64"}},
    {"digest":"sha256:b","platform":{"os":"linux","architecture":"amd64"}}]}"#;

fn ecr_image(tag: &str, digest: &str) -> aws_sdk_ecr::types::Image {
    aws_sdk_ecr::types::Image::builder()
        .image_id(aws_sdk_ecr::types::ImageIdentifier::builder().image_tag(tag).image_digest(digest).build())
        .image_manifest(INDEX)
        .build()
}

fn ecr_client(rule: &aws_smithy_mocks::Rule) -> mcpfleet::backend::aws::Ecr {
    let client = mock_client!(aws_sdk_ecr, RuleMode::Sequential, [rule], |b| b
        .retry_config(aws_sdk_ecr::config::retry::RetryConfig::disabled()));
    mcpfleet::backend::aws::Ecr::new(client.config().clone())
}

fn sm_client(rules: &[&aws_smithy_mocks::Rule]) -> mcpfleet::backend::aws::SecretsManager {
    let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, rules, |b| b
        .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled()));
    mcpfleet::backend::aws::SecretsManager::new(client)
}

fn no_secrets() -> mcpfleet::backend::aws::SecretsManager {
    sm_client(&[])
}

fn tag(t: &str) -> mcpfleet::backend::ImageSelector {
    mcpfleet::backend::ImageSelector::Tag(t.into())
}

#[tokio::test]
async fn throttled_image_resolution_is_retried_until_it_succeeds() {
    use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
    let rule = mock!(aws_sdk_ecr::Client::batch_get_image)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(2)
        .output(|| BatchGetImageOutput::builder().images(ecr_image("v1", "sha256:index")).build())
        .build();
    let (images, _, limits, clock) = resolution(ecr_client(&rule), no_secrets());
    let found = images.lookup(REPO, &[tag("v1")]).await.unwrap();
    assert_eq!(found[&tag("v1")].digest, "sha256:index");
    assert_eq!(found[&tag("v1")].platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(rule.num_calls(), 3);
    assert_eq!(limits.retries()["BatchGetImage"], 2);
    assert_eq!(limits.throttles()["BatchGetImage"], 2);
    assert!(clock.now_ms() >= 200, "backoff waited {} ms", clock.now_ms());
}

#[tokio::test]
async fn persistent_throttling_is_bounded_in_attempts_and_time() {
    let rule = mock!(aws_sdk_ecr::Client::batch_get_image)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .repeatedly()
        .build();
    let (images, _, _, clock) = resolution(ecr_client(&rule), no_secrets());
    let err = images.lookup(REPO, &[tag("v1")]).await.unwrap_err();
    assert!(err.is_throttling(), "{err}");
    let attempts = rule.num_calls() as u32;
    assert_eq!(attempts, mcpfleet::backend::limits::MAX_RETRIES + 1, "one attempt per try: no SDK retries underneath");
    // 0.2+0.4+0.8+1.6+3.2+6.4+10+10 s = 32.6 s nominal, ±50 % jitter each.
    let waited = clock.now_ms();
    assert!((16_000..=49_000).contains(&waited), "waited {waited} ms in all");
}

#[tokio::test]
async fn batch_get_image_failures_other_than_not_found_are_reported_with_their_reason() {
    use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
    use aws_sdk_ecr::types::{ImageFailure, ImageFailureCode, ImageIdentifier};
    let rule = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(|| {
        BatchGetImageOutput::builder()
            .images(ecr_image("v1", "sha256:index"))
            .failures(
                ImageFailure::builder()
                    .image_id(ImageIdentifier::builder().image_tag("gone").build())
                    .failure_code(ImageFailureCode::ImageNotFound)
                    .failure_reason("Requested image not found")
                    .build(),
            )
            .failures(
                ImageFailure::builder()
                    .image_id(ImageIdentifier::builder().image_tag("v2").build())
                    .failure_code(ImageFailureCode::KmsError)
                    .failure_reason("The KMS key is disabled")
                    .build(),
            )
            .build()
    });
    let (images, _, _, _) = resolution(ecr_client(&rule), no_secrets());
    let err = images.lookup(REPO, &[tag("v1"), tag("v2"), tag("gone")]).await.unwrap_err();
    assert_eq!(
        err,
        BackendError::Invalid {
            operation: mcpfleet::backend::Op::BatchGetImage,
            message: format!("{REPO}:v2: KmsError: The KMS key is disabled"),
        }
    );
    assert_eq!(rule.num_calls(), 1, "retrying cannot fix it");

    // ImageNotFound alone: the tag is just absent, for resolution to report per service.
    let rule = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(|| {
        BatchGetImageOutput::builder()
            .failures(
                ImageFailure::builder()
                    .image_id(ImageIdentifier::builder().image_tag("gone").build())
                    .failure_code(ImageFailureCode::ImageNotFound)
                    .build(),
            )
            .build()
    });
    let (images, _, _, _) = resolution(ecr_client(&rule), no_secrets());
    assert!(images.lookup(REPO, &[tag("gone")]).await.unwrap().is_empty());
}

#[tokio::test]
async fn throttled_secret_resolution_is_retried_until_it_succeeds() {
    use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
    use aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput;
    use aws_sdk_secretsmanager::types::SecretListEntry;
    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
    let list = mock!(aws_sdk_secretsmanager::Client::list_secrets)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(2)
        .output(|| {
            ListSecretsOutput::builder()
                .secret_list(SecretListEntry::builder().name("prod/openai").arn(format!("{ARN}1")).build())
                .build()
        })
        .repeatedly()
        .build();
    let describe = mock!(aws_sdk_secretsmanager::Client::describe_secret)
        .sequence()
        .http_status(400, Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into()))
        .output(|| DescribeSecretOutput::builder().arn(ARN).name("prod/db").build())
        .build();
    let (_, secrets, limits, _) = resolution(
        ecr_client(
            &mock!(aws_sdk_ecr::Client::batch_get_image)
                .then_output(|| aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput::builder().build()),
        ),
        sm_client(&[&list, &describe]),
    );
    let out = secrets
        .resolve(&["prod/openai".into(), "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db".into()])
        .await
        .unwrap();
    assert_eq!(out["prod/openai"].arn, format!("{ARN}1"));
    assert_eq!(
        out["arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db"].arn, ARN,
        "a partial ARN resolves via DescribeSecret"
    );
    assert_eq!(limits.retries()[mcpfleet::backend::limits::OP_RESOLVE_SECRETS], 3);
    // A retry repeats the whole (read-only) resolution call: the list that had succeeded is asked again.
    assert_eq!((list.num_calls(), describe.num_calls()), (4, 2));
}

fn task_definition_input() -> mcpfleet::render::ecs::TaskDefinitionInput {
    serde_json::from_value(serde_json::json!({
        "family": "docs",
        "networkMode": "awsvpc",
        "containerDefinitions": [],
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        "tags": [{"key": "mcpfleet.io/task-hash", "value": "h1"}]
    }))
    .unwrap()
}

fn registered(rev: i32) -> aws_sdk_ecs::types::TaskDefinition {
    aws_sdk_ecs::types::TaskDefinition::builder()
        .family("docs")
        .revision(rev)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .task_definition_arn(format!("arn:aws:ecs:us-east-1:123456789012:task-definition/docs:{rev}"))
        .build()
}

fn hash_tag(hash: &str) -> Tag {
    Tag::builder().key("mcpfleet.io/task-hash").value(hash).build()
}

#[tokio::test]
async fn a_register_that_may_have_been_processed_is_rechecked_not_repeated() {
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    let register = mock!(Client::register_task_definition).sequence().http_status(503, None).build();
    // The 503 hid a success: revision 7 with our task-hash is the family's latest.
    let describe =
        mock!(Client::describe_task_definition).match_requests(|r| r.task_definition() == Some("docs")).then_output(
            || DescribeTaskDefinitionOutput::builder().task_definition(registered(7)).tags(hash_tag("h1")).build(),
        );
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&register, &describe], no_sdk_retries);
    let (ecs, _) = limited(client);
    let td = ecs.register_task_definition(&task_definition_input()).await.unwrap();
    assert_eq!(td.revision, 7);
    assert_eq!((register.num_calls(), describe.num_calls()), (1, 1), "no second RegisterTaskDefinition");
}

#[tokio::test]
async fn a_register_refused_or_not_done_is_retried() {
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
    // Throttled: refused before processing, so retried without a re-check.
    let register = mock!(Client::register_task_definition)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .output(|| RegisterTaskDefinitionOutput::builder().task_definition(registered(8)).tags(hash_tag("h1")).build())
        .build();
    let describe =
        mock!(Client::describe_task_definition).then_output(|| DescribeTaskDefinitionOutput::builder().build());
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&register, &describe], no_sdk_retries);
    let (ecs, _) = limited(client);
    assert_eq!(ecs.register_task_definition(&task_definition_input()).await.unwrap().revision, 8);
    assert_eq!((register.num_calls(), describe.num_calls()), (2, 0));

    // A 503 that did not register (the latest revision has another task-hash): re-checked, then registered.
    let register = mock!(Client::register_task_definition)
        .sequence()
        .http_status(503, None)
        .output(|| RegisterTaskDefinitionOutput::builder().task_definition(registered(9)).tags(hash_tag("h1")).build())
        .build();
    let describe = mock!(Client::describe_task_definition).then_output(|| {
        DescribeTaskDefinitionOutput::builder().task_definition(registered(8)).tags(hash_tag("h0")).build()
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&register, &describe], no_sdk_retries);
    let (ecs, _) = limited(client);
    assert_eq!(ecs.register_task_definition(&task_definition_input()).await.unwrap().revision, 9);
    assert_eq!((register.num_calls(), describe.num_calls()), (2, 1));
}

#[tokio::test]
async fn a_retried_create_service_repeats_one_client_token() {
    use aws_sdk_ecs::operation::create_service::CreateServiceOutput;
    let tokens = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = tokens.clone();
    let rule = mock!(Client::create_service)
        .match_requests(move |r| {
            seen.lock().unwrap().push(r.client_token().unwrap_or_default().to_string());
            true
        })
        .sequence()
        .http_status(500, None)
        .output(|| CreateServiceOutput::builder().service(service("docs")).build())
        .times(2)
        .build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, _) = limited(client);
    let input: mcpfleet::render::ecs::ServiceInput = serde_json::from_value(serde_json::json!({
        "cluster": "mcp", "serviceName": "docs", "taskDefinition": "docs:1", "desiredCount": 2,
        "launchType": "FARGATE", "schedulingStrategy": "REPLICA", "deploymentController": {"type": "ECS"},
        "deploymentConfiguration": {"maximumPercent": 200, "minimumHealthyPercent": 100,
            "deploymentCircuitBreaker": {"enable": true, "rollback": true}},
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": "DISABLED"}},
        "enableECSManagedTags": true, "propagateTags": "SERVICE"
    }))
    .unwrap();
    assert_eq!(ecs.create_service(&input, None).await.unwrap().name, "docs");
    ecs.create_service(&input, None).await.unwrap();
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    assert!(!tokens[0].is_empty() && tokens[0].len() <= 36, "{tokens:?}");
    assert_eq!(tokens[0], tokens[1], "the retry repeats the token");
    assert_ne!(tokens[1], tokens[2], "another logical create has its own token");
}

#[tokio::test]
async fn converging_an_update_sends_tag_propagation() {
    use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
    let rule = mock!(Client::update_service)
        .match_requests(|r| {
            r.propagate_tags() == Some(&aws_sdk_ecs::types::PropagateTags::Service)
                && r.enable_ecs_managed_tags() == Some(true)
        })
        .then_output(|| UpdateServiceOutput::builder().service(service("docs")).build());
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, _) = limited(client);
    let update = mcpfleet::backend::ServiceUpdate {
        cluster: "mcp".into(),
        service: "docs".into(),
        task_definition: Some("docs:4".into()),
        desired_count: Some(2),
        deployment_configuration: None,
        network_configuration: None,
        service_connect_configuration: None,
        load_balancers: None,
        health_check_grace_period_seconds: None,
        tagging: Some(mcpfleet::backend::TagPropagation {
            propagate_tags: "SERVICE".into(),
            enable_ecs_managed_tags: true,
        }),
        force_new_deployment: false,
    };
    ecs.update_service(&update).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_retried_delete_that_finds_the_service_gone_is_done() {
    let rule = mock!(Client::delete_service)
        .sequence()
        .http_status(503, None)
        .http_status(400, Some(r#"{"__type":"ServiceNotFoundException","message":"Service not found."}"#.into()))
        .build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, _) = limited(client);
    ecs.delete_service("mcp", "docs").await.unwrap();
    assert_eq!(rule.num_calls(), 2);

    // Not found on the first attempt is an error: nothing was deleted by us.
    let rule = mock!(Client::delete_service)
        .sequence()
        .http_status(400, Some(r#"{"__type":"ServiceNotFoundException","message":"Service not found."}"#.into()))
        .build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, _) = limited(client);
    assert!(matches!(ecs.delete_service("mcp", "docs").await, Err(BackendError::NotFound { .. })));
}

#[tokio::test]
async fn a_missing_ecr_repository_is_not_found_and_refused_credentials_are_one_error() {
    // RepositoryNotFoundException: the repository is absent (resolution reports it per service), not retried.
    let body = r#"{"__type":"RepositoryNotFoundException","message":"The repository with name 'mcp/docs' does not exist in the registry with id '123456789012'"}"#;
    let rule = mock!(aws_sdk_ecr::Client::batch_get_image).sequence().http_status(400, Some(body.into())).build();
    let (images, _, _, clock) = resolution(ecr_client(&rule), no_secrets());
    let err = images.lookup(REPO, &[tag("v1")]).await.unwrap_err();
    let BackendError::NotFound { operation, message } = &err else { panic!("{err:?}") };
    assert_eq!(operation, "BatchGetImage");
    assert!(message.starts_with("RepositoryNotFoundException: The repository with name 'mcp/docs'"), "{message}");
    assert_eq!((rule.num_calls(), clock.now_ms()), (1, 0), "not retried");

    // Keys AWS does not know: a credentials error, with the fix and the way to go without AWS, not retried.
    let body = r#"{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}"#;
    let rule = mock!(aws_sdk_ecr::Client::batch_get_image).sequence().http_status(400, Some(body.into())).build();
    let (images, _, _, clock) = resolution(ecr_client(&rule), no_secrets());
    let err = images.lookup(REPO, &[tag("v1")]).await.unwrap_err();
    assert!(matches!(err, BackendError::Credentials { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("AWS credentials are missing or invalid: AWS refused them (UnrecognizedClientException"));
    assert!(text.contains("--backend sim"), "{text}");
    assert_eq!((rule.num_calls(), clock.now_ms()), (1, 0), "not retried");
}

/// A Service Connect configuration as ECS reports it on a deployment, with the defaults it echoes.
fn reported_service_connect(enabled: bool) -> aws_sdk_ecs::types::ServiceConnectConfiguration {
    use aws_sdk_ecs::types::{
        ServiceConnectClientAlias, ServiceConnectConfiguration, ServiceConnectService, TimeoutConfiguration,
    };
    ServiceConnectConfiguration::builder()
        .enabled(enabled)
        .namespace("arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-abcdef0123456789")
        .services(
            ServiceConnectService::builder()
                .port_name("mcp")
                .discovery_name("documents")
                .client_aliases(
                    ServiceConnectClientAlias::builder().port(8080).dns_name("documents.mcp.internal").build().unwrap(),
                )
                .ingress_port_override(15000)
                .timeout(TimeoutConfiguration::builder().idle_timeout_seconds(3600).build())
                .build()
                .unwrap(),
        )
        .build()
}

#[tokio::test]
async fn service_connect_is_read_from_the_primary_deployment_and_sent_on_update() {
    use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
    use aws_sdk_ecs::types::Deployment;
    use mcpfleet::render::ecs::{ServiceConnectClientAlias, ServiceConnectConfiguration, ServiceConnectService};
    let deployment = |status: &str, enabled: bool| {
        Deployment::builder().status(status).service_connect_configuration(reported_service_connect(enabled)).build()
    };
    // ECS reports Service Connect only per deployment: the PRIMARY one's is the service's, whatever the old one ran.
    let mut svc = service("documents");
    svc.deployments = Some(vec![deployment("ACTIVE", false), deployment("PRIMARY", true)]);
    let describe = mock!(Client::describe_services)
        .then_output(move || DescribeServicesOutput::builder().services(svc.clone()).build());
    let wanted = ServiceConnectConfiguration {
        enabled: true,
        namespace: Some("mcp.internal".into()),
        services: vec![ServiceConnectService {
            port_name: "mcp".into(),
            discovery_name: Some("documents".into()),
            client_aliases: vec![ServiceConnectClientAlias {
                port: 8080,
                dns_name: Some("documents.mcp.internal".into()),
            }],
        }],
    };
    let update = mock!(Client::update_service)
        .match_requests(|r| {
            let Some(c) = r.service_connect_configuration() else { return false };
            let Some(s) = c.services().first() else { return false };
            let Some(a) = s.client_aliases().first() else { return false };
            c.enabled()
                && c.namespace() == Some("mcp.internal")
                && (s.port_name(), s.discovery_name()) == ("mcp", Some("documents"))
                && (a.port(), a.dns_name()) == (8080, Some("documents.mcp.internal"))
        })
        .then_output(|| UpdateServiceOutput::builder().service(service("documents")).build());
    let off = mock!(Client::update_service)
        .match_requests(|r| {
            r.service_connect_configuration()
                .is_some_and(|c| !c.enabled() && c.namespace().is_none() && c.services().is_empty())
        })
        .then_output(|| UpdateServiceOutput::builder().service(service("documents")).build());
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe, &update, &off], no_sdk_retries);
    let (ecs, _) = limited(client);

    let found = ecs.describe_services("mcp", &["documents".into()]).await.unwrap();
    let reported = found.services[0].service_connect_configuration.clone().unwrap();
    assert_eq!(
        reported.namespace.as_deref(),
        Some("arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-abcdef0123456789")
    );
    // Only the fields mcpfleet sets are read: the echoed ingress port and timeouts are not part of it.
    assert_eq!(reported.services, wanted.services);

    let mut u = mcpfleet::backend::ServiceUpdate {
        service_connect_configuration: Some(wanted),
        ..mcpfleet::backend::ServiceUpdate::of("mcp", "documents")
    };
    ecs.update_service(&u).await.unwrap();
    u.service_connect_configuration = Some(ServiceConnectConfiguration::disabled());
    ecs.update_service(&u).await.unwrap();
    assert_eq!((describe.num_calls(), update.num_calls(), off.num_calls()), (1, 1, 1));
}

/// moto drops `healthCheckGracePeriodSeconds`; ECS echoes it. The adapter reads it (and the target groups) back
/// from DescribeServices and sends both on UpdateService.
#[tokio::test]
async fn the_grace_period_and_target_groups_are_read_back_and_sent_on_update() {
    use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
    use mcpfleet::render::ecs::LoadBalancer;

    const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mcp-documents/0123456789abcdef";
    let sdk_lb = || {
        aws_sdk_ecs::types::LoadBalancer::builder()
            .target_group_arn(TG)
            .container_name("docs")
            .container_port(8080)
            .build()
    };
    let describe = mock!(Client::describe_services).then_output(move || {
        let mut s = service("docs");
        s.health_check_grace_period_seconds = Some(45);
        s.load_balancers = Some(vec![sdk_lb()]);
        DescribeServicesOutput::builder().services(s).build()
    });
    let update = mock!(Client::update_service)
        .match_requests(move |r| {
            r.health_check_grace_period_seconds() == Some(90)
                && r.load_balancers() == [sdk_lb()]
                && r.service() == Some("docs")
                && r.cluster() == Some("mcp")
        })
        .then_output(|| UpdateServiceOutput::builder().service(service("docs")).build());
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe, &update], no_sdk_retries);
    let (ecs, _) = limited(client);

    let read = ecs.describe_services("mcp", &["docs".into()]).await.unwrap().services.remove(0);
    assert_eq!(read.health_check_grace_period_seconds, Some(45));
    let lb = LoadBalancer { target_group_arn: TG.into(), container_name: "docs".into(), container_port: 8080 };
    assert_eq!(read.load_balancers, std::slice::from_ref(&lb));

    let change = mcpfleet::backend::ServiceUpdate {
        load_balancers: Some(vec![lb]),
        health_check_grace_period_seconds: Some(90),
        ..mcpfleet::backend::ServiceUpdate::of("mcp", "docs")
    };
    ecs.update_service(&change).await.unwrap();
    assert_eq!(update.num_calls(), 1, "the request carried the grace period and the target group");
}

#[tokio::test]
async fn a_throttle_burst_halves_the_bucket_rate_which_recovers_additively_and_the_caller_sees_no_error() {
    use mcpfleet::backend::Op;
    use mcpfleet::backend::limits::{PACING_HOLD, PACING_RECOVERY_PER_SECOND};
    // Another client drains the account's DescribeServices bucket: three calls are refused, then all succeed.
    let rule = mock!(Client::describe_services)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(3)
        .output(|| found(&["docs"]))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, clock) = limited(client);
    let full = ecs.rates()[&Op::DescribeServices];
    assert_eq!(full, 20.0, "ECS's published DescribeServices rate");

    let out = ecs.describe_services("mcp", &["docs".into()]).await.unwrap();
    assert_eq!(out.services[0].name, "docs");
    let rates = ecs.rates();
    assert_eq!(rates[&Op::DescribeServices], full / 2.0, "one burst of throttling is one halving");
    assert_eq!(rates[&Op::ListServices], 20.0, "other buckets keep their pace");

    // The cut was made at the first refusal, at 0 ms: held for PACING_HOLD, then back by
    // PACING_RECOVERY_PER_SECOND of the full rate each second.
    let expected = |now_ms: u64| {
        let recovering = now_ms.saturating_sub(PACING_HOLD.as_millis() as u64) as f64 / 1000.0;
        (full / 2.0 + recovering * PACING_RECOVERY_PER_SECOND * full).min(full)
    };
    for _ in 0..50 {
        ecs.describe_services("mcp", &["docs".into()]).await.unwrap();
    }
    // From the emptied bucket at 0 ms, 53 tokens (3 retries, 50 calls) at 10 per second: over 5.2 s.
    assert!(clock.now_ms() >= 5_200, "paced at the halved rate: {} ms", clock.now_ms());
    assert!(clock.now_ms() < PACING_HOLD.as_millis() as u64, "still held");
    assert_eq!(ecs.rates()[&Op::DescribeServices], full / 2.0);
    for at in [15_000, 18_000, 20_000, 30_000] {
        clock.sleep(Duration::from_millis(at - clock.now_ms())).await;
        let rate = ecs.rates()[&Op::DescribeServices];
        assert!((rate - expected(at)).abs() < 1e-9, "at {at} ms: {rate} per second, expected {}", expected(at));
    }
    assert_eq!(ecs.rates()[&Op::DescribeServices], full, "recovered");
    assert_eq!(ecs.throttles()[&Op::DescribeServices], 3, "the three refusals were absorbed by retries");
    assert_eq!(rule.num_calls(), 54);
}

#[tokio::test]
async fn a_halved_bucket_spaces_the_next_calls_at_the_halved_rate() {
    use mcpfleet::backend::Op;
    let rule = mock!(Client::describe_services)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .output(|| found(&["docs"]))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, clock) = limited(client);
    ecs.describe_services("mcp", &["docs".into()]).await.unwrap();
    assert_eq!(ecs.rates()[&Op::DescribeServices], 10.0);
    // The bucket was emptied by the refusal: 20 more calls take about 2 s at 10 per second (at most 1 s at 20),
    // less the one or two tokens refilled during the retry's backoff.
    let start = clock.now_ms();
    for _ in 0..20 {
        ecs.describe_services("mcp", &["docs".into()]).await.unwrap();
    }
    let waited = clock.now_ms() - start;
    assert!((1_600..=2_100).contains(&waited), "waited {waited} ms");
}

#[tokio::test]
async fn pacing_reports_the_time_waited_for_tokens_and_the_rate_a_throttle_cut_the_bucket_to() {
    use mcpfleet::backend::Op;
    let rule = mock!(Client::describe_services)
        .sequence()
        .output(|| found(&["docs"]))
        .times(100)
        .http_status(400, Some(THROTTLED.into()))
        .output(|| found(&["docs"]))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], no_sdk_retries);
    let (ecs, clock) = limited(client);
    // ECS's burst of 100 DescribeServices: none of them waits.
    for _ in 0..100 {
        ecs.describe_services("mcp", &["docs".into()]).await.unwrap();
    }
    let pacing = ecs.pacing();
    assert_eq!(pacing.waited_ms.get(&Op::DescribeServices), Some(&0), "{pacing:?}");
    assert!(pacing.paced_to.is_empty(), "{pacing:?}");
    assert_eq!(clock.now_ms(), 0);
    assert_eq!(pacing.waited_ms.len(), 1, "only the operations called are listed: {pacing:?}");

    // AWS throttles the next one: the bucket is cut to 10 per second; the retry's backoff is not a token wait.
    ecs.describe_services("mcp", &["docs".into()]).await.unwrap();
    let pacing = ecs.pacing();
    assert_eq!(pacing.paced_to.get(&Op::DescribeServices), Some(&10.0), "{pacing:?}");
    let (before, start) = (pacing.waited_ms[&Op::DescribeServices], clock.now_ms());
    // Ten more calls, no errors: all the time they take is waiting for tokens, at 10 per second.
    for _ in 0..10 {
        ecs.describe_services("mcp", &["docs".into()]).await.unwrap();
    }
    let waited = ecs.pacing().waited_ms[&Op::DescribeServices] - before;
    assert_eq!(waited, clock.now_ms() - start, "the waits are the clock's moves");
    assert!((800..=1_100).contains(&waited), "waited {waited} ms for 10 tokens at 10 per second");
    assert_eq!(ecs.pacing().paced_to[&Op::DescribeServices], 10.0, "the lowest rate, not the current one");
}
