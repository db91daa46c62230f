//! ECS through aws-sdk-ecs: our rendered inputs → SDK builders, SDK answers → our observed types.
//!
//! Conversion back from ECS keeps only the fields mcpfleet renders, so ECS-side defaults (host ports, container
//! cpu 0, empty lists) never show up as differences.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_ecs::Client;
use aws_sdk_ecs::types as sdk;

use super::map_err;
use crate::backend::{
    BackendError, Deployment, DeploymentStatus, Described, Ecs, Op, RolloutState, STOPPED_TASKS_BATCH, ServiceEvent,
    ServiceState, ServiceStatus, ServiceUpdate, StoppedContainer, Tags, TaskDefinition, TaskInfo, TaskPage, TaskStatus,
    TdStatus, stopped_task_line,
};
use crate::render::CpuArch;
use crate::render::ecs::{
    AwsVpcConfiguration, CircuitBreaker, ContainerDefinition, ContainerDependency, DeploymentConfiguration,
    HealthCheck, KernelCapabilities, KeyValue, LinuxParameters, LoadBalancer, LogConfiguration, MountPoint,
    NetworkConfiguration, PortMapping, RepositoryCredentials, RuntimePlatform, SecretVar, ServiceConnectClientAlias,
    ServiceConnectConfiguration, ServiceConnectService, ServiceInput, TaskDefinitionInput, Volume,
};

/// The [`Ecs`] port over aws-sdk-ecs.
pub struct AwsEcs {
    client: Client,
}

impl AwsEcs {
    pub fn new(client: Client) -> AwsEcs {
        AwsEcs { client }
    }

    async fn create(&self, input: &ServiceInput, client_token: Option<&str>) -> Result<ServiceState, BackendError> {
        const OP: Op = Op::CreateService;
        let out = self
            .client
            .create_service()
            .cluster(&input.cluster)
            .set_client_token(client_token.map(str::to_string))
            .service_name(&input.service_name)
            .task_definition(&input.task_definition)
            .desired_count(input.desired_count as i32)
            .launch_type(sdk::LaunchType::from(input.launch_type.as_str()))
            .scheduling_strategy(sdk::SchedulingStrategy::from(input.scheduling_strategy.as_str()))
            .deployment_controller(
                sdk::DeploymentController::builder()
                    .r#type(sdk::DeploymentControllerType::from(input.deployment_controller.kind.as_str()))
                    .build()
                    .map_err(|e| build_err(OP, e))?,
            )
            .deployment_configuration(deployment_configuration(&input.deployment_configuration))
            .network_configuration(network_configuration(OP, &input.network_configuration)?)
            .enable_ecs_managed_tags(input.enable_ecs_managed_tags)
            .propagate_tags(sdk::PropagateTags::from(input.propagate_tags.as_str()))
            .set_service_connect_configuration(
                input.service_connect_configuration.as_ref().map(|c| service_connect(OP, c)).transpose()?,
            )
            .set_load_balancers(
                (!input.load_balancers.is_empty()).then(|| input.load_balancers.iter().map(load_balancer).collect()),
            )
            .set_health_check_grace_period_seconds(input.health_check_grace_period_seconds.map(grace_secs))
            .set_tags(Some(sdk_tags(input.tags.iter().map(|t| (t.key.clone(), t.value.clone())))))
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        let s = out
            .service()
            .ok_or_else(|| BackendError::Invalid { operation: OP, message: "no service in the answer".into() })?;
        Ok(service_state(&input.cluster, s))
    }

    async fn update(&self, u: &ServiceUpdate) -> Result<ServiceState, BackendError> {
        const OP: Op = Op::UpdateService;
        let mut req = self
            .client
            .update_service()
            .cluster(&u.cluster)
            .service(&u.service)
            .set_task_definition(u.task_definition.clone())
            .set_desired_count(u.desired_count.map(|c| c as i32));
        if let Some(c) = &u.deployment_configuration {
            req = req.deployment_configuration(deployment_configuration(c));
        }
        if let Some(n) = &u.network_configuration {
            req = req.network_configuration(network_configuration(OP, n)?);
        }
        if let Some(c) = &u.service_connect_configuration {
            req = req.service_connect_configuration(service_connect(OP, c)?);
        }
        if let Some(lbs) = &u.load_balancers {
            // An empty list detaches every load balancer.
            req = req.set_load_balancers(Some(lbs.iter().map(load_balancer).collect()));
        }
        if let Some(g) = u.health_check_grace_period_seconds {
            req = req.health_check_grace_period_seconds(grace_secs(g));
        }
        if let Some(t) = &u.tagging {
            req = req
                .propagate_tags(sdk::PropagateTags::from(t.propagate_tags.as_str()))
                .enable_ecs_managed_tags(t.enable_ecs_managed_tags);
        }
        if u.force_new_deployment {
            req = req.force_new_deployment(true);
        }
        let out = req.send().await.map_err(|e| map_err(OP, e))?;
        let s = out
            .service()
            .ok_or_else(|| BackendError::Invalid { operation: OP, message: "no service in the answer".into() })?;
        Ok(service_state(&u.cluster, s))
    }
}

fn build_err(op: Op, e: impl std::fmt::Display) -> BackendError {
    BackendError::Invalid { operation: op, message: format!("cannot build the request: {e}") }
}

fn sdk_tags(tags: impl IntoIterator<Item = (String, String)>) -> Vec<sdk::Tag> {
    tags.into_iter().map(|(k, v)| sdk::Tag::builder().key(k).value(v).build()).collect()
}

fn tags_of(tags: &[sdk::Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

fn millis(t: Option<&aws_smithy_types::DateTime>) -> u64 {
    t.and_then(|t| t.to_millis().ok()).map_or(0, |m| m.max(0) as u64)
}

fn container(c: &ContainerDefinition) -> Result<sdk::ContainerDefinition, BackendError> {
    const OP: Op = Op::RegisterTaskDefinition;
    let capabilities = c
        .linux_parameters
        .capabilities
        .as_ref()
        .map(|k| sdk::KernelCapabilities::builder().set_drop(Some(k.drop.clone())).build());
    let mut b = sdk::ContainerDefinition::builder()
        .name(&c.name)
        .image(&c.image)
        .essential(c.essential)
        .stop_timeout(c.stop_timeout as i32)
        .readonly_root_filesystem(c.readonly_root_filesystem)
        .linux_parameters(
            sdk::LinuxParameters::builder()
                .init_process_enabled(c.linux_parameters.init_process_enabled)
                .set_capabilities(capabilities)
                .build(),
        )
        .set_entry_point((!c.entry_point.is_empty()).then(|| c.entry_point.clone()))
        .set_command((!c.command.is_empty()).then(|| c.command.clone()))
        .set_user(c.user.clone())
        .set_repository_credentials(
            c.repository_credentials
                .as_ref()
                .map(|r| {
                    sdk::RepositoryCredentials::builder()
                        .credentials_parameter(&r.credentials_parameter)
                        .build()
                        .map_err(|e| build_err(OP, e))
                })
                .transpose()?,
        );
    for d in &c.depends_on {
        b = b.depends_on(
            sdk::ContainerDependency::builder()
                .container_name(&d.container_name)
                .condition(sdk::ContainerCondition::from(d.condition.as_str()))
                .build()
                .map_err(|e| build_err(OP, e))?,
        );
    }
    for p in &c.port_mappings {
        b = b.port_mappings(
            sdk::PortMapping::builder()
                .container_port(i32::from(p.container_port))
                .protocol(sdk::TransportProtocol::from(p.protocol.as_str()))
                .name(&p.name)
                .app_protocol(sdk::ApplicationProtocol::from(p.app_protocol.as_str()))
                .build(),
        );
    }
    for kv in &c.environment {
        b = b.environment(sdk::KeyValuePair::builder().name(&kv.name).value(&kv.value).build());
    }
    for s in &c.secrets {
        b = b.secrets(
            sdk::Secret::builder().name(&s.name).value_from(&s.value_from).build().map_err(|e| build_err(OP, e))?,
        );
    }
    if let Some(h) = &c.health_check {
        b = b.health_check(
            sdk::HealthCheck::builder()
                .set_command(Some(h.command.clone()))
                .interval(h.interval as i32)
                .timeout(h.timeout as i32)
                .retries(h.retries as i32)
                .start_period(h.start_period as i32)
                .build()
                .map_err(|e| build_err(OP, e))?,
        );
    }
    for m in &c.mount_points {
        b = b.mount_points(
            sdk::MountPoint::builder()
                .source_volume(&m.source_volume)
                .container_path(&m.container_path)
                .read_only(m.read_only)
                .build(),
        );
    }
    if let Some(l) = &c.log_configuration {
        b = b.log_configuration(
            sdk::LogConfiguration::builder()
                .log_driver(sdk::LogDriver::from(l.log_driver.as_str()))
                .set_options(Some(l.options.clone().into_iter().collect::<HashMap<_, _>>()))
                .build()
                .map_err(|e| build_err(OP, e))?,
        );
    }
    Ok(b.build())
}

/// What ECS reports for a task definition, in the shape mcpfleet rendered it.
fn spec_of(td: &sdk::TaskDefinition) -> TaskDefinitionInput {
    let containers = td
        .container_definitions()
        .iter()
        .map(|c| ContainerDefinition {
            name: c.name().unwrap_or_default().into(),
            image: c.image().unwrap_or_default().into(),
            repository_credentials: c
                .repository_credentials()
                .map(|r| RepositoryCredentials { credentials_parameter: r.credentials_parameter().into() }),
            essential: c.essential().unwrap_or(true),
            entry_point: c.entry_point().to_vec(),
            command: c.command().to_vec(),
            depends_on: c
                .depends_on()
                .iter()
                .map(|d| ContainerDependency {
                    container_name: d.container_name().into(),
                    condition: d.condition().as_str().into(),
                })
                .collect(),
            user: c.user().map(Into::into),
            port_mappings: c
                .port_mappings()
                .iter()
                .map(|p| PortMapping {
                    container_port: p.container_port().unwrap_or(0) as u16,
                    protocol: p.protocol().map_or("tcp", |p| p.as_str()).into(),
                    name: p.name().unwrap_or_default().into(),
                    app_protocol: p.app_protocol().map_or("", |p| p.as_str()).into(),
                })
                .collect(),
            environment: {
                let mut env: Vec<KeyValue> = c
                    .environment()
                    .iter()
                    .map(|kv| KeyValue {
                        name: kv.name().unwrap_or_default().into(),
                        value: kv.value().unwrap_or_default().into(),
                    })
                    .collect();
                env.sort();
                env
            },
            secrets: {
                let mut s: Vec<SecretVar> = c
                    .secrets()
                    .iter()
                    .map(|s| SecretVar { name: s.name().into(), value_from: s.value_from().into() })
                    .collect();
                s.sort();
                s
            },
            health_check: c.health_check().map(|h| HealthCheck {
                command: h.command().to_vec(),
                interval: h.interval().unwrap_or(30) as u32,
                timeout: h.timeout().unwrap_or(5) as u32,
                retries: h.retries().unwrap_or(3) as u32,
                start_period: h.start_period().unwrap_or(0) as u32,
            }),
            stop_timeout: c.stop_timeout().unwrap_or(30) as u32,
            readonly_root_filesystem: c.readonly_root_filesystem().unwrap_or(false),
            mount_points: c
                .mount_points()
                .iter()
                .map(|m| MountPoint {
                    source_volume: m.source_volume().unwrap_or_default().into(),
                    container_path: m.container_path().unwrap_or_default().into(),
                    read_only: m.read_only().unwrap_or(false),
                })
                .collect(),
            linux_parameters: LinuxParameters {
                init_process_enabled: c.linux_parameters().and_then(|l| l.init_process_enabled()).unwrap_or(false),
                capabilities: c
                    .linux_parameters()
                    .and_then(|l| l.capabilities())
                    .map(|k| KernelCapabilities { drop: k.drop().to_vec() }),
            },
            log_configuration: c.log_configuration().map(|l| LogConfiguration {
                log_driver: l.log_driver().as_str().into(),
                options: l.options().map(|o| o.clone().into_iter().collect::<BTreeMap<_, _>>()).unwrap_or_default(),
            }),
        })
        .collect();
    TaskDefinitionInput {
        family: td.family().unwrap_or_default().into(),
        task_role_arn: td.task_role_arn().map(Into::into),
        execution_role_arn: td.execution_role_arn().map(Into::into),
        network_mode: td.network_mode().map_or("awsvpc", |m| m.as_str()).into(),
        container_definitions: containers,
        volumes: td.volumes().iter().map(|v| Volume { name: v.name().unwrap_or_default().into() }).collect(),
        requires_compatibilities: td.requires_compatibilities().iter().map(|c| c.as_str().to_string()).collect(),
        cpu: td.cpu().unwrap_or_default().into(),
        memory: td.memory().unwrap_or_default().into(),
        runtime_platform: RuntimePlatform {
            cpu_architecture: td.runtime_platform().and_then(|p| p.cpu_architecture()).and_then(|a| match a {
                sdk::CpuArchitecture::Arm64 => Some(CpuArch::Arm64),
                sdk::CpuArchitecture::X8664 => Some(CpuArch::X86_64),
                _ => None,
            }),
            operating_system_family: td
                .runtime_platform()
                .and_then(|p| p.operating_system_family())
                .map_or("LINUX", |f| f.as_str())
                .into(),
        },
        tags: vec![],
    }
}

fn task_definition_of(td: &sdk::TaskDefinition, tags: &[sdk::Tag]) -> TaskDefinition {
    TaskDefinition {
        arn: td.task_definition_arn().unwrap_or_default().into(),
        family: td.family().unwrap_or_default().into(),
        revision: td.revision().max(0) as u32,
        status: match td.status() {
            Some(sdk::TaskDefinitionStatus::Inactive) | Some(sdk::TaskDefinitionStatus::DeleteInProgress) => {
                TdStatus::Inactive
            }
            _ => TdStatus::Active,
        },
        spec: spec_of(td),
        tags: tags_of(tags),
        registered_at_ms: millis(td.registered_at()),
    }
}

fn deployment_configuration(c: &DeploymentConfiguration) -> sdk::DeploymentConfiguration {
    sdk::DeploymentConfiguration::builder()
        .maximum_percent(c.maximum_percent as i32)
        .minimum_healthy_percent(c.minimum_healthy_percent as i32)
        .deployment_circuit_breaker(
            sdk::DeploymentCircuitBreaker::builder()
                .enable(c.deployment_circuit_breaker.enable)
                .rollback(c.deployment_circuit_breaker.rollback)
                .build(),
        )
        .build()
}

fn network_configuration(op: Op, n: &NetworkConfiguration) -> Result<sdk::NetworkConfiguration, BackendError> {
    let a = &n.awsvpc_configuration;
    Ok(sdk::NetworkConfiguration::builder()
        .awsvpc_configuration(
            sdk::AwsVpcConfiguration::builder()
                .set_subnets(Some(a.subnets.clone()))
                .set_security_groups(if a.security_groups.is_empty() { None } else { Some(a.security_groups.clone()) })
                .assign_public_ip(sdk::AssignPublicIp::from(a.assign_public_ip.as_str()))
                .build()
                .map_err(|e| build_err(op, e))?,
        )
        .build())
}

fn service_connect(op: Op, c: &ServiceConnectConfiguration) -> Result<sdk::ServiceConnectConfiguration, BackendError> {
    let services = c
        .services
        .iter()
        .map(|s| {
            let aliases = s
                .client_aliases
                .iter()
                .map(|a| {
                    sdk::ServiceConnectClientAlias::builder()
                        .port(i32::from(a.port))
                        .set_dns_name(a.dns_name.clone())
                        .build()
                        .map_err(|e| build_err(op, e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            sdk::ServiceConnectService::builder()
                .port_name(&s.port_name)
                .set_discovery_name(s.discovery_name.clone())
                .set_client_aliases(Some(aliases))
                .build()
                .map_err(|e| build_err(op, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sdk::ServiceConnectConfiguration::builder()
        .enabled(c.enabled)
        .set_namespace(c.namespace.clone())
        .set_services((!services.is_empty()).then_some(services))
        .build())
}

/// Service Connect as ECS reports it: only per deployment, so the PRIMARY one's is the service's. Only the fields
/// mcpfleet sets are read; the defaults ECS echoes (timeouts, ingress port, TLS) are not part of the comparison.
fn service_connect_of(s: &sdk::Service) -> Option<ServiceConnectConfiguration> {
    let primary = s.deployments().iter().find(|d| d.status() == Some("PRIMARY"))?;
    let c = primary.service_connect_configuration()?;
    if !c.enabled() {
        return Some(ServiceConnectConfiguration::disabled());
    }
    Some(ServiceConnectConfiguration {
        enabled: true,
        namespace: c.namespace().map(String::from),
        services: c
            .services()
            .iter()
            .map(|s| ServiceConnectService {
                port_name: s.port_name().into(),
                discovery_name: s.discovery_name().map(String::from),
                client_aliases: s
                    .client_aliases()
                    .iter()
                    .filter_map(|a| {
                        Some(ServiceConnectClientAlias {
                            port: u16::try_from(a.port()).ok()?,
                            dns_name: a.dns_name().map(String::from),
                        })
                    })
                    .collect(),
            })
            .collect(),
    })
}

fn rollout_state(s: Option<&sdk::DeploymentRolloutState>) -> RolloutState {
    match s {
        Some(sdk::DeploymentRolloutState::Completed) => RolloutState::Completed,
        Some(sdk::DeploymentRolloutState::Failed) => RolloutState::Failed,
        _ => RolloutState::InProgress,
    }
}

fn load_balancer(lb: &LoadBalancer) -> sdk::LoadBalancer {
    sdk::LoadBalancer::builder()
        .target_group_arn(&lb.target_group_arn)
        .container_name(&lb.container_name)
        .container_port(i32::from(lb.container_port))
        .build()
}

/// Validation bounds the grace period to ECS's maximum, `i32::MAX` seconds; a larger one saturates.
fn grace_secs(secs: u32) -> i32 {
    i32::try_from(secs).unwrap_or(i32::MAX)
}

fn load_balancers_of(s: &sdk::Service) -> Vec<LoadBalancer> {
    s.load_balancers()
        .iter()
        .filter_map(|lb| {
            Some(LoadBalancer {
                target_group_arn: lb.target_group_arn()?.to_string(),
                container_name: lb.container_name().unwrap_or_default().to_string(),
                container_port: u16::try_from(lb.container_port()?).ok()?,
            })
        })
        .collect()
}

fn service_state(cluster: &str, s: &sdk::Service) -> ServiceState {
    let dc = s.deployment_configuration();
    let breaker = dc.and_then(|d| d.deployment_circuit_breaker());
    let vpc = s.network_configuration().and_then(|n| n.awsvpc_configuration());
    ServiceState {
        arn: s.service_arn().unwrap_or_default().into(),
        cluster: cluster.rsplit('/').next().unwrap_or(cluster).into(),
        name: s.service_name().unwrap_or_default().into(),
        status: s.status().map_or(ServiceStatus::Active, ServiceStatus::from_ecs),
        task_definition: s.task_definition().unwrap_or_default().into(),
        desired_count: s.desired_count().max(0) as u32,
        running_count: s.running_count().max(0) as u32,
        pending_count: s.pending_count().max(0) as u32,
        deployment_configuration: dc.map(|dc| DeploymentConfiguration {
            maximum_percent: dc.maximum_percent().unwrap_or(200) as u32,
            minimum_healthy_percent: dc.minimum_healthy_percent().unwrap_or(100) as u32,
            deployment_circuit_breaker: CircuitBreaker {
                enable: breaker.is_some_and(|b| b.enable()),
                rollback: breaker.is_some_and(|b| b.rollback()),
            },
        }),
        network_configuration: NetworkConfiguration {
            awsvpc_configuration: AwsVpcConfiguration {
                subnets: vpc.map(|v| v.subnets().to_vec()).unwrap_or_default(),
                security_groups: vpc.map(|v| v.security_groups().to_vec()).unwrap_or_default(),
                assign_public_ip: vpc.and_then(|v| v.assign_public_ip()).map_or("DISABLED", |a| a.as_str()).into(),
            },
        },
        service_connect_configuration: service_connect_of(s),
        load_balancers: load_balancers_of(s),
        health_check_grace_period_seconds: s.health_check_grace_period_seconds().and_then(|g| u32::try_from(g).ok()),
        deployments: s
            .deployments()
            .iter()
            .map(|d| Deployment {
                id: d.id().unwrap_or_default().into(),
                status: DeploymentStatus::from_ecs(d.status().unwrap_or_default()),
                task_definition: d.task_definition().unwrap_or_default().into(),
                desired_count: d.desired_count().max(0) as u32,
                running_count: d.running_count().max(0) as u32,
                pending_count: d.pending_count().max(0) as u32,
                failed_tasks: d.failed_tasks().max(0) as u32,
                rollout_state: rollout_state(d.rollout_state()),
                rollout_state_reason: d.rollout_state_reason().unwrap_or_default().into(),
                created_at_ms: millis(d.created_at()),
                updated_at_ms: millis(d.updated_at()),
            })
            .collect(),
        events: s
            .events()
            .iter()
            .map(|e| ServiceEvent { at_ms: millis(e.created_at()), message: e.message().unwrap_or_default().into() })
            .collect(),
        tags: tags_of(s.tags()),
    }
}

#[async_trait]
impl Ecs for AwsEcs {
    async fn describe_services(&self, cluster: &str, names: &[String]) -> Result<Described, BackendError> {
        const OP: Op = Op::DescribeServices;
        let out = self
            .client
            .describe_services()
            .cluster(cluster)
            .set_services(Some(names.to_vec()))
            .include(sdk::ServiceField::Tags)
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        let mut missing = Vec::new();
        for f in out.failures() {
            let what = f.arn().unwrap_or_default();
            let name = what.rsplit('/').next().unwrap_or(what).to_string();
            if f.reason() == Some("MISSING") {
                missing.push(name);
            } else {
                return Err(BackendError::Invalid {
                    operation: OP,
                    message: format!("{what}: {} {}", f.reason().unwrap_or_default(), f.detail().unwrap_or_default()),
                });
            }
        }
        Ok(Described { services: out.services().iter().map(|s| service_state(cluster, s)).collect(), missing })
    }

    async fn list_services(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        let mut pages = self.client.list_services().cluster(cluster).max_results(100).into_paginator().send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err(Op::ListServices, e))?;
            names.extend(page.service_arns().iter().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()));
        }
        Ok(names)
    }

    async fn list_clusters(&self) -> Result<Vec<String>, BackendError> {
        let mut pages = self.client.list_clusters().max_results(100).into_paginator().send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err(Op::ListClusters, e))?;
            names.extend(page.cluster_arns().iter().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()));
        }
        Ok(names)
    }

    async fn register_task_definition(&self, input: &TaskDefinitionInput) -> Result<TaskDefinition, BackendError> {
        const OP: Op = Op::RegisterTaskDefinition;
        let containers = input.container_definitions.iter().map(container).collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .register_task_definition()
            .family(&input.family)
            .set_task_role_arn(input.task_role_arn.clone())
            .set_execution_role_arn(input.execution_role_arn.clone())
            .network_mode(sdk::NetworkMode::from(input.network_mode.as_str()))
            .set_container_definitions(Some(containers))
            .set_volumes(Some(input.volumes.iter().map(|v| sdk::Volume::builder().name(&v.name).build()).collect()))
            .set_requires_compatibilities(Some(
                input.requires_compatibilities.iter().map(|c| sdk::Compatibility::from(c.as_str())).collect(),
            ))
            .cpu(&input.cpu)
            .memory(&input.memory)
            .runtime_platform(
                sdk::RuntimePlatform::builder()
                    .set_cpu_architecture(
                        input.runtime_platform.cpu_architecture.map(|a| sdk::CpuArchitecture::from(a.as_ecs())),
                    )
                    .operating_system_family(sdk::OsFamily::from(
                        input.runtime_platform.operating_system_family.as_str(),
                    ))
                    .build(),
            )
            .set_tags(Some(sdk_tags(input.tags.iter().map(|t| (t.key.clone(), t.value.clone())))))
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        let td = out.task_definition().ok_or_else(|| BackendError::Invalid {
            operation: OP,
            message: "no task definition in the answer".into(),
        })?;
        let mut registered = task_definition_of(td, out.tags());
        if registered.tags.is_empty() {
            registered.tags = input.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect();
        }
        Ok(registered)
    }

    async fn describe_task_definition(&self, id: &str) -> Result<TaskDefinition, BackendError> {
        const OP: Op = Op::DescribeTaskDefinition;
        let out = self
            .client
            .describe_task_definition()
            .task_definition(id)
            .include(sdk::TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        let td = out.task_definition().ok_or_else(|| BackendError::NotFound { operation: OP, message: id.into() })?;
        Ok(task_definition_of(td, out.tags()))
    }

    async fn list_task_definitions(&self, family: &str, status: TdStatus) -> Result<Vec<String>, BackendError> {
        let status = match status {
            TdStatus::Active => sdk::TaskDefinitionStatus::Active,
            TdStatus::Inactive => sdk::TaskDefinitionStatus::Inactive,
        };
        let mut pages = self
            .client
            .list_task_definitions()
            .family_prefix(family)
            .status(status)
            .sort(sdk::SortOrder::Asc)
            .max_results(100)
            .into_paginator()
            .send();
        let mut arns = Vec::new();
        let suffix = format!("task-definition/{family}:");
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err(Op::ListTaskDefinitions, e))?;
            // The filter is a prefix: keep only this exact family.
            arns.extend(
                page.task_definition_arns()
                    .iter()
                    .filter(|a| a.rsplit_once(&suffix).is_some_and(|(_, rev)| rev.chars().all(|c| c.is_ascii_digit())))
                    .cloned(),
            );
        }
        arns.sort_by_key(|a| a.rsplit(':').next().and_then(|r| r.parse::<u32>().ok()).unwrap_or(0));
        Ok(arns)
    }

    async fn deregister_task_definition(&self, arn: &str) -> Result<(), BackendError> {
        self.client
            .deregister_task_definition()
            .task_definition(arn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_err(Op::DeregisterTaskDefinition, e))
    }

    async fn create_service(
        &self,
        input: &ServiceInput,
        client_token: Option<&str>,
    ) -> Result<ServiceState, BackendError> {
        self.create(input, client_token).await
    }

    async fn update_service(&self, u: &ServiceUpdate) -> Result<ServiceState, BackendError> {
        self.update(u).await
    }

    async fn delete_service(&self, cluster: &str, name: &str) -> Result<(), BackendError> {
        self.client
            .delete_service()
            .cluster(cluster)
            .service(name)
            .force(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_err(Op::DeleteService, e))
    }

    async fn tag_resource(&self, arn: &str, tags: &Tags) -> Result<(), BackendError> {
        self.client
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(sdk_tags(tags.clone())))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_err(Op::TagResource, e))
    }

    async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), BackendError> {
        self.client
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_err(Op::UntagResource, e))
    }

    async fn stopped_task_reasons(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Vec<String>, BackendError> {
        // One page of the most recent stopped tasks is enough to explain a rollout; ECS forgets old ones anyway.
        let listed = self.task_page(cluster, service, sdk::DesiredStatus::Stopped, None).await?;
        let newest = &listed.arns[..listed.arns.len().min(STOPPED_TASKS_BATCH)];
        let described = self.sdk_tasks(cluster, newest).await?;
        let wanted = short_td(task_definition);
        let mut tasks: Vec<&sdk::Task> =
            described.iter().filter(|t| t.task_definition_arn().map(short_td) == Some(wanted)).collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(millis(t.stopped_at())));
        Ok(tasks
            .iter()
            .map(|t| {
                let containers: Vec<StoppedContainer> = t
                    .containers()
                    .iter()
                    .map(|c| StoppedContainer {
                        name: c.name().unwrap_or("container").into(),
                        reason: c.reason().map(Into::into),
                        exit_code: c.exit_code(),
                    })
                    .collect();
                stopped_task_line(t.stopped_reason(), &containers)
            })
            .collect())
    }

    async fn list_tasks(&self, cluster: &str, service: &str, token: Option<&str>) -> Result<TaskPage, BackendError> {
        self.task_page(cluster, service, sdk::DesiredStatus::Running, token).await
    }

    async fn describe_tasks(&self, cluster: &str, arns: &[String]) -> Result<Vec<TaskInfo>, BackendError> {
        Ok(self.sdk_tasks(cluster, arns).await?.iter().filter_map(task_info).collect())
    }
}

impl AwsEcs {
    /// One ListTasks page (at most [`STOPPED_TASKS_BATCH`]) of a service's tasks whose desired status is `desired`.
    async fn task_page(
        &self,
        cluster: &str,
        service: &str,
        desired: sdk::DesiredStatus,
        next_token: Option<&str>,
    ) -> Result<TaskPage, BackendError> {
        let out = self
            .client
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(desired)
            .max_results(STOPPED_TASKS_BATCH as i32)
            .set_next_token(next_token.map(str::to_string))
            .send()
            .await
            .map_err(|e| map_err(Op::ListTasks, e))?;
        Ok(TaskPage { arns: out.task_arns().to_vec(), next_token: out.next_token().map(str::to_string) })
    }

    /// DescribeTasks of up to [`STOPPED_TASKS_BATCH`] tasks, as the SDK answers; no request when none is asked.
    async fn sdk_tasks(&self, cluster: &str, arns: &[String]) -> Result<Vec<sdk::Task>, BackendError> {
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns.to_vec()))
            .send()
            .await
            .map_err(|e| map_err(Op::DescribeTasks, e))?;
        Ok(out.tasks.unwrap_or_default())
    }
}

/// A task as mcpfleet sees it: the private IPv4 address is the `privateIPv4Address` detail of its elastic network
/// interface attachment (awsvpc).
fn task_info(t: &sdk::Task) -> Option<TaskInfo> {
    let private_ipv4 = t
        .attachments()
        .iter()
        .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .map(str::to_string);
    Some(TaskInfo {
        arn: t.task_arn()?.to_string(),
        task_definition: t.task_definition_arn().unwrap_or_default().to_string(),
        last_status: TaskStatus::from_ecs(t.last_status().unwrap_or_default()),
        private_ipv4,
        port: None,
    })
}

/// `family:revision` of a task-definition ARN (or the id as given).
fn short_td(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rendered task definition sent to ECS and read back: every container setting survives the SDK's types both
    /// ways (a stdio service's two containers carry the most of them).
    #[test]
    fn container_settings_survive_the_sdk_both_ways() {
        let text = "apiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata: { name: fetch }\nspec:
  cluster: c\n  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/fetch:v1\n  cpu: 256\n  memory: 512
  port: 8080\n  transport: stdio\n  command: [uvx, mcp-server-fetch]
  executionRoleArn: arn:aws:iam::123456789012:role/exec\n  network: { subnets: [subnet-0abc1234] }
  logging: { group: /mcp/fleet }\n  env: { A: b }\n";
        let opts = crate::spec::LoadOptions {
            bridge_image: crate::spec::ImageRef::parse_pinned(
                "registry.example.com/mcpfleet@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            )
            .ok(),
        };
        let files = [crate::spec::SourceFile { name: "m.yaml".into(), text: text.into() }];
        let svc = crate::spec::load_sources_with(&files, &opts).unwrap().services.remove(0);
        let mut td =
            crate::render::ecs::render(&svc, &crate::render::Resolved::unresolved(&svc)).register_task_definition;
        td.tags.clear();
        let containers: Vec<sdk::ContainerDefinition> =
            td.container_definitions.iter().map(|c| container(c).unwrap()).collect();
        let volumes: Vec<sdk::Volume> =
            td.volumes.iter().map(|v| sdk::Volume::builder().name(&v.name).build()).collect();
        let echoed = sdk::TaskDefinition::builder()
            .family(&td.family)
            .set_execution_role_arn(td.execution_role_arn.clone())
            .network_mode(sdk::NetworkMode::Awsvpc)
            .set_container_definitions(Some(containers))
            .set_volumes(Some(volumes))
            .requires_compatibilities(sdk::Compatibility::Fargate)
            .cpu(&td.cpu)
            .memory(&td.memory)
            .runtime_platform(sdk::RuntimePlatform::builder().operating_system_family(sdk::OsFamily::Linux).build())
            .build();
        assert_eq!(spec_of(&echoed), td);
        assert_eq!(td.container_definitions.len(), 2);
        assert_eq!(td.container_definitions[0].depends_on[0].condition, "COMPLETE");
    }
}
